//! The typed configuration: figment layers TOML and `SQLPROXY_` environment
//! variables, serde rejects unknown keys, and [`Config::validate`] checks what
//! serde cannot (one master, distinct ports, rise/fall ≥ 1). Every error names
//! the key. Nodes and users are tables keyed by name because figment cannot
//! address array elements from the environment (`SQLPROXY_NODES__CN1__WEIGHT=5`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Environment prefix; `SQLPROXY_MYSQL__LISTEN` overrides `[mysql] listen`.
pub const ENV_PREFIX: &str = "SQLPROXY_";

/// The password the shipped `config/ha.toml` (and `import-haproxy`) write
/// for the admin port and the stats page. Fine on loopback; refused on any
/// other address, so the example's password never guards a reachable port.
pub const EXAMPLE_PASSWORD: &str = "change-me";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Parsing or type errors reported by figment; its message names the key and source.
    #[error("{0}")]
    Load(Box<figment::Error>),
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        ConfigError::Load(Box::new(e))
    }
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub mysql: MysqlConfig,
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeConfig>,
    #[serde(default)]
    pub users: BTreeMap<String, UserConfig>,
    #[serde(default)]
    pub monitor: MonitorConfig,
    #[serde(default)]
    pub pool: PoolConfig,
    #[serde(default)]
    pub routing: RoutingConfig,
    #[serde(default)]
    pub failover: FailoverConfig,
    /// The HTTP balancer for the web workers; absent = not started.
    #[serde(default)]
    pub http: Option<crate::http::HttpConfig>,
    /// The admin SQL port; absent (or `enabled = false`) = not started.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// The Prometheus endpoint; absent (or `enabled = false`) = not started.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// The file this config was loaded from (admin `RELOAD CONFIG` re-reads it).
    #[serde(skip)]
    pub source: Option<std::path::PathBuf>,
    /// The result cache (off by default).
    #[serde(default)]
    pub cache: crate::cache::CacheConfig,
    /// Threads of the async runtime.
    #[serde(default)]
    pub runtime: RuntimeConfig,
}

/// `[runtime]`: how many threads serve clients, nodes and the HTTP balancer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Worker threads; 0 = one per CPU this process may use (HAProxy's `nbthread`).
    #[serde(default)]
    pub worker_threads: usize,
}

impl RuntimeConfig {
    /// The worker threads to start. Where the proxy shares a small machine with MariaDB
    /// or PHP, fewer threads than CPUs can relay more (docs/performance.md).
    pub fn threads(&self) -> usize {
        if self.worker_threads > 0 {
            return self.worker_threads;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// `[admin]`: the operators' SQL port (see docs/admin.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    #[serde(default = "defaults::admin_listen")]
    pub listen: SocketAddr,
    #[serde(default = "defaults::admin_user")]
    pub user: String,
    /// Required (non-empty) when the port is enabled.
    #[serde(default)]
    pub password: String,
}

/// `[metrics]`: the Prometheus text endpoint, `GET /metrics`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    #[serde(default = "defaults::metrics_listen")]
    pub listen: SocketAddr,
}

/// The client-facing MySQL listener.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    pub listen: SocketAddr,
    /// HAProxy's `maxconn`: clients beyond it get error 1040.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: u32,
    /// Largest command a client may send (bytes); larger gets error 1153.
    #[serde(default = "defaults::max_allowed_packet")]
    pub max_allowed_packet: u32,
    /// LOAD DATA LOCAL INFILE is refused unless enabled (the file is the client's, relayed).
    #[serde(default)]
    pub local_infile: bool,
    /// A client that sends part of a packet and then stalls is cut after this.
    #[serde(default = "defaults::client_read_timeout", with = "humantime_serde")]
    pub client_read_timeout: Duration,
    /// On SIGTERM, in-flight statements get this long to finish.
    #[serde(default = "defaults::shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Plain password: used to check clients and to log in to nodes.
    #[serde(default)]
    pub password: Option<String>,
    /// `*` + 40 hex digits (mysql_native_password hash, as in `mysql.user`).
    /// With only the hash, backend logins use what a client's successful
    /// login reveals (SHA1 of the password), as ProxySQL does.
    #[serde(default)]
    pub password_hash: Option<String>,
}

