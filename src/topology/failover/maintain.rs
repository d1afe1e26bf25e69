//! The steady state, checked at every change and tick: the master writable,
//! every other up node fenced, a returning former master checked for
//! divergence before it may rejoin (its unacknowledged tail rewound if it
//! has one, rewind.rs), and rejoined, and semi-sync on at the master as
//! soon as a replica can acknowledge again.

use std::collections::HashSet;

use super::authority::Standing;
use super::control::Control;
use super::decide::has_diverged;
use super::rewind::{rewind, Rewound};
use crate::config::FailoverConfig;
use crate::topology::events::TopologyEvent;
use crate::topology::gtid::GtidPos;
use crate::topology::snapshot::{NodeStatus, Topology, TopologySnapshot};
use crate::topology::{NodeId, NodeState};

/// What the steady state needs besides the snapshot and the connections.
pub(super) struct Context<'a> {
    pub(super) topology: &'a Topology,
    pub(super) fo: &'a FailoverConfig,
    pub(super) standing: &'a Standing,
    pub(super) on_event: &'a (dyn Fn(&TopologyEvent) + Send + Sync),
}

pub(super) async fn run(
    cx: &Context<'_>,
    snap: &TopologySnapshot,
    control: &mut Control,
    demoted: &mut HashSet<NodeId>,
) {
    let (topology, fo) = (cx.topology, cx.fo);
    let Some(master) = snap.master else { return };
    let m = &snap.nodes[master];
    if fo.manage_read_only && m.state == NodeState::Up && m.read_only == Some(true) {
        tracing::info!(node = %m.name, "unfencing the master (read_only=OFF)");
        match control.set_read_only(master, false).await {
            Ok(()) => topology.record_read_only(master, false),
            Err(e) => tracing::warn!(error = %e, "could not unfence the master"),
        }
    }
    for n in snap
        .nodes
        .iter()
        .filter(|n| n.id != master && n.state == NodeState::Up)
    {
        if fo.manage_read_only && n.read_only == Some(false) {
            tracing::warn!(node = %n.name, "a node that is not the master is writable: fencing it");
            if let Err(e) = control.fence(n.id).await {
                tracing::warn!(error = %e, "could not fence");
                continue;
            }
            topology.record_read_only(n.id, true);
        }
        if !demoted.contains(&n.id) {
            continue;
        }
        // Read now, the returning node first: whatever it has meanwhile
        // replicated from the master is then in the master's position too
        // (the snapshot's may be a check old, and would look behind).
        let Some((own, master_pos)) = positions(control, n.id, master).await else {
            continue;
        };
        // A rewind stops the node's replication; the snapshot may not show it yet.
        let mut stopped = false;
        if has_diverged(&own, &master_pos) {
            if n.diverged.is_some() {
                continue;
            }
            match rewind(
                control,
                topology,
                fo.rewind_unacknowledged,
                cx.standing,
                n.id,
                master,
            )
            .await
            {
                Err(reason) => {
                    tracing::error!(node = %n.name, binlog = %own, master = %master_pos, %reason,
                        "node has transactions the master lacks and was not rewound: kept out of rotation; repair it by hand");
                    topology.set_diverged(n.id, Some(format!("not rewound: {reason}")));
                    continue;
                }
                Ok(done) => {
                    log_rewound(&n.name, &own, &master_pos, &done);
                    (cx.on_event)(&TopologyEvent::Rewound {
                        node: n.name.clone(),
                        transactions: done.transactions.len(),
                    });
                    stopped = true;
                }
            }
            match positions(control, n.id, master).await {
                Some((own, master_pos)) if !has_diverged(&own, &master_pos) => {}
                after => {
                    tracing::error!(node = %n.name, positions = ?after,
                        "node still holds transactions the master lacks after the rewind (or its position is unreadable): kept out of rotation; repair it by hand");
                    let why = match after {
                        Some((own, master_pos)) => format!("still has transactions the master lacks after a rewind (binlog {own}, master {master_pos})"),
                        None => "its position is unreadable after a rewind".to_string(),
                    };
                    topology.set_diverged(n.id, Some(why));
                    continue;
                }
            }
        }
        if n.diverged.is_some() {
            // Repaired by hand (or its extra transactions reached the master).
            topology.set_diverged(n.id, None);
        }
        // After a rewind the node is brought back whatever auto_rejoin says:
        // the rewind is what took its replication down.
        if fo.auto_rejoin || stopped {
            rejoin(control, snap, n, master, fo, stopped).await;
        }
        demoted.remove(&n.id);
    }
    if fo.manage_semi_sync {
        semi_sync(snap, control, master).await;
    }
}

