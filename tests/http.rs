//! The HTTP balancer's proxying over real loopback sockets: distribution,
//! health and rerouting, the never-replay-a-POST rule, limits and timeouts,
//! headers, stickiness, HTTP/2 and upgrades. Stats, control, drain and the
//! `php -S` end-to-end test are in `http_admin.rs`.

mod http_common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_common::*;
use hyper::{Method, StatusCode};

fn within_5pct(got: usize, want: usize) -> bool {
    got.abs_diff(want) * 20 <= want
}

#[tokio::test]
async fn roundrobin_and_weights_distribute_1000_requests() {
    let (a, b2, c3) = (
        Worker::start("wa1").await,
        Worker::start("wa2").await,
        Worker::start("wa3").await,
    );
    let bal = Balancer::start(config("", "", &[(&a, 1), (&b2, 1), (&c3, 2)])).await;
    let seen = count_workers(&client(), &bal, 1000).await;
    assert!(within_5pct(seen["wa1"], 250), "{seen:?}");
    assert!(within_5pct(seen["wa2"], 250), "{seen:?}");
    assert!(within_5pct(seen["wa3"], 500), "{seen:?}");
    // The workers' own counters agree with what the client saw.
    assert_eq!(a.gets() + b2.gets() + c3.gets(), 1000);
}

