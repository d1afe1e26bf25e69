//! A test worker: a small hyper server on a free loopback port that counts
//! what it receives (GETs, POSTs whose body it read, health checks) and can
//! misbehave on demand: answer garbage, stay silent, drop the connection
//! after reading a POST body, hold requests until released, or die.
//! `/big` answers a body too large to ever finish, and the worker counts
//! the requests whose connection was cut under them (`aborted`).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Mode {
    Normal = 0,
    /// Answers every connection with bytes that are not HTTP.
    Garbage = 1,
    /// Reads the request and never answers.
    Silent = 2,
    /// Reads the whole request (and counts it), then drops the connection.
    DieAfterBody = 3,
}

pub struct WorkerState {
    mode: AtomicU8,
    pub gets: AtomicUsize,
    pub posts: AtomicUsize,
    pub checks: AtomicUsize,
    /// Requests parked in `/hold` right now.
    pub holding: AtomicUsize,
    /// Requests whose connection ended under them: a request body that
    /// never arrived whole, or a `/big` response cut before its end.
    pub aborted: AtomicUsize,
    release: Semaphore,
    pub last_headers: Mutex<Option<HeaderMap>>,
}

pub struct Worker {
    pub name: String,
    pub addr: SocketAddr,
    pub state: Arc<WorkerState>,
    stop: Mutex<CancellationToken>,
    /// The accept loop and every connection task of the current listener.
    tasks: Mutex<TaskTracker>,
}

impl Worker {
    pub async fn start(name: &str) -> Worker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let w = Worker {
            name: name.to_string(),
            addr,
            state: Arc::new(WorkerState {
                mode: AtomicU8::new(Mode::Normal as u8),
                gets: AtomicUsize::new(0),
                posts: AtomicUsize::new(0),
                checks: AtomicUsize::new(0),
                holding: AtomicUsize::new(0),
                aborted: AtomicUsize::new(0),
                release: Semaphore::new(0),
                last_headers: Mutex::new(None),
            }),
            stop: Mutex::new(CancellationToken::new()),
            tasks: Mutex::new(TaskTracker::new()),
        };
        w.serve(listener);
        w
    }

    fn serve(&self, listener: TcpListener) {
        let stop = self.stop.lock().unwrap().clone();
        let tasks = self.tasks.lock().unwrap().clone();
        let state = Arc::clone(&self.state);
        let name = self.name.clone();
        let tracker = tasks.clone();
        tasks.spawn(async move {
            loop {
                let (mut stream, _) = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                };
                let state = Arc::clone(&state);
                let name = name.clone();
                let stop = stop.clone();
                tracker.spawn(async move {
                    if state.mode() == Mode::Garbage {
                        let garbage = async {
                            let mut buf = [0u8; 1024];
                            let _ = stream.read(&mut buf).await;
                            let _ = stream.write_all(b"\x00\x01NOT-HTTP garbage\r\n\r\n").await;
                        };
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            _ = garbage => {}
                        }
                        return;
                    }
                    let svc = service_fn(move |req| handle(Arc::clone(&state), name.clone(), req));
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades();
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = conn => {}
                    }
                });
            }
        });
    }

    pub fn set_mode(&self, m: Mode) {
        self.state.mode.store(m as u8, Ordering::SeqCst);
    }

    pub fn gets(&self) -> usize {
        self.state.gets.load(Ordering::SeqCst)
    }

    pub fn posts(&self) -> usize {
        self.state.posts.load(Ordering::SeqCst)
    }

    pub fn holding(&self) -> usize {
        self.state.holding.load(Ordering::SeqCst)
    }

    pub fn aborted(&self) -> usize {
        self.state.aborted.load(Ordering::SeqCst)
    }

    /// Lets `n` held requests answer.
    pub fn release(&self, n: usize) {
        self.state.release.add_permits(n);
    }

    /// Closes the listener and every connection: the port refuses connections.
    /// Returns once the listener and every connection are closed: the
    /// balancer runs on threads of its own, so it could otherwise still
    /// reach a worker that is only about to stop.
    pub async fn kill(&self) {
        self.stop.lock().unwrap().cancel();
        let tasks = self.tasks.lock().unwrap().clone();
        tasks.close();
        tasks.wait().await;
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        *self.stop.lock().unwrap() = CancellationToken::new();
        *self.tasks.lock().unwrap() = TaskTracker::new();
        let sock = TcpSocket::new_v4().unwrap();
        sock.set_reuseaddr(true).unwrap();
        sock.bind(self.addr).unwrap();
        self.serve(sock.listen(128).unwrap());
    }
}

