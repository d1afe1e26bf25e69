//! The client-side timeouts, kept on the client socket itself so that a
//! request costs no timer of its own:
//!
//! * **client idle** (HAProxy `timeout client`): a connection with no
//!   request in flight is closed after `timeout` (a slow worker is the
//!   server timeout's business, not this one's). On HTTP/1 it counts from
//!   the last byte moved either way. On HTTP/2 it counts from the last time
//!   a stream was open, not from the last byte: PING, SETTINGS and
//!   WINDOW_UPDATE frames move bytes without any request, and a client
//!   pinging an idle connection must not keep it for ever. hyper's HTTP/2
//!   server has no idle limit of its own (its keep-alive options only make
//!   the server ping).
//! * **client send** (HAProxy applies `timeout client` to writes too): a
//!   write that has waited `timeout` for the client to make room closes the
//!   connection, request in flight or not. A client that stopped reading
//!   (its TCP window full) would otherwise hold the connection, and with
//!   it the worker connection and worker slot its response streams from.
//! * **request header** (HTTP/1 only): from the moment a connection starts
//!   waiting for a request (it opened, or it wrote its last response byte)
//!   the whole header must arrive within `header_timeout`, however the
//!   bytes trickle in; this cuts slowloris clients and ends idle keep-alive
//!   connections, as hyper's `header_read_timeout` does. hyper's version
//!   arms and drops a timer per request, which measurably costs throughput
//!   (`docs/performance-history.md`, "HTTP balancer"); here one timer per connection
//!   is re-armed only when it fires.
//!
//! A request is in flight from the moment hyper hands it to the service
//! until its response body is finished ([`InFlight`] guard, carried by the
//! body), so a long response is never mistaken for a client that went quiet.
//! Whether a connection speaks HTTP/2 is read from its first bytes (the
//! client preface); HTTP/2 connections get no request header timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests of one connection in flight; the service holds an [`InFlight`] guard.
#[derive(Clone, Default)]
pub struct InFlightCount(Arc<Shared>);

#[derive(Default)]
struct Shared {
    /// Requests in flight (low 32 bits) and requests ever started (high 32
    /// bits, wrapping), in one word so that a request still costs one
    /// atomic add: any change of the word means a stream opened or ended.
    requests: AtomicU64,
    /// The connection was upgraded (WebSocket): bytes are relayed as they
    /// come and no request header is awaited any more.
    tunnel: AtomicBool,
}

/// One request entering: one more in flight, one more started.
const ENTER: u64 = (1 << 32) | 1;
const IN_FLIGHT: u64 = u32::MAX as u64;

/// A snapshot of [`Shared::requests`].
#[derive(Clone, Copy, PartialEq, Eq)]
struct Requests(u64);

impl Requests {
    fn busy(self) -> bool {
        self.0 & IN_FLIGHT > 0
    }
}

impl InFlightCount {
    pub fn enter(&self) -> InFlight {
        self.0.requests.fetch_add(ENTER, Ordering::AcqRel);
        InFlight(Arc::clone(&self.0))
    }

    fn requests(&self) -> Requests {
        Requests(self.0.requests.load(Ordering::Acquire))
    }

    fn tunnel(&self) -> bool {
        self.0.tunnel.load(Ordering::Acquire)
    }
}

/// One request in flight, until its response body is finished.
pub struct InFlight(Arc<Shared>);

