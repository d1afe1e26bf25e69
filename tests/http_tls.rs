//! HTTPS on the HTTP balancer with real clients: curl over HTTP/1.1 and
//! HTTP/2 (ALPN) to a `php -S` worker that sees `X-Forwarded-Proto: https`;
//! the certificate chosen by SNI (curl's own name check, and `openssl
//! s_client` for the subject); the cleartext listener redirecting to
//! HTTPS; garbage and stalled handshakes costing one connection each;
//! RELOAD CONFIG serving a renewed certificate to new connections while an
//! open one keeps its own.
//!
//! The proxy runs whole (`Server`), with a MySQL node nobody answers on:
//! these tests need no MariaDB. Certificates are made at run time.

mod common;
mod http_common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::certs::{Pair, TestCa};
use common::Proxy;
use http_common::php::PhpWorker;
use mysql_async::prelude::Queryable;
use sqlproxy::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The name the default certificate is for, and the one SNI must pick
/// the second certificate for.
const SHOP: &str = "shop.test";
const OTHER: &str = "other.test";
const ADMIN_PASSWORD: &str = "adminpw";
const STATS_AUTH: &str = "admin:s3cret";

/// A bound on waits that must end (a connection the proxy cuts):
/// generous, never a measured threshold.
const SAFETY: Duration = Duration::from_secs(60);

struct Pki {
    dir: tempfile::TempDir,
    ca: TestCa,
    shop: Pair,
    other: Pair,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new(dir.path(), "https");
        let shop = ca.server_named("shop", SHOP);
        let other = ca.server_named("other", OTHER);
        Pki {
            dir,
            ca,
            shop,
            other,
        }
    }
}

/// A whole proxy: a dead MySQL node, the admin port, and the balancer with
/// `[http.tls]` (both certificates, a redirect listener) and the stats
/// page on its own listener's URI, in front of `worker`. `timeouts` are
/// `[http.timeouts]` lines.
fn config_toml(pki: &Pki, worker: &PhpWorker, timeouts: &str) -> String {
    format!(
        "[mysql]\nlisten = \"127.0.0.1:0\"\n\
         [nodes.a]\naddress = \"127.0.0.1:1\"\n\
         [users.u]\npassword = \"p\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\npassword = \"{ADMIN_PASSWORD}\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\nthreads = 2\n\
         [http.timeouts]\n{timeouts}\n\
         [http.health]\npath = \"/health\"\ninterval = \"1h\"\n\
         [http.stats]\nuri = \"/stats\"\nuser = \"admin\"\npassword = \"s3cret\"\n\
         [http.tls]\ncert = \"{}\"\nkey = \"{}\"\nredirect_from = \"127.0.0.1:0\"\n\
         [[http.tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n\
         [[http.backends]]\nname = \"{}\"\naddress = \"{}\"\n",
        pki.shop.cert.display(),
        pki.shop.key.display(),
        pki.other.cert.display(),
        pki.other.key.display(),
        worker.name,
        worker.addr,
    )
}

fn start(toml: &str) -> Proxy {
    match Config::from_toml_str(toml, []) {
        Ok(c) => Proxy::start(c),
        Err(e) => panic!("bad test config: {e}\n{toml}"),
    }
}

fn https_addr(proxy: &Proxy) -> SocketAddr {
    proxy.http_addr.expect("the balancer is bound")
}

/// What curl printed and whether it succeeded.
struct Curl {
    ok: bool,
    out: String,
    err: String,
}

