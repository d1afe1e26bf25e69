//! mysql_async's TLS options for the monitor's and the failover
//! controller's connections to a node (`node_tls`, the node's own `tls`).
//!
//! `verify-ca` (the chain checked, not the name) is worked around here:
//! mysql_async 0.37.1 skips the name check only when rustls' error text
//! contains "NotValidForName", which rustls 0.23 no longer prints, so it
//! refuses every certificate that does not name the node's address. Instead
//! a handshake of our own, with the data path's verify-ca connector (the
//! chain checked against `node_tls.ca`), reads a name the certificate holds,
//! and mysql_async then checks the chain and that name. It accepts what
//! verify-ca accepts, a certificate that chains to the CA, and nothing else.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use mysql_async::{ClientIdentity, SslOpts};
use tokio::net::TcpStream;

use crate::config::{Config, NodeTlsMode};
use crate::net::PacketIo;
use crate::protocol::{caps, handshake};
use crate::tls::NodeTlsTarget;

/// utf8mb4_general_ci, for the SSL request; no statement is ever sent.
const COLLATION: u8 = 45;

/// Why the name of a `verify-ca` node's certificate could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    /// The node could not be reached or said nothing usable: a fresh TCP
    /// connection tells what that means, as for any failed check.
    #[error("{0}")]
    Network(String),
    /// The node answered, and TLS with it failed: no TLS offered, a
    /// certificate that does not chain to the CA, or one that names no host.
    #[error("{0}")]
    Tls(String),
}

/// One node's TLS for mysql_async connections.
pub struct NodeSsl {
    /// None: the node is reached in cleartext.
    opts: Option<SslOpts>,
    /// verify-ca only: where the certificate's name is read, and how.
    learn: Option<(String, NodeTlsTarget)>,
    /// The name last read; shared by `&self` users (never held across an
    /// await).
    learned: Mutex<Option<String>>,
}

impl NodeSsl {
    /// One per node of `config`, in config order (the topology's NodeId).
    pub fn for_nodes(config: &Config) -> Vec<NodeSsl> {
        // The data path built the same targets at start and refused a bad
        // CA there; without them verify-ca only fails closed.
        let mut targets = crate::tls::node_targets(config)
            .unwrap_or_default()
            .into_iter();
        config
            .nodes
            .iter()
            .map(|(name, node)| {
                let target = targets.next().flatten();
                let mode = config.node_tls_mode(name);
                NodeSsl {
                    opts: ssl_opts(config, mode),
                    learn: (mode == NodeTlsMode::VerifyCa)
                        .then(|| target.map(|t| (node.address.clone(), t)))
                        .flatten(),
                    learned: Mutex::new(None),
                }
            })
            .collect()
    }

    /// A node reached in cleartext.
    pub fn cleartext() -> NodeSsl {
        NodeSsl {
            opts: None,
            learn: None,
            learned: Mutex::new(None),
        }
    }

    /// The options for the next connection; for verify-ca, learns the
    /// certificate's name first when it is not known yet.
    pub async fn opts(&self, timeout: Duration) -> Result<Option<SslOpts>, NameError> {
        let Some(opts) = &self.opts else {
            return Ok(None);
        };
        let Some((address, target)) = &self.learn else {
            return Ok(Some(opts.clone()));
        };
        let known = self.learned.lock().ok().and_then(|l| l.clone());
        let name = match known {
            Some(name) => name,
            None => {
                let name = certificate_name(address, target, timeout).await?;
                if let Ok(mut l) = self.learned.lock() {
                    *l = Some(name.clone());
                }
                name
            }
        };
        Ok(Some(
            opts.clone().with_danger_tls_hostname_override(Some(name)),
        ))
    }

    /// After a failed connection: the node's certificate may have changed.
    pub fn forget(&self) {
        if let Ok(mut l) = self.learned.lock() {
            *l = None;
        }
    }
}

