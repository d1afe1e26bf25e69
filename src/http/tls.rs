//! HTTPS on the balancer's listener: the rustls configuration built from
//! `[http.tls]` (a default certificate, more picked by the ClientHello's
//! server name, ALPN offering `h2` and `http/1.1`) and the bounded handshake
//! each client connection goes through before hyper sees a byte.
//!
//! The configuration is a [`ServerTls`] in a [`TlsSlot`], as for the MySQL
//! port: `RELOAD CONFIG` and SIGHUP swap in re-read certificates, and a
//! connection keeps the one it shook hands with.
//!
//! Which certificate serves which name is read from the certificates
//! themselves (their DNS subjectAltNames), so the config cannot disagree
//! with the files; [`SniResolver::pick`] is the whole rule.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::{HttpTls, TlsVersion};
use crate::tls::{fingerprint, load_certs, load_key, provider, ServerTls, TlsError};

/// ALPN names, most preferred first: HTTP/2 multiplexes a browser's many
/// asset requests on one connection (one handshake instead of six).
const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The certificates of `[http.tls]` and who gets which.
#[derive(Debug)]
pub struct SniResolver {
    default: Arc<CertifiedKey>,
    /// Exact names, lower case.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.shop.example` stored as `shop.example`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl SniResolver {
    /// The certificate for a ClientHello naming `server_name`: an exact
    /// name first, then a wildcard one label up, else the default (a client
    /// without SNI, or asking for a name no entry covers, still gets a
    /// certificate: its own name check decides, as with HAProxy's first `crt`).
    pub fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = server_name else {
            return &self.default;
        };
        // rustls hands the name lower-cased already; a trailing dot is
        // the same host.
        let name = name.trim_end_matches('.');
        if let Some(c) = self.exact.get(name) {
            return c;
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(self.pick(hello.server_name())))
    }
}

/// A certificate and its key, checked to belong together.
fn certified(section: &str, cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let k = |name: &str| format!("{section}.{name}");
    let chain = load_certs(&k("cert"), cert)?;
    let der = load_key(&k("key"), key)?;
    CertifiedKey::from_der(chain, der, &provider()).map_err(|e| TlsError::Rejected {
        key: k("key"),
        reason: format!("does not match {}: {e}", k("cert")),
    })
}

/// The DNS names a leaf certificate is valid for, lower case.
fn dns_names(key: &str, leaf: &[u8]) -> Result<Vec<String>, TlsError> {
    use x509_parser::extensions::GeneralName;
    let rejected = |reason: String| TlsError::Rejected {
        key: key.to_string(),
        reason,
    };
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| rejected(format!("not an X.509 certificate: {e}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| rejected(format!("unreadable subjectAltName: {e}")))?;
    let names: Vec<String> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        return Err(rejected(
            "names no host (no DNS subjectAltName): SNI could never choose it".into(),
        ));
    }
    Ok(names)
}

impl SniResolver {
    pub fn from_config(cfg: &HttpTls) -> Result<SniResolver, TlsError> {
        let default = Arc::new(certified("http.tls", &cfg.cert, &cfg.key)?);
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        // Which entry claimed a name first, to name both in the error.
        let mut owner: HashMap<String, usize> = HashMap::new();
        for (i, entry) in cfg.certificates.iter().enumerate() {
            let section = format!("http.tls.certificates[{i}]");
            let ck = Arc::new(certified(&section, &entry.cert, &entry.key)?);
            let leaf = ck.cert.first().map(|c| c.as_ref()).unwrap_or_default();
            for name in dns_names(&format!("{section}.cert"), leaf)? {
                if let Some(prev) = owner.insert(name.clone(), i) {
                    if prev != i {
                        return Err(TlsError::Rejected {
                            key: format!("{section}.cert"),
                            reason: format!(
                                "`{name}` is already served by http.tls.certificates[{prev}]"
                            ),
                        });
                    }
                }
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.insert(parent.to_string(), Arc::clone(&ck)),
                    None => exact.insert(name, Arc::clone(&ck)),
                };
            }
        }
        Ok(SniResolver {
            default,
            exact,
            wildcard,
        })
    }

    /// Every certificate's fingerprint, the default first: what `RELOAD
    /// CONFIG` compares to report a renewed file.
    fn fingerprints(&self) -> String {
        let mut rest: Vec<String> = self
            .exact
            .values()
            .chain(self.wildcard.values())
            .map(|c| leaf_fingerprint(c))
            .collect();
        // One entry per certificate, however many names it has.
        rest.sort();
        rest.dedup();
        let mut out = vec![leaf_fingerprint(&self.default)];
        out.extend(rest);
        out.join(" ")
    }
}

fn leaf_fingerprint(c: &CertifiedKey) -> String {
    c.cert.first().map(fingerprint).unwrap_or_default()
}

