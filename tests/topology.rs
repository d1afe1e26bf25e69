//! The health monitor against a real, throw-away `mariadbd`: the node comes
//! Up with what it reports about itself, goes Down when it is SIGKILLed and
//! comes back Up when it restarts. The fixture is deliberately minimal and
//! private to this file (one server, no replication); the shared cluster
//! harness lives in `tests/common`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlproxy::config::Config;
use sqlproxy::topology::{
    run_monitor, ChangeReason, MysqlProbe, NodeSsl, Probe, Topology, TopologySnapshot,
};
use tokio_util::sync::CancellationToken;

const SERVER_ID: u32 = 4242;
const MONITOR_USER: &str = "sqlproxy_monitor";
const MONITOR_PASSWORD: &str = "monitor-pw";
/// Not a timing assertion: only how long we wait before calling a hang a failure.
const PATIENCE: Duration = Duration::from_secs(90);

/// One `mariadbd` child on a loopback port, killed (SIGKILL) when dropped,
/// so a failing assertion never leaves it running.
struct MariaDb {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl MariaDb {
    /// Creates a data directory and starts the server on a free port.
    fn start() -> MariaDb {
        // Cargo creates this directory when it builds the test, not when it runs it.
        std::fs::create_dir_all(env!("CARGO_TARGET_TMPDIR")).expect("target tmp dir");
        let dir = tempfile::Builder::new()
            .prefix("topology-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temp dir");
        let out = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            // Our own tmpdir: bootstraps running at the same time in /tmp trip over each other.
            .arg(format!("--tmpdir={}", dir.path().display()))
            .args([
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ])
            .output()
            .expect("run mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut db = MariaDb {
            dir,
            port: 0,
            child: None,
        };
        // The port we found free may be taken before mariadbd binds it; retry.
        for _ in 0..5 {
            db.port = free_port();
            if db.spawn_and_wait() {
                return db;
            }
        }
        panic!("mariadbd did not start: {}", db.error_log());
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("s.sock")
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts mariadbd on `self.port` and waits until it answers; false if
    /// it exited (for example because the port was taken).
    fn spawn_and_wait(&mut self) -> bool {
        let d = self.dir.path();
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--tmpdir={}", d.display()))
            .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--server-id={SERVER_ID}"))
            .args(["--bind-address=127.0.0.1", "--user=root", "--skip-log-bin"])
            .args([
                "--read-only=1",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=16M",
            ])
            // Every statement the monitor sends, for the test to read.
            .arg("--general-log=1")
            .arg(format!(
                "--general-log-file={}",
                self.general_log_path().display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mariadbd");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if child.try_wait().ok().flatten().is_some() {
                    self.child = None;
                    return false;
                }
            }
            if self.try_sql("SELECT 1").is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("mariadbd never answered: {}", self.error_log());
    }

    /// Runs SQL as root over the unix socket with the `mariadb` client.
    fn try_sql(&self, sql: &str) -> Result<(), String> {
        let out = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["--user=root", "--batch", "-e", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn sql(&self, sql: &str) {
        if let Err(e) = self.try_sql(sql) {
            panic!("`{sql}` failed: {e}");
        }
    }

    /// SIGKILL: no shutdown, no goodbye to open connections.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already gone is fine; we only need it not running.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn_and_wait(),
            "mariadbd did not restart on port {}: {}",
            self.port,
            self.error_log()
        );
    }

    fn general_log_path(&self) -> PathBuf {
        self.dir.path().join("general.log")
    }

    /// The general log's lines (appended across restarts).
    fn general_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.general_log_path())
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn error_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn config(address: &str) -> Config {
    let toml = format!(
        r#"
[mysql]
listen = "127.0.0.1:0"
[nodes.db1]
address = "{address}"
[users.app]
password = "x"
[monitor]
user = "{MONITOR_USER}"
password = "{MONITOR_PASSWORD}"
interval = "100ms"
# Generous: a loaded test machine must not turn a slow answer into a failure.
timeout = "5s"
rise = 2
fall = 2
"#
    );
    Config::from_toml_str(&toml, Vec::new()).expect("test config")
}

/// Polls the topology until `ok` holds for a snapshot, which it returns.
async fn wait_for(
    topology: &Topology,
    what: &str,
    ok: impl Fn(&TopologySnapshot) -> bool,
) -> Arc<TopologySnapshot> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let snapshot = topology.snapshot();
        if ok(&snapshot) {
            return snapshot;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}; last snapshot: {snapshot:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_follows_a_real_node_down_and_up() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let mut db = MariaDb::start();
    db.sql(&format!(
        "CREATE USER '{MONITOR_USER}'@'127.0.0.1' IDENTIFIED BY '{MONITOR_PASSWORD}'; \
         GRANT SLAVE MONITOR ON *.* TO '{MONITOR_USER}'@'127.0.0.1'"
    ));

    // Wrong credentials: the node answered, so it is not "unreachable".
    let mut wrong = config(&db.address()).monitor;
    wrong.password = "not-the-password".into();
    let e = MysqlProbe::new(&db.address(), &wrong, NodeSsl::cleartext())
        .check()
        .await
        .expect_err("wrong password must fail");
    assert!(!e.is_down_evidence(), "{e}");
    assert_eq!(e.kind(), sqlproxy::topology::CheckErrorKind::Denied);
    assert!(e.to_string().contains("Access denied"), "{e}");

    let config = config(&db.address());
    let topology = Topology::new(&config);
    let id = topology.node_id("db1").expect("db1 configured");
    assert!(!topology.snapshot().is_up(id), "unchecked nodes start Down");
    let shutdown = CancellationToken::new();
    let monitor = tokio::spawn(run_monitor(topology.clone(), config, shutdown.clone()));

    // Up after the first successful check, with what the node says about itself.
    let s = wait_for(&topology, "node up", |s| s.is_up(id)).await;
    let node = &s.nodes[id];
    assert_eq!(node.state_reason, Some(ChangeReason::FirstCheckPassed));
    assert_eq!(node.server_id, Some(SERVER_ID));
    assert_eq!(node.read_only, Some(true));
    assert!(
        node.version
            .as_deref()
            .is_some_and(|v| v.contains("MariaDB")),
        "{node:?}"
    );
    assert_eq!(node.gtid_current_pos.as_deref(), Some(""));
    assert_eq!(node.replication, None, "not a replica");
    assert_eq!(node.last_error, None);
    assert!(node.last_check.is_some() && node.check_latency.is_some());
    // No master until the failover controller names one (it is not running here).
    assert_eq!(s.master, None);
    assert_eq!(s.pick_read(12345), Some(id));

    // A variable change shows up in a later snapshot.
    db.sql("SET GLOBAL read_only = 0");
    wait_for(&topology, "read_only off", |s| {
        s.nodes[id].read_only == Some(false)
    })
    .await;

    // Every check so far ran on one kept connection, and mysql_async sent
    // nothing of its own on connect (no `SELECT @@max_allowed_packet, …`).
    let log = db.general_log();
    // Lines read `[date time\t] <connection id> Query\t<sql>`.
    let check_connections: std::collections::BTreeSet<&str> = log
        .iter()
        .filter(|l| l.contains("Query\tSELECT @@read_only"))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "Query")?;
            words.get(at.checked_sub(1)?).copied()
        })
        .collect();
    assert_eq!(check_connections.len(), 1, "{log:#?}");
    let checks = log
        .iter()
        .filter(|l| l.contains("SELECT @@read_only"))
        .count();
    assert!(checks >= 2, "{log:#?}");
    // The log may have been read between the two statements of a check.
    let shows = log
        .iter()
        .filter(|l| l.contains("SHOW SLAVE STATUS"))
        .count();
    assert!(shows == checks || shows + 1 == checks, "{log:#?}");
    assert!(
        !log.iter()
            .any(|l| l.contains("@@max_allowed_packet") || l.contains("@@wait_timeout")),
        "{log:#?}"
    );

    // SIGKILL: Down after `fall` consecutive failed checks.
    db.kill();
    let s = wait_for(&topology, "node down", |s| !s.is_up(id)).await;
    let node = &s.nodes[id];
    assert!(
        matches!(
            &node.state_reason,
            Some(ChangeReason::Fall { failures: 2, .. })
        ),
        "{node:?}"
    );
    assert!(node.last_error.is_some(), "{node:?}");
    assert_eq!(
        node.server_id,
        Some(SERVER_ID),
        "last observed values are kept"
    );
    assert_eq!(s.pick_read(12345), None, "nothing to read from");

    // Restart (read_only=1 again from the command line): Up after `rise` successes.
    db.restart();
    let s = wait_for(&topology, "node up again", |s| s.is_up(id)).await;
    let node = &s.nodes[id];
    assert_eq!(node.state_reason, Some(ChangeReason::Rise { successes: 2 }));
    assert_eq!(node.server_id, Some(SERVER_ID));
    assert_eq!(node.read_only, Some(true));
    assert_eq!(node.last_error, None);

    shutdown.cancel();
    monitor.await.expect("monitor task");
    drop(db);
}
