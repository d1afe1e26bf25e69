//! The result cache against the real cluster: hits are byte-identical and never reach a
//! node, writes through any session invalidate before their OK returns, uncommitted
//! writes are not served and are invalidated at COMMIT, the size limits and rules hold,
//! and concurrent misses of one key cost one backend query.
//!
//! "Reaches a node" is measured with the node's own per-user statement counter
//! (`information_schema.USER_STATISTICS.SELECT_COMMANDS`, the per-user Com_select, on with
//! `userstat=1`): the proxy's monitor runs its SELECTs as another user, so only the
//! application's SELECTs move it. Tests that read it hold the cluster exclusively.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{cluster, connect, Proxy};
use mysql_async::prelude::Queryable;
use sqlproxy::cache::{CacheStats, QueryCache};
use sqlproxy::config::Config;
use sqlproxy::protocol::caps;
use sqlproxy::protocol::codec;
use sqlproxy::protocol::handshake::{self, NativeSecret, NATIVE_PLUGIN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The fixture's config plus a `[cache]` section.
fn cache_config(cache_toml: &str) -> Config {
    let toml = format!(
        "{}\n[cache]\nenabled = true\n{cache_toml}",
        cluster().config_toml()
    );
    match Config::from_toml_str(&toml, []) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}"),
    }
}

fn cache_of(proxy: &Proxy) -> Arc<QueryCache> {
    match &proxy.context.cache {
        Some(c) => Arc::clone(c),
        None => panic!("the cache is not enabled"),
    }
}

/// A session handles one command at a time, so once this uncacheable statement answered,
/// the counters of the connection's previous statement (bumped after its reply was
/// flushed) are final.
async fn settle(conn: &mut mysql_async::Conn) {
    let _: Option<u32> = conn.query_first("SELECT @@server_id").await.unwrap();
}

async fn stats(proxy: &Proxy) -> CacheStats {
    let c = cache_of(proxy);
    c.run_pending_tasks().await;
    c.stats()
}

/// Turns on the per-user statistics on both nodes (idempotent; this binary's own cluster).
fn userstat_on() {
    for n in &cluster().nodes {
        if let Err(e) = n.sql("SET GLOBAL userstat = 1") {
            panic!("SET GLOBAL userstat: {e}");
        }
    }
}

/// SELECTs the application user ran on each node so far.
fn app_selects() -> [u64; 2] {
    let q =
        "SELECT SELECT_COMMANDS FROM information_schema.USER_STATISTICS WHERE USER = 'prestashop'";
    let mut out = [0; 2];
    for (i, n) in cluster().nodes.iter().enumerate() {
        out[i] = match n.value(q) {
            Ok(v) if v.is_empty() => 0,
            Ok(v) => v
                .parse()
                .unwrap_or_else(|e| panic!("SELECT_COMMANDS {v:?}: {e}")),
            Err(e) => panic!("USER_STATISTICS: {e}"),
        };
    }
    out
}

fn delta(before: [u64; 2], after: [u64; 2]) -> u64 {
    after[0] - before[0] + after[1] - before[1]
}

/// A table `t(id, v)` with `rows` rows in a fresh database, created through the proxy.
async fn table(proxy: &Proxy, test: &str, rows: u32) -> String {
    let db = cluster().fresh_db(test);
    let mut c = connect(&proxy.url(Some(&db))).await;
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(255))")
        .await
        .unwrap();
    for i in 1..=rows {
        c.exec_drop("INSERT INTO t VALUES (?, ?)", (i, format!("v{i}")))
            .await
            .unwrap();
    }
    db
}

// ---- a raw client, to compare reply bytes ---------------------------------

async fn read_packet(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).await.ok()?;
    let len = h[0] as usize | (h[1] as usize) << 8 | (h[2] as usize) << 16;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).await.ok()?;
    let mut all = h.to_vec();
    all.extend_from_slice(&p);
    Some(all)
}

