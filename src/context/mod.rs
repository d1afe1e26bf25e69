//! What every client session shares, read-mostly: the config, the topology,
//! the node pools, the users, the result cache, the counters and the live
//! sessions. Built once by the server; nothing here is locked per statement.
//!
//! * `users`: [`Users`], who may log in and the credentials used on nodes.
//! * `sessions`: [`SessionRegistry`], the live sessions (admin SHOW SESSIONS).

pub mod sessions;
pub mod users;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::backend::Pools;
use crate::cache::QueryCache;
use crate::config::Config;
use crate::coordination::Coordinator;
use crate::metrics::Metrics;
use crate::topology::{FailoverHandle, Topology};
pub use sessions::{KillTarget, SessionHandle, SessionRegistry, SessionView};
pub use users::Users;

/// Version announced until a node's own greeting is known.
pub const FALLBACK_VERSION: &[u8] = b"5.5.5-10.11.0-MariaDB-sqlproxy";

pub struct ProxyContext {
    pub config: Arc<Config>,
    pub topology: Arc<Topology>,
    pub pools: Arc<Pools>,
    pub users: Users,
    /// Failed logins on the MySQL port, per address and user.
    pub login_guard: crate::frontend::login_guard::LoginGuard,
    /// `mysql.max_command_memory`: large commands buffered at once.
    pub command_memory: crate::command_memory::CommandMemory,
    /// The master's version string, relayed in our greeting.
    pub server_version: ArcSwap<Vec<u8>>,
    /// Capabilities offered to clients.
    pub server_caps: u32,
    /// Switchover requests and the gate that holds writes meanwhile.
    pub failover: FailoverHandle,
    /// Counters that admin SHOW and /metrics read.
    pub metrics: Arc<Metrics>,
    /// The live client sessions.
    pub sessions: Arc<SessionRegistry>,
    /// The result cache, when `[cache] enabled`.
    pub cache: Option<Arc<QueryCache>>,
    /// This instance's part in the etcd coordination, when `[coordination]` is set.
    pub coordination: Option<Arc<Coordinator>>,
    /// `[mysql.tls]`: the certificate new clients get (swapped by a reload).
    pub tls: crate::tls::TlsSlot,
    next_session: AtomicU32,
    /// `mysql.max_connections`.
    limit: Arc<Semaphore>,
}

impl ProxyContext {
    pub fn new(
        config: Arc<Config>,
        topology: Arc<Topology>,
        pools: Arc<Pools>,
        failover: FailoverHandle,
    ) -> Arc<Self> {
        Self::coordinated(config, topology, pools, failover, None)
    }

    /// [`ProxyContext::new`] for an instance that takes part in a coordination.
    pub fn coordinated(
        config: Arc<Config>,
        topology: Arc<Topology>,
        pools: Arc<Pools>,
        failover: FailoverHandle,
        coordination: Option<Arc<Coordinator>>,
    ) -> Arc<Self> {
        let mut server_caps = crate::protocol::caps::PROXY_SERVER;
        if config.mysql.local_infile {
            server_caps |= crate::protocol::caps::LOCAL_FILES;
        }
        let cache = if config.cache.enabled {
            match QueryCache::new(&config.cache) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    // Config::validate refuses this first; never serve unchecked rules.
                    tracing::error!(error = %e, "result cache disabled");
                    None
                }
            }
        } else {
            None
        };
        Arc::new(ProxyContext {
            cache,
            coordination,
            users: Users::from_config(&config),
            login_guard: crate::frontend::login_guard::LoginGuard::new(
                config.mysql.max_connect_errors,
                config.mysql.host_block_time,
            ),
            metrics: Arc::new(Metrics::new(config.nodes.len())),
            sessions: Arc::new(SessionRegistry::default()),
            limit: Arc::new(Semaphore::new(config.mysql.max_connections as usize)),
            command_memory: crate::command_memory::CommandMemory::new(
                config.mysql.max_command_memory,
            ),
            config,
            topology,
            pools,
            server_version: ArcSwap::from_pointee(FALLBACK_VERSION.to_vec()),
            server_caps,
            failover,
            tls: crate::tls::TlsSlot::default(),
            next_session: AtomicU32::new(1),
        })
    }

    /// A new client session's id (its connection id).
    pub fn next_session_id(&self) -> u32 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// A slot under `mysql.max_connections`, or None when all are taken.
    pub fn session_slot(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.limit).try_acquire_owned().ok()
    }
}
