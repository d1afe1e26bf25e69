//! Smoke tests of the test fixture itself (`tests/common`): the two nodes
//! answer as themselves, replicate both ways, hand out private databases, and
//! come back replicating after being killed. If these fail, every other
//! integration test's failure means nothing.
//!
//! Tests here that kill nodes hold `exclusive()`; the others hold `shared()`.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};

use common::{cluster, connect, php, server_id, GtidPos};
use mysql_async::prelude::Queryable;

/// Rows of `SELECT id, origin FROM <db>.t ORDER BY id` on a node.
async fn rows(node: usize, db: &str) -> Vec<(u32, String)> {
    let mut conn = connect(&cluster().direct_url(node, Some(db))).await;
    let rows = conn
        .query("SELECT id, origin FROM t ORDER BY id")
        .await
        .unwrap_or_else(|e| panic!("select on node {node}: {e}"));
    conn.disconnect().await.ok();
    rows
}

async fn insert(node: usize, db: &str, id: u32, origin: &str) {
    let mut conn = connect(&cluster().direct_url(node, Some(db))).await;
    conn.exec_drop("INSERT INTO t (id, origin) VALUES (?, ?)", (id, origin))
        .await
        .unwrap_or_else(|e| panic!("insert {id} on node {node}: {e}"));
    conn.disconnect().await.ok();
}

async fn create_table(db: &str) {
    let mut conn = connect(&cluster().direct_url(0, Some(db))).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, origin VARCHAR(16) NOT NULL)")
        .await
        .unwrap_or_else(|e| panic!("create table in {db}: {e}"));
    conn.disconnect().await.ok();
    cluster().wait_replicated();
}

fn refuses_connections(node: usize) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, cluster().nodes[node].port));
    TcpStream::connect(addr).is_err()
}

/// Both slave threads of a node, as SHOW SLAVE STATUS reports them.
fn slave_threads(node: usize) -> (String, String) {
    let status = cluster().nodes[node]
        .row("SHOW SLAVE STATUS")
        .unwrap_or_else(|e| panic!("SHOW SLAVE STATUS on node {node}: {e}"));
    let get = |k: &str| status.get(k).cloned().unwrap_or_default();
    (get("Slave_IO_Running"), get("Slave_SQL_Running"))
}

fn running() -> (String, String) {
    ("Yes".to_string(), "Yes".to_string())
}

#[tokio::test]
async fn both_nodes_answer_with_their_own_server_id() {
    let c = cluster();
    let _shared = c.shared().await;
    eprintln!("cluster started in {:?}", c.started_in);
    for (i, expected) in [(0, 1), (1, 2)] {
        assert_eq!(c.nodes[i].server_id, expected);
        assert_eq!(c.nodes[i].name, ["cn1", "cn2"][i]);
        let mut conn = connect(&c.direct_url(i, None)).await;
        assert_eq!(server_id(&mut conn).await, expected, "node {i} over TCP");
        let domain: Option<u32> = conn.query_first("SELECT @@gtid_domain_id").await.unwrap();
        assert_eq!(domain, Some(expected));
        conn.disconnect().await.ok();
        assert_eq!(slave_threads(i), running(), "slave threads of node {i}");
    }
    assert_ne!(c.nodes[0].port, c.nodes[1].port);
}

#[tokio::test]
async fn rows_replicate_from_cn1_to_cn2_and_back() {
    let c = cluster();
    let _shared = c.shared().await;
    let db = c.fresh_db("replicate_both_ways");
    create_table(&db).await;
    insert(0, &db, 1, "cn1").await;
    insert(1, &db, 2, "cn2").await;
    c.wait_replicated();
    let expected = vec![(1, "cn1".to_string()), (2, "cn2".to_string())];
    assert_eq!(rows(0, &db).await, expected, "cn1 has both rows");
    assert_eq!(rows(1, &db).await, expected, "cn2 has both rows");
    // Writes of each node are in its own GTID domain, applied by the other.
    let (p1, p2) = (c.gtid_pos(0), c.gtid_pos(1));
    assert!(p1.seq(1) > 0 && p1.seq(2) > 0, "cn1 at {p1}");
    assert!(p1.covers(&p2) && p2.covers(&p1), "cn1 at {p1}, cn2 at {p2}");
}

