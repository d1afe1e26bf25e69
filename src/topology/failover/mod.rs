//! Who may write. One controller task owns every change of master and every
//! `SET GLOBAL read_only`: discovery at start (read back from the nodes),
//! fencing, automatic failover, rejoin checks of a returning node, semi-sync
//! upkeep, and planned switchover (requested through a [`FailoverHandle`]).
//! Running them in one task means they never race each other. Reasoning and
//! guarantees: docs/failover.md.
//!
//! * `decide.rs`: the pure decisions (discovery, candidate, divergence).
//! * `control.rs`: the controller's own connections to the nodes.
//! * `gate.rs`: the [`WriteGate`] that holds writes during a switchover.
//! * `maintain.rs`: the steady state (fencing, rejoin, semi-sync).
//! * `rewind.rs`: a returning master's unacknowledged tail undone, so it
//!   can rejoin instead of staying diverged.
//! * `switchover.rs`: `SWITCHOVER TO` and `FAILOVER TO`.
//! * `authority.rs`: whether this instance may act at all, and where a new
//!   writer is recorded first (alone, or agreed with other instances).

mod authority;
mod control;
mod decide;
mod gate;
mod maintain;
mod rewind;
mod switchover;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::events::TopologyEvent;
use super::gtid::GtidPos;
use super::snapshot::{Topology, TopologySnapshot};
use super::{CheckErrorKind, NodeId, NodeState};
use crate::config::Config;
pub use authority::{Agreement, Authority, Epoch, Recording, Solo, Standing};
use control::Control;
pub use decide::{best_candidate, discover_master, has_diverged};
pub use gate::{WriteGate, WritePass};

#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    #[error("unknown node '{0}'")]
    UnknownNode(String),
    #[error("node '{0}' is down")]
    NodeDown(String),
    #[error("node '{0}' is already the master")]
    AlreadyMaster(String),
    #[error("node '{0}' has diverged from the master and cannot be promoted")]
    Diverged(String),
    #[error("no master is known")]
    NoMaster,
    #[error(
        "'{node}' did not catch up with the master within {after:?}; the old master keeps its role"
    )]
    CatchUpTimeout { node: String, after: Duration },
    #[error("'{node}' did not apply all it received from the failed master within {after:?}; not promoted (FAILOVER TO '{node}' forces it)")]
    NotCaughtUp { node: String, after: Duration },
    #[error("'{node}' lacks a commit a client got an OK for (domain and sequence of {gtid}); not promoted (FAILOVER TO '{node}' forces it)")]
    LacksAcknowledged { node: String, gtid: String },
    #[error("control statement on '{node}' failed: {error}")]
    Control { node: String, error: String },
    #[error("the failover controller is not running")]
    NotRunning,
    #[error("this instance does not hold the election; {}", match holder {
        Some(h) => format!("instance '{h}' does"),
        None => "no instance holds it now (etcd unreachable, or an election under way)".to_string(),
    })]
    NotHolder { holder: Option<String> },
    #[error("the new writer '{node}' could not be recorded, so it stays fenced: {reason}")]
    NotRecorded { node: String, reason: String },
}

/// The controller's own pace, besides acting on every published change:
/// often enough that a wait (a fence lease) ends on time.
const TICK: Duration = Duration::from_millis(500);

enum Request {
    Switchover {
        to: String,
        force: bool,
        reply: oneshot::Sender<Result<String, FailoverError>>,
    },
}

/// How the rest of the proxy asks for a switchover or a forced failover.
#[derive(Clone)]
pub struct FailoverHandle {
    tx: mpsc::Sender<Request>,
    pub gate: Arc<WriteGate>,
}

impl FailoverHandle {
    /// `SWITCHOVER TO 'node'` (`force = false`) or `FAILOVER TO 'node'`
    /// (`force = true`: no catch-up wait).
    pub async fn switchover(&self, to: &str, force: bool) -> Result<String, FailoverError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Switchover {
                to: to.to_string(),
                force,
                reply,
            })
            .await
            .map_err(|_| FailoverError::NotRunning)?;
        rx.await.map_err(|_| FailoverError::NotRunning)?
    }
}

