//! The response bodies. [`RespBody`] is what every response carries; its
//! [`UpstreamBody`] is streamed from a worker to the client. That one owns
//! the worker slot ([`Lease`]), the connection and the request's in-flight
//! mark on its client connection, so all live exactly as long as the
//! response: at the end of the body the connection goes back to the
//! pool and the slot is freed; if the client goes away early, the connection
//! is closed instead (its state is unknown). Between chunks it applies the
//! server timeout, so a worker that stalls mid-body is cut. The request
//! body, going the other way, is `upload`'s.
//!
//! An HTTP/2 client paces each stream with flow control, and hyper does not
//! poll a stream's body while its window is shut, so nothing inside the body
//! would ever notice a client that stopped reading. Its responses are
//! relayed by a task of their own instead ([`paced_by_client`]), which gives
//! up when the client takes nothing for `timeouts.client`: the worker and
//! its slot are freed and the stream is reset. (HTTP/1 gets the same bound
//! from the send timeout on the socket.)

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::Response;
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
    /// A worker's body relayed to an HTTP/2 client by [`paced_by_client`].
    Paced(PacedBody),
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
            RespBody::Paced(b) => Pin::new(b).poll_frame(cx),
            RespBody::Page(b) => Pin::new(b).poll_frame(cx).map_err(|e| match e {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Upstream(b) => b.is_end_stream(),
            RespBody::Paced(b) => b.ended,
            RespBody::Page(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Upstream(b) => b.size_hint(),
            RespBody::Paced(b) => b.hint,
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

/// The client took nothing of a response for the client timeout.
#[derive(Debug, thiserror::Error)]
#[error("the client took nothing of the response for {secs:.1}s")]
pub struct ClientStalled {
    pub secs: f64,
}

/// What the relaying task hands the response body.
enum Relayed {
    Frame(Result<Frame<Bytes>, BoxError>),
    End,
}

/// The receiving end of [`paced_by_client`]'s task.
pub struct PacedBody {
    rx: tokio::sync::mpsc::Receiver<Relayed>,
    hint: SizeHint,
    ended: bool,
}

impl Body for PacedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match this.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Relayed::Frame(f))) => Poll::Ready(Some(f)),
            Poll::Ready(Some(Relayed::End)) => {
                this.ended = true;
                Poll::Ready(None)
            }
            // The task gave up: an error, so hyper resets the stream
            // rather than ending it as if the body were whole.
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(Some(Err("response relay stopped".into())))
            }
        }
    }
}

/// `resp` (to an HTTP/2 client) with its worker body relayed by a task that
/// gives up when the client takes nothing for `limit`.
pub fn paced_by_client(resp: Response<RespBody>, limit: Duration) -> Response<RespBody> {
    let (parts, body) = resp.into_parts();
    let up = match body {
        RespBody::Upstream(up) if !up.is_end_stream() => up,
        other => return Response::from_parts(parts, other),
    };
    let hint = up.size_hint();
    // One frame in hand: the task waits for the client to take the previous one.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(relay_paced(up, tx, limit));
    let body = PacedBody {
        rx,
        hint,
        ended: false,
    };
    Response::from_parts(parts, RespBody::Paced(body))
}

async fn relay_paced(
    mut body: UpstreamBody,
    tx: tokio::sync::mpsc::Sender<Relayed>,
    limit: Duration,
) {
    use http_body_util::BodyExt;
    loop {
        let (msg, last) = match body.frame().await {
            None => (Relayed::End, true),
            Some(f) => {
                let failed = f.is_err();
                (Relayed::Frame(f), failed)
            }
        };
        match tokio::time::timeout(limit, tx.send(msg)).await {
            Ok(Ok(())) if !last => {}
            // Delivered the end (or an error), or the client's stream is gone.
            Ok(_) => return,
            Err(_) => {
                let worker = body
                    .lease
                    .as_ref()
                    .map(|l| l.backend.name.clone())
                    .unwrap_or_default();
                tracing::info!(worker = %worker, error = %ClientStalled { secs: limit.as_secs_f64() },
                    "HTTP/2 stream cut; worker freed");
                // Mid-body: the worker connection is closed, its slot freed.
                drop(body);
                return;
            }
        }
    }
}
