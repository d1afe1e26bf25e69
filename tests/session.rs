//! What a client sees through the proxy equals what a node gives it directly:
//! prepared statements of every column type with their metadata, large
//! values, error codes and SQLSTATEs, session state (charset, variables,
//! temp tables, locks), COM_CHANGE_USER and COM_RESET_CONNECTION.

mod common;

use common::{cluster, connect, server_id, Proxy};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

fn proxy() -> Proxy {
    Proxy::start(cluster().config())
}

/// Everything about a column a driver can see.
fn column_meta(row_cols: &[mysql_async::Column]) -> Vec<String> {
    row_cols
        .iter()
        .map(|c| {
            format!(
                "{}.{}.{}/{}.{} type={:?} cs={} len={} dec={} flags={:?}",
                c.schema_str(),
                c.table_str(),
                c.name_str(),
                c.org_table_str(),
                c.org_name_str(),
                c.column_type(),
                c.character_set(),
                c.column_length(),
                c.decimals(),
                c.flags()
            )
        })
        .collect()
}

const ALL_TYPES: &str = "CREATE TABLE types (
    id INT PRIMARY KEY,
    ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED,
    mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
    bi BIGINT, bu BIGINT UNSIGNED,
    de DECIMAL(20,6), fl FLOAT, db DOUBLE,
    d DATE, t TIME(6), dt DATETIME(6), ts TIMESTAMP(3) NULL,
    bl BLOB, vb VARBINARY(300), tx TEXT CHARACTER SET utf8mb4, vc VARCHAR(50) CHARACTER SET utf8mb4,
    n INT NULL
)";

const INSERT_TYPES: &str =
    "INSERT INTO types VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

fn type_params(id: i32, blob: &[u8]) -> Vec<Value> {
    vec![
        Value::Int(id as i64),
        Value::Int(-128),
        Value::UInt(255),
        Value::Int(-32768),
        Value::UInt(65535),
        Value::Int(-8388608),
        Value::UInt(16777215),
        Value::Int(i32::MIN as i64),
        Value::UInt(u32::MAX as u64),
        Value::Int(i64::MIN),
        Value::UInt(u64::MAX),
        Value::Bytes(b"-12345678901234.123456".to_vec()),
        Value::Float(1.5),
        Value::Double(-2.25e-300),
        Value::Date(2024, 2, 29, 0, 0, 0, 0),
        Value::Time(true, 1, 2, 3, 4, 123456),
        Value::Date(1999, 12, 31, 23, 59, 58, 999999),
        Value::Date(2038, 1, 19, 3, 14, 7, 123000),
        Value::Bytes(blob.to_vec()),
        Value::Bytes(vec![0, 255, 1, 254]),
        Value::Bytes("日本語 ✓ 😀".as_bytes().to_vec()),
        Value::Bytes("emoji 😀🎉".as_bytes().to_vec()),
        Value::NULL,
    ]
}

