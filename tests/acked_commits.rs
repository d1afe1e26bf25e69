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
