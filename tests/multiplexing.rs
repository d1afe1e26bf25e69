//! Multiplexing: a session that nothing ties to its node connections gives
//! them back to the pool between statements, so many idle clients share a
//! few node connections and more clients than a node's limit are served.
//! What ties a session (a transaction, a temporary table, a user variable,
//! a generated id, warnings not yet read) keeps its connection, and a
//! connection that changes hands carries nothing of the session before.
//! Counted and read on the nodes themselves.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cluster, connect, server_id, Proxy};
use mysql_async::prelude::Queryable;

/// Connections on node `node` whose schema is this test's own.
fn held_on(node: usize, db: &str) -> u32 {
    let sql = format!("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{db}'");
    let n = cluster().nodes[node].value(&sql).expect("processlist");
    n.trim().parse().unwrap_or_else(|_| panic!("count: {n:?}"))
}

/// The node thread serving a master-bound statement of this session.
async fn master_thread(conn: &mut mysql_async::Conn) -> u64 {
    conn.query_first("SELECT @@pseudo_thread_id /* sqlproxy:master */")
        .await
        .expect("thread id")
        .expect("a row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_share_a_few_node_connections_and_each_still_works() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("mux_idle");
    let mut config = c.config();
    config.pool.multiplex_idle = Duration::from_millis(100);
    let proxy = Proxy::start(config);
    let url = proxy.url(Some(&db));
    let mut setup = connect(&url).await;
    setup
        .query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        .await
        .expect("create");
    c.wait_replicated();
    const CLIENTS: usize = 300;
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let mut conn = connect(&url).await;
        assert!(master_thread(&mut conn).await > 0);
        let _ = server_id(&mut conn).await;
        clients.push(conn);
    }
    // All logged in and idle: their connections went back to the pool,
    // which keeps `max_idle` (8) per node and kind.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (on0, on1) = (held_on(0, &db), held_on(1, &db));
    assert!(
        on0 <= 20 && on1 <= 20,
        "{CLIENTS} idle clients hold {on0} connections on node 0 and {on1} on node 1"
    );
    // Every client still works, each with its own write read back on the
    // master, and reads still split.
    for (i, conn) in clients.iter_mut().enumerate() {
        conn.exec_drop("INSERT INTO t VALUES (?, ?)", (i, i * 7))
            .await
            .expect("insert");
        let v: Option<usize> = conn
            .exec_first("SELECT v FROM t WHERE id = ? /* sqlproxy:master */", (i,))
            .await
            .expect("read back");
        assert_eq!(v, Some(i * 7));
    }
    let n: Option<usize> = c.nodes[0]
        .value(&format!("SELECT COUNT(*) FROM {db}.t"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    assert_eq!(n, Some(CLIENTS), "the master holds every client's row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_a_session_relies_on_keeps_its_connection_and_a_handed_over_one_carries_none() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("mux_state");
    let mut config = c.config();
    config.pool.multiplex_idle = Duration::from_millis(50);
    config.pool.max_idle = 1;
    let proxy = Proxy::start(config);
    let url = proxy.url(Some(&db));
    let mut a = connect(&url).await;
    a.query_drop("CREATE TABLE ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
        .await
        .expect("create");
    a.query_drop("INSERT INTO ai (v) VALUES (1), (2), (3)")
        .await
        .expect("fill");
    let nap = || tokio::time::sleep(Duration::from_millis(300));

    // A plain session's connection goes back when idle and the next session
    // draws that same node thread, with nothing of the first: no session
    // variable, no user variable, no generated id.
    let mut first = connect(&url).await;
    first
        .query_drop("SET SESSION sql_mode = 'ANSI_QUOTES'")
        .await
        .expect("set");
    let thread = master_thread(&mut first).await;
    nap().await;
    let mut second = connect(&url).await;
    assert_eq!(
        master_thread(&mut second).await,
        thread,
        "the idle session's connection was not handed over"
    );
    let (mode, var, id): (String, Option<i64>, u64) = second
        .query_first("SELECT @@sql_mode, @x, LAST_INSERT_ID() /* sqlproxy:master */")
        .await
        .expect("second's view")
        .expect("a row");
    assert!(!mode.contains("ANSI_QUOTES"), "sql_mode leaked: {mode}");
    assert_eq!((var, id), (None, 0));
    // The first session's own SET is replayed on whatever it draws next.
    let mode: String = first
        .query_first("SELECT @@sql_mode /* sqlproxy:master */")
        .await
        .expect("mode")
        .expect("a row");
    assert_eq!(mode, "ANSI_QUOTES");
    drop(second);

    // A generated id keeps the connection: LAST_INSERT_ID() after a pause.
    let mut ins = connect(&url).await;
    ins.query_drop("INSERT INTO ai (v) VALUES (42)")
        .await
        .expect("insert");
    let thread = master_thread(&mut ins).await;
    nap().await;
    let (last, again): (u64, u64) = ins
        .query_first("SELECT LAST_INSERT_ID(), @@pseudo_thread_id")
        .await
        .expect("last id")
        .expect("a row");
    assert_eq!((last, again), (4, thread));

    // A user variable, a temporary table and an open transaction each pin
    // the session: all still there after a pause.
    let mut pinned = connect(&url).await;
    pinned.query_drop("SET @x = 5").await.expect("set @x");
    pinned
        .query_drop("CREATE TEMPORARY TABLE tmp (a INT)")
        .await
        .expect("temp");
    pinned.query_drop("BEGIN").await.expect("begin");
    pinned
        .query_drop("INSERT INTO tmp VALUES (7)")
        .await
        .expect("fill tmp");
    pinned
        .query_drop("UPDATE ai SET v = 100 WHERE id = 1")
        .await
        .expect("update");
    nap().await;
    let (x, tmp, v): (i64, i64, i64) = pinned
        .query_first("SELECT @x, (SELECT a FROM tmp), (SELECT v FROM ai WHERE id = 1)")
        .await
        .expect("pinned state")
        .expect("a row");
    assert_eq!((x, tmp, v), (5, 7, 100));
    pinned.query_drop("ROLLBACK").await.expect("rollback");
    let direct = c.nodes[0]
        .value(&format!("SELECT v FROM {db}.ai WHERE id = 1"))
        .expect("direct");
    assert_eq!(
        direct.trim(),
        "1",
        "the rolled-back update reached the node"
    );

    // Warnings stay readable after a pause; a prepared statement runs again
    // after its connection went back (prepared anew where it runs).
    let mut w = connect(&url).await;
    w.query_drop("CREATE TABLE plain (v INT)")
        .await
        .expect("create");
    w.query_drop("SET SESSION sql_mode = ''")
        .await
        .expect("mode");
    w.query_drop("INSERT INTO plain VALUES ('x')")
        .await
        .expect("insert with a warning");
    nap().await;
    let warnings: Vec<(String, u32, String)> = w.query("SHOW WARNINGS").await.expect("warnings");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].1, 1366);
    // So does an error's (in a session SHOW WARNINGS has not tied yet).
    let mut e = connect(&url).await;
    let err = e.query_drop("SELECT * FROM no_such_table").await;
    assert!(err.is_err(), "{err:?}");
    nap().await;
    let warnings: Vec<(String, u32, String)> = e.query("SHOW WARNINGS").await.expect("warnings");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].1, 1146);
    // A dropped current database leaves the session in none, as on a node.
    let mut d = connect(&url).await;
    d.query_drop(format!("CREATE DATABASE {db}_gone"))
        .await
        .expect("create db");
    d.query_drop(format!("USE {db}_gone")).await.expect("use");
    d.query_drop(format!("DROP DATABASE {db}_gone"))
        .await
        .expect("drop db");
    nap().await;
    let none: Option<Option<String>> = d
        .query_first("SELECT DATABASE()")
        .await
        .expect("database()");
    assert_eq!(none, Some(None));
    d.query_drop("SELECT 1")
        .await
        .expect("a statement with no database");
    // A prepared statement reads the tables of the schema it was prepared
    // in, wherever and whenever it is prepared again (as on a node).
    let mut s2 = connect(&url).await;
    s2.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS {db}_two; CREATE TABLE {db}_two.ai (id INT, v INT); \
         INSERT INTO {db}_two.ai VALUES (1, 2000)"
    ))
    .await
    .expect("second schema");
    c.wait_replicated();
    let read = s2
        .prep("SELECT v FROM ai WHERE id = 1")
        .await
        .expect("prepare");
    s2.query_drop(format!("USE {db}_two")).await.expect("use");
    for round in 0..3 {
        nap().await;
        let v: Option<i64> = s2.exec_first(&read, ()).await.expect("execute");
        assert_eq!(
            v,
            Some(1),
            "round {round}: the table of the PREPARE's schema"
        );
    }
    // SETs sent together (as one init command) hold after a pause, on the
    // reads too.
    let mut t = connect(&url).await;
    t.query_drop("SET NAMES utf8mb4; SET time_zone = '+03:00'")
        .await
        .expect("two SETs");
    nap().await;
    for _ in 0..4 {
        let tz: Option<String> = t.query_first("SELECT @@time_zone").await.expect("tz");
        assert_eq!(tz.as_deref(), Some("+03:00"));
    }
    // With the schema no longer reported by the node, a USE still moves the
    // session, and its connection is not handed over as if in the old one.
    let mut u = connect(&url).await;
    u.query_drop(format!("CREATE DATABASE IF NOT EXISTS {db}_other"))
        .await
        .expect("create db");
    u.query_drop("SET SESSION session_track_schema = OFF")
        .await
        .expect("tracking off");
    u.query_drop(format!("USE {db}_other")).await.expect("use");
    let here: Option<String> = u
        .query_first("SELECT DATABASE() /* sqlproxy:master */")
        .await
        .expect("database()");
    assert_eq!(here.as_deref(), Some(format!("{db}_other").as_str()));
    nap().await;
    drop(u);
    for _ in 0..3 {
        let mut v = connect(&url).await;
        let there: Option<String> = v
            .query_first("SELECT DATABASE() /* sqlproxy:master */")
            .await
            .expect("database()");
        assert_eq!(
            there.as_deref(),
            Some(db.as_str()),
            "a new session's database"
        );
    }
    let mut p = connect(&url).await;
    let stmt = p
        .prep("SELECT v + ? FROM ai WHERE id = ? /* sqlproxy:master */")
        .await
        .expect("prepare");
    let one: Option<i64> = p.exec_first(&stmt, (1, 2)).await.expect("execute");
    nap().await;
    let two: Option<i64> = p.exec_first(&stmt, (10, 3)).await.expect("execute again");
    assert_eq!((one, two), (Some(3), Some(13)));
}

