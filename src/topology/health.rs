//! The rise/fall machine: turns a node's stream of check results into its
//! health state, with HAProxy's semantics, plus the reason for each change.
//!
//! A node starts Down and unchecked. Its first successful check brings it Up
//! at once (start-up waits for no `rise`). After that it goes Down after
//! `fall` consecutive failures and comes back after `rise` consecutive
//! successes. Pure and synchronous: the monitor feeds it, tests drive it.

use std::fmt;

use super::NodeState;

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

/// Consecutive-result counters for one node.
#[derive(Debug, Clone)]
pub struct Health {
    state: NodeState,
    /// Whether the node has ever been Up; until then one success is enough.
    been_up: bool,
    successes: u32,
    failures: u32,
    rise: u32,
    fall: u32,
}

impl Health {
    /// A node not checked yet: Down. `rise` and `fall` below 1 count as 1.
    pub fn new(rise: u32, fall: u32) -> Health {
        Health {
            state: NodeState::Down,
            been_up: false,
            successes: 0,
            failures: 0,
            rise: rise.max(1),
            fall: fall.max(1),
        }
    }

    pub fn state(&self) -> NodeState {
        self.state
    }

    /// Consecutive passed checks so far (0 after a failure).
    pub fn successes(&self) -> u32 {
        self.successes
    }

    /// Consecutive failed checks so far (0 after a success).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Record a passed check; returns the transition if the state changed.
    pub fn observe_success(&mut self) -> Option<Transition> {
        self.failures = 0;
        self.successes = self.successes.saturating_add(1);
        if self.state == NodeState::Up {
            return None;
        }
        let reason = if !self.been_up {
            ChangeReason::FirstCheckPassed
        } else if self.successes >= self.rise {
            ChangeReason::Rise {
                successes: self.successes,
            }
        } else {
            return None;
        };
        self.been_up = true;
        Some(self.change(NodeState::Up, reason))
    }

    /// Record a failed check (`error` is its message); returns the
    /// transition if the state changed.
    pub fn observe_failure(&mut self, error: &str) -> Option<Transition> {
        self.successes = 0;
        self.failures = self.failures.saturating_add(1);
        if self.state == NodeState::Down || self.failures < self.fall {
            return None;
        }
        let reason = ChangeReason::Fall {
            failures: self.failures,
            last_error: error.to_string(),
        };
        Some(self.change(NodeState::Down, reason))
    }

    fn change(&mut self, to: NodeState, reason: ChangeReason) -> Transition {
        let from = self.state;
        self.state = to;
        Transition { from, to, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use NodeState::{Down, Up};

    /// Feeds `script` ('+' pass, '-' fail) and returns the state after each check.
    fn run(h: &mut Health, script: &str) -> Vec<NodeState> {
        script
            .chars()
            .map(|c| {
                if c == '+' {
                    h.observe_success();
                } else {
                    h.observe_failure("boom");
                }
                h.state()
            })
            .collect()
    }

    #[test]
    fn starts_down_and_first_success_is_enough() {
        let mut h = Health::new(3, 2);
        assert_eq!(h.state(), Down);
        let t = h.observe_success();
        assert_eq!(
            t,
            Some(Transition {
                from: Down,
                to: Up,
                reason: ChangeReason::FirstCheckPassed
            })
        );
        assert_eq!(h.state(), Up);
    }

    #[test]
    fn failures_before_first_success_keep_it_down_without_transitions() {
        let mut h = Health::new(3, 2);
        for _ in 0..5 {
            assert_eq!(h.observe_failure("refused"), None);
        }
        assert_eq!(h.state(), Down);
        assert_eq!(h.failures(), 5);
        // Never been Up: one success still brings it Up.
        assert_eq!(
            h.observe_success().map(|t| t.reason),
            Some(ChangeReason::FirstCheckPassed)
        );
    }

    #[test]
    fn falls_after_fall_consecutive_failures() {
        let mut h = Health::new(3, 2);
        assert_eq!(
            run(&mut h, "+-+-+"),
            vec![Up; 5],
            "non-consecutive failures"
        );
        assert_eq!(h.observe_failure("first"), None);
        let t = h.observe_failure("timed out after 1s");
        assert_eq!(
            t,
            Some(Transition {
                from: Up,
                to: Down,
                reason: ChangeReason::Fall {
                    failures: 2,
                    last_error: "timed out after 1s".into()
                }
            })
        );
        // Further failures do not re-announce.
        assert_eq!(h.observe_failure("again"), None);
    }

    #[test]
    fn rises_after_rise_consecutive_successes() {
        let mut h = Health::new(3, 2);
        run(&mut h, "+--");
        assert_eq!(h.state(), Down);
        assert_eq!(
            run(&mut h, "++-++"),
            vec![Down; 5],
            "a failure resets the count"
        );
        let t = h.observe_success();
        assert_eq!(
            t,
            Some(Transition {
                from: Down,
                to: Up,
                reason: ChangeReason::Rise { successes: 3 }
            })
        );
        assert_eq!(h.observe_success(), None);
        assert_eq!(h.successes(), 4);
    }

    #[test]
    fn rise_and_fall_of_one_flip_on_every_change() {
        let mut h = Health::new(1, 1);
        assert_eq!(run(&mut h, "+-+-"), vec![Up, Down, Up, Down]);
        // Zero is treated as one rather than "never".
        let mut h = Health::new(0, 0);
        assert_eq!(run(&mut h, "+-+"), vec![Up, Down, Up]);
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
