//! The typed configuration: figment layers TOML and `SQLPROXY_` environment
//! variables, serde rejects unknown keys, and [`Config::validate`] checks what
//! serde cannot (one master, distinct ports, rise/fall ≥ 1). Every error names
//! the key. Nodes and users are tables keyed by name because figment cannot
//! address array elements from the environment (`SQLPROXY_NODES__CN1__WEIGHT=5`).
//!
//! This file loads and validates; each section's types and defaults live in
//! their own file: `mysql.rs` (`[mysql]`, `[pool]`, `[routing]`, `[runtime]`),
//! `nodes.rs` (`[nodes]`, `[monitor]`, `[failover]`), `users.rs`, `admin.rs`
//! (`[admin]`, `[metrics]`), `http.rs` (`[http]`), `cache.rs` (`[cache]`) and
//! `coordination.rs` (`[coordination]`).
//! The config knows no other module: the services read their sections from here.

mod admin;
mod cache;
mod coordination;
pub mod http;
mod mysql;
mod nodes;
mod secret;
mod tls;
mod users;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use admin::{AdminConfig, MetricsConfig};
pub use cache::{CacheConfig, CacheConfigError, CacheRule};
pub use coordination::{CoordinationConfig, CoordinationConfigError};
pub use http::{
    BackendConfig, Balance, HealthCheck, HttpConfig, HttpConfigError, StatsConfig, StickyConfig,
    Timeouts,
};
pub use mysql::{
    Consistency, MysqlConfig, PoolConfig, RoutingConfig, RuntimeConfig, WAIT_TIMEOUT_MAX,
    WAIT_TIMEOUT_MIN,
};
pub use nodes::{split_host_port, FailoverConfig, MonitorConfig, NodeConfig};
pub use secret::Secret;
pub use tls::{HttpTls, ListenerTls, NodeTls, NodeTlsMode, SniCertificate, TlsVersion};
pub use users::{parse_native_hash, UserConfig};

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
        ConfigError::Load(Box::new(redact(e)))
    }
}

