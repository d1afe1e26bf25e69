//! A network partition on one loopback port: nftables drops every TCP
//! packet to or from the port, both ways, until the guard drops. Unlike a
//! closed port, nothing answers: a connect and a statement in flight hang
//! until their own timeouts, as behind a dead switch, and established
//! connections resume when the partition heals. Put a relay
//! (`common::relay`) on the port in front of a node and give its address to
//! one sqlproxy instance only: that instance alone is partitioned from the
//! node. Needs root and `nft`.
//!
//! The rule's table is named after the test process's pid. A small `sh`
//! whose stdin is a pipe from the test process deletes it when that pipe
//! closes, so a test that panics or dies leaves nothing behind; tables of a
//! process that was SIGKILLed with its janitor are removed at the next start.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};

use super::HarnessError;

const PREFIX: &str = "sqpart";

/// Packets on one port dropped until this is dropped.
pub struct Partition {
    table: String,
    janitor: Option<(Child, ChildStdin)>,
}

fn nft(args: &[&str]) -> Result<String, HarnessError> {
    let out = Command::new("nft")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(HarnessError::io("run nft"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(HarnessError::Command {
        command: format!("nft {}", args.join(" ")),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Deletes `sqpart<pid>p<port>` tables whose process is gone.
fn remove_stale() {
    let Ok(list) = nft(&["list", "tables", "inet"]) else {
        return;
    };
    for line in list.lines() {
        let Some(name) = line.split_whitespace().nth(2) else {
            continue;
        };
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|r| r.split('p').next()) else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            // Best effort: a stale table only matches a port nobody uses.
            nft(&["delete", "table", "inet", name]).ok();
        }
    }
}

impl Partition {
    /// From now on, TCP packets to or from loopback port `port` are dropped.
    pub fn drop_port(port: u16) -> Result<Partition, HarnessError> {
        remove_stale();
        let table = format!("{PREFIX}{}p{port}", std::process::id());
        let janitor = janitor(&table)?;
        nft(&["add", "table", "inet", &table])?;
        // From here on, dropping the guard deletes whatever was added.
        let partition = Partition {
            table: table.clone(),
            janitor: Some(janitor),
        };
        // Loopback traffic leaves through the output hook; both directions
        // pass it, so one chain drops both.
        let chain = "{ type filter hook output priority 0; }";
        nft(&["add", "chain", "inet", &table, "out", chain])?;
        for side in ["dport", "sport"] {
            let port = port.to_string();
            nft(&[
                "add", "rule", "inet", &table, "out", "tcp", side, &port, "drop",
            ])?;
        }
        Ok(partition)
    }

    /// Packets flow again.
    pub fn heal(&mut self) {
        if let Some((mut child, stdin)) = self.janitor.take() {
            if let Err(e) = nft(&["delete", "table", "inet", &self.table]) {
                eprintln!("could not remove the partition {}: {e}", self.table);
            }
            drop(stdin);
            child.wait().ok();
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.heal();
    }
}

/// `sh` that deletes `table` once its stdin closes.
fn janitor(table: &str) -> Result<(Child, ChildStdin), HarnessError> {
    let script = format!(
        "trap '' INT HUP TERM; cat >/dev/null; nft delete table inet {table} 2>/dev/null; exit 0"
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(HarnessError::io("spawn the partition janitor"))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| HarnessError::Usage("partition janitor without stdin".into()))?;
    stdin
        .flush()
        .map_err(HarnessError::io("partition janitor pipe"))?;
    Ok((child, stdin))
}
