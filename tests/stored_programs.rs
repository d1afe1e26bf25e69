//! Stored programs through the proxy give the client exactly the packets the
//! master gives it directly: procedures with cursors, handlers, SIGNAL and
//! RESIGNAL, OUT/INOUT parameters, `BEGIN NOT ATOMIC`, multi-statements
//! mixing them, and server-side cursors with COM_STMT_FETCH; text and binary
//! protocol; classic EOF (PHP's mysqlnd) and DEPRECATE_EOF (newer drivers).
//!
//! Both sides are read by `common::replies`, which has its own idea of where
//! a reply ends: a proxy that stops relaying early shows up as a hang there.
//! After each comparison the same session runs `SELECT <marker>` and must get
//! that marker back, so a reply left half-read on the node connection cannot
//! go unnoticed either.

mod common;

use common::replies::{execute_payload, fetch_payload, prepare, RawClient, Shape};
use common::{cluster, connect, Proxy};
use mysql_async::prelude::Queryable;
use sqlproxy::protocol::caps;

const SETUP: &[&str] = &[
    "CREATE TABLE t1 (a INT)",
    "INSERT INTO t1 VALUES (1), (2), (3)",
    // The procedure of the report: a parameterised cursor read in a loop.
    "CREATE PROCEDURE p_cursor(a INT) BEGIN
       DECLARE done INT DEFAULT 0; DECLARE v_a INT DEFAULT NULL;
       DECLARE c CURSOR (p_a VARCHAR(32)) FOR SELECT p_a FROM t1;
       DECLARE CONTINUE HANDLER FOR NOT FOUND SET done=TRUE;
       OPEN c(a);
       read_loop: LOOP FETCH c INTO v_a; IF done THEN LEAVE read_loop; END IF; SELECT v_a; END LOOP;
       CLOSE c;
     END",
    "CREATE PROCEDURE p_multi() BEGIN
       SELECT 1 AS one; SELECT a FROM t1 ORDER BY a; UPDATE t1 SET a = a WHERE a < 0;
     END",
    "CREATE PROCEDURE p_out(IN x INT, OUT y INT, INOUT z INT) BEGIN
       SET y = x * 2; SET z = z + 1; SELECT x AS x_in;
     END",
    "CREATE PROCEDURE p_signal() BEGIN
       SELECT 'before' AS s;
       SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'raised by p_signal', MYSQL_ERRNO = 1644;
     END",
    "CREATE PROCEDURE p_resignal() BEGIN
       DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN SELECT 'handled' AS h; RESIGNAL; END;
       SELECT 1 AS one;
       INSERT INTO no_such_table VALUES (1);
     END",
    "CREATE PROCEDURE p_handler() BEGIN
       DECLARE CONTINUE HANDLER FOR SQLSTATE '42S02' SELECT 'caught' AS c;
       SELECT * FROM no_such_table;
       SELECT 'after' AS a;
     END",
    "CREATE PROCEDURE p_cursor_then_signal() BEGIN
       DECLARE v INT; DECLARE c CURSOR FOR SELECT a FROM t1 ORDER BY a;
       OPEN c; FETCH c INTO v; SELECT v; CLOSE c;
       SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'after the cursor';
     END",
];

const TEXT_STATEMENTS: &[&str] = &[
    "CALL p_cursor(1)",
    "BEGIN NOT ATOMIC DECLARE va INT; DECLARE cur CURSOR FOR SELECT a FROM t1; \
     OPEN cur; FETCH cur INTO va; SELECT va; CLOSE cur; END",
    "CALL p_multi()",
    "CALL p_out(3, @y, @z)",
    "SET @z = 10",
    "CALL p_out(4, @y, @z)",
    "SELECT @y, @z",
    "CALL p_signal()",
    "CALL p_resignal()",
    "CALL p_handler()",
    "CALL p_cursor_then_signal()",
    "CALL p_cursor(7); SELECT 2 AS two; CALL p_multi()",
    "SELECT 1; CALL p_signal(); SELECT 3",
    "CALL p_handler(); BEGIN NOT ATOMIC DECLARE va INT; DECLARE cur CURSOR FOR SELECT a FROM t1; \
     OPEN cur; FETCH cur INTO va; SELECT va; CLOSE cur; END; SELECT 4",
];

/// Prepared statements, each executed without and with a read-only cursor.
const PREPARED: &[(&str, &[i64])] = &[
    ("CALL p_cursor(?)", &[1]),
    ("CALL p_multi()", &[]),
    ("CALL p_out(?, ?, ?)", &[5, 0, 20]),
    ("CALL p_signal()", &[]),
    ("CALL p_resignal()", &[]),
    ("CALL p_handler()", &[]),
    ("CALL p_cursor_then_signal()", &[]),
    ("SELECT a FROM t1 ORDER BY a", &[]),
    ("SELECT ? AS p", &[42]),
];

/// The client flavours: classic EOF (mysqlnd) and DEPRECATE_EOF.
const FLAVOURS: &[u32] = &[
    caps::MULTI_STATEMENTS | caps::MULTI_RESULTS | caps::PS_MULTI_RESULTS,
    caps::MULTI_STATEMENTS | caps::MULTI_RESULTS | caps::PS_MULTI_RESULTS | caps::DEPRECATE_EOF,
];

