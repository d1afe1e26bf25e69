//! `FAILOVER TO 'node'`: the forced master change (issue 3): no catch-up
//! wait, refused when the node is down. Parsed here so the syntax is fixed;
//! the promotion itself belongs to `topology/` and is not implemented yet,
//! so the command answers a clear error.

use super::{AdminCommand, AdminContext, AdminError, Exec, Words};

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
        if admin.proxy.topology.node_id(&self.target).is_none() {
            return super::ready(Err(AdminError::NoNode(self.target.clone())));
        }
        super::ready(Err(AdminError::NotImplemented("FAILOVER")))
    }
}
