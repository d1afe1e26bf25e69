//! TLS sections: `[mysql.tls]` and `[admin.tls]` (a listener's certificate,
//! the CA its clients' certificates must chain to, the lowest version,
//! whether cleartext logins are refused), `[http.tls]` (HTTPS on the
//! balancer: a default certificate, more chosen by SNI, the redirecting
//! cleartext listener) and `[node_tls]` with the per-node
//! `tls` mode (how the proxy verifies the nodes it connects to). Paths only:
//! the files are read where the TLS configuration is built (`crate::tls`),
//! which names the key of a file that cannot be used.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The lowest TLS version a listener accepts. rustls has no TLS 1.0/1.1,
/// which MariaDB 10.11 disables by default too.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

/// A listener's TLS: `[mysql.tls]`, `[admin.tls]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates: when set, a client must present a certificate
    /// that chains to one of them (MariaDB's `ssl_ca` with `REQUIRE X509`).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Refuse logins that did not switch to TLS (MariaDB's
    /// `require_secure_transport`).
    #[serde(default)]
    pub require: bool,
}

/// `[http.tls]`: the balancer's listener speaks HTTPS (HTTP/2 or HTTP/1.1,
/// as ALPN decides).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpTls {
    /// PEM certificate chain, leaf first: served when the client names no
    /// host (SNI) or one no entry of `certificates` covers.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    #[serde(default)]
    pub min_version: TlsVersion,
    /// More certificates, each served to clients asking (SNI) for a name
    /// its subjectAltName lists (`*.shop.example` covers one label).
    #[serde(default)]
    pub certificates: Vec<SniCertificate>,
    /// A cleartext listener answering every request with a redirect to
    /// the same host and path over HTTPS; absent = none.
    #[serde(default)]
    pub redirect_from: Option<SocketAddr>,
}

/// One `[[http.tls.certificates]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SniCertificate {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How the proxy talks to a node.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NodeTlsMode {
    /// Cleartext.
    #[default]
    Off,
    /// TLS; the node's certificate must chain to `node_tls.ca` (any name).
    VerifyCa,
    /// TLS; the certificate must also name the node's host (its address).
    VerifyFull,
}

/// `[node_tls]`: TLS towards the nodes, for the data path, the monitor and
/// the failover controller. `mode` applies to every node without its own
/// `tls`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct NodeTls {
    #[serde(default)]
    pub mode: NodeTlsMode,
    /// PEM CA certificates the nodes' certificates must chain to; required
    /// once any node uses TLS.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Client certificate and key presented to the nodes (both or neither).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
}
