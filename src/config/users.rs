//! `[users.NAME]`: the accounts clients log in with, which the proxy also uses to
//! log in to the nodes, and the `mysql_native_password` hash format they may be
//! given in.

use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Plain password: used to check clients and to log in to nodes.
    #[serde(default)]
    pub password: Option<super::Secret>,
    /// `*` + 40 hex digits (mysql_native_password hash, as in `mysql.user`).
    /// With only the hash, backend logins use what a client's successful
    /// login reveals (SHA1 of the password), as ProxySQL does.
    #[serde(default)]
    pub password_hash: Option<super::Secret>,
    /// This user may log in only over TLS (MariaDB's `REQUIRE SSL`).
    #[serde(default)]
    pub require_tls: bool,
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

/// Redacted: the password never reaches a log line.
impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::debug_redacted("UserConfig", self, f)
    }
}