async fn raw_login(proxy: &Proxy, db: &str) -> TcpStream {
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let greeting = read_packet(&mut s).await.expect("greeting");
    let hello = handshake::parse_greeting(&greeting[4..]).expect("parse greeting");
    let token = NativeSecret::from_password("prestashop")
        .scramble(&hello.nonce)
        .unwrap();
    let c = caps::PROTOCOL_41
        | caps::SECURE_CONNECTION
        | caps::PLUGIN_AUTH
        | caps::PLUGIN_AUTH_LENENC_CLIENT_DATA
        | caps::DEPRECATE_EOF
        | caps::TRANSACTIONS
        | caps::CONNECT_WITH_DB;
    let mut resp = handshake::backend_response(c, 45, b"prestashop", &token, NATIVE_PLUGIN);
    let at = resp.len() - NATIVE_PLUGIN.len() - 1;
    let mut d = db.as_bytes().to_vec();
    d.push(0);
    resp.splice(at..at, d);
    let mut out = Vec::new();
    codec::write_packet(&mut out, 1, &resp);
    s.write_all(&out).await.unwrap();
    let ok = read_packet(&mut s).await.expect("login reply");
    assert_eq!(ok[4], 0x00, "login OK, got {ok:?}");
    s
}

/// Sends a COM_QUERY and returns the whole text result set as framed bytes.
async fn raw_query(s: &mut TcpStream, sql: &str) -> Vec<u8> {
    let mut p = vec![0x03];
    p.extend_from_slice(sql.as_bytes());
    let mut out = Vec::new();
    codec::write_packet(&mut out, 0, &p);
    s.write_all(&out).await.unwrap();
    let mut reply = Vec::new();
    let first = read_packet(s).await.expect("reply");
    assert!(first[4] != 0xFF, "error reply: {first:?}");
    let cols = first[4] as usize;
    reply.extend_from_slice(&first);
    for _ in 0..cols {
        reply.extend_from_slice(&read_packet(s).await.expect("column"));
    }
    loop {
        let p = read_packet(s).await.expect("row");
        let end = p[4] == 0xFE && p.len() - 4 < 9;
        reply.extend_from_slice(&p);
        if end {
            return reply;
        }
    }
}

