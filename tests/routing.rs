//! Where statements go: reads by weight, every write and transaction on the
//! master, session-dependent statements on the connection that has the state.
//! Asserted with `@@server_id` (which node answered) and with the rows.

mod common;

use common::{cluster, connect, server_id, Proxy};
use mysql_async::prelude::Queryable;
use sqlproxy::config::Config;

/// The fixture's config with some keys overridden, the way an operator would
/// (`SQLPROXY_NODES__CN1__WEIGHT=0`).
fn config_with(env: &[(&str, &str)]) -> Config {
    let pairs = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    match Config::from_toml_str(&cluster().config_toml(), pairs) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}"),
    }
}

/// A proxy whose master (cn1) takes no reads: any read that lands on cn1
/// was routed to the master on purpose.
fn proxy_master_no_reads() -> Proxy {
    Proxy::start(config_with(&[("SQLPROXY_NODES__CN1__WEIGHT", "0")]))
}

/// Waits until the monitor has seen both nodes up (reads then split).
async fn wait_both_nodes_serve(url: &str) {
    let mut conn = connect(url).await;
    for _ in 0..200 {
        let mut seen = [false; 2];
        for _ in 0..40 {
            let id = server_id(&mut conn).await;
            seen[(id as usize).saturating_sub(1).min(1)] = true;
        }
        if seen == [true, true] {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("reads never reached both nodes");
}

/// With `consistency = "session"`, reads after a write stay on the master
/// until the monitor has seen the replica apply it; then they split again.
async fn eventually_reads_from(conn: &mut mysql_async::Conn, want: u32) {
    for _ in 0..200 {
        if server_id(conn).await == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("reads never reached server_id {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_balanced_by_weight() {
    let c = cluster();
    let _g = c.shared().await;
    let proxy = Proxy::start(config_with(&[("SQLPROXY_NODES__CN2__WEIGHT", "3")]));
    wait_both_nodes_serve(&proxy.url(None)).await;
    let mut conn = connect(&proxy.url(None)).await;
    let mut counts = [0u32; 2];
    for _ in 0..1000 {
        match server_id(&mut conn).await {
            1 => counts[0] += 1,
            2 => counts[1] += 1,
            other => panic!("unexpected server_id {other}"),
        }
    }
    // weights 1:3 → 25% / 75%, within ±10 points
    let share = counts[0] as f64 / 1000.0;
    assert!((share - 0.25).abs() <= 0.10, "cn1 served {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_land_on_master_only() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("inserts_master");
    let proxy = proxy_master_no_reads();
    let mut conn = connect(&proxy.url(Some(&db))).await;
    // The monitor has seen cn2 up once reads reach it.
    eventually_reads_from(&mut conn, 2).await;
    conn.query_drop("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, sid INT)")
        .await
        .unwrap();
    for _ in 0..50 {
        conn.query_drop("INSERT INTO t (sid) VALUES (@@server_id)")
            .await
            .unwrap();
    }
    // Reads go to cn2 (the master has weight 0) and still see the rows once replicated.
    c.wait_replicated();
    let on_cn1: Vec<u32> = conn
        .query("SELECT /* sqlproxy:master */ DISTINCT sid FROM t")
        .await
        .unwrap();
    assert_eq!(on_cn1, vec![1], "every INSERT executed on cn1");
    let mut direct2 = connect(&c.direct_url(1, Some(&db))).await;
    let n: Option<u64> = direct2.query_first("SELECT COUNT(*) FROM t").await.unwrap();
    assert_eq!(n, Some(50), "cn2 got the rows through replication");
    eventually_reads_from(&mut conn, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_run_on_master() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("tx_master");
    let proxy = proxy_master_no_reads();
    let mut conn = connect(&proxy.url(Some(&db))).await;
    // The monitor has seen cn2 up once reads reach it.
    eventually_reads_from(&mut conn, 2).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        .await
        .unwrap();
    conn.query_drop("BEGIN").await.unwrap();
    conn.query_drop("INSERT INTO t VALUES (1, 10)")
        .await
        .unwrap();
    for _ in 0..20 {
        assert_eq!(server_id(&mut conn).await, 1, "SELECT inside BEGIN");
    }
    // Sees its own uncommitted row: same connection as the INSERT.
    let v: Option<i32> = conn
        .query_first("SELECT v FROM t WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(v, Some(10));
    conn.query_drop("COMMIT").await.unwrap();
    eventually_reads_from(&mut conn, 2).await;

    // START TRANSACTION with a snapshot, and an implicit one by autocommit=0.
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        .await
        .unwrap();
    assert_eq!(server_id(&mut conn).await, 1);
    conn.query_drop("ROLLBACK").await.unwrap();
    conn.query_drop("SET autocommit=0").await.unwrap();
    for _ in 0..20 {
        assert_eq!(server_id(&mut conn).await, 1, "SELECT with autocommit=0");
    }
    conn.query_drop("DELETE FROM t WHERE id = 1").await.unwrap();
    let gone: Option<i32> = conn
        .query_first("SELECT v FROM t WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(gone, None, "the SELECT sees the uncommitted DELETE");
    conn.query_drop("COMMIT").await.unwrap();
    assert_eq!(server_id(&mut conn).await, 1, "still autocommit=0");
    conn.query_drop("SET autocommit=1").await.unwrap();
    eventually_reads_from(&mut conn, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_insert_id_is_this_sessions() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("last_insert_id");
    let proxy = Proxy::start(config_with(&[]));
    let url = proxy.url(Some(&db));
    let mut setup = connect(&url).await;
    setup
        .query_drop("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, who INT)")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for who in 0..6 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = connect(&url).await;
            for _ in 0..40 {
                conn.query_drop(format!("INSERT INTO t (who) VALUES ({who})"))
                    .await
                    .unwrap();
                let from_ok = conn.last_insert_id().expect("OK packet carries the id");
                let variants = [
                    "SELECT LAST_INSERT_ID()",
                    "SELECT LAST_INSERT_ID();",
                    "SELECT LAST_INSERT_ID() AS id",
                    "SELECT @@identity",
                ];
                for q in variants {
                    let got: Option<u64> = conn.query_first(q).await.unwrap();
                    assert_eq!(got, Some(from_ok), "{q}");
                }
                let owner: Option<i32> = conn
                    .query_first(format!("SELECT who FROM t WHERE id = {from_ok}"))
                    .await
                    .unwrap();
                // The row may not have replicated to a read node yet, but if
                // it is seen it must be ours; the master always sees it.
                if let Some(o) = owner {
                    assert_eq!(o, who);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n: Option<u64> = setup
        .query_first("SELECT /* sqlproxy:master */ COUNT(*) FROM t")
        .await
        .unwrap();
    assert_eq!(n, Some(240));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn found_rows_follows_calc_found_rows() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("found_rows");
    let proxy = Proxy::start(config_with(&[]));
    let mut conn = connect(&proxy.url(Some(&db))).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let values: Vec<String> = (1..=30).map(|i| format!("({i})")).collect();
    conn.query_drop(format!("INSERT INTO t VALUES {}", values.join(",")))
        .await
        .unwrap();
    for _ in 0..20 {
        let rows: Vec<i32> = conn
            .query("SELECT SQL_CALC_FOUND_ROWS id FROM t ORDER BY id LIMIT 5")
            .await
            .unwrap();
        assert_eq!(rows, vec![1, 2, 3, 4, 5]);
        let total: Option<u64> = conn.query_first("SELECT FOUND_ROWS()").await.unwrap();
        assert_eq!(total, Some(30));
    }
    // The same through prepared statements.
    for _ in 0..10 {
        let rows: Vec<i32> = conn
            .exec(
                "SELECT SQL_CALC_FOUND_ROWS id FROM t WHERE id > ? ORDER BY id LIMIT 3",
                (10,),
            )
            .await
            .unwrap();
        assert_eq!(rows, vec![11, 12, 13]);
        let total: Option<u64> = conn.exec_first("SELECT FOUND_ROWS()", ()).await.unwrap();
        assert_eq!(total, Some(20));
    }
}

/// The error code of `sql` inside `START TRANSACTION READ ONLY` on `conn`.
async fn error_in_read_only_tx(conn: &mut mysql_async::Conn, sql: &str) -> (u16, String) {
    conn.query_drop("START TRANSACTION READ ONLY")
        .await
        .unwrap();
    let e = match conn.query_drop(sql).await {
        Err(mysql_async::Error::Server(e)) => (e.code, e.state),
        other => panic!("{sql} in a read-only transaction: {other:?}"),
    };
    conn.query_drop("ROLLBACK").await.unwrap();
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_transaction_runs_on_a_replica_to_its_end() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("ro_tx");
    let proxy = proxy_master_no_reads();
    let url = proxy.url(Some(&db));
    let mut writer = connect(&url).await;
    writer
        .query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    writer
        .query_drop("INSERT INTO t VALUES (1), (2)")
        .await
        .unwrap();
    c.wait_replicated();
    // A session without writes of its own: its reads go to cn2.
    let mut conn = connect(&url).await;
    eventually_reads_from(&mut conn, 2).await;
    conn.query_drop("START TRANSACTION READ ONLY")
        .await
        .unwrap();
    assert_eq!(server_id(&mut conn).await, 2, "the transaction runs on cn2");
    let n: Option<u64> = conn.query_first("SELECT COUNT(*) FROM t").await.unwrap();
    assert_eq!(n, Some(2));
    // Its snapshot holds: a row committed meanwhile is not seen inside it.
    writer.query_drop("INSERT INTO t VALUES (3)").await.unwrap();
    c.wait_replicated();
    let n: Option<u64> = conn.query_first("SELECT COUNT(*) FROM t").await.unwrap();
    assert_eq!(n, Some(2), "repeatable read inside the transaction");
    let in_trx: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = CONNECTION_ID()")
        .await
        .unwrap();
    assert_eq!(in_trx, Some(1), "one open transaction, on cn2's connection");
    conn.query_drop("COMMIT").await.unwrap();
    // Ended: the next write goes to the master, as always.
    conn.query_drop("INSERT INTO t VALUES (4)").await.unwrap();
    let mut direct1 = connect(&c.direct_url(0, Some(&db))).await;
    let on_cn1: Option<u64> = direct1
        .query_first("SELECT COUNT(*) FROM t WHERE id = 4")
        .await
        .unwrap();
    assert_eq!(on_cn1, Some(1), "the write after COMMIT ran on cn1");
    // A write inside one gets what a node answers in a read-only transaction.
    let through = error_in_read_only_tx(&mut conn, "INSERT INTO t VALUES (5)").await;
    let direct = error_in_read_only_tx(&mut direct1, "INSERT INTO t VALUES (5)").await;
    assert_eq!(through, direct);
}

/// What a statement gave: its rows, or its error code and SQLSTATE.
async fn outcome(conn: &mut mysql_async::Conn, sql: &str) -> Result<Vec<String>, (u16, String)> {
    match conn.query::<mysql_async::Row, _>(sql).await {
        Ok(rows) => Ok(rows
            .into_iter()
            .map(|r| format!("{:?}", r.unwrap()))
            .collect()),
        Err(mysql_async::Error::Server(e)) => Err((e.code, e.state)),
        Err(e) => panic!("{sql}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_transaction_applies_to_the_next_transaction_as_on_the_node() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("next_tx");
    let proxy = proxy_master_no_reads();
    let url = proxy.url(Some(&db));
    let mut setup = connect(&url).await;
    setup
        .query_drop("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY)")
        .await
        .unwrap();
    setup.query_drop("INSERT INTO t VALUES ()").await.unwrap();
    c.wait_replicated();

    // SET TRANSACTION READ ONLY then BEGIN: a read-only transaction on cn2.
    let mut conn = connect(&url).await;
    eventually_reads_from(&mut conn, 2).await;
    conn.query_drop("SET TRANSACTION READ ONLY").await.unwrap();
    conn.query_drop("BEGIN").await.unwrap();
    assert_eq!(server_id(&mut conn).await, 2, "the transaction runs on cn2");
    let n: Option<u64> = conn.query_first("SELECT COUNT(*) FROM t").await.unwrap();
    assert_eq!(n, Some(1));
    // Read-only by the node's own account (cn2 read directly).
    let ro = c.nodes[1]
        .sql("SELECT trx_is_read_only, trx_state FROM information_schema.INNODB_TRX")
        .expect("cn2's transactions");
    assert!(
        ro.lines().any(|l| l.starts_with("1\t")),
        "no read-only transaction on cn2: {ro:?}"
    );
    assert_eq!(server_id(&mut conn).await, 2, "still on cn2");
    conn.query_drop("COMMIT").await.unwrap();
    conn.query_drop("BEGIN").await.unwrap();
    assert_eq!(server_id(&mut conn).await, 1, "the next one is ordinary");
    conn.query_drop("ROLLBACK").await.unwrap();

    // Statement by statement, each sequence on a new connection through the
    // proxy gives what it gives on a new connection to the master directly.
    let sequences: &[&[&str]] = &[
        // A write inside the read-only transaction on cn2 gets the master's
        // 1792, not the replica's 1290 for its read_only.
        &[
            "SET TRANSACTION READ ONLY",
            "BEGIN",
            "SELECT COUNT(*) > 0 FROM t",
            "INSERT INTO t VALUES ()",
            "UPDATE t SET id = id",
            "SELECT COUNT(*) > 0 FROM t",
            "COMMIT",
            "BEGIN",
            "INSERT INTO t VALUES ()",
            "ROLLBACK",
        ],
        // Not followed by a transaction: the write is refused (1792).
        &[
            "SET TRANSACTION READ ONLY",
            "INSERT INTO t VALUES ()",
            "START TRANSACTION READ WRITE",
            "INSERT INTO t VALUES ()",
            "ROLLBACK",
        ],
        // A read of an InnoDB table is a transaction: it takes the mode.
        &[
            "SET TRANSACTION READ ONLY",
            "SELECT COUNT(*) > 0 FROM t",
            "INSERT INTO t VALUES ()",
        ],
        &[
            "START TRANSACTION READ ONLY",
            "SELECT COUNT(*) > 0 FROM t",
            "DELETE FROM t WHERE id < 0",
            "COMMIT",
        ],
        &[
            "BEGIN",
            "SET TRANSACTION READ ONLY",
            "ROLLBACK",
            "INSERT INTO t VALUES ()",
        ],
        // A one-shot isolation level is for one transaction, not replayed.
        &[
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "BEGIN",
            "SELECT COUNT(*) > 0 FROM t",
            "SELECT trx_isolation_level FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = CONNECTION_ID()",
            "COMMIT",
            "SELECT SLEEP(0.05)",
            "BEGIN",
            "SELECT COUNT(*) > 0 FROM t",
            "SELECT trx_isolation_level FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = CONNECTION_ID()",
            "COMMIT",
        ],
    ];
    for seq in sequences {
        let mut through = connect(&url).await;
        let mut direct = connect(&c.direct_url(0, Some(&db))).await;
        for sql in seq.iter() {
            let (p, d) = (
                outcome(&mut through, sql).await,
                outcome(&mut direct, sql).await,
            );
            assert_eq!(p, d, "{sql} in {seq:?}");
        }
    }
}

/// A write among several statements goes to the master, even when the
/// first one asks about the previous statement, which ran on the replica;
/// inside a read-only transaction (open on the replica) a command that
/// would end it and then write is refused as a write inside it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_among_several_statements_never_runs_on_the_replica() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("multi_write");
    let proxy = proxy_master_no_reads();
    let url = proxy.url(Some(&db));
    let mut conn = connect(&url).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, node INT)")
        .await
        .unwrap();
    c.wait_replicated();
    let mut reader = connect(&url).await;
    eventually_reads_from(&mut reader, 2).await;
    // The previous statement ran on cn2; SHOW WARNINGS alone would go there.
    reader
        .query_drop("SHOW WARNINGS; INSERT INTO t VALUES (1, @@server_id)")
        .await
        .unwrap();
    let mut direct1 = connect(&c.direct_url(0, Some(&db))).await;
    let node: Option<u32> = direct1
        .query_first("SELECT node FROM t WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(node, Some(1), "the INSERT ran on cn1");

    let mut ro = connect(&url).await;
    eventually_reads_from(&mut ro, 2).await;
    ro.query_drop("START TRANSACTION READ ONLY").await.unwrap();
    assert_eq!(server_id(&mut ro).await, 2, "the transaction runs on cn2");
    match ro
        .query_drop("COMMIT; INSERT INTO t VALUES (2, @@server_id)")
        .await
    {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1792, "{e:?}"),
        other => panic!("COMMIT; INSERT in a read-only transaction: {other:?}"),
    }
    ro.query_drop("ROLLBACK").await.unwrap();
    c.wait_replicated();
    for n in 0..2 {
        let mut direct = connect(&c.direct_url(n, Some(&db))).await;
        let rows: Vec<(i32, u32)> = direct.query("SELECT id, node FROM t").await.unwrap();
        assert_eq!(rows, [(1, 1)], "cn{}", n + 1);
    }
}
