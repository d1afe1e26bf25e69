//! A node's health as the monitor judges it: check results in, [`NodeState`]
//! out, with the reason for each change (logged and shown by admin).
//!
//! The counting is [`RiseFall`]'s (HAProxy's semantics). A node starts Down
//! and unchecked, and its first successful check brings it Up at once
//! (start-up waits for no `rise`). Pure and synchronous: the monitor feeds
//! it, tests drive it.

use std::fmt;

use super::NodeState;
use crate::rise_fall::{Fall, Rise, RiseFall};

/// Why a node changed state; logged and shown by admin `SHOW NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeReason {
    /// The node's first successful check since the proxy started.
    FirstCheckPassed,
    /// `successes` consecutive checks passed (the `rise` threshold).
    Rise { successes: u32 },
    /// `failures` consecutive checks failed (the `fall` threshold); the last one's error.
    Fall { failures: u32, last_error: String },
}

impl fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeReason::FirstCheckPassed => f.write_str("first check passed"),
            ChangeReason::Rise { successes } => {
                write!(f, "{successes} consecutive checks passed")
            }
            ChangeReason::Fall {
                failures,
                last_error,
            } => write!(
                f,
                "{failures} consecutive checks failed, last: {last_error}"
            ),
        }
    }
}

/// One state change: what the node was, what it is now, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: NodeState,
    pub to: NodeState,
    pub reason: ChangeReason,
}

/// One node's health: rise/fall counting ([`RiseFall`]) read as [`NodeState`],
/// with the reason for each change.
#[derive(Debug, Clone)]
pub struct Health {
    checks: RiseFall,
}

impl Health {
    /// A node not checked yet: Down. `rise` and `fall` below 1 count as 1.
    pub fn new(rise: u32, fall: u32) -> Health {
        Health {
            checks: RiseFall::unchecked(rise, fall),
        }
    }

    pub fn state(&self) -> NodeState {
        if self.checks.is_up() {
            NodeState::Up
        } else {
            NodeState::Down
        }
    }

    /// Consecutive failed checks so far (0 after a success).
    pub fn failures(&self) -> u32 {
        self.checks.failures()
    }

    /// Record a passed check; returns the transition if the state changed.
    pub fn observe_success(&mut self) -> Option<Transition> {
        let reason = match self.checks.pass()? {
            Rise::FirstPass => ChangeReason::FirstCheckPassed,
            Rise::Streak { successes } => ChangeReason::Rise { successes },
        };
        Some(Transition {
            from: NodeState::Down,
            to: NodeState::Up,
            reason,
        })
    }

    /// Record a failed check (`error` is its message); returns the
    /// transition if the state changed.
    pub fn observe_failure(&mut self, error: &str) -> Option<Transition> {
        let Fall { failures } = self.checks.fail()?;
        Some(Transition {
            from: NodeState::Up,
            to: NodeState::Down,
            reason: ChangeReason::Fall {
                failures,
                last_error: error.to_string(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use NodeState::{Down, Up};

    // The counting itself is tested from a table in `rise_fall.rs`; these check
    // what the monitor is told.

    #[test]
    fn first_success_brings_an_unchecked_node_up() {
        let mut h = Health::new(3, 2);
        assert_eq!(h.state(), Down);
        assert_eq!(h.observe_failure("refused"), None);
        assert_eq!(
            h.observe_success(),
            Some(Transition {
                from: Down,
                to: Up,
                reason: ChangeReason::FirstCheckPassed
            })
        );
        assert_eq!(h.state(), Up);
    }

    #[test]
    fn fall_names_the_last_error_and_rise_the_streak() {
        let mut h = Health::new(3, 2);
        h.observe_success();
        assert_eq!(h.observe_failure("first"), None);
        assert_eq!(
            h.observe_failure("timed out after 1s"),
            Some(Transition {
                from: Up,
                to: Down,
                reason: ChangeReason::Fall {
                    failures: 2,
                    last_error: "timed out after 1s".into()
                }
            })
        );
        assert_eq!(h.failures(), 2);
        assert_eq!(h.observe_success(), None);
        assert_eq!(h.observe_success(), None);
        assert_eq!(
            h.observe_success(),
            Some(Transition {
                from: Down,
                to: Up,
                reason: ChangeReason::Rise { successes: 3 }
            })
        );
    }

    #[test]
    fn reasons_read_well() {
        assert_eq!(
            ChangeReason::Fall {
                failures: 2,
                last_error: "connect: refused".into()
            }
            .to_string(),
            "2 consecutive checks failed, last: connect: refused"
        );
        assert_eq!(
            ChangeReason::Rise { successes: 3 }.to_string(),
            "3 consecutive checks passed"
        );
    }
}