#[tokio::test]
async fn fresh_db_names_are_unique_and_valid() {
    let c = cluster();
    let _shared = c.shared().await;
    let a = c.fresh_db("same");
    let b = c.fresh_db("same");
    assert_ne!(a, b);
    let pid = std::process::id().to_string();
    assert!(a.starts_with("t_same_") && a.contains(&pid), "{a}");
    let long = c.fresh_db(&format!("Weird-Name/with spaces.{}", "x".repeat(100)));
    assert!(long.len() <= 64, "{long} has {} characters", long.len());
    assert!(long.starts_with("t_weird_name_with_spaces_x"), "{long}");
    assert!(
        long.ends_with(&format!("_{pid}_{}", long.rsplit('_').next().unwrap_or(""))),
        "{long}"
    );
    for name in [&a, &b, &long] {
        assert!(
            name.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'),
            "{name}"
        );
        // Usable as the default database on both nodes (fresh_db waited for cn2).
        for node in 0..2 {
            let mut conn = connect(&c.direct_url(node, Some(name))).await;
            let current: Option<String> = conn.query_first("SELECT DATABASE()").await.unwrap();
            assert_eq!(current.as_deref(), Some(name.as_str()), "node {node}");
            conn.disconnect().await.ok();
        }
    }
}

#[tokio::test]
async fn take_down_refuses_connections_and_the_guard_restores_replication() {
    let c = cluster();
    let _exclusive = c.exclusive().await;
    let db = c.fresh_db("take_down");
    create_table(&db).await;
    insert(0, &db, 1, "before").await;
    c.wait_replicated();
    let port = c.nodes[1].port;
    {
        let _down = c.take_down(1);
        assert!(!c.nodes[1].is_running());
        assert!(
            refuses_connections(1),
            "cn2 still accepts connections on {port}"
        );
        assert!(
            mysql_async::Conn::from_url(c.direct_url(1, None))
                .await
                .is_err(),
            "mysql_async reached cn2 while it is down"
        );
        // cn1 keeps working and binlogs what cn2 must fetch when it is back.
        insert(0, &db, 2, "during").await;
    }
    assert!(c.nodes[1].is_running());
    assert_eq!(c.nodes[1].port, port, "same port after restart");
    assert_eq!(
        slave_threads(0),
        running(),
        "cn1 replicates from the restarted cn2"
    );
    assert_eq!(
        slave_threads(1),
        running(),
        "the restarted cn2 replicates from cn1"
    );
    let mut conn = connect(&c.direct_url(1, None)).await;
    assert_eq!(server_id(&mut conn).await, 2);
    conn.disconnect().await.ok();
    // The guard waited for replication: the row written during the outage is there.
    let expected = vec![(1, "before".to_string()), (2, "during".to_string())];
    assert_eq!(rows(1, &db).await, expected);
    // It came back fenced; unfenced, its own writes flow back.
    assert_eq!(c.nodes[1].value("SELECT @@read_only").unwrap(), "1");
    c.nodes[1].sql("SET GLOBAL read_only = OFF").unwrap();
    insert(1, &db, 3, "after").await;
    c.nodes[1].sql("SET GLOBAL read_only = ON").unwrap();
    c.wait_replicated();
    assert_eq!(rows(0, &db).await.len(), 3);
}

#[tokio::test]
async fn kill_and_restart_cn1_explicitly() {
    let c = cluster();
    let _exclusive = c.exclusive().await;
    let db = c.fresh_db("kill_restart");
    create_table(&db).await;
    c.kill(0);
    assert!(refuses_connections(0));
    // Writes go to cn2 meanwhile, as a failover would make it master.
    c.nodes[1].sql("SET GLOBAL read_only = OFF").unwrap();
    insert(1, &db, 1, "cn2").await;
    c.restart(0);
    // A node comes back fenced (scripts/cluster.cnf), whatever it was.
    assert_eq!(c.nodes[0].value("SELECT @@read_only").unwrap(), "1");
    assert_eq!(rows(0, &db).await, vec![(1, "cn2".to_string())]);
    assert_eq!(slave_threads(0), running());
    assert_eq!(slave_threads(1), running());
    // Back to the fixture's state: cn1 writable, cn2 fenced.
    c.nodes[1].sql("SET GLOBAL read_only = ON").unwrap();
    c.nodes[0].sql("SET GLOBAL read_only = OFF").unwrap();
}

