//! A former master that comes back holding transactions the new master
//! never received, none of which a client got an OK for, has them undone
//! and rejoins (topology/failover/rewind.rs). The tail is written straight
//! to the master over its unix socket while the replica receives nothing,
//! so the proxy never acknowledged it; then the master is killed, the
//! replica promoted and the old master restarted. A tail with DDL, or the
//! rewind switched off, leaves the node diverged and untouched.
//!
//! Changes the cluster: its own cluster and the exclusive lock. Each test
//! starts from whichever node is master and leaves both nodes replicating
//! from each other again.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use common::daemon::wait_until;
use common::instance::{client, Row};
use common::{cluster, connect, Cluster, GtidPos, Proxy};
use mysql_async::prelude::Queryable;
use mysql_async::Value;

const ADMIN_PASSWORD: &str = "rewind-test";

/// Tables of every shape the rewind handles: a primary key with unsigned,
/// timestamp, set, decimal and datetime columns; no primary key, with a
/// NULL-able column, a latin1 string and a blob.
const TABLES: &[&str] = &[
    "CREATE TABLE pk (id INT PRIMARY KEY, note VARCHAR(20), u INT UNSIGNED, \
     ts TIMESTAMP(3) NULL, s SET('a','b','c'), d DECIMAL(10,2), dt DATETIME(6))",
    "CREATE TABLE nopk (a INT NULL, s VARCHAR(20) CHARACTER SET latin1, b BLOB)",
];

/// Written through the proxy: acknowledged.
const ACKED: &[&str] = &[
    "INSERT INTO pk VALUES (1, 'one', 4294967295, '2024-01-02 03:04:05.678', 'a,c', 12.34, '2020-01-01 00:00:00.123456'), \
     (2, 'two', 0, NULL, '', -1.50, '1999-12-31 23:59:59'), (3, 'three', 7, '1970-01-01 00:00:01', 'b', 0, '2000-02-29 12:00:00')",
    "INSERT INTO nopk VALUES (NULL, 'caf\u{e9}', X'00FF10'), (1, 'na\u{ef}ve', ''), (1, 'na\u{ef}ve', ''), (2, NULL, NULL)",
];

