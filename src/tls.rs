//! TLS material from the config: the certificates and keys named by
//! `[mysql.tls]`, `[admin.tls]` and `[node_tls]` turned into rustls
//! configurations (ring provider, no OpenSSL linkage). Every error names the
//! config key of the file or setting at fault and never prints key material.
//!
//! A listener's [`ServerTls`] sits in a [`TlsSlot`] so `RELOAD CONFIG` and
//! SIGHUP can swap in re-read certificates: a connection takes the slot's
//! value once, at its handshake, and keeps it for its life.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::pki_types::{ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use sha1::{Digest, Sha1};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{split_host_port, Config, ListenerTls, NodeTls, NodeTlsMode, TlsVersion};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("`{key}`: cannot read {path}: {source}")]
    Read {
        key: String,
        path: String,
        source: std::io::Error,
    },
    #[error("`{key}`: {path} holds no PEM {what}")]
    Empty {
        key: String,
        path: String,
        what: &'static str,
    },
    #[error("`{key}`: {path} is not valid PEM: {reason}")]
    Pem {
        key: String,
        path: String,
        reason: String,
    },
    #[error("`{key}`: {reason}")]
    Rejected { key: String, reason: String },
}

/// The one crypto provider of the process: ring (builds with a C compiler
/// only), pinned explicitly so no crate's feature choice can change it.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn io_err(key: &str, path: &Path) -> impl FnOnce(std::io::Error) -> TlsError {
    let (key, path) = (key.to_string(), path.display().to_string());
    move |source| TlsError::Read { key, path, source }
}

fn pem_err(key: &str, path: &Path, e: rustls::pki_types::pem::Error) -> TlsError {
    match e {
        rustls::pki_types::pem::Error::Io(source) => io_err(key, path)(source),
        other => TlsError::Pem {
            key: key.into(),
            path: path.display().to_string(),
            // The error text names positions and section kinds, never contents.
            reason: other.to_string(),
        },
    }
}

/// Every certificate of a PEM file, in order; at least one.
pub fn load_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(key, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(key, path, e))?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            key: key.into(),
            path: path.display().to_string(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    // Read first: a missing file is an I/O error, not "no key".
    let pem = std::fs::read(path).map_err(io_err(key, path))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            key: key.into(),
            path: path.display().to_string(),
            what: "private key",
        },
        other => pem_err(key, path, other),
    })
}

/// A store of the CA certificates in `path`.
pub fn load_roots(key: &str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(key, path)? {
        roots.add(cert).map_err(|e| TlsError::Rejected {
            key: key.into(),
            reason: format!("{}: {e}", path.display()),
        })?;
    }
    Ok(roots)
}

/// SHA-1 of a certificate's DER, as `openssl x509 -fingerprint` prints it:
/// what `RELOAD CONFIG` shows when a certificate file changed.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = Sha1::digest(cert.as_ref());
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// A listener's TLS, built from its section.
pub struct ServerTls {
    pub acceptor: TlsAcceptor,
    /// Cleartext logins are refused.
    pub require: bool,
    /// The leaf certificate's fingerprint.
    pub fingerprint: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("require", &self.require)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the files of `section` (`mysql.tls`, `admin.tls`) and builds
    /// the acceptor; errors name `section.cert`, `section.key`...
    pub fn from_config(section: &str, cfg: &ListenerTls) -> Result<ServerTls, TlsError> {
        let k = |name: &str| format!("{section}.{name}");
        let certs = load_certs(&k("cert"), &cfg.cert)?;
        let key = load_key(&k("key"), &cfg.key)?;
        let versions: &[&'static rustls::SupportedProtocolVersion] = match cfg.min_version {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(|e| TlsError::Rejected {
                key: k("min_version"),
                reason: e.to_string(),
            })?;
        let builder = match &cfg.ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let roots = load_roots(&k("ca"), ca)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| TlsError::Rejected {
                            key: k("ca"),
                            reason: e.to_string(),
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let fingerprint = fingerprint(&certs[0]);
        let config = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Rejected {
                key: k("key"),
                reason: format!("does not match {}: {e}", k("cert")),
            })?;
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            require: cfg.require,
            fingerprint,
        })
    }

    /// `section`'s TLS, or None when the section is absent.
    pub fn optional(
        section: &str,
        cfg: Option<&ListenerTls>,
    ) -> Result<Option<Arc<ServerTls>>, TlsError> {
        cfg.map(|c| ServerTls::from_config(section, c).map(Arc::new))
            .transpose()
    }
}

/// A listener's current TLS; swapped whole on reload.
#[derive(Debug, Default)]
pub struct TlsSlot(ArcSwapOption<ServerTls>);

impl TlsSlot {
    pub fn new(tls: Option<Arc<ServerTls>>) -> TlsSlot {
        TlsSlot(ArcSwapOption::new(tls))
    }

    /// What a new connection uses.
    pub fn current(&self) -> Option<Arc<ServerTls>> {
        self.0.load_full()
    }

    pub fn replace(&self, tls: Option<Arc<ServerTls>>) {
        self.0.store(tls);
    }
}