/// The controller's side of the handle.
pub struct FailoverController {
    rx: mpsc::Receiver<Request>,
    gate: Arc<WriteGate>,
    /// Whether this instance may act, and where a new writer is recorded.
    authority: Arc<dyn Authority>,
    /// Flipped to true once the master has been read back from the nodes at
    /// start (or the wait for them ran out): the server's readiness.
    discovered: tokio::sync::watch::Sender<bool>,
}

impl FailoverController {
    /// Becomes true when [`run_failover`] has done its start discovery.
    pub fn discovered(&self) -> tokio::sync::watch::Receiver<bool> {
        self.discovered.subscribe()
    }

    /// Acts only as `authority` allows (the default: alone, [`Solo`]).
    pub fn with_authority(mut self, authority: Arc<dyn Authority>) -> FailoverController {
        self.authority = authority;
        self
    }
}

/// A handle for sessions/admin and the controller to run with [`run_failover`].
pub fn failover_channel() -> (FailoverHandle, FailoverController) {
    let (tx, rx) = mpsc::channel(8);
    let gate = Arc::new(WriteGate::default());
    (
        FailoverHandle {
            tx,
            gate: Arc::clone(&gate),
        },
        FailoverController {
            rx,
            gate,
            authority: Arc::new(Solo),
            discovered: tokio::sync::watch::Sender::new(false),
        },
    )
}

/// Runs the controller until `shutdown`. `on_event` hears of every change of
/// master as it is made. It acts on every published change of the topology
/// (a master judged down is replaced at once) and on its own tick.
pub async fn run_failover(
    topology: Arc<Topology>,
    config: Config,
    controller: FailoverController,
    on_event: impl Fn(&TopologyEvent) + Send + Sync + 'static,
    shutdown: CancellationToken,
) {
    let FailoverController {
        mut rx,
        gate,
        authority,
        discovered: discovery_done,
    } = controller;
    let authority = authority.as_ref();
    let snap = topology.snapshot();
    let mut control = Control::new(&snap, &config);
    let priority: Vec<NodeId> = config
        .nodes_by_priority()
        .iter()
        .filter_map(|n| topology.node_id(n))
        .collect();
    let fo = config.failover.clone();
    let interval = config.monitor.interval;
    let started = Instant::now();
    let mut discovered = false;
    // Nodes that lost the master role to a failover and have not been
    // checked for divergence since they came back.
    let mut demoted: HashSet<NodeId> = HashSet::new();
    // Former masters named by the record already put in `demoted`.
    let mut checked_previous: HashSet<NodeId> = HashSet::new();
    // The snapshot generation of the last veto logged (once per change).
    let mut vetoed_at: Option<u64> = None;
    let mut changes = topology.watch();
    let mut ticker = tokio::time::interval(interval.min(TICK));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            req = rx.recv() => {
                let Some(Request::Switchover { to, force, reply }) = req else { return };
                let r = match authority.standing() {
                    Standing::Follower { holder } => Err(FailoverError::NotHolder { holder }),
                    Standing::Alone | Standing::Holder { .. } => {
                        switchover::run(&topology, &mut control, &gate, &fo, authority, &to, force).await
                    }
                };
                if let Ok(done) = &r {
                    if let Some(old) = done.old {
                        demoted.insert(old);
                    }
                    on_event(&if force {
                        TopologyEvent::ForcedFailover { to }
                    } else {
                        TopologyEvent::Switchover { to }
                    });
                }
                if reply.send(r.map(|d| d.message)).is_err() {
                    tracing::debug!("switchover requester went away");
                }
                continue;
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = ticker.tick() => {}
        }
        let snap = topology.snapshot();
        let standing = authority.standing();
        if !discovered {
            let recorded = match &standing {
                Standing::Alone => false,
                // The coordination follows the record: the master comes from
                // there, never from this instance's own reading of the nodes.
                Standing::Follower { .. } => {
                    if snap.master.is_some() {
                        discovered = true;
                        discovery_done.send_replace(true);
                    }
                    continue;
                }
                Standing::Holder {
                    writer_recorded, ..
                } => *writer_recorded,
            };
            if recorded {
                discovered = true;
                discovery_done.send_replace(true);
                continue;
            }
            let all_checked = snap.nodes.iter().all(|n| n.last_check.is_some());
            let waited = started.elapsed() > interval * (config.monitor.fall + 1);
            if !all_checked && !waited {
                continue;
            }
            if let Some(m) = discover_master(&snap, &priority) {
                let name = &snap.nodes[m].name;
                let gtid = snap.nodes[m].gtid_current_pos.clone().unwrap_or_default();
                if let Err(reason) = authority.record_writer(name, &gtid, None).await {
                    tracing::warn!(master = %name, %reason, "could not record the master read back from the nodes; retrying");
                    continue;
                }
                tracing::info!(master = %name, "master read back from the nodes");
                topology.set_master(m);
            }
            discovered = true;
            discovery_done.send_replace(true);
            continue;
        }
        match &standing {
            Standing::Alone => {}
            // Fencing, failover and rejoin are the holder's alone.
            Standing::Follower { .. } => continue,
            Standing::Holder {
                writer_recorded: false,
                ..
            } => {
                // The record is gone (etcd restored empty) while this
                // instance kept its master: record that one, nothing moves.
                if let Some(m) = snap.master {
                    let n = &snap.nodes[m];
                    let gtid = n.gtid_current_pos.clone().unwrap_or_default();
                    if let Err(reason) = authority.record_writer(&n.name, &gtid, None).await {
                        tracing::warn!(master = %n.name, %reason, "could not record the master");
                    }
                }
                continue;
            }
            Standing::Holder { previous, .. } => {
                // A holder that took over learns from the record which node
                // lost the role last: it is checked before it may rejoin.
                if let Some(id) = previous.as_deref().and_then(|p| topology.node_id(p)) {
                    if snap.master != Some(id) && !checked_previous.contains(&id) {
                        checked_previous.insert(id);
                        demoted.insert(id);
                    }
                }
            }
        }
        let Some(master) = snap.master else { continue };
        let master_down =
            snap.nodes[master].state == NodeState::Down && snap.nodes[master].last_check.is_some();
        if master_down && fo.auto_failover {
            let agreement = authority.others_agree_down(&snap.nodes[master].name);
            if agreement != Agreement::Agreed {
                if vetoed_at != Some(snap.generation) {
                    tracing::warn!(node = %snap.nodes[master].name, ?agreement, "the master is down here, but another instance still reaches it: not failing over");
                    authority.vetoed(&agreement);
                    vetoed_at = Some(snap.generation);
                }
                continue;
            }
            if let Some(to) =
                fail_over(&topology, &snap, &mut control, &priority, &fo, authority).await
            {
                on_event(&TopologyEvent::AutoFailover {
                    from: snap.nodes[master].name.clone(),
                    to: snap.nodes[to].name.clone(),
                });
                demoted.insert(master);
            }
            continue;
        }
        let cx = maintain::Context {
            topology: &topology,
            fo: &fo,
            standing: &standing,
            on_event: &on_event,
        };
        maintain::run(&cx, &snap, &mut control, &mut demoted).await;
    }
}