#[tokio::test]
async fn random2_spreads_over_both() {
    let (a, b) = (Worker::start("wa1").await, Worker::start("wa2").await);
    let bal = Balancer::start(config("balance = \"random2\"", "", &[(&a, 1), (&b, 1)])).await;
    let seen = count_workers(&client(), &bal, 200).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[tokio::test]
async fn leastconn_prefers_the_idle_worker() {
    let (a, b) = (Worker::start("wa1").await, Worker::start("wa2").await);
    let bal = Balancer::start(config("balance = \"leastconn\"", "", &[(&a, 1), (&b, 1)])).await;
    let c = client();
    let held = tokio::spawn({
        let (c, url) = (c.clone(), bal.url("/hold"));
        async move { get(&c, &url).await }
    });
    wait_until("a request is held", || async {
        a.holding() + b.holding() == 1
    })
    .await;
    let busy = if a.holding() == 1 { "wa1" } else { "wa2" };
    let seen = count_workers(&c, &bal, 50).await;
    assert_eq!(
        seen.get(busy),
        None,
        "busy worker {busy} got requests: {seen:?}"
    );
    a.release(1);
    b.release(1);
    assert_eq!(held.await.unwrap().status, 200);
}

#[tokio::test]
async fn killed_worker_is_rerouted_then_returns() {
    let (a, b) = (Worker::start("wa1").await, Worker::start("wa2").await);
    let health = "[health]\ninterval = \"100ms\"\ntimeout = \"500ms\"\nrise = 2\nfall = 2\n";
    // GETs in flight on wa1 when it dies are replayed only with empty-response.
    let retry_on = "retry_on = [\"conn-failure\", \"empty-response\"]";
    let bal = Balancer::start(config(retry_on, health, &[(&a, 1), (&b, 1)])).await;
    let c = client();
    // Four clients in a loop while wa1 dies.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (c, url) = (c.clone(), bal.url("/"));
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let n = if get(&c, &url).await.status == 200 {
                        &ok
                    } else {
                        &failed
                    };
                    n.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    wait_until("load running", || async {
        ok.load(Ordering::SeqCst) >= 100
    })
    .await;
    a.kill().await;
    wait_until("wa1 DOWN", || async {
        bal.backend("wa1").await["state"] == "DOWN"
    })
    .await;
    let at_down = ok.load(Ordering::SeqCst);
    wait_until("load after DOWN", || async {
        ok.load(Ordering::SeqCst) >= at_down + 200
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.await.unwrap();
    }
    // Connect failures and dropped GETs were retried on wa2: nothing failed,
    // not even between the kill and the checks noticing.
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    let seen = count_workers(&c, &bal, 50).await;
    assert_eq!(seen["wa2"], 50);
    a.restart().await;
    wait_until("wa1 UP", || async {
        bal.backend("wa1").await["state"] == "UP"
    })
    .await;
    let seen = count_workers(&c, &bal, 50).await;
    assert!(seen["wa1"] >= 20, "{seen:?}");
    assert!(bal.backend("wa1").await["last_check"]["result"]
        .as_str()
        .unwrap()
        .starts_with("L7OK"));
}

#[tokio::test]
async fn post_is_never_sent_twice() {
    let (a, b) = (Worker::start("wa1").await, Worker::start("wa2").await);
    a.set_mode(Mode::DieAfterBody);
    b.set_mode(Mode::DieAfterBody);
    // Even with empty-response listed, which replays a dropped GET.
    let top = "retries = 3\nretry_on = [\"conn-failure\", \"empty-response\"]";
    let bal = Balancer::start(config(top, "", &[(&a, 1), (&b, 1)])).await;
    let c = client();
    let r = send(&c, Method::POST, &bal.url("/order"), None, "cart=42").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        a.posts() + b.posts(),
        1,
        "the order reached exactly one worker once"
    );
    // The same failure on a GET is replayed: retries + 1 attempts in all.
    let r = get(&c, &bal.url("/catalog")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(a.gets() + b.gets(), 4);
}

#[tokio::test]
async fn post_moves_on_when_the_connect_fails() {
    let (a, b) = (Worker::start("wa1").await, Worker::start("wa2").await);
    let bal = Balancer::start(config("", "", &[(&a, 1), (&b, 1)])).await;
    a.kill().await;
    let c = client();
    for i in 0..6 {
        let r = send(
            &c,
            Method::POST,
            &bal.url("/order"),
            None,
            &format!("n={i}"),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.worker(), "wa2");
    }
    assert_eq!(b.posts(), 6);
    assert!(
        bal.backend("wa1").await["errors"]["connect"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[tokio::test]
async fn errors_map_to_502_504_503() {
    let w = Worker::start("wa1").await;
    let sections = "[timeouts]\nserver = \"300ms\"\n";
    let bal = Balancer::start(config("retries = 0", sections, &[(&w, 1)])).await;
    let c = client();
    w.set_mode(Mode::Garbage);
    assert_eq!(get(&c, &bal.url("/")).await.status, StatusCode::BAD_GATEWAY);
    w.set_mode(Mode::Silent);
    let r = get(&c, &bal.url("/")).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(r.body.contains("504"), "{}", r.body);
    w.kill().await;
    assert_eq!(
        get(&c, &bal.url("/")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let row = bal.backend("wa1").await;
    assert_eq!(row["errors"]["response"], 1);
    assert_eq!(row["errors"]["timeout"], 1);
    assert_eq!(row["errors"]["connect"], 1);
}

#[tokio::test]
async fn server_timeout_is_a_504_and_never_a_retry() {
    // Retries on and a GET (replayable): a worker that read the request and
    // never answers is a 504, as in HAProxy, not a replay elsewhere.
    let (w1, w2) = (Worker::start("wa1").await, Worker::start("wa2").await);
    let sections = "[timeouts]\nserver = \"300ms\"\n";
    let bal = Balancer::start(config("retries = 3", sections, &[(&w1, 1), (&w2, 1)])).await;
    let c = client();
    // Warm keep-alive connections to both, so the timeout hits a pooled one.
    for _ in 0..4 {
        assert_eq!(get(&c, &bal.url("/")).await.status, StatusCode::OK);
    }
    w1.set_mode(Mode::Silent);
    w2.set_mode(Mode::Silent);
    let before = w1.gets() + w2.gets();
    let r = get(&c, &bal.url("/")).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.body);
    assert_eq!(
        w1.gets() + w2.gets(),
        before + 1,
        "sent to one worker, once"
    );
    w1.set_mode(Mode::Normal);
    w2.set_mode(Mode::Normal);
    for _ in 0..4 {
        assert_eq!(get(&c, &bal.url("/")).await.status, StatusCode::OK);
    }
    let mut timeouts = 0;
    for name in ["wa1", "wa2"] {
        timeouts += bal.backend(name).await["errors"]["timeout"]
            .as_u64()
            .unwrap();
    }
    assert_eq!(timeouts, 1);
}

#[tokio::test]
async fn no_healthy_worker_gives_503_page() {
    let w = Worker::start("wa1").await;
    let health = "[health]\ninterval = \"50ms\"\nfall = 1\nrise = 1\n";
    let bal = Balancer::start(config("", health, &[(&w, 1)])).await;
    w.kill().await;
    wait_until("wa1 DOWN", || async {
        bal.backend("wa1").await["healthy"] == false
    })
    .await;
    let r = get(&client(), &bal.url("/")).await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("No server is available"), "{}", r.body);
}

#[tokio::test]
async fn maxconn_queue_then_503() {
    let w = Worker::start("wa1").await;
    let mut cfg = config("max_queue = 1", "", &[(&w, 1)]);
    cfg.backends[0].maxconn = 1;
    let bal = Balancer::start(cfg).await;
    let c = client();
    let first = tokio::spawn({
        let (c, u) = (c.clone(), bal.url("/hold"));
        async move { get(&c, &u).await.status }
    });
    wait_until("first request held", || async { w.holding() == 1 }).await;
    let queued = tokio::spawn({
        let (c, u) = (c.clone(), bal.url("/"));
        async move { get(&c, &u).await.status }
    });
    wait_until("second request queued", || async {
        bal.stats_json().await["frontend"]["queued"] == 1
    })
    .await;
    let r = get(&c, &bal.url("/")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "queue full");
    w.release(1);
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(
        queued.await.unwrap(),
        200,
        "the queued request got the freed slot"
    );
}

#[tokio::test]
async fn slowloris_is_cut_and_big_headers_get_431() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = Worker::start("wa1").await;
    let sections = "[timeouts]\nrequest_header = \"300ms\"\n";
    let bal = Balancer::start(config("", sections, &[(&w, 1)])).await;
    let mut s = tokio::net::TcpStream::connect(bal.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut cut = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if s.write_all(b"X-Slow: a\r\n").await.is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 256];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).contains("408"));
            cut = true;
            break;
        }
    }
    assert!(cut, "a trickling client must be disconnected");
    assert_eq!(w.gets(), 0);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let reply = raw(bal.addr, big.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply:.80}");
}