/// Health checks (HAProxy `inter`, `rise`, `fall`, `timeout check`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    #[serde(default = "defaults::monitor_user")]
    pub user: String,
    #[serde(default)]
    pub password: String,
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
            password: String::new(),
            interval: defaults::interval(),
            timeout: defaults::timeout(),
            rise: defaults::rise(),
            fall: defaults::fall(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Idle authenticated connections kept per node and connection kind.
    #[serde(default = "defaults::max_idle")]
    pub max_idle: usize,
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// A node that sends nothing for this long during a reply is given up on.
    #[serde(default = "defaults::read_timeout", with = "humantime_serde")]
    pub read_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_idle: defaults::max_idle(),
            connect_timeout: defaults::connect_timeout(),
            read_timeout: defaults::read_timeout(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// A session reads only from nodes that applied its own writes.
    #[default]
    Session,
    /// Any healthy node within the lag limit.
    Eventual,
    /// Every read goes to the master.
    Master,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Send reads to other nodes at all; off routes everything to the master.
    #[serde(default = "defaults::yes")]
    pub read_split: bool,
    #[serde(default)]
    pub consistency: Consistency,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            read_split: true,
            consistency: Consistency::default(),
        }
    }
}

/// Who may write, and what happens when the master fails (docs/failover.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FailoverConfig {
    /// Keep `read_only=ON` on every node but the master.
    #[serde(default = "defaults::yes")]
    pub manage_read_only: bool,
    /// Promote another node when the master fails `monitor.fall` checks.
    #[serde(default = "defaults::yes")]
    pub auto_failover: bool,
    /// Point a returning node's replication at the master (when
    /// `replication_user` is set) and restart stopped replication threads.
    #[serde(default = "defaults::yes")]
    pub auto_rejoin: bool,
    /// A replica further behind than this leaves read rotation.
    #[serde(default = "defaults::max_replication_lag", with = "humantime_serde")]
    pub max_replication_lag: Duration,
    /// Credentials for CHANGE MASTER TO when a node must be re-pointed.
    #[serde(default)]
    pub replication_user: Option<String>,
    #[serde(default)]
    pub replication_password: Option<String>,
    /// Bound on each phase of a planned switchover (holding writes, waiting
    /// for transactions, waiting for the new master to catch up).
    #[serde(default = "defaults::switchover_timeout", with = "humantime_serde")]
    pub switchover_timeout: Duration,
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
        }
    }
}

/// Defaults, named so that `config/ha.toml` and the code agree.
mod defaults {
    use std::net::SocketAddr;
    use std::time::Duration;
    /// HAProxy's seed used `maxconn 20000` for HTTP; for MySQL clients a
    /// few thousand is what one MariaDB pair serves comfortably.
    pub fn max_connections() -> u32 {
        4096
    }
    /// MariaDB's own default is 16 MiB; the proxy accepts up to 1 GiB (the
    /// protocol's maximum) so the node, not the proxy, decides.
    pub fn max_allowed_packet() -> u32 {
        1 << 30
    }
    /// MariaDB's `net_read_timeout` default.
    pub fn client_read_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn shutdown_timeout() -> Duration {
        Duration::from_secs(10)
    }
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
    pub fn max_idle() -> usize {
        64
    }
    /// HAProxy `timeout connect` in the seed.
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(2)
    }
    /// Long enough for any statement a shop runs; a node silent this long is dead.
    pub fn read_timeout() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn yes() -> bool {
        true
    }
    /// HAProxy-era shops tolerate a few seconds of replica lag for catalogue
    /// pages; read-your-writes covers the session's own writes anyway.
    pub fn max_replication_lag() -> Duration {
        Duration::from_secs(10)
    }
    pub fn switchover_timeout() -> Duration {
        Duration::from_secs(10)
    }
    /// ProxySQL's admin port, which operators already know.
    pub fn admin_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 6032))
    }
    pub fn admin_user() -> String {
        "admin".into()
    }
    /// mysqld_exporter's port: dashboards built for it look here.
    pub fn metrics_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9104))
    }
}

