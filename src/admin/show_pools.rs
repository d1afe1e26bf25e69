//! `SHOW POOLS`: per node, the pooled idle connections, those client
//! sessions hold now, and all the proxy holds against the node's limit.

use super::{cell, exact, AdminCommand, AdminContext, AdminError, Exec, Reply};
use super::{ColKind, ResultSet, Words};

pub struct ShowPools;

impl AdminCommand for ShowPools {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        exact(w, &["SHOW", "POOLS"], "SHOW POOLS", ShowPools)
    }

    fn name(&self) -> &'static str {
        "show pools"
    }

    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a> {
        let proxy = &admin.proxy;
        let idle = proxy.pools.idle_counts();
        let in_use = proxy.sessions.in_use(idle.len());
        let slots = proxy.pools.slot_counts();
        let mut rs = ResultSet::new(&[
            ("node", ColKind::Text),
            ("idle", ColKind::Int),
            ("in_use", ColKind::Int),
            ("max_idle", ColKind::Int),
            ("connections", ColKind::Int),
            ("max_connections", ColKind::Int),
        ]);
        for (id, (name, idle)) in idle.iter().enumerate() {
            let (held, limit) = slots.get(id).map_or((0, 0), |s| (s.held, s.limit));
            rs.push(vec![
                cell(name),
                cell(idle),
                cell(in_use.get(id).copied().unwrap_or(0)),
                cell(proxy.config.pool.max_idle),
                cell(held),
                cell(limit),
            ]);
        }
        super::ready(Ok(Reply::Rows(rs)))
    }
}
