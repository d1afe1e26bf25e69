//! The cluster's sections: `[nodes.NAME]` (where each MariaDB node is and its
//! share of reads), `[monitor]` (health checks, in HAProxy's words) and
//! `[failover]` (who may write and what happens when the master fails).

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// `host:port` of the MariaDB/MySQL node.
    pub address: String,
    /// Share of reads (HAProxy `weight`); 0 keeps the node out of read rotation.
    #[serde(default = "defaults::weight")]
    pub weight: u32,
    /// Lower wins when choosing the master at start.
    #[serde(default = "defaults::priority")]
    pub priority: u32,
    /// TLS towards this node; unset = `node_tls.mode`.
    #[serde(default)]
    pub tls: Option<super::NodeTlsMode>,
    /// Connections the proxy opens to this node at most; unset =
    /// `pool.max_per_node`.
    #[serde(default)]
    pub max_connections: Option<u32>,
}

/// Health checks (HAProxy `inter`, `rise`, `fall`, `timeout check`).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    #[serde(default = "defaults::monitor_user")]
    pub user: String,
    #[serde(default)]
    pub password: super::Secret,
    #[serde(default = "defaults::interval", with = "humantime_serde")]
    pub interval: Duration,
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "defaults::rise")]
    pub rise: u32,
    #[serde(default = "defaults::fall")]
    pub fall: u32,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            user: defaults::monitor_user(),
            password: super::Secret::default(),
            interval: defaults::interval(),
            timeout: defaults::timeout(),
            rise: defaults::rise(),
            fall: defaults::fall(),
        }
    }
}

/// Who may write, and what happens when the master fails (docs/failover.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FailoverConfig {
    /// Keep `read_only=ON` on every node but the master.
    #[serde(default = "super::default_on")]
    pub manage_read_only: bool,
    /// Promote another node when the master fails `monitor.fall` checks.
    #[serde(default = "super::default_on")]
    pub auto_failover: bool,
    /// Point a returning node's replication at the master (when
    /// `replication_user` is set) and restart stopped replication threads.
    #[serde(default = "super::default_on")]
    pub auto_rejoin: bool,
    /// A replica further behind than this leaves read rotation.
    #[serde(default = "defaults::max_replication_lag", with = "humantime_serde")]
    pub max_replication_lag: Duration,
    /// Credentials for CHANGE MASTER TO when a node must be re-pointed.
    #[serde(default)]
    pub replication_user: Option<String>,
    #[serde(default)]
    pub replication_password: Option<super::Secret>,
    /// Bound on each phase of a planned switchover (holding writes, waiting
    /// for transactions, waiting for the new master to catch up).
    #[serde(default = "defaults::switchover_timeout", with = "humantime_serde")]
    pub switchover_timeout: Duration,
    /// How long a statement outside a transaction waits for a master when
    /// none is named (a failover is under way) or its master failed before
    /// any byte of the reply was sent, before the client gets an error.
    #[serde(default = "defaults::hold", with = "humantime_serde")]
    pub hold: Duration,
    /// Keep semi-synchronous replication on at the master whenever a replica
    /// is connected to acknowledge, and off while none is (a commit would
    /// otherwise wait `rpl_semi_sync_master_timeout` each time).
    #[serde(default = "super::default_on")]
    pub manage_semi_sync: bool,
    /// How long a master cut off from every proxy takes to fence itself
    /// (the `self_fence` event of scripts/cluster-init.sql). A master that
    /// stops answering without refusing connections (a partition, a dead
    /// host) is replaced only once this has passed since its last good
    /// check; "0s" says the nodes do not fence themselves, and then such a
    /// master is never failed over automatically (it may still be writable).
    #[serde(default = "defaults::fence_lease", with = "humantime_serde")]
    pub fence_lease: Duration,
    /// A former master that returns holding transactions the new master
    /// lacks has them undone and rejoins, when this process can prove no
    /// client got an OK for any of them (topology/failover/rewind.rs);
    /// otherwise, or when off, it stays diverged for repair by hand.
    #[serde(default = "super::default_on")]
    pub rewind_unacknowledged: bool,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            manage_read_only: true,
            auto_failover: true,
            auto_rejoin: true,
            max_replication_lag: defaults::max_replication_lag(),
            replication_user: None,
            replication_password: None,
            switchover_timeout: defaults::switchover_timeout(),
            hold: defaults::hold(),
            manage_semi_sync: true,
            fence_lease: defaults::fence_lease(),
            rewind_unacknowledged: true,
        }
    }
}

/// `host:port` → (host, port), with a reason on error.
pub fn split_host_port(addr: &str) -> Result<(String, u16), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("`{addr}` is not host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("`{addr}` has no host"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{addr}` has a bad port"))?;
    if port == 0 {
        return Err(format!("`{addr}` has port 0"));
    }
    Ok((host.to_string(), port))
}

/// Defaults, named so that `config/ha.toml` and the code agree.
mod defaults {
    use std::time::Duration;
    pub fn weight() -> u32 {
        1
    }
    pub fn priority() -> u32 {
        100
    }
    pub fn monitor_user() -> String {
        "sqlproxy_monitor".into()
    }
    /// The seed's HAProxy: `inter 2s rise 3 fall 2`.
    pub fn interval() -> Duration {
        Duration::from_secs(2)
    }
    /// HAProxy's `timeout check` defaults to `inter`: a node busy for a
    /// second under load is not dead (1 s made checks flap under sysbench).
    pub fn timeout() -> Duration {
        Duration::from_secs(2)
    }
    pub fn rise() -> u32 {
        3
    }
    pub fn fall() -> u32 {
        2
    }
    /// HAProxy-era shops tolerate a few seconds of replica lag for catalogue
    /// pages; read-your-writes covers the session's own writes anyway.
    pub fn max_replication_lag() -> Duration {
        Duration::from_secs(10)
    }
    pub fn switchover_timeout() -> Duration {
        Duration::from_secs(10)
    }
    /// Longer than a failover takes (a kill -9'd master is replaced in well
    /// under two seconds), short enough that a client's own timeout (PDO's
    /// default is 30 s) is not the one that fires.
    pub fn hold() -> Duration {
        Duration::from_secs(5)
    }
    /// The event fences a node whose monitor connections have all been idle
    /// for 4 s (it runs every second): 6 s leaves a margin.
    pub fn fence_lease() -> Duration {
        Duration::from_secs(6)
    }
}

/// Redacted: the password never reaches a log line.
impl std::fmt::Debug for MonitorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::debug_redacted("MonitorConfig", self, f)
    }
}