/// Written on the master over its socket, never acknowledged: inserts, an
/// update and a delete on both tables, some in one transaction. The
/// `mariadb` client's character set follows the locale, hence the
/// introducers.
const UNACKED: &str = "\
    INSERT INTO pk VALUES (100, 'new', 4294967294, '2030-05-05 05:05:05.5', 'c', 99.99, '2030-01-01 00:00:00'); \
    UPDATE pk SET note = 'changed', u = 4000000000, s = 'a,b,c', ts = '2031-01-01 00:00:00' WHERE id = 1; \
    DELETE FROM pk WHERE id = 2; \
    BEGIN; \
    INSERT INTO nopk VALUES (3, _utf8mb4'\u{e0} la', X'DEADBEEF'), (NULL, NULL, NULL); \
    UPDATE nopk SET b = X'0102', s = _utf8mb4'\u{e9}t\u{e9}' WHERE a IS NULL AND s = _utf8mb4'caf\u{e9}'; \
    DELETE FROM nopk WHERE a = 1 LIMIT 1; \
    UPDATE pk SET d = d + 1 WHERE id = 3; \
    COMMIT; \
    INSERT INTO pk VALUES (101, 'last', NULL, NULL, NULL, NULL, NULL)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_tail_is_rewound_and_the_old_master_rejoins() {
    let c = cluster();
    let _g = c.exclusive().await;
    let s = diverge(c, "rewound", "", &[], UNACKED).await;
    let (old, new) = (s.old, s.new);
    let topology = Arc::clone(&s.proxy.context.topology);
    let metrics = Arc::clone(&s.proxy.context.metrics);
    wait_until(
        "the old master rewound and replicating from the new one",
        || {
            let snap = topology.snapshot();
            let n = &snap.nodes[old];
            assert!(
                n.diverged.is_none(),
                "{} was kept diverged (SQLPROXY_TEST_LOG=error shows why)",
                n.name
            );
            let rewound = metrics.rewinds.load(Relaxed) == 1 && snap.is_up(old);
            (rewound && replicates_from(c, old, new)).then_some(())
        },
    );
    let row = backend(&s.proxy, c.nodes[old].name);
    assert_eq!(
        row.get("diverged").map(String::as_str),
        Some("no"),
        "{row:?}"
    );

    c.wait_replicated();
    for node in [old, new] {
        assert_eq!(
            tables(c, node, &s.db).await,
            s.acked,
            "{}: the acknowledged rows, and only they",
            c.nodes[node].name
        );
    }
    let checksums = |node: usize| {
        c.nodes[node]
            .sql(&format!(
                "CHECKSUM TABLE `{0}`.pk, `{0}`.nopk EXTENDED",
                s.db
            ))
            .unwrap_or_else(|e| panic!("checksum: {e}"))
    };
    assert_eq!(checksums(old), checksums(new));

    // Writes go on, and reach the rewound node too.
    let mut conn = connect(&s.proxy.url(Some(&s.db))).await;
    conn.query_drop("INSERT INTO pk (id, note) VALUES (500, 'after')")
        .await
        .unwrap();
    c.wait_replicated();
    for node in [old, new] {
        let note = c.nodes[node]
            .value(&format!("SELECT note FROM `{}`.pk WHERE id = 500", s.db))
            .unwrap();
        assert_eq!(note, "after", "{}", c.nodes[node].name);
    }
    // The two binlogs tell one history: each position holds the other.
    let binlog = |node: usize| {
        GtidPos::parse(
            &c.nodes[node]
                .value("SELECT @@GLOBAL.gtid_binlog_pos")
                .unwrap(),
        )
    };
    let (on_old, on_new) = (binlog(old), binlog(new));
    assert!(
        on_old.covers(&on_new) && on_new.covers(&on_old),
        "old {on_old}, new {on_new}"
    );
    drop(conn);
    drop(s.proxy);
    both_ways(c, old, new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_with_ddl_leaves_the_node_diverged_and_untouched() {
    let c = cluster();
    let _g = c.exclusive().await;
    let tail = "INSERT INTO pk (id, note) VALUES (200, 'kept'); \
                ALTER TABLE pk ADD COLUMN extra INT; \
                INSERT INTO nopk VALUES (9, 'kept', NULL)";
    let s = diverge(c, "ddl", "", &[], tail).await;
    wait_diverged(c, &s);
    let kept = c.nodes[s.old]
        .sql(&format!(
            "SELECT COUNT(*) FROM `{0}`.pk WHERE id = 200 AND extra IS NULL; \
             SELECT COUNT(*) FROM `{0}`.nopk WHERE a = 9",
            s.db
        ))
        .unwrap();
    assert_eq!(kept.split_whitespace().collect::<Vec<_>>(), ["1", "1"]);
    assert_eq!(s.proxy.context.metrics.rewinds.load(Relaxed), 0);
    repair(c, s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_rewind_off_the_node_stays_diverged() {
    let c = cluster();
    let _g = c.exclusive().await;
    let off = "[failover]\nrewind_unacknowledged = false\n";
    let s = diverge(c, "off", off, &[], "INSERT INTO pk (id) VALUES (300)").await;
    wait_diverged(c, &s);
    let kept = c.nodes[s.old]
        .value(&format!(
            "SELECT COUNT(*) FROM `{}`.pk WHERE id = 300",
            s.db
        ))
        .unwrap();
    assert_eq!(kept, "1");
    repair(c, s);
}

/// A client that switched off the node's report of its commits' GTIDs may
/// have had commits acknowledged that the proxy never saw: nothing proves
/// the tail unacknowledged any more, so it is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_client_stopped_gtid_tracking_the_tail_is_kept() {
    let c = cluster();
    let _g = c.exclusive().await;
    let untrack = ["SET session_track_system_variables = ''"];
    let s = diverge(
        c,
        "untracked",
        "",
        &untrack,
        "INSERT INTO pk (id) VALUES (400)",
    )
    .await;
    wait_diverged(c, &s);
    let kept = c.nodes[s.old]
        .value(&format!(
            "SELECT COUNT(*) FROM `{}`.pk WHERE id = 400",
            s.db
        ))
        .unwrap();
    assert_eq!(kept, "1");
    assert_eq!(s.proxy.context.metrics.rewinds.load(Relaxed), 0);
    repair(c, s);
}

/// A cluster whose old master came back with a tail, and what it was.
struct Diverged {
    proxy: Proxy,
    db: String,
    /// The master that was killed and restarted, and the one promoted.
    old: usize,
    new: usize,
    /// Both tables' rows as acknowledged, before the tail.
    acked: Vec<Vec<Value>>,
    /// The old master's binlog position with its tail.
    binlog: String,
}

/// Starts a proxy (`extra` added to its config), writes acknowledged rows
/// through it (then runs `session` in the same session), then `tail` straight to the master while the replica
/// receives nothing, kills the master, waits for the replica's promotion
/// and restarts the old master.
async fn diverge(
    c: &'static Cluster,
    test: &str,
    extra: &str,
    session: &[&str],
    tail: &str,
) -> Diverged {
    let toml = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\npassword = \"{ADMIN_PASSWORD}\"\n\n{extra}",
        c.config_toml()
    );
    let config = sqlproxy::config::Config::from_toml_str(&toml, [])
        .unwrap_or_else(|e| panic!("config: {e}"));
    let proxy = Proxy::start(config);
    let topology = Arc::clone(&proxy.context.topology);
    let (old, new) = wait_until("a master named and the other node fenced", || {
        let s = topology.snapshot();
        let m = s.master?;
        let r = 1 - m;
        (s.is_up(m) && s.is_up(r) && s.nodes[r].read_only == Some(true)).then_some((m, r))
    });
    let db = c.fresh_db(test);
    let mut conn = connect(&proxy.url(Some(&db))).await;
    for sql in TABLES.iter().chain(ACKED).chain(session) {
        conn.query_drop(*sql).await.unwrap();
    }
    drop(conn);
    c.wait_replicated();
    let acked = tables(c, old, &db).await;

    c.nodes[new].sql("STOP SLAVE IO_THREAD").unwrap();
    c.nodes[old]
        .sql(&format!("USE `{db}`; {tail}"))
        .unwrap_or_else(|e| panic!("the tail on the master: {e}"));
    assert_ne!(tables(c, old, &db).await, acked, "the tail changed rows");
    let binlog = c.nodes[old]
        .value("SELECT @@GLOBAL.gtid_binlog_pos")
        .unwrap();
    c.kill(old);
    wait_until("the replica promoted", || {
        (topology.snapshot().master == Some(new)).then_some(())
    });
    c.nodes[old]
        .start(true)
        .unwrap_or_else(|e| panic!("restart the old master: {e}"));
    Diverged {
        proxy,
        db,
        old,
        new,
        acked,
        binlog,
    }
}

/// Waits until the old master is reported diverged, and checks it kept its tail.
fn wait_diverged(c: &Cluster, s: &Diverged) {
    let name = c.nodes[s.old].name;
    wait_until(&format!("{name} reported diverged"), || {
        let row = backend(&s.proxy, name);
        (row.get("diverged").map(String::as_str) == Some("yes")).then_some(())
    });
    let binlog = c.nodes[s.old]
        .value("SELECT @@GLOBAL.gtid_binlog_pos")
        .unwrap();
    assert_eq!(binlog, s.binlog, "the diverged node's binlog is untouched");
}

/// `name`'s row of SHOW BACKENDS on the admin port.
fn backend(proxy: &Proxy, name: &str) -> Row {
    let Some(admin) = proxy.admin_addr else {
        panic!("the admin port is not enabled");
    };
    let rows = client(admin, "admin", ADMIN_PASSWORD, None, "SHOW BACKENDS")
        .unwrap_or_else(|e| panic!("SHOW BACKENDS: {e}"));
    rows.into_iter()
        .find(|r| r.get("name").map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("{name} is not in SHOW BACKENDS"))
}

/// Does `node` replicate from `master` with both threads running?
fn replicates_from(c: &Cluster, node: usize, master: usize) -> bool {
    c.nodes[node].row("SHOW SLAVE STATUS").is_ok_and(|s| {
        let is = |k: &str, v: &str| s.get(k).is_some_and(|x| x == v);
        is("Slave_IO_Running", "Yes")
            && is("Slave_SQL_Running", "Yes")
            && is("Master_Port", &c.nodes[master].port.to_string())
    })
}

/// Both tables' rows on `node`, read directly, in a fixed order.
async fn tables(c: &Cluster, node: usize, db: &str) -> Vec<Vec<Value>> {
    let mut conn = connect(&c.direct_url(node, Some(db))).await;
    let mut all = Vec::new();
    for sql in [
        "SELECT * FROM pk ORDER BY id",
        "SELECT * FROM nopk ORDER BY a, s, b",
    ] {
        let rows: Vec<mysql_async::Row> = conn.query(sql).await.unwrap();
        all.extend(rows.into_iter().map(mysql_async::Row::unwrap));
    }
    all
}

/// By hand, as an operator would: the diverged node's tail (all in the
/// test's database) dropped, its GTID state made the master's; then both
/// nodes replicate from each other again. The proxy goes first: it would
/// rejoin the node the moment its position looks repaired, in the middle.
fn repair(c: &Cluster, s: Diverged) {
    let Diverged {
        proxy,
        db,
        old,
        new,
        ..
    } = s;
    drop(proxy);
    let state = c.nodes[new]
        .value("SELECT @@GLOBAL.gtid_binlog_state")
        .unwrap();
    let pos = c.nodes[new]
        .value("SELECT @@GLOBAL.gtid_current_pos")
        .unwrap();
    c.nodes[old]
        .sql(&format!(
            "STOP SLAVE; SET SESSION sql_log_bin = 0; DROP DATABASE IF EXISTS `{0}`; \
             RESET MASTER; SET GLOBAL gtid_binlog_state = '{state}'; \
             SET GLOBAL gtid_slave_pos = '{pos}'; START SLAVE",
            db
        ))
        .unwrap_or_else(|e| panic!("repair: {e}"));
    c.nodes[new]
        .sql(&format!("DROP DATABASE IF EXISTS `{db}`"))
        .unwrap();
    both_ways(c, old, new);
}

/// The promoted node replicates from the old master again (as the
/// fixture's cluster does), so the next test finds both ways running.
fn both_ways(c: &Cluster, old: usize, new: usize) {
    c.nodes[new].sql("START SLAVE").unwrap();
    wait_until("both nodes replicating from each other", || {
        (replicates_from(c, old, new) && replicates_from(c, new, old)).then_some(())
    });
    c.wait_replicated();
}