impl InFlight {
    /// The request upgraded the connection: from now on only the idle
    /// timeout applies to it.
    pub fn into_tunnel(self) {
        self.0.tunnel.store(true, Ordering::Release);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The HTTP/2 client preface; anything else is HTTP/1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the connection's first bytes said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    /// This many bytes matched the HTTP/2 preface so far.
    Sniffing(usize),
    Http1,
    Http2,
}

impl Proto {
    fn sniff(self, data: &[u8]) -> Proto {
        let Proto::Sniffing(k) = self else {
            return self;
        };
        let want = &H2_PREFACE[k..];
        let n = want.len().min(data.len());
        if data[..n] != want[..n] {
            Proto::Http1
        } else if k + n == H2_PREFACE.len() {
            Proto::Http2
        } else {
            Proto::Sniffing(k + n)
        }
    }
}

pub struct IdleIo<T> {
    inner: T,
    timeout: Duration,
    header_timeout: Duration,
    /// The last byte moved, either way.
    last: Instant,
    /// The last byte written (or the connection's start): an HTTP/1
    /// connection with no request in flight has waited for its next
    /// request head since then.
    last_write: Instant,
    proto: Proto,
    /// Never later than the earliest deadline that can apply.
    timer: Pin<Box<Sleep>>,
    in_flight: InFlightCount,
    /// HTTP/2: the last time a stream was seen open, or seen to have
    /// opened or ended since the look before; the idle timeout counts
    /// from here. Looked at on each write (a stream's end is a write) and
    /// when the timer fires.
    streams_at: Instant,
    /// `in_flight` at that look.
    seen: Requests,
    /// Since when a write has been waiting for the client to make room.
    write_blocked: Option<Instant>,
}

/// Which way the pending operation went.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
}

impl<T> IdleIo<T> {
    pub fn new(
        inner: T,
        timeout: Duration,
        header_timeout: Duration,
        in_flight: InFlightCount,
    ) -> Self {
        let now = Instant::now();
        IdleIo {
            inner,
            timeout,
            header_timeout,
            last: now,
            last_write: now,
            proto: Proto::Sniffing(0),
            timer: Box::pin(tokio::time::sleep_until(now + timeout.min(header_timeout))),
            streams_at: now,
            seen: in_flight.requests(),
            in_flight,
            write_blocked: None,
        }
    }

    /// Notes at `now` whether a stream is open or opened or ended since the
    /// last look; returns whether one is open.
    fn observe_streams(&mut self, now: Instant) -> bool {
        let requests = self.in_flight.requests();
        if requests.busy() || requests != self.seen {
            self.streams_at = now;
        }
        self.seen = requests;
        requests.busy()
    }

