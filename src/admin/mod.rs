//! The admin SQL port: operators connect with the `mariadb` CLI (or any
//! MySQL client) to a separate listener and run a small command set
//! (docs/admin.md). It is served by the project's own protocol code (the
//! frontend's login, `protocol/`'s framing and errors) with this executor
//! behind it, not by opensrv-mysql: see docs/admin.md for why.
//!
//! One command per file, all behind [`AdminCommand`]: `parse` recognises its
//! words, `execute` returns a [`Reply`]. `PARSERS` lists them; a statement no
//! parser claims gets a clear error naming `SHOW COMMANDS`. `listener.rs`
//! runs the port, `wire.rs` encodes result sets, `words.rs` splits a
//! statement into words.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::context::ProxyContext;
use crate::context::Users;
use crate::protocol::err::ProxyError;

mod cache;
mod http_backends;
pub mod listener;
mod reload_config;
mod select_vars;
mod set_backend;
mod show_backends;
mod show_commands;
mod show_config;
mod show_coordination;
mod show_pools;
mod show_query_digest;
mod show_sessions;
mod show_stats;
mod switchover;
pub mod wire;
pub mod words;

pub use listener::serve;
pub use reload_config::{reload_config, ConfigChange, ReloadReport};
pub use wire::{ColKind, Column, ResultSet};
use words::Words;

/// Everything an admin command may fail with; each maps to one ERR packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("unknown admin command `{0}`; SHOW COMMANDS lists them")]
    Unknown(String),
    #[error("syntax error, usage: {usage}")]
    Syntax { usage: &'static str },
    #[error("no backend named '{0}'")]
    NoNode(String),
    #[error("{0} is not implemented yet")]
    NotImplemented(&'static str),
    #[error("{0}")]
    Refused(String),
    #[error("config not reloaded, the running one is kept: {0}")]
    Config(String),
}

impl AdminError {
    /// The ERR packet a client gets.
    pub fn to_proxy_error(&self) -> ProxyError {
        let msg = self.to_string();
        match self {
            AdminError::Unknown(_) | AdminError::Syntax { .. } => ProxyError::admin_syntax(&msg),
            AdminError::NotImplemented(_) => ProxyError::not_supported_yet(&msg),
            AdminError::NoNode(_) | AdminError::Refused(_) | AdminError::Config(_) => {
                ProxyError::admin_refused(&msg)
            }
        }
    }
}

/// What a command answers: a result set (every command answers with rows,
/// so the client always shows something) or a plain OK.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Rows(ResultSet),
    Ok,
}

/// A command's future; boxed so the command set can be a table of trait objects.
pub type Exec<'a> = Pin<Box<dyn Future<Output = Result<Reply, AdminError>> + Send + 'a>>;

/// One admin command: one file each.
pub trait AdminCommand: Send + Sync {
    /// `None` when the words are not this command; `Some(Err)` when they
    /// are, but malformed (the error gives the usage).
    fn parse(words: &Words) -> Option<Result<Self, AdminError>>
    where
        Self: Sized;
    /// For logs.
    fn name(&self) -> &'static str;
    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a>;
}

/// A finished reply as an [`Exec`] (for commands that do no I/O).
pub fn ready(r: Result<Reply, AdminError>) -> Exec<'static> {
    Box::pin(std::future::ready(r))
}

type Parser = fn(&Words) -> Option<Result<Box<dyn AdminCommand>, AdminError>>;

fn boxed<C: AdminCommand + 'static>(
    w: &Words,
) -> Option<Result<Box<dyn AdminCommand>, AdminError>> {
    C::parse(w).map(|r| r.map(|c| Box::new(c) as Box<dyn AdminCommand>))
}

/// A result cell from anything printable.
pub fn cell(v: impl std::fmt::Display) -> Option<String> {
    Some(v.to_string())
}

/// For commands that are fixed words: `None` if `w` does not start with
/// `keywords`, a syntax error if more words follow, else `cmd`.
pub fn exact<C>(
    w: &Words,
    keywords: &[&str],
    usage: &'static str,
    cmd: C,
) -> Option<Result<C, AdminError>> {
    if !w.starts_with(keywords) {
        return None;
    }
    Some(if w.len() == keywords.len() {
        Ok(cmd)
    } else {
        Err(AdminError::Syntax { usage })
    })
}

