//! An operator moves the master. `SWITCHOVER TO`: hold new writes, let
//! running transactions finish, fence the old master (read_only, its client
//! connections killed), wait until the new one has everything, then unfence
//! it. `FAILOVER TO` (forced): no catch-up wait, but the old master is still
//! fenced first wherever it can be reached. Either way, at no moment are two
//! nodes writable.

use std::time::Duration;

use tokio::time::Instant;

use super::authority::Authority;
use super::control::Control;
use super::gate::WriteGate;
use super::FailoverError;
use crate::config::FailoverConfig;
use crate::topology::gtid::{self, GtidPos};
use crate::topology::snapshot::Topology;
use crate::topology::{NodeId, NodeState};

/// A change of master that was made.
pub(super) struct Done {
    pub message: String,
    /// The former master, to check for divergence when it next shows up.
    pub old: Option<NodeId>,
}

pub(super) async fn run(
    topology: &Topology,
    control: &mut Control,
    gate: &WriteGate,
    fo: &FailoverConfig,
    authority: &dyn Authority,
    to: &str,
    force: bool,
) -> Result<Done, FailoverError> {
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
    if target.diverged.is_some() && !force {
        return Err(FailoverError::Diverged(to.into()));
    }
    if force {
        return forced(topology, control, fo, authority, snap.master, new, to).await;
    }
    let Some(old) = snap.master else {
        return Err(FailoverError::NoMaster);
    };
    let limit = fo.switchover_timeout;
    gate.close();
    if !gate.wait_idle(limit).await {
        tracing::warn!("transactions still open after {limit:?}; they will be killed");
    }
    let result = with_gate_closed(topology, control, authority, old, new, limit).await;
    gate.open();
    let waited = result?;
    Ok(Done {
        message: format!(
            "switched over from {} to {to} (caught up in {waited:?})",
            snap.nodes[old].name
        ),
        old: Some(old),
    })
}

/// `FAILOVER TO`: the old master, if there is one and it can be reached, is
/// fenced before the new one takes writes; one that cannot be reached is
/// fenced when it comes back (and checked for divergence).
async fn forced(
    topology: &Topology,
    control: &mut Control,
    fo: &FailoverConfig,
    authority: &dyn Authority,
    old: Option<NodeId>,
    new: NodeId,
    to: &str,
) -> Result<Done, FailoverError> {
    if let Some(old) = old.filter(|_| fo.manage_read_only) {
        match control.fence(old).await {
            Ok(killed) => {
                tracing::warn!(node = %control.name(old), killed, "old master fenced before the forced failover")
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not fence the old master; it is fenced when it comes back")
            }
        }
    }
    control
        .exec(new, "STOP SLAVE", control.timeout * 5)
        .await
        .ok();
    let gtid: Option<String> = control
        .value(new, "SELECT @@GLOBAL.gtid_current_pos", control.timeout * 5)
        .await?;
    let previous = old.map(|o| control.name(o));
    authority
        .record_writer(to, &gtid.unwrap_or_default(), previous.as_deref())
        .await
        .map_err(|reason| FailoverError::NotRecorded {
            node: to.to_string(),
            reason,
        })?;
    if fo.manage_read_only {
        control.set_read_only(new, false).await?;
        topology.record_read_only(new, false);
    }
    // The operator chose to give up what `new` lacks: from here on, only
    // what the new master acknowledges counts.
    topology.forget_acked();
    topology.set_master(new);
    Ok(Done {
        message: format!("forced failover to {to}"),
        old,
    })
}

async fn with_gate_closed(
    topology: &Topology,
    control: &mut Control,
    authority: &dyn Authority,
    old: NodeId,
    new: NodeId,
    limit: Duration,
) -> Result<Duration, FailoverError> {
    let t = control.timeout * 5;
    // Let transactions that are already running finish; the fence ends the rest.
    let deadline = Instant::now() + limit;
    loop {
        let open: Option<u64> = control
            .value(old, "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID()", t)
            .await?;
        if open.unwrap_or(0) == 0 || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = control.fence(old).await?;
    if killed > 0 {
        tracing::warn!(
            killed,
            "client connections on the old master killed at the switchover"
        );
    }
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
        .filter(|g| !gtid::includes(&have, g))
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
    // Recorded before the new master is writable; if it cannot be (the
    // election lost, etcd gone), the old master gets its role back.
    let new_name = control.name(new);
    let old_name = control.name(old);
    let recorded = authority
        .record_writer(
            &new_name,
            &have_after(control, new, t).await,
            Some(&old_name),
        )
        .await;
    if let Err(reason) = recorded {
        tracing::error!(%reason, "the new master could not be recorded; restoring the old master");
        control.set_read_only(old, false).await?;
        return Err(FailoverError::NotRecorded {
            node: new_name,
            reason,
        });
    }
    control.set_read_only(new, false).await?;
    topology.record_read_only(old, true);
    topology.record_read_only(new, false);
    topology.set_master(new);
    Ok(started.elapsed())
}

/// The new master's position once it has caught up (for the writer record).
async fn have_after(control: &mut Control, new: NodeId, t: Duration) -> String {
    control
        .value::<String>(new, "SELECT @@GLOBAL.gtid_current_pos", t)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}
