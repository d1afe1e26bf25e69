//! The HTTP balancer for the PHP workers (issue 5), on hyper 1 + hyper-util:
//! it replaces the seed's HAProxy HTTP front. [`HttpService::bind`] binds the
//! balancer listener (HTTP/1.1 and cleartext HTTP/2) and, if configured, a
//! stats listener; [`HttpService::run`] accepts until the shutdown token is
//! cancelled, then lets in-flight requests finish.
//!
//! # Layout
//! * `config`: the `[http]` section, its defaults and `validate()`.
//! * `upstream`: the workers (admin state, health flag, counters, slots),
//!   per-worker `maxconn` and the bounded wait queue.
//! * `select`: round-robin / leastconn / random2 ordering of candidates.
//! * `pool`: keep-alive HTTP/1.1 connections to one worker.
//! * `proxy`: one request's path: pick, connect, send, retry rules, errors.
//! * `headers`: hop-by-hop, `X-Forwarded-*`, `Via`, sticky cookie.
//! * `body`: the streamed response body that returns connection and slot.
//! * `health`: active checks with rise/fall, the only writer of health.
//! * `idle`: the client idle timeout around client sockets.
//! * `stats`, `page`, `metrics`: stats page, JSON, control POST, `/metrics`.
//! * `error`: error types and the one function that makes error pages.

mod body;
mod config;
mod error;
mod headers;
mod health;
mod idle;
mod metrics;
mod page;
mod pool;
mod proxy;
mod select;
mod stats;
mod upstream;

pub use config::{
    BackendConfig, Balance, HealthCheck, HttpConfig, HttpConfigError, StatsConfig, StickyConfig,
    Timeouts,
};
pub use error::{HttpError, ProxyError};
pub use upstream::{AdminState, Backend, Upstreams};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use error::RespBody;
use idle::{IdleIo, InFlightCount};
use proxy::Proxy;
use stats::{FrontendStats, Stats};

/// After an accept error (e.g. out of file descriptors), pause before the
/// next accept instead of spinning.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The running balancer.
pub struct HttpService {
    cfg: HttpConfig,
    listener: TcpListener,
    local_addr: SocketAddr,
    stats_listener: Option<(TcpListener, SocketAddr)>,
    ups: Arc<Upstreams>,
    proxy: Arc<Proxy>,
    stats: Option<Arc<Stats>>,
}

impl HttpService {
    /// Binds the balancer listener (and the stats listener if configured) — port 0 allowed.
    pub async fn bind(cfg: HttpConfig) -> Result<HttpService, HttpError> {
        cfg.validate()?;
        let listener = bind_one("http", cfg.listen).await?;
        let local_addr = local(&listener, "http", cfg.listen)?;
        let stats_listener = match cfg.stats.as_ref().and_then(|s| s.listen) {
            Some(addr) => {
                let l = bind_one("http stats", addr).await?;
                let a = local(&l, "http stats", addr)?;
                Some((l, a))
            }
            None => None,
        };
        let ups = Arc::new(Upstreams::new(&cfg));
        let frontend = Arc::new(FrontendStats::default());
        let proxy = Arc::new(Proxy::new(&cfg, Arc::clone(&ups), Arc::clone(&frontend)));
        let stats = cfg
            .stats
            .as_ref()
            .map(|s| Arc::new(Stats::new(s, Arc::clone(&ups), Arc::clone(&frontend))));
        Ok(HttpService {
            cfg,
            listener,
            local_addr,
            stats_listener,
            ups,
            proxy,
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

    pub fn stats_addr(&self) -> Option<SocketAddr> {
        self.stats_listener.as_ref().map(|(_, a)| *a)
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), HttpError> {
        let HttpService {
            cfg,
            listener,
            local_addr,
            stats_listener,
            ups,
            proxy,
            stats,
        } = self;
        let mut background = Vec::new();
        for b in ups.backends() {
            background.push(tokio::spawn(health::run_checks(
                Arc::clone(b),
                cfg.health.clone(),
                shutdown.clone(),
            )));
        }
        if let (Some((l, addr)), Some(s)) = (stats_listener, stats.clone()) {
            background.push(tokio::spawn(serve_stats(l, addr, s, shutdown.clone())));
        }
        // Stats on the balancer's own listener when it has no listener of its own.
        let inline_stats = stats.filter(|_| cfg.stats.as_ref().is_some_and(|s| s.listen.is_none()));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(cfg.timeouts.request_header)
            .max_buf_size(cfg.max_header_size.max(config::MIN_HEADER_SIZE));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(cfg.max_header_size).unwrap_or(u32::MAX));
        let limit = Arc::new(Semaphore::new(cfg.maxconn));
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        tracing::info!(addr = %local_addr, backends = ups.backends().len(), "http balancer listening");
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = Arc::clone(&limit).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(addr = %local_addr, error = %e, "http accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                },
            };
            let conn = ClientConn {
                proxy: Arc::clone(&proxy),
                stats: inline_stats.clone(),
                builder: builder.clone(),
                client_timeout: cfg.timeouts.client,
                shutdown: shutdown.clone(),
                _done: done_tx.clone(),
            };
            tokio::spawn(async move {
                conn.serve(stream, peer).await;
                drop(permit);
            });
        }
        drop(listener);
        drop(done_tx);
        // Every connection task holds a sender; all dropped = all drained.
        let drain_limit = cfg.timeouts.server + cfg.timeouts.request_header;
        if tokio::time::timeout(drain_limit, done_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!(
                "http drain: connections still open after {drain_limit:?}; leaving them"
            );
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

/// Everything one client connection task needs.
struct ClientConn {
    proxy: Arc<Proxy>,
    stats: Option<Arc<Stats>>,
    builder: auto::Builder<TokioExecutor>,
    client_timeout: Duration,
    shutdown: CancellationToken,
    _done: mpsc::Sender<()>,
}

impl ClientConn {
    async fn serve(self, stream: TcpStream, peer: SocketAddr) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(client = %peer, error = %e, "set_nodelay failed");
        }
        let frontend = Arc::clone(&self.proxy.frontend);
        frontend.connections.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlightCount::default();
        let io = TokioIo::new(IdleIo::new(stream, self.client_timeout, in_flight.clone()));
        let proxy = self.proxy;
        let stats = self.stats;
        let svc = service_fn(move |req: Request<Incoming>| {
            let proxy = Arc::clone(&proxy);
            let stats = stats.clone();
            let guard = in_flight.enter();
            async move {
                let resp = match stats.filter(|s| s.owns(req.uri().path())) {
                    Some(s) => s.handle(&req, false),
                    None => proxy.handle(req, peer).await,
                };
                drop(guard);
                Ok::<_, Infallible>(resp)
            }
        });
        let conn = self.builder.serve_connection_with_upgrades(io, svc);
        tokio::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            _ = self.shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(client = %peer, error = %e, "http client connection ended with an error");
        }
        frontend.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The dedicated stats listener: stats page, JSON, control, `/metrics`.
async fn serve_stats(
    listener: TcpListener,
    addr: SocketAddr,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    tracing::info!(addr = %addr, "http stats listening");
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config::DEFAULT_REQUEST_HEADER_TIMEOUT);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(addr = %addr, error = %e, "http stats accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let stats = Arc::clone(&stats);
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let resp: hyper::Response<RespBody> = stats.handle(&req, true);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let r = tokio::select! {
                r = conn.as_mut() => r,
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = r {
                tracing::debug!(client = %peer, error = %e, "stats connection ended with an error");
            }
        });
    }
}
