//! The binary as operators run it: `--check` names a bad key, environment
//! overrides apply, and SIGTERM lets a running statement finish before exit.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cluster;
use mysql_async::prelude::Queryable;

const BIN: &str = env!("CARGO_BIN_EXE_sqlproxy");

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}

#[test]
fn check_accepts_the_example_and_names_bad_keys() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/ha.toml");
    let out = Command::new(BIN)
        .args(["--check", "--config", example])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let typo = std::fs::read_to_string(example)
        .unwrap()
        .replacen("weight = 1", "wieght = 1", 1);
    let f = write_config(&typo);
    let out = Command::new(BIN)
        .arg("--check")
        .arg("--config")
        .arg(f.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("wieght") && err.contains("nodes.cn1"), "{err}");

    let out = Command::new(BIN)
        .args(["--check", "--config", example])
        .env("SQLPROXY_MONITOR__FALL", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("monitor.fall"), "{err}");

    let out = Command::new(BIN)
        .args(["--check", "--config", "/nonexistent/ha.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ha.toml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_statements_finish() {
    let c = cluster();
    let _g = c.shared().await;
    let f = write_config(&c.config_toml());
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(f.path())
        .env("SQLPROXY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("the proxy prints its address").unwrap();
        if let Some(a) = line.strip_prefix("sqlproxy: MySQL clients connect to ") {
            break a.to_string();
        }
    };
    let url = format!("mysql://prestashop:prestashop@{addr}?prefer_socket=false");
    let mut conn = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
    let running = tokio::spawn(async move {
        let v: Option<i64> = conn.query_first("SELECT SLEEP(2) + 40 + 2").await.unwrap();
        v
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    // The statement that was running completes with its result.
    assert_eq!(running.await.unwrap(), Some(42));
    // New clients are refused and the process exits by itself, successfully.
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(mysql_async::Conn::from_url(url.as_str()).await.is_err());
}
