//! Cluster topology — TEMPORARY stand-in with the agreed API until the
//! topology branch lands (static: every node Up, master by priority).

use std::sync::Arc;

use arc_swap::ArcSwap;

pub type NodeId = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Up,
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Replica,
}

#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub id: NodeId,
    pub name: String,
    pub address: String,
    pub weight: u32,
    pub state: NodeState,
    pub role: Role,
    pub gtid_current_pos: Option<String>,
    pub version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TopologySnapshot {
    pub nodes: Vec<NodeStatus>,
    pub master: Option<NodeId>,
    pub generation: u64,
}

impl TopologySnapshot {
    pub fn pick_read(&self, r: u64) -> Option<NodeId> {
        let cands: Vec<&NodeStatus> = self
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Up && n.weight > 0)
            .collect();
        let total: u64 = cands.iter().map(|n| n.weight as u64).sum();
        if total == 0 {
            return self.master.filter(|&m| self.is_up(m));
        }
        let mut x = r % total;
        for n in cands {
            if x < n.weight as u64 {
                return Some(n.id);
            }
            x -= n.weight as u64;
        }
        None
    }
    pub fn master(&self) -> Option<&NodeStatus> {
        self.master.and_then(|m| self.nodes.get(m))
    }
    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes.get(id).is_some_and(|n| n.state == NodeState::Up)
    }
}

pub struct Topology {
    snapshot: ArcSwap<TopologySnapshot>,
}

impl Topology {
    pub fn new(config: &crate::config::Config) -> Arc<Topology> {
        let master_name = config.nodes_by_priority().first().map(|s| s.to_string());
        let nodes: Vec<NodeStatus> = config
            .nodes
            .iter()
            .enumerate()
            .map(|(id, (name, n))| NodeStatus {
                id,
                name: name.clone(),
                address: n.address.clone(),
                weight: n.weight,
                state: NodeState::Up,
                role: if Some(name) == master_name.as_ref() {
                    Role::Master
                } else {
                    Role::Replica
                },
                gtid_current_pos: None,
                version: None,
            })
            .collect();
        let master = nodes.iter().position(|n| n.role == Role::Master);
        Arc::new(Topology {
            snapshot: ArcSwap::from_pointee(TopologySnapshot {
                nodes,
                master,
                generation: 0,
            }),
        })
    }
    pub fn snapshot(&self) -> Arc<TopologySnapshot> {
        self.snapshot.load_full()
    }
}

pub async fn run_monitor(
    _t: Arc<Topology>,
    _c: crate::config::Config,
    shutdown: tokio_util::sync::CancellationToken,
) {
    shutdown.cancelled().await
}

/// Whether `node` has applied the session's last write (stub: unknown → no).
pub fn has_applied(_snap: &TopologySnapshot, _node: NodeId, _gtid: Option<&str>) -> bool {
    false
}
