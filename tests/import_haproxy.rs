//! `sqlproxy import-haproxy` on the HAProxy configurations operators have:
//! the seed's (a TCP listen with `option mysql-check` and the 256/1 weights,
//! an HTTP frontend/backend with checks, maxconn and a stats page), Debian's
//! default `/etc/haproxy/haproxy.cfg` (no proxies at all) and the bench's
//! (ports from the environment). Each output loads with `Config::load` and
//! passes `sqlproxy --check`; the mapping says what it meant.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sqlproxy::config::http::RetryOn;
use sqlproxy::config::Config;

const BIN: &str = env!("CARGO_BIN_EXE_sqlproxy");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn import(path: &Path) -> Output {
    Command::new(BIN)
        .arg("import-haproxy")
        .arg(path)
        .output()
        .expect("run sqlproxy import-haproxy")
}

/// Imports `path`, then checks the result both ways; returns the TOML and the config.
fn import_valid(path: &Path) -> (String, Config) {
    let out = import(path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "import failed: {stderr}");
    let toml = String::from_utf8(out.stdout).expect("UTF-8 output");
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(file.path(), &toml).unwrap();
    let config = Config::load(file.path(), [])
        .unwrap_or_else(|e| panic!("the imported config does not load: {e}\n{toml}"));
    let check = Command::new(BIN)
        .arg("--check")
        .arg("--config")
        .arg(file.path())
        .env_remove("SQLPROXY_LOG")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "sqlproxy --check: {}\n{toml}",
        String::from_utf8_lossy(&check.stderr)
    );
    (toml, config)
}

#[test]
fn the_seeds_haproxy_becomes_one_master_and_split_reads() {
    let (toml, c) = import_valid(&fixture("tests/fixtures/haproxy/seed.cfg"));

    // MySQL: the 256/1 weights become priorities, reads split evenly.
    assert_eq!(c.mysql.listen, "0.0.0.0:3306".parse().unwrap());
    assert_eq!(c.mysql.max_connections, 20000, "global maxconn");
    let (cn1, cn2) = (&c.nodes["cn1"], &c.nodes["cn2"]);
    assert_eq!(
        (cn1.address.as_str(), cn1.priority, cn1.weight),
        ("10.0.0.11:3306", 1, 1)
    );
    assert_eq!(
        (cn2.address.as_str(), cn2.priority, cn2.weight),
        ("10.0.0.12:3306", 2, 1)
    );
    assert_eq!(c.nodes_by_priority()[0], "cn1");
    assert!(c.routing.read_split);
    assert_eq!(
        c.monitor.user, "sqlproxy_monitor",
        "never the password-less check user"
    );
    assert_eq!(c.monitor.interval.as_secs(), 2);
    assert_eq!((c.monitor.rise, c.monitor.fall), (3, 2));
    assert_eq!(c.pool.connect_timeout.as_secs(), 5);
    assert_eq!(c.pool.read_timeout.as_secs(), 8 * 3600);
    assert!(c.users.contains_key("shop"));
    assert!(
        toml.contains("option mysql-check user haproxy_check post-41"),
        "{toml}"
    );

    // HTTP: frontend + backend, checks, maxconn, stats.
    let h = c.http.as_ref().expect("[http] imported");
    assert_eq!(h.listen, "0.0.0.0:80".parse().unwrap());
    assert_eq!(h.maxconn, 20000);
    assert_eq!(h.retries, 3);
    let names: Vec<(&str, &str, usize)> = h
        .backends
        .iter()
        .map(|b| (b.name.as_str(), b.address.as_str(), b.maxconn))
        .collect();
    assert_eq!(
        names,
        [("wa1", "10.0.0.21:80", 256), ("wa2", "10.0.0.22:80", 256)]
    );
    assert_eq!(
        (h.health.method.as_str(), h.health.path.as_str()),
        ("GET", "/")
    );
    assert_eq!(h.health.expect_status, 200);
    assert_eq!(h.health.interval.as_secs(), 2);
    assert_eq!((h.health.rise, h.health.fall), (2, 3));
    assert_eq!(h.timeouts.connect.as_secs(), 5);
    assert_eq!(h.timeouts.client.as_secs(), 60);
    assert_eq!(h.timeouts.queue.as_secs(), 5);
    let stats = h.stats.as_ref().expect("[http.stats] imported");
    assert_eq!(
        (
            stats.uri.as_str(),
            stats.user.as_str(),
            stats.password.expose()
        ),
        ("/haproxy", "admin", "secret")
    );
    assert_eq!(
        stats.listen, None,
        "on the balancer's listener, as HAProxy served it"
    );

    // The admin socket became the admin port, on loopback only.
    let admin = c.admin_enabled().expect("[admin] from `stats socket`");
    assert!(admin.listen.ip().is_loopback());
    assert!(c
        .metrics_enabled()
        .is_some_and(|m| m.listen.ip().is_loopback()));

    // What could not be mapped is listed with its line.
    for line in [
        "line 8: chroot /var/lib/haproxy",
        "line 24: errorfile 503 /etc/haproxy/errors/503.http",
        "line 29: option tcplog",
        "line 32: timeout client 8h",
        "line 45: stats refresh 10s",
    ] {
        assert!(
            toml.contains(&format!("#   {line} -- ")),
            "{line} not listed:\n{toml}"
        );
    }
}

