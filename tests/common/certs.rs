//! Throwaway certificates for the TLS tests, made at run time with rcgen:
//! nothing with a private key is checked in. A [`TestCa`] signs server
//! certificates (for `localhost` and `127.0.0.1`) and client certificates;
//! every file goes into the test's own temporary directory.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// A certificate authority whose certificate is `dir/<name>-ca.pem`.
pub struct TestCa {
    name: String,
    issuer: Issuer<'static, KeyPair>,
    dir: PathBuf,
    /// The CA certificate (PEM file).
    pub ca: PathBuf,
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

impl TestCa {
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name = dn(&format!("sqlproxy test CA {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let ca = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca, cert.pem()).expect("write CA");
        TestCa {
            name: name.into(),
            issuer: Issuer::new(params, key),
            dir: dir.into(),
            ca,
        }
    }

    fn sign(&self, file: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> Pair {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("leaf params");
        params.distinguished_name = dn(file);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let pair = Pair {
            cert: self.dir.join(format!("{}-{file}.pem", self.name)),
            key: self.dir.join(format!("{}-{file}.key", self.name)),
        };
        std::fs::write(&pair.cert, cert.pem()).expect("write cert");
        std::fs::write(&pair.key, key.serialize_pem()).expect("write key");
        pair
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self, file: &str) -> Pair {
        self.sign(
            file,
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A server certificate naming only `name` (for a name mismatch).
    pub fn server_named(&self, file: &str, name: &str) -> Pair {
        self.sign(file, &[name], ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate.
    pub fn client(&self, file: &str) -> Pair {
        self.sign(file, &["client"], ExtendedKeyUsagePurpose::ClientAuth)
    }
}