#[tokio::test]
async fn php_drivers_reach_each_node() {
    let c = cluster();
    let _shared = c.shared().await;
    let db = c.fresh_db("php_drivers");
    for node in 0..2 {
        let id = c.nodes[node].server_id.to_string();
        let port = c.nodes[node].port.to_string();
        let out = php::run(
            "whoami.php",
            &["127.0.0.1", &port, "prestashop", "prestashop", &db],
        )
        .unwrap_or_else(|e| panic!("node {node}: {e}"));
        let kv = php::key_values(&out);
        for driver in ["pdo", "mysqli"] {
            assert_eq!(
                kv.get(&format!("{driver}.server_id")),
                Some(&id),
                "{driver} on node {node}: {out}"
            );
            assert_eq!(
                kv.get(&format!("{driver}.db")),
                Some(&db),
                "{driver} on node {node}: {out}"
            );
        }
    }
    // A refused login comes back as the script's error, not as output.
    let port = c.nodes[0].port.to_string();
    let err = php::run("whoami.php", &["127.0.0.1", &port, "prestashop", "wrong"])
        .expect_err("a wrong password must fail");
    assert!(err.contains("1045"), "{err}");
}

/// The settings of scripts/cluster.cnf and the accounts of
/// scripts/cluster-init.sql, as sqlproxy will rely on them.
#[tokio::test]
async fn nodes_have_the_shared_settings_and_accounts() {
    let c = cluster();
    let _exclusive = c.exclusive().await; // flips read_only on cn2
    for node in 0..2 {
        let mut conn = connect(&c.direct_url(node, None)).await;
        let settings: Option<(u32, u32, String, u32, u64, String)> = conn
            .query_first(
                "SELECT @@auto_increment_increment, @@auto_increment_offset, @@binlog_format, \
                 @@log_slave_updates, @@max_allowed_packet, @@bind_address",
            )
            .await
            .unwrap();
        assert_eq!(
            settings,
            Some((1, 1, "ROW".into(), 1, 1 << 30, "127.0.0.1".into())),
            "node {node}"
        );
        conn.disconnect().await.ok();
    }
    // The monitor reads replication state and flips read_only.
    let port = c.nodes[1].port;
    let monitor_url = format!("mysql://sqlproxy_monitor:monitor@127.0.0.1:{port}");
    let mut monitor = connect(&monitor_url).await;
    let status: Vec<mysql_async::Row> = monitor.query("SHOW SLAVE STATUS").await.unwrap();
    assert_eq!(status.len(), 1);
    monitor
        .query_drop("SET GLOBAL read_only = 1")
        .await
        .unwrap();
    let read_only: Option<u32> = monitor
        .query_first("SELECT @@GLOBAL.read_only")
        .await
        .unwrap();
    monitor
        .query_drop("SET GLOBAL read_only = 0")
        .await
        .unwrap();
    assert_eq!(read_only, Some(1));
    monitor.disconnect().await.ok();
    // root has no TCP login at all (unix socket only).
    let root = mysql_async::Conn::from_url(format!("mysql://root@127.0.0.1:{port}")).await;
    match root {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1045, "{e}"),
        Err(e) => panic!("root over TCP: unexpected error {e}"),
        Ok(_) => panic!("root logged in over TCP"),
    }
}

#[test]
fn config_toml_describes_the_cluster() {
    let c = cluster();
    let cfg = c.config();
    assert_eq!(cfg.mysql.listen.port(), 0, "the proxy binds a free port");
    assert_eq!(
        cfg.nodes["cn1"].address,
        format!("127.0.0.1:{}", c.nodes[0].port)
    );
    assert_eq!(
        cfg.nodes["cn2"].address,
        format!("127.0.0.1:{}", c.nodes[1].port)
    );
    assert_eq!(cfg.nodes_by_priority(), vec!["cn1", "cn2"]);
    assert_eq!((cfg.nodes["cn1"].weight, cfg.nodes["cn2"].weight), (1, 1));
    assert_eq!(
        cfg.users["prestashop"]
            .password
            .as_ref()
            .map(|p| p.expose()),
        Some("prestashop")
    );
    assert_eq!(cfg.monitor.user, "sqlproxy_monitor");
    assert_eq!(cfg.monitor.interval, std::time::Duration::from_millis(200));
    assert_eq!((cfg.monitor.rise, cfg.monitor.fall), (2, 2));
}

#[test]
fn gtid_positions_compare_per_domain() {
    let a = GtidPos::parse("1-1-5,2-2-3");
    let b = GtidPos::parse("2-2-4");
    assert_eq!(GtidPos::parse(""), GtidPos::default());
    assert_eq!(a.seq(1), 5);
    assert_eq!(b.seq(1), 0);
    let u = a.union(&b);
    assert_eq!(u.to_string(), "1-1-5,2-2-4");
    assert!(u.covers(&a) && u.covers(&b));
    assert!(!a.covers(&b) && !b.covers(&a));
}
