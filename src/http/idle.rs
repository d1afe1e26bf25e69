//! The client idle timeout (HAProxy `timeout client`). hyper's HTTP/1 server
//! only bounds the time to read a request header, and its HTTP/2 server has
//! no idle limit, so this wrapper around the client socket closes a
//! connection that moved no byte for `timeout` while no request of it is in
//! flight (a slow worker is the server timeout's business, not this one's).
//! Activity is a timestamp; the timer is only re-armed when it fires, so the
//! hot path costs one `Instant::now()` per read or write.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests of one connection in flight; the service holds an [`InFlight`] guard.
#[derive(Clone, Default)]
pub struct InFlightCount(Arc<AtomicUsize>);

impl InFlightCount {
    pub fn enter(&self) -> InFlight {
        self.0.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(&self.0))
    }

    fn busy(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
}

pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct IdleIo<T> {
    inner: T,
    timeout: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
    in_flight: InFlightCount,
}

impl<T> IdleIo<T> {
    pub fn new(inner: T, timeout: Duration, in_flight: InFlightCount) -> Self {
        let now = Instant::now();
        IdleIo {
            inner,
            timeout,
            last: now,
            timer: Box::pin(tokio::time::sleep_until(now + timeout)),
            in_flight,
        }
    }

    /// Called when an operation is pending: errors once the connection has
    /// been idle for the whole timeout, otherwise (re)arms the timer.
    fn check_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
            let now = Instant::now();
            if self.in_flight.busy() || self.last + self.timeout > now {
                let base = if self.in_flight.busy() {
                    now
                } else {
                    self.last
                };
                self.timer.as_mut().reset(base + self.timeout);
                continue;
            }
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client idle timeout",
            ));
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => match self.check_idle(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                self.last = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => match self.check_idle(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                self.last = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => match self.check_idle(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn idle_connection_is_cut_but_not_while_busy() {
        let (a, mut b) = tokio::io::duplex(64);
        let count = InFlightCount::default();
        let mut io = IdleIo::new(a, Duration::from_secs(10), count.clone());
        let guard = count.enter();
        let mut buf = [0u8; 4];
        // Busy: 30 s of silence is fine; the read completes when data comes.
        let writer = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            b.write_all(b"ping").await.map(|_| b)
        };
        let (r, b) = tokio::join!(io.read_exact(&mut buf), writer);
        assert!(r.is_ok());
        drop(guard);
        let _b = b.unwrap();
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
