//! The event loops that serve clients, the way HAProxy runs `nbthread`
//! threads. Each shard is an OS thread with its own current-thread tokio
//! runtime, its own listener socket on the balancer's port (`SO_REUSEPORT`,
//! so the kernel spreads new clients over the shards) and its own keep-alive
//! pools to the workers. A client connection, its requests and the worker
//! connections they use all live on one thread: no task migrates and no
//! thread is woken to do another's work. On the shared multi-threaded
//! runtime those wake-ups and context switches cost about a third of the
//! balancer's CPU per request (`docs/performance.md`, "HTTP balancer").
//!
//! The shards share only atomics and lock-free state: the workers' health,
//! admin state, counters and slots, the global `maxconn` semaphore, the
//! wait queue and the TLS slot. Health checks and the stats listener stay
//! on the caller's runtime. With `[http.tls]` the TLS handshake runs on the
//! shard too, inside the connection's task, so a slow or hostile handshake
//! holds up no other client.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::error::HttpError;
use super::idle::{IdleIo, InFlightCount};
use super::proxy::{ClientAddr, Proxy};
use super::stats::Stats;
use super::tls::{self, Alpn};
use super::ACCEPT_ERROR_PAUSE;
use crate::config::http::MIN_HEADER_SIZE;
use crate::config::HttpConfig;
use crate::tls::{ServerTls, TlsSlot};

/// Kernel accept backlog of each listener socket (what `TcpListener::bind` uses).
const BACKLOG: u32 = 1024;

/// Binds `n` listener sockets on `addr` (port 0 allowed: the first one picks
/// the port, the others join it). With more than one, `SO_REUSEPORT` lets the
/// kernel hand each new connection to one of them. The sockets are returned
/// unregistered, so that each event loop can adopt its own.
pub async fn bind_listeners(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let mut out: Vec<std::net::TcpListener> = Vec::with_capacity(n);
    let mut at = addr;
    for _ in 0..n.max(1) {
        let socket = if at.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        if n > 1 {
            socket.set_reuseport(true)?;
        }
        socket.bind(at)?;
        let l = socket.listen(BACKLOG)?.into_std()?;
        at = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

/// Tells one shard's connections to finish: set once, when the shard stops
/// accepting. A connection registers for the wake-up once, then only reads
/// the flag on its later wake-ups (a `CancellationToken` takes a lock on
/// each of them, and a connection wakes up several times per request).
#[derive(Default)]
struct Stopping {
    flag: AtomicBool,
    notify: Notify,
}

impl Stopping {
    fn stop(&self) {
        // The flag first: a connection woken by the notification sees it.
        self.flag.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

/// What every shard shares.
pub struct Shared {
    pub cfg: HttpConfig,
    /// Stats routes answered on the balancer's own listener, if any.
    pub inline_stats: Option<Arc<Stats>>,
    /// Global `maxconn`: one permit per client connection, over all shards.
    pub limit: Arc<Semaphore>,
    /// `[http.tls]`: HTTPS; swapped by a config reload.
    pub tls: Option<Arc<TlsSlot>>,
}

/// One event loop: its listener and its proxy (which owns its pools).
pub struct Shard {
    pub id: usize,
    pub listener: std::net::TcpListener,
    pub proxy: Arc<Proxy>,
    pub shared: Arc<Shared>,
}

impl Shard {
    /// Starts the shard's thread and runtime. The returned receiver gets
    /// `()` once the shard has stopped accepting and drained its
    /// connections (an error if the thread panicked).
    pub fn start(self, shutdown: CancellationToken) -> Result<oneshot::Receiver<()>, HttpError> {
        let id = self.id;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| HttpError::EventLoop { shard: id, source })?;
        let (done_tx, done_rx) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("sqlproxy-http-{id}"))
            .spawn(move || {
                rt.block_on(self.run(shutdown));
                // Nobody waits any more if `HttpService::run` was dropped.
                done_tx.send(()).ok();
            })
            .map_err(|source| HttpError::EventLoop { shard: id, source })?;
        Ok(done_rx)
    }

    /// Accepts until `shutdown`, then lets in-flight requests finish.
    async fn run(self, shutdown: CancellationToken) {
        let Shard {
            id,
            listener,
            proxy,
            shared,
        } = self;
        let local_addr = listener.local_addr().ok();
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(shard = id, error = %e, "http event loop cannot register its listener");
                return;
            }
        };
        let cfg = &shared.cfg;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            // The request header timeout is `IdleIo`'s (one timer per
            // connection, not one per request).
            .header_read_timeout(None)
            // send(2) of one buffer costs less than writev(2) of the head
            // and the body: hyper copies the body into its buffer instead.
            .writev(false)
            // A request whose client closes its side still runs to its end,
            // as in HAProxy without `option abortonclose`; and hyper skips
            // the read it otherwise tries while each request is in flight
            // (which costs an 8 KiB buffer per request).
            .half_close(true)
            .max_buf_size(cfg.max_header_size.max(MIN_HEADER_SIZE));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(cfg.max_header_size).unwrap_or(u32::MAX));
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let stopping = Arc::new(Stopping::default());
        loop {
            // Accept first, then wait for a `maxconn` permit: a loop that
            // took a permit before it had a client could sit on it while
            // the client waits in another loop's backlog. So each loop holds
            // at most one accepted client waiting for a permit; the others
            // stay in the kernel backlog.
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(addr = ?local_addr, shard = id, error = %e, "http accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                },
            };
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = Arc::clone(&shared.limit).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let conn = ClientConn {
                // Taken once: the connection keeps this certificate even
                // if a reload swaps the slot while it lives.
                tls: shared.tls.as_ref().and_then(|t| t.current()),
                proxy: Arc::clone(&proxy),
                stats: shared.inline_stats.clone(),
                builder: builder.clone(),
                client_timeout: cfg.timeouts.client,
                header_timeout: cfg.timeouts.request_header,
                stopping: Arc::clone(&stopping),
                _done: done_tx.clone(),
            };
            tokio::spawn(async move {
                conn.serve(stream, peer).await;
                drop(permit);
            });
        }
        drop(listener);
        stopping.stop();
        drop(done_tx);
        // Every connection task holds a sender; all dropped = all drained.
        let drain_limit = cfg.timeouts.server + cfg.timeouts.request_header;
        if tokio::time::timeout(drain_limit, done_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!(
                shard = id,
                "http drain: connections still open after {drain_limit:?}; closing them"
            );
        }
    }
}

