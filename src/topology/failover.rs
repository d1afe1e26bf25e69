//! Who may write. One controller task owns every change of master and every
//! `SET GLOBAL read_only`: discovery at start (read back from the nodes),
//! fencing, automatic failover, rejoin checks of a returning node, and planned
//! switchover (requested through a [`FailoverHandle`]). Running them in one
//! task means they never race each other. Reasoning: docs/failover.md.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::events::TopologyEvent;
use super::gtid::GtidPos;
use super::snapshot::{NodeStatus, Topology, TopologySnapshot};
use super::{NodeId, NodeState};
use crate::config::Config;

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
    #[error("control statement on '{node}' failed: {error}")]
    Control { node: String, error: String },
    #[error("the failover controller is not running")]
    NotRunning,
}

/// Holds new writes during a switchover and counts what is still writing on
/// the master: statements that passed the gate and open transactions. A
/// switchover closes the gate, then waits for that count to reach zero, so
/// no transaction is still running on the old master when it is fenced.
/// Sessions pay one atomic add and one load per master statement.
#[derive(Debug, Default)]
pub struct WriteGate {
    closed: AtomicBool,
    opened: Notify,
    active: AtomicUsize,
}

/// A master statement in flight; dropping it says the statement is done.
#[derive(Debug)]
pub struct WritePass(Arc<WriteGate>);

impl Drop for WritePass {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WriteGate {
    /// Waits while the gate is closed, at most `limit`. True if open.
    pub async fn wait_open(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.closed.load(Ordering::SeqCst) {
            let notified = self.opened.notified();
            if !self.closed.load(Ordering::SeqCst) {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return !self.closed.load(Ordering::SeqCst);
            }
        }
        true
    }

    /// Lets a master statement through (waiting while closed, at most
    /// `limit`). Counted before the closed flag is read, so a switchover that
    /// closes the gate either sees this statement or this statement sees it.
    pub async fn enter(self: &Arc<Self>, limit: Duration) -> WritePass {
        let deadline = Instant::now() + limit;
        loop {
            self.active.fetch_add(1, Ordering::SeqCst);
            if !self.closed.load(Ordering::SeqCst) || Instant::now() >= deadline {
                return WritePass(Arc::clone(self));
            }
            self.active.fetch_sub(1, Ordering::SeqCst);
            self.wait_open(deadline.saturating_duration_since(Instant::now()))
                .await;
        }
    }

    /// A session's transaction opened / ended on the master.
    pub fn tx_opened(&self) {
        self.active.fetch_add(1, Ordering::SeqCst);
    }

    pub fn tx_closed(&self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }

    /// Waits until nothing is writing through the proxy, at most `limit`.
    async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.active.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
        self.opened.notify_waiters();
    }
}

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
    /// (`force = true`: no catch-up wait, the current master is not touched).
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
    /// Flipped to true once the master has been read back from the nodes at
    /// start (or the wait for them ran out): the server's readiness.
    discovered: tokio::sync::watch::Sender<bool>,
}

impl FailoverController {
    /// Becomes true when [`run_failover`] has done its start discovery.
    pub fn discovered(&self) -> tokio::sync::watch::Receiver<bool> {
        self.discovered.subscribe()
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
            discovered: tokio::sync::watch::Sender::new(false),
        },
    )
}

/// Control connections (monitor credentials), one per node, made on demand.
struct Control {
    addresses: Vec<(String, String)>,
    user: String,
    password: String,
    timeout: Duration,
    conns: Vec<Option<mysql_async::Conn>>,
    /// Masters on which the proxy turned semi-sync waiting off (peer down).
    semisync_paused: HashSet<NodeId>,
}

