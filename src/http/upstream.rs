//! The set of workers as the balancer sees them: each [`Backend`] carries its
//! admin state (ready / drain / maint, set by an operator), its health (set
//! only by `health.rs`), its in-flight count, its counters and one pool of
//! keep-alive connections per event loop (`shard.rs`). [`Upstreams::acquire`] picks a worker through the
//! configured [`Selector`](super::select::Selector), enforces the per-worker
//! `maxconn`, and queues (bounded, with a timeout) when every worker is full.
//! The returned [`Lease`] gives the slot back when dropped.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::pool::Pool;
use super::select::{selector, Candidate, Selector};
use crate::config::HttpConfig;

/// An operator's decision about a worker; independent of health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WorkerAdminState {
    /// In rotation when healthy.
    Ready = 0,
    /// No new requests; in-flight ones finish. Health checks go on.
    Drain = 1,
    /// Out of rotation and not checked (maintenance).
    Maint = 2,
}

impl WorkerAdminState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => WorkerAdminState::Drain,
            2 => WorkerAdminState::Maint,
            _ => WorkerAdminState::Ready,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ready" => Some(WorkerAdminState::Ready),
            "drain" => Some(WorkerAdminState::Drain),
            "maint" => Some(WorkerAdminState::Maint),
            _ => None,
        }
    }
}

impl fmt::Display for WorkerAdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkerAdminState::Ready => "READY",
            WorkerAdminState::Drain => "DRAIN",
            WorkerAdminState::Maint => "MAINT",
        })
    }
}

/// Counters of one worker; the stats page, JSON and `/metrics` read these.
#[derive(Debug, Default)]
pub struct BackendStats {
    pub requests: AtomicU64,
    pub status_1xx: AtomicU64,
    pub status_2xx: AtomicU64,
    pub status_3xx: AtomicU64,
    pub status_4xx: AtomicU64,
    pub status_5xx: AtomicU64,
    /// Connect failures (refused, timeout).
    pub connect_errors: AtomicU64,
    /// Response errors: invalid response, connection lost mid-request.
    pub response_errors: AtomicU64,
    /// Server timeouts (504s the balancer made).
    pub timeouts: AtomicU64,
    /// Requests moved from this worker to another.
    pub retries: AtomicU64,
    /// Sum of response-head latencies in microseconds (for the mean).
    pub latency_us_total: AtomicU64,
}

impl BackendStats {
    pub fn record_status(&self, status: u16) {
        let c = match status {
            100..=199 => &self.status_1xx,
            200..=299 => &self.status_2xx,
            300..=399 => &self.status_3xx,
            400..=499 => &self.status_4xx,
            _ => &self.status_5xx,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn errors(&self) -> u64 {
        self.connect_errors.load(Ordering::Relaxed)
            + self.response_errors.load(Ordering::Relaxed)
            + self.timeouts.load(Ordering::Relaxed)
    }
}

/// Result of the latest health check, for the stats page.
#[derive(Debug, Clone, Default)]
pub struct LastCheck {
    pub at: Option<SystemTime>,
    /// `L7OK 200`, `L4CON connection refused`, `L7STS 500`, ... as HAProxy says.
    pub result: String,
    pub latency: Duration,
}

/// One worker.
pub struct Backend {
    pub name: String,
    pub address: String,
    pub weight: u32,
    /// 0 = unlimited.
    pub maxconn: usize,
    admin: AtomicU8,
    healthy: AtomicBool,
    active: AtomicUsize,
    pub stats: BackendStats,
    pub last_check: Mutex<LastCheck>,
    /// One pool per event loop: a connection is only used by the loop that
    /// opened it (its hyper task runs there).
    pools: Box<[Pool]>,
}

impl Backend {
    pub fn admin_state(&self) -> WorkerAdminState {
        WorkerAdminState::from_u8(self.admin.load(Ordering::Acquire))
    }

    pub fn set_admin_state(&self, s: WorkerAdminState) {
        self.admin.store(s as u8, Ordering::Release);
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Only the health checker calls this.
    pub(super) fn set_healthy(&self, up: bool) {
        self.healthy.store(up, Ordering::Release);
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// The keep-alive pool of event loop `shard`.
    pub(super) fn pool(&self, shard: usize) -> &Pool {
        &self.pools[shard % self.pools.len()]
    }

    /// Idle keep-alive connections to this worker, over all event loops.
    pub fn idle_connections(&self) -> usize {
        self.pools.iter().map(Pool::idle_count).sum()
    }

    /// May take new requests.
    pub fn is_eligible(&self) -> bool {
        self.weight > 0 && self.admin_state() == WorkerAdminState::Ready && self.is_healthy()
    }

    /// `UP`, `DOWN`, `DRAIN`, `MAINT`: what the stats page shows.
    pub fn state_label(&self) -> &'static str {
        match (self.admin_state(), self.is_healthy()) {
            (WorkerAdminState::Maint, _) => "MAINT",
            (WorkerAdminState::Drain, true) => "DRAIN",
            (WorkerAdminState::Drain, false) => "DRAIN (DOWN)",
            (WorkerAdminState::Ready, true) => "UP",
            (WorkerAdminState::Ready, false) => "DOWN",
        }
    }

    fn try_take_slot(&self) -> bool {
        self.active
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| {
                (self.maxconn == 0 || a < self.maxconn).then_some(a + 1)
            })
            .is_ok()
    }
}

/// Why no worker could be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PickError {
    #[error("no healthy worker")]
    NoneHealthy,
    #[error("every worker is at maxconn and the queue is full")]
    QueueFull,
    #[error("waited too long in the queue for a worker")]
    QueueTimeout,
}

/// All workers, the selection algorithm and the wait queue.
pub struct Upstreams {
    backends: Vec<Arc<Backend>>,
    selector: Box<dyn Selector>,
    queue: Arc<WaitQueue>,
    max_queue: usize,
    queue_timeout: Duration,
}

impl Upstreams {
    /// `shards` = event loops, each with its own pools (at least 1).
    pub fn new(cfg: &HttpConfig, shards: usize) -> Self {
        let shards = shards.max(1);
        // `pool_max_idle` is per worker: split it over the event loops.
        let max_idle = cfg.pool_max_idle.div_ceil(shards);
        let backends: Vec<Arc<Backend>> = cfg
            .backends
            .iter()
            .map(|b| {
                Arc::new(Backend {
                    name: b.name.clone(),
                    address: b.address.clone(),
                    weight: b.weight,
                    maxconn: b.maxconn,
                    admin: AtomicU8::new(WorkerAdminState::Ready as u8),
                    // Start UP like HAProxy: the first failed checks take it down.
                    healthy: AtomicBool::new(true),
                    active: AtomicUsize::new(0),
                    stats: BackendStats::default(),
                    last_check: Mutex::new(LastCheck::default()),
                    pools: (0..shards)
                        .map(|_| Pool::new(max_idle, cfg.timeouts.upstream_idle))
                        .collect(),
                })
            })
            .collect();
        let weights: Vec<u32> = backends.iter().map(|b| b.weight).collect();
        Upstreams {
            backends,
            selector: selector(cfg.balance, &weights),
            queue: Arc::new(WaitQueue::default()),
            max_queue: cfg.max_queue,
            queue_timeout: cfg.timeouts.queue,
        }
    }

    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<Backend>> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// Requests now waiting for a slot.
    pub fn queued(&self) -> usize {
        self.queue.waiting.load(Ordering::Relaxed)
    }

