//! The cluster as the proxy sees it, and the only writer of node state.
//!
//! The monitor (`monitor.rs`) checks every node over its own connection
//! (`check.rs`), turns results into Up/Down with rise/fall (`health.rs`) and
//! publishes an immutable [`TopologySnapshot`] (`snapshot.rs`). Sessions load
//! the snapshot once per statement without a lock and pick a read node with a
//! [`ReadSelector`] (`select.rs`). `gtid.rs` compares GTID positions for
//! read-your-writes; `replication.rs` types `SHOW SLAVE STATUS`. The failover
//! controller (`failover.rs`) reports each change of master as a
//! [`TopologyEvent`] (`events.rs`) to a callback; metrics count them from outside.
//! With several instances, the writer named in etcd reaches the snapshot
//! through one seam, [`Topology::follow_writer`], and the controller acts
//! only as its [`Authority`] allows.

use std::fmt;

mod acked;
mod check;
mod events;
pub mod failover;
pub mod gtid;
mod health;
mod monitor;
mod node_ssl;
mod replication;
mod select;
mod signals;
mod snapshot;

pub use acked::{AckedMark, Uncovered};
pub use check::{
    CheckError, CheckErrorKind, MysqlProbe, Observation, Probe, ProbeFailure, SemiSync,
};
pub use events::TopologyEvent;
pub use failover::{
    failover_channel, run_failover, Agreement, Authority, Epoch, FailoverError, FailoverHandle,
    Recording, Solo, Standing, WriteGate,
};
pub use health::{ChangeReason, Health, Transition};
pub use monitor::{run_monitor, run_probes};
pub use node_ssl::{NameError, NodeSsl};
pub use replication::{IoThread, ReplicationStatus};
pub use select::{ReadSelector, Weighted};
pub use snapshot::{NodeStatus, Topology, TopologySnapshot};

/// Index of a node in [`TopologySnapshot::nodes`]: config order, which is
/// node-name order (the config's `BTreeMap`). Stable for the process's life.
pub type NodeId = usize;

/// Health as the checks see it. The operator's say is a separate field
/// ([`AdminState`]), so a check never overrides an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    Up,
    Down,
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeState::Up => "up",
            NodeState::Down => "down",
        })
    }
}

/// What the operator decided for a node (admin `SET BACKEND`), kept apart
/// from health: only the admin interface writes it, and no check undoes it.
/// Reads go only to `Online` nodes; the master keeps taking writes whatever
/// this says (moving writes is a switchover).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AdminState {
    /// In read rotation when healthy.
    #[default]
    Online,
    /// Out of read rotation; its idle pooled connections are closed.
    Offline,
    /// Out of read rotation for new reads; connections in use finish normally.
    Drain,
}

impl fmt::Display for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdminState::Online => "online",
            AdminState::Offline => "offline",
            AdminState::Drain => "drain",
        })
    }
}

/// What the proxy uses a node for. Writes go only to the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Master,
    Replica,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Master => "master",
            Role::Replica => "replica",
        })
    }
}
