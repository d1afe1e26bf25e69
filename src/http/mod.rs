//! The HTTP balancer for the PHP workers, on hyper 1 + hyper-util:
//! it replaces the seed's HAProxy HTTP front. [`HttpService::bind`] binds the
//! balancer listener (HTTP/1.1 and HTTP/2, cleartext or HTTPS with
//! `[http.tls]`), one socket per event loop, and, if configured, a stats
//! listener and a cleartext listener redirecting to HTTPS; [`HttpService::run`] starts
//! the event loops, which accept until the shutdown token is cancelled, then
//! let in-flight requests finish.
//!
//! # Layout
//! * `upstream`: the workers (admin state, health flag, counters, slots),
//!   per-worker `maxconn` and the bounded wait queue.
//! * `select`: round-robin / leastconn / random2 ordering of candidates.
//! * `pool`: keep-alive HTTP/1.1 connections to one worker.
//! * `shard`: the event loops (one thread + runtime + listener + pools
//!   each, HAProxy's `nbthread`) and the client connection task.
//! * `proxy`: one request's path: pick, connect, send, retry, errors.
//! * `retry`: whether a failed attempt moves to another worker (`retry_on`).
//! * `headers`: hop-by-hop, `X-Forwarded-*`, `Via`, sticky cookie.
//! * `body`: the response body type (a worker's stream or a page made here)
//!   and the streamed body that returns connection, slot and in-flight mark.
//! * `upload`: the request body towards a worker: progress for the server
//!   timeout, and the deadline on the whole body.
//! * `health`: active checks with rise/fall, the only writer of health.
//! * `idle`: the client idle and request-header timeouts, on the client socket.
//! * `tls`: HTTPS: certificates by SNI, ALPN, the bounded handshake.
//! * `redirect`: the cleartext listener that sends clients to HTTPS.
//! * `stats`, `page`, `metrics`: stats page, JSON, control POST, `/metrics`.
//! * `error`: error types and the one function that makes error pages.

mod body;
mod error;
pub mod headers;
mod health;
mod idle;
mod metrics;
mod page;
mod pool;
mod proxy;
mod redirect;
mod retry;
mod select;
mod shard;
mod stats;
pub mod tls;
mod upload;
mod upstream;

pub use error::{GatewayError, HttpError};
pub use shard::bind_listeners;
pub use upstream::{Backend, Upstreams, WorkerAdminState};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::HttpConfig;
use crate::tls::TlsSlot;
use error::RespBody;
use proxy::Proxy;
use shard::{Shard, Shared};
use stats::{FrontendStats, Stats};

/// After an accept error (e.g. out of file descriptors), pause before the
/// next accept instead of spinning.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The running balancer.
pub struct HttpService {
    cfg: HttpConfig,
    /// One listener socket per event loop, all on `local_addr`.
    listeners: Vec<std::net::TcpListener>,
    local_addr: SocketAddr,
    stats_listener: Option<(TcpListener, SocketAddr)>,
    /// `[http.tls] redirect_from`.
    redirect_listener: Option<(TcpListener, SocketAddr)>,
    /// `[http.tls]`: what each new client connection shakes hands with.
    tls: Option<Arc<TlsSlot>>,
    ups: Arc<Upstreams>,
    frontend: Arc<FrontendStats>,
    stats: Option<Arc<Stats>>,
}

