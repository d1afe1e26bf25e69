//! Every counter the proxy keeps, in one place: plain atomics (and a sharded,
//! bounded map for statement digests) that the session bumps on its path and
//! that admin `SHOW STATS` / `SHOW BACKENDS` / `SHOW QUERY DIGEST` and the
//! Prometheus endpoint (`metrics/export.rs`) read. Gauges that another module
//! already owns (pool sizes, role, lag) are not copied here: the readers take
//! them from the topology snapshot and the pools when asked.
//!
//! Cost on the statement path: a handful of relaxed atomic adds per statement
//! on the node's counters, plus one uncontended lock of one digest shard.

pub mod routes;

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::backend::RelayOutcome;
use crate::router::Route;
use crate::topology::NodeId;

/// Upper bounds of the latency histogram buckets, in microseconds: 100 µs to
/// 10 s, roughly ×2.5 per step, which separates a point select (~100 µs), a
/// PrestaShop listing (ms) and a stuck statement (s).
pub const LATENCY_BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Distinct digests kept; later new ones are counted under [`OTHER_DIGEST`].
/// A shop has a few hundred statement shapes; a flood of unique texts (no
/// placeholders, generated SQL) must not grow memory without bound.
pub const MAX_DIGESTS: usize = 4096;

/// The digest row that absorbs statements once [`MAX_DIGESTS`] is reached.
pub const OTHER_DIGEST: &str = "(other digests)";

/// Longest digest text kept; longer ones are cut (statements of many KB).
const MAX_DIGEST_TEXT: usize = 1024;

const DIGEST_SHARDS: usize = 16;

/// A latency histogram with fixed buckets, lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts; the last slot is "above every bound" (+Inf).
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let slot = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[slot].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    pub fn sum_us(&self) -> u64 {
        self.sum_us.load(Relaxed)
    }

    /// Counts per bucket (not cumulative) with each bucket's upper bound in
    /// seconds; the last bound is `f64::MAX`, which prometheus-client writes
    /// as `+Inf`. Its encoder makes the counts cumulative itself.
    pub fn buckets_seconds(&self) -> Vec<(f64, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let bound = LATENCY_BUCKETS_US
                    .get(i)
                    .map_or(f64::MAX, |&us| us as f64 / 1e6);
                (bound, b.load(Relaxed))
            })
            .collect()
    }
}

/// What one node did for clients.
#[derive(Debug, Default)]
pub struct NodeCounters {
    /// Commands relayed to the node (text and prepared).
    pub queries: AtomicU64,
    /// Replies that were an ERR packet from the node.
    pub errors: AtomicU64,
    /// Commands whose node connection failed (lost, or could not be opened).
    pub failures: AtomicU64,
    pub latency: Histogram,
}

/// The proxy's counters. One per process, shared through `ProxyContext`.
#[derive(Debug)]
pub struct Metrics {
    nodes: Vec<NodeCounters>,
    /// Client logins refused (bad password, malformed handshake).
    pub login_failures: AtomicU64,
    /// Clients refused with 1040 (max_connections).
    pub sessions_refused: AtomicU64,
    /// Client logins that completed over TLS.
    pub logins_tls: AtomicU64,
    /// Client logins that completed in cleartext.
    pub logins_cleartext: AtomicU64,
    /// Master changes by automatic failover / admin `FAILOVER TO`.
    pub failovers: AtomicU64,
    /// Planned master changes (`SWITCHOVER TO`).
    pub switchovers: AtomicU64,
    /// Returning former masters whose unacknowledged transactions were undone.
    pub rewinds: AtomicU64,
    /// Commands run on the admin port (including refused ones).
    pub admin_commands: AtomicU64,
    pub digests: DigestStats,
    /// Statements by route (target and reason).
    pub routes: routes::RouteCounters,
    pub started: Instant,
}

impl Metrics {
    /// Counters for `nodes` nodes (NodeIds `0..nodes`, fixed for the process).
    pub fn new(nodes: usize) -> Metrics {
        Metrics {
            nodes: (0..nodes).map(|_| NodeCounters::default()).collect(),
            login_failures: AtomicU64::new(0),
            sessions_refused: AtomicU64::new(0),
            logins_tls: AtomicU64::new(0),
            logins_cleartext: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            switchovers: AtomicU64::new(0),
            rewinds: AtomicU64::new(0),
            admin_commands: AtomicU64::new(0),
            digests: DigestStats::default(),
            routes: routes::RouteCounters::default(),
            started: Instant::now(),
        }
    }