/// Every command, tried in order.
const PARSERS: &[Parser] = &[
    boxed::<show_backends::ShowBackends>,
    boxed::<show_sessions::ShowSessions>,
    boxed::<show_pools::ShowPools>,
    boxed::<show_stats::ShowStats>,
    boxed::<show_config::ShowConfig>,
    boxed::<show_coordination::ShowCoordination>,
    boxed::<show_query_digest::ShowQueryDigest>,
    boxed::<show_commands::ShowCommands>,
    boxed::<cache::ShowCacheDigest>,
    boxed::<cache::ShowCache>,
    boxed::<cache::CacheFlush>,
    boxed::<http_backends::ShowHttpBackends>,
    boxed::<http_backends::SetHttpBackend>,
    boxed::<set_backend::SetBackend>,
    boxed::<reload_config::ReloadConfig>,
    boxed::<switchover::MasterChange>,
    boxed::<select_vars::SelectVars>,
];

/// Turns one statement into a command, or the error the client gets.
pub fn parse(sql: &str) -> Result<Box<dyn AdminCommand>, AdminError> {
    let words = Words::split(sql).map_err(|_| AdminError::Unknown(sql.trim().to_string()))?;
    for p in PARSERS {
        if let Some(r) = p(&words) {
            return r;
        }
    }
    Err(AdminError::Unknown(words.text()))
}

/// What the admin commands work on: the running proxy plus the admin's own
/// state (the config file in force, the admin login).
pub struct AdminContext {
    pub proxy: Arc<ProxyContext>,
    /// The HTTP balancer's workers, when `[http]` is configured.
    pub http: Option<Arc<crate::http::Upstreams>>,
    /// The last config loaded from the file (at start or by RELOAD CONFIG).
    running: ArcSwap<Config>,
    /// The admin account, replaced by RELOAD CONFIG.
    users: ArcSwap<Users>,
    /// `[admin.tls]`: the admin port's certificate (swapped by a reload).
    pub tls: crate::tls::TlsSlot,
    /// `[http.tls]`: the HTTPS balancer's certificates, when it runs with
    /// them (swapped by a reload).
    pub http_tls: Option<Arc<crate::tls::TlsSlot>>,
    /// Failed admin logins, per address and user (the data port has its own).
    pub login_guard: crate::frontend::login_guard::LoginGuard,
}

impl AdminContext {
    pub fn new(
        proxy: Arc<ProxyContext>,
        http: Option<Arc<crate::http::Upstreams>>,
        http_tls: Option<Arc<crate::tls::TlsSlot>>,
    ) -> Arc<AdminContext> {
        let config = Arc::clone(&proxy.config);
        let login_guard = crate::frontend::login_guard::LoginGuard::new(
            config.mysql.max_connect_errors,
            config.mysql.host_block_time,
        );
        Arc::new(AdminContext {
            login_guard,
            users: ArcSwap::from_pointee(admin_users(&config)),
            running: ArcSwap::new(config),
            proxy,
            http,
            tls: crate::tls::TlsSlot::default(),
            http_tls,
        })
    }

    /// The config in force as the file said it (operator changes made
    /// with SET BACKEND show in SHOW BACKENDS, not here).
    pub fn running(&self) -> Arc<Config> {
        self.running.load_full()
    }

    pub fn users(&self) -> Arc<Users> {
        self.users.load_full()
    }

    fn replace(&self, config: Config) {
        self.users.store(Arc::new(admin_users(&config)));
        self.running.store(Arc::new(config));
    }
}

