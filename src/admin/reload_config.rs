//! `RELOAD CONFIG`: re-reads the file the proxy started with (plus the
//! `SQLPROXY_` environment), validates it, and only then applies what can
//! change live: node weights (where the file changed them), the admin
//! account, and the MySQL, admin and HTTPS listeners' TLS (`[mysql.tls]`,
//! `[admin.tls]`, `[http.tls]` but its `redirect_from`: the certificate
//! files are read again even when their paths did not change, so a renewed
//! certificate is picked up; sessions and connections already open keep the
//! one they started with). The balancer's TLS can be changed, not switched
//! on or off: that needs a restart. Everything else that differs is
//! reported as needing a restart and keeps its running value. A file that does not load or validate
//! changes nothing: the error says why and the running config stays.
//! SIGHUP runs the same [`reload_config`] and logs its report.

use std::collections::BTreeMap;

use super::show_config::{flatten_config_raw, MASK};
use super::{cell, exact, AdminCommand, AdminContext, AdminError, Exec, Reply};
use super::{ColKind, ResultSet, Words};
use crate::config::Config;
use crate::tls::ServerTls;

pub struct ReloadConfig;

impl AdminCommand for ReloadConfig {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        exact(w, &["RELOAD", "CONFIG"], "RELOAD CONFIG", ReloadConfig)
    }

    fn name(&self) -> &'static str {
        "reload config"
    }

    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a> {
        super::ready(reload(admin))
    }
}

/// Whether a changed key takes effect without a restart.
fn live(key: &str) -> bool {
    (key.starts_with("nodes.") && key.ends_with(".weight"))
        || key == "admin.user"
        || key == "admin.password"
        || key.starts_with("mysql.tls.")
        || key.starts_with("admin.tls.")
}

/// A `[http.tls]` key that a running HTTPS balancer takes live: every one
/// but the redirect listener's address (a socket to bind).
fn live_http_tls(key: &str) -> bool {
    key.starts_with("http.tls.") && key != "http.tls.redirect_from"
}

/// One key whose value in the file differs from the running config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    pub key: String,
    /// The running value (passwords masked); `None` when the key is new.
    pub running: Option<String>,
    /// The file's value (passwords masked); `None` when the key is gone.
    pub file: Option<String>,
    /// Took effect now; otherwise it needs a restart and the running value stays.
    pub applied: bool,
}

impl ConfigChange {
    /// What the admin output and the log say about it.
    pub fn status(&self) -> &'static str {
        if self.applied {
            "applied"
        } else {
            "restart needed"
        }
    }
}

/// What a reload did: the file it read and every key that differed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub path: std::path::PathBuf,
    pub changes: Vec<ConfigChange>,
}

/// The reload itself, shared by the admin `RELOAD CONFIG` and SIGHUP
/// (`main.rs`): re-read the file the proxy started with, validate it, apply
/// what can change live and report every difference. On an error nothing
/// changed.
pub fn reload_config(admin: &AdminContext) -> Result<ReloadReport, AdminError> {
    let old = admin.running();
    let Some(path) = old.source.clone() else {
        return Err(AdminError::Refused(
            "the proxy was started without a config file: nothing to reload".into(),
        ));
    };
    let new = Config::load(&path, std::env::vars())
        .map_err(|e| AdminError::Config(format!("{}: {e}", path.display())))?;
    // Certificates are read before anything is applied: one that cannot be
    // used leaves everything as it was.
    let tls_err = |e: crate::tls::TlsError| AdminError::Config(e.to_string());
    let mysql_tls = ServerTls::optional("mysql.tls", new.mysql.tls.as_ref()).map_err(tls_err)?;
    let admin_tls = ServerTls::optional(
        "admin.tls",
        new.admin_enabled().and_then(|a| a.tls.as_ref()),
    )
    .map_err(tls_err)?;
    let http_tls = crate::http::tls::optional(new.http.as_ref().and_then(|h| h.tls.as_ref()))
        .map_err(tls_err)?;
    // Only a balancer already serving HTTPS takes new certificates.
    let http_swap = match (&admin.http_tls, http_tls) {
        (Some(slot), Some(fresh)) => Some((slot, fresh)),
        _ => None,
    };
    let was: BTreeMap<String, String> = flatten_config_raw(&old).into_iter().collect();
    let now: BTreeMap<String, String> = flatten_config_raw(&new).into_iter().collect();
    let keys: std::collections::BTreeSet<&String> = was.keys().chain(now.keys()).collect();
    let topology = &admin.proxy.topology;
    let mut changes = Vec::new();
    for key in keys {
        let (a, b) = (was.get(key), now.get(key));
        if a == b {
            continue;
        }
        let mut applied = live(key) || (http_swap.is_some() && live_http_tls(key));
        if let Some(name) = key
            .strip_prefix("nodes.")
            .and_then(|k| k.strip_suffix(".weight"))
        {
            let weight = new.nodes.get(name).map(|n| n.weight);
            match (topology.node_id(name), weight) {
                (Some(id), Some(w)) if old.nodes.contains_key(name) => {
                    topology.set_weight(id, w);
                }
                _ => applied = false,
            }
        }
        let show = |v: Option<&String>| {
            v.map(|v| {
                if key.contains("password") {
                    MASK.to_string()
                } else {
                    v.clone()
                }
            })
        };
        changes.push(ConfigChange {
            key: key.clone(),
            running: show(a),
            file: show(b),
            applied,
        });
    }
    let swaps = [
        ("mysql.tls (certificate)", &admin.proxy.tls, mysql_tls),
        ("admin.tls (certificate)", &admin.tls, admin_tls),
    ];
    let http_swap =
        http_swap.map(|(slot, fresh)| ("http.tls (certificates)", &**slot, Some(fresh)));
    for (key, slot, fresh) in swaps.into_iter().chain(http_swap) {
        let (was, now) = (fingerprint(slot.current()), fingerprint(fresh.clone()));
        if was != now {
            changes.push(ConfigChange {
                key: key.to_string(),
                running: was,
                file: now,
                applied: true,
            });
        }
        slot.replace(fresh);
    }
    tracing::info!(path = %path.display(), changes = changes.len(), "config reloaded");
    admin.replace(new);
    Ok(ReloadReport { path, changes })
}

/// The leaf certificate's SHA-1, as `openssl x509 -fingerprint` shows it.
fn fingerprint(tls: Option<std::sync::Arc<ServerTls>>) -> Option<String> {
    tls.map(|t| t.fingerprint.clone())
}

fn reload(admin: &AdminContext) -> Result<Reply, AdminError> {
    let report = reload_config(admin)?;
    let mut rs = ResultSet::new(&[
        ("key", ColKind::Text),
        ("running", ColKind::Text),
        ("file", ColKind::Text),
        ("status", ColKind::Text),
    ]);
    for c in report.changes {
        let status = cell(c.status());
        rs.push(vec![cell(&c.key), c.running, c.file, status]);
    }
    Ok(Reply::Rows(rs))
}
