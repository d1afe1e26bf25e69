//! The published view of the cluster: [`TopologySnapshot`] (immutable, one
//! per change) and [`Topology`], which holds the current one in an
//! `ArcSwap`. Sessions call [`Topology::snapshot`] once per statement and
//! take no lock; only the topology module (the monitor, later failover)
//! publishes a new snapshot.

use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use super::acked::{AckedCommits, AckedMark, Uncovered};
use super::check::{CheckError, CheckErrorKind, Observation, SemiSync};
use super::gtid::{self, Gtid, GtidPos};
use super::health::ChangeReason;
use super::replication::ReplicationStatus;
use super::select::{ReadSelector, Weighted};
use super::signals::Signals;
use super::{AdminState, NodeId, NodeState, Role};
use crate::config::Config;

/// One node in a snapshot. Observed values come from the node's last
/// *successful* check and stay while it fails (`last_error` says so).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    pub id: NodeId,
    pub name: String,
    pub address: String,
    /// Share of reads: the config's, or the operator's `SET BACKEND ... WEIGHT`.
    pub weight: u32,
    pub state: NodeState,
    /// The operator's decision; written only through [`Topology::set_admin_state`].
    pub admin: AdminState,
    /// Why the node is in `state`; `None` until its first change.
    pub state_reason: Option<ChangeReason>,
    pub role: Role,
    pub read_only: Option<bool>,
    pub server_id: Option<u32>,
    pub version: Option<String>,
    pub gtid_current_pos: Option<String>,
    /// `gtid_current_pos` parsed; `None` if unknown or unparsable.
    pub gtid_current: Option<GtidPos>,
    pub gtid_binlog_pos: Option<String>,
    /// From `SHOW SLAVE STATUS`; `None` = not a replica (or never checked).
    pub replication: Option<ReplicationStatus>,
    /// The last check's error; `None` when it passed.
    pub last_error: Option<String>,
    /// What kind of error `last_error` is (metrics, alerts).
    pub last_error_kind: Option<CheckErrorKind>,
    /// Semi-sync replication as of the last successful check.
    pub semisync: SemiSync,
    pub last_check: Option<SystemTime>,
    /// When a check last passed: the node was reachable and answering then.
    pub last_ok: Option<SystemTime>,
    pub check_latency: Option<Duration>,
    /// Has transactions the master lacks (found when it came back after a
    /// failover): kept out of rotation and reported, never rejoined silently.
    /// Holds why it was not rewound, for the operator who repairs it.
    pub diverged: Option<String>,
}

impl NodeStatus {
    /// A configured node nobody has checked yet: Down, nothing observed.
    /// (Also how other modules' tests build snapshots by hand.)
    pub fn new(id: NodeId, name: &str, address: &str, weight: u32, role: Role) -> NodeStatus {
        NodeStatus {
            id,
            name: name.to_string(),
            address: address.to_string(),
            weight,
            state: NodeState::Down,
            admin: AdminState::Online,
            state_reason: None,
            role,
            read_only: None,
            server_id: None,
            version: None,
            gtid_current_pos: None,
            gtid_current: None,
            gtid_binlog_pos: None,
            replication: None,
            last_error: None,
            last_error_kind: None,
            semisync: SemiSync::default(),
            last_check: None,
            last_ok: None,
            check_latency: None,
            diverged: None,
        }
    }

    /// Applies one check's outcome (the health machine already decided the state).
    pub(super) fn record(&mut self, check: &CheckRecord) {
        match &check.result {
            Ok(seen) => {
                self.read_only = Some(seen.read_only);
                self.server_id = Some(seen.server_id);
                self.version = Some(seen.version.clone());
                self.gtid_current_pos = Some(seen.gtid_current_pos.clone());
                self.gtid_current = check.gtid_current.clone();
                self.gtid_binlog_pos = Some(seen.gtid_binlog_pos.clone());
                self.replication = seen.replication.clone();
                self.semisync = seen.semisync;
                self.last_error = None;
                self.last_error_kind = None;
                self.last_ok = Some(check.at);
            }
            Err(e) => {
                self.last_error = Some(e.to_string());
                self.last_error_kind = Some(e.kind());
            }
        }
        self.state = check.state;
        if let Some(reason) = &check.reason {
            self.state_reason = Some(reason.clone());
        }
        self.last_check = Some(check.at);
        self.check_latency = Some(check.latency);
    }