/// The one admin account of `config`; nobody when the port is disabled
/// (a reload that disables it locks the still-open port).
fn admin_users(config: &Config) -> Users {
    match config.admin_enabled() {
        Some(a) => Users::only(&[(&a.user, a.password.expose())]),
        None => Users::only(&[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(sql: &str) -> AdminError {
        match parse(sql) {
            Ok(c) => panic!("`{sql}` parsed as {}", c.name()),
            Err(e) => e,
        }
    }

    #[test]
    fn commands_parse_case_insensitively() {
        for (sql, name) in [
            ("SHOW BACKENDS", "show backends"),
            ("show backends;", "show backends"),
            ("  Show   Sessions ; ", "show sessions"),
            ("show pools", "show pools"),
            ("SHOW STATS", "show stats"),
            ("show config", "show config"),
            ("SHOW COORDINATION", "show coordination"),
            ("show query digest", "show query digest"),
            ("SHOW QUERY DIGEST LIMIT 5", "show query digest"),
            ("show commands", "show commands"),
            ("SET BACKEND 'cn2' OFFLINE", "set backend"),
            ("set backend cn2 online", "set backend"),
            ("set backend \"cn2\" drain", "set backend"),
            ("SET BACKEND 'cn1' WEIGHT 3", "set backend"),
            ("reload config", "reload config"),
            ("SWITCHOVER TO 'cn2'", "switchover"),
            ("failover to cn2", "failover"),
            ("select @@version_comment limit 1", "select"),
        ] {
            match parse(sql) {
                Ok(c) => assert_eq!(c.name(), name, "{sql}"),
                Err(e) => panic!("{sql}: {e}"),
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        // Words from the grammar mixed with noise, so parsers get past their first word.
        const PIECES: &[&str] = &[
            "SHOW",
            "SET",
            "BACKEND",
            "WEIGHT",
            "LIMIT",
            "QUERY",
            "DIGEST",
            "TO",
            "SELECT",
            "@@x",
            "VERSION",
            "(",
            ")",
            ",",
            "'",
            "\"",
            "`",
            ";",
            "99999999999999999999",
            "-1",
            "cn1",
            "é",
            "\0",
            " ",
            "RELOAD",
            "CONFIG",
            "SWITCHOVER",
        ];
        let mut seed = 7u64;
        for _ in 0..20_000 {
            let mut sql = String::new();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            for k in 0..(seed >> 60) {
                let i = ((seed >> (k * 5 % 50)) as usize) % PIECES.len();
                sql.push_str(PIECES[i]);
                if (seed >> k) & 1 == 0 {
                    sql.push(' ');
                }
            }
            let _ = parse(&sql);
        }
    }

    #[test]
    fn a_disabled_admin_section_lets_nobody_in() {
        let base = "[mysql]\nlisten = \"127.0.0.1:0\"\n[nodes.a]\naddress = \"127.0.0.1:1\"\n[users.u]\npassword = \"p\"\n";
        let nonce = crate::protocol::handshake::new_nonce();
        let token = |pw: &str| {
            crate::protocol::handshake::NativeSecret::from_password(pw)
                .scramble(&nonce)
                .unwrap_or_default()
        };
        let on = Config::from_toml_str(&format!("{base}[admin]\npassword = \"pw\"\n"), Vec::new())
            .unwrap();
        let users = admin_users(&on);
        assert!(users.authenticate(b"admin", &nonce, &token("pw")).is_some());
        assert!(users
            .authenticate(b"admin", &nonce, &token("nope"))
            .is_none());
        assert!(users.authenticate(b"u", &nonce, &token("p")).is_none());
        let off = Config::from_toml_str(&format!("{base}[admin]\nenabled = false\n"), Vec::new())
            .unwrap();
        let users = admin_users(&off);
        assert!(users.authenticate(b"", &nonce, &[]).is_none());
        assert!(users.authenticate(b"admin", &nonce, &[]).is_none());
    }

    #[test]
    fn bad_statements_get_clear_errors() {
        assert!(matches!(err("DROP TABLE x"), AdminError::Unknown(_)));
        assert!(matches!(err(""), AdminError::Unknown(_)));
        assert!(matches!(err("SHOW"), AdminError::Unknown(_)));
        assert!(matches!(
            err("SHOW BACKENDS now"),
            AdminError::Syntax { .. }
        ));
        assert!(matches!(err("SET BACKEND cn2"), AdminError::Syntax { .. }));
        assert!(matches!(
            err("SET BACKEND cn2 WEIGHT -1"),
            AdminError::Syntax { .. }
        ));
        assert!(matches!(
            err("SET BACKEND cn2 WEIGHT x"),
            AdminError::Syntax { .. }
        ));
        assert!(matches!(
            err("SHOW QUERY DIGEST LIMIT"),
            AdminError::Syntax { .. }
        ));
        assert!(matches!(err("SWITCHOVER 'cn2'"), AdminError::Syntax { .. }));
        assert!(matches!(err("SHOW 'unterminated"), AdminError::Unknown(_)));
        let e = err("FLUSH HOSTS").to_proxy_error();
        assert_eq!(e.code, 1064);
        assert!(e.message.contains("SHOW COMMANDS"), "{}", e.message);
    }
}