#[test]
fn debians_default_haproxy_gives_placeholders_and_lists_every_setting() {
    let path = fixture("tests/fixtures/haproxy/debian-default.cfg");
    let (toml, c) = import_valid(&path);
    assert!(
        toml.contains("No TCP proxy with `option mysql-check` was found"),
        "{toml}"
    );
    assert!(c.http.is_none(), "Debian's default has no proxy section");
    assert_eq!(c.nodes.len(), 2);
    // Every setting line is either imported (the admin socket) or listed.
    let text = std::fs::read_to_string(&path).unwrap();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || matches!(line, "global" | "defaults") {
            continue;
        }
        let n = i + 1;
        let imported = line.starts_with("stats socket") && toml.contains(&format!("(line {n})"));
        let listed = toml.contains(&format!("#   line {n}: "));
        assert!(
            imported || listed,
            "line {n} `{line}` neither imported nor listed:\n{toml}"
        );
    }
}

#[test]
fn ports_from_the_environment_become_placeholders_that_validate() {
    let (toml, c) = import_valid(&fixture("benches/haproxy.cfg"));
    assert_eq!(c.nodes["cn1"].address, "cn1.invalid:3306");
    assert_eq!(c.nodes["cn2"].address, "cn2.invalid:3306");
    assert!(
        toml.contains("is not an address sqlproxy can listen on"),
        "{toml}"
    );
    assert_eq!(c.nodes_by_priority()[0], "cn1");
}

#[test]
fn a_broken_file_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    for (text, want) in [
        ("global\n  log \"/dev/log\n", "line 2: unterminated quote"),
        ("maxconn 10\n", "line 1: `maxconn` before any section"),
        (
            "listen db\n  server a 10.0.0.1:3306 weight heavy\n  option mysql-check\n",
            "line 2: `server` expects a number, found `heavy`",
        ),
    ] {
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, text).unwrap();
        let out = import(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(want), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    let out = import(&dir.path().join("missing.cfg"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.cfg"));
}

#[test]
fn a_stats_page_without_auth_is_listed_not_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(
        &path,
        "frontend www\n  bind :80\n  mode http\n  stats enable\n  default_backend web\n\
         backend web\n  mode http\n  server w1 10.0.0.1:80 check\n",
    )
    .unwrap();
    let (toml, c) = import_valid(&path);
    let h = c.http.expect("[http] imported");
    assert!(h.stats.is_none(), "{toml}");
    assert!(toml.contains("(no `stats auth`) -- "), "{toml}");
    assert_eq!(
        h.health.path, "/",
        "HAProxy checked TCP only; the comment says so"
    );
    assert!(toml.contains("HAProxy checked TCP connects only"), "{toml}");
}

#[test]
fn retry_on_keeps_the_failures_the_balancer_can_replay() {
    let seed = std::fs::read_to_string(fixture("tests/fixtures/haproxy/seed.cfg")).unwrap();
    let cfg = seed.replacen(
        "\tretries 3\n",
        "\tretries 3\n\tretry-on conn-failure empty-response 503\n",
        1,
    );
    assert_ne!(cfg, seed, "the seed's backend has `retries 3`");
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), &cfg).unwrap();
    let (toml, c) = import_valid(file.path());
    let h = c.http.expect("[http] imported");
    assert_eq!(
        h.retry_on,
        vec![RetryOn::ConnFailure, RetryOn::EmptyResponse]
    );
    assert!(toml.contains("no sqlproxy equivalent: 503"), "{toml}");
    let (_, unmapped) = toml
        .split_once("with no sqlproxy equivalent (not imported):")
        .expect("the unmapped list");
    assert!(
        !unmapped.contains("retry-on"),
        "listed as unmapped: {unmapped}"
    );
}