impl Control {
    fn new(snap: &TopologySnapshot, config: &Config) -> Control {
        Control {
            addresses: snap
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.address.clone()))
                .collect(),
            user: config.monitor.user.clone(),
            password: config.monitor.password.clone(),
            timeout: config.monitor.timeout.max(Duration::from_secs(2)),
            conns: snap.nodes.iter().map(|_| None).collect(),
            semisync_paused: HashSet::new(),
        }
    }

    fn name(&self, id: NodeId) -> String {
        self.addresses
            .get(id)
            .map_or_else(|| "?".into(), |a| a.0.clone())
    }

    async fn conn(&mut self, id: NodeId) -> Result<&mut mysql_async::Conn, FailoverError> {
        let (name, address) = self
            .addresses
            .get(id)
            .cloned()
            .ok_or_else(|| FailoverError::UnknownNode(id.to_string()))?;
        let err = |e: String| FailoverError::Control {
            node: name.clone(),
            error: e,
        };
        if self.conns[id].is_none() {
            let (host, port) = crate::config::split_host_port(&address).map_err(err)?;
            let opts = mysql_async::OptsBuilder::default()
                .ip_or_hostname(host)
                .tcp_port(port)
                .user(Some(self.user.clone()))
                .pass(Some(self.password.clone()))
                .prefer_socket(false)
                .max_allowed_packet(Some(16 * 1024 * 1024))
                .wait_timeout(Some(28_800));
            let c = tokio::time::timeout(self.timeout, mysql_async::Conn::new(opts))
                .await
                .map_err(|_| err("connect timed out".into()))?
                .map_err(|e| err(e.to_string()))?;
            self.conns[id] = Some(c);
        }
        self.conns[id]
            .as_mut()
            .ok_or_else(|| err("no connection".into()))
    }

    /// Runs a statement on a node; on any error the connection is dropped.
    async fn exec(&mut self, id: NodeId, sql: &str, limit: Duration) -> Result<(), FailoverError> {
        // A statement without a result set reads as no row.
        self.value::<mysql_async::Value>(id, sql, limit)
            .await
            .map(drop)
    }

    async fn value<T: mysql_async::prelude::FromValue + Send + 'static>(
        &mut self,
        id: NodeId,
        sql: &str,
        limit: Duration,
    ) -> Result<Option<T>, FailoverError> {
        let name = self.name(id);
        let conn = self.conn(id).await?;
        match tokio::time::timeout(limit, conn.query_first::<T, _>(sql)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.conns[id] = None;
                Err(FailoverError::Control {
                    node: name,
                    error: format!("{sql}: {e}"),
                })
            }
            Err(_) => {
                self.conns[id] = None;
                Err(FailoverError::Control {
                    node: name,
                    error: format!("{sql}: timed out"),
                })
            }
        }
    }

    async fn set_read_only(&mut self, id: NodeId, on: bool) -> Result<(), FailoverError> {
        let sql = if on {
            "SET GLOBAL read_only = ON"
        } else {
            "SET GLOBAL read_only = OFF"
        };
        self.exec(id, sql, self.timeout * 5).await
    }
}

/// The master at start, read back from the nodes: the one writable node;
/// if several are writable (the seed's setup) or none is, config priority.
pub fn discover_master(snap: &TopologySnapshot, priority: &[NodeId]) -> Option<NodeId> {
    let up: Vec<&NodeStatus> = snap
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Up)
        .collect();
    let writable: Vec<NodeId> = up
        .iter()
        .filter(|n| n.read_only == Some(false))
        .map(|n| n.id)
        .collect();
    if writable.len() == 1 {
        return writable.first().copied();
    }
    let pool: Vec<NodeId> = if writable.is_empty() {
        up.iter().map(|n| n.id).collect()
    } else {
        writable
    };
    priority.iter().copied().find(|id| pool.contains(id))
}

/// The promotion candidate after the master failed: an Up, non-diverged
/// node that has applied the most (per-domain sequence numbers summed).
pub fn best_candidate(snap: &TopologySnapshot, exclude: NodeId) -> Option<NodeId> {
    snap.nodes
        .iter()
        .filter(|n| n.id != exclude && n.state == NodeState::Up && !n.diverged)
        .max_by_key(|n| n.gtid_current.as_ref().map_or(0, applied))
        .map(|n| n.id)
}

