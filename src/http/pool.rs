//! Keep-alive connections to one worker, on hyper's HTTP/1 client
//! connection (not the legacy pooled client) so the proxy knows exactly
//! when a request was handed to a socket: a connection is taken from the
//! pool or opened *before* the request leaves our hands, which is what lets
//! a POST be retried after a connect failure and never after it was sent.
//! Each connection counts the bytes it read, so "no response byte arrived"
//! is a fact, not a guess.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Errors carried by proxied bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type sent to workers.
pub type UpBody = BoxBody<Bytes, BoxError>;

/// One HTTP/1.1 connection to a worker.
pub struct Conn {
    pub sender: SendRequest<UpBody>,
    /// Bytes read from the worker so far on this connection.
    read_bytes: Arc<AtomicU64>,
    /// When its latest request started (no clock read when it goes back
    /// to the pool); the idle timeout counts from there, a little early.
    idle_since: Instant,
}

impl Conn {
    pub fn bytes_read(&self) -> u64 {
        self.read_bytes.load(Ordering::Acquire)
    }

    /// Notes that a request starts on this connection at `now`.
    pub fn start(&mut self, now: Instant) {
        self.idle_since = now;
    }
}

/// Why a connection could not be opened; always safe to retry elsewhere.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    #[error("connect failed: {0}")]
    Io(#[from] io::Error),
    #[error("HTTP handshake failed: {0}")]
    Handshake(#[from] hyper::Error),
}

/// Idle connections to one worker, newest last.
pub struct Pool {
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Pool {
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
        }
    }

    /// An idle connection that is still open and was used less than the
    /// idle timeout before `now`, ready to send.
    pub async fn take(&self, now: Instant, ready_timeout: Duration) -> Option<Conn> {
        loop {
            let mut c = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.pop()?
            };
            if c.sender.is_closed()
                || now.saturating_duration_since(c.idle_since) > self.idle_timeout
            {
                continue;
            }
            // Usually ready already; otherwise the previous response is
            // still being finished by the connection task.
            if c.sender.is_ready() {
                return Some(c);
            }
            if let Ok(Ok(())) = tokio::time::timeout(ready_timeout, c.sender.ready()).await {
                return Some(c);
            }
        }
    }

    /// Returns a connection whose last response was read to the end.
    pub fn put(&self, conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= self.max_idle {
            idle.remove(0);
        }
        idle.push(conn);
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }
}

/// Opens a new connection to `address` (`host:port`) and spawns its driver.
pub async fn connect(address: &str, timeout: Duration) -> Result<Conn, ConnectError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| ConnectError::Timeout(timeout))??;
    stream.set_nodelay(true)?;
    let read_bytes = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(CountingIo {
        inner: stream,
        read: Arc::clone(&read_bytes),
    });
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        // One send(2) per request, as on the client side (`shard.rs`).
        .writev(false)
        .handshake(io)
        .await?;
    let addr = address.to_string();
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(worker_addr = %addr, error = %e, "worker connection ended");
        }
    });
    Ok(Conn {
        sender,
        read_bytes,
        idle_since: Instant::now(),
    })
}

/// A TCP stream that counts the bytes it reads.
struct CountingIo {
    inner: TcpStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for CountingIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.read.fetch_add(n as u64, Ordering::AcqRel);
        }
        r
    }
}

impl AsyncWrite for CountingIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
