//! `RELOAD CONFIG`: re-reads the file the proxy started with (plus the
//! `SQLPROXY_` environment), validates it, and only then applies what can
//! change live: node weights (where the file changed them) and the admin
//! account. Everything else that differs is reported as needing a restart
//! and keeps its running value. A file that does not load or validate
//! changes nothing: the error says why and the running config stays.

use std::collections::BTreeMap;

use super::show_config::{flatten_config_raw, MASK};
use super::{cell, exact, AdminCommand, AdminContext, AdminError, Exec, Reply};
use super::{ColKind, ResultSet, Words};
use crate::config::Config;

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
}

fn reload(admin: &AdminContext) -> Result<Reply, AdminError> {
    let old = admin.running();
    let Some(path) = old.source.clone() else {
        return Err(AdminError::Refused(
            "the proxy was started without a config file: nothing to reload".into(),
        ));
    };
    let new = Config::load(&path, std::env::vars())
        .map_err(|e| AdminError::Config(format!("{}: {e}", path.display())))?;
    let was: BTreeMap<String, String> = flatten_config_raw(&old).into_iter().collect();
    let now: BTreeMap<String, String> = flatten_config_raw(&new).into_iter().collect();
    let mut rs = ResultSet::new(&[
        ("key", ColKind::Text),
        ("running", ColKind::Text),
        ("file", ColKind::Text),
        ("status", ColKind::Text),
    ]);
    let keys: std::collections::BTreeSet<&String> = was.keys().chain(now.keys()).collect();
    let topology = &admin.proxy.topology;
    for key in keys {
        let (a, b) = (was.get(key), now.get(key));
        if a == b {
            continue;
        }
        let mut status = if live(key) {
            "applied"
        } else {
            "restart needed"
        };
        if let Some(name) = key
            .strip_prefix("nodes.")
            .and_then(|k| k.strip_suffix(".weight"))
        {
            let weight = new.nodes.get(name).map(|n| n.weight);
            match (topology.node_id(name), weight) {
                (Some(id), Some(w)) if old.nodes.contains_key(name) => {
                    topology.set_weight(id, w);
                }
                _ => status = "restart needed",
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
        rs.push(vec![cell(key), show(a), show(b), cell(status)]);
    }
    tracing::info!(path = %path.display(), changes = rs.rows.len(), "admin: config reloaded");
    admin.replace(new);
    Ok(Reply::Rows(rs))
}
