//! The client side: the listener (accept, maxconn → 1040) and one session
//! per client, whose command loop is the only place where the router, the
//! topology and the backend meet.

pub mod login;
pub mod prepared;
pub mod session;
pub mod state;
pub mod users;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::backend::Pools;
use crate::cache::QueryCache;
use crate::config::Config;
use crate::net::{NetError, PacketIo};
use crate::protocol::err::ProxyError;
use crate::topology::Topology;
use users::Users;

/// Version announced until a node's own greeting is known.
pub const FALLBACK_VERSION: &[u8] = b"5.5.5-10.11.0-MariaDB-sqlproxy";

#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("client network: {0}")]
    Net(#[from] NetError),
    #[error("client rejected: {0}")]
    Rejected(ProxyError),
    /// The session ends; the client was already told why.
    #[error("session closed")]
    Closed,
}

/// What every session shares. Read-mostly: nothing here is locked per statement.
pub struct ProxyContext {
    pub config: Arc<Config>,
    pub topology: Arc<Topology>,
    pub pools: Arc<Pools>,
    pub users: Users,
    /// The master's version string, relayed in our greeting.
    pub server_version: ArcSwap<Vec<u8>>,
    /// Capabilities offered to clients.
    pub server_caps: u32,
    /// Switchover requests and the gate that holds writes meanwhile.
    pub failover: crate::topology::FailoverHandle,
    /// The HTTP balancer's workers, when `[http]` is configured (admin).
    pub http: Option<Arc<crate::http::Upstreams>>,
    /// Counters and the live-session registry (admin SHOW, /metrics).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The result cache, when `[cache] enabled`.
    pub cache: Option<Arc<QueryCache>>,
    next_session: AtomicU32,
    limit: Arc<Semaphore>,
}

impl ProxyContext {
    pub fn new(
        config: Arc<Config>,
        topology: Arc<Topology>,
        pools: Arc<Pools>,
        failover: crate::topology::FailoverHandle,
        http: Option<Arc<crate::http::Upstreams>>,
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
            users: Users::from_config(&config),
            metrics: Arc::new(crate::metrics::Metrics::new(config.nodes.len())),
            limit: Arc::new(Semaphore::new(config.mysql.max_connections as usize)),
            config,
            topology,
            pools,
            server_version: ArcSwap::from_pointee(FALLBACK_VERSION.to_vec()),
            server_caps,
            failover,
            http,
            next_session: AtomicU32::new(1),
        })
    }

    /// Sessions currently open.
    pub fn active_sessions(&self) -> usize {
        self.config.mysql.max_connections as usize - self.limit.available_permits()
    }
}

/// Accepts clients until `shutdown`; each session runs on `tracker`.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<ProxyContext>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "set_nodelay");
        }
        let id = ctx.next_session.fetch_add(1, Ordering::Relaxed);
        let permit = Arc::clone(&ctx.limit).try_acquire_owned();
        let ctx = Arc::clone(&ctx);
        let shutdown = shutdown.clone();
        let span = tracing::debug_span!("session", session_id = id, %peer);
        tracker.spawn(
            async move {
                let mut io = PacketIo::new(stream);
                let Ok(permit) = permit else {
                    ctx.metrics.sessions_refused.fetch_add(1, Ordering::Relaxed);
                    io.queue(
                        0,
                        &ProxyError::too_many_connections().to_payload_pre_handshake(),
                    );
                    if let Err(e) = io.flush().await {
                        tracing::debug!(error = %e, "could not send 1040");
                    }
                    return;
                };
                session::run(ctx, io, id, shutdown).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}
