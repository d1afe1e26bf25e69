//! Proxy users: checked against clients, and used to log in to nodes (as
//! ProxySQL does). A user configured by hash only gets its node password
//! (SHA1 of the password) from its first successful client login.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::backend::Credentials;
use crate::config::{parse_native_hash, Config};
use crate::protocol::handshake::NativeSecret;

/// What an unknown user's token is checked against: no password hashes to
/// it that anyone knows, and the check costs what a real one does.
const UNKNOWN_USER: NativeSecret = NativeSecret {
    stage2: [0x5a; 20],
    stage1: None,
    empty: false,
};

pub struct Users {
    users: HashMap<Vec<u8>, (Arc<str>, Mutex<NativeSecret>)>,
    /// Users who may log in only over TLS (`require_tls`).
    tls_only: HashSet<Vec<u8>>,
}

impl Users {
    pub fn from_config(config: &Config) -> Users {
        let users = config
            .users
            .iter()
            .filter_map(|(name, u)| {
                let secret = match (&u.password, &u.password_hash) {
                    (Some(pw), _) => NativeSecret::from_password(pw.expose()),
                    (None, Some(h)) => {
                        NativeSecret::from_stage2(parse_native_hash(h.expose()).ok()?)
                    }
                    (None, None) => return None,
                };
                Some((
                    name.as_bytes().to_vec(),
                    (Arc::from(name.as_str()), Mutex::new(secret)),
                ))
            })
            .collect();
        let tls_only = config
            .users
            .iter()
            .filter(|(_, u)| u.require_tls)
            .map(|(name, _)| name.as_bytes().to_vec())
            .collect();
        Users { users, tls_only }
    }

    /// Exactly these (name, password) accounts; none = nobody logs in.
    /// (The admin port's account.)
    pub fn only(accounts: &[(&str, &str)]) -> Users {
        let users = accounts
            .iter()
            .map(|&(name, password)| {
                let secret = Mutex::new(NativeSecret::from_password(password));
                (name.as_bytes().to_vec(), (Arc::from(name), secret))
            })
            .collect();
        Users {
            users,
            tls_only: HashSet::new(),
        }
    }

    /// Whether `user` may log in only over TLS.
    pub fn requires_tls(&self, user: &[u8]) -> bool {
        self.tls_only.contains(user)
    }

    /// Verifies a mysql_native_password token; on success returns the
    /// credentials to use towards nodes.
    pub fn authenticate(&self, user: &[u8], nonce: &[u8], token: &[u8]) -> Option<Credentials> {
        let Some((name, secret)) = self.users.get(user) else {
            // The same work as for a known user, so that the time a denial
            // takes does not tell which user names exist.
            std::hint::black_box(UNKNOWN_USER.verify(nonce, token));
            return None;
        };
        let mut secret = secret.lock().unwrap_or_else(|p| p.into_inner());
        let stage1 = secret.verify(nonce, token)?;
        if secret.stage1.is_none() && !secret.empty {
            secret.stage1 = Some(stage1);
        }
        Some(Credentials {
            user: name.clone(),
            secret: secret.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::handshake::new_nonce;

    #[test]
    fn hash_only_user_learns_node_password() {
        let cfg = Config::from_toml_str(
            r#"
[mysql]
listen = "127.0.0.1:0"
[nodes.cn1]
address = "127.0.0.1:1"
[users.shop]
password_hash = "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
"#,
            Vec::new(),
        )
        .unwrap();
        let users = Users::from_config(&cfg);
        let nonce = new_nonce();
        // "secret" hashes to the value above.
        let token = NativeSecret::from_password("secret")
            .scramble(&nonce)
            .unwrap();
        let creds = users.authenticate(b"shop", &nonce, &token).unwrap();
        assert_eq!(
            creds.secret.stage1,
            NativeSecret::from_password("secret").stage1
        );
        assert!(users.authenticate(b"shop", &nonce, &[0; 20]).is_none());
        assert!(users.authenticate(b"nobody", &nonce, &token).is_none());
    }
}
