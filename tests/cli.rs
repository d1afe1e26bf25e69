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

/// Starts the binary with `env`, stdout to a pipe, and returns what it
/// logged until it was ready and then stopped with SIGTERM.
fn run_logged(config: &str, env: &[(&str, &str)]) -> String {
    let f = write_config(config);
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(f.path())
        .env("SQLPROXY_LOG", "debug")
        .env_remove("NO_COLOR")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut out = String::new();
    loop {
        let line = lines
            .next()
            .expect("the proxy logs that it is ready")
            .unwrap();
        out.push_str(&line);
        out.push('\n');
        if line.contains("ready: listeners bound") {
            break;
        }
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    for line in lines {
        out.push_str(&line.unwrap());
        out.push('\n');
    }
    // How it exits is sigterm_lets_running_statements_finish's concern (the
    // signal may come before the handler is installed).
    child.wait().unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_a_pipe_have_no_colour_codes_and_json_is_one_object_per_line() {
    let c = cluster();
    let _g = c.shared().await;
    let text = run_logged(&c.config_toml(), &[]);
    let logged = text.lines().filter(|l| !l.starts_with("sqlproxy: "));
    assert!(logged.count() >= 2, "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a pipe:\n{text}");

    let json = run_logged(&c.config_toml(), &[("SQLPROXY_LOG_FORMAT", "json")]);
    let mut objects = 0;
    for line in json.lines().filter(|l| !l.starts_with("sqlproxy: ")) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
        objects += 1;
    }
    assert!(objects >= 2, "{json}");
    assert!(!json.contains('\u{1b}'));

    let out = Command::new(BIN)
        .args(["--check", "--config"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config/ha.toml"))
        .env("SQLPROXY_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SQLPROXY_LOG_FORMAT"));
}

#[test]
fn config_errors_never_echo_a_password() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/ha.toml");
    // An all-digit password from the environment is a password, not a number.
    let out = Command::new(BIN)
        .args(["--check", "--config", example])
        .env("SQLPROXY_USERS__PRESTASHOP__PASSWORD", "987654321")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A password of the wrong type in the file: the key is named, the value is not.
    let text = std::fs::read_to_string(example).unwrap();
    let (head, rest) = text.split_once("[users.prestashop]").unwrap();
    let rest = rest.replacen("password = \"", "password = 987654321 #\"", 1);
    let f = write_config(&format!("{head}[users.prestashop]{rest}"));
    let out = Command::new(BIN)
        .arg("--check")
        .arg("--config")
        .arg(f.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("password"), "{err}");
    assert!(!err.contains("987654321"), "{err}");
}
