//! `SET BACKEND 'node' ONLINE | OFFLINE | DRAIN` and `SET BACKEND 'node'
//! WEIGHT n`: the operator's say over read rotation. The state is written
//! through `Topology::set_admin_state`, apart from health, so no check ever
//! undoes it. OFFLINE also closes the node's idle pooled connections; DRAIN
//! lets sessions keep the connections they hold. The master keeps taking
//! writes whatever its admin state (moving writes is SWITCHOVER), so OFFLINE
//! is refused on the master; DRAIN there only removes it from read rotation.
//! With `[coordination]` the state is written to etcd, so every instance
//! applies it and it survives restarts.

use super::{cell, AdminCommand, AdminContext, AdminError, Exec, Reply};
use super::{ColKind, ResultSet, Words};
use crate::topology::{AdminState, Role};

const USAGE: &str = "SET BACKEND 'node' ONLINE | OFFLINE | DRAIN | WEIGHT n";

/// Largest weight accepted (HAProxy's limit is 256; more is never needed).
const MAX_WEIGHT: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    State(AdminState),
    Weight(u32),
}

pub struct SetBackend {
    node: String,
    change: Change,
}

impl AdminCommand for SetBackend {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        if !w.starts_with(&["SET", "BACKEND"]) {
            return None;
        }
        let syntax = Err(AdminError::Syntax { usage: USAGE });
        let Some(node) = w.name(2) else {
            return Some(syntax);
        };
        let change = match w.len() {
            4 if w.is(3, "ONLINE") => Change::State(AdminState::Online),
            4 if w.is(3, "OFFLINE") => Change::State(AdminState::Offline),
            4 if w.is(3, "DRAIN") => Change::State(AdminState::Drain),
            5 if w.is(3, "WEIGHT") => match w.number(4).filter(|&n| n <= MAX_WEIGHT) {
                Some(n) => Change::Weight(n as u32),
                None => return Some(syntax),
            },
            _ => return Some(syntax),
        };
        Some(Ok(SetBackend {
            node: node.to_string(),
            change,
        }))
    }

    fn name(&self) -> &'static str {
        "set backend"
    }

    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a> {
        match &admin.proxy.coordination {
            None => super::ready(self.apply(admin)),
            Some(co) => Box::pin(async move {
                // Shared by every instance and kept across restarts: written
                // to etcd first (refused if it cannot be), then applied here
                // at once; the others apply it from their watch.
                self.check(admin)?;
                let (state, weight) = match self.change {
                    Change::State(s) => (Some(s.to_string()), None),
                    Change::Weight(w) => (None, Some(w)),
                };
                co.set_operator(&self.node, state, weight)
                    .await
                    .map_err(|e| {
                        AdminError::Refused(format!(
                            "operator state not changed on any instance: {e}"
                        ))
                    })?;
                self.apply(admin)
            }),
        }
    }
}

impl SetBackend {
    /// The change is allowed: the node exists and OFFLINE is not asked of the master.
    fn check(&self, admin: &AdminContext) -> Result<(), AdminError> {
        let topology = &admin.proxy.topology;
        let id = topology
            .node_id(&self.node)
            .ok_or_else(|| AdminError::NoNode(self.node.clone()))?;
        let snap = topology.snapshot();
        let is_master = snap.node(id).is_some_and(|n| n.role == Role::Master);
        if self.change == Change::State(AdminState::Offline) && is_master {
            return Err(AdminError::Refused(format!(
                "'{}' is the master and takes every write; SWITCHOVER TO another node first (DRAIN only stops its reads)",
                self.node
            )));
        }
        Ok(())
    }

    fn apply(&self, admin: &AdminContext) -> Result<Reply, AdminError> {
        let proxy = &admin.proxy;
        let topology = &proxy.topology;
        let no_node = || AdminError::NoNode(self.node.clone());
        let id = topology.node_id(&self.node).ok_or_else(no_node)?;
        self.check(admin)?;
        let (setting, before, after) = match self.change {
            Change::State(state) => {
                let before = topology.set_admin_state(id, state).ok_or_else(no_node)?;
                if state == AdminState::Offline {
                    proxy.pools.flush_node(id);
                }
                ("admin", before.to_string(), state.to_string())
            }
            Change::Weight(w) => {
                let before = topology.set_weight(id, w).ok_or_else(no_node)?;
                ("weight", before.to_string(), w.to_string())
            }
        };
        tracing::info!(node = %self.node, setting, %before, %after, "admin: backend changed");
        let mut rs = ResultSet::new(&[
            ("node", ColKind::Text),
            ("setting", ColKind::Text),
            ("before", ColKind::Text),
            ("after", ColKind::Text),
        ]);
        rs.push(vec![
            cell(&self.node),
            cell(setting),
            cell(before),
            cell(after),
        ]);
        Ok(Reply::Rows(rs))
    }
}