    /// Picks a worker for one attempt. `sticky` names a preferred worker
    /// (from the cookie); `tried` lists workers that already failed this
    /// request, avoided while any other is eligible.
    pub async fn acquire(&self, sticky: Option<&str>, tried: &[usize]) -> Result<Lease, PickError> {
        // The usual case: a free slot at once, no queue bookkeeping.
        match self.try_pick(sticky, tried) {
            Pick::Got(lease) => return Ok(lease),
            Pick::NoneEligible => return Err(PickError::NoneHealthy),
            Pick::AllFull => {}
        }
        // Counted as waiting *before* looking again, so that a lease dropped
        // meanwhile sees the waiter and wakes it (see `Lease::drop`).
        let _queued = self.enter_queue()?;
        let deadline = Instant::now() + self.queue_timeout;
        loop {
            let notified = self.queue.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_pick(sticky, tried) {
                Pick::Got(lease) => return Ok(lease),
                Pick::NoneEligible => return Err(PickError::NoneHealthy),
                Pick::AllFull => {}
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(PickError::QueueTimeout);
            }
        }
    }

    fn enter_queue(&self) -> Result<QueueGuard<'_>, PickError> {
        self.queue
            .waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                (q < self.max_queue).then_some(q + 1)
            })
            .map_err(|_| PickError::QueueFull)?;
        Ok(QueueGuard(&self.queue.waiting))
    }

    fn try_pick(&self, sticky: Option<&str>, tried: &[usize]) -> Pick {
        if sticky.is_none() && tried.is_empty() {
            // Round-robin's turn, when that worker can take it; otherwise
            // (down, draining, full) the full ordering below decides.
            if let Some(idx) = self.selector.first() {
                if let Some(b) = self.backends.get(idx) {
                    if b.is_eligible() && b.try_take_slot() {
                        return Pick::Got(self.lease(idx));
                    }
                }
            }
        }
        // Candidates live on the stack for the usual handful of workers.
        let mut stack = [Candidate::default(); STACK_CANDIDATES];
        let mut heap = Vec::new();
        let cands: &mut [Candidate] = if self.backends.len() <= STACK_CANDIDATES {
            let n = self.fill_candidates(tried, &mut stack);
            &mut stack[..n]
        } else {
            heap.resize(self.backends.len(), Candidate::default());
            let n = self.fill_candidates(tried, &mut heap);
            &mut heap[..n]
        };
        if cands.is_empty() {
            return Pick::NoneEligible;
        }
        let sticky_idx =
            sticky.and_then(|s| cands.iter().position(|c| self.backends[c.idx].name == s));
        match sticky_idx {
            Some(p) => cands.swap(0, p),
            None => self.selector.order(cands),
        }
        for c in cands.iter() {
            let b = &self.backends[c.idx];
            if b.try_take_slot() {
                return Pick::Got(self.lease(c.idx));
            }
        }
        Pick::AllFull
    }

    /// The lease of a slot just taken on worker `idx`.
    fn lease(&self, idx: usize) -> Lease {
        Lease {
            idx,
            backend: Arc::clone(&self.backends[idx]),
            queue: Arc::clone(&self.queue),
        }
    }

    /// Writes the eligible workers into `out` (as long as the worker list),
    /// leaving out those in `tried` unless that leaves none; returns how many.
    fn fill_candidates(&self, tried: &[usize], out: &mut [Candidate]) -> usize {
        let mut fill = |avoid: bool| {
            let mut n = 0;
            for (idx, b) in self.backends.iter().enumerate() {
                if b.is_eligible() && !(avoid && tried.contains(&idx)) {
                    out[n] = Candidate {
                        idx,
                        weight: b.weight,
                        active: b.active(),
                    };
                    n += 1;
                }
            }
            n
        };
        match fill(true) {
            0 if !tried.is_empty() => fill(false),
            n => n,
        }
    }
}

