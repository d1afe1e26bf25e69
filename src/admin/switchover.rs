//! `SWITCHOVER TO 'node'` and `FAILOVER TO 'node'`: the master changes.
//! SWITCHOVER is planned: it holds new writes, lets running transactions
//! finish, fences the old master, waits until the new one has applied
//! everything, then promotes it (on a catch-up timeout the old master keeps
//! its role). FAILOVER is forced: no catch-up wait, refused if the node is
//! down. The procedures live in `topology/failover/`; this file parses and
//! reports. With `[coordination]`, an instance that does not hold the
//! election forwards the command to the holder through etcd.

use super::wire::{ColKind, ResultSet};
use super::{AdminCommand, AdminContext, AdminError, Exec, Reply, Words};

pub struct MasterChange {
    pub target: String,
    /// FAILOVER (forced) rather than SWITCHOVER (planned).
    pub force: bool,
}

impl MasterChange {
    fn parse_as(
        w: &Words,
        keyword: &str,
        usage: &'static str,
        force: bool,
    ) -> Option<Result<Self, AdminError>> {
        if !w.starts_with(&[keyword]) {
            return None;
        }
        Some(match (w.len(), w.is(1, "TO"), w.name(2)) {
            (3, true, Some(target)) => Ok(MasterChange {
                target: target.to_string(),
                force,
            }),
            _ => Err(AdminError::Syntax { usage }),
        })
    }
}

impl AdminCommand for MasterChange {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        Self::parse_as(w, "SWITCHOVER", "SWITCHOVER TO 'node'", false)
            .or_else(|| Self::parse_as(w, "FAILOVER", "FAILOVER TO 'node'", true))
    }

    fn name(&self) -> &'static str {
        if self.force {
            "failover"
        } else {
            "switchover"
        }
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
            let done = match &proxy.coordination {
                // Another instance holds the election: it runs the change,
                // so the result is the same whichever instance was asked.
                Some(co) if !co.holds() => {
                    let fo = &proxy.config.failover;
                    let limit = fo.switchover_timeout * 3 + fo.hold;
                    co.forward(&self.target, self.force, limit)
                        .await
                        .map_err(|e| AdminError::Refused(e.to_string()))?
                }
                _ => proxy
                    .failover
                    .switchover(&self.target, self.force)
                    .await
                    .map_err(|e| AdminError::Refused(e.to_string()))?,
            };
            let mut rs = ResultSet::new(&[("result", ColKind::Text)]);
            rs.push(vec![Some(done)]);
            Ok(Reply::Rows(rs))
        })
    }
}