impl HttpService {
    /// Binds the balancer listener (and the stats listener if configured) — port 0 allowed.
    pub async fn bind(cfg: HttpConfig) -> Result<HttpService, HttpError> {
        cfg.validate()?;
        // Certificates before any socket: an unusable file stops the start.
        let tls = tls::optional(cfg.tls.as_ref())?.map(|t| Arc::new(TlsSlot::new(Some(t))));
        let loops = cfg.event_loops();
        let bind_err = |source| HttpError::Bind {
            what: "http",
            addr: cfg.listen,
            source,
        };
        let listeners = shard::bind_listeners(cfg.listen, loops)
            .await
            .map_err(bind_err)?;
        let local_addr = match listeners.first() {
            Some(l) => l.local_addr().map_err(bind_err)?,
            None => cfg.listen,
        };
        let stats_listener = match cfg.stats.as_ref().and_then(|s| s.listen) {
            Some(addr) => {
                let l = bind_one("http stats", addr).await?;
                let a = local(&l, "http stats", addr)?;
                Some((l, a))
            }
            None => None,
        };
        let redirect_listener = match cfg.tls.as_ref().and_then(|t| t.redirect_from) {
            Some(addr) => {
                let l = bind_one("http redirect", addr).await?;
                let a = local(&l, "http redirect", addr)?;
                Some((l, a))
            }
            None => None,
        };
        let ups = Arc::new(Upstreams::new(&cfg, listeners.len()));
        let frontend = Arc::new(FrontendStats::default());
        let stats = cfg
            .stats
            .as_ref()
            .map(|s| Arc::new(Stats::new(s, Arc::clone(&ups), Arc::clone(&frontend))));
        Ok(HttpService {
            cfg,
            listeners,
            local_addr,
            stats_listener,
            redirect_listener,
            tls,
            ups,
            frontend,
            stats,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The workers, for admin SHOW/SET HTTP BACKEND(S).
    pub fn upstreams(&self) -> Arc<Upstreams> {
        Arc::clone(&self.ups)
    }

    /// The balancer's Prometheus families, for the `[metrics]` endpoint.
    pub fn metrics_collector(&self) -> Box<dyn prometheus_client::collector::Collector> {
        metrics::collector(Arc::clone(&self.ups), Arc::clone(&self.frontend))
    }

    pub fn stats_addr(&self) -> Option<SocketAddr> {
        self.stats_listener.as_ref().map(|(_, a)| *a)
    }

    /// The cleartext listener redirecting to HTTPS, when configured.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect_listener.as_ref().map(|(_, a)| *a)
    }

    /// The listener's TLS (with `[http.tls]`), which a config reload swaps.
    pub fn tls_slot(&self) -> Option<Arc<TlsSlot>> {
        self.tls.clone()
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests.
    /// The event loops run on threads of their own; dropping this future
    /// stops them too.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), HttpError> {
        let HttpService {
            cfg,
            listeners,
            local_addr,
            stats_listener,
            redirect_listener,
            tls,
            ups,
            frontend,
            stats,
        } = self;
        // Cancelled when `shutdown` is, or when this future is dropped.
        let loops_token = shutdown.child_token();
        let _stop_loops = loops_token.clone().drop_guard();
        // Stats on the balancer's own listener when it has no listener of its own.
        let inline_stats = stats
            .clone()
            .filter(|_| cfg.stats.as_ref().is_some_and(|s| s.listen.is_none()));
        let shared = Arc::new(Shared {
            limit: Arc::new(Semaphore::new(cfg.maxconn)),
            inline_stats,
            tls: tls.clone(),
            cfg: cfg.clone(),
        });
        let loops = listeners.len();
        let mut running = Vec::with_capacity(loops);
        for (id, listener) in listeners.into_iter().enumerate() {
            let proxy = Arc::new(Proxy::new(
                &cfg,
                Arc::clone(&ups),
                Arc::clone(&frontend),
                id,
            ));
            let shard = Shard {
                id,
                listener,
                proxy,
                shared: Arc::clone(&shared),
            };
            running.push(shard.start(loops_token.clone())?);
        }
        let mut background = Vec::new();
        for b in ups.backends() {
            background.push(tokio::spawn(health::run_checks(
                Arc::clone(b),
                cfg.health.clone(),
                shutdown.clone(),
            )));
        }
        let stats_tls = cfg.stats.as_ref().is_some_and(|s| s.tls);
        if let (Some((l, addr)), Some(s)) = (stats_listener, stats) {
            tracing::info!(addr = %addr, "http stats listening");
            let page = move |req: &Request<Incoming>| s.handle(req, true);
            let tls = tls.clone().filter(|_| stats_tls);
            background.push(tokio::spawn(serve_aside(
                l,
                addr,
                tls,
                page,
                shutdown.clone(),
            )));
        }
        if let Some((l, addr)) = redirect_listener {
            let https_port = local_addr.port();
            tracing::info!(addr = %addr, https_port, "http redirect to https listening");
            let page = move |req: &Request<Incoming>| redirect::respond(req, https_port);
            background.push(tokio::spawn(serve_aside(
                l,
                addr,
                None,
                page,
                shutdown.clone(),
            )));
        }
        tracing::info!(addr = %local_addr, backends = ups.backends().len(), event_loops = loops, "http balancer listening");
        for (id, done) in running.into_iter().enumerate() {
            if done.await.is_err() {
                tracing::error!(shard = id, "http event loop panicked");
            }
        }
        for h in background {
            if let Err(e) = h.await {
                tracing::warn!(error = %e, "http background task failed");
            }
        }
        tracing::info!(addr = %local_addr, "http balancer stopped");
        Ok(())
    }
}

async fn bind_one(what: &'static str, addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { what, addr, source })
}

fn local(l: &TcpListener, what: &'static str, addr: SocketAddr) -> Result<SocketAddr, HttpError> {
    l.local_addr()
        .map_err(|source| HttpError::Bind { what, addr, source })
}

/// A listener beside the balancer's, answering every request itself with
/// `page`: the dedicated stats listener (stats page, JSON, control,
/// `/metrics`) and the redirect to HTTPS. On the caller's runtime; over TLS
/// when given a slot (the balancer's, so a reload renews both).
async fn serve_aside<P>(
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<Arc<TlsSlot>>,
    page: P,
    shutdown: CancellationToken,
) where
    P: Fn(&Request<Incoming>) -> hyper::Response<RespBody> + Clone + Send + Sync + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT_ASIDE);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(addr = %addr, error = %e, "http accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let page = page.clone();
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let tls = tls.as_ref().and_then(|t| t.current());
        tokio::spawn(async move {
            let r = match tls {
                None => serve_one(&builder, stream, page, shutdown).await,
                Some(t) => match tls::accept(&t, stream, HEADER_TIMEOUT_ASIDE).await {
                    Ok((s, _)) => serve_one(&builder, s, page, shutdown).await,
                    Err(e) => {
                        tracing::debug!(client = %peer, error = %e, "https client dropped");
                        return;
                    }
                },
            };
            if let Err(e) = r {
                tracing::debug!(client = %peer, error = %e, "http connection ended with an error");
            }
        });
    }
}

/// The aside listeners' request header limit (and TLS handshake limit):
/// the balancer's default, as they have no `[http.timeouts]` of their own.
const HEADER_TIMEOUT_ASIDE: Duration = crate::config::http::DEFAULT_REQUEST_HEADER_TIMEOUT;

/// One connection of an aside listener, until it ends or `shutdown`.
async fn serve_one<S, P>(
    builder: &auto::Builder<TokioExecutor>,
    stream: S,
    page: P,
    shutdown: CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    P: Fn(&Request<Incoming>) -> hyper::Response<RespBody> + Send + Sync + 'static,
{
    let svc = service_fn(move |req: Request<Incoming>| {
        let resp = page(&req);
        async move { Ok::<_, Infallible>(resp) }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}
