//! The proxy never opens more connections to a node than its limit
//! (`pool.max_per_node`), so however many clients arrive, the node keeps
//! slots for the monitor, replication and an operator. A session at the
//! limit waits for a slot, then gets 1040; pooled connections are closed
//! once idle too long or too old. Counted on the node itself: the
//! connections in its process list whose schema is this test's own.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, connect, server_id, Proxy};
use mysql_async::prelude::Queryable;

/// This test's connections on node 0, as the node sees them.
fn held_on_node(db: &str) -> u32 {
    let sql = format!("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{db}'");
    let n = cluster().nodes[0].value(&sql).expect("processlist");
    n.trim().parse().unwrap_or_else(|_| panic!("count: {n:?}"))
}

/// Waits until node 0 shows `want` of this test's connections.
async fn until_held(db: &str, want: u32) {
    let began = Instant::now();
    loop {
        let n = held_on_node(db);
        if n == want {
            return;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "node 0 kept {n} connections of {db}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn node0_id() -> u32 {
    let id = cluster().nodes[0].value("SELECT @@server_id").expect("id");
    id.trim().parse().expect("server id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_beyond_the_node_limit_wait_then_get_1040() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("node_limit");
    let mut config = c.config();
    config.pool.max_per_node = 3;
    config.pool.checkout_timeout = Duration::from_millis(500);
    // Idle sessions would give their slots back (tests/multiplexing.rs).
    config.pool.multiplex = false;
    config.routing.read_split = false;
    let proxy = Proxy::start(config);
    let url = proxy.url(Some(&db));
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = connect(&url).await;
        assert_eq!(server_id(&mut conn).await, node0_id());
        held.push(conn);
    }
    assert_eq!(held_on_node(&db), 3);
    // The fourth finds no slot: 1040 naming the node and the bound, and the
    // node still has exactly three of ours.
    for _ in 0..3 {
        match mysql_async::Conn::from_url(url.as_str()).await {
            Err(mysql_async::Error::Server(e)) => {
                assert_eq!((e.code, e.state.as_str()), (1040, "08004"));
                assert!(
                    e.message.contains("'cn1'") && e.message.contains("pool.max_per_node"),
                    "{}",
                    e.message
                );
            }
            Ok(_) => panic!("a fourth connection to a node limited to three"),
            Err(e) => panic!("expected 1040, got {e}"),
        }
        assert_eq!(held_on_node(&db), 3);
    }
    // The proxy itself still answers, and the node is still up for the
    // monitor: a session that frees its slot lets the next one in.
    let first = held.remove(0);
    first.disconnect().await.expect("disconnect");
    let mut next = connect(&url).await;
    assert_eq!(server_id(&mut next).await, node0_id());
    assert!(held_on_node(&db) <= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_session_gets_the_slot_a_closing_one_frees() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("node_limit_wait");
    let mut config = c.config();
    config.pool.max_per_node = 1;
    config.pool.checkout_timeout = Duration::from_secs(60);
    config.pool.multiplex = false;
    config.routing.read_split = false;
    let proxy = Proxy::start(config);
    let url = proxy.url(Some(&db));
    let mut holder = connect(&url).await;
    holder
        .query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .expect("create");
    let waiter = tokio::spawn({
        let url = url.clone();
        async move {
            let mut conn = connect(&url).await;
            conn.query_drop("INSERT INTO t VALUES (2)")
                .await
                .expect("insert");
            let n: Option<u32> = conn
                .query_first("SELECT COUNT(*) FROM t")
                .await
                .expect("count");
            (server_id(&mut conn).await, n)
        }
    });
    // The waiter is in its login, waiting for the only slot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished(), "the waiter got a second connection");
    assert_eq!(held_on_node(&db), 1);
    holder
        .query_drop("INSERT INTO t VALUES (1)")
        .await
        .expect("insert");
    holder.disconnect().await.expect("disconnect");
    let (id, rows) = waiter.await.expect("waiter");
    assert_eq!(id, node0_id());
    assert_eq!(
        rows,
        Some(2),
        "the waiter sees the holder's committed row and its own"
    );
    assert_eq!(held_on_node(&db), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_pooled_connections_are_closed_after_idle_timeout() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("node_limit_idle");
    let mut config = c.config();
    config.pool.idle_timeout = Duration::from_secs(1);
    config.routing.read_split = false;
    let proxy = Proxy::start(config);
    let mut conn = connect(&proxy.url(Some(&db))).await;
    assert_eq!(server_id(&mut conn).await, node0_id());
    assert_eq!(held_on_node(&db), 1);
    conn.disconnect().await.expect("disconnect");
    // Back in the pool after its reset, then closed by the reaper.
    until_held(&db, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_max_lifetime_are_not_reused() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("node_limit_lifetime");
    let mut config = c.config();
    config.pool.max_lifetime = Duration::from_secs(1);
    config.routing.read_split = false;
    let proxy = Proxy::start(config);
    let url = proxy.url(Some(&db));
    let mut conn = connect(&url).await;
    assert_eq!(server_id(&mut conn).await, node0_id());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    conn.disconnect().await.expect("disconnect");
    // Older than max_lifetime when given back: closed, not pooled (the
    // idle timeout is the default five minutes, so nothing else closes it).
    until_held(&db, 0).await;
    let mut again = connect(&url).await;
    assert_eq!(server_id(&mut again).await, node0_id());
    assert_eq!(held_on_node(&db), 1);
}