/// What a rewind undid, at error level (someone's writes are gone): GTIDs,
/// tables and row counts, never row values.
fn log_rewound(node: &str, own: &GtidPos, master: &GtidPos, done: &Rewound) {
    let gtids: Vec<String> = done.transactions.iter().map(|g| g.to_string()).collect();
    let rows: Vec<String> = done
        .rows
        .iter()
        .map(|(table, n)| format!("{table}: {n}"))
        .collect();
    tracing::error!(node = %node, binlog = %own, master = %master,
        transactions = %gtids.join(","), rows = %rows.join(", "),
        "rewound the returning node's unacknowledged transactions (no client got an OK for them): it rejoins the master");
}

/// The returning node's binlog position, then the master's applied one.
async fn positions(
    control: &mut Control,
    node: NodeId,
    master: NodeId,
) -> Option<(GtidPos, GtidPos)> {
    let t = control.timeout * 5;
    let own: Option<String> = control
        .value(node, "SELECT @@GLOBAL.gtid_binlog_pos", t)
        .await
        .ok()?;
    let master_pos: Option<String> = control
        .value(master, "SELECT @@GLOBAL.gtid_current_pos", t)
        .await
        .ok()?;
    Some((own?.parse().ok()?, master_pos?.parse().ok()?))
}

/// Points a returning node's replication at the master if needed and starts
/// it (`stopped`: known stopped, whatever the snapshot says).
async fn rejoin(
    control: &mut Control,
    snap: &TopologySnapshot,
    n: &NodeStatus,
    master: NodeId,
    fo: &FailoverConfig,
    stopped: bool,
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
            pass.expose().replace('\'', "''")
        );
        if let Err(e) = control.exec(n.id, "STOP SLAVE", t).await {
            tracing::warn!(error = %e, "rejoin");
        }
        if let Err(e) = control.exec(n.id, &sql, t).await {
            tracing::warn!(error = %e, "rejoin");
            return;
        }
    }
    if stopped || !n.replication.as_ref().is_some_and(|r| r.is_replicating()) {
        tracing::info!(node = %n.name, "starting replication from the master (rejoin)");
        if let Err(e) = control.exec(n.id, "START SLAVE", t).await {
            tracing::warn!(error = %e, "rejoin");
        }
    }
}

/// Semi-sync switched on at the master whenever a replica with its semi-sync
/// side active is connected (so no acknowledged commit can be lost at the
/// next failover), if someone switched it off. While no replica is
/// connected MariaDB itself runs asynchronously
/// (`rpl_semi_sync_master_wait_no_slave = OFF`, set at promotion).
async fn semi_sync(snap: &TopologySnapshot, control: &mut Control, master: NodeId) {
    let m = &snap.nodes[master];
    if m.state != NodeState::Up {
        return;
    }
    let acknowledging = snap.nodes.iter().any(|n| {
        n.id != master
            && n.state == NodeState::Up
            && n.semisync.slave == Some(true)
            && n.replication.as_ref().is_some_and(|r| r.is_replicating())
    });
    let t = control.timeout * 5;
    if acknowledging && m.semisync.master_enabled == Some(false) {
        tracing::info!(node = %m.name, "a replica acknowledges again: semi-sync on at the master");
        match control
            .exec(master, "SET GLOBAL rpl_semi_sync_master_enabled = ON", t)
            .await
        {
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "could not re-enable semi-sync"),
        }
    }
}