    /// Has this node applied `gtid` (as of its last successful check)?
    /// False when its position is unknown.
    pub fn has_applied(&self, gtid: &Gtid) -> bool {
        self.gtid_current
            .as_ref()
            .is_some_and(|pos| gtid::includes(pos, gtid))
    }
}

/// One check's outcome as the monitor hands it to [`NodeStatus::record`].
#[derive(Debug)]
pub(super) struct CheckRecord {
    pub result: Result<Observation, CheckError>,
    /// `result`'s `gtid_current_pos`, parsed once by the monitor.
    pub gtid_current: Option<GtidPos>,
    pub state: NodeState,
    /// Set when this check changed the state.
    pub reason: Option<ChangeReason>,
    pub at: SystemTime,
    pub latency: Duration,
}

/// The cluster at one moment. Never mutated once published.
#[derive(Debug, Clone, PartialEq)]
pub struct TopologySnapshot {
    /// Indexed by [`NodeId`], in config order (node names sorted).
    pub nodes: Vec<NodeStatus>,
    pub master: Option<NodeId>,
    /// Grows by one with every published snapshot.
    pub generation: u64,
}

impl TopologySnapshot {
    /// A read node for random `r`: weighted among Up nodes with weight > 0,
    /// else the master if Up, else `None`. Pure; the caller draws `r`.
    pub fn pick_read(&self, r: u64) -> Option<NodeId> {
        Weighted.select(self, r, &|_| true)
    }

    pub fn master(&self) -> Option<&NodeStatus> {
        self.master.and_then(|id| self.nodes.get(id))
    }

    /// A node that may serve reads: the master when Up; a replica when Up,
    /// not diverged, answering the monitor, and replicating from the current
    /// master with both threads running and no more than `max_lag` behind.
    /// While no master is named or the master is down, an Up replica holds
    /// the newest data there is, so it serves reads whatever its replication
    /// says (a session's own writes are still checked by GTID).
    pub fn readable(&self, id: NodeId, max_lag: Duration) -> bool {
        let Some(n) = self.nodes.get(id) else {
            return false;
        };
        if n.state != NodeState::Up {
            return false;
        }
        if Some(id) == self.master {
            return true;
        }
        if n.diverged.is_some() || n.last_error_kind == Some(CheckErrorKind::Denied) {
            return false;
        }
        if self.master().is_none_or(|m| m.state != NodeState::Up) {
            return true;
        }
        let Some(r) = &n.replication else {
            return false;
        };
        let lag_ok = r
            .seconds_behind_master
            .is_some_and(|s| s <= max_lag.as_secs());
        r.is_replicating() && lag_ok && self.replicates_from_master(r)
    }

    /// Does this replication link point at the current master's port?
    fn replicates_from_master(&self, r: &ReplicationStatus) -> bool {
        let Some(master) = self.master() else {
            return false;
        };
        let port = master
            .address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok());
        r.master_port.is_some() && r.master_port == port
    }

    /// [`TopologySnapshot::pick_read`] among [`TopologySnapshot::readable`] nodes.
    pub fn pick_readable(&self, r: u64, max_lag: Duration) -> Option<NodeId> {
        Weighted.select(self, r, &|n| self.readable(n.id, max_lag))
    }

    /// False for Down nodes and for ids that are not in the snapshot.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes.get(id).is_some_and(|n| n.state == NodeState::Up)
    }

    pub fn node(&self, id: NodeId) -> Option<&NodeStatus> {
        self.nodes.get(id)
    }
}

/// The current snapshot plus what never changes (node names).
#[derive(Debug)]
pub struct Topology {
    current: ArcSwap<TopologySnapshot>,
    names: Vec<String>,
    signals: Signals,
    acked: AckedCommits,
    /// Failovers checking a candidate against the mark (see
    /// [`Topology::begin_promotion`]).
    promoting: AtomicUsize,
}

