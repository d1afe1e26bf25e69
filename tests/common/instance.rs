//! A sqlproxy instance as a process (the real binary), for tests where
//! several instances coordinate through etcd and one of them is killed
//! with SIGKILL. It listens on ports it chose itself (`127.0.0.1:0`); the
//! addresses are read from its output. Admin commands and statements go
//! through the `mariadb` client, so these tests need no async runtime.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::daemon::{wait_until, Daemon};
use super::{APP_PASSWORD, APP_USER};

const BIN: &str = env!("CARGO_BIN_EXE_sqlproxy");
pub const ADMIN_PASSWORD: &str = "coordination-test";

pub struct Instance {
    pub name: String,
    pub mysql: SocketAddr,
    pub admin: SocketAddr,
    pub daemon: Daemon,
}

/// One row of an admin command or a query, by column name.
pub type Row = BTreeMap<String, String>;

impl Instance {
    /// Starts `sqlproxy --config <dir>/<name>.toml` with `config` (which
    /// must enable `[admin]` on port 0 with [`ADMIN_PASSWORD`]).
    pub fn start(name: &str, config: &str, dir: &Path) -> Instance {
        let file = dir.join(format!("{name}.toml"));
        if let Err(e) = std::fs::write(&file, config) {
            panic!("write {}: {e}", file.display());
        }
        let log = dir.join(format!("{name}.log"));
        // A restarted instance appends to the same log: start from its end.
        let from = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
        let args = vec![
            "SQLPROXY_LOG=info".to_string(),
            BIN.to_string(),
            "--config".to_string(),
            file.display().to_string(),
        ];
        let daemon = Daemon::spawn(Path::new("/usr/bin/env"), &args, &log);
        let addr = |prefix: &str| -> SocketAddr {
            wait_until(&format!("`{prefix}` in {}", log.display()), || {
                let text = daemon.log_text();
                let line = text
                    .get(from..)?
                    .lines()
                    .find(|l| l.contains(prefix))?
                    .to_string();
                let at = line.find(prefix)? + prefix.len();
                line[at..].trim().parse().ok()
            })
        };
        let mysql = addr("sqlproxy: MySQL clients connect to ");
        let admin = addr("sqlproxy: admin SQL port on ");
        Instance {
            name: name.to_string(),
            mysql,
            admin,
            daemon,
        }
    }

    /// kill -9.
    pub fn kill(&mut self) {
        self.daemon.kill();
    }

    /// Rows of an admin command; panics on an error.
    pub fn admin(&self, sql: &str) -> Vec<Row> {
        match self.try_admin(sql) {
            Ok(rows) => rows,
            Err(e) => panic!("{} admin `{sql}`: {e}", self.name),
        }
    }

    pub fn try_admin(&self, sql: &str) -> Result<Vec<Row>, String> {
        client(self.admin, "admin", ADMIN_PASSWORD, None, sql)
    }

    /// Runs `sql` through the proxy as the application user.
    pub fn sql(&self, db: Option<&str>, sql: &str) -> Result<Vec<Row>, String> {
        client(self.mysql, APP_USER, APP_PASSWORD, db, sql)
    }

    /// SHOW COORDINATION as (item, name) → (value, detail).
    pub fn coordination(&self) -> BTreeMap<(String, String), (String, String)> {
        self.admin("SHOW COORDINATION")
            .into_iter()
            .map(|r| {
                let get = |k: &str| r.get(k).cloned().unwrap_or_default();
                ((get("item"), get("name")), (get("value"), get("detail")))
            })
            .collect()
    }

    /// The writer this instance follows: (node, epoch); `None` before one is known.
    pub fn writer(&self) -> Option<(String, u64)> {
        let c = self.try_admin("SHOW COORDINATION").ok()?;
        let row = c
            .iter()
            .find(|r| r.get("item").map(String::as_str) == Some("writer"))?;
        let node = row.get("name").filter(|n| *n != "NULL")?.clone();
        let epoch = row.get("value")?.strip_prefix("epoch ")?.parse().ok()?;
        Some((node, epoch))
    }

    /// Does this instance hold the election?
    pub fn holds(&self) -> bool {
        self.try_admin("SHOW COORDINATION").is_ok_and(|rows| {
            rows.iter().any(|r| {
                r.get("item").map(String::as_str) == Some("instance")
                    && r.get("value").map(String::as_str) == Some("holder")
            })
        })
    }

    /// A value of SHOW COORDINATION (`item`, first row with it).
    pub fn coordination_value(&self, item: &str) -> Option<String> {
        let rows = self.try_admin("SHOW COORDINATION").ok()?;
        rows.into_iter()
            .find(|r| r.get("item").map(String::as_str) == Some(item))
            .and_then(|r| r.get("value").cloned())
    }

    pub fn log(&self) -> PathBuf {
        self.daemon.log.clone()
    }
}

/// Runs `sql` with the `mariadb` client; rows by column name, or the error text.
pub fn client(
    addr: SocketAddr,
    user: &str,
    password: &str,
    db: Option<&str>,
    sql: &str,
) -> Result<Vec<Row>, String> {
    let mut cmd = Command::new("mariadb");
    cmd.args([
        "--protocol=tcp",
        &format!("-h{}", addr.ip()),
        &format!("-P{}", addr.port()),
        &format!("-u{user}"),
        &format!("-p{password}"),
        "--connect-timeout=10",
        "--batch",
        "--raw",
        "-e",
        sql,
    ]);
    if let Some(db) = db {
        cmd.arg(db);
    }
    let out = cmd.output().map_err(|e| format!("run mariadb: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Ok(Vec::new());
    };
    let cols: Vec<&str> = header.split('\t').collect();
    Ok(lines
        .map(|l| {
            cols.iter()
                .zip(l.split('\t'))
                .map(|(c, v)| (c.to_string(), v.to_string()))
                .collect()
        })
        .collect())
}
