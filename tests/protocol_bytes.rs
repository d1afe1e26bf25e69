//! Byte for byte: a client gets from the proxy exactly the packets the node
//! sends it directly (same capabilities, no session tracking): result sets
//! with their metadata, OK packets with affected rows, insert ids, warnings
//! and info strings, ERR packets, and the small commands (COM_FIELD_LIST,
//! COM_SET_OPTION, COM_PING, COM_INIT_DB, COM_STATISTICS).

mod common;

use common::raw;
use common::{cluster, Proxy};
use sqlproxy::protocol::response::Expect;
use tokio::net::TcpStream;

const RESULTS: Expect = Expect::Results {
    binary: false,
    cursor: false,
};

/// The proxy session works in `<db>_p`, the direct one in `<db>_d` (same
/// length), so writes do not interfere; the proxy's replies are compared
/// with the schema name swapped.
struct Pair {
    p: TcpStream,
    d: TcpStream,
    db_p: String,
    db_d: String,
}

async fn both(proxy: &Proxy, db: &str) -> Pair {
    let node: std::net::SocketAddr = format!("127.0.0.1:{}", cluster().nodes[0].port)
        .parse()
        .unwrap();
    let (db_p, db_d) = (format!("{db}_p"), format!("{db}_d"));
    for name in [&db_p, &db_d] {
        if let Err(e) = cluster().nodes[0].sql(&format!("CREATE DATABASE `{name}`")) {
            panic!("{e}");
        }
    }
    cluster().wait_replicated();
    Pair {
        p: raw::login(proxy.addr, Some(&db_p)).await,
        d: raw::login(node, Some(&db_d)).await,
        db_p,
        db_d,
    }
}

fn swap(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

async fn same_reply(pair: &mut Pair, payload: &[u8], expect: Expect) -> Vec<Vec<u8>> {
    let payload_p = swap(payload, pair.db_d.as_bytes(), pair.db_p.as_bytes());
    raw::send(&mut pair.p, &payload_p).await;
    raw::send(&mut pair.d, payload).await;
    let via_proxy: Vec<Vec<u8>> = raw::read_reply(&mut pair.p, expect)
        .await
        .iter()
        .map(|pk| swap(pk, pair.db_p.as_bytes(), pair.db_d.as_bytes()))
        .collect();
    let direct = raw::read_reply(&mut pair.d, expect).await;
    assert_eq!(
        via_proxy,
        direct,
        "reply to {:?} differs",
        String::from_utf8_lossy(payload)
    );
    via_proxy
}

fn q(sql: &str) -> Vec<u8> {
    let mut p = vec![0x03];
    p.extend_from_slice(sql.as_bytes());
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_the_nodes_bytes() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("bytes");
    let proxy = Proxy::start(c.config());
    let mut pair = both(&proxy, &db).await;
    let pr = &mut pair;
    for sql in [
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10) NOT NULL, d DECIMAL(8,3), b BLOB, ts TIMESTAMP(2) NULL)",
        "/* sqlproxy:master */ INSERT INTO t (v, d) VALUES ('a', 1.5), ('b', NULL)",
        "/* sqlproxy:master */ UPDATE t SET d = d + 1",
        "/* sqlproxy:master */ INSERT INTO t (v) VALUES ('way too long for ten')",
        "/* sqlproxy:master */ SHOW WARNINGS",
        "/* sqlproxy:master */ SELECT * FROM t ORDER BY id",
        "/* sqlproxy:master */ SELECT id, v AS alias, d * 2, NULL, 'x', 1.25e3 FROM t WHERE id < 0",
        "/* sqlproxy:master */ INSERT INTO t (id, v) VALUES (1, 'dup')",
        "/* sqlproxy:master */ SELECT nonsense FROM",
        "/* sqlproxy:master */ DELETE FROM t WHERE id > 100",
    ] {
        same_reply(pr, &q(sql), RESULTS).await;
    }
    // COM_FIELD_LIST t
    let mut fl = vec![0x04];
    fl.extend_from_slice(b"t\0");
    let defs = same_reply(pr, &fl, Expect::FieldList).await;
    assert_eq!(defs.len(), 6, "5 column definitions and the terminator");
    // COM_SET_OPTION on, a multi-statement, off again
    same_reply(pr, &[0x1b, 0, 0], Expect::Single).await;
    let multi = same_reply(pr, &q("/* sqlproxy:master */ SELECT 1; SELECT 2"), RESULTS).await;
    assert!(multi.len() >= 6, "two result sets");
    same_reply(pr, &[0x1b, 1, 0], Expect::Single).await;
    let refused = same_reply(pr, &q("/* sqlproxy:master */ SELECT 1; SELECT 2"), RESULTS).await;
    assert_eq!(refused[0][0], 0xff, "multi-statements are off again");
    // COM_PING, COM_INIT_DB
    same_reply(pr, &[0x0e], Expect::Single).await;
    let mut init = vec![0x02];
    init.extend_from_slice(pr.db_d.as_bytes());
    same_reply(pr, &init, Expect::Single).await;
    same_reply(pr, &[0x02, b'n', b'o', b'p', b'e'], Expect::Single).await;
    // COM_STATISTICS: a string that changes every second; same shape.
    raw::send(&mut pr.p, &[0x09]).await;
    let stats = raw::read_reply(&mut pr.p, Expect::Single).await;
    assert!(
        String::from_utf8_lossy(&stats[0]).starts_with("Uptime: "),
        "{stats:?}"
    );
}

/// COM_STMT_EXECUTE asking for a cursor on statements the node streams
/// instead (SHOW WARNINGS, CALL): with no rows, the reply after the
/// metadata is the terminator alone, and the session is answered at once
/// (it once waited for rows until the node connection's read timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_the_node_does_not_open_on_an_empty_result_ends_the_reply() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("nocursor");
    let proxy = Proxy::start(c.config());
    let mut pair = both(&proxy, &db).await;
    let cursor = Expect::Results {
        binary: true,
        cursor: true,
    };
    for sql in [
        "CREATE PROCEDURE empty_result() SELECT 1 FROM DUAL WHERE 0",
        "/* sqlproxy:master */ SELECT 1",
    ] {
        same_reply(&mut pair, &q(sql), RESULTS).await;
    }
    for sql in ["SHOW WARNINGS", "CALL empty_result()"] {
        let mut replies = Vec::new();
        for s in [&mut pair.p, &mut pair.d] {
            let (id, _) = raw::prepare(s, sql).await.expect("prepare");
            let mut exec = vec![0x17];
            exec.extend_from_slice(&id.to_le_bytes());
            exec.push(1); // CURSOR_TYPE_READ_ONLY
            exec.extend_from_slice(&1u32.to_le_bytes());
            raw::send(s, &exec).await;
            let reply = tokio::time::timeout(
                std::time::Duration::from_secs(30),
                raw::read_reply(s, cursor),
            )
            .await
            .unwrap_or_else(|_| panic!("no complete reply to {sql} with a cursor"));
            replies.push(reply);
        }
        assert_eq!(replies[0], replies[1], "{sql}");
        // The session goes on: the next command gets its own reply.
        same_reply(&mut pair, &q("/* sqlproxy:master */ SELECT 2"), RESULTS).await;
    }
}
