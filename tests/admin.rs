//! The admin SQL port and the Prometheus endpoint against a running proxy:
//! logins (right and wrong password), every command with mysql_async and
//! the `mariadb` CLI, SET BACKEND moving reads, RELOAD CONFIG applying or
//! refusing a file, pipelined and malformed packets, and `/metrics` showing
//! the same numbers as SHOW STATS. Nothing here changes the cluster (admin
//! state is the proxy's own), so tests hold the shared lock.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{cluster, connect, server_id, Proxy, APP_PASSWORD};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use sqlproxy::config::Config;
use sqlproxy::protocol::handshake::{self, NativeSecret, NATIVE_PLUGIN};
use sqlproxy::protocol::response::{Expect, PacketKind, ResponseTracker};
use sqlproxy::protocol::{caps, codec};

const ADMIN_USER: &str = "ops";
const ADMIN_PASSWORD: &str = "admin-secret";

/// The fixture's config plus an admin port and a metrics endpoint on port 0.
fn config_toml(admin_password: &str) -> String {
    format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\nuser = \"{ADMIN_USER}\"\npassword = \"{admin_password}\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
        cluster().config_toml()
    )
}

fn start() -> Proxy {
    match Config::from_toml_str(&config_toml(ADMIN_PASSWORD), []) {
        Ok(c) => Proxy::start(c),
        Err(e) => panic!("test config: {e}"),
    }
}

fn admin_addr(p: &Proxy) -> SocketAddr {
    p.admin_addr.expect("the admin port is enabled")
}

fn admin_url(p: &Proxy, password: &str) -> String {
    format!(
        "mysql://{ADMIN_USER}:{password}@{}?prefer_socket=false",
        admin_addr(p)
    )
}

async fn admin(p: &Proxy) -> Conn {
    connect(&admin_url(p, ADMIN_PASSWORD)).await
}

/// Rows of an admin command as column → text maps.
async fn rows(conn: &mut Conn, sql: &str) -> Vec<BTreeMap<String, Option<String>>> {
    let result: Vec<Row> = match conn.query(sql).await {
        Ok(r) => r,
        Err(e) => panic!("{sql}: {e}"),
    };
    result
        .into_iter()
        .map(|row| {
            let cols = row.columns();
            let mut m = BTreeMap::new();
            for (i, c) in cols.iter().enumerate() {
                let v: Option<String> = row.get(i).unwrap_or(None);
                m.insert(c.name_str().to_string(), v);
            }
            m
        })
        .collect()
}

fn text<'a>(row: &'a BTreeMap<String, Option<String>>, col: &str) -> &'a str {
    match row.get(col) {
        Some(Some(v)) => v,
        Some(None) => "NULL",
        None => panic!("no column {col} in {row:?}"),
    }
}

fn num(row: &BTreeMap<String, Option<String>>, col: &str) -> u64 {
    match text(row, col).parse() {
        Ok(n) => n,
        Err(_) => panic!("{col} is not a number in {row:?}"),
    }
}

/// The admin ERR for `sql`: (code, message).
async fn admin_err(conn: &mut Conn, sql: &str) -> (u16, String) {
    match conn.query_drop(sql).await {
        Ok(()) => panic!("{sql} succeeded"),
        Err(mysql_async::Error::Server(e)) => (e.code, e.message),
        Err(e) => panic!("{sql}: not a server error: {e}"),
    }
}

/// `SHOW STATS` as name → value.
async fn stats(conn: &mut Conn) -> BTreeMap<String, u64> {
    rows(conn, "SHOW STATS")
        .await
        .iter()
        .map(|r| (text(r, "name").to_string(), num(r, "value")))
        .collect()
}