/// A keep-alive connection waits `request_header` for its next request: a
/// request sent sooner is served on it, silence closes it (hyper's and
/// HAProxy's behaviour without `timeout http-keep-alive`).
#[tokio::test]
async fn keep_alive_waits_request_header_for_the_next_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = Worker::start("wa1").await;
    let sections = "[timeouts]\nrequest_header = \"600ms\"\n";
    let bal = Balancer::start(config("", sections, &[(&w, 1)])).await;
    let mut s = tokio::net::TcpStream::connect(bal.addr).await.unwrap();
    let mut seen = Vec::new();
    for i in 0..3 {
        if i > 0 {
            // Well inside the header timeout, which restarts after each response.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let before = seen.len();
        while !String::from_utf8_lossy(&seen[before..]).ends_with("wa1 0") {
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("response in time")
                .unwrap();
            assert!(n > 0, "closed before response {i}");
            seen.extend_from_slice(&buf[..n]);
        }
    }
    assert_eq!(w.gets(), 3, "three requests on one connection");
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a silent keep-alive connection must be closed: {closed:?}"
    );
}

/// A client that closes its sending side after its request (half-close)
/// still gets the response: the request runs to its end, as in HAProxy
/// without `option abortonclose`.
#[tokio::test]
async fn half_closed_client_gets_its_response() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = Worker::start("wa1").await;
    let bal = Balancer::start(config("", "", &[(&w, 1)])).await;
    let mut s = tokio::net::TcpStream::connect(bal.addr).await.unwrap();
    s.write_all(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    wait_until("the worker holds the request", || async {
        w.holding() == 1
    })
    .await;
    w.release(1);
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut reply))
        .await
        .expect("reply in time")
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("wa1 0"), "{reply}");
}

#[tokio::test]
async fn body_limit_gives_413() {
    let w = Worker::start("wa1").await;
    let bal = Balancer::start(config("max_body_size = 1024", "", &[(&w, 1)])).await;
    let c = client();
    let r = send(
        &c,
        Method::POST,
        &bal.url("/upload"),
        None,
        &"x".repeat(2048),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let chunked = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n{}\r\n0\r\n\r\n",
        "y".repeat(2048)
    );
    let reply = raw(bal.addr, chunked.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply:.80}");
    let r = send(
        &c,
        Method::POST,
        &bal.url("/upload"),
        None,
        &"x".repeat(1000),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(w.posts(), 1, "only the small upload reached the worker");
}

#[tokio::test]
async fn forwarded_headers_and_hop_by_hop() {
    let w = Worker::start("wa1").await;
    let bal = Balancer::start(config("", "", &[(&w, 1)])).await;
    let req = "GET /p HTTP/1.1\r\nHost: shop.example\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n";
    let reply = raw(bal.addr, req.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("via: 1.1 sqlproxy"),
        "{reply}"
    );
    let h = w.state.last_headers.lock().unwrap().clone().unwrap();
    // An untrusted client cannot choose the address PrestaShop reads first.
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "shop.example");
    assert_eq!(h["host"], "shop.example");
    assert_eq!(h["via"], "1.1 sqlproxy");
    assert!(!h.contains_key("x-hop") && !h.contains_key("keep-alive"));
}

