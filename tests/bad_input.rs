//! Hostile and broken clients: garbage, truncated packets, oversized length
//! headers, a client that vanishes in the middle of a result. Each costs only
//! its own connection; no node connection leaks and other sessions go on.

mod common;

use std::time::Duration;

use common::raw::{self, read_packet};
use common::{cluster, connect, Proxy};
use mysql_async::prelude::Queryable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn raw_login(proxy: &Proxy, db: Option<&str>) -> TcpStream {
    raw::login(proxy.addr, db).await
}

async fn send_query(s: &mut TcpStream, sql: &str) {
    raw::query(s, sql).await
}

/// The proxy closes the connection (EOF or reset), possibly after an ERR.
async fn closed_after(s: &mut TcpStream) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = tokio::time::timeout_at(deadline, read_packet(s)).await;
        match r {
            Ok(Some(p)) => got.push(p),
            Ok(None) => return got,
            Err(_) => panic!("the proxy kept a broken connection open"),
        }
    }
}

/// Threads of `prestashop` on a node (direct, not through the proxy).
async fn app_threads(node: usize) -> u64 {
    let mut d = connect(&cluster().direct_url(node, None)).await;
    let n: Option<u64> = d
        .query_first("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'prestashop' AND ID <> CONNECTION_ID()")
        .await
        .unwrap();
    n.unwrap_or(0)
}

async fn still_serves(proxy: &Proxy) {
    let mut conn = connect(&proxy.url(None)).await;
    let v: Option<i32> = conn.query_first("SELECT 41 + 1").await.unwrap();
    assert_eq!(v, Some(42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_truncated_packets_cost_only_their_connection() {
    let c = cluster();
    let _g = c.shared().await;
    let mut cfg = c.config();
    cfg.mysql.client_read_timeout = Duration::from_secs(2);
    cfg.mysql.max_allowed_packet = 1024 * 1024;
    let proxy = Proxy::start(cfg);
    // A good session that lives through all of it.
    let mut survivor = connect(&proxy.url(None)).await;

    // Garbage instead of a handshake response.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    read_packet(&mut s).await.expect("greeting");
    let junk: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = s.write_all(&junk).await;
    closed_after(&mut s).await;

    // A truncated handshake response, then silence: cut after the read timeout.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    read_packet(&mut s).await.expect("greeting");
    s.write_all(&[100, 0, 0, 1, 1, 2, 3]).await.unwrap();
    closed_after(&mut s).await;

    // After login: a truncated command, then silence.
    let mut s = raw_login(&proxy, None).await;
    s.write_all(&[50, 0, 0, 0, 0x03, b'S', b'E']).await.unwrap();
    closed_after(&mut s).await;

    // A length header far over max_allowed_packet: refused before the body.
    let mut s = raw_login(&proxy, None).await;
    s.write_all(&[0xff, 0xff, 0xff, 0]).await.unwrap();
    let got = closed_after(&mut s).await;
    let err = got.first().expect("an ERR before closing");
    assert_eq!(err[0], 0xff);
    assert_eq!(u16::from_le_bytes([err[1], err[2]]), 1153);

    // Unknown command: an error, and the session goes on.
    let mut s = raw_login(&proxy, None).await;
    s.write_all(&[1, 0, 0, 0, 0x42]).await.unwrap();
    let err = read_packet(&mut s).await.expect("reply");
    assert_eq!((err[0], u16::from_le_bytes([err[1], err[2]])), (0xff, 1047));
    send_query(&mut s, "SELECT 1").await;
    let first = read_packet(&mut s).await.expect("result");
    assert_eq!(first, vec![1], "one column");

    let v: Option<i32> = survivor.query_first("SELECT 7").await.unwrap();
    assert_eq!(v, Some(7));
    still_serves(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_clients_leak_no_node_connection() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("vanish");
    let proxy = Proxy::start(c.config());
    let mut conn = connect(&proxy.url(Some(&db))).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let before = [app_threads(0).await, app_threads(1).await];
    for _ in 0..15 {
        // Start a large result, read a little of it, and disappear.
        let mut s = raw_login(&proxy, Some(&db)).await;
        send_query(
            &mut s,
            "SELECT /* sqlproxy:master */ REPEAT('x', 100000), seq FROM seq_1_to_2000",
        )
        .await;
        let mut buf = vec![0u8; 4096];
        let _ = s.read(&mut buf).await;
        drop(s);
        // A session that started a transaction and vanished.
        let mut s = raw_login(&proxy, Some(&db)).await;
        send_query(&mut s, "BEGIN").await;
        read_packet(&mut s).await.expect("OK");
        send_query(&mut s, "INSERT INTO t VALUES (1)").await;
        read_packet(&mut s).await.expect("OK");
        drop(s);
    }
    // Node threads come back to the pooled level: nothing piles up.
    let mut after = [u64::MAX; 2];
    for _ in 0..200 {
        after = [app_threads(0).await, app_threads(1).await];
        if after[0] <= before[0] + 2 && after[1] <= before[1] + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        after[0] <= before[0] + 2 && after[1] <= before[1] + 2,
        "node threads before {before:?}, after {after:?}"
    );
    // The vanished transactions were rolled back, not committed.
    let n: Option<u64> = conn
        .query_first("SELECT /* sqlproxy:master */ COUNT(*) FROM t")
        .await
        .unwrap();
    assert_eq!(n, Some(0));
    still_serves(&proxy).await;
}