impl WorkerState {
    fn mode(&self) -> Mode {
        match self.mode.load(Ordering::SeqCst) {
            1 => Mode::Garbage,
            2 => Mode::Silent,
            3 => Mode::DieAfterBody,
            _ => Mode::Normal,
        }
    }
}

type Resp = Response<Either<Full<Bytes>, BigBody>>;

fn text(status: StatusCode, name: &str, body: String) -> Resp {
    Response::builder()
        .status(status)
        .header("x-worker", name)
        .body(Either::Left(Full::new(Bytes::from(body))))
        .unwrap()
}

/// `/big`'s body: 64 KiB chunks, far more than any socket buffer holds,
/// made as they are read. Counts in `aborted` if dropped before its end.
pub struct BigBody {
    left: usize,
    state: Arc<WorkerState>,
}

/// 1 GiB: only the bytes the sockets on the way can buffer ever move.
const BIG_BODY: usize = 1 << 30;
const BIG_CHUNK: usize = 64 * 1024;

impl Body for BigBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(BIG_CHUNK);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
}

impl Drop for BigBody {
    fn drop(&mut self) {
        if self.left > 0 {
            self.state.aborted.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn handle(
    state: Arc<WorkerState>,
    name: String,
    mut req: Request<Incoming>,
) -> Result<Resp, std::io::Error> {
    let is_check = req
        .headers()
        .get("user-agent")
        .is_some_and(|v| v == "sqlproxy-check");
    if is_check {
        state.checks.fetch_add(1, Ordering::SeqCst);
        return Ok(text(StatusCode::OK, &name, "ok".into()));
    }
    *state.last_headers.lock().unwrap() = Some(req.headers().clone());
    if req.uri().path() == "/ws" && req.headers().contains_key("upgrade") {
        // Switches to whatever protocol was asked for: the balancer decides
        // which upgrades reach a worker at all.
        let proto = req.headers()["upgrade"].clone();
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 64];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        return Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", proto)
            .body(Either::Left(Full::new(Bytes::new())))
            .unwrap());
    }
    if req.uri().path() == "/big" {
        let body = BigBody {
            left: BIG_BODY,
            state: Arc::clone(&state),
        };
        return Ok(Response::builder()
            .header("x-worker", name)
            .body(Either::Right(body))
            .unwrap());
    }
    let is_post = req.method() == hyper::Method::POST;
    let hold = req.uri().path() == "/hold";
    let body = req.into_body().collect().await.map(|b| b.to_bytes().len());
    let Ok(len) = body else {
        state.aborted.fetch_add(1, Ordering::SeqCst);
        return Err(std::io::Error::other("body read failed"));
    };
    if is_post {
        state.posts.fetch_add(1, Ordering::SeqCst);
    } else {
        state.gets.fetch_add(1, Ordering::SeqCst);
    }
    match state.mode() {
        Mode::Silent => std::future::pending::<()>().await,
        Mode::DieAfterBody => return Err(std::io::Error::other("worker dies")),
        _ => {}
    }
    if hold {
        state.holding.fetch_add(1, Ordering::SeqCst);
        if let Ok(p) = state.release.acquire().await {
            p.forget();
        }
        state.holding.fetch_sub(1, Ordering::SeqCst);
    }
    Ok(text(StatusCode::OK, &name, format!("{name} {len}")))
}
