//! Per-node pools of idle, authenticated connections. A session checks a
//! connection out the first time it needs that node and returns it when it
//! ends; the return resets it (COM_RESET_CONNECTION) in a background task, so
//! the next client never sees the last one's variables, temp tables or
//! transaction. Connections are keyed by user, result-affecting flags,
//! collation and schema, so a checked-out connection needs no setup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::connection::{BackendConn, ConnKey, Credentials, NodeAddr};
use super::error::BackendError;
use crate::config::Config;
use crate::tls::NodeTlsTarget;

struct NodePool {
    name: Arc<str>,
    address: String,
    /// TLS towards this node (`node_tls`), None in cleartext.
    tls: Option<NodeTlsTarget>,
    /// One permit per connection the proxy holds to the node, idle and
    /// resetting ones included: the node's own `max_connections` is never
    /// reached through the proxy, so the monitor (which has its own
    /// connection outside the pool) and operators always get in.
    slots: Arc<Semaphore>,
    limit: u32,
    /// Sessions waiting for a slot (multiplexing sessions give their
    /// connections back at once while any wait).
    waiting: AtomicUsize,
    /// Wakes waiting sessions when a connection goes idle: one of the
    /// waiter's kind is taken as it is, another kind is closed for its slot.
    returned: Notify,
    /// Sessions that waited in vain for a slot (1040), since start.
    timeouts: AtomicU64,
    idle: Mutex<HashMap<ConnKey, Vec<(BackendConn, Instant)>>>,
}

impl NodePool {
    /// Closes one idle connection, of any kind, freeing its slot.
    fn close_one_idle(&self) -> bool {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let victim = idle
            .iter_mut()
            .filter_map(|(k, list)| list.first().map(|(_, since)| (k.clone(), *since)))
            .min_by_key(|(_, since)| *since);
        let Some((key, _)) = victim else {
            return false;
        };
        if let Some(list) = idle.get_mut(&key) {
            if !list.is_empty() {
                list.remove(0);
            }
            if list.is_empty() {
                idle.remove(&key);
            }
        }
        true
    }
}

/// What a session waiting at a node's limit got.
enum Slot {
    /// A slot for a new connection.
    Free(OwnedSemaphorePermit),
    /// A connection of its kind, given back by another session.
    Idle(Box<BackendConn>),
}

/// What the pool keeps, and for how long (`[pool]`).
struct Limits {
    max_idle: usize,
    connect_timeout: Duration,
    read_timeout: Duration,
    checkout_timeout: Duration,
    max_lifetime: Duration,
    idle_timeout: Duration,
}

/// One node's connection slots, as stats show them.
#[derive(Debug, Clone, Copy)]
pub struct SlotCount {
    pub held: u32,
    pub limit: u32,
    pub timeouts: u64,
}

pub struct Pools {
    nodes: Vec<NodePool>,
    limits: Limits,
    /// When the pools were made; [`Pools::accounts_changed`] counts from it.
    created: Instant,
    /// Nanoseconds after `created` of the last account or privilege change
    /// seen through the proxy: connections logged in before it are not
    /// handed out again (a node fixes a connection's global privileges at
    /// its login, and a new client must get what a new login would).
    accounts_changed_at: AtomicU64,
}

impl Pools {
    /// One pool per configured node, in config order (the topology's NodeId),
    /// with each node's TLS from `crate::tls::node_targets` (same order).
    pub fn new(config: &Config, tls: Vec<Option<NodeTlsTarget>>) -> Arc<Pools> {
        let mut tls = tls.into_iter();
        Arc::new(Pools {
            nodes: config
                .nodes
                .iter()
                .map(|(name, n)| {
                    let limit = n.max_connections.unwrap_or(config.pool.max_per_node);
                    NodePool {
                        name: Arc::from(name.as_str()),
                        address: n.address.clone(),
                        tls: tls.next().flatten(),
                        slots: Arc::new(Semaphore::new(limit as usize)),
                        limit,
                        waiting: AtomicUsize::new(0),
                        returned: Notify::new(),
                        timeouts: AtomicU64::new(0),
                        idle: Mutex::new(HashMap::new()),
                    }
                })
                .collect(),
            limits: Limits {
                max_idle: config.pool.max_idle,
                connect_timeout: config.pool.connect_timeout,
                read_timeout: config.pool.read_timeout,
                checkout_timeout: config.pool.checkout_timeout,
                max_lifetime: config.pool.max_lifetime,
                idle_timeout: config.pool.idle_timeout,
            },
            created: Instant::now(),
            accounts_changed_at: AtomicU64::new(0),
        })
    }

