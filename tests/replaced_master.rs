//! One writer, whatever fails: a transaction open on the master when
//! another node is made master is never finished on the old one. Here the
//! old master cannot be fenced (it is stopped while a forced failover runs)
//! and comes back writable; the session's COMMIT must get an error, not
//! the old master's OK for a commit the new master never gets. Both nodes
//! are read directly. Changes the roles, so it has its own cluster and the
//! exclusive lock.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, connect, Proxy};
use mysql_async::prelude::Queryable;

/// One count read on the node directly. The proxy fences cn1 once it is
/// back (read_only, then its client connections killed), which may cut
/// this client's own connection: a client-side error (2xxx) is retried.
fn count(node: usize, sql: &str) -> u32 {
    let began = Instant::now();
    loop {
        match cluster().nodes[node].value(sql) {
            Ok(n) => return n.trim().parse().unwrap_or_else(|_| panic!("{sql}: {n:?}")),
            Err(e)
                if e.to_string().contains("ERROR 20")
                    && began.elapsed() < Duration::from_secs(20) =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("query the node: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_open_on_a_replaced_master_is_not_committed_there() {
    let c = cluster();
    let _g = c.exclusive().await;
    let db = c.fresh_db("replaced_master");
    let proxy = Proxy::start(c.config());
    let topology = std::sync::Arc::clone(&proxy.context.topology);
    let began = Instant::now();
    while topology.snapshot().master != Some(0) {
        assert!(began.elapsed() < Duration::from_secs(30), "no master");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = proxy.url(Some(&db));
    let mut setup = connect(&url).await;
    setup
        .query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .expect("create");
    c.wait_replicated();

    let mut a = connect(&url).await;
    a.query_drop("BEGIN").await.expect("begin");
    a.query_drop("INSERT INTO t VALUES (1)")
        .await
        .expect("insert in the transaction");

    // cn1 stops answering: the forced failover cannot fence it.
    c.nodes[0].signal("STOP").expect("SIGSTOP cn1");
    let moved = proxy.context.failover.switchover("cn2", true).await;
    c.nodes[0].signal("CONT").expect("SIGCONT cn1");
    moved.expect("forced failover to cn2");
    assert_eq!(topology.snapshot().master, Some(1));

    // cn1 is back and still writable: the COMMIT must not be sent there.
    match a.query_drop("COMMIT").await {
        Err(mysql_async::Error::Server(e)) => {
            assert_eq!((e.code, e.state.as_str()), (1927, "70100"), "{}", e.message);
        }
        Ok(()) => panic!("COMMIT of a transaction open on the replaced master succeeded"),
        Err(e) => panic!("COMMIT: expected the proxy's 1927, got {e}"),
    }
    drop(a);
    // Neither node holds the row once cn1 has rolled the transaction back.
    let began = Instant::now();
    while count(0, "SELECT COUNT(*) FROM information_schema.INNODB_TRX") > 0 {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the transaction stayed open on cn1"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sql = format!("SELECT COUNT(*) FROM {db}.t");
    assert_eq!((count(0, &sql), count(1, &sql)), (0, 0));
}