fn applied(pos: &GtidPos) -> u64 {
    pos.iter().map(|g| g.seq).sum()
}

/// True if `node_binlog` holds a transaction that `master` has not applied.
pub fn has_diverged(node_binlog: &GtidPos, master: &GtidPos) -> bool {
    !super::gtid::includes_all(master, node_binlog)
}

/// Runs the controller until `shutdown`. `on_event` hears of every change of
/// master as it is made.
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
        discovered: discovery_done,
    } = controller;
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
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            req = rx.recv() => {
                let Some(Request::Switchover { to, force, reply }) = req else { return };
                let r = switchover(&topology, &mut control, &gate, &fo, &to, force).await;
                if r.is_ok() {
                    on_event(&if force {
                        TopologyEvent::ForcedFailover { to }
                    } else {
                        TopologyEvent::Switchover { to }
                    });
                }
                if reply.send(r).is_err() {
                    tracing::debug!("switchover requester went away");
                }
                continue;
            }
            _ = ticker.tick() => {}
        }
        let snap = topology.snapshot();
        if !discovered {
            let all_checked = snap.nodes.iter().all(|n| n.last_check.is_some());
            let waited = started.elapsed() > interval * (config.monitor.fall + 1);
            if !all_checked && !waited {
                continue;
            }
            discovered = true;
            if let Some(m) = discover_master(&snap, &priority) {
                if snap.master != Some(m) {
                    tracing::warn!(master = %snap.nodes[m].name, "master read back from the nodes differs from config priority");
                }
                topology.set_master(m);
            }
            discovery_done.send_replace(true);
            continue;
        }
        let Some(master) = snap.master else { continue };
        let master_down =
            snap.nodes[master].state == NodeState::Down && snap.nodes[master].last_check.is_some();
        if master_down && fo.auto_failover {
            if let Some(to) = best_candidate(&snap, master) {
                tracing::error!(old = %snap.nodes[master].name, new = %snap.nodes[to].name, "master failed its checks: failing over");
                match promote(&topology, &mut control, to, fo.manage_read_only).await {
                    Ok(()) => {
                        on_event(&TopologyEvent::AutoFailover {
                            from: snap.nodes[master].name.clone(),
                            to: snap.nodes[to].name.clone(),
                        });
                        demoted.insert(master);
                    }
                    Err(e) => tracing::error!(error = %e, "failover failed; will retry"),
                }
            }
            continue;
        }
        maintain(&topology, &snap, &mut control, &fo, &mut demoted).await;
    }
}

/// Makes `to` the master: it first applies every transaction it has
/// received (with semi-synchronous replication, that is every one a client
/// got an OK for), stops replicating from the old master (which is gone and
/// must not push back transactions the new master never saw), stops waiting
/// for semi-sync acks from the dead peer, becomes writable; then sessions see
/// the new snapshot.
async fn promote(
    topology: &Topology,
    control: &mut Control,
    to: NodeId,
    manage_read_only: bool,
) -> Result<(), FailoverError> {
    let t = control.timeout * 5;
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
        if applied != Some(0) {
            tracing::warn!(node = %control.name(to), pos = %pos, "candidate did not apply all it received in time; promoting anyway");
        }
    }
    control.exec(to, "STOP SLAVE", t).await?;
    let semisync: Option<i64> = control
        .value(to, "SELECT @@GLOBAL.rpl_semi_sync_master_enabled", t)
        .await
        .unwrap_or(None);
    if semisync == Some(1) {
        control
            .exec(to, "SET GLOBAL rpl_semi_sync_master_enabled = OFF", t)
            .await?;
        control.semisync_paused.insert(to);
    }
    if manage_read_only {
        control.set_read_only(to, false).await?;
    }
    topology.set_master(to);
    Ok(())
}