/// The master failed its checks: replace it if it is really gone and a
/// node can take over without losing an acknowledged write. Returns the new
/// master.
async fn fail_over(
    topology: &Topology,
    snap: &TopologySnapshot,
    control: &mut Control,
    priority: &[NodeId],
    fo: &crate::config::FailoverConfig,
    authority: &dyn Authority,
) -> Option<NodeId> {
    let master = snap.master?;
    let old = &snap.nodes[master].name;
    // Down means down: a master that still accepts connections is not dead,
    // whatever its checks said, and is never failed over automatically.
    if control.accepts_connections(master, control.timeout).await {
        tracing::warn!(node = %old, "the master failed its checks but accepts connections: not failing over");
        return None;
    }
    let m = &snap.nodes[master];
    if m.last_error_kind == Some(CheckErrorKind::Unreachable) {
        // Cut off, not refused: it may be alive and writable on the other
        // side. Only once it has surely fenced itself may another node write.
        if fo.fence_lease.is_zero() {
            tracing::error!(node = %old, "the master is unreachable and the nodes do not fence themselves (failover.fence_lease = 0): not failing over automatically; FAILOVER TO forces it");
            return None;
        }
        let quiet = m
            .last_ok
            .and_then(|t| t.elapsed().ok())
            .unwrap_or(Duration::MAX);
        if quiet < fo.fence_lease {
            tracing::info!(node = %old, waited = ?quiet, lease = ?fo.fence_lease, "the master is unreachable: waiting until it has fenced itself");
            return None;
        }
    }
    let Some(to) = best_candidate(snap, master, priority) else {
        tracing::error!(node = %old, "the master is down and no node can replace it without losing transactions (none up, or positions that cross): waiting");
        return None;
    };
    let new = &snap.nodes[to].name;
    tracing::error!(old = %old, new = %new, "master is down: failing over");
    match promote(topology, control, to, fo, authority, old).await {
        Ok(()) => {
            tracing::warn!(old = %old, new = %new, "failover done");
            Some(to)
        }
        Err(e) => {
            tracing::error!(error = %e, "failover aborted; tried again at the next change or tick");
            None
        }
    }
}

