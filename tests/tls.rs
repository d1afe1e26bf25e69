//! TLS between clients and the proxy, with real clients: the `mariadb` CLI
//! verifying the proxy's certificate, PHP PDO and mysqli with a CA, PyMySQL
//! with `ssl={'ca': ...}`, mysql_async with rustls; client certificates
//! checked when `[mysql.tls] ca` is set; `require` (and a user's
//! `require_tls`) refusing cleartext with MariaDB's own error; certificates
//! reloaded without a restart; SHOW SESSIONS and the counters telling TLS
//! from cleartext; the admin port over TLS. And bad input on the TLS path:
//! garbage instead of a ClientHello, a client that stops mid-handshake (cut
//! by the read timeout, and by `connect_timeout` when reads may wait), an
//! SSL request to a proxy without TLS: each costs its own connection only.
//!
//! Certificates are made at run time (`common::certs`), never checked in.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::certs::{Pair, TestCa};
use common::{cluster, php, raw, Proxy};
use mysql_async::prelude::Queryable;
use mysql_async::{ClientIdentity, Conn, Opts, OptsBuilder, SslOpts};
use sqlproxy::config::Config;
use sqlproxy::protocol::caps;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN_PASSWORD: &str = "adminpw";

/// A bound on waits that must end (a handshake the proxy cuts): generous,
/// never a measured threshold.
const SAFETY: Duration = Duration::from_secs(60);

