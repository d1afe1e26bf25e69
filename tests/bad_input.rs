//! Hostile and broken clients: garbage, truncated packets, oversized length
//! headers, a client that vanishes in the middle of a result. Each costs only
//! its own connection; no node connection leaks and other sessions go on.

mod common;

use std::time::Duration;

use common::raw::{self, read_packet};
use common::{cluster, connect, Proxy};
use mysql_async::prelude::Queryable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn raw_login(proxy: &Proxy, db: Option<&str>) -> TcpStream {
    raw::login(proxy.addr, db).await
}

async fn send_query(s: &mut TcpStream, sql: &str) {
    raw::query(s, sql).await
}

/// The proxy closes the connection (EOF or reset), possibly after an ERR.
async fn closed_after(s: &mut TcpStream) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = tokio::time::timeout_at(deadline, read_packet(s)).await;
        match r {
            Ok(Some(p)) => got.push(p),
            Ok(None) => return got,
            Err(_) => panic!("the proxy kept a broken connection open"),
        }
    }
}

/// Threads of `prestashop` on a node (direct, not through the proxy).
async fn app_threads(node: usize) -> u64 {
    let mut d = connect(&cluster().direct_url(node, None)).await;
    let n: Option<u64> = d
        .query_first("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'prestashop' AND ID <> CONNECTION_ID()")
        .await
        .unwrap();
    n.unwrap_or(0)
}

