//! Per-node pools of idle, authenticated connections. A session checks a
//! connection out the first time it needs that node and returns it when it
//! ends; the return resets it (COM_RESET_CONNECTION) in a background task, so
//! the next client never sees the last one's variables, temp tables or
//! transaction. Connections are keyed by user, result-affecting flags,
//! collation and schema, so a checked-out connection needs no setup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::connection::{BackendConn, ConnKey, Credentials, NodeAddr};
use super::error::BackendError;
use crate::config::Config;
use crate::tls::NodeTlsTarget;

/// Idle connections older than this are closed rather than reused: a node
/// restart or a firewall may have silently dropped them.
const MAX_IDLE_AGE: Duration = Duration::from_secs(300);

struct NodePool {
    name: Arc<str>,
    address: String,
    /// TLS towards this node (`node_tls`), None in cleartext.
    tls: Option<NodeTlsTarget>,
    idle: Mutex<HashMap<ConnKey, Vec<(BackendConn, Instant)>>>,
}

pub struct Pools {
    nodes: Vec<NodePool>,
    max_idle: usize,
    connect_timeout: Duration,
    read_timeout: Duration,
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
                .map(|(name, n)| NodePool {
                    name: Arc::from(name.as_str()),
                    address: n.address.clone(),
                    tls: tls.next().flatten(),
                    idle: Mutex::new(HashMap::new()),
                })
                .collect(),
            max_idle: config.pool.max_idle,
            connect_timeout: config.pool.connect_timeout,
            read_timeout: config.pool.read_timeout,
        })
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
            if since.elapsed() < MAX_IDLE_AGE && conn.can_change_hands() {
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
        let to = NodeAddr {
            node,
            name: pool.name.clone(),
            address: &pool.address,
            tls: pool.tls.as_ref(),
        };
        BackendConn::connect(
            to,
            creds,
            key.clone(),
            self.connect_timeout,
            self.read_timeout,
        )
        .await
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
        if !conn.can_change_hands() {
            return;
        }
        let Some(pool) = self.nodes.get(conn.node) else {
            return;
        };
        conn.key.schema = conn.sync.schema.clone();
        let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(conn.key.clone()).or_default();
        if list.len() < self.max_idle {
            list.push((conn, Instant::now()));
        }
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
