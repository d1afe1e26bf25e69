//! `[coordination]`: several sqlproxy instances in front of the same nodes
//! agree on one writer through etcd (docs/coordination.md). Absent, the
//! instance decides alone, as it always did.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[coordination]`: where etcd is and how this instance takes part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CoordinationConfig {
    /// etcd client endpoints, `host:port` (or `http://host:port`); every
    /// member of the etcd cluster, so losing one is not losing etcd.
    pub etcd: Vec<String>,
    /// Names this proxy cluster: every key lives under `/sqlproxy/<cluster>/`,
    /// so several shops can share one etcd.
    pub cluster: String,
    /// This instance's name among the others (SHOW COORDINATION, the holder
    /// named in errors). Unset: `<hostname>:<mysql.listen port>`.
    #[serde(default)]
    pub instance: Option<String>,
    /// The etcd lease behind the election and behind this instance's view:
    /// how long a dead instance keeps the election (and its say in a
    /// failover) before the others go on without it. Whole seconds.
    #[serde(default = "defaults::lease_ttl", with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// Bound on each etcd request (connect, read, transaction).
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// A `[coordination]` value that cannot work, with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinationConfigError {
    pub key: String,
    pub reason: String,
}

fn bad(key: &str, reason: impl Into<String>) -> CoordinationConfigError {
    CoordinationConfigError {
        key: format!("coordination.{key}"),
        reason: reason.into(),
    }
}

/// Letters, digits, '-', '_', '.' and ':': safe inside an etcd key path and
/// readable in an error message.
fn is_key_safe(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

impl CoordinationConfig {
    pub fn validate(&self) -> Result<(), CoordinationConfigError> {
        if self.etcd.is_empty() {
            return Err(bad("etcd", "list at least one etcd endpoint"));
        }
        for (i, e) in self.etcd.iter().enumerate() {
            let hostport = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"))
                .unwrap_or(e);
            super::split_host_port(hostport).map_err(|r| bad(&format!("etcd[{i}]"), r))?;
        }
        if !is_key_safe(&self.cluster) {
            return Err(bad(
                "cluster",
                "a non-empty name of letters, digits, '-', '_', '.' and ':'",
            ));
        }
        if let Some(name) = &self.instance {
            if !is_key_safe(name) {
                return Err(bad(
                    "instance",
                    "a non-empty name of letters, digits, '-', '_', '.' and ':'",
                ));
            }
        }
        if self.lease_ttl < Duration::from_secs(1) || self.lease_ttl.subsec_nanos() != 0 {
            // etcd leases count whole seconds.
            return Err(bad("lease_ttl", "whole seconds, at least 1s"));
        }
        if self.timeout.is_zero() {
            return Err(bad("timeout", "must be greater than 0"));
        }
        if self.timeout >= self.lease_ttl {
            // A request that may take the whole lease could see the lease
            // expire while it waits: the holder would act on a lost election.
            return Err(bad(
                "timeout",
                "must be shorter than coordination.lease_ttl",
            ));
        }
        Ok(())
    }

    /// The endpoints as the etcd client wants them (`http://host:port`).
    pub fn endpoints(&self) -> Vec<String> {
        self.etcd
            .iter()
            .map(|e| {
                if e.contains("://") {
                    e.clone()
                } else {
                    format!("http://{e}")
                }
            })
            .collect()
    }

    /// The lease TTL in etcd's unit.
    pub fn lease_seconds(&self) -> i64 {
        i64::try_from(self.lease_ttl.as_secs()).unwrap_or(i64::MAX)
    }
}

/// Defaults, named so that `config/ha.toml` and the code agree.
mod defaults {
    use std::time::Duration;
    /// A dead holder is replaced within 3 s, and a keepalive every second
    /// survives two lost ones.
    pub fn lease_ttl() -> Duration {
        Duration::from_secs(3)
    }
    /// An etcd on the same LAN answers in milliseconds; a second says it is
    /// not answering, well inside the lease.
    pub fn timeout() -> Duration {
        Duration::from_secs(1)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = "[mysql]\nlisten = \"127.0.0.1:0\"\n[nodes.cn1]\naddress = \"127.0.0.1:3306\"\n[users.u]\npassword = \"p\"\n";

    fn load(section: &str) -> Result<Config, String> {
        Config::from_toml_str(&format!("{BASE}{section}"), Vec::new()).map_err(|e| e.to_string())
    }

    #[test]
    fn absent_means_alone() {
        assert!(load("").unwrap().coordination.is_none());
    }

    #[test]
    fn defaults_and_endpoints() {
        let c = load("[coordination]\netcd = [\"127.0.0.1:2379\", \"http://10.0.0.2:2379\"]\ncluster = \"shop\"\n")
            .unwrap();
        let co = c.coordination.unwrap();
        assert_eq!(co.lease_ttl, std::time::Duration::from_secs(3));
        assert_eq!(co.lease_seconds(), 3);
        assert_eq!(
            co.endpoints(),
            ["http://127.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(co.instance, None);
    }

    #[test]
    fn the_commented_example_in_ha_toml_parses() {
        // config/ha.toml ships the section commented out; uncommented, it
        // must load as it stands.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ha.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let mut out = String::new();
        let mut inside = false;
        for line in text.lines() {
            if line.starts_with("# [coordination]") {
                inside = true;
            } else if inside && !line.starts_with("# ") {
                inside = false;
            }
            match line.strip_prefix("# ").filter(|_| inside) {
                Some(l) => out.push_str(l),
                None => out.push_str(line),
            }
            out.push('\n');
        }
        let c = Config::from_toml_str(&out, Vec::new()).unwrap();
        let co = c.coordination.expect("the example's section");
        assert_eq!(co.etcd.len(), 3);
        assert_eq!(co.cluster, "shop");
        assert_eq!(co.lease_ttl, std::time::Duration::from_secs(3));
    }

    #[test]
    fn every_bad_key_is_named() {
        let rows = [
            ("etcd = []\ncluster = \"s\"", "coordination.etcd"),
            (
                "etcd = [\"nowhere\"]\ncluster = \"s\"",
                "coordination.etcd[0]",
            ),
            (
                "etcd = [\"h:1\"]\ncluster = \"a/b\"",
                "coordination.cluster",
            ),
            ("etcd = [\"h:1\"]\ncluster = \"\"", "coordination.cluster"),
            (
                "etcd = [\"h:1\"]\ncluster = \"s\"\ninstance = \"x y\"",
                "coordination.instance",
            ),
            (
                "etcd = [\"h:1\"]\ncluster = \"s\"\nlease_ttl = \"1500ms\"",
                "coordination.lease_ttl",
            ),
            (
                "etcd = [\"h:1\"]\ncluster = \"s\"\nlease_ttl = \"0s\"",
                "coordination.lease_ttl",
            ),
            (
                "etcd = [\"h:1\"]\ncluster = \"s\"\ntimeout = \"3s\"",
                "coordination.timeout",
            ),
            (
                "etcd = [\"h:1\"]\ncluster = \"s\"\nleese_ttl = \"3s\"",
                "leese_ttl",
            ),
            ("cluster = \"s\"", "etcd"),
        ];
        for (body, key) in rows {
            let e = load(&format!("[coordination]\n{body}\n")).unwrap_err();
            assert!(e.contains(key), "{body}: {e}");
        }
    }
}