    /// A GRANT, REVOKE or account statement succeeded: idle connections are
    /// closed, and those now held by sessions are closed when given back.
    pub fn accounts_changed(&self) {
        let now = u64::try_from(self.created.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.accounts_changed_at.fetch_max(now, Ordering::SeqCst);
        for pool in &self.nodes {
            pool.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    pub fn node_name(&self, node: usize) -> Arc<str> {
        self.nodes
            .get(node)
            .map_or_else(|| Arc::from("?"), |n| n.name.clone())
    }

    fn take_idle(&self, node: usize, key: &ConnKey) -> Option<BackendConn> {
        let pool = self.nodes.get(node)?;
        let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(key)?;
        while let Some((mut conn, since)) = list.pop() {
            // A node that closed an idle connection (or said something on
            // it, such as a shutdown error) makes it unusable.
            if self.reusable(&conn, since) && conn.can_change_hands() {
                return Some(conn);
            }
        }
        None
    }

    /// An idle connection matching `key`, or a new one.
    pub async fn checkout(
        &self,
        node: usize,
        key: &ConnKey,
        creds: &Credentials,
    ) -> Result<BackendConn, BackendError> {
        if let Some(conn) = self.take_idle(node, key) {
            return Ok(conn);
        }
        let pool = self
            .nodes
            .get(node)
            .ok_or(BackendError::Protocol("unknown node"))?;
        let slot = match self.slot(pool, node, key).await? {
            Slot::Free(permit) => permit,
            Slot::Idle(conn) => return Ok(*conn),
        };
        let to = NodeAddr {
            node,
            name: pool.name.clone(),
            address: &pool.address,
            tls: pool.tls.as_ref(),
        };
        let mut conn = BackendConn::connect(
            to,
            creds,
            key.clone(),
            self.limits.connect_timeout,
            self.limits.read_timeout,
        )
        .await?;
        conn.slot = Some(slot);
        Ok(conn)
    }

    /// A connection slot on the node: a free one, one an idle connection of
    /// another kind gives up, or one freed within `pool.checkout_timeout`;
    /// or, while waiting, a connection of this kind given back idle.
    async fn slot(
        &self,
        pool: &NodePool,
        node: usize,
        key: &ConnKey,
    ) -> Result<Slot, BackendError> {
        if let Some(permit) = self.free_slot(pool) {
            return Ok(Slot::Free(permit));
        }
        pool.waiting.fetch_add(1, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + self.limits.checkout_timeout;
        let got = loop {
            let returned = pool.returned.notified();
            tokio::pin!(returned);
            // Registered before looking, so a return in between still wakes us.
            returned.as_mut().enable();
            if let Some(conn) = self.take_idle(node, key) {
                break Some(Slot::Idle(Box::new(conn)));
            }
            if let Some(permit) = self.free_slot(pool) {
                break Some(Slot::Free(permit));
            }
            tokio::select! {
                p = Arc::clone(&pool.slots).acquire_owned() => break p.ok().map(Slot::Free),
                () = &mut returned => {}
                () = tokio::time::sleep_until(deadline) => break None,
            }
        };
        pool.waiting.fetch_sub(1, Ordering::SeqCst);
        match got {
            Some(slot) => Ok(slot),
            None => {
                pool.timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(node = %pool.name, limit = pool.limit, "node connection limit reached");
                Err(BackendError::PoolFull {
                    limit: pool.limit,
                    waited: self.limits.checkout_timeout,
                })
            }
        }
    }

    /// A free slot, or one an idle connection gives up.
    fn free_slot(&self, pool: &NodePool) -> Option<OwnedSemaphorePermit> {
        loop {
            if let Ok(permit) = Arc::clone(&pool.slots).try_acquire_owned() {
                return Some(permit);
            }
            if !pool.close_one_idle() {
                return None;
            }
        }
    }

    /// Young enough, and idle briefly enough, to be handed out again.
    fn reusable(&self, conn: &BackendConn, idle_since: Instant) -> bool {
        let born = conn.born.saturating_duration_since(self.created).as_nanos();
        idle_since.elapsed() < self.limits.idle_timeout
            && conn.born.elapsed() < self.limits.max_lifetime
            && match self.accounts_changed_at.load(Ordering::SeqCst) {
                0 => true,
                at => born > u128::from(at),
            }
    }

    /// Takes a connection back. Broken ones are dropped (closing the socket);
    /// used ones are reset first, off the client's path.
    pub fn checkin(self: &Arc<Self>, mut conn: BackendConn) {
        if !conn.can_change_hands() {
            // Broken, or returned mid-reply (its client went away): what is
            // still in flight on it belongs to nobody else. Closed.
            tracing::debug!(node = %conn.node_name, "connection not reusable; closed");
            return;
        }
        if !conn.used {
            self.put(conn);
            return;
        }
        let pools = Arc::clone(self);
        let spawned = tokio::runtime::Handle::try_current().map(|h| {
            h.spawn(async move {
                match conn.reset().await {
                    Ok(()) => pools.put(conn),
                    Err(e) => tracing::debug!(node = %conn.node_name, error = %e, "reset failed; connection dropped"),
                }
            })
        });
        if spawned.is_err() {
            tracing::debug!("no runtime to reset a connection; dropped");
        }
    }

    fn put(&self, mut conn: BackendConn) {
        debug_assert!(
            conn.reply_read(),
            "a connection with an unread reply must never reach the pool"
        );
        if !conn.can_change_hands() || !self.reusable(&conn, Instant::now()) {
            return;
        }
        let Some(pool) = self.nodes.get(conn.node) else {
            return;
        };
        conn.key.schema = conn.sync.schema.clone();
        {
            let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            let list = idle.entry(conn.key.clone()).or_default();
            if list.len() < self.limits.max_idle {
                list.push((conn, Instant::now()));
            }
        }
        if pool.waiting.load(Ordering::SeqCst) > 0 {
            // A waiter of this kind takes it; another kind closes it for
            // its slot.
            pool.returned.notify_waiters();
        }
    }

    /// Closes idle connections past `pool.idle_timeout` or
    /// `pool.max_lifetime`, so a quiet proxy does not sit on node slots.
    fn reap(&self) {
        for pool in &self.nodes {
            let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            for list in idle.values_mut() {
                list.retain(|(conn, since)| self.reusable(conn, *since));
            }
            idle.retain(|_, list| !list.is_empty());
        }
    }

    /// Reaps idle connections in the background until the pools are gone.
    pub fn spawn_reaper(self: &Arc<Self>) {
        let every =
            (self.limits.idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
        let pools: Weak<Pools> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match pools.upgrade() {
                    Some(p) => p.reap(),
                    None => return,
                }
            }
        });
    }

    /// Sessions wait for a connection slot on `node`.
    pub fn waiting(&self, node: usize) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|n| n.waiting.load(Ordering::SeqCst) > 0)
    }

    /// Per node: the connections the proxy holds (idle ones included),
    /// its limit, and how many sessions gave up waiting at it (for stats).
    pub fn slot_counts(&self) -> Vec<SlotCount> {
        self.nodes
            .iter()
            .map(|n| {
                let free = u32::try_from(n.slots.available_permits()).unwrap_or(u32::MAX);
                SlotCount {
                    held: n.limit.saturating_sub(free),
                    limit: n.limit,
                    timeouts: n.timeouts.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Closes every idle connection to a node (it went down).
    pub fn flush_node(&self, node: usize) {
        if let Some(pool) = self.nodes.get(node) {
            pool.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    /// Idle connections per node (for stats).
    pub fn idle_counts(&self) -> Vec<(Arc<str>, usize)> {
        self.nodes
            .iter()
            .map(|n| {
                let idle = n.idle.lock().unwrap_or_else(|p| p.into_inner());
                (n.name.clone(), idle.values().map(Vec::len).sum())
            })
            .collect()
    }
}