#[tokio::test]
async fn forwarded_for_is_kept_only_from_trusted_proxies() {
    let w = Worker::start("wa1").await;
    let req = "GET /p HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n\r\n";
    let last = |w: &Worker| w.state.last_headers.lock().unwrap().clone().unwrap();
    // The balancer's clients come from 127.0.0.1: trusted, their header is extended.
    let bal = Balancer::start(config(
        "trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.0/8\"]",
        "",
        &[(&w, 1)],
    ))
    .await;
    assert!(raw(bal.addr, req.as_bytes())
        .await
        .starts_with("HTTP/1.1 200"));
    let h = last(&w);
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    // Not in the list: replaced.
    let bal = Balancer::start(config("trusted_proxies = [\"10.0.0.0/8\"]", "", &[(&w, 1)])).await;
    assert!(raw(bal.addr, req.as_bytes())
        .await
        .starts_with("HTTP/1.1 200"));
    let h = last(&w);
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
}

#[tokio::test]
async fn sticky_cookie_pins_a_client() {
    let (a, b) = (Worker::start("wa1").await, Worker::start("wa2").await);
    let bal = Balancer::start(config(
        "",
        "[sticky]\ncookie = \"SERVERID\"\n",
        &[(&a, 1), (&b, 1)],
    ))
    .await;
    let c = client();
    let first = get(&c, &bal.url("/")).await;
    let cookie = first.headers["set-cookie"].to_str().unwrap().to_string();
    let pinned = first.worker().to_string();
    assert!(
        cookie.starts_with(&format!("SERVERID={pinned}")),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    for _ in 0..10 {
        let req = hyper::Request::get(bal.url("/"))
            .header("cookie", format!("PHPSESSID=abc; {pair}"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let r = c.request(req).await.unwrap();
        assert_eq!(r.headers()["x-worker"], pinned.as_str());
        assert!(!r.headers().contains_key("set-cookie"));
    }
    let seen = a.state.last_headers.lock().unwrap().clone();
    let seen = seen
        .or_else(|| b.state.last_headers.lock().unwrap().clone())
        .unwrap();
    assert_eq!(
        seen["cookie"], "PHPSESSID=abc",
        "the balancer's cookie is not forwarded"
    );
}

#[tokio::test]
async fn http2_clients_are_served() {
    use http_body_util::BodyExt;
    let w = Worker::start("wa1").await;
    let bal = Balancer::start(config("", "", &[(&w, 1)])).await;
    let io = hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(bal.addr).await.unwrap());
    let (mut send_req, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    tokio::spawn(conn);
    for _ in 0..3 {
        let req = hyper::Request::get(format!("http://shop.example:{}/h2", bal.addr.port()))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let r = send_req.send_request(req).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.version(), hyper::Version::HTTP_2);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert!(body.starts_with(b"wa1"));
    }
    let h = w.state.last_headers.lock().unwrap().clone().unwrap();
    assert_eq!(
        h["host"],
        format!("shop.example:{}", bal.addr.port()).as_str()
    );
    assert_eq!(h["via"], "2 sqlproxy");
}

#[tokio::test]
async fn upgrade_is_passed_through() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = Worker::start("wa1").await;
    // A tunnel awaits no request header: a quiet one outlives this timeout.
    let sections = "[timeouts]\nrequest_header = \"300ms\"\n";
    let bal = Balancer::start(config("", sections, &[(&w, 1)])).await;
    let mut s = tokio::net::TcpStream::connect(bal.addr).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "closed before the 101");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    tokio::time::sleep(Duration::from_millis(900)).await;
    s.write_all(b"hello through the tunnel").await.unwrap();
    let mut echo = [0u8; 24];
    s.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"hello through the tunnel");
}

#[tokio::test]
async fn slow_upload_is_not_a_server_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = Worker::start("wa1").await;
    let sections = "[timeouts]\nserver = \"1s\"\n";
    let bal = Balancer::start(config("retries = 0", sections, &[(&w, 1)])).await;
    let mut s = tokio::net::TcpStream::connect(bal.addr).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    // 25 chunks 100 ms apart: the upload lasts longer than the server timeout.
    for _ in 0..25 {
        s.write_all(b"4\r\nabcd\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("wa1 100"), "{reply}");
}
