//! Clients and workers that are slow, stuck or odd, over real loopback
//! sockets: a request body that drips, a client that stops reading its
//! response, an HTTP/2 client that only pings, upgrade tokens other than
//! WebSocket, and which dropped requests are replayed on another worker.
//!
//! Deadlines here are guards that turn a hang into a failure; the tests
//! assert what the client and the worker see (status, closed connection,
//! counters), never how long it took.

mod http_common;

use std::time::Duration;

use http_common::*;
use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for the balancer to act before calling it a hang.
const HANG: Duration = Duration::from_secs(30);

/// Reads until the peer closes (EOF or reset); panics if it stays open.
async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(HANG, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the balancer left the connection open");
    out
}

/// Reads one response head (through the blank line).
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(HANG, s.read(&mut b))
            .await
            .expect("a response head")
            .expect("read");
        assert_eq!(n, 1, "closed before the response head: {head:?}");
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn a_dripping_request_body_gets_408_and_frees_the_worker() {
    let w = Worker::start("wa1").await;
    let sections = "[timeouts]\nrequest_body = \"1s\"\n";
    let bal = Balancer::start(config("", sections, &[(&w, 1)])).await;
    let mut s = TcpStream::connect(bal.addr).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nfirst")
        .await
        .unwrap();
    // One byte at a time, never the whole body: each byte would restart
    // the server timeout, so only a deadline on the whole body ends this.
    let mut reply = Vec::new();
    for _ in 0..(HANG.as_millis() / 200) {
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(n)) => {
                reply.extend_from_slice(&buf[..n]);
                break;
            }
            Ok(Err(e)) => panic!("reset without a response: {e}"),
            Err(_) => {}
        }
        if s.write_all(b"x").await.is_err() {
            break;
        }
    }
    assert!(!reply.is_empty(), "no answer to a body that never ends");
    reply.extend(read_until_closed(&mut s).await);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    // The worker saw its request's connection end (it was not kept for
    // another request) and never got a whole body.
    wait_until("the worker's connection is cut", || async {
        w.aborted() == 1
    })
    .await;
    assert_eq!(w.posts(), 0);
    // A body that arrives in time is served as usual.
    let r = send(&client(), Method::POST, &bal.url("/upload"), None, "cart=1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "wa1 6");
}
#[tokio::test]
async fn a_client_that_stops_reading_is_cut_and_frees_the_worker() {
    let w = Worker::start("wa1").await;
    let sections = "[timeouts]\nclient = \"1s\"\n";
    let mut cfg = config("", sections, &[(&w, 1)]);
    // One request at a time on the worker: the next client is served only
    // if the stuck one gave its slot back.
    cfg.backends[0].maxconn = 1;
    let bal = Balancer::start(cfg).await;
    let mut s = TcpStream::connect(bal.addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Never read: the socket buffers fill and the balancer's writes stall.
    wait_until("the worker's response is cut", || async {
        w.aborted() == 1
    })
    .await;
    let got = read_until_closed(&mut s).await;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got[..got.len().min(80)])
    );
    assert!(
        got.len() < 1 << 30,
        "the whole body cannot have gone through"
    );
    let r = get(&client(), &bal.url("/")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}
