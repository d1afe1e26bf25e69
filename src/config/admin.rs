//! The operators' endpoints: `[admin]` (the admin SQL port, docs/admin.md) and
//! `[metrics]` (the Prometheus endpoint). Both are off unless their section is present.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `[admin]`: the operators' SQL port (see docs/admin.md).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "super::default_on")]
    pub enabled: bool,
    #[serde(default = "defaults::admin_listen")]
    pub listen: SocketAddr,
    #[serde(default = "defaults::admin_user")]
    pub user: String,
    /// Required (non-empty) when the port is enabled.
    #[serde(default)]
    pub password: super::Secret,
    /// `[admin.tls]`: the admin port's own certificate (same keys as `[mysql.tls]`).
    #[serde(default)]
    pub tls: Option<super::ListenerTls>,
}

/// `[metrics]`: the Prometheus text endpoint, `GET /metrics`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default = "super::default_on")]
    pub enabled: bool,
    #[serde(default = "defaults::metrics_listen")]
    pub listen: SocketAddr,
}

/// Defaults, named so that `config/ha.toml` and the code agree.
mod defaults {
    use std::net::SocketAddr;
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

/// Redacted: the password never reaches a log line.
impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::debug_redacted("AdminConfig", self, f)
    }
}
