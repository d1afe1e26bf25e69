//! `SWITCHOVER TO 'node'`: the planned master change. Holds new writes,
//! lets running transactions finish, fences the old master, waits until the
//! new one has applied everything (MASTER_GTID_WAIT), then promotes it; on a
//! catch-up timeout the old master keeps its role. The procedure lives in
//! `topology/failover.rs`; this file parses and reports.

use super::wire::{ColKind, ResultSet};
use super::{AdminCommand, AdminContext, AdminError, Exec, Reply, Words};

const USAGE: &str = "SWITCHOVER TO 'node'";

pub struct Switchover {
    pub target: String,
}

impl AdminCommand for Switchover {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        if !w.starts_with(&["SWITCHOVER"]) {
            return None;
        }
        Some(match (w.len(), w.is(1, "TO"), w.name(2)) {
            (3, true, Some(target)) => Ok(Switchover {
                target: target.to_string(),
            }),
            _ => Err(AdminError::Syntax { usage: USAGE }),
        })
    }

    fn name(&self) -> &'static str {
        "switchover"
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
                .switchover(&self.target, false)
                .await
                .map_err(|e| AdminError::Refused(e.to_string()))?;
            let mut rs = ResultSet::new(&[("result", ColKind::Text)]);
            rs.push(vec![Some(done)]);
            Ok(Reply::Rows(rs))
        })
    }
}