/// Steady state: the master writable, every other Up node fenced, and a
/// returning former master checked for divergence before it may rejoin.
async fn maintain(
    topology: &Topology,
    snap: &TopologySnapshot,
    control: &mut Control,
    fo: &crate::config::FailoverConfig,
    demoted: &mut HashSet<NodeId>,
) {
    let Some(master) = snap.master else { return };
    let m = &snap.nodes[master];
    if fo.manage_read_only && m.state == NodeState::Up && m.read_only == Some(true) {
        tracing::info!(node = %m.name, "unfencing the master (read_only=OFF)");
        if let Err(e) = control.set_read_only(master, false).await {
            tracing::warn!(error = %e, "could not unfence the master");
        }
    }
    for n in snap
        .nodes
        .iter()
        .filter(|n| n.id != master && n.state == NodeState::Up)
    {
        if fo.manage_read_only && n.read_only == Some(false) {
            tracing::info!(node = %n.name, "fencing a node that is not the master (read_only=ON)");
            if let Err(e) = control.set_read_only(n.id, true).await {
                tracing::warn!(error = %e, "could not fence");
                continue;
            }
        }
        if !demoted.contains(&n.id) {
            continue;
        }
        let (Some(own), Some(master_pos)) = (
            n.gtid_binlog_pos
                .as_deref()
                .and_then(|p| p.parse::<GtidPos>().ok()),
            m.gtid_current.as_ref(),
        ) else {
            continue;
        };
        if has_diverged(&own, master_pos) {
            if !n.diverged {
                tracing::error!(node = %n.name, binlog = %own, master = %master_pos,
                    "node has transactions the master lacks: kept out of rotation; repair it by hand");
                topology.set_diverged(n.id, true);
            }
            continue;
        }
        if fo.auto_rejoin {
            rejoin(control, snap, n, master, fo).await;
        }
        demoted.remove(&n.id);
    }
}

/// Points a returning node's replication at the master if needed and starts it.
async fn rejoin(
    control: &mut Control,
    snap: &TopologySnapshot,
    n: &NodeStatus,
    master: NodeId,
    fo: &crate::config::FailoverConfig,
) {
    let t = control.timeout * 5;
    let Some((host, port)) = crate::config::split_host_port(&snap.nodes[master].address).ok()
    else {
        return;
    };
    let points_at_master = n
        .replication
        .as_ref()
        .is_some_and(|r| r.master_port == Some(port));
    if !points_at_master {
        let (Some(user), Some(pass)) = (&fo.replication_user, &fo.replication_password) else {
            tracing::warn!(node = %n.name, "does not replicate from the master; set failover.replication_user to re-point it");
            return;
        };
        let sql = format!(
            "CHANGE MASTER TO MASTER_HOST='{host}', MASTER_PORT={port}, MASTER_USER='{}', MASTER_PASSWORD='{}', MASTER_USE_GTID=slave_pos",
            user.replace('\'', "''"),
            pass.replace('\'', "''")
        );
        if let Err(e) = control.exec(n.id, "STOP SLAVE", t).await {
            tracing::warn!(error = %e, "rejoin");
        }
        if let Err(e) = control.exec(n.id, &sql, t).await {
            tracing::warn!(error = %e, "rejoin");
            return;
        }
    }
    if !n.replication.as_ref().is_some_and(|r| r.is_replicating()) {
        tracing::info!(node = %n.name, "starting replication from the master (rejoin)");
        if let Err(e) = control.exec(n.id, "START SLAVE", t).await {
            tracing::warn!(error = %e, "rejoin");
        }
    }
    // A replica is back: the master waits for its acknowledgements again.
    if control.semisync_paused.remove(&master) {
        if let Err(e) = control
            .exec(master, "SET GLOBAL rpl_semi_sync_master_enabled = ON", t)
            .await
        {
            tracing::warn!(error = %e, "could not re-enable semi-sync");
        }
    }
}