async fn fetch_types(conn: &mut Conn, binary: bool) -> (Vec<String>, Vec<Row>) {
    if binary {
        let stmt = conn
            .prep("SELECT * FROM types WHERE id >= ? ORDER BY id")
            .await
            .unwrap();
        let mut res = conn.exec_iter(&stmt, (0,)).await.unwrap();
        let meta = column_meta(&res.columns().unwrap());
        let rows: Vec<Row> = res.collect().await.unwrap();
        (meta, rows)
    } else {
        let mut res = conn
            .query_iter("SELECT * FROM types ORDER BY id")
            .await
            .unwrap();
        let meta = column_meta(&res.columns().unwrap());
        let rows: Vec<Row> = res.collect().await.unwrap();
        (meta, rows)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_column_type_round_trips_with_its_metadata() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("types");
    let p = proxy();
    let mut conn = connect(&p.url(Some(&db))).await;
    conn.query_drop(ALL_TYPES).await.unwrap();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    conn.exec_drop(INSERT_TYPES, type_params(1, &all_bytes))
        .await
        .unwrap();
    conn.exec_drop(INSERT_TYPES, type_params(2, &all_bytes.repeat(4)))
        .await
        .unwrap();
    c.wait_replicated();
    let mut direct = connect(&c.direct_url(0, Some(&db))).await;
    for binary in [true, false] {
        let (meta_direct, rows_direct) = fetch_types(&mut direct, binary).await;
        // Several times: the read may land on either node.
        for _ in 0..4 {
            let (meta, rows) = fetch_types(&mut conn, binary).await;
            assert_eq!(meta, meta_direct, "column metadata (binary={binary})");
            assert_eq!(rows.len(), 2);
            for (a, b) in rows.iter().zip(&rows_direct) {
                assert_eq!(
                    a.clone().unwrap(),
                    b.clone().unwrap(),
                    "row values (binary={binary})"
                );
            }
        }
        let blob: Vec<u8> = rows_direct[0].get("bl").unwrap();
        assert_eq!(blob, all_bytes);
    }
    // Spot-check decoded values through the proxy, not just equality.
    let row: Row = conn
        .exec_first("SELECT bu, tx, n, bl FROM types WHERE id = ?", (1,))
        .await
        .unwrap()
        .unwrap();
    let bu: u64 = row.get(0).unwrap();
    let tx: String = row.get(1).unwrap();
    let n: Option<i32> = row.get(2).unwrap();
    let bl: Vec<u8> = row.get(3).unwrap();
    assert_eq!(bu, u64::MAX);
    assert_eq!(tx, "日本語 ✓ 😀");
    assert_eq!(n, None);
    assert_eq!(bl, all_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_mib_blob_round_trips() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("big_blob");
    // The nodes take 1 GiB (scripts/cluster.cnf); the proxy's default is 16 MiB.
    let mut cfg = c.config();
    cfg.mysql.max_allowed_packet = 1 << 30;
    let p = Proxy::start(cfg);
    let mut conn = connect(&p.url(Some(&db))).await;
    conn.query_drop("CREATE TABLE f (id INT PRIMARY KEY, data LONGBLOB)")
        .await
        .unwrap();
    let blob: Vec<u8> = (0..20 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    // binary protocol (COM_STMT_EXECUTE over several 16 MiB packets)
    conn.exec_drop("INSERT INTO f VALUES (1, ?)", (blob.clone(),))
        .await
        .unwrap();
    // text protocol: a >16 MiB COM_QUERY
    let hex: String = blob[..9 * 1024 * 1024]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    conn.query_drop(format!("INSERT INTO f VALUES (2, x'{hex}')"))
        .await
        .unwrap();
    let back: Option<Vec<u8>> = conn
        .exec_first(
            "SELECT /* sqlproxy:master */ data FROM f WHERE id = ?",
            (1,),
        )
        .await
        .unwrap();
    assert_eq!(back.as_deref(), Some(&blob[..]));
    let back2: Option<Vec<u8>> = conn
        .query_first("SELECT /* sqlproxy:master */ data FROM f WHERE id = 2")
        .await
        .unwrap();
    assert_eq!(back2.as_deref(), Some(&blob[..9 * 1024 * 1024]));
    let len: Option<u64> = conn
        .query_first("SELECT /* sqlproxy:master */ SUM(LENGTH(data)) FROM f")
        .await
        .unwrap();
    assert_eq!(len, Some((20 + 9) * 1024 * 1024));
}

fn server_error(e: mysql_async::Error) -> (u16, String, String) {
    match e {
        mysql_async::Error::Server(s) => (s.code, s.state, s.message),
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_errors_reach_the_client_unchanged() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("errors");
    let p = proxy();
    let mut conn = connect(&p.url(Some(&db))).await;
    let mut direct = connect(&c.direct_url(0, Some(&db))).await;
    conn.query_drop("CREATE TABLE u (id INT PRIMARY KEY)")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO u VALUES (1)").await.unwrap();
    let e = server_error(
        conn.query_drop("INSERT INTO u VALUES (1)")
            .await
            .unwrap_err(),
    );
    assert_eq!((e.0, e.1.as_str()), (1062, "23000"));
    assert_eq!(e.2, "Duplicate entry '1' for key 'PRIMARY'");
    let e = server_error(
        conn.exec_drop("INSERT INTO u VALUES (?)", (1,))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.0, e.1.as_str()), (1062, "23000"));
    let bad = "SELEKT 1 FROM u";
    let via_proxy = server_error(conn.query_drop(bad).await.unwrap_err());
    let from_node = server_error(direct.query_drop(bad).await.unwrap_err());
    assert_eq!(via_proxy, from_node);
    assert_eq!(via_proxy.0, 1064);
    assert_eq!(via_proxy.1, "42000");
    let missing = server_error(
        conn.query_drop("SELECT * FROM no_such_table")
            .await
            .unwrap_err(),
    );
    assert_eq!((missing.0, missing.1.as_str()), (1146, "42S02"));
    // The session goes on after errors.
    let one: Option<i32> = conn.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_gets_1045() {
    let c = cluster();
    let _g = c.shared().await;
    let p = proxy();
    let url = format!("mysql://prestashop:wrong@{}?prefer_socket=false", p.addr);
    let err = Conn::from_url(url).await.expect_err("login must fail");
    let (code, state, msg) = server_error(err);
    assert_eq!((code, state.as_str()), (1045, "28000"));
    assert!(
        msg.starts_with("Access denied for user 'prestashop'@'127.0.0.1'"),
        "{msg}"
    );
    let url = format!("mysql://nobody:x@{}?prefer_socket=false", p.addr);
    let (code, _, _) = server_error(Conn::from_url(url).await.expect_err("unknown user"));
    assert_eq!(code, 1045);
    let url = format!(
        "mysql://prestashop:prestashop@{}/no_such_db_here?prefer_socket=false",
        p.addr
    );
    let (code, state, _) = server_error(Conn::from_url(url).await.expect_err("unknown db"));
    assert_eq!((code, state.as_str()), (1049, "42000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_connection_and_change_user_really_reset() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("reset");
    let p = proxy();
    let mut conn = connect(&p.url(Some(&db))).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    for reset_kind in ["reset", "change_user"] {
        conn.query_drop("SET @x = 42").await.unwrap();
        conn.query_drop("BEGIN").await.unwrap();
        conn.query_drop("INSERT INTO t VALUES (7)").await.unwrap();
        let x: Option<i64> = conn.query_first("SELECT @x").await.unwrap();
        assert_eq!(x, Some(42));
        if reset_kind == "reset" {
            // mysql_async sends COM_RESET_CONNECTION to a MariaDB >= 10.2.4
            assert!(
                conn.reset().await.unwrap(),
                "COM_RESET_CONNECTION supported"
            );
        } else {
            let opts = mysql_async::ChangeUserOpts::default()
                .with_user(Some("prestashop".into()))
                .with_pass(Some("prestashop".into()))
                .with_db_name(Some(db.clone()));
            conn.change_user(opts).await.unwrap();
        }
        let x: Option<Option<i64>> = conn.query_first("SELECT @x").await.unwrap();
        assert_eq!(x, Some(None), "user variable gone after {reset_kind}");
        let rows: Option<u64> = conn
            .query_first("SELECT /* sqlproxy:master */ COUNT(*) FROM t")
            .await
            .unwrap();
        assert_eq!(
            rows,
            Some(0),
            "open transaction rolled back by {reset_kind}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charset_and_session_variables_follow_the_session() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("charset");
    let p = proxy();
    let mut conn = connect(&p.url(Some(&db))).await;
    conn.query_drop("SET NAMES utf8mb4").await.unwrap();
    conn.query_drop("CREATE TABLE e (id INT PRIMARY KEY, v VARCHAR(20) CHARACTER SET utf8mb4)")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO e VALUES (1, '😀')")
        .await
        .unwrap();
    conn.query_drop("SET SESSION sql_mode = 'ANSI_QUOTES'")
        .await
        .unwrap();
    conn.query_drop("SET SESSION group_concat_max_len = 7")
        .await
        .unwrap();
    c.wait_replicated();
    let mut seen = [false; 2];
    for _ in 0..40 {
        let row: (String, String, u64, u32) = conn
            .query_first(
                "SELECT v, @@sql_mode, @@group_concat_max_len, @@server_id FROM e WHERE id = 1",
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.0, "😀", "emoji, not '?', on server {}", row.3);
        assert_eq!(row.1, "ANSI_QUOTES");
        assert_eq!(row.2, 7);
        seen[(row.3 as usize - 1).min(1)] = true;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(seen[0] || seen[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_state_pins_to_the_connection_that_has_it() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("pins");
    let p = proxy();
    let mut conn = connect(&p.url(Some(&db))).await;
    // User variables
    conn.query_drop("SET @sessionvariable = 'value'")
        .await
        .unwrap();
    for _ in 0..10 {
        let v: Option<String> = conn.query_first("SELECT @sessionvariable").await.unwrap();
        assert_eq!(v.as_deref(), Some("value"));
    }
    // Temporary tables
    conn.query_drop("CREATE TEMPORARY TABLE tmp_x (id INT)")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO tmp_x VALUES (1), (2)")
        .await
        .unwrap();
    for _ in 0..10 {
        let n: Option<u64> = conn
            .query_first("SELECT COUNT(*) FROM tmp_x")
            .await
            .unwrap();
        assert_eq!(n, Some(2));
    }
    conn.query_drop("DROP TEMPORARY TABLE tmp_x").await.unwrap();
    // Named locks
    let got: Option<i32> = conn
        .query_first("SELECT GET_LOCK('job', 10)")
        .await
        .unwrap();
    assert_eq!(got, Some(1));
    for _ in 0..5 {
        let used: Option<i32> = conn
            .query_first("SELECT IS_USED_LOCK('job') = CONNECTION_ID()")
            .await
            .unwrap();
        assert_eq!(used, Some(1));
    }
    let rel: Option<i32> = conn
        .query_first("SELECT RELEASE_LOCK('job')")
        .await
        .unwrap();
    assert_eq!(rel, Some(1));
    // Pinned sessions stay on the master.
    assert_eq!(server_id(&mut conn).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_statements_and_procedures_return_every_result() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("multi");
    let p = proxy();
    let mut conn = connect(&p.url(Some(&db))).await;
    conn.query_drop("CREATE TABLE test (id INT AUTO_INCREMENT PRIMARY KEY, t VARCHAR(10))")
        .await
        .unwrap();
    // A write and a read in one COM_QUERY
    let mut res = conn
        .query_iter("INSERT INTO test(t) VALUES ('a'); SELECT LAST_INSERT_ID() AS lid;")
        .await
        .unwrap();
    let first: Vec<Row> = res.collect().await.unwrap();
    assert!(first.is_empty(), "the INSERT's OK");
    let second: Vec<u64> = res.collect().await.unwrap();
    assert_eq!(second, vec![1]);
    drop(res);
    // USE inside a multi-statement moves the session's schema.
    let other = c.fresh_db("multi_other");
    conn.query_drop(format!("USE `{other}`; SELECT 1"))
        .await
        .unwrap();
    let now: Option<String> = conn.query_first("SELECT DATABASE()").await.unwrap();
    assert_eq!(now.as_deref(), Some(other.as_str()));
    conn.query_drop(format!("USE `{db}`")).await.unwrap();
    // CALL with several result sets, text and binary protocol
    conn.query_drop("CREATE PROCEDURE p(IN x INT) BEGIN SELECT x AS a; SELECT x + 1 AS b, 'two' AS c; UPDATE test SET t = 'b'; END")
        .await
        .unwrap();
    let mut res = conn.query_iter("CALL p(5)").await.unwrap();
    let a: Vec<i64> = res.collect().await.unwrap();
    let b: Vec<(i64, String)> = res.collect().await.unwrap();
    assert_eq!(a, vec![5]);
    assert_eq!(b, vec![(6, "two".to_string())]);
    drop(res);
    let mut res = conn.exec_iter("CALL p(?)", (8,)).await.unwrap();
    let a: Vec<i64> = res.collect().await.unwrap();
    let b: Vec<(i64, String)> = res.collect().await.unwrap();
    assert_eq!(a, vec![8]);
    assert_eq!(b, vec![(9, "two".to_string())]);
    drop(res);
    let t: Option<String> = conn
        .query_first("SELECT /* sqlproxy:master */ t FROM test")
        .await
        .unwrap();
    assert_eq!(t.as_deref(), Some("b"));
}

/// A node lost while the client uploads a LOCAL INFILE: the session ends
/// there, as a client of the node sees its node go, and nothing of the rest
/// of the upload is taken for a command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_lost_during_a_local_infile_upload_ends_the_session() {
    use common::raw;
    use tokio::io::AsyncWriteExt;
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("infile_cut");
    let mut cfg = c.config();
    cfg.mysql.local_infile = true;
    let p = Proxy::start(cfg);
    let mut conn = connect(&p.url(Some(&db))).await;
    conn.query_drop("CREATE TABLE t (a LONGTEXT)")
        .await
        .unwrap();
    let caps = raw::CLIENT_CAPS | sqlproxy::protocol::caps::LOCAL_FILES;
    let mut s = raw::login_with_caps(p.addr, Some(&db), caps).await;
    raw::query(&mut s, "LOAD DATA LOCAL INFILE 'cut.txt' INTO TABLE t").await;
    let request = raw::read_packet(&mut s).await.expect("the file request");
    assert_eq!(request.first(), Some(&0xfb), "{request:?}");
    // The node's thread waiting for the file is killed there.
    let thread = c.nodes[0]
        .value("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'LOAD DATA LOCAL%cut.txt%'")
        .expect("the loading thread");
    c.nodes[0]
        .sql(&format!("KILL {}", thread.trim()))
        .expect("kill");
    // The upload goes on: the proxy's writes to the dead connection fail.
    let mut seq = 2u8;
    let packet = |payload: Vec<u8>, seq: u8| {
        let mut out = Vec::new();
        sqlproxy::protocol::codec::write_packet(&mut out, seq, &payload);
        out
    };
    for _ in 0..64 {
        let out = packet(vec![b'a'; 60_000], seq);
        seq = seq.wrapping_add(1);
        if s.write_all(&out).await.is_err() {
            break;
        }
    }
    // A chunk of the file that reads as a command, then the file's end.
    for payload in [b"\x03SELECT 'uploaded-12345'".to_vec(), Vec::new()] {
        let out = packet(payload, seq);
        seq = seq.wrapping_add(1);
        let _ = s.write_all(&out).await;
    }
    let mut replies = Vec::new();
    let read_all = async {
        while let Some(p) = raw::read_packet(&mut s).await {
            replies.push(p);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), read_all)
        .await
        .expect("the session ends");
    let ran = replies
        .iter()
        .any(|p| p.windows(14).any(|w| w == b"uploaded-12345"));
    assert!(
        !ran,
        "part of the file ran as a command: {} replies",
        replies.len()
    );
}