/// Everything one client connection task needs.
struct ClientConn {
    tls: Option<Arc<ServerTls>>,
    proxy: Arc<Proxy>,
    stats: Option<Arc<Stats>>,
    builder: auto::Builder<TokioExecutor>,
    client_timeout: Duration,
    header_timeout: Duration,
    stopping: Arc<Stopping>,
    _done: mpsc::Sender<()>,
}

impl ClientConn {
    async fn serve(mut self, stream: TcpStream, peer: SocketAddr) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(client = %peer, error = %e, "set_nodelay failed");
        }
        let frontend = Arc::clone(&self.proxy.frontend);
        frontend.connections.fetch_add(1, Ordering::Relaxed);
        match self.tls.take() {
            None => self.serve_http(stream, peer, false).await,
            // The handshake counts against the request header timeout: a
            // client that never finishes one is a slowloris like any other.
            Some(t) => match tls::accept(&t, stream, self.header_timeout).await {
                Ok((stream, alpn)) => {
                    // ALPN already said which protocol: no need to sniff the
                    // first bytes for the HTTP/2 preface.
                    self.builder = match alpn {
                        Alpn::H2 => self.builder.http2_only(),
                        Alpn::Http11 => self.builder.http1_only(),
                        Alpn::None => self.builder,
                    };
                    self.serve_http(stream, peer, true).await
                }
                Err(e) => {
                    frontend.tls_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(client = %peer, error = %e, "https client dropped");
                }
            },
        }
        frontend.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Serves HTTP requests on `stream` (a TCP socket or a TLS session on one).
    async fn serve_http<S>(self, stream: S, peer: SocketAddr, secure: bool)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let in_flight = InFlightCount::default();
        let io = TokioIo::new(IdleIo::new(
            stream,
            self.client_timeout,
            self.header_timeout,
            in_flight.clone(),
        ));
        let proxy = self.proxy;
        let stats = self.stats;
        let client = Arc::new(ClientAddr::new(peer, secure));
        let svc = service_fn(move |req: Request<Incoming>| {
            let proxy = Arc::clone(&proxy);
            let stats = stats.clone();
            let client = Arc::clone(&client);
            let guard = in_flight.enter();
            async move {
                // The guard goes with a proxied response's body.
                let resp = match stats.filter(|s| s.owns(req.uri().path())) {
                    Some(s) => s.handle(&req, false),
                    None => proxy.handle(req, &client, guard).await,
                };
                Ok::<_, Infallible>(resp)
            }
        });
        let conn = self.builder.serve_connection_with_upgrades(io, svc);
        tokio::pin!(conn);
        let stop = self.stopping.notify.notified();
        tokio::pin!(stop);
        let mut registered = false;
        let stopped = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            if !registered {
                // Once: the notification will wake this task.
                registered = true;
                if stop.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
            }
            if self.stopping.is_set() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        let result = match stopped {
            Some(r) => r,
            None => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(client = %peer, error = %e, "http client connection ended with an error");
        }
    }
}