/// A failover's check of its candidate is under way; dropping it ends that.
#[derive(Debug)]
pub struct Promotion<'a>(&'a Topology);

impl Drop for Promotion<'_> {
    fn drop(&mut self) {
        self.0.promoting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Topology {
    /// All nodes unchecked (Down) and no master: the failover controller
    /// names it once it has read the nodes back (until then writes wait, so
    /// none reaches a node chosen from the config alone).
    pub fn new(config: &Config) -> Arc<Topology> {
        let names: Vec<String> = config.nodes.keys().cloned().collect();
        let master: Option<NodeId> = None;
        let nodes = config
            .nodes
            .iter()
            .enumerate()
            .map(|(id, (name, node))| {
                let role = if Some(id) == master {
                    Role::Master
                } else {
                    Role::Replica
                };
                NodeStatus::new(id, name, &node.address, node.weight, role)
            })
            .collect();
        let snapshot = TopologySnapshot {
            nodes,
            master,
            generation: 0,
        };
        Arc::new(Topology {
            signals: Signals::new(names.len()),
            acked: AckedCommits::default(),
            promoting: AtomicUsize::new(0),
            current: ArcSwap::from_pointee(snapshot),
            names,
        })
    }

    /// The current snapshot; cheap (no lock), keep it for one statement.
    pub fn snapshot(&self) -> Arc<TopologySnapshot> {
        self.current.load_full()
    }

    /// The current snapshot, borrowed: for the per-statement paths, where an `Arc`
    /// clone would be an atomic increment and decrement on one counter that every
    /// session shares.
    pub fn current(&self) -> arc_swap::Guard<Arc<TopologySnapshot>> {
        self.current.load()
    }

    /// A client got an OK for the commit `gtid` (see acked.rs).
    pub fn record_acked(&self, gtid: &Gtid) {
        self.acked.record(gtid);
    }

    /// A session is about to give its client the OK of `gtid`, committed on
    /// `node`: records it, then says whether the OK may go out, which it
    /// may while `node` is the master and no failover is checking a
    /// candidate. Recorded first, so a check that reads the mark after this
    /// sees the commit, and one that began before it has this say no: no
    /// client gets an OK for a commit the new master may lack.
    pub fn acknowledge(&self, node: NodeId, gtid: &Gtid) -> bool {
        self.acked.record(gtid);
        // With the fence in `begin_promotion`: this load sees the promotion,
        // or the promotion's read of the mark sees the record.
        fence(Ordering::SeqCst);
        self.promoting.load(Ordering::SeqCst) == 0 && self.master() == Some(node)
    }

    /// The failover controller is about to read the mark to check its
    /// candidate: from now until the guard drops (the new master published,
    /// or the failover given up), [`Topology::acknowledge`] refuses.
    pub fn begin_promotion(&self) -> Promotion<'_> {
        self.promoting.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        Promotion(self)
    }

    /// The nodes of `snap` (bit i for node i) whose applied position, as the
    /// monitor last saw it, holds every commit a client got an OK for; none
    /// while the mark cannot vouch for every commit.
    pub fn applied_all_acked(&self, snap: &TopologySnapshot) -> u64 {
        if !self.acked.tracked() {
            return 0;
        }
        snap.nodes
            .iter()
            .enumerate()
            .take(64)
            .filter(|(_, n)| {
                n.gtid_current
                    .as_ref()
                    .is_some_and(|pos| self.acked.missing_from(pos).is_none())
            })
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    /// A forced failover gave up what the new master lacks.
    pub fn forget_acked(&self) {
        self.acked.forget();
    }

    /// A session may have switched off the report of its commits' GTIDs
    /// (see acked.rs): no rewind can call a commit unacknowledged any more.
    pub fn acked_untracked(&self) {
        self.acked.untracked();
    }

    /// The acknowledged commits as they are now, to compare with a node
    /// position read after it (see [`AckedMark`]).
    pub fn acked_mark(&self) -> AckedMark {
        self.acked.mark()
    }

    /// The first acknowledged commit that `pos` lacks: a node at `pos`
    /// must not become the master.
    pub fn acked_missing_from(&self, pos: &GtidPos) -> Option<Gtid> {
        self.acked.missing_from(pos)
    }

    /// A node answered its first check at `pos`: the mark of acknowledged
    /// commits knows nothing of what it held then.
    pub(super) fn watch_from(&self, pos: &GtidPos) {
        self.acked.watch_from(pos);
    }

    /// Whether the mark of acknowledged commits would show an OK for `gtid`
    /// (see acked.rs): what lets a rewind call a commit unacknowledged.
    pub fn acked_covers(&self, gtid: &Gtid) -> Result<(), Uncovered> {
        self.acked.covers(gtid)
    }

    /// A session saw `node` fail on the data path (refused, reset): the
    /// monitor checks it now rather than at its next interval.
    pub fn suspect(&self, node: NodeId) {
        self.signals.suspect(node);
    }

    /// Resolves when a session suspects `node` (the monitor waits on it).
    pub(super) async fn suspected(&self, node: NodeId) {
        self.signals.suspected(node).await;
    }

    /// Changes as they are published: `changed()` on the receiver resolves
    /// at the next one (the failover controller, and sessions holding a
    /// statement until a master is named, wait on it).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.signals.watch()
    }

    fn published(&self) {
        self.signals.published(self.current.load().generation);
    }

    /// The current master.
    pub fn master(&self) -> Option<NodeId> {
        self.current.load().master
    }

    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.names.iter().position(|n| n == name)
    }

    /// Makes `id` the master (failover, switchover, discovery at start).
    /// Only `topology/` calls it; every session sees it at its next statement.
    pub(crate) fn set_master(&self, id: NodeId) {
        self.current.rcu(|current| {
            let mut next = TopologySnapshot::clone(current);
            next.master = Some(id);
            for n in &mut next.nodes {
                n.role = if n.id == id {
                    Role::Master
                } else {
                    Role::Replica
                };
            }
            next.generation += 1;
            next
        });
        self.published();
    }

    /// The writer another instance recorded (coordination through etcd):
    /// the one way a master chosen outside this instance's controller
    /// reaches the snapshot, and so `router::place`. No change, no new
    /// generation. Sessions see it at their next statement.
    pub fn follow_writer(&self, id: NodeId) {
        if self.current.load().master == Some(id) || id >= self.names.len() {
            return;
        }
        self.set_master(id);
    }

    /// Publishes `snapshot` as it is: tests of other modules set up the
    /// cluster they need (a master, a replica up and replicating, none).
    #[cfg(test)]
    pub(crate) fn replace(&self, snapshot: TopologySnapshot) {
        self.current.store(Arc::new(snapshot));
        self.published();
    }

    /// The failover controller set `@@read_only` on a node: the snapshot
    /// says so at once rather than at the node's next check.
    pub(crate) fn record_read_only(&self, id: NodeId, read_only: bool) {
        self.update_node(id, |n| n.read_only = Some(read_only));
    }

    /// Marks a node as diverged, with why it was not repaired (or, with
    /// None, no longer diverged).
    pub(crate) fn set_diverged(&self, id: NodeId, why: Option<String>) {
        self.update_node(id, |n| n.diverged.clone_from(&why));
    }

    /// The operator sets a node's [`AdminState`]; returns the previous one,
    /// or `None` for an unknown id. The monitor never writes this field.
    pub fn set_admin_state(&self, id: NodeId, admin: AdminState) -> Option<AdminState> {
        let before = self.snapshot().node(id)?.admin;
        self.update_node(id, |n| n.admin = admin);
        Some(before)
    }

    /// The operator (or a config reload) sets a node's read weight; returns
    /// the previous one, or `None` for an unknown id.
    pub fn set_weight(&self, id: NodeId, weight: u32) -> Option<u32> {
        let before = self.snapshot().node(id)?.weight;
        self.update_node(id, |n| n.weight = weight);
        Some(before)
    }

    /// Publishes a copy of the current snapshot with `change` applied to
    /// node `id` and the generation bumped. Concurrent writers (one monitor
    /// task per node) are serialised by `rcu`, which re-applies `change` to
    /// the newest snapshot if another writer got in first.
    pub(super) fn update_node(&self, id: NodeId, change: impl Fn(&mut NodeStatus)) {
        self.current.rcu(|current| {
            let mut next = TopologySnapshot::clone(current);
            if let Some(node) = next.nodes.get_mut(id) {
                change(node);
            }
            next.generation += 1;
            next
        });
        self.published();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn config(nodes: &[(&str, u32, u32)]) -> Config {
        let mut toml =
            String::from("[mysql]\nlisten = \"127.0.0.1:0\"\n[users.app]\npassword = \"x\"\n");
        for (i, (name, weight, priority)) in nodes.iter().enumerate() {
            toml.push_str(&format!(
                "[nodes.{name}]\naddress = \"127.0.0.1:{}\"\nweight = {weight}\npriority = {priority}\n",
                4000 + i
            ));
        }
        Config::from_toml_str(&toml, Vec::new()).unwrap()
    }

    #[test]
    fn no_master_before_discovery_and_ids_follow_name_order() {
        let t = Topology::new(&config(&[("cn2", 1, 10), ("cn1", 1, 20), ("cn3", 0, 10)]));
        let s = t.snapshot();
        let names: Vec<&str> = s.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["cn1", "cn2", "cn3"]);
        assert!(s.nodes.iter().enumerate().all(|(i, n)| n.id == i));
        // Nothing is written anywhere until the nodes have been read back.
        assert_eq!(s.master, None);
        assert!(s.nodes.iter().all(|n| n.role == Role::Replica));
        t.set_master(1);
        let s = t.snapshot();
        assert_eq!(s.master().map(|m| m.name.as_str()), Some("cn2"));
        assert_eq!(s.nodes[1].role, Role::Master);
        assert_eq!(t.node_id("cn3"), Some(2));
        assert_eq!(t.node_id("nope"), None);
    }

    #[test]
    fn nodes_start_down_and_unchecked() {
        let t = Topology::new(&config(&[("a", 1, 1), ("b", 1, 2)]));
        let s = t.snapshot();
        assert_eq!(s.generation, 0);
        assert!(!s.is_up(0) && !s.is_up(1) && !s.is_up(7));
        assert!(s.nodes.iter().all(|n| n.last_check.is_none()));
        assert_eq!(s.pick_read(0), None);
    }

    #[test]
    fn admin_state_and_weight_survive_health_updates() {
        let t = Topology::new(&config(&[("a", 1, 1), ("b", 1, 2)]));
        let up = |t: &Topology, id| {
            let rec = CheckRecord {
                result: Err(CheckError::Stalled {
                    after: Duration::from_secs(1),
                }),
                gtid_current: None,
                state: NodeState::Up,
                reason: None,
                at: SystemTime::now(),
                latency: Duration::from_millis(1),
            };
            t.update_node(id, |n| n.record(&rec));
        };
        up(&t, 0);
        up(&t, 1);
        assert_eq!(
            t.set_admin_state(1, AdminState::Offline),
            Some(AdminState::Online)
        );
        assert_eq!(t.set_weight(0, 7), Some(1));
        assert_eq!(t.set_admin_state(9, AdminState::Drain), None);
        // A later check rewrites health, never the operator's fields.
        up(&t, 1);
        let s = t.snapshot();
        assert_eq!(s.nodes[1].admin, AdminState::Offline);
        assert_eq!(s.nodes[0].weight, 7);
        assert!(s.is_up(1));
        // Offline node b is out of rotation: every read goes to a.
        assert!((0..1000).all(|r| s.pick_read(r) == Some(0)));
        t.set_admin_state(1, AdminState::Online);
        let s = t.snapshot();
        assert!((0..1000).any(|r| s.pick_read(r) == Some(1)));
    }

    #[test]
    fn update_publishes_a_new_generation_and_old_snapshots_stay() {
        let t = Topology::new(&config(&[("a", 1, 1), ("b", 1, 2)]));
        let before = t.snapshot();
        let seen = Observation {
            read_only: true,
            server_id: 12,
            version: "10.11".into(),
            gtid_current_pos: "0-1-5".into(),
            gtid_binlog_pos: String::new(),
            replication: None,
            semisync: Default::default(),
        };
        let at = SystemTime::now();
        let passed = CheckRecord {
            result: Ok(seen),
            gtid_current: "0-1-5".parse().ok(),
            state: NodeState::Up,
            reason: Some(ChangeReason::FirstCheckPassed),
            at,
            latency: Duration::from_millis(3),
        };
        t.update_node(1, |n| n.record(&passed));
        let after = t.snapshot();
        assert_eq!(after.generation, 1);
        assert!(after.is_up(1) && !after.is_up(0));
        assert_eq!(after.nodes[1].server_id, Some(12));
        assert_eq!(after.nodes[1].gtid_current_pos.as_deref(), Some("0-1-5"));
        assert!(after.nodes[1].has_applied(&"0-9-5".parse().unwrap()));
        assert!(!after.nodes[1].has_applied(&"0-1-6".parse().unwrap()));
        assert!(
            !after.nodes[0].has_applied(&"0-1-1".parse().unwrap()),
            "unknown position"
        );
        assert_eq!(
            after.nodes[1].state_reason,
            Some(ChangeReason::FirstCheckPassed)
        );
        // A reader holding the old snapshot still sees the old world.
        assert!(!before.is_up(1));
        assert_eq!(before.generation, 0);
        // A failure keeps the observed values and records the error.
        let failed = CheckRecord {
            result: Err(CheckError::Stalled {
                after: Duration::from_secs(1),
            }),
            gtid_current: None,
            state: NodeState::Up,
            reason: None,
            at,
            latency: Duration::from_secs(1),
        };
        t.update_node(1, |n| n.record(&failed));
        let s = t.snapshot();
        assert_eq!(s.generation, 2);
        assert_eq!(s.nodes[1].server_id, Some(12));
        assert_eq!(
            s.nodes[1].last_error.as_deref(),
            Some("no answer within 1s (the node still accepts connections)")
        );
        assert_eq!(
            s.nodes[1].state_reason,
            Some(ChangeReason::FirstCheckPassed)
        );
    }

    fn gtid(s: &str) -> Gtid {
        s.parse().unwrap()
    }

    #[test]
    fn a_commit_ok_goes_out_only_from_the_master_and_never_while_a_promotion_checks() {
        let t = Topology::new(&config(&[("cn1", 1, 1), ("cn2", 1, 2)]));
        t.set_master(0);
        assert!(t.acknowledge(0, &gtid("1-1-1")));
        // Not from a node that is not the master.
        assert!(!t.acknowledge(1, &gtid("1-1-2")));
        let promotion = t.begin_promotion();
        assert!(
            !t.acknowledge(0, &gtid("1-1-3")),
            "an OK relayed while a failover checks its candidate"
        );
        drop(promotion);
        assert!(t.acknowledge(0, &gtid("1-1-4")));
        // The failover published its new master: the old one's OKs stay back.
        t.set_master(1);
        assert!(!t.acknowledge(0, &gtid("1-1-5")));
        assert!(t.acknowledge(1, &gtid("2-2-1")));
    }

    #[test]
    fn every_commit_asked_about_is_in_the_mark_a_promotion_checks() {
        let t = Topology::new(&config(&[("cn1", 1, 1), ("cn2", 1, 2)]));
        t.set_master(0);
        let candidate: GtidPos = "1-1-6".parse().unwrap();
        assert!(t.acknowledge(0, &gtid("1-1-7")));
        let _promotion = t.begin_promotion();
        // Sent before the promotion began: its check must see it.
        let missing = |pos: &GtidPos| t.acked_missing_from(pos).map(|g| (g.domain, g.seq));
        assert_eq!(missing(&candidate), Some((1, 7)));
        // Refused after it began, and recorded all the same: a candidate
        // without it is refused too (the OK was withheld, so this only
        // errs on the safe side).
        assert!(!t.acknowledge(0, &gtid("1-1-8")));
        assert_eq!(missing(&"1-1-7".parse().unwrap()), Some((1, 8)));
    }
}
