//! The binary as systemd runs it (`Type=notify`, `ExecReload` = SIGHUP): READY=1
//! comes only once every node has been checked and the master read back,
//! and SIGHUP reloads the file exactly as the admin `RELOAD CONFIG` does —
//! live keys applied, the others logged as needing a restart, a broken file
//! refused with the running config kept.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::cluster;
use common::notify::Notify;

const BIN: &str = env!("CARGO_BIN_EXE_sqlproxy");
const ADMIN_PASSWORD: &str = "service-test";

/// How long to wait for a log line before giving up (a bound, not a measurement).
const PATIENCE: Duration = Duration::from_secs(60);

fn metrics(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The value of the sample `name` (with its labels), e.g. `sqlproxy_node_weight{node="cn2"}`.
fn sample(body: &str, name: &str) -> Option<String> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ').map(str::to_string))
}

/// The proxy's log, line by line, read on a thread so its pipe never fills.
struct Log {
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Log {
    fn of(child: &mut Child) -> Log {
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Log {
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// The first new line containing all of `parts`.
    fn wait_for(&mut self, parts: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if parts.iter().all(|p| line.contains(p)) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {parts:?}; the log:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

fn addr_after(log: &mut Log, prefix: &str) -> SocketAddr {
    let line = log.wait_for(&[prefix]);
    let text = line[line.find(prefix).unwrap_or(0) + prefix.len()..].trim();
    let text = text
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    text.parse().unwrap_or_else(|e| panic!("`{text}`: {e}"))
}

fn hup(child: &Child) {
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn ready_after_discovery_and_sighup_reloads_like_reload_config() {
    let c = cluster();
    let base = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\npassword = \"{ADMIN_PASSWORD}\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
        c.config_toml()
    );
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(file.path(), &base).unwrap();
    let mut notify = Notify::new();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(file.path())
        .env("NOTIFY_SOCKET", &notify.path)
        .env("SQLPROXY_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut log = Log::of(&mut child);
    let admin = addr_after(&mut log, "admin SQL port on ");
    let metrics_addr = addr_after(&mut log, "Prometheus metrics on ");

    // READY=1 only after discovery: by then every node has been checked.
    notify.wait_for("READY=1", &mut child);
    let body = metrics(metrics_addr);
    for node in ["cn1", "cn2"] {
        let checked = sample(
            &body,
            &format!("sqlproxy_node_read_only{{node=\"{node}\"}}"),
        );
        assert!(checked.is_some(), "{node} not checked at READY=1:\n{body}");
    }
    assert_eq!(
        sample(&body, "sqlproxy_node_master{node=\"cn1\"}").as_deref(),
        Some("1")
    );
    assert_eq!(
        sample(&body, "sqlproxy_node_weight{node=\"cn2\"}").as_deref(),
        Some("1")
    );

    // A live key and a key that needs a restart.
    let changed = base
        .replacen("weight = 1\npriority = 2", "weight = 5\npriority = 2", 1)
        .replace("[mysql]\n", "[mysql]\nmax_connections = 77\n");
    assert_ne!(changed, base);
    std::fs::write(file.path(), &changed).unwrap();
    hup(&child);
    notify.wait_for("RELOADING=1", &mut child);
    notify.wait_for("READY=1", &mut child);
    log.wait_for(&["SIGHUP: config reloaded", "changes=2", "restart_needed=1"]);
    for (key, status) in [
        ("nodes.cn2.weight", "applied"),
        ("mysql.max_connections", "restart needed"),
    ] {
        let logged = log.seen.iter().any(|l| {
            l.contains("SIGHUP: config key changed") && l.contains(key) && l.contains(status)
        });
        assert!(
            logged,
            "{key}: {status} not logged:\n{}",
            log.seen.join("\n")
        );
    }
    let body = metrics(metrics_addr);
    assert_eq!(
        sample(&body, "sqlproxy_node_weight{node=\"cn2\"}").as_deref(),
        Some("5")
    );

    // The admin port saw the same reload: its RELOAD CONFIG finds nothing new.
    let out = Command::new("mariadb")
        .args([
            "-h127.0.0.1",
            &format!("-P{}", admin.port()),
            "-uadmin",
            &format!("-p{ADMIN_PASSWORD}"),
            "--batch",
            "-e",
            "RELOAD CONFIG",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "",
        "nothing left to reload"
    );

    // A broken file changes nothing.
    std::fs::write(file.path(), changed.replacen("weight = 5", "wieght = 9", 1)).unwrap();
    hup(&child);
    log.wait_for(&["SIGHUP: config not reloaded", "wieght"]);
    let body = metrics(metrics_addr);
    assert_eq!(
        sample(&body, "sqlproxy_node_weight{node=\"cn2\"}").as_deref(),
        Some("5")
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    notify.wait_for("STOPPING=1", &mut child);
    assert!(child.wait().unwrap().success());
    assert!(
        !log.seen.iter().any(|l| l.contains(ADMIN_PASSWORD)),
        "the admin password in the log"
    );
}