/// The balancer's TLS from `[http.tls]`; every error names the key.
pub fn server_tls(cfg: &HttpTls) -> Result<ServerTls, TlsError> {
    let resolver = SniResolver::from_config(cfg)?;
    let versions: &[&'static rustls::SupportedProtocolVersion] = match cfg.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let fingerprint = resolver.fingerprints();
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Rejected {
            key: "http.tls.min_version".into(),
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    Ok(ServerTls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        require: false,
        fingerprint,
    })
}

/// `[http.tls]` of `cfg`, if any.
pub fn optional(cfg: Option<&HttpTls>) -> Result<Option<Arc<ServerTls>>, TlsError> {
    cfg.map(|c| server_tls(c).map(Arc::new)).transpose()
}

/// What ALPN settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    H2,
    Http11,
    /// The client offered no ALPN: the first bytes tell (as in cleartext).
    None,
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("TLS handshake not done within {0:?}")]
    TimedOut(Duration),
    #[error("TLS handshake failed: {0}")]
    Failed(std::io::Error),
}

/// Runs the server side of the handshake on `stream`, which must finish
/// within `limit`: a client that sends garbage or stalls costs its own
/// connection only (and its `maxconn` permit, for at most `limit`).
pub async fn accept(
    tls: &ServerTls,
    stream: TcpStream,
    limit: Duration,
) -> Result<(TlsStream<TcpStream>, Alpn), HandshakeError> {
    let s = tokio::time::timeout(limit, tls.acceptor.accept(stream))
        .await
        .map_err(|_| HandshakeError::TimedOut(limit))?
        .map_err(HandshakeError::Failed)?;
    let alpn = match s.get_ref().1.alpn_protocol() {
        Some(ALPN_H2) => Alpn::H2,
        Some(ALPN_HTTP11) => Alpn::Http11,
        _ => Alpn::None,
    };
    Ok((s, alpn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_for(names: &[&str]) -> Arc<CertifiedKey> {
        let ck = rcgen::generate_simple_self_signed(
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let der =
            rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
        Arc::new(CertifiedKey::from_der(vec![ck.cert.der().clone()], der, &provider()).unwrap())
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_default() {
        let (default, shop, wild) = (
            key_for(&["default.example"]),
            key_for(&["shop.example"]),
            key_for(&["*.cdn.example"]),
        );
        let r = SniResolver {
            default: Arc::clone(&default),
            exact: [("shop.example".to_string(), Arc::clone(&shop))].into(),
            wildcard: [("cdn.example".to_string(), Arc::clone(&wild))].into(),
        };
        for (asked, want) in [
            (None, &default),
            (Some("shop.example"), &shop),
            (Some("shop.example."), &shop),
            (Some("img.cdn.example"), &wild),
            (Some("cdn.example"), &default),
            (Some("a.b.cdn.example"), &default),
            (Some("www.shop.example"), &default),
            (Some("other.example"), &default),
        ] {
            assert!(Arc::ptr_eq(r.pick(asked), want), "{asked:?}");
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn pair(dir: &Path, file: &str, names: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
        let ck = rcgen::generate_simple_self_signed(
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        (
            write(dir, &format!("{file}.pem"), &ck.cert.pem()),
            write(dir, &format!("{file}.key"), &ck.signing_key.serialize_pem()),
        )
    }

    #[test]
    fn errors_name_the_entry_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(dir.path(), "default", &["localhost"]);
        let (a_cert, a_key) = pair(dir.path(), "a", &["a.example", "*.a.example"]);
        let (b_cert, b_key) = pair(dir.path(), "b", &["b.example", "a.example"]);
        let entry = |c: &Path, k: &Path| crate::config::SniCertificate {
            cert: c.into(),
            key: k.into(),
        };
        let mut cfg = HttpTls {
            cert: cert.clone(),
            key: key.clone(),
            min_version: TlsVersion::Tls12,
            certificates: vec![entry(&a_cert, &a_key)],
            redirect_from: None,
        };
        let tls = server_tls(&cfg).unwrap();
        assert_eq!(tls.fingerprint.split(' ').count(), 2, "{}", tls.fingerprint);

        cfg.certificates.push(entry(&b_cert, &b_key));
        let e = server_tls(&cfg).unwrap_err().to_string();
        assert!(e.contains("http.tls.certificates[1].cert"), "{e}");
        assert!(e.contains("certificates[0]"), "{e}");

        cfg.certificates = vec![entry(&a_cert, &b_key)];
        let e = server_tls(&cfg).unwrap_err().to_string();
        assert!(e.contains("http.tls.certificates[0].key"), "{e}");

        cfg.certificates.clear();
        cfg.key = dir.path().join("missing.key");
        let e = server_tls(&cfg).unwrap_err().to_string();
        assert!(e.contains("http.tls.key"), "{e}");
    }
}