#[tokio::test]
async fn an_http2_connection_without_streams_closes_even_while_pinged() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let w = Worker::start("wa1").await;
    let sections = "[timeouts]\nclient = \"1s\"\n";
    let bal = Balancer::start(config("", sections, &[(&w, 1)])).await;
    let io = TokioIo::new(TcpStream::connect(bal.addr).await.unwrap());
    let (mut send_req, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(100))
        .keep_alive_while_idle(true)
        .handshake(io)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let req = |path: &str| {
        hyper::Request::get(format!("http://x:{}{path}", bal.addr.port()))
            .body(Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    // An open stream keeps the connection, however long it waits.
    let held = send_req.send_request(req("/hold"));
    let release = async {
        wait_until("the request is held", || async { w.holding() == 1 }).await;
        // Well past the client timeout, with only pings moving.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        w.release(1);
    };
    let (r, ()) = tokio::join!(held, release);
    let r = r.expect("the held request is answered");
    assert_eq!(r.status(), 200);
    r.into_body().collect().await.unwrap();
    // Then no stream: pings alone do not keep the connection.
    let ended = tokio::time::timeout(HANG, conn)
        .await
        .expect("an idle HTTP/2 connection must be closed, pings or not")
        .unwrap();
    if let Err(e) = ended {
        assert!(!e.is_timeout(), "the client gave up, not the balancer: {e}");
    }
}

#[tokio::test]
async fn only_websocket_upgrades_are_tunnelled() {
    let w = Worker::start("wa1").await;
    let bal = Balancer::start(config("", "", &[(&w, 1)])).await;
    // h2c: the worker would switch, so the balancer must not ask it to.
    let mut s = TcpStream::connect(bal.addr).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut s).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("upgrade"), "{head}");
    let h = w.state.last_headers.lock().unwrap().clone().unwrap();
    assert!(!h.contains_key("upgrade"), "{h:?}");
    assert!(!h.contains_key("http2-settings"), "{h:?}");
    // Served as a plain request, the connection stays HTTP/1.1.
    let mut body = [0u8; 5];
    s.read_exact(&mut body).await.unwrap();
    assert_eq!(&body, b"wa1 0");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = read_until_closed(&mut s).await;
    assert!(reply.starts_with(b"HTTP/1.1 200"), "{reply:?}");

    // WebSocket, whatever its case, is still tunnelled.
    let mut s = TcpStream::connect(bal.addr).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    s.write_all(b"frame").await.unwrap();
    let mut echo = [0u8; 5];
    s.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"frame");
}
#[tokio::test]
async fn a_dropped_request_is_replayed_only_with_empty_response() {
    let (a, b) = (Worker::start("wa1").await, Worker::start("wa2").await);
    a.set_mode(Mode::DieAfterBody);
    b.set_mode(Mode::DieAfterBody);
    let c = client();
    // Default (`conn-failure`): a request that reached a worker is not
    // sent again, even a GET.
    let bal = Balancer::start(config("retries = 3", "", &[(&a, 1), (&b, 1)])).await;
    for (i, method) in [Method::GET, Method::DELETE].into_iter().enumerate() {
        let r = send(&c, method.clone(), &bal.url("/catalog"), None, "").await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{method}");
        assert_eq!(
            a.gets() + b.gets(),
            i + 1,
            "{method} reached one worker once"
        );
    }
    // With `empty-response`, one that got nothing back is: retries + 1 attempts.
    let bal = Balancer::start(config(
        "retries = 3\nretry_on = [\"conn-failure\", \"empty-response\"]",
        "",
        &[(&a, 1), (&b, 1)],
    ))
    .await;
    let before = a.gets() + b.gets();
    let r = get(&c, &bal.url("/catalog")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(a.gets() + b.gets(), before + 4);
    // A connect failure moves on by default.
    a.set_mode(Mode::Normal);
    b.kill().await;
    let bal = Balancer::start(config("retries = 3", "", &[(&b, 1), (&a, 1)])).await;
    for _ in 0..4 {
        let r = get(&c, &bal.url("/")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.worker(), "wa1");
    }
}

#[tokio::test]
async fn an_http2_stream_whose_window_never_opens_is_cut_and_frees_the_worker() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let w = Worker::start("wa1").await;
    let sections = "[timeouts]\nclient = \"1s\"\n";
    let mut cfg = config("", sections, &[(&w, 1)]);
    // One request at a time on the worker: the next client is served only
    // if the stalled stream gave its slot back.
    cfg.backends[0].maxconn = 1;
    let bal = Balancer::start(cfg).await;
    let io = TokioIo::new(TcpStream::connect(bal.addr).await.unwrap());
    let (mut send_req, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        // Pings keep the connection itself busy: only the stream stalls.
        .keep_alive_interval(Duration::from_millis(100))
        .keep_alive_while_idle(true)
        .handshake(io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("http://x:{}/big", bal.addr.port()))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let r = send_req.send_request(req).await.expect("the head arrives");
    assert_eq!(r.status(), 200);
    // The body is never read: hyper never releases flow-control capacity,
    // so the stream's window stays shut once its first 64 KiB arrived.
    let _unread = r;
    wait_until("the worker's response is cut", || async {
        w.aborted() == 1
    })
    .await;
    let r = get(&client(), &bal.url("/")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // A stream that is read gets its whole body, over HTTP/2 as well.
    let req = hyper::Request::get(format!("http://x:{}/", bal.addr.port()))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let r = send_req.send_request(req).await.expect("a second stream");
    assert_eq!(r.status(), 200);
    let body = http_body_util::BodyExt::collect(r.into_body())
        .await
        .expect("the whole body")
        .to_bytes();
    assert!(body.starts_with(b"wa1 "), "{body:?}");
}
