//! Statements counted by route (target and reason), for "statements per
//! second by route" on the dashboard. One relaxed atomic add per statement;
//! the label names are remembered the first time a slot is used, so the
//! router's enums need no list of their variants here.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

use crate::router::{Route, Target};

/// Slots per target: more than the reasons `Why` has (29 today). A reason
/// past the last slot is counted in the last one rather than lost.
const WHY_SLOTS: usize = 48;

/// Two targets (master, read) × [`WHY_SLOTS`].
const SLOTS: usize = 2 * WHY_SLOTS;

#[derive(Debug)]
pub struct RouteCounters {
    counts: [AtomicU64; SLOTS],
    /// `(target, why)` of each slot that was used.
    labels: [OnceLock<(&'static str, &'static str)>; SLOTS],
}

impl Default for RouteCounters {
    fn default() -> Self {
        RouteCounters {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            labels: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

impl RouteCounters {
    pub fn record(&self, route: Route) {
        let (target, base) = match route.target {
            Target::Master => ("master", 0),
            Target::Read => ("read", WHY_SLOTS),
        };
        let slot = base + (route.why as usize).min(WHY_SLOTS - 1);
        self.labels[slot].get_or_init(|| (target, route.why.as_str()));
        self.counts[slot].fetch_add(1, Relaxed);
    }

    /// `(target, why, statements)` for every route taken so far.
    pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
        self.labels
            .iter()
            .zip(&self.counts)
            .filter_map(|(l, c)| l.get().map(|(t, w)| (*t, *w, c.load(Relaxed))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::Why;

    #[test]
    fn counts_by_target_and_reason() {
        let r = RouteCounters::default();
        let route = |target, why| Route { target, why };
        r.record(route(Target::Read, Why::Read));
        r.record(route(Target::Read, Why::Read));
        r.record(route(Target::Master, Why::Write));
        let mut s = r.snapshot();
        s.sort();
        assert_eq!(s, vec![("master", "write", 1), ("read", "read", 2)]);
    }
}