impl Config {
    /// Load from a TOML file plus the given environment pairs (`main` passes
    /// `std::env::vars()`; tests pass a map), then validate.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut config = Self::from_figment(Figment::new().merge(Toml::file_exact(path)), env)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Same as [`Config::load`] over TOML text.
    pub fn from_toml_str(
        toml: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Self::from_figment(Figment::new().merge(Toml::string(toml)), env)
    }

    fn from_figment(
        base: Figment,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        // figment's Env reads the process environment; we hand it only the
        // prefixed pairs we were given, as a TOML-ish dotted map.
        let mut fig = base;
        for (k, v) in env {
            let Some(rest) = k.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            // Every key lives in a section (`SECTION__KEY`); a variable without `__`
            // belongs to the tools around the proxy (SQLPROXY_LOG, SQLPROXY_BIN of the
            // scripts, SQLPROXY_TEST_LOG), not to the config.
            if !rest.contains("__") {
                continue;
            }
            let key = rest.to_ascii_lowercase().replace("__", ".");
            let value: figment::value::Value =
                v.parse().unwrap_or(figment::value::Value::from(v.clone()));
            fig = fig.merge((key, value));
        }
        let cfg: Config = fig.extract()?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.nodes.is_empty() {
            return Err(invalid("nodes", "at least one node is required"));
        }
        if self.mysql.max_connections == 0 {
            return Err(invalid("mysql.max_connections", "must be at least 1"));
        }
        if self.runtime.worker_threads > 1024 {
            return Err(invalid(
                "runtime.worker_threads",
                "at most 1024 (0 = automatic)",
            ));
        }
        if self.mysql.max_allowed_packet < 1024 {
            return Err(invalid("mysql.max_allowed_packet", "must be at least 1024"));
        }
        for (name, node) in &self.nodes {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(invalid(
                    format!("nodes.{name}"),
                    "node names use letters, digits, '-' and '_'",
                ));
            }
            if name.chars().any(|c| c.is_ascii_uppercase()) {
                return Err(invalid(
                    format!("nodes.{name}"),
                    "node names are lower-case (environment keys are lower-cased)",
                ));
            }
            split_host_port(&node.address)
                .map_err(|reason| invalid(format!("nodes.{name}.address"), reason))?;
        }
        let mut addrs: Vec<&str> = self.nodes.values().map(|n| n.address.as_str()).collect();
        addrs.sort_unstable();
        if addrs.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("nodes", "two nodes have the same address"));
        }
        if self.users.is_empty() {
            return Err(invalid("users", "at least one user is required"));
        }
        self.cache
            .validate()
            .map_err(|e| invalid(e.key, e.reason))?;
        for (name, user) in &self.users {
            let key = format!("users.{name}");
            match (&user.password, &user.password_hash) {
                (None, None) => {
                    return Err(invalid(key, "set `password` or `password_hash`"));
                }
                (_, Some(h)) => {
                    parse_native_hash(h).map_err(|r| invalid(format!("{key}.password_hash"), r))?;
                }
                _ => {}
            }
        }
        let m = &self.monitor;
        if m.rise == 0 {
            return Err(invalid("monitor.rise", "must be at least 1"));
        }
        if m.fall == 0 {
            return Err(invalid("monitor.fall", "must be at least 1"));
        }
        if m.interval.is_zero() {
            return Err(invalid("monitor.interval", "must be greater than 0"));
        }
        if m.timeout.is_zero() {
            return Err(invalid("monitor.timeout", "must be greater than 0"));
        }
        if self.pool.connect_timeout.is_zero() {
            return Err(invalid("pool.connect_timeout", "must be greater than 0"));
        }
        if self.pool.read_timeout.is_zero() {
            return Err(invalid("pool.read_timeout", "must be greater than 0"));
        }
        if let Some(http) = &self.http {
            http.validate().map_err(|e| invalid(e.key, e.reason))?;
        }
        if let Some(a) = self.admin.as_ref().filter(|a| a.enabled) {
            if a.user.is_empty() {
                return Err(invalid("admin.user", "must not be empty"));
            }
            if a.password.is_empty() {
                return Err(invalid(
                    "admin.password",
                    "the admin port needs a password (or set admin.enabled = false)",
                ));
            }
            if a.listen == self.mysql.listen && a.listen.port() != 0 {
                return Err(invalid("admin.listen", "same address as mysql.listen"));
            }
            if a.password == EXAMPLE_PASSWORD && !a.listen.ip().is_loopback() {
                return Err(invalid(
                    "admin.password",
                    "the example's password on a non-loopback address: set a real one",
                ));
            }
        }
        if let Some(s) = self.http.as_ref().and_then(|h| {
            let stats = h.stats.as_ref()?;
            Some((stats, stats.listen.unwrap_or(h.listen)))
        }) {
            if s.0.password == EXAMPLE_PASSWORD && !s.1.ip().is_loopback() {
                return Err(invalid(
                    "http.stats.password",
                    "the example's password on a non-loopback address: set a real one",
                ));
            }
        }
        if let (Some(a), Some(m)) = (&self.admin, &self.metrics) {
            if a.enabled && m.enabled && a.listen == m.listen && a.listen.port() != 0 {
                return Err(invalid("metrics.listen", "same address as admin.listen"));
            }
        }
        Ok(())
    }

    /// `[admin]` when the admin port is to be started.
    pub fn admin_enabled(&self) -> Option<&AdminConfig> {
        self.admin.as_ref().filter(|a| a.enabled)
    }

    /// `[metrics]` when the endpoint is to be started.
    pub fn metrics_enabled(&self) -> Option<&MetricsConfig> {
        self.metrics.as_ref().filter(|m| m.enabled)
    }

    /// Node names ordered by master preference (priority, then name).
    pub fn nodes_by_priority(&self) -> Vec<&str> {
        let mut v: Vec<(&String, &NodeConfig)> = self.nodes.iter().collect();
        v.sort_by(|a, b| a.1.priority.cmp(&b.1.priority).then(a.0.cmp(b.0)));
        v.into_iter().map(|(n, _)| n.as_str()).collect()
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

/// `*` + 40 hex digits → SHA1(SHA1(password)).
pub fn parse_native_hash(s: &str) -> Result<[u8; 20], String> {
    let hex = s
        .strip_prefix('*')
        .ok_or_else(|| "expected `*` followed by 40 hex digits".to_string())?;
    if hex.len() != 40 {
        return Err("expected `*` followed by 40 hex digits".into());
    }
    let mut out = [0u8; 20];
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        let txt = std::str::from_utf8(chunk).map_err(|_| "not hex".to_string())?;
        out[i] = u8::from_str_radix(txt, 16).map_err(|_| "not hex".to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[mysql]
listen = "127.0.0.1:3307"
[nodes.cn1]
address = "127.0.0.1:3306"
[nodes.cn2]
address = "127.0.0.1:3308"
weight = 3
[users.shop]
password = "secret"
"#;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::from_toml_str(MINIMAL, env(&[])).unwrap();
        assert_eq!(c.nodes["cn2"].weight, 3);
        assert_eq!(c.nodes["cn1"].weight, 1);
        assert_eq!(c.monitor.interval, Duration::from_secs(2));
        assert_eq!(c.monitor.rise, 3);
        assert_eq!(c.monitor.fall, 2);
        assert_eq!(c.routing.consistency, Consistency::Session);
    }

    #[test]
    fn env_overrides_nested_keys() {
        let c = Config::from_toml_str(
            MINIMAL,
            env(&[
                ("SQLPROXY_NODES__CN1__WEIGHT", "5"),
                ("SQLPROXY_MYSQL__LISTEN", "127.0.0.1:4000"),
                ("SQLPROXY_MONITOR__INTERVAL", "500ms"),
                ("SQLPROXY_CONFIG", "/ignored.toml"),
                ("SQLPROXY_BIN", "/ignored/too"),
                ("OTHER_VAR", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.nodes["cn1"].weight, 5);
        assert_eq!(c.mysql.listen.port(), 4000);
        assert_eq!(c.monitor.interval, Duration::from_millis(500));
    }

    #[test]
    fn unknown_key_is_named() {
        let bad = MINIMAL.replace("weight = 3", "wieght = 3");
        let e = Config::from_toml_str(&bad, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("wieght"), "{e}");
        assert!(e.contains("nodes.cn2"), "{e}");
    }

    #[test]
    fn bad_env_value_is_named() {
        let e = Config::from_toml_str(MINIMAL, env(&[("SQLPROXY_NODES__CN1__WEIGHT", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nodes.cn1.weight"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let bad = MINIMAL.replace("127.0.0.1:3308", "nowhere");
        let e = Config::from_toml_str(&bad, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nodes.cn2.address"), "{e}");
        let bad = format!("{MINIMAL}\n[monitor]\nfall = 0\n");
        let e = Config::from_toml_str(&bad, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("monitor.fall"), "{e}");
        let bad = MINIMAL.replace("password = \"secret\"", "password_hash = \"abc\"");
        let e = Config::from_toml_str(&bad, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("users.shop.password_hash"), "{e}");
        let bad = format!("{MINIMAL}\n[runtime]\nworker_threads = 5000\n");
        let e = Config::from_toml_str(&bad, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("runtime.worker_threads"), "{e}");
    }

    #[test]
    fn worker_threads_default_to_the_cpus() {
        let c = Config::from_toml_str(MINIMAL, env(&[])).unwrap();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(c.runtime.threads(), cpus);
        let c = Config::from_toml_str(MINIMAL, env(&[("SQLPROXY_RUNTIME__WORKER_THREADS", "1")]))
            .unwrap();
        assert_eq!(c.runtime.threads(), 1);
    }

    #[test]
    fn shipped_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ha.toml");
        let c = Config::load(&path, env(&[])).unwrap();
        assert!(c.nodes.contains_key("cn1") && c.nodes.contains_key("cn2"));
        assert_eq!(c.nodes_by_priority()[0], "cn1");
    }

    #[test]
    fn admin_and_metrics_sections() {
        let c = Config::from_toml_str(MINIMAL, env(&[])).unwrap();
        assert!(c.admin_enabled().is_none() && c.metrics_enabled().is_none());
        let with = format!("{MINIMAL}\n[admin]\npassword = \"pw\"\n[metrics]\n");
        let c = Config::from_toml_str(&with, env(&[])).unwrap();
        let a = c.admin_enabled().unwrap();
        assert_eq!(a.listen, "127.0.0.1:6032".parse().unwrap());
        assert_eq!(a.user, "admin");
        let m = c.metrics_enabled().unwrap();
        assert_eq!(m.listen, "127.0.0.1:9104".parse().unwrap());
        let e = Config::from_toml_str(&format!("{MINIMAL}\n[admin]\n"), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("admin.password"), "{e}");
        let off = format!("{MINIMAL}\n[admin]\nenabled = false\n[metrics]\nenabled = false\n");
        let c = Config::from_toml_str(&off, env(&[])).unwrap();
        assert!(c.admin_enabled().is_none() && c.metrics_enabled().is_none());
    }

    #[test]
    fn the_example_password_stays_on_loopback() {
        let admin = |listen: &str, pw: &str| {
            format!("{MINIMAL}\n[admin]\nlisten = \"{listen}\"\npassword = \"{pw}\"\n")
        };
        assert!(
            Config::from_toml_str(&admin("127.0.0.1:6032", EXAMPLE_PASSWORD), env(&[])).is_ok()
        );
        assert!(Config::from_toml_str(&admin("0.0.0.0:6032", "s3cret"), env(&[])).is_ok());
        let e = Config::from_toml_str(&admin("0.0.0.0:6032", EXAMPLE_PASSWORD), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("admin.password"), "{e}");
        // The shipped file moved to a public address by the environment.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ha.toml");
        let e = Config::load(
            &path,
            env(&[("SQLPROXY_HTTP__STATS__LISTEN", "0.0.0.0:8404")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("http.stats.password"), "{e}");
    }

    #[test]
    fn native_hash_parses() {
        let h = parse_native_hash("*14E65567ABDB5135D0CFD9A70B3032C179A49EE7").unwrap();
        assert_eq!(h[0], 0x14);
        assert!(parse_native_hash("14E65567").is_err());
    }
}