/// The test's directory of certificates, with one CA and the proxy's
/// server certificate.
struct Pki {
    dir: tempfile::TempDir,
    ca: TestCa,
    server: Pair,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new(dir.path(), "main");
        let server = ca.server("proxy");
        Pki { dir, ca, server }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The cluster's config with `[mysql.tls]` (cert and key from `pki`, then
/// `tls_extra` lines) and `extra` sections appended.
fn config_toml(pki: &Pki, tls_extra: &str, extra: &str) -> String {
    format!(
        "{}\n[mysql.tls]\ncert = \"{}\"\nkey = \"{}\"\n{tls_extra}\n{extra}\n",
        cluster().config_toml(),
        pki.server.cert.display(),
        pki.server.key.display(),
    )
}

fn admin_section(tls: Option<&Pair>) -> String {
    let mut s = format!("[admin]\nlisten = \"127.0.0.1:0\"\npassword = \"{ADMIN_PASSWORD}\"\n");
    if let Some(p) = tls {
        s.push_str(&format!(
            "[admin.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            p.cert.display(),
            p.key.display()
        ));
    }
    s
}

fn start(toml: &str) -> Proxy {
    match Config::from_toml_str(toml, []) {
        Ok(c) => Proxy::start(c),
        Err(e) => panic!("test config: {e}\n{toml}"),
    }
}

/// mysql_async options for the proxy: TLS verified against `ca` (when
/// given), presenting `identity` (when given).
fn opts(proxy: &Proxy, ca: Option<&Path>, identity: Option<&Pair>) -> Opts {
    let base = match Opts::from_url(&proxy.url(None)) {
        Ok(o) => o,
        Err(e) => panic!("url: {e}"),
    };
    let mut b = OptsBuilder::from_opts(base);
    if let Some(ca) = ca {
        let id = identity.map(|p| ClientIdentity::new(p.cert.clone().into(), p.key.clone().into()));
        let ssl = SslOpts::default()
            .with_root_certs(vec![ca.to_path_buf().into()])
            .with_disable_built_in_roots(true)
            .with_client_identity(id);
        b = b.ssl_opts(ssl);
    }
    b.into()
}

async fn select_one(opts: Opts) -> Result<u32, mysql_async::Error> {
    let mut conn = Conn::new(opts).await?;
    let one: Option<u32> = conn.query_first("SELECT 1").await?;
    conn.disconnect().await?;
    Ok(one.unwrap_or(0))
}

/// `mariadb` CLI against `addr` with `args`, running `sql`: (ok, stdout, stderr).
fn cli(port: u16, user: &str, password: &str, args: &[&str], sql: &str) -> (bool, String, String) {
    let out = Command::new("mariadb")
        .args([
            "--no-defaults",
            "-h127.0.0.1",
            &format!("-P{port}"),
            &format!("-u{user}"),
            &format!("-p{password}"),
            "--batch",
            "--connect-timeout=20",
        ])
        .args(args)
        .args(["-e", sql])
        .output()
        .expect("run the mariadb client");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn app_cli(proxy: &Proxy, args: &[&str], sql: &str) -> (bool, String, String) {
    cli(proxy.addr.port(), "prestashop", "prestashop", args, sql)
}

fn verify_args(ca: &Path) -> Vec<String> {
    vec![
        "--ssl".into(),
        "--ssl-verify-server-cert".into(),
        format!("--ssl-ca={}", ca.display()),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn counters(proxy: &Proxy) -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &proxy.context.metrics;
    (m.logins_tls.load(Relaxed), m.logins_cleartext.load(Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_verify_the_proxy_certificate() {
    let c = cluster();
    let _g = c.shared().await;
    let pki = Pki::new();
    let proxy = start(&config_toml(&pki, "", ""));
    let ca = pki.ca.ca.clone();

    // The mariadb CLI, verifying the certificate and the name.
    let (ok, out, err) = app_cli(&proxy, &strs(&verify_args(&ca)), "SELECT 40 + 2 AS answer");
    assert!(ok, "{err}");
    assert!(out.contains("answer\n42"), "{out}");
    // The same against another CA: the client refuses the proxy.
    let stranger = TestCa::new(pki.path(), "stranger");
    let (ok, _, err) = app_cli(&proxy, &strs(&verify_args(&stranger.ca)), "SELECT 1");
    assert!(!ok, "a certificate from another CA was accepted");
    assert!(err.contains("2026"), "{err}");

    // PDO and mysqli with a CA, verifying the server certificate.
    let port = proxy.addr.port().to_string();
    let ca_s = ca.display().to_string();
    let out = php::run(
        "tls.php",
        &["127.0.0.1", &port, "prestashop", "prestashop", &ca_s],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let kv = php::key_values(&out);
    assert_eq!(kv["pdo.one"], "1", "{out}");
    assert_eq!(kv["mysqli.one"], "1", "{out}");

    // PyMySQL with ssl={'ca': ...} (the distribution's python3 has it).
    let py = format!(
        "import pymysql\n\
         c = pymysql.connect(host='127.0.0.1', port={port}, user='prestashop', password='prestashop', ssl={{'ca': '{ca_s}'}})\n\
         cur = c.cursor(); cur.execute('SELECT 7'); print('pymysql', cur.fetchone()[0])\n"
    );
    let out = Command::new("/usr/bin/python3")
        .args(["-c", &py])
        .output()
        .expect("run python3 (apt-get install python3-pymysql)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pymysql 7");

    // mysql_async over rustls.
    assert_eq!(
        select_one(opts(&proxy, Some(&ca), None)).await.ok(),
        Some(1)
    );

    // cli 1, PDO 1, mysqli 1, PyMySQL 1, mysql_async 1; nothing in cleartext.
    assert_eq!(counters(&proxy), (5, 0));
    // A cleartext client still gets in when TLS is offered, not required.
    assert_eq!(select_one(opts(&proxy, None, None)).await.ok(), Some(1));
    assert_eq!(counters(&proxy), (5, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_refuses_cleartext_with_mariadbs_own_error() {
    let c = cluster();
    let _g = c.shared().await;
    let pki = Pki::new();
    let ca = pki.ca.ca.clone();
    // MariaDB 10.11 under require_secure_transport answers a cleartext
    // login with 1045 (28000) access denied: there is no separate code.
    for (tls_extra, extra) in [
        ("require = true", ""),
        (
            "",
            "[users.prestashop]\npassword = \"prestashop\"\nrequire_tls = true\n",
        ),
    ] {
        // The per-user case replaces the fixture's [users.prestashop].
        let toml = config_toml(&pki, tls_extra, extra);
        let toml = if extra.is_empty() {
            toml
        } else {
            toml.replacen("[users.prestashop]\npassword = \"prestashop\"\n", "", 1)
        };
        let proxy = start(&toml);
        match select_one(opts(&proxy, None, None)).await {
            Err(mysql_async::Error::Server(e)) => {
                assert_eq!((e.code, e.state.as_str()), (1045, "28000"), "{e:?}");
                assert!(
                    e.message.contains("Access denied for user 'prestashop'"),
                    "{e:?}"
                );
            }
            other => panic!("cleartext login with {tls_extra}{extra}: {other:?}"),
        }
        let (ok, _, err) = app_cli(&proxy, &["--skip-ssl"], "SELECT 1");
        assert!(!ok);
        assert!(err.contains("ERROR 1045 (28000)"), "{err}");
        assert_eq!(
            select_one(opts(&proxy, Some(&ca), None)).await.ok(),
            Some(1)
        );
        let (ok, _, err) = app_cli(&proxy, &strs(&verify_args(&ca)), "SELECT 1");
        assert!(ok, "{err}");
        assert_eq!(counters(&proxy), (2, 0));
        assert_eq!(
            proxy
                .context
                .metrics
                .login_failures
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_checked_when_a_ca_is_set() {
    let c = cluster();
    let _g = c.shared().await;
    let pki = Pki::new();
    let ca = pki.ca.ca.clone();
    let tls_extra = format!("ca = \"{}\"", ca.display());
    let proxy = start(&config_toml(&pki, &tls_extra, ""));
    let good = pki.ca.client("app");
    let stranger = TestCa::new(pki.path(), "stranger");
    let forged = stranger.client("app");

    assert_eq!(
        select_one(opts(&proxy, Some(&ca), Some(&good))).await.ok(),
        Some(1)
    );
    let no_cert = select_one(opts(&proxy, Some(&ca), None)).await;
    assert!(no_cert.is_err(), "a client without a certificate got in");
    let bad = select_one(opts(&proxy, Some(&ca), Some(&forged))).await;
    assert!(bad.is_err(), "a certificate from another CA got in");

    // The CLI and PHP presenting the good certificate.
    let mut args = verify_args(&ca);
    args.push(format!("--ssl-cert={}", good.cert.display()));
    args.push(format!("--ssl-key={}", good.key.display()));
    let (ok, _, err) = app_cli(&proxy, &strs(&args), "SELECT 1");
    assert!(ok, "{err}");
    let port = proxy.addr.port().to_string();
    let (ca_s, cert_s, key_s) = (
        ca.display().to_string(),
        good.cert.display().to_string(),
        good.key.display().to_string(),
    );
    let out = php::run(
        "tls.php",
        &[
            "127.0.0.1",
            &port,
            "prestashop",
            "prestashop",
            &ca_s,
            &cert_s,
            &key_s,
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(php::key_values(&out)["mysqli.one"], "1", "{out}");
    // PHP without a certificate is refused.
    assert!(php::run(
        "tls.php",
        &["127.0.0.1", &port, "prestashop", "prestashop", &ca_s]
    )
    .is_err());
    assert_eq!(counters(&proxy).0, 4);
}

/// Rows of an admin statement as column → value maps.
async fn admin_rows(
    conn: &mut Conn,
    sql: &str,
) -> Vec<std::collections::BTreeMap<String, Option<String>>> {
    let rows: Vec<mysql_async::Row> = match conn.query(sql).await {
        Ok(r) => r,
        Err(e) => panic!("{sql}: {e}"),
    };
    rows.into_iter()
        .map(|row| {
            let names: Vec<String> = row
                .columns_ref()
                .iter()
                .map(|c| c.name_str().into_owned())
                .collect();
            names
                .into_iter()
                .enumerate()
                .map(|(i, n)| (n, row.get::<Option<String>, _>(i).flatten()))
                .collect()
        })
        .collect()
}

async fn admin_conn(proxy: &Proxy, ca: Option<&Path>) -> Conn {
    let addr = proxy.admin_addr.expect("admin enabled");
    let url = format!("mysql://admin:{ADMIN_PASSWORD}@{addr}?prefer_socket=false");
    let mut b = OptsBuilder::from_opts(Opts::from_url(&url).expect("admin url"));
    if let Some(ca) = ca {
        b = b.ssl_opts(
            SslOpts::default()
                .with_root_certs(vec![ca.to_path_buf().into()])
                .with_disable_built_in_roots(true),
        );
    }
    match Conn::new(b).await {
        Ok(c) => c,
        Err(e) => panic!("admin connect: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_sessions_and_stats_tell_tls_from_cleartext() {
    let c = cluster();
    let _g = c.shared().await;
    let pki = Pki::new();
    let ca = pki.ca.ca.clone();
    let proxy = start(&config_toml(
        &pki,
        "min_version = \"1.3\"",
        &admin_section(None),
    ));
    let mut tls = Conn::new(opts(&proxy, Some(&ca), None)).await.expect("tls");
    let mut plain = Conn::new(opts(&proxy, None, None)).await.expect("plain");
    let tls_id = tls.id().to_string();
    let plain_id = plain.id().to_string();
    tls.query_drop("DO 1").await.expect("tls query");
    plain.query_drop("DO 1").await.expect("plain query");
    let mut admin = admin_conn(&proxy, None).await;
    let sessions = admin_rows(&mut admin, "SHOW SESSIONS").await;
    let by_id = |id: &str| {
        sessions
            .iter()
            .find(|r| r.get("id").cloned().flatten().as_deref() == Some(id))
            .unwrap_or_else(|| panic!("session {id} not in {sessions:?}"))
    };
    let t = by_id(&tls_id);
    assert_eq!(t["tls_version"].as_deref(), Some("TLSv1.3"), "{t:?}");
    assert!(
        t["tls_cipher"]
            .as_deref()
            .is_some_and(|c| c.starts_with("TLS13_")),
        "{t:?}"
    );
    let p = by_id(&plain_id);
    assert_eq!(
        (p["tls_version"].as_deref(), p["tls_cipher"].as_deref()),
        (None, None)
    );
    let stats = admin_rows(&mut admin, "SHOW STATS").await;
    let stat = |name: &str| {
        stats
            .iter()
            .find(|r| r["name"].as_deref() == Some(name))
            .and_then(|r| r["value"].clone())
            .unwrap_or_else(|| panic!("{name} not in {stats:?}"))
    };
    assert_eq!(stat("client_logins_tls"), "1");
    assert_eq!(stat("client_logins_cleartext"), "1");
    // min_version = 1.3: a client that offers only TLS 1.2 is refused.
    let mut args = verify_args(&ca);
    args.push("--tls-version=TLSv1.2".into());
    let (ok, _, _) = app_cli(&proxy, &strs(&args), "SELECT 1");
    assert!(!ok, "a TLS 1.2 client got past min_version = 1.3");
    let (ok, _, err) = app_cli(&proxy, &strs(&verify_args(&ca)), "SELECT 1");
    assert!(ok, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_without_a_restart() {
    let c = cluster();
    let _g = c.shared().await;
    let pki = Pki::new();
    let first_ca = pki.ca.ca.clone();
    let file = pki.path().join("sqlproxy.toml");
    std::fs::write(&file, config_toml(&pki, "", &admin_section(None))).expect("write config");
    let config = Config::load(&file, []).expect("config loads");
    let proxy = Proxy::start(config);
    let mut old = Conn::new(opts(&proxy, Some(&first_ca), None))
        .await
        .expect("a session on the first certificate");

    // The certificate is renewed by another CA, at the same paths.
    let renewed_ca = TestCa::new(pki.path(), "renewed");
    let renewed = renewed_ca.server("proxy-renewed");
    std::fs::copy(&renewed.cert, &pki.server.cert).expect("replace cert");
    std::fs::copy(&renewed.key, &pki.server.key).expect("replace key");
    let mut admin = admin_conn(&proxy, None).await;
    let report = admin_rows(&mut admin, "RELOAD CONFIG").await;
    let row = report
        .iter()
        .find(|r| r["key"].as_deref() == Some("mysql.tls (certificate)"))
        .unwrap_or_else(|| panic!("no certificate change in {report:?}"));
    assert_eq!(row["status"].as_deref(), Some("applied"), "{row:?}");
    assert_ne!(row["running"], row["file"]);

    // New clients get the new certificate; the open session keeps going.
    assert!(select_one(opts(&proxy, Some(&first_ca), None))
        .await
        .is_err());
    assert_eq!(
        select_one(opts(&proxy, Some(&renewed_ca.ca), None))
            .await
            .ok(),
        Some(1)
    );
    let still: Option<u32> = old.query_first("SELECT 5").await.expect("old session");
    assert_eq!(still, Some(5));

    // A broken certificate file: the reload is refused, naming the key,
    // and the running certificate stays.
    std::fs::write(&pki.server.cert, "not a certificate").expect("break cert");
    match admin.query_drop("RELOAD CONFIG").await {
        Err(mysql_async::Error::Server(e)) => {
            assert!(e.message.contains("mysql.tls.cert"), "{e:?}")
        }
        other => panic!("reload of a broken certificate: {other:?}"),
    }
    assert_eq!(
        select_one(opts(&proxy, Some(&renewed_ca.ca), None))
            .await
            .ok(),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_accepts_tls() {
    let c = cluster();
    let _g = c.shared().await;
    let pki = Pki::new();
    let admin_cert = pki.ca.server("admin");
    let proxy = start(&config_toml(&pki, "", &admin_section(Some(&admin_cert))));
    let port = proxy.admin_addr.expect("admin").port();
    let (ok, out, err) = cli(
        port,
        "admin",
        ADMIN_PASSWORD,
        &strs(&verify_args(&pki.ca.ca)),
        "SHOW STATS",
    );
    assert!(ok, "{err}");
    assert!(out.contains("client_logins_tls"), "{out}");
    let mut admin = admin_conn(&proxy, Some(&pki.ca.ca)).await;
    let rows = admin_rows(&mut admin, "SHOW SESSIONS").await;
    assert!(rows.is_empty(), "{rows:?}");
}

// ---- bad input on the TLS path ------------------------------------------

/// Reads the greeting and sends an SSL request (sequence 1).
async fn ssl_request(addr: std::net::SocketAddr) -> (TcpStream, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let greeting = raw::read_packet(&mut s).await.expect("greeting");
    let mut req = Vec::with_capacity(32);
    req.extend_from_slice(&(raw::CLIENT_CAPS | caps::SSL).to_le_bytes());
    req.extend_from_slice(&(1u32 << 24).to_le_bytes());
    req.push(45);
    req.extend_from_slice(&[0u8; 23]);
    raw::send_seq(&mut s, 1, &req).await;
    (s, greeting)
}

/// Reads until the proxy closes the connection; what it sent meanwhile.
async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    if tokio::time::timeout(SAFETY, read).await.is_err() {
        panic!("the proxy kept a bad handshake open");
    }
    got
}

/// A TLS login still works: one bad client never costs more than its own connection.
async fn still_serves(proxy: &Proxy, ca: &Path) {
    assert_eq!(select_one(opts(proxy, Some(ca), None)).await.ok(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_a_client_hello_costs_one_connection() {
    let c = cluster();
    let _g = c.shared().await;
    let pki = Pki::new();
    let proxy = start(&config_toml(&pki, "", ""));
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3][..],
        &[0u8; 4096][..],
    ] {
        let (mut s, _) = ssl_request(proxy.addr).await;
        s.write_all(garbage).await.expect("send garbage");
        until_closed(&mut s).await;
    }
    still_serves(&proxy, &pki.ca.ca).await;
    assert_eq!(counters(&proxy), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_mid_handshake_is_cut() {
    let c = cluster();
    let _g = c.shared().await;
    let pki = Pki::new();
    // The handshake is bounded by client_read_timeout.
    let toml = config_toml(&pki, "", "").replacen(
        "[mysql]\n",
        "[mysql]\nclient_read_timeout = \"1s\"\n",
        1,
    );
    let proxy = start(&toml);
    // Silent after the SSL request.
    let (mut silent, _) = ssl_request(proxy.addr).await;
    // Half a ClientHello: a real one from rustls, cut short.
    let (mut half, _) = ssl_request(proxy.addr).await;
    half.write_all(&client_hello_prefix()).await.expect("send");
    // Silent after the greeting (never asks for TLS at all).
    let mut mute = TcpStream::connect(proxy.addr).await.expect("connect");
    raw::read_packet(&mut mute).await.expect("greeting");
    for s in [&mut silent, &mut half, &mut mute] {
        until_closed(s).await;
    }
    still_serves(&proxy, &pki.ca.ca).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_login_that_stalls_is_cut_at_the_login_deadline() {
    let c = cluster();
    let _g = c.shared().await;
    let pki = Pki::new();
    // Every read may wait an hour: only the deadline on the whole login,
    // the switch to TLS included, can end these connections in time.
    let toml = config_toml(&pki, "", &admin_section(Some(&pki.server))).replacen(
        "[mysql]\n",
        "[mysql]\nconnect_timeout = \"1s\"\nclient_read_timeout = \"1h\"\n",
        1,
    );
    let proxy = start(&toml);
    // A TLS session that lives through it.
    let mut survivor = match Conn::new(opts(&proxy, Some(&pki.ca.ca), None)).await {
        Ok(c) => c,
        Err(e) => panic!("connect: {e}"),
    };
    for addr in [proxy.addr, proxy.admin_addr.expect("admin enabled")] {
        // Asks for TLS, then says nothing: not even a ClientHello.
        let (mut silent, _) = ssl_request(addr).await;
        until_closed(&mut silent).await;
    }
    let one: Option<u32> = match survivor.query_first("SELECT 1").await {
        Ok(v) => v,
        Err(e) => panic!("the other session broke: {e}"),
    };
    assert_eq!(one, Some(1));
    still_serves(&proxy, &pki.ca.ca).await;
}

/// The first bytes of a genuine TLS ClientHello (a record header and part
/// of the message), as rustls' client writes it.
fn client_hello_prefix() -> Vec<u8> {
    let roots = rustls::RootCertStore::empty();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("client");
    let mut out = Vec::new();
    conn.write_tls(&mut out).expect("client hello");
    assert!(out.len() > 40 && out[0] == 0x16, "not a handshake record");
    out.truncate(out.len() / 2);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssl_request_without_tls_configured_gets_an_error() {
    let c = cluster();
    let _g = c.shared().await;
    let proxy = Proxy::start(c.config());
    let (mut s, greeting) = ssl_request(proxy.addr).await;
    let hello = sqlproxy::protocol::handshake::parse_greeting(&greeting).expect("greeting");
    assert_eq!(
        hello.capabilities & caps::SSL,
        0,
        "TLS offered without a certificate"
    );
    let reply = until_closed(&mut s).await;
    // ERR 1835 (HY000) at sequence 2, then the connection closes.
    assert!(reply.len() > 9, "{reply:?}");
    assert_eq!(reply[3], 2, "{reply:?}");
    assert_eq!(reply[4], 0xff, "{reply:?}");
    assert_eq!(u16::from_le_bytes([reply[5], reply[6]]), 1835, "{reply:?}");
    assert_eq!(&reply[7..13], b"#HY000", "{reply:?}");
    let (ok, _, err) = app_cli(&proxy, &["--ssl", "--ssl-verify-server-cert"], "SELECT 1");
    assert!(!ok);
    assert!(err.contains("2026"), "{err}");
    assert_eq!(select_one(opts(&proxy, None, None)).await.ok(), Some(1));
}

#[test]
fn a_bad_certificate_path_stops_the_start_naming_the_key() {
    let pki = Pki::new();
    let missing: PathBuf = pki.path().join("missing.pem");
    let toml = format!(
        "[mysql]\nlisten = \"127.0.0.1:0\"\n[mysql.tls]\ncert = \"{}\"\nkey = \"{}\"\n\
         [nodes.a]\naddress = \"127.0.0.1:1\"\n[users.u]\npassword = \"p\"\n",
        missing.display(),
        pki.server.key.display()
    );
    let config = Config::from_toml_str(&toml, []).expect("parses");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let e = match runtime.block_on(sqlproxy::server::Server::bind(config)) {
        Ok(_) => panic!("started with a missing certificate"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("mysql.tls.cert"), "{e}");
}
