//! Binds the listeners and runs every service (MySQL proxy, monitor, HTTP
//! balancer, admin port, metrics endpoint) until shutdown. Takes bound listeners, never fixed addresses,
//! so tests can use port 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::Pools;
use crate::config::Config;
use crate::context::ProxyContext;
use crate::coordination::Coordinator;
use crate::frontend;
use crate::protocol::codec;
use crate::protocol::handshake::parse_greeting;
use crate::tls::ServerTls;
use crate::topology::{self, Topology, TopologyEvent};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("http balancer: {0}")]
    Http(String),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

pub struct Server {
    ctx: Arc<ProxyContext>,
    failover: Option<topology::failover::FailoverController>,
    mysql: TcpListener,
    http: Option<crate::http::HttpService>,
    /// `[admin]`, when enabled.
    admin: Option<TcpListener>,
    /// `[metrics]`, when enabled.
    metrics: Option<TcpListener>,
    /// The HTTP balancer's families for `/metrics`, when both are configured.
    http_metrics: Vec<Box<dyn prometheus_client::collector::Collector>>,
    /// The admin commands' state; also what SIGHUP reloads through.
    admin_ctx: Arc<crate::admin::AdminContext>,
}

async fn bind_optional(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, ServerError> {
    let Some(addr) = addr else { return Ok(None) };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| ServerError::Bind { addr, source })
}