    /// A node's counters; `None` for an id outside the config.
    pub fn node(&self, id: NodeId) -> Option<&NodeCounters> {
        self.nodes.get(id)
    }

    /// One command answered by `node` after `took`; `error` when the
    /// answer was an ERR packet.
    pub fn node_reply(&self, node: NodeId, took: Duration, error: bool) {
        if let Some(n) = self.nodes.get(node) {
            n.queries.fetch_add(1, Relaxed);
            n.latency.observe(took);
            if error {
                n.errors.fetch_add(1, Relaxed);
            }
        }
    }

    /// One command that `node` could not answer (connection lost or refused).
    pub fn node_failure(&self, node: NodeId) {
        if let Some(n) = self.nodes.get(node) {
            n.failures.fetch_add(1, Relaxed);
        }
    }

    /// One client statement done: its digest's totals. `on_master`: the
    /// node that answered was the master.
    pub fn statement(
        &self,
        digest: &str,
        route: Route,
        on_master: bool,
        took: Duration,
        out: &RelayOutcome,
    ) {
        self.routes.record(route);
        self.digests.record(DigestRun {
            digest,
            route,
            on_master,
            took,
            rows: out.rows,
            error: out.error.is_some(),
        });
    }

    /// Totals over every node: (queries, errors, failures, latency sum µs).
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        self.nodes.iter().fold((0, 0, 0, 0), |t, n| {
            (
                t.0 + n.queries.load(Relaxed),
                t.1 + n.errors.load(Relaxed),
                t.2 + n.failures.load(Relaxed),
                t.3 + n.latency.sum_us(),
            )
        })
    }
}

/// One normalised statement's totals.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestEntry {
    pub digest: String,
    pub count: u64,
    pub errors: u64,
    pub total_us: u64,
    pub max_us: u64,
    /// Rows sent plus rows affected.
    pub rows: u64,
    /// Runs that went to the master / to another node.
    pub on_master: u64,
    pub on_replica: u64,
    /// The route of the last run (target and reason).
    pub last_route: Route,
}

/// The text a digest is kept under: at most [`MAX_DIGEST_TEXT`] bytes, cut
/// on a character boundary. Whoever joins other per-digest figures to these
/// totals (the cache's hits) keys them the same way.
pub fn digest_key(digest: &str) -> &str {
    if digest.len() <= MAX_DIGEST_TEXT {
        return digest;
    }
    let mut cut = MAX_DIGEST_TEXT;
    while !digest.is_char_boundary(cut) {
        cut -= 1;
    }
    &digest[..cut]
}

/// Per-digest totals in a bounded map, sharded so sessions seldom meet on a lock.
#[derive(Debug, Default)]
pub struct DigestStats {
    shards: [Mutex<HashMap<Box<str>, DigestEntry>>; DIGEST_SHARDS],
    /// Entries over all shards (only grows until [`MAX_DIGESTS`]).
    len: AtomicU64,
}

/// One statement run, as [`DigestStats::record`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct DigestRun<'a> {
    pub digest: &'a str,
    pub route: Route,
    pub on_master: bool,
    pub took: Duration,
    pub rows: u64,
    pub error: bool,
}

impl DigestStats {
    pub fn record(&self, run: DigestRun<'_>) {
        let mut digest = digest_key(run.digest);
        let mut shard = self.shard(digest);
        if !shard.contains_key(digest) && self.len.load(Relaxed) >= MAX_DIGESTS as u64 {
            drop(shard);
            digest = OTHER_DIGEST;
            shard = self.shard(digest);
        }
        if !shard.contains_key(digest) {
            self.len.fetch_add(1, Relaxed);
            let fresh = DigestEntry {
                digest: digest.to_string(),
                count: 0,
                errors: 0,
                total_us: 0,
                max_us: 0,
                rows: 0,
                on_master: 0,
                on_replica: 0,
                last_route: run.route,
            };
            shard.insert(Box::from(digest), fresh);
        }
        let Some(e) = shard.get_mut(digest) else {
            return;
        };
        let us = u64::try_from(run.took.as_micros()).unwrap_or(u64::MAX);
        e.count += 1;
        e.errors += u64::from(run.error);
        e.total_us = e.total_us.saturating_add(us);
        e.max_us = e.max_us.max(us);
        e.rows = e.rows.saturating_add(run.rows);
        if run.on_master {
            e.on_master += 1;
        } else {
            e.on_replica += 1;
        }
        e.last_route = run.route;
    }