/// Planned switchover (or forced failover) to the node named `to`.
async fn switchover(
    topology: &Topology,
    control: &mut Control,
    gate: &WriteGate,
    fo: &crate::config::FailoverConfig,
    to: &str,
    force: bool,
) -> Result<String, FailoverError> {
    let snap = topology.snapshot();
    let new = topology
        .node_id(to)
        .ok_or_else(|| FailoverError::UnknownNode(to.into()))?;
    let target = &snap.nodes[new];
    if target.state != NodeState::Up {
        return Err(FailoverError::NodeDown(to.into()));
    }
    if snap.master == Some(new) {
        return Err(FailoverError::AlreadyMaster(to.into()));
    }
    if target.diverged && !force {
        return Err(FailoverError::Diverged(to.into()));
    }
    let Some(old) = snap.master else {
        return Err(FailoverError::NoMaster);
    };
    let limit = fo.switchover_timeout;
    if force {
        control.set_read_only(new, false).await?;
        topology.set_master(new);
        if snap.nodes[old].state == NodeState::Up {
            if let Err(e) = control.set_read_only(old, true).await {
                tracing::warn!(error = %e, "could not fence the old master");
            }
        }
        return Ok(format!("forced failover to {to}"));
    }
    gate.close();
    if !gate.wait_idle(limit).await {
        tracing::warn!("transactions still open after {limit:?}; they will be killed");
    }
    let result = switch_with_gate_closed(topology, control, old, new, limit).await;
    gate.open();
    result.map(|waited| {
        format!(
            "switched over from {} to {to} (caught up in {waited:?})",
            snap.nodes[old].name
        )
    })
}

