//! The HTTP balancer over real loopback sockets: distribution, health and
//! rerouting, the never-replay-a-POST rule, limits and timeouts, stats,
//! runtime control, headers, stickiness, HTTP/2, upgrades, graceful drain,
//! and end to end through `php -S` workers.

mod http_common;

use std::collections::HashMap;
use std::time::Duration;

use http_common::*;
use hyper::{Method, StatusCode};

async fn count_workers(c: &TestClient, b: &Balancer, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let r = get(c, &b.url("/")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        *seen.entry(r.worker().to_string()).or_insert(0) += 1;
    }
    seen
}

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
    let bal = Balancer::start(config("", health, &[(&a, 1), (&b, 1)])).await;
    let c = client();
    count_workers(&c, &bal, 20).await;
    a.kill();
    // Before the checks notice: GETs are retried on wa2, none fails.
    let seen = count_workers(&c, &bal, 50).await;
    assert_eq!(seen["wa2"], 50, "{seen:?}");
    wait_until("wa1 DOWN", || async {
        bal.backend("wa1").await["state"] == "DOWN"
    })
    .await;
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
    let bal = Balancer::start(config("retries = 3", "", &[(&a, 1), (&b, 1)])).await;
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
    a.kill();
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
    w.kill();
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
async fn no_healthy_worker_gives_503_page() {
    let w = Worker::start("wa1").await;
    let health = "[health]\ninterval = \"50ms\"\nfall = 1\nrise = 1\n";
    let bal = Balancer::start(config("", health, &[(&w, 1)])).await;
    w.kill();
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
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "shop.example");
    assert_eq!(h["host"], "shop.example");
    assert_eq!(h["via"], "1.1 sqlproxy");
    assert!(!h.contains_key("x-hop") && !h.contains_key("keep-alive"));
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
async fn stats_page_needs_the_password_and_shows_the_counters() {
    let w = Worker::start("wa1").await;
    let bal = Balancer::start(config("", "", &[(&w, 1)])).await;
    let c = client();
    for _ in 0..7 {
        assert_eq!(get(&c, &bal.url("/")).await.status, 200);
    }
    for auth in [None, Some("admin:wrong")] {
        let r = send(&c, Method::GET, &bal.stats_url("/stats"), auth, "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.headers.contains_key("www-authenticate"));
    }
    let html = send(
        &c,
        Method::GET,
        &bal.stats_url("/stats"),
        Some(STATS_AUTH),
        "",
    )
    .await;
    assert_eq!(html.status, 200);
    assert!(
        html.body.contains("<table") && html.body.contains(">wa1<"),
        "{}",
        html.body
    );
    let row = bal.backend("wa1").await;
    assert_eq!(row["requests"], 7);
    assert_eq!(row["responses"]["2xx"], 7);
    assert_eq!(row["state"], "UP");
    assert_eq!(bal.stats_json().await["frontend"]["requests"], 7);
    let m = get(&c, &bal.stats_url("/metrics")).await;
    assert!(
        m.body
            .contains("sqlproxy_http_backend_requests_total{backend=\"wa1\"} 7"),
        "{}",
        m.body
    );
    assert!(m
        .body
        .contains("sqlproxy_http_backend_responses_total{backend=\"wa1\",code=\"2xx\"} 7"));
    assert_eq!(w.gets(), 7, "stats requests never reach a worker");
}

#[tokio::test]
async fn stats_on_the_balancer_listener_when_it_has_none() {
    let w = Worker::start("wa1").await;
    let stats = "[stats]\nuri = \"/lb-stats\"\nuser = \"admin\"\npassword = \"s3cret\"\n";
    let bal = Balancer::start(config("", stats, &[(&w, 1)])).await;
    assert_eq!(bal.stats, None);
    let c = client();
    assert_eq!(get(&c, &bal.url("/lb-stats")).await.status, 401);
    let r = send(
        &c,
        Method::GET,
        &bal.url("/lb-stats.json"),
        Some(STATS_AUTH),
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("\"wa1\""));
    assert_eq!(
        get(&c, &bal.url("/lb-statsX")).await.worker(),
        "wa1",
        "only the exact URI is ours"
    );
}

#[tokio::test]
async fn drain_ready_maint_through_the_stats_listener() {
    let (a, b) = (Worker::start("wa1").await, Worker::start("wa2").await);
    let bal = Balancer::start(config("", "", &[(&a, 1), (&b, 1)])).await;
    let c = client();
    let held = tokio::spawn({
        let (c, u) = (c.clone(), bal.url("/hold"));
        async move { get(&c, &u).await }
    });
    wait_until("held", || async { a.holding() + b.holding() == 1 }).await;
    let (busy, other) = if a.holding() == 1 {
        ("wa1", "wa2")
    } else {
        ("wa2", "wa1")
    };
    let drain = bal.stats_url(&format!("/stats/backends/{busy}/drain"));
    assert_eq!(send(&c, Method::POST, &drain, None, "").await.status, 401);
    let r = send(&c, Method::POST, &drain, Some(STATS_AUTH), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"DRAIN\""), "{}", r.body);
    assert_eq!(count_workers(&c, &bal, 20).await[other], 20);
    a.release(1);
    b.release(1);
    let held = held.await.unwrap();
    assert_eq!(
        (held.status, held.worker()),
        (StatusCode::OK, busy),
        "in-flight request finished"
    );
    let ready = bal.stats_url(&format!("/stats/backends/{busy}/ready"));
    assert_eq!(
        send(&c, Method::POST, &ready, Some(STATS_AUTH), "")
            .await
            .status,
        200
    );
    assert_eq!(count_workers(&c, &bal, 20).await[busy], 10);
    let maint = bal.stats_url(&format!("/stats/backends/{busy}/maint"));
    assert_eq!(
        send(&c, Method::POST, &maint, Some(STATS_AUTH), "")
            .await
            .status,
        200
    );
    assert_eq!(bal.backend(busy).await["state"], "MAINT");
    let bad = bal.stats_url("/stats/backends/nope/drain");
    assert_eq!(
        send(&c, Method::POST, &bad, Some(STATS_AUTH), "")
            .await
            .status,
        404
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
    let bal = Balancer::start(config("", "", &[(&w, 1)])).await;
    let mut s = tokio::net::TcpStream::connect(bal.addr).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
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
    assert!(head.contains("upgrade: echo"), "{head}");
    s.write_all(b"hello through the tunnel").await.unwrap();
    let mut echo = [0u8; 24];
    s.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"hello through the tunnel");
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let w = Worker::start("wa1").await;
    let mut bal = Balancer::start(config("", "", &[(&w, 1)])).await;
    let c = client();
    let held = tokio::spawn({
        let (c, u) = (c.clone(), bal.url("/hold"));
        async move { get(&c, &u).await.status }
    });
    wait_until("held", || async { w.holding() == 1 }).await;
    bal.token.cancel();
    let addr = bal.addr;
    wait_until("listener closed", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    w.release(1);
    assert_eq!(held.await.unwrap(), 200, "the in-flight request finished");
    bal.done.take().unwrap().await.unwrap();
}

#[tokio::test]
async fn php_workers_serve_the_demo_page_behind_the_balancer() {
    let (p1, p2) = (
        php::PhpWorker::start("wa1").await,
        php::PhpWorker::start("wa2").await,
    );
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n[health]\npath = \"/health\"\ninterval = \"200ms\"\n\
         [[backends]]\nname = \"wa1\"\naddress = \"{}\"\n[[backends]]\nname = \"wa2\"\naddress = \"{}\"\n",
        p1.addr, p2.addr
    );
    let cfg = figment::Figment::from(
        <figment::providers::Toml as figment::providers::Format>::string(&toml),
    )
    .extract::<sqlproxy::http::HttpConfig>()
    .unwrap();
    let bal = Balancer::start(cfg).await;
    let c = client();
    let mut seen = HashMap::new();
    for _ in 0..100 {
        let r = get(&c, &bal.url("/")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let name = if r.body.contains("Served by worker wa1") {
            "wa1"
        } else {
            "wa2"
        };
        assert!(
            r.body.contains(&format!("Served by worker {name}")),
            "{}",
            r.body
        );
        assert_eq!(r.worker(), name, "X-Worker agrees with the page");
        assert!(
            r.body.contains("scheme http"),
            "X-Forwarded-Proto reached PHP"
        );
        *seen.entry(name).or_insert(0) += 1;
    }
    assert_eq!((seen["wa1"], seen["wa2"]), (50, 50));
}
