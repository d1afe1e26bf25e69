//! `FAILOVER TO 'node'`: the forced master change: no catch-up wait,
//! refused when the node is down. The procedure lives in
//! `topology/failover.rs`; this file parses and reports.

use super::wire::{ColKind, ResultSet};
use super::{AdminCommand, AdminContext, AdminError, Exec, Reply, Words};

const USAGE: &str = "FAILOVER TO 'node'";

pub struct Failover {
    pub target: String,
}

impl AdminCommand for Failover {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        if !w.starts_with(&["FAILOVER"]) {
            return None;
        }
        Some(match (w.len(), w.is(1, "TO"), w.name(2)) {
            (3, true, Some(target)) => Ok(Failover {
                target: target.to_string(),
            }),
            _ => Err(AdminError::Syntax { usage: USAGE }),
        })
    }

    fn name(&self) -> &'static str {
        "failover"
    }

    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a> {
        Box::pin(async move {
            let proxy = &admin.proxy;
            let Some(id) = proxy.topology.node_id(&self.target) else {
                return Err(AdminError::NoNode(self.target.clone()));
            };
            if proxy
                .topology
                .snapshot()
                .node(id)
                .is_some_and(|n| n.admin != crate::topology::AdminState::Online)
            {
                return Err(AdminError::Refused(format!(
                    "'{}' is not ONLINE",
                    self.target
                )));
            }
            let done = proxy
                .failover
                .switchover(&self.target, true)
                .await
                .map_err(|e| AdminError::Refused(e.to_string()))?;
            let mut rs = ResultSet::new(&[("result", ColKind::Text)]);
            rs.push(vec![Some(done)]);
            Ok(Reply::Rows(rs))
        })
    }
}