    /// A copy of every entry, most total time first.
    pub fn top(&self, limit: usize) -> Vec<DigestEntry> {
        let mut all: Vec<DigestEntry> = self
            .shards
            .iter()
            .flat_map(|s| {
                let s = s.lock().unwrap_or_else(|p| p.into_inner());
                s.values().cloned().collect::<Vec<_>>()
            })
            .collect();
        all.sort_by(|a, b| {
            b.total_us
                .cmp(&a.total_us)
                .then_with(|| a.digest.cmp(&b.digest))
        });
        all.truncate(limit);
        all
    }

    /// Distinct digests held.
    pub fn len(&self) -> usize {
        self.len.load(Relaxed) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, digest: &str) -> std::sync::MutexGuard<'_, HashMap<Box<str>, DigestEntry>> {
        let mut h = DefaultHasher::new();
        digest.hash(&mut h);
        let i = (h.finish() as usize) % DIGEST_SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::{Target, Why};

    fn run(digest: &str, us: u64, on_master: bool) -> DigestRun<'_> {
        DigestRun {
            digest,
            route: Route {
                target: if on_master {
                    Target::Master
                } else {
                    Target::Read
                },
                why: if on_master { Why::Write } else { Why::Read },
            },
            on_master,
            took: Duration::from_micros(us),
            rows: 2,
            error: false,
        }
    }

    #[test]
    fn histogram_buckets_are_inclusive_and_add_up() {
        let h = Histogram::default();
        for us in [50, 100, 101, 20_000_000] {
            h.observe(Duration::from_micros(us));
        }
        let b = h.buckets_seconds();
        assert_eq!(b.len(), LATENCY_BUCKETS_US.len() + 1);
        assert_eq!(b[0], (0.0001, 2), "50 and 100 µs are ≤ 100 µs");
        assert_eq!(b[1], (0.00025, 1));
        assert_eq!(b[LATENCY_BUCKETS_US.len() - 1], (10.0, 0));
        assert_eq!(
            b[LATENCY_BUCKETS_US.len()],
            (f64::MAX, 1),
            "20 s is above every bound"
        );
        assert_eq!(b.iter().map(|x| x.1).sum::<u64>(), h.count());
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum_us(), 50 + 100 + 101 + 20_000_000);
    }

    #[test]
    fn node_counters_and_totals() {
        let m = Metrics::new(2);
        m.node_reply(0, Duration::from_micros(10), false);
        m.node_reply(1, Duration::from_micros(30), true);
        m.node_failure(1);
        m.node_reply(7, Duration::from_micros(30), true); // unknown id: ignored
        assert_eq!(m.totals(), (2, 1, 1, 40));
        assert_eq!(m.node(1).map(|n| n.errors.load(Relaxed)), Some(1));
    }

    #[test]
    fn digests_add_up_and_sort_by_total_time() {
        let d = DigestStats::default();
        d.record(run("SELECT ?", 10, false));
        d.record(run("SELECT ?", 30, true));
        d.record(run("UPDATE t SET a = ?", 100, true));
        let top = d.top(10);
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].digest, "UPDATE t SET a = ?");
        let s = &top[1];
        assert_eq!((s.count, s.total_us, s.max_us, s.rows), (2, 40, 30, 4));
        assert_eq!((s.on_master, s.on_replica), (1, 1));
        assert_eq!(d.top(1).len(), 1);
    }

    #[test]
    fn digest_map_is_bounded() {
        let d = DigestStats::default();
        for i in 0..MAX_DIGESTS + 50 {
            d.record(run(&format!("SELECT {i}"), 1, true));
        }
        assert_eq!(d.len(), MAX_DIGESTS + 1, "the bound plus the overflow row");
        let other = d.top(usize::MAX);
        let other = other.iter().find(|e| e.digest == OTHER_DIGEST);
        assert_eq!(other.map(|e| e.count), Some(50));
        let long = "x".repeat(5000);
        d.record(run(&long, 1, true)); // cut, then counted as other
        assert_eq!(d.len(), MAX_DIGESTS + 1);
    }
}