/// Ten inserts and reads of its own rows; the connection is kept open.
async fn busy_client(
    url: &str,
    i: usize,
    keep: &mut Option<mysql_async::Conn>,
) -> Result<(), String> {
    let conn = keep.insert(
        mysql_async::Conn::from_url(url)
            .await
            .map_err(|e| format!("connect {i}: {e}"))?,
    );
    for k in 0..10 {
        let id = i * 100 + k;
        conn.exec_drop("INSERT INTO t VALUES (?, ?)", (id, i))
            .await
            .map_err(|e| format!("insert {id}: {e}"))?;
        let n: Option<usize> = conn
            .exec_first(
                "SELECT COUNT(*) FROM t WHERE c = ? /* sqlproxy:master */",
                (i,),
            )
            .await
            .map_err(|e| format!("count {i}: {e}"))?;
        if n != Some(k + 1) {
            return Err(format!("client {i} saw {n:?} of its rows, wrote {}", k + 1));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_busy_clients_than_the_node_limit_are_all_served() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("mux_limit");
    let mut config = c.config();
    config.pool.max_per_node = 4;
    config.pool.checkout_timeout = Duration::from_secs(20);
    let proxy = Proxy::start(config);
    let url = proxy.url(Some(&db));
    let mut setup = connect(&url).await;
    setup
        .query_drop("CREATE TABLE t (id INT PRIMARY KEY, c INT)")
        .await
        .expect("create");
    c.wait_replicated();
    drop(setup);
    const CLIENTS: usize = 40;
    let began = Instant::now();
    // Every client stays logged in until all are done: without
    // multiplexing, four would hold the four slots to the end.
    let all_done = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let url = url.clone();
            let all_done = Arc::clone(&all_done);
            tokio::spawn(async move {
                let mut conn = None;
                let worked = busy_client(&url, i, &mut conn).await;
                all_done.wait().await;
                worked
            })
        })
        .collect();
    let mut peak = 0;
    while !tasks.iter().all(|t| t.is_finished()) {
        peak = peak.max(held_on(0, &db));
        assert!(began.elapsed() < Duration::from_secs(120), "clients stuck");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for t in tasks {
        t.await.expect("task").expect("client");
    }
    assert!(peak <= 4, "node 0 held {peak} connections, limit 4");
    let n = c.nodes[0]
        .value(&format!("SELECT COUNT(*) FROM {db}.t"))
        .expect("count");
    assert_eq!(n.trim(), (CLIENTS * 10).to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_connections_given_back_after_every_command_what_a_session_asks_next_still_holds() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("mux_every");
    let mut config = c.config();
    config.pool.multiplex_idle = Duration::ZERO;
    config.pool.max_idle = 1;
    let proxy = Proxy::start(config);
    // Discovery fences cn2, killing the connections it has: wait for it.
    let topology = Arc::clone(&proxy.context.topology);
    let began = Instant::now();
    while !(topology.snapshot().master == Some(0)
        && topology.snapshot().nodes[1].read_only == Some(true))
    {
        assert!(began.elapsed() < Duration::from_secs(30), "no discovery");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = proxy.url(Some(&db));
    let mut setup = connect(&url).await;
    setup
        .query_drop("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
        .await
        .expect("create");
    let values: Vec<String> = (1..=30).map(|i| format!("({i})")).collect();
    setup
        .query_drop(format!("INSERT INTO t (v) VALUES {}", values.join(",")))
        .await
        .expect("fill");
    drop(setup);
    c.wait_replicated();
    // A second client keeps drawing connections in between.
    let mut other = connect(&url).await;

    let mut found = connect(&url).await;
    let rows: Vec<i64> = found
        .query("SELECT SQL_CALC_FOUND_ROWS id FROM t ORDER BY id LIMIT 3")
        .await
        .expect("calc");
    assert_eq!(rows, vec![1, 2, 3]);
    let _ = server_id(&mut other).await;
    let total: Option<u64> = found
        .query_first("SELECT FOUND_ROWS()")
        .await
        .expect("found");
    assert_eq!(total, Some(30));

    let mut ins = connect(&url).await;
    ins.query_drop("INSERT INTO t (v) VALUES (99)")
        .await
        .expect("insert");
    let _ = master_thread(&mut other).await;
    let last: Option<u64> = ins
        .query_first("SELECT LAST_INSERT_ID()")
        .await
        .expect("last id");
    assert_eq!(last, Some(31));

    let mut w = connect(&url).await;
    let _: Option<Option<i64>> = w.query_first("SELECT 1/0").await.expect("division");
    let _ = master_thread(&mut other).await;
    let warnings: Vec<(String, u32, String)> = w.query("SHOW WARNINGS").await.expect("warnings");
    assert_eq!(warnings.iter().map(|w| w.1).collect::<Vec<_>>(), vec![1365]);

    let mut p = connect(&url).await;
    let stmt = p
        .prep("SELECT v FROM t WHERE id = ?")
        .await
        .expect("prepare");
    for id in [5, 6, 7] {
        let _ = master_thread(&mut other).await;
        let v: Option<i64> = p.exec_first(&stmt, (id,)).await.expect("execute");
        assert_eq!(v, Some(id));
    }
}