async fn still_serves(proxy: &Proxy) {
    let mut conn = connect(&proxy.url(None)).await;
    let v: Option<i32> = conn.query_first("SELECT 41 + 1").await.unwrap();
    assert_eq!(v, Some(42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_truncated_packets_cost_only_their_connection() {
    let c = cluster();
    let _g = c.shared().await;
    let mut cfg = c.config();
    cfg.mysql.client_read_timeout = Duration::from_secs(2);
    cfg.mysql.max_allowed_packet = 1024 * 1024;
    let proxy = Proxy::start(cfg);
    // A good session that lives through all of it.
    let mut survivor = connect(&proxy.url(None)).await;

    // Garbage instead of a handshake response.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    read_packet(&mut s).await.expect("greeting");
    let junk: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = s.write_all(&junk).await;
    closed_after(&mut s).await;

    // A truncated handshake response, then silence: cut after the read timeout.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    read_packet(&mut s).await.expect("greeting");
    s.write_all(&[100, 0, 0, 1, 1, 2, 3]).await.unwrap();
    closed_after(&mut s).await;

    // After login: a truncated command, then silence.
    let mut s = raw_login(&proxy, None).await;
    s.write_all(&[50, 0, 0, 0, 0x03, b'S', b'E']).await.unwrap();
    closed_after(&mut s).await;

    // A length header far over max_allowed_packet: refused before the body.
    let mut s = raw_login(&proxy, None).await;
    s.write_all(&[0xff, 0xff, 0xff, 0]).await.unwrap();
    let got = closed_after(&mut s).await;
    let err = got.first().expect("an ERR before closing");
    assert_eq!(err[0], 0xff);
    assert_eq!(u16::from_le_bytes([err[1], err[2]]), 1153);

    // Unknown command: an error, and the session goes on.
    let mut s = raw_login(&proxy, None).await;
    s.write_all(&[1, 0, 0, 0, 0x42]).await.unwrap();
    let err = read_packet(&mut s).await.expect("reply");
    assert_eq!((err[0], u16::from_le_bytes([err[1], err[2]])), (0xff, 1047));
    send_query(&mut s, "SELECT 1").await;
    let first = read_packet(&mut s).await.expect("result");
    assert_eq!(first, vec![1], "one column");

    let v: Option<i32> = survivor.query_first("SELECT 7").await.unwrap();
    assert_eq!(v, Some(7));
    still_serves(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_clients_leak_no_node_connection() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("vanish");
    let proxy = Proxy::start(c.config());
    let mut conn = connect(&proxy.url(Some(&db))).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let before = [app_threads(0).await, app_threads(1).await];
    for _ in 0..15 {
        // Start a large result, read a little of it, and disappear.
        let mut s = raw_login(&proxy, Some(&db)).await;
        send_query(
            &mut s,
            "SELECT /* sqlproxy:master */ REPEAT('x', 100000), seq FROM seq_1_to_2000",
        )
        .await;
        let mut buf = vec![0u8; 4096];
        let _ = s.read(&mut buf).await;
        drop(s);
        // A session that started a transaction and vanished.
        let mut s = raw_login(&proxy, Some(&db)).await;
        send_query(&mut s, "BEGIN").await;
        read_packet(&mut s).await.expect("OK");
        send_query(&mut s, "INSERT INTO t VALUES (1)").await;
        read_packet(&mut s).await.expect("OK");
        drop(s);
    }
    // Node threads come back to the pooled level: nothing piles up.
    let mut after = [u64::MAX; 2];
    for _ in 0..200 {
        after = [app_threads(0).await, app_threads(1).await];
        if after[0] <= before[0] + 2 && after[1] <= before[1] + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        after[0] <= before[0] + 2 && after[1] <= before[1] + 2,
        "node threads before {before:?}, after {after:?}"
    );
    // The vanished transactions were rolled back, not committed.
    let n: Option<u64> = conn
        .query_first("SELECT /* sqlproxy:master */ COUNT(*) FROM t")
        .await
        .unwrap();
    assert_eq!(n, Some(0));
    still_serves(&proxy).await;
}

/// A socket that connected, read the greeting and says nothing more.
async fn silent_socket(addr: std::net::SocketAddr, from: [u8; 4]) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind((std::net::Ipv4Addr::from(from), 0).into())
        .expect("bind a loopback source address");
    let mut s = sock.connect(addr).await.expect("connect");
    read_packet(&mut s).await.expect("greeting");
    s
}

/// Logs in as a real client (mysql_async) and runs a statement.
async fn real_client_serves(proxy: &Proxy) {
    let conn = tokio::time::timeout(
        Duration::from_secs(60),
        mysql_async::Conn::from_url(proxy.url(None)),
    )
    .await
    .expect("login hung");
    let mut conn = conn.expect("a real client is refused while silent sockets are pending");
    let v: Option<i32> = conn.query_first("SELECT 41 + 1").await.unwrap();
    assert_eq!(v, Some(42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_before_login_do_not_lock_out_clients() {
    let c = cluster();
    let _g = c.shared().await;
    let mut cfg = c.config();
    cfg.mysql.max_connections = 20;
    cfg.mysql.connect_timeout = Duration::from_secs(2);
    let proxy = Proxy::start(cfg);
    // As many silent sockets as max_connections allows sessions.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(silent_socket(proxy.addr, [127, 0, 0, 1]).await);
    }
    real_client_serves(&proxy).await;
    // Each silent socket is cut at the login deadline, with nothing sent.
    for s in &mut silent {
        assert!(closed_after(s).await.is_empty());
    }
    // Authenticated sessions still count against max_connections.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(connect(&proxy.url(None)).await);
    }
    match mysql_async::Conn::from_url(proxy.url(None)).await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1040),
        other => panic!(
            "expected 1040 past max_connections, got {:?}",
            other.map(|_| ())
        ),
    }
}

/// Sends a login packet's header, then one byte at a time, each well within
/// `client_read_timeout`, until the proxy closes the connection.
async fn drip_until_closed(addr: std::net::SocketAddr) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    read_packet(&mut s).await.expect("greeting");
    s.write_all(&[0x00, 0x20, 0x00, 1]).await.unwrap();
    let drip = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if s.write_all(b"x").await.is_err() {
                break;
            }
            let mut b = [0u8; 64];
            match tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                _ => {}
            }
        }
    };
    // 8 KiB at 5 bytes a second would take half an hour: only a deadline
    // on the whole login ends it before the hang guard.
    tokio::time::timeout(Duration::from_secs(90), drip)
        .await
        .expect("a drip-fed login was never cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drip_fed_login_is_cut_at_the_login_deadline() {
    let c = cluster();
    let _g = c.shared().await;
    let mut cfg = c.config();
    cfg.mysql.connect_timeout = Duration::from_secs(2);
    cfg.mysql.client_read_timeout = Duration::from_secs(30);
    cfg.admin = Some(sqlproxy::config::AdminConfig {
        enabled: true,
        listen: "127.0.0.1:0".parse().unwrap(),
        user: "admin".into(),
        password: "admin-secret".into(),
        tls: None,
    });
    let proxy = Proxy::start(cfg);
    drip_until_closed(proxy.addr).await;
    drip_until_closed(proxy.admin_addr.expect("admin port")).await;
    still_serves(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_logins_are_bounded_per_host_and_in_total() {
    let c = cluster();
    let _g = c.shared().await;
    let mut cfg = c.config();
    cfg.mysql.max_pending_logins = 6;
    cfg.mysql.max_pending_logins_per_host = 3;
    let proxy = Proxy::start(cfg);
    // One host past its own share: refused at once with 1040.
    let mut one_host = Vec::new();
    for _ in 0..3 {
        one_host.push(silent_socket(proxy.addr, [127, 0, 0, 2]).await);
    }
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(([127, 0, 0, 2], 0).into()).unwrap();
    let mut refused = sock.connect(proxy.addr).await.unwrap();
    let got = closed_after(&mut refused).await;
    let err = got.first().expect("an ERR before closing");
    assert_eq!((err[0], u16::from_le_bytes([err[1], err[2]])), (0xff, 1040));
    // Other hosts fill the rest; a real client still gets in (the oldest
    // pending login makes room for it) and is served.
    let mut others = Vec::new();
    for i in 0..3u8 {
        others.push(silent_socket(proxy.addr, [127, 0, 1, i]).await);
    }
    real_client_serves(&proxy).await;
    let oldest = closed_after(&mut one_host[0]).await;
    assert!(oldest.is_empty(), "evicted without a word: {oldest:?}");
}

/// A node's own address (straight to MariaDB, no proxy).
fn node_addr(node: usize) -> std::net::SocketAddr {
    let n = &cluster().nodes[node];
    format!("{}:{}", n.host, n.port)
        .parse()
        .expect("node address")
}

/// Logs in at `addr`, sets its own `wait_timeout` to 1 s, then only waits:
/// what arrives before the close (nothing, on MariaDB).
async fn idle_past_own_wait_timeout(addr: std::net::SocketAddr) -> Vec<Vec<u8>> {
    let mut s = raw::login(addr, None).await;
    send_query(&mut s, "SET SESSION wait_timeout = 1").await;
    assert_eq!(raw::read_result(&mut s).await, Ok(Vec::new()));
    closed_after(&mut s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_session_is_cut_at_its_own_wait_timeout_as_on_the_node() {
    let c = cluster();
    let _g = c.shared().await;
    let proxy = Proxy::start(c.config());
    let on_node = idle_past_own_wait_timeout(node_addr(0)).await;
    let through_proxy = idle_past_own_wait_timeout(proxy.addr).await;
    assert_eq!(through_proxy, on_node);
    assert!(
        on_node.is_empty(),
        "MariaDB closes an idle session silently"
    );
    still_serves(&proxy).await;
}

/// Logs in with or without CLIENT_INTERACTIVE and returns the socket.
async fn raw_login_caps(addr: std::net::SocketAddr, interactive: bool) -> TcpStream {
    use sqlproxy::protocol::{caps, handshake};
    let mut s = TcpStream::connect(addr).await.unwrap();
    let greeting = read_packet(&mut s).await.expect("greeting");
    let hello = handshake::parse_greeting(&greeting).expect("greeting");
    let token = handshake::NativeSecret::from_password(common::APP_PASSWORD)
        .scramble(&hello.nonce)
        .expect("scramble");
    let mut flags = raw::CLIENT_CAPS;
    if interactive {
        flags |= caps::INTERACTIVE;
    }
    let resp = handshake::backend_response(
        flags,
        45,
        common::APP_USER.as_bytes(),
        &token,
        handshake::NATIVE_PLUGIN,
    );
    raw::send_seq(&mut s, 1, &resp).await;
    let ok = read_packet(&mut s).await.expect("login reply");
    assert_eq!(ok[0], 0, "login OK: {ok:?}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_idle_timeouts_apply_to_plain_and_interactive_clients() {
    let c = cluster();
    let _g = c.shared().await;
    let mut cfg = c.config();
    cfg.mysql.wait_timeout = Duration::from_secs(3600);
    cfg.mysql.interactive_timeout = Duration::from_secs(1);
    let proxy = Proxy::start(cfg);
    let mut plain = raw_login_caps(proxy.addr, false).await;
    let mut interactive = raw_login_caps(proxy.addr, true).await;
    assert!(closed_after(&mut interactive).await.is_empty());
    // The plain client idled as long and is still served.
    send_query(&mut plain, "SELECT 1").await;
    assert_eq!(raw::read_result(&mut plain).await.map(|r| r.len()), Ok(1));

    let mut cfg = c.config();
    cfg.mysql.wait_timeout = Duration::from_secs(1);
    let proxy = Proxy::start(cfg);
    let mut plain = raw_login_caps(proxy.addr, false).await;
    assert!(closed_after(&mut plain).await.is_empty());
    // A session may lengthen its own: SET wait_timeout governs it.
    let mut longer = raw_login_caps(proxy.addr, false).await;
    let mut short = raw_login_caps(proxy.addr, false).await;
    send_query(&mut longer, "SET @@session.wait_timeout = 3600").await;
    assert_eq!(raw::read_result(&mut longer).await, Ok(Vec::new()));
    assert!(closed_after(&mut short).await.is_empty());
    send_query(&mut longer, "SELECT @@wait_timeout").await;
    let rows = raw::read_result(&mut longer).await.expect("a row");
    assert_eq!(rows, vec![b"\x043600".to_vec()]);
}

/// PyMySQL's own `test_connection_gone_away`: wait_timeout=1, sleep, and
/// the next query fails with "gone away"; the error code it reports.
fn pymysql_gone_away(host: &str, port: u16) -> String {
    let script = format!(
        r#"
import time, pymysql
c = pymysql.connect(host="{host}", port={port}, user="{user}", password="{password}")
cur = c.cursor()
cur.execute("SET wait_timeout=1")
time.sleep(3)
try:
    cur.execute("SELECT 1")
    print("still connected")
except pymysql.err.OperationalError as e:
    print(e.args[0])
"#,
        user = common::APP_USER,
        password = common::APP_PASSWORD,
    );
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("run python3 (python3-pymysql)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymysql_connection_gone_away_as_on_the_node() {
    let c = cluster();
    let _g = c.shared().await;
    let proxy = Proxy::start(c.config());
    let node = node_addr(0);
    let addr = proxy.addr;
    let (on_node, through_proxy) = tokio::task::spawn_blocking(move || {
        (
            pymysql_gone_away(&node.ip().to_string(), node.port()),
            pymysql_gone_away(&addr.ip().to_string(), addr.port()),
        )
    })
    .await
    .unwrap();
    assert!(
        on_node == "2006" || on_node == "2013",
        "the node: {on_node}"
    );
    assert_eq!(through_proxy, on_node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_async_sees_an_idle_session_gone() {
    let c = cluster();
    let _g = c.shared().await;
    let proxy = Proxy::start(c.config());
    let mut conn = connect(&proxy.url(None)).await;
    conn.query_drop("SET wait_timeout = 1").await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    match conn.query_drop("SELECT 1").await {
        Err(mysql_async::Error::Server(e)) => {
            panic!("a server error instead of a closed connection: {e}")
        }
        Err(_) => {}
        Ok(()) => panic!("the idle session was not closed"),
    }
    still_serves(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_max_allowed_packet_is_mariadbs_16_mib() {
    let c = cluster();
    let _g = c.shared().await;
    let proxy = Proxy::start(c.config());
    let mut s = raw_login(&proxy, None).await;
    // A full chunk (16 MiB - 1), then the header of two more bytes: 16 MiB + 1.
    let mut first = vec![0xff, 0xff, 0xff, 0, 0x03];
    first.extend(std::iter::repeat_n(b' ', 0xff_ffff - 1));
    s.write_all(&first).await.unwrap();
    s.write_all(&[2, 0, 0, 1]).await.unwrap();
    let got = closed_after(&mut s).await;
    let err = got.first().expect("an ERR before closing");
    assert_eq!((err[0], u16::from_le_bytes([err[1], err[2]])), (0xff, 1153));
    still_serves(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_per_session_are_capped_with_1461() {
    let c = cluster();
    let _g = c.shared().await;
    let mut cfg = c.config();
    cfg.mysql.max_prepared_statements = 3;
    let proxy = Proxy::start(cfg);
    let mut s = raw_login(&proxy, None).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            raw::prepare(&mut s, &format!("SELECT {i}"))
                .await
                .unwrap()
                .0,
        );
    }
    assert_eq!(raw::prepare(&mut s, "SELECT 4").await, Err(1461));
    // Closing one makes room, and the session goes on.
    let mut close = vec![0x19];
    close.extend_from_slice(&ids[0].to_le_bytes());
    raw::send(&mut s, &close).await;
    assert!(raw::prepare(&mut s, "SELECT 5").await.is_ok());
    send_query(&mut s, "SELECT 1").await;
    assert_eq!(raw::read_result(&mut s).await.map(|r| r.len()), Ok(1));
    // mysql_async sees MariaDB's own error and text.
    let mut conn = connect(&proxy.url(None)).await;
    let mut kept = Vec::new();
    for i in 0..3 {
        kept.push(conn.prep(format!("SELECT {i} + ?")).await.unwrap());
    }
    match conn.prep("SELECT 99 + ?").await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(
            (e.code, e.state.as_str(), e.message.as_str()),
            (
                1461,
                "42000",
                "Can't create more than max_prepared_stmt_count statements (current value: 3)"
            )
        ),
        other => panic!("expected 1461, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_log_past_its_byte_bound_pins_the_session_to_the_master() {
    let c = cluster();
    let _g = c.shared().await;
    let proxy = Proxy::start(c.config());
    let mut conn = connect(&proxy.url(None)).await;
    let master: Option<u32> = conn
        .query_first("SELECT /* sqlproxy:master */ @@server_id")
        .await
        .unwrap();
    // One SET longer than the replay log may hold (a long comment counts).
    let filler = "x".repeat(70 * 1024);
    conn.query_drop(format!(
        "SET SESSION group_concat_max_len = 4096 /* {filler} */"
    ))
    .await
    .unwrap();
    // Not replayed elsewhere: every read stays where the SET ran.
    for _ in 0..20 {
        let (id, len): (u32, u64) = conn
            .query_first("SELECT @@server_id, @@group_concat_max_len")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((Some(id), len), (master, 4096));
    }
}

/// A command of two chunks whose second passes max_allowed_packet: 1153
/// with the sequence id after that chunk (mysqlnd checks it: a wrong one
/// made PHP report "Packets out of order" and 2006 instead of 1153).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_command_of_two_chunks_gets_1153_in_sequence() {
    let c = cluster();
    let _g = c.shared().await;
    let proxy = Proxy::start(c.config());
    assert_eq!(proxy.context.config.mysql.max_allowed_packet, 16 << 20);
    let mut s = raw_login(&proxy, None).await;
    let mut first = vec![0xff, 0xff, 0xff, 0, 0x03];
    first.extend_from_slice(b"SELECT '");
    first.resize(4 + 0xff_ffff, b'x');
    s.write_all(&first).await.unwrap();
    s.write_all(&[3, 0, 0, 1, b'x', b'\'', b' ']).await.unwrap();
    let mut header = [0u8; 4];
    s.read_exact(&mut header).await.expect("a reply");
    let len = usize::from(header[0]) | usize::from(header[1]) << 8;
    let mut err = vec![0u8; len];
    s.read_exact(&mut err).await.expect("the error");
    assert_eq!(
        header[3], 2,
        "the sequence id after the client's two chunks"
    );
    assert_eq!((err[0], u16::from_le_bytes([err[1], err[2]])), (0xff, 1153));
    assert_eq!(&err[3..9], b"#08S01");
    closed_after(&mut s).await;
    still_serves(&proxy).await;
}
