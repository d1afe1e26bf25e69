//! `Config::validate`: every check a loaded config must pass, each error
//! naming the key at fault.

use super::{
    invalid, mysql, parse_native_hash, split_host_port, Config, ConfigError, NodeTlsMode,
    EXAMPLE_PASSWORD,
};

impl Config {
    /// Checks what serde cannot: ranges, names, combinations of keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.nodes.is_empty() {
            return Err(invalid("nodes", "at least one node is required"));
        }
        if self.mysql.max_connections == 0 {
            return Err(invalid("mysql.max_connections", "must be at least 1"));
        }
        if self.mysql.connect_timeout.is_zero() {
            return Err(invalid("mysql.connect_timeout", "must be more than 0"));
        }
        for (key, t) in [
            ("mysql.wait_timeout", self.mysql.wait_timeout),
            ("mysql.interactive_timeout", self.mysql.interactive_timeout),
        ] {
            let secs = t.as_secs();
            if !(mysql::WAIT_TIMEOUT_MIN..=mysql::WAIT_TIMEOUT_MAX).contains(&secs) {
                return Err(invalid(key, "between 1s and 365 days (MariaDB's bounds)"));
            }
        }
        if self.mysql.max_connect_errors == 0 {
            return Err(invalid("mysql.max_connect_errors", "must be at least 1"));
        }
        if self.mysql.host_block_time.is_zero() {
            return Err(invalid("mysql.host_block_time", "must be greater than 0"));
        }
        if self.mysql.max_pending_logins == 0 {
            return Err(invalid("mysql.max_pending_logins", "must be at least 1"));
        }
        if self.mysql.max_pending_logins_per_host == 0 {
            return Err(invalid(
                "mysql.max_pending_logins_per_host",
                "must be at least 1",
            ));
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
        if self.mysql.max_allowed_packet > 1 << 30 {
            return Err(invalid(
                "mysql.max_allowed_packet",
                "at most 1073741824 (1 GiB, the protocol's maximum)",
            ));
        }
        if self.mysql.max_command_memory < 1 << 20 {
            return Err(invalid(
                "mysql.max_command_memory",
                "must be at least 1048576 (1 MiB)",
            ));
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
                    parse_native_hash(h.expose())
                        .map_err(|r| invalid(format!("{key}.password_hash"), r))?;
                }
                _ => {}
            }
        }
        self.validate_node_tls()?;
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
        self.pool.validate().map_err(|(k, r)| invalid(k, r))?;
        for (name, node) in &self.nodes {
            if node.max_connections == Some(0) {
                return Err(invalid(
                    format!("nodes.{name}.max_connections"),
                    "must be at least 1",
                ));
            }
        }
        if let Some(http) = &self.http {
            http.validate().map_err(|e| invalid(e.key, e.reason))?;
        }
        if let Some(co) = &self.coordination {
            co.validate().map_err(|e| invalid(e.key, e.reason))?;
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
            if a.password.expose() == EXAMPLE_PASSWORD && !a.listen.ip().is_loopback() {
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
            if s.0.password.expose() == EXAMPLE_PASSWORD && !s.1.ip().is_loopback() {
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

    /// TLS towards nodes needs a CA to verify them with, and a client
    /// certificate comes with its key.
    fn validate_node_tls(&self) -> Result<(), ConfigError> {
        let t = &self.node_tls;
        let any_tls = self
            .nodes
            .keys()
            .any(|n| self.node_tls_mode(n) != NodeTlsMode::Off);
        if any_tls && t.ca.is_none() {
            return Err(invalid(
                "node_tls.ca",
                "nodes use TLS (node_tls.mode or nodes.NAME.tls): set the CA that signed their certificates",
            ));
        }
        match (&t.cert, &t.key) {
            (Some(_), None) => Err(invalid(
                "node_tls.key",
                "node_tls.cert is set without its key",
            )),
            (None, Some(_)) => Err(invalid(
                "node_tls.cert",
                "node_tls.key is set without a certificate",
            )),
            _ => Ok(()),
        }
    }
}
