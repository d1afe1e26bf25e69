//! No acknowledged commit is lost by a promotion, whatever the nodes'
//! semi-sync state: with the replica's IO thread stopped, the master commits
//! without waiting for an acknowledgement, and when it then dies, the
//! replica lacks commits clients got an OK for. It must not be promoted;
//! the old master, once back, is the master again with every row.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, connect, Proxy};
use mysql_async::prelude::Queryable;

const ROWS: i32 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_lacking_acknowledged_commits_is_never_promoted() {
    let c = cluster();
    let _g = c.exclusive().await;
    let db = c.fresh_db("acked");
    let proxy = Proxy::start(c.config());
    let topology = std::sync::Arc::clone(&proxy.context.topology);
    let url = proxy.url(Some(&db));
    let mut conn = connect(&url).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, node INT)")
        .await
        .unwrap();
    wait_for("cn1 named master", || topology.snapshot().master == Some(0)).await;
    c.wait_replicated();

    // cn2 stops receiving: cn1's commits no longer wait for an ack.
    c.nodes[1].sql("STOP SLAVE IO_THREAD").unwrap();
    for id in 1..=ROWS {
        conn.exec_drop("INSERT INTO t VALUES (?, @@server_id)", (id,))
            .await
            .unwrap();
    }
    drop(conn);
    let on_cn2: u32 = c.nodes[1]
        .value(&format!("SELECT COUNT(*) FROM `{db}`.t"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        on_cn2 < ROWS as u32,
        "cn2 lacks acknowledged rows ({on_cn2})"
    );

    c.kill(0);
    // Long enough for several failover attempts with the test monitor
    // (200 ms, fall 2): none may promote cn2.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert_ne!(topology.snapshot().master, Some(1), "cn2 was promoted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        c.nodes[1].value("SELECT @@GLOBAL.read_only").unwrap(),
        "1",
        "cn2 stays fenced"
    );

    // cn1 comes back and takes writes again, with every acknowledged row.
    c.nodes[0].start(true).unwrap();
    c.nodes[1].sql("START SLAVE IO_THREAD").unwrap();
    wait_for("cn1 up and writable", || {
        let s = topology.snapshot();
        s.master == Some(0) && s.is_up(0) && s.nodes[0].read_only == Some(false)
    })
    .await;
    let mut conn = connect(&url).await;
    conn.query_drop("INSERT INTO t VALUES (0, @@server_id)")
        .await
        .unwrap();
    let rows: Vec<(i32, u32)> = connect(&c.direct_url(0, Some(&db)))
        .await
        .query("SELECT id, node FROM t ORDER BY id")
        .await
        .unwrap();
    assert_eq!(rows.len(), ROWS as usize + 1, "{rows:?}");
    assert!(rows.iter().all(|&(_, node)| node == 1), "{rows:?}");
    c.wait_replicated();
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// While a failover checks its candidate, no commit's OK reaches a client,
/// not even one early in a multi-statement reply long enough to be flushed
/// before its end (the relay flushes every 64 KiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_commit_ok_reaches_a_client_while_a_promotion_checks_its_candidate() {
    let c = cluster();
    let db = c.fresh_db("acked_gate");
    let proxy = Proxy::start(c.config());
    let topology = std::sync::Arc::clone(&proxy.context.topology);
    let url = proxy.url(Some(&db));
    let mut conn = connect(&url).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    wait_for("cn1 named master", || topology.snapshot().master == Some(0)).await;

    let promotion = topology.begin_promotion();
    for (id, sql) in [
        (1, "INSERT INTO t VALUES (1)".to_string()),
        // The commit's OK, then 300 KiB of rows in the same reply.
        (
            2,
            "INSERT INTO t VALUES (2); SELECT REPEAT('x', 100000) UNION ALL \
             SELECT REPEAT('y', 100000) UNION ALL SELECT REPEAT('z', 100000)"
                .to_string(),
        ),
    ] {
        let mut conn = connect(&url).await;
        match conn.query_iter(sql.as_str()).await {
            Err(mysql_async::Error::Server(e)) => {
                assert_eq!(e.code, 1927, "row {id}: {e:?}")
            }
            Err(e) => panic!("row {id}: the proxy's error, not {e:?}"),
            Ok(r) => panic!(
                "row {id}: the client got the commit's OK ({} affected) while a promotion checked",
                r.affected_rows()
            ),
        }
    }
    // A commit whose reply is a result set ending in a classic EOF (no
    // GTID in it): the node is asked for the GTID, and the rows withheld.
    let no_eof_caps = common::raw::CLIENT_CAPS & !sqlproxy::protocol::caps::DEPRECATE_EOF;
    let mut raw = common::raw::login_with_caps(proxy.addr, Some(&db), no_eof_caps).await;
    common::raw::query(&mut raw, "INSERT INTO t VALUES (3) RETURNING id").await;
    let first = common::raw::read_packet(&mut raw).await.expect("a reply");
    assert_eq!(
        first.first(),
        Some(&0xff),
        "the rows of a commit went out while a promotion checked: {first:?}"
    );
    assert_eq!(u16::from_le_bytes([first[1], first[2]]), 1927);
    drop(promotion);

    // Both commits happened on cn1 (their fate was the failover's; there was
    // none): they are there and new sessions are served.
    let mut conn = connect(&url).await;
    let ids: Vec<i32> = conn.query("SELECT id FROM t ORDER BY id").await.unwrap();
    assert_eq!(ids, [1, 2, 3]);
    let on_cn1: Vec<i32> = connect(&c.direct_url(0, Some(&db)))
        .await
        .query("SELECT id FROM t ORDER BY id")
        .await
        .unwrap();
    assert_eq!(on_cn1, [1, 2, 3]);
}