/// `Debug` for config sections that hold secrets: the section as its
/// serialized form with every secret key's value replaced, so `{:?}` in a
/// log line can never print a password.
pub(crate) fn debug_redacted<T: Serialize>(
    name: &str,
    value: &T,
    f: &mut std::fmt::Formatter<'_>,
) -> std::fmt::Result {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    if is_secret_key(k) && !v.is_null() {
                        *v = serde_json::Value::from("<redacted>");
                    } else {
                        walk(v);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(value).map_err(|_| std::fmt::Error)?;
    walk(&mut v);
    write!(f, "{name} {v}")
}

/// Keys whose values are secrets: never echoed in an error or a log.
fn is_secret_key(path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    last.contains("password") || last.contains("secret") || last.contains("token")
}

/// figment shows the offending value in a type error (`found unsigned int
/// `12345``); for a secret key that would print the password. The key and
/// what was expected are kept.
fn redact(e: figment::Error) -> figment::Error {
    use figment::error::{Actual, Kind};
    let hidden = || Actual::Other("a value (not shown: secret)".into());
    let mut errors: Vec<figment::Error> = e
        .into_iter()
        .map(|mut e| {
            if e.path.last().is_some_and(|k| is_secret_key(k)) {
                e.kind = match e.kind {
                    Kind::InvalidType(_, exp) => Kind::InvalidType(hidden(), exp),
                    Kind::InvalidValue(_, exp) => Kind::InvalidValue(hidden(), exp),
                    Kind::Unsupported(_) => Kind::Unsupported(hidden()),
                    Kind::Message(_) => Kind::Message("invalid value (not shown: secret)".into()),
                    other => other,
                };
            }
            e
        })
        .collect();
    // into_iter gives the newest first; chain rebuilds from the oldest.
    let mut chained = match errors.pop() {
        Some(oldest) => oldest,
        None => return figment::Error::from("invalid configuration".to_string()),
    };
    while let Some(newer) = errors.pop() {
        chained = chained.chain(newer);
    }
    chained
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
    pub http: Option<HttpConfig>,
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
    pub cache: CacheConfig,
    /// Threads of the async runtime.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Several instances agreeing on one writer through etcd; absent = this
    /// instance decides alone.
    #[serde(default)]
    pub coordination: Option<CoordinationConfig>,
    /// TLS towards the nodes (off unless set).
    #[serde(default)]
    pub node_tls: NodeTls,
}

/// serde's default for switches that are on unless a section turns them off.
fn default_on() -> bool {
    true
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
            // A secret is always a string: an all-digit password stays one.
            let value: figment::value::Value = if is_secret_key(&key) {
                figment::value::Value::from(v)
            } else {
                v.parse().unwrap_or(figment::value::Value::from(v.clone()))
            };
            fig = fig.merge((key, value));
        }
        let cfg: Config = fig.extract()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// How the proxy talks to node `name`: its own `tls`, else `node_tls.mode`.
    pub fn node_tls_mode(&self, name: &str) -> NodeTlsMode {
        self.nodes
            .get(name)
            .and_then(|n| n.tls)
            .unwrap_or(self.node_tls.mode)
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

#[cfg(test)]
mod secret_tests {
    use super::*;

    const BASE: &str = "[mysql]\nlisten = \"127.0.0.1:0\"\n[nodes.cn1]\naddress = \"127.0.0.1:3306\"\n[monitor]\nuser = \"m\"\npassword = \"pw-monitor\"\n";

    #[test]
    fn an_all_digit_password_from_the_environment_is_a_string() {
        let toml = format!("{BASE}[users.app]\npassword = \"x\"\n");
        let env = [(
            "SQLPROXY_USERS__APP__PASSWORD".to_string(),
            "987654321".to_string(),
        )];
        let cfg = Config::from_toml_str(&toml, env).expect("loads");
        assert_eq!(
            cfg.users["app"].password.as_ref().map(|p| p.expose()),
            Some("987654321")
        );
    }

    #[test]
    fn debug_output_never_shows_a_password() {
        let toml = format!(
            "{BASE}[users.app]\npassword = \"pw-user\"\n[admin]\npassword = \"pw-admin\"\n"
        );
        let cfg = Config::from_toml_str(&toml, []).expect("loads");
        let shown = format!("{cfg:?}");
        for secret in ["pw-user", "pw-admin", "pw-monitor"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("<redacted>") && shown.contains("127.0.0.1:3306"));
        let creds = crate::protocol::handshake::NativeSecret::from_password("pw-user");
        assert!(!format!("{creds:?}").contains(&format!("{:?}", creds.stage2)));
    }

    #[test]
    fn type_errors_on_secret_keys_do_not_show_the_value() {
        let toml = format!("{BASE}[users.app]\npassword = 987654321\n");
        let err = Config::from_toml_str(&toml, []).unwrap_err().to_string();
        assert!(!err.contains("987654321"), "{err}");
        assert!(err.contains("password"), "the key is named: {err}");
        // Other keys still show what was found.
        let toml =
            format!("{BASE}[users.app]\npassword = \"x\"\n[runtime]\nworker_threads = \"many\"\n");
        let err = Config::from_toml_str(&toml, []).unwrap_err().to_string();
        assert!(err.contains("many"), "{err}");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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

    /// `toml` is refused with an error naming `key`.
    #[track_caller]
    fn refused(toml: &str, key: &str) {
        let e = Config::from_toml_str(toml, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains(key), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        refused(
            &MINIMAL.replace("127.0.0.1:3308", "nowhere"),
            "nodes.cn2.address",
        );
        refused(&format!("{MINIMAL}\n[monitor]\nfall = 0\n"), "monitor.fall");
        refused(
            &MINIMAL.replace("password = \"secret\"", "password_hash = \"abc\""),
            "users.shop.password_hash",
        );
        refused(
            &format!("{MINIMAL}\n[runtime]\nworker_threads = 5000\n"),
            "runtime.worker_threads",
        );
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
    fn node_tls_needs_a_ca_and_a_key_with_its_cert() {
        refused(
            &format!("{MINIMAL}\n[node_tls]\nmode = \"verify-full\"\n"),
            "node_tls.ca",
        );
        let per_node = MINIMAL.replace("weight = 3", "weight = 3\ntls = \"verify-ca\"");
        refused(&per_node, "node_tls.ca");
        refused(
            &format!("{per_node}\n[node_tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\n"),
            "node_tls.key",
        );
        refused(
            &MINIMAL.replace("weight = 3", "weight = 3\ntls = \"sometimes\""),
            "nodes.cn2.tls",
        );
        let ok = format!("{per_node}\n[node_tls]\nca = \"ca.pem\"\n");
        let c = Config::from_toml_str(&ok, env(&[])).unwrap();
        assert_eq!(c.node_tls_mode("cn2"), NodeTlsMode::VerifyCa);
        assert_eq!(c.node_tls_mode("cn1"), NodeTlsMode::Off);
        refused(
            &format!("{MINIMAL}\n[mysql.tls]\ncert = \"c\"\nkey = \"k\"\nmin_version = \"1.1\"\n"),
            "min_version",
        );
    }

    #[test]
    fn native_hash_parses() {
        let h = parse_native_hash("*14E65567ABDB5135D0CFD9A70B3032C179A49EE7").unwrap();
        assert_eq!(h[0], 0x14);
        assert!(parse_native_hash("14E65567").is_err());
    }
}