/// Creates the tables and procedures on the master, directly.
async fn setup(db: &str, statements: &[&str]) {
    let c = cluster();
    let mut conn = connect(&c.direct_url(0, Some(db))).await;
    for sql in statements {
        conn.query_drop(*sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    drop(conn);
    c.wait_replicated();
}

/// The statement ids each side knows a prepared statement by: a node
/// numbers them per connection, the proxy per client session.
#[derive(Clone, Copy)]
struct Ids {
    direct: u32,
    proxied: u32,
}

/// Runs one command on both connections (`payload(id)` builds it for the
/// side's statement id) and compares the whole replies. An error message
/// that names the statement does so with that side's id: the node's reply
/// is compared with the proxy's id put in.
async fn same_reply(
    direct: &mut RawClient,
    proxied: &mut RawClient,
    ids: Ids,
    payload: impl Fn(u32) -> Vec<u8>,
    shape: Shape,
    what: &str,
) -> Vec<Vec<u8>> {
    direct.command(&payload(ids.direct)).await;
    let mut want = direct
        .reply(shape)
        .await
        .unwrap_or_else(|e| panic!("{what} directly: {e:?}"));
    proxied.command(&payload(ids.proxied)).await;
    let got = proxied
        .reply(shape)
        .await
        .unwrap_or_else(|e| panic!("{what} through the proxy: {e:?}"));
    if ids.direct != ids.proxied {
        let (from, to) = (format!("({})", ids.direct), format!("({})", ids.proxied));
        for p in want.iter_mut().filter(|p| p.first() == Some(&0xff)) {
            *p = replace_once(p, from.as_bytes(), to.as_bytes());
        }
    }
    assert_eq!(
        got, want,
        "{what}: reply through the proxy differs from the node's"
    );
    got
}

/// `packet` with the first `from` replaced by `to`, byte for byte: the
/// packet's header (0xff, error code) is not text and must stay as it is.
fn replace_once(packet: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    match packet.windows(from.len()).position(|w| w == from) {
        Some(at) => [&packet[..at], to, &packet[at + from.len()..]].concat(),
        None => packet.to_vec(),
    }
}

/// The session still gets its own replies: a marker comes back unchanged.
async fn marker_comes_back(c: &mut RawClient, marker: &str) {
    c.query(&format!("SELECT '{marker}'")).await;
    let reply = c.reply(Shape::Text).await.expect("marker reply");
    let joined: Vec<u8> = reply.concat();
    assert!(
        joined.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "expected {marker} back, got {reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_programs_reply_as_the_master_does() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("stored_programs");
    setup(&db, SETUP).await;
    let proxy = Proxy::start(c.config());
    let node = format!("127.0.0.1:{}", c.nodes[0].port).parse().unwrap();
    for (f, &flavour) in FLAVOURS.iter().enumerate() {
        let mut direct = RawClient::login(node, flavour, &db).await;
        let mut proxied = RawClient::login(proxy.addr, flavour, &db).await;
        for (i, sql) in TEXT_STATEMENTS.iter().enumerate() {
            let mut p = vec![0x03];
            p.extend_from_slice(sql.as_bytes());
            let what = format!("flavour {f}, text: {sql}");
            let no_ids = Ids {
                direct: 0,
                proxied: 0,
            };
            let text = |_| p.clone();
            same_reply(&mut direct, &mut proxied, no_ids, text, Shape::Text, &what).await;
            marker_comes_back(&mut proxied, &format!("marker-{f}-t{i}")).await;
        }
        for (i, (sql, params)) in PREPARED.iter().enumerate() {
            let ids = Ids {
                direct: prepare(&mut direct, sql).await,
                proxied: prepare(&mut proxied, sql).await,
            };
            for cursor in [false, true] {
                let what = format!("flavour {f}, binary cursor={cursor}: {sql}");
                let execute = |id| execute_payload(id, cursor, params);
                let shape = Shape::Binary { cursor };
                let reply = same_reply(&mut direct, &mut proxied, ids, execute, shape, &what).await;
                let opened = reply.last().is_some_and(|p| {
                    p[0] == 0xfe && p.len() < 9 && u16::from_le_bytes([p[3], p[4]]) & 0x40 != 0
                });
                if cursor && opened {
                    // Rows come in two fetches, then the cursor is exhausted.
                    for n in 0..3 {
                        let what = format!("{what}, fetch {n}");
                        let fetch = |id| fetch_payload(id, 2);
                        same_reply(&mut direct, &mut proxied, ids, fetch, Shape::Fetch, &what)
                            .await;
                    }
                }
                marker_comes_back(&mut proxied, &format!("marker-{f}-b{i}-{cursor}")).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_is_opened_only_when_the_execution_asks_for_one() {
    // The report's case, with a client that expects every row: a text CALL
    // whose metadata EOF carries CURSOR_EXISTS must not be cut there.
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("cursor_flag");
    setup(&db, &SETUP[..3]).await;
    let proxy = Proxy::start(c.config());
    let mut s = RawClient::login(proxy.addr, FLAVOURS[0], &db).await;
    s.query("CALL p_cursor(9)").await;
    let reply = s.reply(Shape::Text).await.expect("the whole reply");
    let rows: Vec<&Vec<u8>> = reply.iter().filter(|p| p.as_slice() == b"\x019").collect();
    assert_eq!(rows.len(), 3, "one row per row of t1: {reply:?}");
    marker_comes_back(&mut s, "after-the-call").await;
}
