//! `SWITCHOVER TO 'node'`: the planned master change (issue 3). Parsed here
//! so the syntax is fixed; the procedure itself (hold writes, fence the old
//! master, wait for the GTID, promote) belongs to `topology/` and is not
//! implemented yet, so the command answers a clear error.

use super::{AdminCommand, AdminContext, AdminError, Exec, Words};

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
        if admin.proxy.topology.node_id(&self.target).is_none() {
            return super::ready(Err(AdminError::NoNode(self.target.clone())));
        }
        super::ready(Err(AdminError::NotImplemented("SWITCHOVER")))
    }
}
