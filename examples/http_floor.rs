//! The least a proxy built on hyper can do per request, to tell the cost of
//! the stack (tokio + hyper) from the cost of the balancer's features. It
//! has none of them: no header rewriting, no timeouts, no retries, no
//! health, no counters, no limits. One event loop per CPU as in the
//! balancer (`SO_REUSEPORT` listener and keep-alive pools per loop),
//! round-robin over the workers. `benches/http_ab.sh` runs it like a build:
//!
//!     http_floor CONFIG.toml     # uses [http] listen and the backends' addresses
//!
//! With `FLOOR_REQUIRED=1` it also does, in the plainest way, the per-request
//! work the balancer must do for every proxied GET: the forwarding headers
//! (`X-Forwarded-For/-Proto/-Host`, `Via` both ways), a copy of the request
//! head kept for a replay, and a server timeout; still nothing else.
//!
//! Not for production: a worker that fails gives the client a closed
//! connection.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use figment::providers::{Format, Toml};
use http::header::{self, HeaderName, HeaderValue};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use sqlproxy::config::HttpConfig;
use tokio::net::{TcpSocket, TcpStream};

fn main() {
    let path = std::env::args().nth(1).unwrap_or_default();
    let cfg: HttpConfig = match figment::Figment::from(Toml::file_exact(&path))
        .focus("http")
        .extract()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("usage: http_floor CONFIG.toml ({path}: {e})");
            std::process::exit(2);
        }
    };
    let workers: Vec<String> = cfg.backends.iter().map(|b| b.address.clone()).collect();
    if workers.is_empty() {
        eprintln!("{path}: no [[http.backends]]");
        std::process::exit(2);
    }
    let loops = std::thread::available_parallelism().map_or(1, |n| n.get());
    let handles: Vec<_> = (0..loops)
        .map(|_| {
            let workers = workers.clone();
            std::thread::spawn(move || run_loop(cfg.listen, workers))
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

struct Loop {
    /// `FLOOR_REQUIRED`: the balancer's required per-request work on top.
    required: bool,
    workers: Vec<String>,
    pools: Vec<Mutex<Vec<SendRequest<Incoming>>>>,
    next: AtomicUsize,
}

fn run_loop(listen: SocketAddr, workers: Vec<String>) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async move {
        let Ok(socket) = TcpSocket::new_v4() else {
            return;
        };
        let _ = socket.set_reuseaddr(true);
        let _ = socket.set_reuseport(true);
        if socket.bind(listen).is_err() {
            return;
        }
        let Ok(listener) = socket.listen(1024) else {
            return;
        };
        let lp = Arc::new(Loop {
            required: std::env::var_os("FLOOR_REQUIRED").is_some(),
            pools: workers.iter().map(|_| Mutex::new(Vec::new())).collect(),
            workers,
            next: AtomicUsize::new(0),
        });
        while let Ok((stream, peer)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let lp = Arc::clone(&lp);
            let xff = HeaderValue::from_maybe_shared(Bytes::from(peer.ip().to_string()))
                .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let lp = Arc::clone(&lp);
                    let xff = xff.clone();
                    async move {
                        if lp.required {
                            forward_required(&lp, req, xff).await
                        } else {
                            forward(&lp, req).await
                        }
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .writev(false)
                    .half_close(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

/// An error closes the client's connection.
async fn forward(
    lp: &Loop,
    req: Request<Incoming>,
) -> Result<hyper::Response<Incoming>, io::Error> {
    let i = lp.next.fetch_add(1, Ordering::Relaxed) % lp.workers.len().max(1);
    let pooled = lp.pools[i].lock().ok().and_then(|mut p| p.pop());
    let mut sender = match pooled {
        Some(s) => s,
        None => connect(&lp.workers[i]).await?,
    };
    if !sender.is_ready() {
        sender.ready().await.map_err(io::Error::other)?;
    }
    let resp = sender.send_request(req).await;
    // Back in the pool at once: the next user waits for `ready()` if the
    // body is still being read.
    if let Ok(mut p) = lp.pools[i].lock() {
        p.push(sender);
    }
    resp.map_err(io::Error::other)
}

/// `forward` plus the work the balancer must do for every proxied GET.
async fn forward_required(
    lp: &Loop,
    mut req: Request<Incoming>,
    xff: HeaderValue,
) -> Result<hyper::Response<Incoming>, io::Error> {
    let h = req.headers_mut();
    h.reserve(4);
    h.insert(X_FORWARDED_FOR, xff);
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if let Some(host) = h.get(header::HOST).cloned() {
        h.insert(X_FORWARDED_HOST, host);
    }
    h.insert(header::VIA, HeaderValue::from_static("1.1 sqlproxy"));
    let replay = (
        req.method().clone(),
        req.uri().clone(),
        req.headers().clone(),
    );
    let sent = tokio::time::timeout(SERVER_TIMEOUT, forward(lp, req)).await;
    drop(replay);
    let mut resp = sent.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    resp.headers_mut()
        .insert(header::VIA, HeaderValue::from_static("1.1 sqlproxy"));
    Ok(resp)
}

const SERVER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

async fn connect(addr: &str) -> io::Result<SendRequest<Incoming>> {
    let stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .writev(false)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(conn);
    Ok(sender)
}
