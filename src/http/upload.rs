//! The client's request body on its way to a worker. [`UploadBody`] wraps
//! it and does two things:
//!
//! * It notes every chunk in a [`Progress`], from which the server timeout
//!   counts: a long upload that keeps moving is not a 504.
//! * It bounds the whole body by `timeouts.request_body`, counted from the
//!   end of the request header. The server timeout restarts at every chunk,
//!   so a client dripping one byte every few seconds would otherwise hold
//!   its connection, a worker connection and a worker slot for ever (the
//!   body is streamed, so a PHP worker sits blocked reading it). On expiry
//!   the body fails with [`UploadTimeout`]; hyper then aborts the request
//!   towards the worker, whose connection is closed and never pooled, and
//!   the client gets 408 if nothing was sent to it yet (`proxy`).
//!
//! The deadline's timer is armed only when the client makes the upload
//! wait, so a body that is already there costs no timer.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::pool::{BoxError, UpBody};

/// The client did not send its whole body within `timeouts.request_body`.
#[derive(Debug, thiserror::Error)]
#[error("request body not complete within {secs:.1}s")]
pub struct UploadTimeout {
    pub secs: f64,
}

/// When a request last made progress towards the worker: the server timeout
/// counts from the last request-body chunk, so a long upload is not a 504.
pub struct Progress {
    /// When the request header was received.
    base: Instant,
    /// Milliseconds after `base`.
    last_ms: AtomicU64,
}

impl Progress {
    pub fn new() -> Arc<Self> {
        Arc::new(Progress {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    pub fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    pub fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Awaits `fut` until it completes or nothing moved for `idle`.
    pub async fn within<F: Future>(&self, idle: Duration, fut: F) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            match tokio::time::timeout_at(self.last() + idle, &mut fut).await {
                Ok(out) => return Some(out),
                Err(_) if self.last() + idle <= Instant::now() => return None,
                Err(_) => {}
            }
        }
    }
}

/// A client request body that touches a [`Progress`] on every chunk and
/// fails with [`UploadTimeout`] once its deadline has passed.
pub struct UploadBody {
    inner: UpBody,
    progress: Arc<Progress>,
    limit: Duration,
    /// Armed (at `progress.base + limit`) the first time the client makes
    /// the upload wait.
    timer: Option<Pin<Box<Sleep>>>,
}

impl UploadBody {
    /// `limit` (`timeouts.request_body`) counts from `progress`'s start.
    pub fn new(inner: UpBody, progress: Arc<Progress>, limit: Duration) -> Self {
        UploadBody {
            inner,
            progress,
            limit,
            timer: None,
        }
    }

    fn timed_out(&self) -> BoxError {
        Box::new(UploadTimeout {
            secs: self.limit.as_secs_f64(),
        })
    }
}

impl Body for UploadBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                // A client that always has a byte ready when asked never
                // waits on the timer; an elapsed one is read without a clock.
                if this.timer.as_ref().is_some_and(|t| t.is_elapsed()) {
                    return Poll::Ready(Some(Err(this.timed_out())));
                }
                this.progress.touch();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                let deadline = this.progress.base + this.limit;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(this.timed_out())));
                }
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(start_paused = true)]
    async fn progress_extends_the_server_timeout() {
        let idle = Duration::from_millis(100);
        let slow = async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            7
        };
        let p = Progress::new();
        let toucher = {
            let p = Arc::clone(&p);
            async move {
                for _ in 0..10 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    p.touch();
                }
            }
        };
        let (got, ()) = tokio::join!(p.within(idle, slow), toucher);
        assert_eq!(
            got,
            Some(7),
            "an upload still moving keeps the request alive"
        );
        let silent = Progress::new();
        let never = std::future::pending::<()>();
        assert_eq!(silent.within(idle, never).await, None);
    }

    /// A body of one-byte chunks, one every `every`, that never ends.
    struct Drip {
        every: Duration,
        next: Pin<Box<Sleep>>,
    }

    impl Body for Drip {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            if self.next.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let at = Instant::now() + self.every;
            self.next.as_mut().reset(at);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }

    fn dripping(every: Duration) -> UpBody {
        Drip {
            every,
            next: Box::pin(tokio::time::sleep(every)),
        }
        .boxed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_dripping_body_fails_at_its_deadline() {
        let limit = Duration::from_secs(60);
        let p = Progress::new();
        let start = Instant::now();
        let mut body = UploadBody::new(dripping(Duration::from_secs(3)), Arc::clone(&p), limit);
        let mut chunks = 0;
        let err = loop {
            match body.frame().await {
                Some(Ok(_)) => chunks += 1,
                Some(Err(e)) => break e,
                None => panic!("the body never ends"),
            }
        };
        assert!(err.is::<UploadTimeout>(), "{err}");
        assert_eq!(start.elapsed(), limit, "cut at the deadline, not later");
        assert_eq!(chunks, 19, "every byte before it went through");
        assert!(p.last() > start, "each chunk was progress");
    }
}