/// Up to this many workers, picking one allocates nothing.
const STACK_CANDIDATES: usize = 16;

enum Pick {
    Got(Lease),
    NoneEligible,
    AllFull,
}

/// Requests waiting for a slot, and the wake-up they wait on.
#[derive(Default)]
struct WaitQueue {
    waiting: AtomicUsize,
    released: Notify,
}

struct QueueGuard<'a>(&'a AtomicUsize);

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One request's slot on a worker; dropping it frees the slot and wakes
/// the queue.
pub struct Lease {
    pub idx: usize,
    pub backend: Arc<Backend>,
    queue: Arc<WaitQueue>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        // SeqCst on both sides: either a waiter counted itself before this
        // load and gets woken, or its next look at `active` (after counting
        // itself) sees the slot freed here. The Notify's lock is only taken
        // when someone waits.
        self.backend.active.fetch_sub(1, Ordering::SeqCst);
        if self.queue.waiting.load(Ordering::SeqCst) > 0 {
            self.queue.released.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Toml};

    fn ups(extra: &str) -> Upstreams {
        let cfg: HttpConfig = figment::Figment::from(Toml::string(&format!(
            r#"listen = "127.0.0.1:0"
            max_queue = 1
            {extra}
            [timeouts]
            queue = "50ms"
            [[backends]]
            name = "a"
            address = "127.0.0.1:1"
            maxconn = 1
            [[backends]]
            name = "b"
            address = "127.0.0.1:2"
            maxconn = 1
            "#
        )))
        .extract()
        .unwrap();
        Upstreams::new(&cfg, 1)
    }

    #[tokio::test]
    async fn maxconn_then_queue_then_full() {
        let u = ups("");
        let l1 = u.acquire(None, &[]).await.unwrap();
        let l2 = u.acquire(None, &[]).await.unwrap();
        assert_ne!(l1.idx, l2.idx);
        // Both full: one may queue; it gets the slot freed by l1.
        let waiter = async { u.acquire(None, &[]).await };
        let (got, full) = tokio::join!(waiter, async {
            tokio::task::yield_now().await;
            let full = u.acquire(None, &[]).await.err();
            drop(l1);
            full
        });
        assert_eq!(full, Some(PickError::QueueFull));
        assert_eq!(got.unwrap().backend.active(), 1);
        drop(l2);
        assert_eq!(u.queued(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn queue_times_out() {
        let u = ups("");
        let _a = u.acquire(None, &[]).await.unwrap();
        let _b = u.acquire(None, &[]).await.unwrap();
        assert_eq!(
            u.acquire(None, &[]).await.err(),
            Some(PickError::QueueTimeout)
        );
    }

    #[tokio::test]
    async fn admin_and_health_gate_and_sticky_prefers() {
        let u = ups("");
        u.backends()[0].set_admin_state(WorkerAdminState::Drain);
        for _ in 0..4 {
            assert_eq!(u.acquire(None, &[]).await.unwrap().backend.name, "b");
        }
        assert_eq!(u.acquire(Some("a"), &[]).await.unwrap().backend.name, "b");
        u.backends()[0].set_admin_state(WorkerAdminState::Ready);
        assert_eq!(u.acquire(Some("a"), &[]).await.unwrap().backend.name, "a");
        assert_eq!(u.acquire(None, &[0]).await.unwrap().backend.name, "b");
        u.backends()[0].set_healthy(false);
        u.backends()[1].set_healthy(false);
        assert_eq!(
            u.acquire(None, &[]).await.err(),
            Some(PickError::NoneHealthy)
        );
    }
}
