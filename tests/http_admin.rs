//! The HTTP balancer's operator side over real loopback sockets: the stats
//! page (auth, counters, JSON, `/metrics`), runtime drain/ready/maint,
//! graceful shutdown, and end to end through `php -S` workers.

mod http_common;

use std::collections::HashMap;
use std::time::Duration;

use http_common::*;
use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    let token = bal.stats_json().await["control_token"]
        .as_str()
        .expect("a control token")
        .to_string();
    let drain = bal.stats_url(&format!("/stats/backends/{busy}/drain?token={token}"));
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
    let ready = bal.stats_url(&format!("/stats/backends/{busy}/ready?token={token}"));
    assert_eq!(
        send(&c, Method::POST, &ready, Some(STATS_AUTH), "")
            .await
            .status,
        200
    );
    assert_eq!(count_workers(&c, &bal, 20).await[busy], 10);
    let maint = bal.stats_url(&format!("/stats/backends/{busy}/maint?token={token}"));
    assert_eq!(
        send(&c, Method::POST, &maint, Some(STATS_AUTH), "")
            .await
            .status,
        200
    );
    assert_eq!(bal.backend(busy).await["state"], "MAINT");
    let bad = bal.stats_url(&format!("/stats/backends/nope/drain?token={token}"));
    assert_eq!(
        send(&c, Method::POST, &bad, Some(STATS_AUTH), "")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let w = Worker::start("wa1").await;
    let mut bal = Balancer::start(config("", "", &[(&w, 1)])).await;
    // A keep-alive client between two requests when the shutdown comes.
    let mut idle = tokio::net::TcpStream::connect(bal.addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
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
    // Closed at once, not after the drain limit, while a request is held.
    let eof = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await;
    assert!(
        matches!(eof, Ok(Ok(0)) | Ok(Err(_))),
        "the idle keep-alive connection was closed: {eof:?}"
    );
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
    .extract::<sqlproxy::config::HttpConfig>()
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

#[tokio::test]
async fn global_maxconn_holds_extra_clients_in_the_backlog() {
    let w = Worker::start("wa1").await;
    let bal = Balancer::start(config("maxconn = 1", "", &[(&w, 1)])).await;
    let addr = bal.addr;
    let first = tokio::spawn(async move {
        raw(
            addr,
            b"GET /hold HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
    });
    wait_until("first client held", || async { w.holding() == 1 }).await;
    let second = tokio::spawn(async move {
        raw(
            addr,
            b"GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
    });
    // The second connection is accepted by the kernel, not by the balancer:
    // while the first one is open, its request cannot reach the worker.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.gets(), 1, "only the held request reached the worker");
    assert_eq!(bal.stats_json().await["frontend"]["connections"], 1);
    w.release(1);
    assert!(first.await.unwrap().starts_with("HTTP/1.1 200"));
    assert!(second.await.unwrap().starts_with("HTTP/1.1 200"));
    assert_eq!(w.gets(), 2);
}

#[tokio::test]
async fn stats_controls_refuse_cross_site_posts_and_the_page_is_not_framed() {
    let w = Worker::start("wa1").await;
    let bal = Balancer::start(config("", "", &[(&w, 1)])).await;
    let c = client();
    let page = send(
        &c,
        Method::GET,
        &bal.stats_url("/stats"),
        Some(STATS_AUTH),
        "",
    )
    .await;
    assert_eq!(page.headers["x-frame-options"], "DENY");
    let token = bal.stats_json().await["control_token"]
        .as_str()
        .expect("a control token")
        .to_string();
    assert!(
        page.body.contains(&format!("?token={token}")),
        "the page's forms carry it"
    );
    let addr = bal.stats.expect("a stats listener");
    let auth = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(STATS_AUTH)
    };
    let post = |query: &str, origin: &str| {
        format!(
            "POST /stats/backends/wa1/maint{query} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\n{origin}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
    };
    // What a page on another site can make a logged-in browser send.
    for req in [
        post("", ""),
        post("?token=wrong", ""),
        post(
            &format!("?token={token}"),
            "Origin: http://evil.example\r\n",
        ),
        post(
            &format!("?token={token}"),
            "Referer: http://evil.example/x\r\n",
        ),
        post(&format!("?token={token}"), "Sec-Fetch-Site: cross-site\r\n"),
    ] {
        let reply = raw(addr, req.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 403"), "{req}\n{reply}");
    }
    assert_eq!(bal.backend("wa1").await["state"], "UP");
    // The page itself (same origin, with its token) may.
    let own = post(
        &format!("?token={token}"),
        &format!("Origin: http://{addr}\r\n"),
    );
    let reply = raw(addr, own.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(bal.backend("wa1").await["state"], "MAINT");
}