/// The base options: the CA only (never the system's roots), the client
/// certificate if any; None in cleartext.
fn ssl_opts(config: &Config, mode: NodeTlsMode) -> Option<SslOpts> {
    if mode == NodeTlsMode::Off {
        return None;
    }
    let t = &config.node_tls;
    let identity = match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => {
            Some(ClientIdentity::new(cert.clone().into(), key.clone().into()))
        }
        _ => None,
    };
    Some(
        SslOpts::default()
            .with_root_certs(t.ca.iter().map(|ca| ca.clone().into()).collect())
            .with_disable_built_in_roots(true)
            .with_client_identity(identity),
    )
}

/// Connects, switches to TLS the way a client does (greeting, SSL request,
/// handshake with the chain verified), and reads a name from the node's
/// certificate. The connection is closed before any login.
async fn certificate_name(
    address: &str,
    target: &NodeTlsTarget,
    t: Duration,
) -> Result<String, NameError> {
    let net = |e: String| NameError::Network(format!("reading the node's certificate: {e}"));
    let stream = tokio::time::timeout(t, TcpStream::connect(address))
        .await
        .map_err(|_| net(format!("connect timed out after {t:?}")))?
        .map_err(|e| net(e.to_string()))?;
    let mut io = PacketIo::new(stream);
    let greeting = io
        .read_packet(1 << 16, Some(t), Some(t))
        .await
        .map_err(|e| net(e.to_string()))?;
    let hello = handshake::parse_greeting(&greeting.payload)
        .ok_or_else(|| net("the node sent no greeting (an error, or not MySQL)".into()))?;
    if hello.capabilities & caps::SSL == 0 {
        return Err(NameError::Tls("the node does not offer TLS".into()));
    }
    let request = handshake::ssl_request(caps::BACKEND_BASE, COLLATION);
    io.queue(greeting.seq.wrapping_add(1), &request);
    io.flush().await.map_err(|e| net(e.to_string()))?;
    let mut io = io
        .connect_tls(&target.connector, target.server_name.clone(), t)
        .await
        .map_err(|e| NameError::Tls(e.to_string()))?;
    let leaf = io.server_leaf();
    io.shutdown().await;
    let leaf = leaf.ok_or_else(|| NameError::Tls("the node presented no certificate".into()))?;
    leaf_name(&leaf).map_err(NameError::Tls)
}

/// A name the certificate is valid for: its first DNS subjectAltName (a
/// wildcard's first label filled in), else its first IP address.
fn leaf_name(leaf: &[u8]) -> Result<String, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| format!("the node's certificate does not parse: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("the node's certificate has an unreadable subjectAltName: {e}"))?;
    let mut ip = None;
    for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
        match name {
            GeneralName::DNSName(d) => {
                return Ok(d.trim_end_matches('.').replacen('*', "node", 1));
            }
            GeneralName::IPAddress(bytes) if ip.is_none() => ip = ip_of(bytes),
            _ => {}
        }
    }
    ip.map(|a| a.to_string()).ok_or_else(|| {
        "the node's certificate names no host (no subjectAltName): no client can check it".into()
    })
}

fn ip_of(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(names: &[&str]) -> Vec<u8> {
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn the_first_dns_name_wins_then_an_ip() {
        assert_eq!(
            leaf_name(&leaf(&["db1.shop", "10.0.0.1"])),
            Ok("db1.shop".into())
        );
        assert_eq!(
            leaf_name(&leaf(&["10.0.0.1", "db1.shop"])),
            Ok("db1.shop".into())
        );
        assert_eq!(leaf_name(&leaf(&["10.0.0.1"])), Ok("10.0.0.1".into()));
        assert_eq!(leaf_name(&leaf(&["*.db.shop"])), Ok("node.db.shop".into()));
        assert!(leaf_name(&leaf(&[])).is_err());
        assert!(leaf_name(b"not a certificate").is_err());
    }
}