async fn switch_with_gate_closed(
    topology: &Topology,
    control: &mut Control,
    old: NodeId,
    new: NodeId,
    limit: Duration,
) -> Result<Duration, FailoverError> {
    let t = control.timeout * 5;
    // Let transactions that are already running finish, then end the rest.
    let deadline = Instant::now() + limit;
    loop {
        let open: Option<u64> = control
            .value(old, "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID()", t)
            .await?;
        if open.unwrap_or(0) == 0 {
            break;
        }
        if Instant::now() >= deadline {
            let ids: Vec<u64> = {
                let conn = control.conn(old).await?;
                conn.query("SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID()")
                    .await
                    .unwrap_or_default()
            };
            for id in ids {
                tracing::warn!(
                    thread = id,
                    "killing a transaction that outlived the switchover timeout"
                );
                if let Err(e) = control.exec(old, &format!("KILL {id}"), t).await {
                    tracing::debug!(error = %e, "kill");
                }
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    control.set_read_only(old, true).await?;
    let pos: Option<String> = control
        .value(old, "SELECT @@GLOBAL.gtid_binlog_pos", t)
        .await?;
    let pos: GtidPos = pos.unwrap_or_default().parse().unwrap_or_default();
    let started = Instant::now();
    // MASTER_GTID_WAIT follows the replica's slave position, which never
    // holds the new master's own domain: wait only for what it lacks.
    let have: Option<String> = control
        .value(new, "SELECT @@GLOBAL.gtid_current_pos", t)
        .await?;
    let have: GtidPos = have.unwrap_or_default().parse().unwrap_or_default();
    let missing: Vec<String> = pos
        .iter()
        .filter(|g| !super::gtid::includes(&have, g))
        .map(|g| g.to_string())
        .collect();
    if !missing.is_empty() {
        let wait = format!(
            "SELECT MASTER_GTID_WAIT('{}', {})",
            missing.join(","),
            limit.as_secs_f64()
        );
        let caught_up: Option<i64> = control.value(new, &wait, limit + t).await?;
        if caught_up != Some(0) {
            tracing::error!(pos = %pos, "new master did not catch up; restoring the old master");
            control.set_read_only(old, false).await?;
            let name = topology.snapshot().nodes[new].name.clone();
            return Err(FailoverError::CatchUpTimeout {
                node: name,
                after: limit,
            });
        }
    }
    control.set_read_only(new, false).await?;
    topology.set_master(new);
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Role;

    fn snap(nodes: &[(bool, Option<bool>, &str)]) -> TopologySnapshot {
        let nodes = nodes
            .iter()
            .enumerate()
            .map(|(id, &(up, ro, gtid))| {
                let mut n = NodeStatus::new(id, &format!("n{id}"), "127.0.0.1:1", 1, Role::Replica);
                if up {
                    n.state = NodeState::Up;
                }
                n.read_only = ro;
                n.gtid_current = gtid.parse().ok();
                n
            })
            .collect();
        TopologySnapshot {
            nodes,
            master: Some(0),
            generation: 0,
        }
    }

    #[test]
    fn discovery_prefers_the_one_writable_node() {
        let s = snap(&[(true, Some(true), ""), (true, Some(false), "")]);
        assert_eq!(discover_master(&s, &[0, 1]), Some(1));
        // both writable (the seed's setup): config priority
        let s = snap(&[(true, Some(false), ""), (true, Some(false), "")]);
        assert_eq!(discover_master(&s, &[1, 0]), Some(1));
        // none writable: priority among the Up ones
        let s = snap(&[(false, None, ""), (true, Some(true), "")]);
        assert_eq!(discover_master(&s, &[0, 1]), Some(1));
        let s = snap(&[(false, None, ""), (false, None, "")]);
        assert_eq!(discover_master(&s, &[0, 1]), None);
    }

    #[test]
    fn candidate_has_applied_the_most() {
        let s = snap(&[
            (false, None, "1-1-100"),
            (true, Some(true), "1-1-90,2-2-5"),
            (true, Some(true), "1-1-99,2-2-5"),
        ]);
        assert_eq!(best_candidate(&s, 0), Some(2));
        let s = snap(&[(false, None, ""), (false, None, "")]);
        assert_eq!(best_candidate(&s, 0), None);
    }

    #[test]
    fn divergence_is_a_transaction_the_master_lacks() {
        let master: GtidPos = "1-1-100,2-2-7".parse().unwrap();
        assert!(!has_diverged(&"1-1-100".parse().unwrap(), &master));
        assert!(!has_diverged(&"1-1-90,2-2-7".parse().unwrap(), &master));
        assert!(has_diverged(&"1-1-101".parse().unwrap(), &master));
        assert!(has_diverged(&"3-3-1".parse().unwrap(), &master));
    }

    #[tokio::test]
    async fn gate_holds_until_opened() {
        let gate = Arc::new(WriteGate::default());
        assert!(gate.wait_open(Duration::from_millis(1)).await);
        gate.close();
        assert!(!gate.wait_open(Duration::from_millis(20)).await);
        let g = Arc::clone(&gate);
        let waiter = tokio::spawn(async move { g.wait_open(Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.open();
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn switchover_waits_for_statements_and_transactions() {
        let gate = Arc::new(WriteGate::default());
        let pass = gate.enter(Duration::from_secs(1)).await;
        gate.tx_opened();
        gate.close();
        assert!(
            !gate.wait_idle(Duration::from_millis(20)).await,
            "a statement and a transaction run"
        );
        drop(pass);
        assert!(
            !gate.wait_idle(Duration::from_millis(20)).await,
            "the transaction is still open"
        );
        gate.tx_closed();
        assert!(gate.wait_idle(Duration::from_millis(20)).await);
        // A new statement waits at the closed gate and is not counted meanwhile.
        let g = Arc::clone(&gate);
        let held = tokio::spawn(async move { g.enter(Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(gate.wait_idle(Duration::from_millis(1)).await);
        gate.open();
        let pass = held.await.unwrap();
        assert!(!gate.wait_idle(Duration::from_millis(1)).await);
        drop(pass);
    }
}