impl Server {
    /// Binds every listener of `config` (port 0 allowed) and learns the
    /// master's version string for the greeting.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        // Certificates first: a file that cannot be used stops the start
        // before anything listens.
        let mysql_tls = ServerTls::optional("mysql.tls", config.mysql.tls.as_ref())?;
        let admin_tls = ServerTls::optional(
            "admin.tls",
            config.admin_enabled().and_then(|a| a.tls.as_ref()),
        )?;
        let addr = config.mysql.listen;
        let mysql = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let http = match &config.http {
            Some(h) => Some(
                crate::http::HttpService::bind(h.clone())
                    .await
                    .map_err(|e| ServerError::Http(e.to_string()))?,
            ),
            None => None,
        };
        let admin = bind_optional(config.admin_enabled().map(|a| a.listen)).await?;
        let metrics = bind_optional(config.metrics_enabled().map(|m| m.listen)).await?;
        let config = Arc::new(config);
        let topology = Topology::new(&config);
        let pools = Pools::new(&config, crate::tls::node_targets(&config)?);
        pools.spawn_reaper();
        let (handle, controller) = topology::failover_channel();
        let coordination = config.coordination.clone().map(|co| {
            let port = mysql.local_addr().map_or(addr.port(), |a| a.port());
            let weights = config
                .nodes
                .iter()
                .map(|(name, n)| (name.clone(), n.weight))
                .collect();
            Coordinator::new(
                co,
                crate::coordination::default_instance_name(port),
                Arc::clone(&topology),
                weights,
            )
        });
        let controller = match &coordination {
            Some(c) => controller.with_authority(Arc::clone(c) as Arc<dyn topology::Authority>),
            None => controller,
        };
        let ctx =
            ProxyContext::coordinated(Arc::clone(&config), topology, pools, handle, coordination);
        ctx.tls.replace(mysql_tls);
        learn_version(&ctx).await;
        let upstreams = http.as_ref().map(|h| h.upstreams());
        let http_tls = http.as_ref().and_then(|h| h.tls_slot());
        let admin_ctx = crate::admin::AdminContext::new(Arc::clone(&ctx), upstreams, http_tls);
        admin_ctx.tls.replace(admin_tls);
        let http_metrics = http.iter().map(|h| h.metrics_collector()).collect();
        Ok(Server {
            http_metrics,
            admin_ctx,
            ctx,
            failover: Some(controller),
            mysql,
            http,
            admin,
            metrics,
        })
    }

    pub fn mysql_addr(&self) -> SocketAddr {
        self.mysql
            .local_addr()
            .unwrap_or_else(|_| self.ctx.config.mysql.listen)
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|h| h.local_addr())
    }

    /// The cleartext listener redirecting to the HTTPS balancer, when
    /// `[http.tls] redirect_from` is set.
    pub fn http_redirect_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|h| h.redirect_addr())
    }

    /// The admin SQL port, when `[admin]` is enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The Prometheus endpoint (`http://<addr>/metrics`), when `[metrics]` is enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn context(&self) -> Arc<ProxyContext> {
        Arc::clone(&self.ctx)
    }

    /// The admin commands' context, with which `main` runs the reload on
    /// SIGHUP (`admin::reload_config`), the same as the admin `RELOAD CONFIG`.
    pub fn admin_context(&self) -> Arc<crate::admin::AdminContext> {
        Arc::clone(&self.admin_ctx)
    }

    /// Becomes true once the proxy is ready to serve: every listener is
    /// bound (done by [`Server::bind`]) and, after [`Server::run`] started,
    /// the failover controller has read the master back from the nodes.
    /// `main` tells systemd READY=1 then. Take it before `run`.
    pub fn ready(&self) -> tokio::sync::watch::Receiver<bool> {
        match &self.failover {
            Some(controller) => controller.discovered(),
            None => tokio::sync::watch::Sender::new(true).subscribe(),
        }
    }

    /// Serves until `shutdown` is cancelled, then lets running statements
    /// finish (up to `mysql.shutdown_timeout`).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServerError> {
        let tracker = TaskTracker::new();
        let ctx = self.ctx;
        tracker.spawn(topology::run_monitor(
            Arc::clone(&ctx.topology),
            (*ctx.config).clone(),
            shutdown.clone(),
        ));
        if let Some(controller) = self.failover {
            let metrics = Arc::clone(&ctx.metrics);
            tracker.spawn(topology::run_failover(
                Arc::clone(&ctx.topology),
                (*ctx.config).clone(),
                controller,
                move |event: &TopologyEvent| {
                    let counter = match event {
                        TopologyEvent::AutoFailover { .. }
                        | TopologyEvent::ForcedFailover { .. } => &metrics.failovers,
                        TopologyEvent::Switchover { .. } => &metrics.switchovers,
                        TopologyEvent::Rewound { .. } => &metrics.rewinds,
                    };
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                },
                shutdown.clone(),
            ));
        }
        if let Some(coordination) = &ctx.coordination {
            tracing::info!(instance = %coordination.instance(), "coordinating with the other instances through etcd; only the election's holder changes the master");
            tracker.spawn(crate::coordination::run(
                Arc::clone(coordination),
                ctx.failover.clone(),
                shutdown.clone(),
            ));
        }
        if let Some(http) = self.http {
            let s = shutdown.clone();
            tracker.spawn(async move {
                if let Err(e) = http.run(s).await {
                    tracing::error!(error = %e, "http balancer stopped");
                }
            });
        }
        if let Some(listener) = self.admin {
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            tracing::info!(%addr, "admin port listening");
            tracker.spawn(crate::admin::serve(
                listener,
                self.admin_ctx,
                shutdown.clone(),
                tracker.clone(),
            ));
        }
        if let Some(listener) = self.metrics {
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            tracing::info!(%addr, "metrics endpoint listening");
            tracker.spawn(crate::prometheus::serve(
                listener,
                Arc::clone(&ctx),
                self.http_metrics,
                shutdown.clone(),
                tracker.clone(),
            ));
        }
        tracing::info!(addr = %self.mysql.local_addr().map(|a| a.to_string()).unwrap_or_default(), "mysql proxy listening");
        frontend::serve(self.mysql, Arc::clone(&ctx), shutdown, tracker.clone()).await;
        tracker.close();
        let grace = ctx.config.mysql.shutdown_timeout;
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(?grace, "sessions still running at shutdown; closing them");
        }
        Ok(())
    }
}

/// Reads a node's greeting (no login needed) for its version string: the
/// nodes in priority order, the first that answers. The master is not named
/// yet when this runs.
async fn learn_version(ctx: &ProxyContext) {
    let t = ctx.config.pool.connect_timeout.min(Duration::from_secs(2));
    for name in ctx.config.nodes_by_priority() {
        let Some(node) = ctx.config.nodes.get(name) else {
            continue;
        };
        let read = async {
            let mut s = TcpStream::connect(&node.address).await.ok()?;
            let mut buf = Vec::with_capacity(256);
            loop {
                if let Some(h) = codec::complete_packet(&buf) {
                    return parse_greeting(&buf[4..4 + h.len]);
                }
                let mut chunk = [0u8; 256];
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        };
        if let Ok(Some(hello)) = tokio::time::timeout(t, read).await {
            ctx.server_version.store(Arc::new(hello.version));
            return;
        }
    }
    tracing::warn!("could not read a node's version; using a default");
}
