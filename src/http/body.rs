//! The response bodies. [`RespBody`] is what every response carries; its
//! [`UpstreamBody`] is streamed from a worker to the client. That one owns
//! the worker slot ([`Lease`]), the connection and the request's in-flight
//! mark on its client connection, so all live exactly as long as the
//! response: at the end of the body the connection goes back to the
//! pool and the slot is freed; if the client goes away early, the connection
//! is closed instead (its state is unknown). Between chunks it applies the
//! server timeout, so a worker that stalls mid-body is cut. The request
//! body, going the other way, is `upload`'s.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::idle::InFlight;
use super::pool::{BoxError, Conn};
use super::upstream::Lease;

/// A worker stopped sending in the middle of a body.
#[derive(Debug, thiserror::Error)]
#[error("worker {worker} sent nothing for {secs:.1}s in the middle of a body")]
pub struct BodyStalled {
    pub worker: String,
    pub secs: f64,
}

/// The body of every response the balancer sends: a worker's, streamed, or
/// a page made here (errors, stats). An enum rather than a boxed body, so
/// that a proxied response allocates nothing for its body.
pub enum RespBody {
    Upstream(UpstreamBody),
    Page(Full<Bytes>),
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RespBody::Upstream(b) => Pin::new(b).poll_frame(cx),
            RespBody::Page(b) => Pin::new(b).poll_frame(cx).map_err(|e| match e {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Upstream(b) => b.is_end_stream(),
            RespBody::Page(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Upstream(b) => b.size_hint(),
            RespBody::Page(b) => b.size_hint(),
        }
    }
}

pub struct UpstreamBody {
    inner: Incoming,
    conn: Option<Conn>,
    lease: Option<Lease>,
    idle: Duration,
    /// Armed the first time the worker makes us wait, so that a body that
    /// is already there (the usual small page) costs no timer at all.
    timer: Option<Pin<Box<Sleep>>>,
    /// The event loop whose pool the connection goes back to.
    shard: usize,
    /// The request stays in flight on its client connection until here.
    in_flight: Option<InFlight>,
}

impl UpstreamBody {
    /// `conn` is `None` when the connection must not be reused (upgrades).
    pub fn new(
        inner: Incoming,
        conn: Option<Conn>,
        lease: Lease,
        idle: Duration,
        shard: usize,
        in_flight: InFlight,
    ) -> Self {
        UpstreamBody {
            inner,
            conn,
            lease: Some(lease),
            idle,
            timer: None,
            shard,
            in_flight: Some(in_flight),
        }
    }

    /// The body was read to its end: recycle the connection, free the slot.
    fn finish(&mut self) {
        if let (Some(conn), Some(lease)) = (self.conn.take(), self.lease.as_ref()) {
            lease.backend.pool(self.shard).put(conn);
        }
        self.lease = None;
        self.in_flight = None;
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(t) = this.timer.as_mut() {
                    t.as_mut().reset(Instant::now() + this.idle);
                }
                if this.inner.is_end_stream() {
                    this.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.conn = None;
                this.lease = None;
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if timer.as_mut().poll(cx).is_ready() {
                    let worker = this
                        .lease
                        .as_ref()
                        .map(|l| l.backend.name.clone())
                        .unwrap_or_default();
                    tracing::warn!(worker = %worker, "worker stalled mid-body; cutting the response");
                    if let Some(l) = &this.lease {
                        l.backend.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                    this.conn = None;
                    this.lease = None;
                    return Poll::Ready(Some(Err(Box::new(BodyStalled {
                        worker,
                        secs: this.idle.as_secs_f64(),
                    }))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // hyper may never poll an empty body (HEAD, 204, 304): it is complete.
        if self.inner.is_end_stream() {
            self.finish();
        }
    }
}
