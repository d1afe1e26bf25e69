//! What operators plug into their monitoring: the Grafana dashboard
//! (`config/grafana/sqlproxy.json`) loads as JSON and names only metrics a
//! running proxy exports, and the Prometheus alert rules
//! (`config/prometheus/alerts.yml`) pass `promtool check rules` and fire as
//! `tests/fixtures/prometheus/alerts_test.yml` says (`promtool test rules`).

mod common;
mod http_common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{cluster, Proxy};
use http_common::Worker;
use mysql_async::prelude::Queryable;

/// How long the first health checks may take to show up in `/metrics`
/// before the test gives up (not a threshold on anything measured).
const FIRST_CHECKS: Duration = Duration::from_secs(60);

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Names of the samples in an exposition (`name{labels} value` or `name value`).
fn sample_names(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Every `sqlproxy_*` metric named in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\bsqlproxy_[a-z0-9_]+").unwrap();
    re.find_iter(text).map(|m| m.as_str().to_string()).collect()
}

/// Every PromQL string of the dashboard: panel targets, annotations, variables.
fn queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    ("query", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_names_only_metrics_the_proxy_exports() {
    let text = std::fs::read_to_string(repo("config/grafana/sqlproxy.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(dashboard["panels"]
        .as_array()
        .is_some_and(|p| !p.is_empty()));
    let mut exprs = Vec::new();
    queries(&dashboard, &mut exprs);
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(used.len() > 30, "the dashboard reads {used:?}");
    let alerts = std::fs::read_to_string(repo("config/prometheus/alerts.yml")).unwrap();
    let alerted = metric_names(&alerts);

    let c = cluster();
    let _g = c.shared().await;
    let worker = Worker::start("wa1").await;
    let cfg = format!(
        "{}\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n[cache]\nenabled = true\n\n\
         [http]\nlisten = \"127.0.0.1:0\"\nthreads = 1\n[http.health]\ninterval = \"200ms\"\n\
         [[http.backends]]\nname = \"wa1\"\naddress = \"{}\"\n",
        c.config_toml(),
        worker.addr
    );
    let config = sqlproxy::config::Config::from_toml_str(&cfg, []).unwrap();
    let proxy = Proxy::start(config);
    let metrics = proxy.metrics_addr.expect("[metrics] enabled");
    let http = proxy.http_addr.expect("[http] configured");

    // Traffic, so that per-route, cache and HTTP families have samples.
    let mut conn = common::connect(&proxy.url(None)).await;
    for _ in 0..3 {
        let _: Option<u32> = conn.query_first("SELECT 1").await.unwrap();
    }
    conn.disconnect().await.unwrap();
    let page = tokio::task::spawn_blocking(move || http_get(http, "/"))
        .await
        .unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");

    // The node families appear with the first checks.
    let deadline = Instant::now() + FIRST_CHECKS;
    let body = loop {
        let body = tokio::task::spawn_blocking(move || http_get(metrics, "/metrics"))
            .await
            .unwrap();
        let names = sample_names(&body);
        let checked = ["sqlproxy_node_read_only", "sqlproxy_node_semisync_master"]
            .iter()
            .all(|n| names.contains(*n));
        if checked || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // SHOW_METRICS=1 prints the exposition the names were checked against.
    if std::env::var_os("SHOW_METRICS").is_some() {
        eprintln!("{body}");
    }
    let exported = sample_names(&body);
    let missing: Vec<&String> = used.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "dashboard metrics not in /metrics: {missing:?}\n{body}"
    );
    let missing: Vec<&String> = alerted.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "alert metrics not in /metrics: {missing:?}\n{body}"
    );
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "promtool: {e} (Debian's `prometheus` package has it; scripts/test.sh installs it)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn alert_rules_pass_promtool_and_fire_as_expected() {
    let checked = promtool(&["check", "rules", "config/prometheus/alerts.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", "tests/fixtures/prometheus/alerts_test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    let rules = std::fs::read_to_string(repo("config/prometheus/alerts.yml")).unwrap();
    for alert in [
        "SqlproxyMasterDown",
        "SqlproxyNoWriter",
        "SqlproxyTwoWriters",
        "SqlproxyReplicationBroken",
        "SqlproxyReplicationLagging",
        "SqlproxySemiSyncOff",
        "SqlproxyMonitorDenied",
        "SqlproxyPoolExhausted",
        "SqlproxyNodeConnectionsExhausted",
        "SqlproxyHttpWorkerDown",
    ] {
        assert!(rules.contains(&format!("alert: {alert}\n")), "{alert}");
    }
}