/// curl trusting `ca`, with `host` resolved to the balancer.
fn curl(ca: &Path, host: &str, addr: SocketAddr, args: &[&str], path: &str) -> Curl {
    let out = Command::new("curl")
        .arg("-sS")
        .arg("--max-time")
        .arg(SAFETY.as_secs().to_string())
        .arg("--cacert")
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{host}:{}:127.0.0.1", addr.port()))
        .args(args)
        .arg(format!("https://{host}:{}{path}", addr.port()))
        .output()
        .expect("curl is installed");
    Curl {
        ok: out.status.success(),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A page through the balancer over `version` (`--http1.1`, `--http2`):
/// the body followed by a line with the HTTP version curl used.
fn page(ca: &Path, addr: SocketAddr, version: &str) -> (String, String) {
    let c = curl(
        ca,
        SHOP,
        addr,
        &[version, "-w", "\nversion=%{http_version}"],
        "/",
    );
    assert!(c.ok, "curl {version}: {}", c.err);
    let (body, v) = c.out.rsplit_once("\nversion=").expect("curl's -w line");
    (body.to_string(), v.trim().to_string())
}

/// The subject of the certificate the balancer serves for `servername`
/// (`None`: a ClientHello without SNI), as `openssl s_client` prints it.
fn served_subject(addr: SocketAddr, servername: Option<&str>) -> String {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .stdin(std::process::Stdio::null());
    match servername {
        Some(n) => cmd.arg("-servername").arg(n),
        None => cmd.arg("-noservername"),
    };
    let out = cmd.output().expect("openssl is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .unwrap_or_else(|| panic!("no subject in s_client output: {text}"))
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_speaks_http1_and_http2_and_the_worker_sees_https() {
    let pki = Pki::new();
    let worker = PhpWorker::start("wa1").await;
    let proxy = start(&config_toml(&pki, &worker, ""));
    let addr = https_addr(&proxy);
    for (flag, want) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let (body, version) = page(&pki.ca.ca, addr, flag);
        assert_eq!(version, want, "ALPN chose the protocol for {flag}");
        assert!(body.contains("Served by worker wa1"), "{body}");
        assert!(body.contains("scheme https"), "X-Forwarded-Proto: {body}");
        assert!(
            body.contains(&format!("host {SHOP}:{}", addr.port())),
            "{body}"
        );
    }
    // The stats page on the balancer's listener is served over the same TLS.
    let stats = curl(
        &pki.ca.ca,
        SHOP,
        addr,
        &["--http2", "-u", STATS_AUTH],
        "/stats.json",
    );
    assert!(stats.ok, "{}", stats.err);
    assert!(stats.out.contains("\"tls_failures\""), "{}", stats.out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_naming_the_host() {
    let pki = Pki::new();
    let worker = PhpWorker::start("wa1").await;
    let proxy = start(&config_toml(&pki, &worker, ""));
    let addr = https_addr(&proxy);
    // curl checks the name: each succeeds only with the right certificate.
    for host in [SHOP, OTHER] {
        let c = curl(&pki.ca.ca, host, addr, &["-o", "/dev/null"], "/health");
        assert!(c.ok, "{host}: {}", c.err);
    }
    assert!(served_subject(addr, Some(OTHER)).contains("other"));
    assert!(served_subject(addr, Some(SHOP)).contains("shop"));
    // No SNI, or a name no certificate has: the default one.
    assert!(served_subject(addr, None).contains("shop"));
    assert!(served_subject(addr, Some("unknown.test")).contains("shop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleartext_listener_redirects_to_https() {
    let pki = Pki::new();
    let worker = PhpWorker::start("wa1").await;
    let proxy = start(&config_toml(&pki, &worker, ""));
    let addr = https_addr(&proxy);
    let from = proxy.http_redirect_addr.expect("redirect listener");
    let redirect = |method: &str| {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-X", method])
            .args(["-w", "%{http_code} %{redirect_url}"])
            .arg("--resolve")
            .arg(format!("{SHOP}:{}:127.0.0.1", from.port()))
            .arg(format!("http://{SHOP}:{}/cart?id=7", from.port()))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let to = format!("https://{SHOP}:{}/cart?id=7", addr.port());
    assert_eq!(redirect("GET"), format!("301 {to}"));
    assert_eq!(redirect("POST"), format!("308 {to}"));
    // Followed, it lands on the worker over HTTPS.
    let out = Command::new("curl")
        .args(["-sS", "-L", "--cacert"])
        .arg(&pki.ca.ca)
        .arg("--resolve")
        .arg(format!("{SHOP}:{}:127.0.0.1", from.port()))
        .arg("--resolve")
        .arg(format!("{SHOP}:{}:127.0.0.1", addr.port()))
        .arg(format!("http://{SHOP}:{}/", from.port()))
        .output()
        .expect("curl");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("scheme https"), "{body}");
}

/// Reads until the balancer closes the connection.
async fn until_closed(s: &mut TcpStream) {
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    if tokio::time::timeout(SAFETY, read).await.is_err() {
        panic!("the balancer kept a bad handshake open");
    }
}

/// The first half of a genuine ClientHello, as rustls' client writes it.
fn client_hello_prefix() -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(SHOP).expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut out = Vec::new();
    conn.write_tls(&mut out).expect("client hello");
    assert!(out.len() > 40 && out[0] == 0x16, "not a handshake record");
    out.truncate(out.len() / 2);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_stalled_handshakes_cost_one_connection_each() {
    let pki = Pki::new();
    let worker = PhpWorker::start("wa1").await;
    // The handshake is bounded by the request header timeout.
    let proxy = start(&config_toml(&pki, &worker, "request_header = \"1s\""));
    let addr = https_addr(&proxy);
    // A stalled client, open while the others come and go: it must not
    // hold up its shard.
    let mut half = TcpStream::connect(addr).await.expect("connect");
    half.write_all(&client_hello_prefix()).await.expect("send");
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3][..],
        &[0u8; 4096][..],
    ] {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(garbage).await.expect("send garbage");
        until_closed(&mut s).await;
        let (body, _) = page(&pki.ca.ca, addr, "--http2");
        assert!(body.contains("wa1"), "{body}");
    }
    until_closed(&mut half).await;
    until_closed(&mut silent).await;
    let (body, _) = page(&pki.ca.ca, addr, "--http1.1");
    assert!(body.contains("wa1"), "{body}");
    // Counted once each (just after the close the client saw, so polled).
    let failures = || {
        let stats = curl(&pki.ca.ca, SHOP, addr, &["-u", STATS_AUTH], "/stats.json");
        let doc: serde_json::Value = serde_json::from_str(&stats.out).expect("stats json");
        doc["frontend"]["tls_failures"].as_u64()
    };
    http_common::wait_until("five TLS failures counted", || {
        let n = failures();
        async move { n == Some(5) }
    })
    .await;
}

/// A TLS client trusting only `ca`, as a kept-alive HTTP/1.1 connection.
async fn keepalive_connection(
    addr: SocketAddr,
    ca: &Path,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).expect("read CA");
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.expect("CA pem")).expect("CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from(SHOP).expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake with the first certificate")
}

/// One GET /health on a kept-alive connection; the response head and body.
async fn get_health(s: &mut tokio_rustls::client::TlsStream<TcpStream>) -> String {
    s.write_all(b"GET /health HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        .await
        .expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // php -S sends no length: the balancer chunks, and the last chunk ends it.
    while !got.ends_with(b"0\r\n\r\n") {
        let n = tokio::time::timeout(SAFETY, s.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_config_serves_a_renewed_certificate_to_new_connections() {
    let pki = Pki::new();
    let worker = PhpWorker::start("wa1").await;
    let file = pki.dir.path().join("sqlproxy.toml");
    // Keep-alive connections must outlive the reload however slow the box.
    let timeouts = "request_header = \"1h\"\nclient = \"1h\"";
    std::fs::write(&file, config_toml(&pki, &worker, timeouts)).expect("write config");
    let proxy = Proxy::start(Config::load(&file, []).expect("config loads"));
    let addr = https_addr(&proxy);
    let mut old = keepalive_connection(addr, &pki.ca.ca).await;
    assert!(get_health(&mut old).await.contains("200 OK"));

    // Renewed by another CA, at the same paths.
    let renewed_ca = TestCa::new(pki.dir.path(), "renewed");
    let renewed = renewed_ca.server_named("shop-renewed", SHOP);
    std::fs::copy(&renewed.cert, &pki.shop.cert).expect("replace cert");
    std::fs::copy(&renewed.key, &pki.shop.key).expect("replace key");
    let report = reload(&proxy).await;
    let row = report
        .iter()
        .find(|(key, _)| key == "http.tls (certificates)")
        .unwrap_or_else(|| panic!("no certificate change in {report:?}"));
    assert_eq!(row.1, "applied");

    let stale = curl(&pki.ca.ca, SHOP, addr, &["-o", "/dev/null"], "/health");
    assert!(
        !stale.ok,
        "the old certificate is still served to new clients"
    );
    let fresh = curl(&renewed_ca.ca, SHOP, addr, &["-o", "/dev/null"], "/health");
    assert!(fresh.ok, "{}", fresh.err);
    // The SNI certificate was not renewed and is still served.
    let other = curl(&pki.ca.ca, OTHER, addr, &["-o", "/dev/null"], "/health");
    assert!(other.ok, "{}", other.err);
    assert!(
        get_health(&mut old).await.contains("200 OK"),
        "the open connection keeps its session"
    );

    // A broken file: refused, naming the key, and the running one stays.
    std::fs::write(&pki.shop.cert, "not a certificate").expect("break cert");
    let mut admin = admin_conn(&proxy).await;
    match admin.query_drop("RELOAD CONFIG").await {
        Err(mysql_async::Error::Server(e)) => {
            assert!(e.message.contains("http.tls.cert"), "{e:?}")
        }
        other => panic!("reload of a broken certificate: {other:?}"),
    }
    let still = curl(&renewed_ca.ca, SHOP, addr, &["-o", "/dev/null"], "/health");
    assert!(still.ok, "{}", still.err);
}

async fn admin_conn(proxy: &Proxy) -> mysql_async::Conn {
    let url = format!(
        "mysql://admin:{ADMIN_PASSWORD}@{}?prefer_socket=false",
        proxy.admin_addr.expect("admin port")
    );
    mysql_async::Conn::from_url(url.as_str())
        .await
        .expect("admin login")
}

/// RELOAD CONFIG's rows as (key, status).
async fn reload(proxy: &Proxy) -> Vec<(String, String)> {
    let mut admin = admin_conn(proxy).await;
    admin
        .query_map("RELOAD CONFIG", |row: mysql_async::Row| {
            (
                row.get::<String, _>("key").unwrap_or_default(),
                row.get::<String, _>("status").unwrap_or_default(),
            )
        })
        .await
        .expect("RELOAD CONFIG")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stats_listener_of_its_own_can_serve_metrics_over_https() {
    let pki = Pki::new();
    let w = http_common::Worker::start("wa1").await;
    let sections = format!(
        "[stats]\nlisten = \"127.0.0.1:0\"\ntls = true\nuser = \"admin\"\npassword = \"s3cret\"\n\
         [tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        pki.shop.cert.display(),
        pki.shop.key.display(),
    );
    let bal = http_common::Balancer::start(http_common::config("", &sections, &[(&w, 1)])).await;
    let stats = bal.stats.expect("stats listener");
    let m = curl(&pki.ca.ca, SHOP, stats, &[], "/metrics");
    assert!(m.ok, "{}", m.err);
    assert!(
        m.out
            .contains("sqlproxy_http_tls_handshake_failures_total 0"),
        "{}",
        m.out
    );
    let page = curl(&pki.ca.ca, SHOP, stats, &["-u", STATS_AUTH], "/stats.json");
    assert!(page.out.contains("\"wa1\""), "{}", page.out);
    let cleartext = Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .arg(format!("http://127.0.0.1:{}/metrics", stats.port()))
        .output()
        .expect("curl");
    assert!(
        !cleartext.status.success(),
        "cleartext answered on a TLS stats listener"
    );
    // Served by the balancer too, over the same certificate.
    let c = curl(&pki.ca.ca, SHOP, bal.addr, &["-o", "/dev/null"], "/");
    assert!(c.ok, "{}", c.err);
}

#[test]
fn a_bad_sni_certificate_stops_the_start_naming_the_entry() {
    let pki = Pki::new();
    let missing: PathBuf = pki.dir.path().join("missing.pem");
    let toml = format!(
        "[mysql]\nlisten = \"127.0.0.1:0\"\n[nodes.a]\naddress = \"127.0.0.1:1\"\n[users.u]\npassword = \"p\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n[http.tls]\ncert = \"{}\"\nkey = \"{}\"\n\
         [[http.tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n\
         [[http.backends]]\nname = \"wa1\"\naddress = \"127.0.0.1:1\"\n",
        pki.shop.cert.display(),
        pki.shop.key.display(),
        missing.display(),
        pki.other.key.display(),
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
    assert!(e.contains("http.tls.certificates[0].cert"), "{e}");
}
