//! Rise/fall counting with HAProxy's semantics, for anything checked over and
//! over: a target goes Down after `fall` consecutive failed checks and comes
//! back Up after `rise` consecutive passed ones. The SQL node monitor
//! (`topology/health.rs`) and the HTTP worker checks (`http/health.rs`) both
//! count with [`RiseFall`] and keep their own reasons and transitions.
//!
//! Pure and synchronous, and it imports nothing from the crate, so it sits
//! under every module that checks something.

/// How a target came Up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rise {
    /// The first passed check of a target that was never Up ([`RiseFall::unchecked`]).
    FirstPass,
    /// `successes` consecutive checks passed (the `rise` threshold).
    Streak { successes: u32 },
}

/// How a target went Down: `failures` consecutive checks failed (the `fall` threshold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fall {
    pub failures: u32,
}

/// The state of one checked target and its current streaks.
#[derive(Debug, Clone)]
pub struct RiseFall {
    up: bool,
    /// No check has passed yet, and the first one that does brings the target Up at once.
    first_pass_rises: bool,
    rise: u32,
    fall: u32,
    successes: u32,
    failures: u32,
}

impl RiseFall {
    /// A target not checked yet: Down, and its first passed check is enough to bring it Up
    /// (start-up waits for no `rise`). `rise` and `fall` below 1 count as 1.
    pub fn unchecked(rise: u32, fall: u32) -> RiseFall {
        RiseFall {
            first_pass_rises: true,
            ..RiseFall::starting(false, rise, fall)
        }
    }

    /// A target whose state is already known: every flip takes a full streak, the first one
    /// too. `rise` and `fall` below 1 count as 1.
    pub fn starting(up: bool, rise: u32, fall: u32) -> RiseFall {
        RiseFall {
            up,
            first_pass_rises: false,
            rise: rise.max(1),
            fall: fall.max(1),
            successes: 0,
            failures: 0,
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Consecutive failed checks so far (0 after a success).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a passed check; `Some` if it brought the target Up.
    pub fn pass(&mut self) -> Option<Rise> {
        self.failures = 0;
        self.successes = self.successes.saturating_add(1);
        if self.up {
            return None;
        }
        let rise = if std::mem::take(&mut self.first_pass_rises) {
            Rise::FirstPass
        } else if self.successes >= self.rise {
            Rise::Streak {
                successes: self.successes,
            }
        } else {
            return None;
        };
        self.up = true;
        Some(rise)
    }

    /// Records a failed check; `Some` if it brought the target Down.
    pub fn fail(&mut self) -> Option<Fall> {
        self.successes = 0;
        self.failures = self.failures.saturating_add(1);
        if !self.up || self.failures < self.fall {
            return None;
        }
        self.up = false;
        Some(Fall {
            failures: self.failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `script` ('+' passed, '-' failed) and checks what each check did: `.` nothing,
    /// `*` first-pass rise, `^` rise after a streak, `v` fall.
    #[track_caller]
    fn check(mut target: RiseFall, script: &str, expected: &str) {
        let seen: String = script
            .chars()
            .map(|c| match c {
                '+' => match target.pass() {
                    Some(Rise::FirstPass) => '*',
                    Some(Rise::Streak { .. }) => '^',
                    None => '.',
                },
                _ => target.fail().map_or('.', |_| 'v'),
            })
            .collect();
        assert_eq!(seen, expected, "{script}");
    }

    #[test]
    fn flips_table() {
        let unchecked = || RiseFall::unchecked(3, 2);
        // Start-up: the first pass is enough, failures before it change nothing.
        check(unchecked(), "+", "*");
        check(unchecked(), "-----+", ".....*");
        // Only consecutive failures count.
        check(unchecked(), "+-+-+--", "*.....v");
        check(unchecked(), "+---", "*.v.");
        // Once it has been Up, coming back takes `rise` consecutive passes.
        check(unchecked(), "+--++-+++", "*.v.....^");
        check(unchecked(), "+--+++++", "*.v..^..");
        // A known start gets no first-pass shortcut.
        check(RiseFall::starting(false, 3, 2), "+++", "..^");
        check(RiseFall::starting(true, 3, 2), "-+--", "...v");
        check(RiseFall::starting(true, 3, 2), "-+--++-+++", "...v.....^");
        // One flips on every change; zero counts as one rather than "never".
        check(RiseFall::unchecked(1, 1), "+-+-", "*v^v");
        check(RiseFall::unchecked(0, 0), "+-+", "*v^");
        check(RiseFall::starting(false, 1, 1), "+-", "^v");
    }

    #[test]
    fn flips_carry_their_streaks_and_counts_go_on() {
        let mut t = RiseFall::unchecked(3, 2);
        assert_eq!(t.pass(), Some(Rise::FirstPass));
        assert!(t.is_up());
        assert_eq!(t.fail(), None);
        assert_eq!(t.fail(), Some(Fall { failures: 2 }));
        assert!(!t.is_up());
        assert_eq!(t.fail(), None, "further failures do not flip again");
        assert_eq!(t.failures(), 3);
        t.pass();
        t.pass();
        assert_eq!(t.pass(), Some(Rise::Streak { successes: 3 }));
        assert_eq!(t.pass(), None);
        assert_eq!(t.failures(), 0);
    }
}