    /// Called when an operation is pending: errors once a deadline has
    /// passed, otherwise (re)arms the timer no later than the next one.
    fn check(&mut self, cx: &mut Context<'_>, op: Op) -> io::Result<()> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
            let now = Instant::now();
            let busy = self.observe_streams(now);
            if let Some(since) = self.write_blocked {
                if since + self.timeout <= now {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client send timeout",
                    ));
                }
            }
            // Bytes an HTTP/2 client sends need no request; an HTTP/1
            // client's bytes are requests.
            let idle_from = if self.proto == Proto::Http2 {
                self.streams_at
            } else {
                self.last
            };
            if !busy && idle_from + self.timeout <= now {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client idle timeout",
                ));
            }
            let header_due = (!busy && self.proto != Proto::Http2 && !self.in_flight.tunnel())
                .then_some(self.last_write + self.header_timeout);
            if op == Op::Read && header_due.is_some_and(|d| d <= now) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request header timeout",
                ));
            }
            // While busy (or writing past the header deadline) the next wait
            // for a header can start any time from now: its deadline is at
            // least `now + header_timeout`, so the timer must not be later.
            let header_next = match header_due {
                Some(d) if d > now => d,
                _ => now + self.header_timeout,
            };
            let idle_next = if busy {
                now + self.timeout
            } else {
                idle_from + self.timeout
            };
            // A write blocked since after the timer was last armed is due
            // no earlier than that timer, so it needs no arming of its own.
            let send_next = self.write_blocked.map_or(idle_next, |s| s + self.timeout);
            self.timer
                .as_mut()
                .reset(idle_next.min(header_next).min(send_next));
        }
    }

    fn pending<R>(&mut self, cx: &mut Context<'_>, op: Op) -> Poll<io::Result<R>> {
        match self.check(cx, op) {
            Ok(()) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn wrote(&mut self) {
        let now = Instant::now();
        self.last = now;
        self.last_write = now;
        self.write_blocked = None;
        if self.proto == Proto::Http2 {
            self.observe_streams(now);
        }
    }

    /// A write (or flush) has to wait for the client: the send timeout
    /// starts, unless it already runs.
    fn write_pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        if self.write_blocked.is_none() {
            self.write_blocked = Some(Instant::now());
        }
        self.pending(cx, Op::Write)
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
                    self.proto = self.proto.sniff(&buf.filled()[before..]);
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.pending(cx, Op::Read),
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
                self.wrote();
                Poll::Ready(r)
            }
            Poll::Pending => self.write_pending(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                self.wrote();
                Poll::Ready(r)
            }
            Poll::Pending => self.write_pending(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    // A TLS stream buffers writes and waits for the client in its flush
    // (and in the close_notify of its shutdown): the same send timeout.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.write_pending(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Pending => self.write_pending(cx),
            ready => ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const IDLE: Duration = Duration::from_secs(60);
    const HEADER: Duration = Duration::from_secs(10);

    fn io(a: DuplexStream, count: &InFlightCount) -> IdleIo<DuplexStream> {
        IdleIo::new(a, IDLE, HEADER, count.clone())
    }

    /// Writes `b"x"` every second for `secs` seconds into `b`.
    async fn trickle(b: &mut DuplexStream, secs: u64) {
        for _ in 0..secs {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if b.write_all(b"x").await.is_err() {
                return;
            }
        }
    }

    /// Reads until an error; returns it and how many bytes came before.
    async fn read_until_error<R: AsyncRead + Unpin>(io: &mut R) -> (io::Error, usize) {
        let mut n = 0;
        let mut buf = [0u8; 64];
        loop {
            match io.read(&mut buf).await {
                Ok(0) => return (io::Error::other("eof"), n),
                Ok(k) => n += k,
                Err(e) => return (e, n),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connection_is_cut_but_not_while_busy() {
        let (a, mut b) = tokio::io::duplex(64);
        let count = InFlightCount::default();
        let mut io = IdleIo::new(
            a,
            Duration::from_secs(10),
            Duration::from_secs(600),
            count.clone(),
        );
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
        assert_eq!(err.to_string(), "client idle timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_header_is_cut_at_the_header_timeout() {
        let (a, mut b) = tokio::io::duplex(64);
        let count = InFlightCount::default();
        let mut io = io(a, &count);
        let start = Instant::now();
        let reader = async {
            let r = read_until_error(&mut io).await;
            (r, start.elapsed())
        };
        let (((err, n), cut_after), ()) = tokio::join!(reader, trickle(&mut b, 30));
        assert_eq!(err.to_string(), "request header timeout");
        assert_eq!(cut_after.as_secs(), HEADER.as_secs());
        assert!(
            n >= 9,
            "bytes kept arriving and did not extend the deadline"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_header_wait_starts_at_the_last_response_byte() {
        let (a, mut b) = tokio::io::duplex(64);
        let count = InFlightCount::default();
        let mut io = io(a, &count);
        // A request, 25 s of work (in flight), then its response.
        let guard = count.enter();
        tokio::time::sleep(Duration::from_secs(25)).await;
        io.write_all(b"response").await.unwrap();
        drop(guard);
        let written = Instant::now();
        let mut buf = [0u8; 8];
        b.read_exact(&mut buf).await.unwrap();
        let (err, _) = read_until_error(&mut io).await;
        assert_eq!(err.to_string(), "request header timeout");
        assert_eq!(written.elapsed().as_secs(), HEADER.as_secs());
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_response_is_not_a_quiet_client() {
        let (a, mut b) = tokio::io::duplex(64);
        let count = InFlightCount::default();
        // hyper watches the read side (to see the client leave) while it
        // writes a response; here a response trickles for 3 header timeouts.
        let (mut rd, mut wr) = tokio::io::split(io(a, &count));
        let guard = count.enter();
        let start = Instant::now();
        let writer = async {
            for _ in 0..3 {
                tokio::time::sleep(HEADER).await;
                wr.write_all(b"chunk").await.unwrap();
            }
            drop(guard);
            wr
        };
        let reader = async {
            let (err, _) = read_until_error(&mut rd).await;
            (err, start.elapsed())
        };
        let drain = async {
            let mut buf = [0u8; 15];
            b.read_exact(&mut buf).await.unwrap();
            b
        };
        let (_wr, (err, cut_after), _b) = tokio::join!(writer, reader, drain);
        assert_eq!(err.to_string(), "request header timeout");
        assert_eq!(
            cut_after.as_secs(),
            4 * HEADER.as_secs(),
            "one header timeout after the response"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn http2_connections_get_only_the_idle_timeout() {
        let (a, mut b) = tokio::io::duplex(64);
        let count = InFlightCount::default();
        let mut io = io(a, &count);
        b.write_all(H2_PREFACE).await.unwrap();
        let start = Instant::now();
        let (err, n) = read_until_error(&mut io).await;
        assert_eq!(n, H2_PREFACE.len());
        assert_eq!(err.to_string(), "client idle timeout");
        assert_eq!(start.elapsed().as_secs(), IDLE.as_secs());
    }

    #[tokio::test(start_paused = true)]
    async fn http2_bytes_without_a_stream_do_not_keep_a_connection() {
        let (a, mut b) = tokio::io::duplex(64);
        let count = InFlightCount::default();
        let mut io = io(a, &count);
        b.write_all(H2_PREFACE).await.unwrap();
        let start = Instant::now();
        // A PING (here: a byte) every second, and never a request.
        let reader = async {
            let (err, _) = read_until_error(&mut io).await;
            (err, start.elapsed())
        };
        let ((err, cut_after), ()) = tokio::join!(reader, trickle(&mut b, 100));
        assert_eq!(err.to_string(), "client idle timeout");
        assert_eq!(cut_after.as_secs(), IDLE.as_secs());
    }

    #[tokio::test(start_paused = true)]
    async fn http2_idle_counts_from_the_last_stream() {
        let (a, mut b) = tokio::io::duplex(64);
        let count = InFlightCount::default();
        let (mut rd, mut wr) = tokio::io::split(io(a, &count));
        b.write_all(H2_PREFACE).await.unwrap();
        let start = Instant::now();
        let guard = count.enter();
        let stream = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            // A small response: its body ends (the guard goes) before
            // hyper writes its last frame.
            drop(guard);
            wr.write_all(b"resp").await.unwrap();
            wr
        };
        let reader = async {
            let (err, _) = read_until_error(&mut rd).await;
            (err, start.elapsed())
        };
        let (_wr, (err, cut_after), ()) = tokio::join!(stream, reader, trickle(&mut b, 120));
        assert_eq!(err.to_string(), "client idle timeout");
        assert_eq!(cut_after.as_secs(), 30 + IDLE.as_secs());
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_cut_even_mid_response() {
        let (a, b) = tokio::io::duplex(64);
        let count = InFlightCount::default();
        let mut io = io(a, &count);
        let _response = count.enter();
        let start = Instant::now();
        // The client reads nothing: after 64 bytes every write waits.
        let err = loop {
            if let Err(e) = io.write_all(&[b'x'; 16]).await {
                break e;
            }
        };
        assert_eq!(err.to_string(), "client send timeout");
        assert_eq!(start.elapsed(), IDLE);
        drop(b);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_reads_slowly_is_not_cut() {
        let (a, mut b) = tokio::io::duplex(64);
        let count = InFlightCount::default();
        let mut io = io(a, &count);
        let _response = count.enter();
        // 16 bytes read every half idle timeout: the writes wait, never
        // for a whole idle timeout.
        let reader = async {
            let mut buf = [0u8; 16];
            for _ in 0..14 {
                tokio::time::sleep(IDLE / 2).await;
                b.read_exact(&mut buf).await.unwrap();
            }
        };
        let (written, ()) = tokio::join!(io.write_all(&[b'x'; 64 + 160]), reader);
        assert!(written.is_ok(), "{written:?}");
    }

    #[test]
    fn the_preface_decides_the_protocol() {
        let p = Proto::Sniffing(0).sniff(b"PRI * HTTP/2.0");
        assert_eq!(p, Proto::Sniffing(14));
        assert_eq!(p.sniff(b"\r\n\r\nSM\r\n\r\nframes"), Proto::Http2);
        assert_eq!(Proto::Sniffing(0).sniff(b"PRIX"), Proto::Http1);
        assert_eq!(Proto::Sniffing(0).sniff(b"GET / HTTP/1.1"), Proto::Http1);
        assert_eq!(Proto::Http1.sniff(H2_PREFACE), Proto::Http1);
    }
}