/// Makes `to` the master after a failure: it first applies every
/// transaction it has received (with semi-synchronous replication, every one
/// a client got an OK for), and is not promoted if it cannot within the
/// bound; then it stops replicating from the old master (which must not push
/// back, when it returns, transactions the new master never saw), stops
/// waiting for semi-sync acks nobody can send, becomes writable, and
/// sessions see the new snapshot.
async fn promote(
    topology: &Topology,
    control: &mut Control,
    to: NodeId,
    fo: &crate::config::FailoverConfig,
    authority: &dyn Authority,
    old: &str,
) -> Result<(), FailoverError> {
    let t = control.timeout * 5;
    let began = Instant::now();
    // From here on no session flushes the OK of a commit it has not yet
    // recorded in the mark this promotion checks the candidate against.
    let _promotion = topology.begin_promotion();
    if fo.manage_semi_sync {
        // Its only semi-sync replica is the dead master: its own commits
        // (the replicated ones it is applying included) must not wait for an
        // acknowledgement nobody can send. Switched on again once a replica
        // acknowledges (maintain.rs).
        control
            .exec(to, "SET GLOBAL rpl_semi_sync_master_enabled = OFF", t)
            .await?;
    }
    let received: Option<String> = {
        let conn = control.conn(to).await?;
        match conn
            .query_first::<mysql_async::Row, _>("SHOW SLAVE STATUS")
            .await
        {
            Ok(Some(row)) => row.get_opt::<String, _>("Gtid_IO_Pos").and_then(Result::ok),
            _ => None,
        }
    };
    if let Some(pos) = received.filter(|p| !p.is_empty()) {
        let wait = format!(
            "SELECT MASTER_GTID_WAIT('{}', {})",
            pos.replace('\'', ""),
            t.as_secs_f64()
        );
        let applied: Option<i64> = control.value(to, &wait, t * 2).await?;
        tracing::info!(took = ?began.elapsed(), pos = %pos, "candidate applied what it received");
        if applied != Some(0) {
            return Err(FailoverError::NotCaughtUp {
                node: control.name(to),
                after: t,
            });
        }
    }
    // Semi-sync may not have covered every commit (a replica still
    // reconnecting, a timeout that switched it off): the proxy itself knows
    // what it acknowledged.
    let held: Option<String> = control
        .value(to, "SELECT @@GLOBAL.gtid_current_pos", t)
        .await?;
    if let Some(pos) = held.and_then(|p| p.parse::<GtidPos>().ok()) {
        tracing::info!(held = %pos, "candidate's position checked against the acknowledged commits");
        if let Some(gtid) = topology.acked_missing_from(&pos) {
            return Err(FailoverError::LacksAcknowledged {
                node: control.name(to),
                gtid: gtid.to_string(),
            });
        }
    }
    control.exec(to, "STOP SLAVE", t).await?;
    tracing::debug!(took = ?began.elapsed(), "candidate stopped replicating");
    // Recorded before it is writable: an instance that cannot record the
    // change (lost the election, etcd gone) leaves the node fenced and
    // replicating again.
    let name = control.name(to);
    let gtid: Option<String> = control
        .value(to, "SELECT @@GLOBAL.gtid_current_pos", t)
        .await?;
    if let Err(reason) = authority
        .record_writer(&name, &gtid.unwrap_or_default(), Some(old))
        .await
    {
        if let Err(e) = control.exec(to, "START SLAVE", t).await {
            tracing::warn!(error = %e, "could not restart replication on the candidate");
        }
        return Err(FailoverError::NotRecorded { node: name, reason });
    }
    if fo.manage_read_only {
        control.set_read_only(to, false).await?;
        topology.record_read_only(to, false);
    }
    tracing::debug!(took = ?began.elapsed(), "candidate writable");
    topology.set_master(to);
    Ok(())
}