// ---- tests -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_is_byte_identical_and_does_not_reach_the_node() {
    let c = cluster();
    let _g = c.exclusive().await;
    userstat_on();
    let proxy = Proxy::start(cache_config(""));
    let db = table(&proxy, "hit_bytes", 20).await;
    let mut raw = raw_login(&proxy, &db).await;
    let mut conn = connect(&proxy.url(Some(&db))).await;
    let sql = "SELECT id, v, LENGTH(v) AS n FROM t WHERE id <= 10 ORDER BY id";

    let before = app_selects();
    let miss = raw_query(&mut raw, sql).await;
    let after_miss = app_selects();
    assert_eq!(delta(before, after_miss), 1, "the miss ran on a node");
    let hit = raw_query(&mut raw, &format!("/* request 42 */  {sql}\n")).await;
    let hit_again = raw_query(&mut raw, sql).await;
    assert_eq!(
        delta(after_miss, app_selects()),
        0,
        "hits stayed in the proxy"
    );
    assert_eq!(hit, miss, "a hit is byte-identical to the miss");
    assert_eq!(hit_again, miss);

    // The binary protocol: the same statement with other values is another key.
    let b = app_selects();
    let sql = "SELECT id, v FROM t WHERE id = ?";
    let r1: Option<(i32, String)> = conn.exec_first(sql, (3,)).await.unwrap();
    let r2: Option<(i32, String)> = conn.exec_first(sql, (3,)).await.unwrap();
    assert_eq!(delta(b, app_selects()), 1, "one execution reached a node");
    let r3: Option<(i32, String)> = conn.exec_first(sql, (4,)).await.unwrap();
    assert_eq!(delta(b, app_selects()), 2, "other values: another key");
    assert_eq!(r1, Some((3, "v3".to_string())));
    assert_eq!(r2, r1);
    assert_eq!(r3, Some((4, "v4".to_string())));

    settle(&mut conn).await;
    let _ = raw_query(&mut raw, "SELECT @@server_id").await;
    let s = stats(&proxy).await;
    assert_eq!(s.hits, 3, "{s:?}");
    assert_eq!(s.misses, 3, "{s:?}");
    assert_eq!(s.entries, 3, "{s:?}");
    assert!(
        s.digest_hits
            .iter()
            .any(|(d, h)| d.contains("FROM t WHERE id <=") && *h == 2),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_another_session_invalidates_before_its_ok() {
    let c = cluster();
    let _g = c.shared().await;
    let proxy = Proxy::start(cache_config(""));
    let db = table(&proxy, "write_invalidates", 3).await;
    let mut reader = connect(&proxy.url(Some(&db))).await;
    let mut writer = connect(&proxy.url(Some(&db))).await;
    let read = "SELECT v FROM t WHERE id = 1";
    for i in 0..20 {
        let _: Option<String> = reader.query_first(read).await.unwrap();
        let cached: Option<String> = reader.query_first(read).await.unwrap();
        let value = format!("w{i}");
        // Text, prepared and multi-table writes all invalidate.
        match i % 3 {
            0 => writer
                .query_drop(format!("UPDATE t SET v = '{value}' WHERE id = 1"))
                .await
                .unwrap(),
            1 => writer
                .exec_drop("UPDATE t SET v = ? WHERE id = 1", (&value,))
                .await
                .unwrap(),
            _ => writer
                .query_drop(format!(
                    "UPDATE t a JOIN t b ON a.id = b.id SET a.v = '{value}' WHERE a.id = 1"
                ))
                .await
                .unwrap(),
        }
        let fresh: Option<String> = reader.query_first(read).await.unwrap();
        assert_eq!(
            fresh.as_deref(),
            Some(value.as_str()),
            "round {i}, cached was {cached:?}"
        );
    }
    // DELETE, INSERT, REPLACE, TRUNCATE, through prepared statements too.
    let count = "SELECT COUNT(*) FROM t";
    let n = |v: Option<i64>| v.unwrap_or(-1);
    assert_eq!(n(reader.query_first(count).await.unwrap()), 3);
    writer
        .query_drop("DELETE FROM t WHERE id = 3")
        .await
        .unwrap();
    assert_eq!(n(reader.query_first(count).await.unwrap()), 2);
    writer
        .exec_drop("INSERT INTO t VALUES (?, 'x')", (9,))
        .await
        .unwrap();
    assert_eq!(n(reader.query_first(count).await.unwrap()), 3);
    writer
        .query_drop("REPLACE INTO t VALUES (10, 'y')")
        .await
        .unwrap();
    assert_eq!(n(reader.query_first(count).await.unwrap()), 4);
    writer.query_drop("TRUNCATE TABLE t").await.unwrap();
    assert_eq!(n(reader.query_first(count).await.unwrap()), 0);
    assert!(stats(&proxy).await.invalidations > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncommitted_writes_are_not_served_and_invalidate_at_commit() {
    let c = cluster();
    let _g = c.shared().await;
    let proxy = Proxy::start(cache_config(""));
    let db = table(&proxy, "commit_invalidates", 2).await;
    let mut reader = connect(&proxy.url(Some(&db))).await;
    let mut writer = connect(&proxy.url(Some(&db))).await;
    let read = "SELECT v FROM t WHERE id = 2";
    let v = |r: Option<String>| r.unwrap_or_default();

    for (begin, end) in [("BEGIN", "COMMIT"), ("SET autocommit = 0", "COMMIT")] {
        let old = v(reader.query_first(read).await.unwrap());
        writer.query_drop(begin).await.unwrap();
        let new = format!("{old}+");
        writer
            .exec_drop("UPDATE t SET v = ? WHERE id = 2", (&new,))
            .await
            .unwrap();
        // Others see (and may cache) the committed value only.
        assert_eq!(v(reader.query_first(read).await.unwrap()), old);
        assert_eq!(v(reader.query_first(read).await.unwrap()), old);
        // The writer reads its own write: its transaction bypasses the cache.
        assert_eq!(v(writer.query_first(read).await.unwrap()), new);
        writer.query_drop(end).await.unwrap();
        assert_eq!(
            v(reader.query_first(read).await.unwrap()),
            new,
            "after {end}"
        );
        if begin.starts_with("SET") {
            writer.query_drop("SET autocommit = 1").await.unwrap();
        }
    }
    // A rolled-back write changes nothing and serves nothing stale.
    let before = v(reader.query_first(read).await.unwrap());
    writer.query_drop("START TRANSACTION").await.unwrap();
    writer
        .query_drop("UPDATE t SET v = 'rolled back' WHERE id = 2")
        .await
        .unwrap();
    writer.query_drop("ROLLBACK").await.unwrap();
    assert_eq!(v(reader.query_first(read).await.unwrap()), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_over_the_limit_are_relayed_not_stored() {
    let c = cluster();
    let _g = c.shared().await;
    let proxy = Proxy::start(cache_config("max_entry_bytes = 2048\n"));
    let db = table(&proxy, "over_limit", 200).await;
    let mut conn = connect(&proxy.url(Some(&db))).await;
    let big = "SELECT id, v FROM t ORDER BY id";
    for _ in 0..3 {
        let rows: Vec<(i32, String)> = conn.query(big).await.unwrap();
        assert_eq!(rows.len(), 200);
        assert_eq!(rows[199], (200, "v200".to_string()));
    }
    let small = "SELECT v FROM t WHERE id = 7";
    for _ in 0..2 {
        let v: Option<String> = conn.query_first(small).await.unwrap();
        assert_eq!(v.as_deref(), Some("v7"));
    }
    settle(&mut conn).await;
    let s = stats(&proxy).await;
    assert_eq!(s.too_big, 3, "{s:?}");
    assert_eq!((s.stores, s.hits, s.misses), (1, 1, 4), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_bound_holds_while_filling_far_past_it() {
    let c = cluster();
    let _g = c.shared().await;
    let max_bytes = 64 * 1024;
    let proxy = Proxy::start(cache_config(&format!(
        "max_bytes = {max_bytes}\nmax_entry_bytes = 4096\n"
    )));
    let db = table(&proxy, "size_bound", 1).await;
    let mut conn = connect(&proxy.url(Some(&db))).await;
    // ~1 KiB per entry, 1000 distinct keys: about 15× the budget.
    for i in 0..1000 {
        let sql = format!("SELECT REPEAT('x', 1000) AS pad, {i} AS n FROM t");
        let row: Option<(String, i32)> = conn.query_first(&sql).await.unwrap();
        assert_eq!(row.map(|r| r.1), Some(i));
    }
    settle(&mut conn).await;
    let s = stats(&proxy).await;
    assert_eq!(s.stores, 1000, "{s:?}");
    assert!(s.bytes <= max_bytes, "{s:?}");
    assert!(s.entries > 0 && s.entries < 100, "{s:?}");
    assert!(s.evictions > 0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_apply_in_order() {
    let c = cluster();
    let _g = c.shared().await;
    let proxy = Proxy::start(cache_config(
        r#"
[[cache.rules]]
table = "secret"
never = true

[[cache.rules]]
digest = "SELECT COUNT(*) FROM t WHERE id > ?"
never = true

[[cache.rules]]
regex = "information_schema\\.SCHEMATA"
ttl = "1h"
"#,
    ));
    let db = table(&proxy, "rules", 2).await;
    let mut conn = connect(&proxy.url(Some(&db))).await;
    conn.query_drop("CREATE TABLE secret (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let cases = [
        // (statement, cached?)
        ("SELECT COUNT(*) FROM t", true),
        ("SELECT COUNT(*) FROM t WHERE id > 1", false),
        ("SELECT COUNT(*) FROM t WHERE id < 1", true),
        ("SELECT COUNT(*) FROM secret", false),
        ("SELECT COUNT(*) FROM t JOIN secret", false),
        ("SELECT COUNT(*) FROM information_schema.SCHEMATA", true),
        ("SELECT COUNT(*) FROM information_schema.TABLES", false),
        ("SELECT COUNT(*) FROM mysql.db", false),
        ("SELECT COUNT(*) FROM t WHERE NOW() > '2000-01-01'", false),
        ("SELECT SQL_NO_CACHE COUNT(*) FROM t WHERE id > 0", false),
        ("SELECT COUNT(*) FROM t WHERE id = CONNECTION_ID()", false),
        ("SELECT COUNT(*) FROM t LOCK IN SHARE MODE", false),
    ];
    let cache = cache_of(&proxy);
    for (sql, cached) in cases {
        let before = cache.stats();
        for _ in 0..2 {
            let _: Option<i64> = conn.query_first(sql).await.unwrap();
        }
        settle(&mut conn).await;
        let after = cache.stats();
        let hits = after.hits - before.hits;
        assert_eq!(hits, u64::from(cached), "{sql}: {after:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_of_one_key_cause_one_backend_query() {
    const CLIENTS: usize = 64;
    let c = cluster();
    let _g = c.exclusive().await;
    userstat_on();
    let proxy = Proxy::start(cache_config(""));
    let db = table(&proxy, "single_flight", 5).await;
    let mut conns = Vec::new();
    for _ in 0..CLIENTS {
        conns.push(connect(&proxy.url(Some(&db))).await);
    }
    // Hold the table on the master so the first query waits there while the others pile up.
    let mut locker = connect(&c.direct_url(0, Some(&db))).await;
    locker.query_drop("LOCK TABLES t WRITE").await.unwrap();
    let cache = cache_of(&proxy);
    let lookups = cache.stats().lookups;
    let before = app_selects();
    let mut tasks = Vec::new();
    for mut conn in conns {
        tasks.push(tokio::spawn(async move {
            let v: Option<String> = conn
                .query_first("SELECT GROUP_CONCAT(v ORDER BY id) FROM t")
                .await
                .unwrap();
            (v, conn)
        }));
    }
    for _ in 0..2000 {
        if cache.stats().lookups - lookups == CLIENTS as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(cache.stats().lookups - lookups, CLIENTS as u64);
    locker.query_drop("UNLOCK TABLES").await.unwrap();
    let mut conns = Vec::new();
    for t in tasks {
        let (v, conn) = t.await.unwrap();
        assert_eq!(v.as_deref(), Some("v1,v2,v3,v4,v5"));
        conns.push(conn);
    }
    assert_eq!(
        delta(before, app_selects()),
        1,
        "one backend query for {CLIENTS} clients"
    );
    for conn in &mut conns {
        settle(conn).await;
    }
    let s = cache.stats();
    assert_eq!(s.misses, 1, "{s:?}");
    assert_eq!(s.hits, CLIENTS as u64 - 1, "{s:?}");
}

/// The race measured with moka: a SELECT that read before a write committed must not
/// store (or serve) its result once the write's invalidation ran. The SELECT is held on
/// the master after reading its row by a stored function waiting on a user lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_select_that_read_before_a_write_does_not_store_its_stale_result() {
    let c = cluster();
    let _g = c.shared().await;
    let proxy = Proxy::start(cache_config(""));
    let db = table(&proxy, "stale_race", 1).await;
    let mut writer = connect(&proxy.url(Some(&db))).await;
    writer
        .query_drop(
            "CREATE FUNCTION gate() RETURNS INT NO SQL \
             RETURN GET_LOCK('cache_gate', 120) + RELEASE_LOCK('cache_gate') - 1",
        )
        .await
        .unwrap();
    let mut gatekeeper = connect(&c.direct_url(0, Some(&db))).await;
    let got: Option<i32> = gatekeeper
        .query_first("SELECT GET_LOCK('cache_gate', 10)")
        .await
        .unwrap();
    assert_eq!(got, Some(1));

    let url = proxy.url(Some(&db));
    let slow = tokio::spawn(async move {
        let mut reader = connect(&url).await;
        let v: Option<(String, i32)> = reader
            .query_first("SELECT v, gate() FROM t WHERE id = 1")
            .await
            .unwrap();
        (v, reader)
    });
    let waiting = "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                   WHERE STATE = 'User lock' AND INFO LIKE '%gate()%'";
    let mut blocked = false;
    for _ in 0..2000 {
        if c.nodes[0].value(waiting).is_ok_and(|n| n == "1") {
            blocked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(blocked, "the SELECT never waited in gate()");
    writer
        .query_drop("UPDATE t SET v = 'new' WHERE id = 1")
        .await
        .unwrap();
    gatekeeper
        .query_drop("DO RELEASE_LOCK('cache_gate')")
        .await
        .unwrap();
    let (old, mut reader) = slow.await.unwrap();
    assert_eq!(old, Some(("v1".to_string(), 1)), "it read before the write");
    let again: Option<(String, i32)> = reader
        .query_first("SELECT v, gate() FROM t WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(
        again,
        Some(("new".to_string(), 1)),
        "the stale result was served"
    );
    settle(&mut reader).await;
    let s = stats(&proxy).await;
    assert_eq!((s.stale, s.hits), (1, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_shows_and_flushes_the_cache() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("cache_admin");
    let mut cfg = cache_config("");
    cfg.admin = Some(sqlproxy::config::AdminConfig {
        enabled: true,
        listen: "127.0.0.1:0".parse().unwrap(),
        user: "admin".into(),
        password: "pw".into(),
        tls: None,
    });
    cfg.metrics = Some(sqlproxy::config::MetricsConfig {
        enabled: true,
        listen: "127.0.0.1:0".parse().unwrap(),
    });
    let proxy = Proxy::start(cfg);
    let mut conn = connect(&proxy.url(Some(&db))).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO t VALUES (1)").await.unwrap();
    // A statement whose digest is longer than SHOW QUERY DIGEST keeps (1 KiB).
    let columns: Vec<String> = (0..150).map(|i| format!("id AS long_alias_{i}")).collect();
    let long = format!("SELECT {} FROM t", columns.join(", "));
    for _ in 0..3 {
        let _: Vec<i32> = conn.query("SELECT id FROM t").await.unwrap();
        let _: Vec<mysql_async::Row> = conn.query(long.as_str()).await.unwrap();
    }
    let admin_url = format!(
        "mysql://admin:pw@{}?prefer_socket=false",
        proxy.admin_addr.unwrap()
    );
    let mut admin = mysql_async::Conn::from_url(admin_url.as_str())
        .await
        .unwrap();
    let counters: Vec<(String, String)> = admin.query("SHOW CACHE").await.unwrap();
    let get = |k: &str| -> u64 {
        counters
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {counters:?}"))
    };
    assert!(get("hits") >= 2, "{counters:?}");
    assert!(get("entries") >= 1, "{counters:?}");
    let digests: Vec<(String, u64)> = admin.query("SHOW CACHE DIGEST").await.unwrap();
    assert!(
        digests.iter().any(|(d, h)| d.contains("FROM t") && *h >= 2),
        "{digests:?}"
    );
    // The same hits beside the digest's totals: 3 runs, 1 miss that reached the node.
    let rows: Vec<mysql_async::Row> = admin.query("SHOW QUERY DIGEST").await.unwrap();
    // (digest, count, cache_hits) of the one row whose digest `is` picks.
    let digest_row = |is: &dyn Fn(&str) -> bool| -> (String, u64, u64) {
        let row = rows
            .iter()
            .find(|r| r.get::<String, _>("digest").is_some_and(|d| is(&d)))
            .unwrap_or_else(|| panic!("no such digest in {rows:?}"));
        let get = |c: &str| -> u64 { row.get(c).unwrap() };
        (row.get("digest").unwrap(), get("count"), get("cache_hits"))
    };
    let (_, count, hits) = digest_row(&|d| d.contains("FROM t") && !d.contains("long_alias"));
    assert_eq!((count, hits), (1, 2), "short SELECT");
    let (digest, count, hits) = digest_row(&|d| d.contains("long_alias_0"));
    assert!(
        digest.len() <= 1024 && !digest.contains("long_alias_149"),
        "cut: {digest}"
    );
    assert_eq!((count, hits), (1, 2), "a cut digest keeps its hits");
    let said: Option<String> = admin
        .query_first(format!("CACHE FLUSH '{db}.t'"))
        .await
        .unwrap();
    assert_eq!(said, Some(format!("entries reading {db}.t invalidated")));
    let said: Option<String> = admin.query_first("CACHE FLUSH").await.unwrap();
    assert_eq!(said.as_deref(), Some("all entries invalidated"));
    // The same counters on /metrics.
    let mut s = TcpStream::connect(proxy.metrics_addr.expect("metrics"))
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    let hits_line = body
        .lines()
        .find(|l| l.starts_with("sqlproxy_cache_hits_total "))
        .unwrap_or_else(|| panic!("no cache hits in /metrics:\n{body}"));
    let hits: u64 = hits_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(hits >= 2, "{hits_line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_set_transaction_uses_it_up_as_on_the_node() {
    // On a node a read of a table right after SET TRANSACTION uses that
    // one-shot mode up, so the next transaction is an ordinary one. A hit
    // would leave it waiting; so would a read run on another node than the
    // SET (reads are split: each round may pick other nodes).
    let c = cluster();
    let _g = c.shared().await;
    let proxy = Proxy::start(cache_config(""));
    let db = table(&proxy, "next_tx_hit", 3).await;
    c.wait_replicated();
    let url = proxy.url(Some(&db));
    let read = "SELECT COUNT(*) FROM t";
    let mut warm = connect(&url).await;
    for _ in 0..3 {
        let _: Option<u64> = warm.query_first(read).await.unwrap();
    }
    let s = stats(&proxy).await;
    assert!(s.hits >= 1, "the read is cached: {s:?}");
    // A SERIALIZABLE transaction's read takes locks: it shows in INNODB_TRX.
    let serializable = "SELECT COUNT(*) FROM information_schema.INNODB_TRX \
                        WHERE trx_isolation_level = 'SERIALIZABLE'";
    let sequences: &[&[&str]] = &[
        &[
            "SET TRANSACTION READ ONLY",
            read,
            "BEGIN",
            "INSERT INTO t VALUES (100, 'x')",
            "ROLLBACK",
        ],
        &[
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            read,
            "BEGIN",
            read,
            serializable,
            "ROLLBACK",
        ],
    ];
    for round in 0..6 {
        for seq in sequences {
            // One after the other: both insert the same row.
            let through = outcomes(&url, seq).await;
            let direct = outcomes(&c.direct_url(0, Some(&db)), seq).await;
            for ((sql, p), d) in seq.iter().zip(through).zip(direct) {
                assert_eq!(p, d, "{sql} in {seq:?}, round {round}");
            }
        }
    }
    warm.disconnect().await.unwrap();
}

/// What each statement of `seq` gives on a new connection to `url`: its
/// rows, or its error.
async fn outcomes(url: &str, seq: &[&str]) -> Vec<Result<Vec<String>, String>> {
    let mut conn = connect(url).await;
    let mut out = Vec::new();
    for sql in seq {
        let r: Result<Vec<mysql_async::Row>, _> = conn.query(*sql).await;
        out.push(
            r.map(|rows| rows.iter().map(|r| format!("{r:?}")).collect())
                .map_err(|e| e.to_string()),
        );
    }
    conn.disconnect().await.unwrap();
    out
}
