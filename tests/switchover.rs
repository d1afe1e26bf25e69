//! Planned switchover under load: sysbench oltp_read_write runs through the
//! proxy while `SWITCHOVER TO 'cn2'` and back to cn1 are issued on the admin
//! port. Zero client errors, and afterwards every sbtest table has the same
//! CHECKSUM on both nodes. Changes the master, so its own cluster and the
//! exclusive lock.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{cluster, Proxy};
use mysql_async::prelude::Queryable;
use sqlproxy::config::Config;

fn sysbench(port: u16, db: &str, phase: &str, seconds: u32) -> std::process::Output {
    Command::new("sysbench")
        .args([
            "oltp_read_write",
            "--mysql-host=127.0.0.1",
            &format!("--mysql-port={port}"),
            "--mysql-user=prestashop",
            "--mysql-password=prestashop",
            &format!("--mysql-db={db}"),
            "--tables=2",
            "--table-size=1000",
            "--threads=4",
            &format!("--time={seconds}"),
            "--report-interval=1",
            phase,
        ])
        .output()
        .unwrap_or_else(|e| panic!("sysbench: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_and_back_under_sysbench_gives_no_errors() {
    let c = cluster();
    let _g = c.exclusive().await;
    let db = c.fresh_db("switchover");
    let toml = format!(
        "{}\n[admin]\nenabled = true\nlisten = \"127.0.0.1:0\"\nuser = \"admin\"\npassword = \"secret\"\n",
        c.config_toml()
    );
    let cfg = Config::from_toml_str(&toml, []).unwrap_or_else(|e| panic!("{e}"));
    let proxy = Proxy::start(cfg);
    let port = proxy.addr.port();
    let out = sysbench(port, &db, "prepare", 0);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.wait_replicated();
    let admin_url = format!(
        "mysql://admin:secret@{}?prefer_socket=false",
        proxy.admin_addr.expect("admin port")
    );
    let db2 = db.clone();
    let load = std::thread::spawn(move || sysbench(port, &db2, "run", 12));
    let topology = std::sync::Arc::clone(&proxy.context.topology);
    for (target, id) in [("cn2", 1), ("cn1", 0)] {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut admin = mysql_async::Conn::from_url(admin_url.as_str())
            .await
            .unwrap();
        let said: Option<String> = admin
            .query_first(format!("SWITCHOVER TO '{target}'"))
            .await
            .unwrap_or_else(|e| panic!("SWITCHOVER TO {target}: {e}"));
        eprintln!("{target}: {said:?}");
        assert_eq!(topology.snapshot().master, Some(id));
    }
    let out = load.join().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("FATAL"), "{text}");
    let tx_line = text
        .lines()
        .find(|l| l.contains("transactions:"))
        .unwrap_or("");
    eprintln!("sysbench: {}", tx_line.trim());
    assert!(
        text.contains("reconnects:                          0"),
        "{text}"
    );
    // Same data on both nodes.
    c.wait_replicated();
    for table in ["sbtest1", "sbtest2"] {
        let sql = format!("CHECKSUM TABLE `{db}`.`{table}`");
        let mut sums = Vec::new();
        for node in 0..2 {
            let mut d = common::connect(&c.direct_url(node, Some(&db))).await;
            let row: Option<(String, u64)> = d.query_first(&sql).await.unwrap();
            sums.push(row.map(|r| r.1));
        }
        assert_eq!(sums[0], sums[1], "CHECKSUM of {table} on cn1 and cn2");
    }
}

/// A session with autocommit off, between transactions, follows the new
/// master after a switchover (its autocommit setting with it), and nothing
/// it writes afterwards lands on the old master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autocommit_off_sessions_follow_the_switchover() {
    let c = cluster();
    let _g = c.exclusive().await;
    let db = c.fresh_db("switchover_autocommit");
    let toml = format!(
        "{}\n[admin]\nenabled = true\nlisten = \"127.0.0.1:0\"\nuser = \"admin\"\npassword = \"secret\"\n",
        c.config_toml()
    );
    let cfg = Config::from_toml_str(&toml, []).unwrap_or_else(|e| panic!("{e}"));
    let proxy = Proxy::start(cfg);
    let mut s = common::connect(&proxy.url(Some(&db))).await;
    s.query_drop("CREATE TABLE t (id INT PRIMARY KEY, node INT)")
        .await
        .unwrap();
    s.query_drop("SET autocommit = 0").await.unwrap();
    s.query_drop("INSERT INTO t VALUES (1, @@server_id)")
        .await
        .unwrap();
    s.query_drop("COMMIT").await.unwrap();
    let (old, new, target) = match proxy.context.topology.snapshot().master {
        Some(0) => (0, 1, "cn2"),
        _ => (1, 0, "cn1"),
    };
    let admin_url = format!(
        "mysql://admin:secret@{}?prefer_socket=false",
        proxy.admin_addr.expect("admin port")
    );
    let mut admin = mysql_async::Conn::from_url(admin_url.as_str())
        .await
        .unwrap();
    admin
        .query_drop(format!("SWITCHOVER TO '{target}'"))
        .await
        .unwrap_or_else(|e| panic!("SWITCHOVER TO {target}: {e}"));
    s.query_drop("INSERT INTO t VALUES (2, @@server_id)")
        .await
        .unwrap_or_else(|e| panic!("the session's next transaction: {e}"));
    // Still autocommit off: the row is not visible elsewhere until COMMIT.
    let mut direct = common::connect(&c.direct_url(new, Some(&db))).await;
    let before: Option<u64> = direct
        .query_first("SELECT COUNT(*) FROM t WHERE id = 2")
        .await
        .unwrap();
    assert_eq!(before, Some(0), "autocommit=0 went with the session");
    s.query_drop("COMMIT").await.unwrap();
    let node: Option<u32> = direct
        .query_first("SELECT node FROM t WHERE id = 2")
        .await
        .unwrap();
    assert_eq!(
        node,
        Some(c.nodes[new].server_id),
        "written on the new master"
    );
    c.wait_replicated();
    let on_old: Option<u64> = common::connect(&c.direct_url(old, Some(&db)))
        .await
        .query_first("SELECT COUNT(*) FROM t")
        .await
        .unwrap();
    assert_eq!(on_old, Some(2), "the old master only replicated");
    // Back as the other tests expect it.
    let back = if new == 0 { "cn2" } else { "cn1" };
    admin
        .query_drop(format!("SWITCHOVER TO '{back}'"))
        .await
        .unwrap();
}