/// Waits until the monitor has both nodes Up (the proxy starts them Down).
async fn both_up(p: &Proxy) {
    for _ in 0..2000 {
        let s = p.context.topology.snapshot();
        if s.is_up(0) && s.is_up(1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the monitor did not mark both nodes up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_refused_and_every_command_answers() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("admin_commands");
    let p = start();
    both_up(&p).await;

    match mysql_async::Conn::from_url(admin_url(&p, "wrong")).await {
        Ok(_) => panic!("a wrong admin password was accepted"),
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1045, "{e}"),
        Err(e) => panic!("unexpected error for a wrong password: {e}"),
    }
    // The application's account is not an admin account.
    let app = format!(
        "mysql://prestashop:{APP_PASSWORD}@{}?prefer_socket=false",
        admin_addr(&p)
    );
    assert!(mysql_async::Conn::from_url(app).await.is_err());

    // Application traffic for the counters to show.
    let mut shop = connect(&p.url(Some(&db))).await;
    shop.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        .await
        .unwrap();
    for i in 0..5 {
        shop.exec_drop("INSERT INTO t VALUES (?, ?)", (i, i * 10))
            .await
            .unwrap();
    }
    for i in 0..7 {
        let _: Option<u32> = shop
            .query_first(format!("SELECT v FROM t WHERE id = {}", i % 5))
            .await
            .unwrap();
    }

    let mut a = admin(&p).await;
    let backends = rows(&mut a, "SHOW BACKENDS").await;
    assert_eq!(backends.len(), 2);
    assert_eq!(text(&backends[0], "name"), "cn1");
    assert_eq!(text(&backends[0], "role"), "master");
    assert_eq!(text(&backends[1], "role"), "replica");
    for b in &backends {
        assert_eq!(text(b, "state"), "up");
        assert_eq!(text(b, "admin"), "online");
        assert_eq!(num(b, "weight"), 1);
        assert_ne!(text(b, "gtid_current_pos"), "NULL");
    }
    let queries: u64 = backends.iter().map(|b| num(b, "queries")).sum();
    assert!(queries >= 13, "{backends:?}");
    assert!(
        num(&backends[0], "queries") >= 6,
        "writes and DDL on the master"
    );

    let sessions = rows(&mut a, "show sessions").await;
    let me = sessions
        .iter()
        .find(|s| text(s, "schema") == db)
        .unwrap_or_else(|| panic!("the shop session is not listed: {sessions:?}"));
    assert_eq!(text(me, "user"), "prestashop");
    assert_eq!(text(me, "command"), "sleep");
    assert!(text(me, "nodes").contains("cn1"), "{me:?}");

    let pools = rows(&mut a, "SHOW POOLS").await;
    assert_eq!(pools.len(), 2);
    assert!(num(&pools[0], "in_use") >= 1, "{pools:?}");

    let s = stats(&mut a).await;
    assert_eq!(s["queries"], queries);
    assert!(s["client_sessions"] >= 1);
    assert!(s["client_sessions_opened"] >= 1);

    // A statement in flight shows with its text.
    let url = p.url(Some(&db));
    let sleeper = tokio::spawn(async move {
        let mut s = connect(&url).await;
        s.query_drop("SELECT SLEEP(3) /* admin-visible */").await
    });
    let mut running = None;
    for _ in 0..10_000 {
        let all = rows(&mut a, "SHOW SESSIONS").await;
        running = all
            .into_iter()
            .find(|s| text(s, "info").contains("admin-visible"));
        if running.is_some() {
            break;
        }
    }
    let running = running.expect("the running SLEEP shows in SHOW SESSIONS");
    assert_eq!(text(&running, "command"), "query");
    sleeper.await.unwrap().unwrap();

    let config = rows(&mut a, "SHOW CONFIG").await;
    let get = |k: &str| {
        config
            .iter()
            .find(|r| text(r, "key") == k)
            .map(|r| text(r, "value").to_string())
    };
    assert_eq!(
        get("users.prestashop.password").as_deref(),
        Some("********")
    );
    assert_eq!(get("admin.password").as_deref(), Some("********"));
    assert_eq!(get("monitor.password").as_deref(), Some("********"));
    assert_eq!(get("monitor.interval").as_deref(), Some("200ms"));
    assert!(config
        .iter()
        .all(|r| !text(r, "value").contains(ADMIN_PASSWORD)));

    let digests = rows(&mut a, "SHOW QUERY DIGEST").await;
    let select = digests
        .iter()
        .find(|d| text(d, "digest") == "SELECT v FROM t WHERE id = ?")
        .unwrap_or_else(|| panic!("no digest for the selects: {digests:?}"));
    assert_eq!(num(select, "count"), 7);
    assert_eq!(num(select, "rows"), 7, "one row each");
    assert_eq!(num(select, "on_master") + num(select, "on_replica"), 7);
    assert!(text(select, "route").starts_with("read/"), "{select:?}");
    let insert = digests
        .iter()
        .find(|d| text(d, "digest").starts_with("INSERT INTO t"))
        .unwrap_or_else(|| panic!("no digest for the inserts: {digests:?}"));
    assert_eq!((num(insert, "count"), num(insert, "rows")), (5, 5));
    assert_eq!(num(insert, "on_master"), 5);
    assert_eq!(rows(&mut a, "SHOW QUERY DIGEST LIMIT 1").await.len(), 1);

    let commands = rows(&mut a, "SHOW COMMANDS").await;
    assert!(commands.len() >= 10);

    // Refused master changes (the real ones are in tests/switchover.rs and
    // tests/failover.rs, which own their cluster), and bad input: clear errors.
    let (code, msg) = admin_err(&mut a, "SWITCHOVER TO 'cn1'").await;
    assert_eq!(code, 9003, "{msg}");
    assert!(msg.contains("already the master"), "{msg}");
    let (code, msg) = admin_err(&mut a, "FAILOVER TO cn1").await;
    assert_eq!(code, 9003, "{msg}");
    let (code, msg) = admin_err(&mut a, "SHOW HTTP BACKENDS").await;
    assert_eq!(code, 9003, "{msg}");
    assert!(msg.contains("not configured"), "{msg}");
    let (code, msg) = admin_err(&mut a, "SWITCHOVER TO 'nope'").await;
    assert_eq!(code, 9003);
    assert!(msg.contains("no backend named 'nope'"), "{msg}");
    let (code, msg) = admin_err(&mut a, "SELECT * FROM t").await;
    assert_eq!(code, 1064);
    assert!(msg.contains("SHOW COMMANDS"), "{msg}");
    let (code, msg) = admin_err(&mut a, "SET BACKEND 'cn2' SIDEWAYS").await;
    assert_eq!(code, 1064);
    assert!(msg.contains("usage: SET BACKEND"), "{msg}");
    // Prepared statements are refused, the connection carries on.
    assert!(a.prep("SHOW STATS").await.is_err());
    let s2 = stats(&mut a).await;
    assert!(s2["admin_commands"] > s["admin_commands"]);
    a.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_backend_moves_reads_and_survives_health_checks() {
    let c = cluster();
    let _g = c.shared().await;
    let p = start();
    both_up(&p).await;
    let mut a = admin(&p).await;
    let mut reader = connect(&p.url(None)).await;

    let r = rows(&mut a, "SET BACKEND 'cn2' OFFLINE").await;
    assert_eq!(
        (text(&r[0], "before"), text(&r[0], "after")),
        ("online", "offline")
    );
    // Many monitor rounds pass (200ms each) while only cn1 serves.
    for _ in 0..100 {
        assert_eq!(server_id(&mut reader).await, 1, "cn2 is offline");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let snap = p.context.topology.snapshot();
    assert!(snap.is_up(1), "health stays up");
    assert_eq!(snap.nodes[1].admin.to_string(), "offline");
    let b = rows(&mut a, "SHOW BACKENDS").await;
    assert_eq!(text(&b[1], "admin"), "offline");

    // The master cannot go offline (it takes the writes), only drain.
    let (code, msg) = admin_err(&mut a, "SET BACKEND 'cn1' OFFLINE").await;
    assert_eq!(code, 9003);
    assert!(msg.contains("SWITCHOVER"), "{msg}");
    let (code, _) = admin_err(&mut a, "SET BACKEND nope ONLINE").await;
    assert_eq!(code, 9003);

    // cn2 online with the master's weight 0: reads go to cn2 only.
    rows(&mut a, "set backend cn2 online").await;
    let r = rows(&mut a, "SET BACKEND 'cn1' WEIGHT 0").await;
    assert_eq!((text(&r[0], "before"), text(&r[0], "after")), ("1", "0"));
    for _ in 0..50 {
        assert_eq!(server_id(&mut reader).await, 2, "cn1 has weight 0");
    }
    // DRAIN on cn2: no new reads there; the master is the fallback.
    rows(&mut a, "SET BACKEND 'cn2' DRAIN").await;
    for _ in 0..50 {
        assert_eq!(server_id(&mut reader).await, 1, "cn2 drains");
    }
    rows(&mut a, "SET BACKEND 'cn2' ONLINE").await;
    rows(&mut a, "SET BACKEND 'cn1' WEIGHT 1").await;
    let mut seen = [false; 2];
    for _ in 0..400 {
        seen[(server_id(&mut reader).await as usize - 1).min(1)] = true;
        if seen == [true, true] {
            break;
        }
    }
    assert_eq!(seen, [true, true], "both nodes read again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_config_applies_live_keys_and_keeps_the_running_config_on_error() {
    let c = cluster();
    let _g = c.shared().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sqlproxy.toml");
    let original = config_toml(ADMIN_PASSWORD);
    std::fs::write(&path, &original).unwrap();
    let cfg = Config::load(&path, []).unwrap();
    let p = Proxy::start(cfg);
    let mut a = admin(&p).await;

    // Nothing changed: nothing to report.
    assert!(rows(&mut a, "RELOAD CONFIG").await.is_empty());

    // A weight, the admin password, and a key that needs a restart.
    let changed = original
        .replacen("weight = 1\npriority = 2", "weight = 5\npriority = 2", 1)
        .replace(
            &format!("password = \"{ADMIN_PASSWORD}\""),
            "password = \"new-secret\"",
        )
        .replace("interval = \"200ms\"", "interval = \"300ms\"");
    assert_ne!(changed, original);
    std::fs::write(&path, &changed).unwrap();
    let r = rows(&mut a, "RELOAD CONFIG").await;
    let status = |key: &str| {
        r.iter()
            .find(|row| text(row, "key") == key)
            .map(|row| text(row, "status").to_string())
    };
    assert_eq!(
        status("nodes.cn2.weight").as_deref(),
        Some("applied"),
        "{r:?}"
    );
    assert_eq!(status("admin.password").as_deref(), Some("applied"));
    assert_eq!(
        status("monitor.interval").as_deref(),
        Some("restart needed")
    );
    assert!(r
        .iter()
        .all(|row| !text(row, "file").contains("new-secret")));
    assert_eq!(p.context.topology.snapshot().nodes[1].weight, 5);
    // The session that reloaded stays; new logins use the new password.
    assert!(mysql_async::Conn::from_url(admin_url(&p, ADMIN_PASSWORD))
        .await
        .is_err());
    let mut a2 = connect(&admin_url(&p, "new-secret")).await;

    // A broken file changes nothing and says why.
    std::fs::write(&path, changed.replace("fall = 2", "fall = 0")).unwrap();
    let (code, msg) = admin_err(&mut a2, "RELOAD CONFIG").await;
    assert_eq!(code, 9003);
    assert!(msg.contains("monitor.fall"), "{msg}");
    assert!(msg.contains("running one is kept"), "{msg}");
    std::fs::write(&path, "not toml [").unwrap();
    let (code, _) = admin_err(&mut a2, "RELOAD CONFIG").await;
    assert_eq!(code, 9003);
    let cfg = rows(&mut a2, "SHOW CONFIG").await;
    let fall = cfg.iter().find(|r| text(r, "key") == "monitor.fall");
    assert_eq!(fall.map(|r| text(r, "value")), Some("2"));
    assert_eq!(p.context.topology.snapshot().nodes[1].weight, 5);
    let mut a3 = connect(&admin_url(&p, "new-secret")).await;
    a3.query_drop("SHOW STATS").await.unwrap();
}

/// Runs the `mariadb` CLI against the admin port; (status ok, stdout, stderr).
fn mariadb_cli(addr: SocketAddr, password: &str, sql: &str) -> (bool, String, String) {
    let out = std::process::Command::new("mariadb")
        .args([
            "--protocol=tcp",
            "-h127.0.0.1",
            &format!("-P{}", addr.port()),
            &format!("-u{ADMIN_USER}"),
            &format!("-p{password}"),
            "--batch",
            "-e",
            sql,
        ])
        .output();
    match out {
        Ok(o) => (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        Err(e) => panic!("cannot run the mariadb CLI: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mariadb_cli_works_against_the_admin_port() {
    let c = cluster();
    let _g = c.shared().await;
    let p = start();
    both_up(&p).await;
    let addr = admin_addr(&p);
    let cli = |pw: &'static str, sql: &'static str| {
        tokio::task::spawn_blocking(move || mariadb_cli(addr, pw, sql))
    };
    let (ok, out, err) = cli(ADMIN_PASSWORD, "SHOW BACKENDS").await.unwrap();
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("name\taddress\trole\tstate"), "{out}");
    assert!(
        lines[1].starts_with("cn1\t") && lines[1].contains("\tmaster\t"),
        "{out}"
    );
    assert!(lines[2].starts_with("cn2\t"), "{out}");
    let (ok, out, err) = cli(
        ADMIN_PASSWORD,
        "select @@version_comment limit 1; SHOW STATS; show pools; SHOW SESSIONS; SHOW QUERY DIGEST LIMIT 3; SHOW CONFIG; SET BACKEND 'cn2' WEIGHT 2; RELOAD CONFIG",
    )
    .await
    .unwrap();
    // The CLI sends the statements one by one; RELOAD is refused (no file), last.
    assert!(!ok);
    assert!(out.contains("sqlproxy admin"), "{out}");
    assert!(out.contains("uptime_s"), "{out}");
    assert!(out.contains("cn2\tweight\t1\t2"), "{out}");
    assert!(err.contains("started without a config file"), "{err}");
    let (ok, _, err) = cli(ADMIN_PASSWORD, "FLUSH LOGS").await.unwrap();
    assert!(!ok);
    assert!(
        err.contains("ERROR 1064") && err.contains("SHOW COMMANDS"),
        "{err}"
    );
    let (ok, _, err) = cli("nope", "SHOW STATS").await.unwrap();
    assert!(!ok);
    assert!(err.contains("Access denied"), "{err}");
}

// ---- raw protocol: pipelining and malformed packets ----------------------

struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Raw { s, buf: Vec::new() }
    }

    /// The next packet (seq, payload), or None when the server closed.
    fn packet(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some(h) = codec::complete_packet(&self.buf) {
                let p = self.buf[4..4 + h.len].to_vec();
                self.buf.drain(..4 + h.len);
                return Some((h.seq, p));
            }
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Logs in as the admin (mysql_native_password, DEPRECATE_EOF).
    fn login(addr: SocketAddr, password: &str) -> Raw {
        let mut r = Raw::connect(addr);
        let (_, greeting) = r.packet().expect("greeting");
        let hello = handshake::parse_greeting(&greeting).expect("a valid greeting");
        let token = NativeSecret::from_password(password)
            .scramble(&hello.nonce)
            .unwrap();
        let caps = caps::BACKEND_BASE | caps::DEPRECATE_EOF;
        let resp =
            handshake::backend_response(caps, 45, ADMIN_USER.as_bytes(), &token, NATIVE_PLUGIN);
        let mut out = Vec::new();
        codec::write_packet(&mut out, 1, &resp);
        r.s.write_all(&out).unwrap();
        let (_, ok) = r.packet().expect("login reply");
        assert_eq!(ok[0], 0x00, "login OK");
        r
    }

    /// One command's reply: first byte of its first packet, and for ERR the code.
    fn reply(&mut self) -> (u8, Option<u16>) {
        let mut t = ResponseTracker::new(
            Expect::Results {
                binary: false,
                cursor: false,
            },
            true,
        );
        let mut first = None;
        loop {
            let (_, p) = self.packet().expect("a reply");
            first.get_or_insert((
                p[0],
                (p[0] == 0xff).then(|| u16::from_le_bytes([p[1], p[2]])),
            ));
            if matches!(t.on_packet(&p, p.len()), PacketKind::Ok | PacketKind::Eof) {
                t.status_seen(0);
            }
            if t.is_done() {
                return first.unwrap_or((0, None));
            }
        }
    }
}

fn framed(payloads: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads {
        codec::write_packet(&mut out, 0, p);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_and_malformed_packets_do_not_kill_the_listener() {
    let c = cluster();
    let _g = c.shared().await;
    let p = start();
    let addr = admin_addr(&p);
    tokio::task::spawn_blocking(move || {
        // Garbage instead of a handshake response: that connection ends.
        let mut g = Raw::connect(addr);
        g.packet().expect("greeting");
        g.s.write_all(&framed(&[&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3]]))
            .unwrap();
        while g.packet().is_some() {}
        // Half a packet, then gone.
        let mut h = Raw::connect(addr);
        h.packet().expect("greeting");
        h.s.write_all(&[200, 0, 0, 1, b'x']).unwrap();
        drop(h);

        // Ten commands in one write, good and bad mixed: one reply each, in order.
        let mut r = Raw::login(addr, ADMIN_PASSWORD);
        let batch = framed(&[
            b"\x03SHOW STATS",
            b"\x03show pools",
            &[0x17, 1],
            &[],
            b"\x03BOGUS",
            b"\x16SELECT 1",
            &[0x03, 0xff, 0xfe],
            &[0x99],
            &[0x0e],
            b"\x03SHOW BACKENDS",
        ]);
        r.s.write_all(&batch).unwrap();
        let replies: Vec<(u8, Option<u16>)> = (0..10).map(|_| r.reply()).collect();
        let codes: Vec<Option<u16>> = replies.iter().map(|x| x.1).collect();
        assert_eq!(
            codes,
            vec![
                None,
                None,
                Some(1835),
                Some(1835),
                Some(1064),
                Some(1295),
                Some(1064),
                Some(1047),
                None,
                None
            ]
        );
        assert_eq!(replies[8].0, 0x00, "PING gets OK");
        assert_eq!(replies[0].0, 2, "SHOW STATS: a two-column result set");
        // A packet over the admin limit: error, then the connection closes.
        r.s.write_all(&[0xff, 0xff, 0xff, 0]).unwrap();
        let (_, err) = r.packet().expect("an error for the huge packet");
        assert_eq!(u16::from_le_bytes([err[1], err[2]]), 1153);
        assert!(r.packet().is_none(), "then the connection closes");
    })
    .await
    .unwrap();
    // The port still serves.
    let mut a = admin(&p).await;
    let s = stats(&mut a).await;
    assert!(s["admin_commands"] >= 5, "{s:?}");
}

/// `GET <path>` over plain HTTP/1.1: (status line, headers+body).
fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.lines().next().unwrap_or_default().to_string();
    (status, out)
}

/// The value of one sample line `name{labels} value`.
fn sample(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_exports_what_show_stats_shows() {
    let c = cluster();
    let _g = c.shared().await;
    let p = start();
    both_up(&p).await;
    let addr = p.metrics_addr.expect("metrics enabled");
    let mut shop = connect(&p.url(None)).await;
    for _ in 0..20 {
        shop.query_drop("SELECT 1").await.unwrap();
    }
    let mut a = admin(&p).await;
    let s = stats(&mut a).await;
    let (status, body) = tokio::task::spawn_blocking(move || http_get(addr, "/metrics"))
        .await
        .unwrap();
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("application/openmetrics-text"), "{body}");
    let q1 = sample(&body, "sqlproxy_node_queries_total{node=\"cn1\"}").unwrap_or(-1.0);
    let q2 = sample(&body, "sqlproxy_node_queries_total{node=\"cn2\"}").unwrap_or(-1.0);
    assert_eq!(q1 + q2, s["queries"] as f64, "{body}");
    assert!(q1 + q2 >= 20.0);
    let count1 = sample(&body, "sqlproxy_node_latency_seconds_count{node=\"cn1\"}");
    assert_eq!(count1, Some(q1), "every query timed once");
    // Buckets are cumulative: the +Inf bucket holds every observation.
    let bucket = |le: &str| {
        let name = format!("sqlproxy_node_latency_seconds_bucket{{le=\"{le}\",node=\"cn1\"}}");
        sample(&body, &name)
    };
    assert_eq!(bucket("+Inf"), Some(q1), "{body}");
    assert!(bucket("0.0001").is_some_and(|b| b <= q1), "{body}");
    assert!(bucket("0.001") <= bucket("0.01"), "{body}");
    assert_eq!(
        sample(&body, "sqlproxy_node_master{node=\"cn1\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&body, "sqlproxy_node_master{node=\"cn2\"}"),
        Some(0.0)
    );
    assert_eq!(sample(&body, "sqlproxy_node_up{node=\"cn2\"}"), Some(1.0));
    assert_eq!(
        sample(&body, "sqlproxy_client_sessions"),
        Some(1.0),
        "{body}"
    );
    assert!(
        sample(&body, "sqlproxy_failovers_total").is_some(),
        "{body}"
    );
    assert!(sample(&body, "sqlproxy_switchovers_total").is_some());
    assert!(sample(&body, "sqlproxy_pool_in_use_connections{node=\"cn1\"}").is_some());
    assert!(body.trim_end().ends_with("# EOF"));
    let (status, _) = tokio::task::spawn_blocking(move || http_get(addr, "/nope"))
        .await
        .unwrap();
    assert!(status.contains("404"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_digests_never_show_password_literals() {
    let c = cluster();
    let _g = c.shared().await;
    let p = start();
    let mut app = connect(&p.url(None)).await;
    let running = tokio::spawn(async move {
        let r: Option<(i64, String)> = app
            .query_first("SELECT SLEEP(3), PASSWORD('hunter2-secret')")
            .await
            .unwrap();
        (app, r)
    });
    let mut admin = admin(&p).await;
    let mut seen = None;
    for _ in 0..300 {
        let all = rows(&mut admin, "SHOW SESSIONS").await;
        if let Some(r) = all.iter().find(|r| text(r, "info").contains("SLEEP")) {
            seen = Some(text(r, "info").to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let info = seen.expect("the running statement shows in SHOW SESSIONS");
    assert!(!info.contains("hunter2"), "{info}");
    let (mut app, r) = running.await.unwrap();
    assert!(r.is_some());
    // A statement that fails on the node (no such user) is counted too.
    let failed = app
        .query_drop("ALTER USER 'no_such_user_sec'@'%' IDENTIFIED BY 'hunter2-secret'")
        .await;
    assert!(failed.is_err(), "no such user");
    for row in rows(&mut admin, "SHOW QUERY DIGEST").await {
        for v in row.values().flatten() {
            assert!(!v.contains("hunter2"), "{row:?}");
        }
    }
}
