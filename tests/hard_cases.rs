//! The cases of ../shared/reference/hard-cases.md that routing.rs and
//! session.rs do not already cover: prepared statements after
//! COM_RESET_CONNECTION, re-execution on another node without parameter
//! types, LOAD DATA LOCAL, server-side cursors, read-only transactions,
//! 40 MiB long data, LOCK TABLES and LAST_INSERT_ID(expr).

mod common;

use std::process::Command;

use common::raw;
use common::{cluster, connect, php, server_id, Proxy};
use mysql_async::prelude::Queryable;

fn proxy() -> Proxy {
    Proxy::start(cluster().config())
}

/// The first column of a binary-protocol row whose first value is a string.
fn first_string(row: &[u8], columns: usize) -> String {
    let at = 1 + (columns + 7 + 2) / 8;
    let len = row[at] as usize;
    String::from_utf8_lossy(&row[at + 1..at + 1 + len]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_connection_forgets_prepared_statements() {
    let c = cluster();
    let _g = c.shared().await;
    let p = proxy();
    let mut s = raw::login(p.addr, None).await;
    let (id, _) = raw::prepare(&mut s, "SELECT 1").await.unwrap();
    raw::execute(&mut s, id, &[], false).await;
    assert_eq!(raw::read_result(&mut s).await.map(|r| r.len()), Ok(1));
    raw::send(&mut s, &[0x1f]).await; // COM_RESET_CONNECTION
    assert_eq!(raw::read_result(&mut s).await, Ok(vec![]));
    raw::execute(&mut s, id, &[], false).await;
    assert_eq!(
        raw::read_result(&mut s).await,
        Err(1243),
        "stale statement id"
    );
    raw::query(&mut s, "SELECT 2").await;
    assert_eq!(raw::read_result(&mut s).await.map(|r| r.len()), Ok(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reexecution_on_another_node_keeps_parameter_types() {
    let c = cluster();
    let _g = c.shared().await;
    let p = proxy();
    // Wait until reads split (the monitor has seen both nodes).
    let mut probe = connect(&p.url(None)).await;
    let mut seen = [false; 2];
    for _ in 0..2000 {
        seen[(server_id(&mut probe).await as usize - 1).min(1)] = true;
        if seen == [true, true] {
            break;
        }
    }
    assert_eq!(seen, [true, true]);
    let mut s = raw::login(p.addr, None).await;
    let (id, params) = raw::prepare(&mut s, "SELECT CONCAT('v', ?), @@server_id")
        .await
        .unwrap();
    assert_eq!(params, 1);
    raw::execute(&mut s, id, &["41"], true).await;
    let rows = raw::read_result(&mut s).await.unwrap();
    assert_eq!(first_string(&rows[0], 2), "v41");
    // Later executions send no types; wherever they run, the value is bound.
    for i in 0..60 {
        let v = format!("{i}");
        raw::execute(&mut s, id, &[&v], false).await;
        let rows = raw::read_result(&mut s).await.unwrap();
        assert_eq!(first_string(&rows[0], 2), format!("v{i}"));
    }
}

fn mariadb_cli(port: u16, db: &str, local_infile: bool, sql: &str) -> std::process::Output {
    Command::new("mariadb")
        .args([
            "-h127.0.0.1",
            &format!("-P{port}"),
            "-uprestashop",
            "-pprestashop",
            db,
        ])
        .arg(format!("--local-infile={}", u8::from(local_infile)))
        .args(["-e", sql])
        .output()
        .expect("mariadb client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_data_local_relays_the_clients_file() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("load_data_local");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.csv");
    let csv: String = (1..=500).map(|i| format!("{i},name {i}\n")).collect();
    std::fs::write(&file, csv).unwrap();
    let load = format!(
        "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY, name VARCHAR(20)); \
         LOAD DATA LOCAL INFILE '{}' INTO TABLE t FIELDS TERMINATED BY ','",
        file.display()
    );
    // Off by default: the node refuses, as it does for a client without the capability.
    let p = proxy();
    let out = mariadb_cli(p.addr.port(), &db, true, &load);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ERROR 4166") || err.contains("ERROR 1148"),
        "{err}"
    );
    drop(p);
    // On: the file travels from the client through the proxy to the master.
    let mut cfg = c.config();
    cfg.mysql.local_infile = true;
    let p = Proxy::start(cfg);
    let out = mariadb_cli(p.addr.port(), &db, true, &load);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut conn = connect(&p.url(Some(&db))).await;
    let n: Option<(u64, u64)> = conn
        .query_first("SELECT /* sqlproxy:master */ COUNT(*), SUM(id) FROM t")
        .await
        .unwrap();
    assert_eq!(n, Some((500, 125250)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_and_long_data_through_mysqlnd() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("cursor_and_long_data");
    let p = proxy();
    let port = p.addr.port().to_string();
    let out = php::run(
        "longdata.php",
        &["127.0.0.1", &port, "prestashop", "prestashop", &db],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let kv = php::key_values(&out);
    assert_eq!(kv["cursor.rows"], "150", "{out}");
    assert_eq!(
        kv["cursor.sum"],
        (101..=250).sum::<u32>().to_string(),
        "{out}"
    );
    assert_eq!(kv["long.length"], (40 * 1024 * 1024).to_string(), "{out}");
    assert_eq!(kv["long.md5_ok"], "yes", "{out}");
    assert_eq!(kv["read.md5_ok"], "yes", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_transactions_do_not_leak() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("read_only_transactions");
    let p = proxy();
    let url = p.url(Some(&db));
    let mut conn = connect(&url).await;
    conn.query_drop("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY)")
        .await
        .unwrap();
    // A write inside START TRANSACTION READ ONLY fails as on the node: 1792.
    conn.query_drop("START TRANSACTION READ ONLY")
        .await
        .unwrap();
    let _: Vec<u64> = conn.query("SELECT COUNT(*) FROM t").await.unwrap();
    let e = conn
        .query_drop("INSERT INTO t VALUES ()")
        .await
        .unwrap_err();
    match e {
        mysql_async::Error::Server(s) => assert_eq!((s.code, s.state.as_str()), (1792, "25006")),
        other => panic!("{other:?}"),
    }
    conn.query_drop("COMMIT").await.unwrap();
    // JDBC's setReadOnly(true): session characteristic, then back.
    conn.query_drop("SET SESSION TRANSACTION READ ONLY")
        .await
        .unwrap();
    let _: Vec<u64> = conn.query("SELECT COUNT(*) FROM t").await.unwrap();
    conn.query_drop("SET SESSION TRANSACTION READ WRITE")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO t VALUES ()").await.unwrap();
    // A session that leaves READ ONLY set must not leak it to the next one.
    conn.query_drop("SET SESSION TRANSACTION READ ONLY")
        .await
        .unwrap();
    drop(conn);
    for _ in 0..20 {
        let mut next = connect(&url).await;
        next.query_drop("INSERT INTO t VALUES ()").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_tables_and_last_insert_id_expr() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("lock_tables");
    let p = proxy();
    let mut conn = connect(&p.url(Some(&db))).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO t VALUES (1, 10)")
        .await
        .unwrap();
    conn.query_drop("LOCK TABLE t WRITE").await.unwrap();
    conn.query_drop("UPDATE t SET v = LAST_INSERT_ID(v + 5) WHERE id = 1")
        .await
        .unwrap();
    for _ in 0..10 {
        // Only the locking connection may read t now; any other would block or fail.
        let v: Option<i32> = conn
            .query_first("SELECT v FROM t WHERE id = 1")
            .await
            .unwrap();
        assert_eq!(v, Some(15));
    }
    let lid: Option<u64> = conn.query_first("SELECT LAST_INSERT_ID()").await.unwrap();
    assert_eq!(lid, Some(15));
    conn.query_drop("UNLOCK TABLES").await.unwrap();
    // Multi-row INSERT: LAST_INSERT_ID() is the first id of the batch.
    conn.query_drop("CREATE TABLE a (id INT AUTO_INCREMENT PRIMARY KEY, x INT)")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO a (x) VALUES (1), (2), (3)")
        .await
        .unwrap();
    let first: Option<u64> = conn.query_first("SELECT LAST_INSERT_ID()").await.unwrap();
    assert_eq!(first, Some(1));
}