/// How the proxy reaches one node over TLS: the connector (CA, optional
/// client certificate, name check or not) and the name to check.
#[derive(Clone)]
pub struct NodeTlsTarget {
    pub connector: TlsConnector,
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for NodeTlsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTlsTarget")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// `verify-ca`: the chain must verify against the CA; the name is not
/// checked (nodes addressed by an IP their certificate does not name).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The TLS target of every node of `config` (None for a node in
/// cleartext), in config order (the topology's NodeId).
pub fn node_targets(config: &Config) -> Result<Vec<Option<NodeTlsTarget>>, TlsError> {
    let t = &config.node_tls;
    let mut full = None;
    let mut chain_only = None;
    let mut out = Vec::with_capacity(config.nodes.len());
    for (name, node) in &config.nodes {
        let mode = config.node_tls_mode(name);
        let slot = match mode {
            NodeTlsMode::Off => {
                out.push(None);
                continue;
            }
            NodeTlsMode::VerifyFull => &mut full,
            NodeTlsMode::VerifyCa => &mut chain_only,
        };
        if slot.is_none() {
            *slot = Some(node_connector(t, mode)?);
        }
        let connector = slot.clone().ok_or_else(|| TlsError::Rejected {
            key: "node_tls".into(),
            reason: "no connector".into(),
        })?;
        let host = split_host_port(&node.address)
            .map(|(h, _)| h)
            .map_err(|reason| TlsError::Rejected {
                key: format!("nodes.{name}.address"),
                reason,
            })?;
        let server_name = ServerName::try_from(host.clone()).map_err(|e| TlsError::Rejected {
            key: format!("nodes.{name}.address"),
            reason: format!("`{host}` is not a name TLS can check: {e}"),
        })?;
        out.push(Some(NodeTlsTarget {
            connector,
            server_name,
        }));
    }
    Ok(out)
}

fn node_connector(t: &NodeTls, mode: NodeTlsMode) -> Result<TlsConnector, TlsError> {
    let ca = t.ca.as_ref().ok_or_else(|| TlsError::Rejected {
        key: "node_tls.ca".into(),
        reason: "required when a node uses TLS".into(),
    })?;
    let roots = Arc::new(load_roots("node_tls.ca", ca)?);
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| TlsError::Rejected {
            key: "node_tls.ca".into(),
            reason: e.to_string(),
        })?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        NodeTlsMode::VerifyCa => Arc::new(ChainOnly(webpki)),
        _ => webpki,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rejected {
            key: "node_tls".into(),
            reason: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => {
            let certs = load_certs("node_tls.cert", cert)?;
            let key = load_key("node_tls.key", key)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| TlsError::Rejected {
                    key: "node_tls.key".into(),
                    reason: format!("does not match node_tls.cert: {e}"),
                })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The protocol version and cipher suite of an established connection, as
/// MariaDB's `Ssl_version` / `Ssl_cipher` name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
}

impl TlsInfo {
    pub fn of(conn: &rustls::CommonState) -> TlsInfo {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            Some(v) => format!("{v:?}"),
            None => "unknown".to_string(),
        };
        let cipher = conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_else(|| "unknown".to_string());
        TlsInfo { version, cipher }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn listener(cert: &Path, key: &Path) -> ListenerTls {
        ListenerTls {
            cert: cert.into(),
            key: key.into(),
            ca: None,
            min_version: TlsVersion::Tls12,
            require: false,
        }
    }

    #[test]
    fn errors_name_the_key_and_never_the_contents() {
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = write(dir.path(), "cert.pem", &ck.cert.pem());
        let secret = ck.signing_key.serialize_pem();
        let key = write(dir.path(), "key.pem", &secret);
        assert!(ServerTls::from_config("mysql.tls", &listener(&cert, &key)).is_ok());

        let missing = dir.path().join("nope.pem");
        let e = ServerTls::from_config("mysql.tls", &listener(&missing, &key)).unwrap_err();
        assert!(e.to_string().contains("mysql.tls.cert"), "{e}");

        // The key file given as the certificate: no certificate in it, and
        // the message must not echo the key.
        let e = ServerTls::from_config("admin.tls", &listener(&key, &key)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("admin.tls.cert"), "{msg}");
        assert!(!msg.contains(secret.lines().nth(1).unwrap()), "{msg}");

        let e = ServerTls::from_config("mysql.tls", &listener(&cert, &cert)).unwrap_err();
        assert!(e.to_string().contains("mysql.tls.key"), "{e}");

        // A key that is not the certificate's.
        let other = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
        let wrong = write(dir.path(), "wrong.pem", &other.signing_key.serialize_pem());
        let e = ServerTls::from_config("mysql.tls", &listener(&cert, &wrong)).unwrap_err();
        assert!(e.to_string().contains("mysql.tls.key"), "{e}");

        let garbage = write(dir.path(), "garbage.pem", "not pem at all");
        let mut cfg = listener(&cert, &key);
        cfg.ca = Some(garbage);
        let e = ServerTls::from_config("mysql.tls", &cfg).unwrap_err();
        assert!(e.to_string().contains("mysql.tls.ca"), "{e}");
    }

    #[test]
    fn fingerprint_is_colon_hex() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let fp = fingerprint(ck.cert.der());
        assert_eq!(fp.len(), 20 * 3 - 1);
        assert!(fp.split(':').all(|b| u8::from_str_radix(b, 16).is_ok()));
    }
}
