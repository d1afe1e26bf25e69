//! The one task that talks to etcd for this instance. A *session* is one
//! connection's life: a fresh lease (kept alive every third of its TTL),
//! this instance's view published under it, the whole cluster prefix read
//! once and then watched from the next revision (so no change is missed
//! between the two), and a bid for the election whenever the holder key is
//! free. Any etcd error ends the session; the task says so loudly, keeps
//! the last known writer (routing is unchanged, nothing is promoted) and
//! starts a new session when etcd answers again.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, PutOptions, Txn,
    TxnOp, WatchOptions,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::keys::{self, InstanceView, KeyKind, OperatorRecord, WriterRecord};
use super::{bounded, CoordinationError, Coordinator};
use crate::topology::{AdminState, FailoverHandle};

/// Pause between two attempts at reaching etcd: short, since a failover
/// cannot happen while etcd is out of reach; bounded so a dead etcd is not
/// hammered.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Runs until `shutdown`: sessions one after the other.
pub async fn run(coord: Arc<Coordinator>, failover: FailoverHandle, shutdown: CancellationToken) {
    let mut pause = RETRY_MIN;
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => Ok(()),
            r = session(&coord, &failover, &shutdown) => r,
        };
        let was_up = {
            let mut s = coord.state();
            let was_up = s.etcd_up;
            s.etcd_up = false;
            s.client = None;
            s.lease = None;
            s.lease_alive_until = None;
            if let Err(e) = &result {
                s.last_error = Some(e.to_string());
            }
            was_up
        };
        if shutdown.is_cancelled() {
            return;
        }
        if let Err(e) = result {
            if was_up {
                let writer = coord.view().writer.map(|w| w.node);
                tracing::error!(error = %e, last_writer = ?writer,
                    "etcd unreachable: this instance promotes nothing and keeps sending writes to the last recorded writer");
                pause = RETRY_MIN;
            } else {
                tracing::debug!(error = %e, "etcd still unreachable");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(RETRY_MAX);
    }
}

async fn session(
    coord: &Arc<Coordinator>,
    failover: &FailoverHandle,
    shutdown: &CancellationToken,
) -> Result<(), CoordinationError> {
    let t = coord.config.timeout;
    let options = ConnectOptions::new()
        .with_connect_timeout(t)
        // HTTP/2 pings notice a dead connection under a quiet watch.
        .with_keep_alive(t, t)
        .with_keep_alive_while_idle(true)
        // A member without a leader (etcd without quorum) must not answer.
        .with_require_leader(true);
    let mut client = bounded(
        "connect",
        t,
        Client::connect(coord.config.endpoints(), Some(options)),
    )
    .await?;
    let ttl = coord.config.lease_seconds();
    let lease = bounded("grant a lease", t, client.lease_grant(ttl, None))
        .await?
        .id();
    let (mut keeper, mut keepalive) =
        bounded("keep the lease alive", t, client.lease_keep_alive(lease)).await?;
    let alive_for = coord.config.lease_ttl.saturating_sub(t);
    // Read everything, then watch from the next revision: nothing in between is lost.
    let prefix = coord.keys.prefix().to_string();
    let all = bounded(
        "read the cluster's keys",
        t,
        client.get(prefix.clone(), Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let revision = all.header().map_or(0, |h| h.revision());
    {
        let mut s = coord.state();
        s.client = Some(client.clone());
        s.lease = Some(lease);
        s.lease_alive_until = Some(Instant::now() + alive_for);
        s.holder = None;
        s.instances.clear();
        // What etcd holds now is the truth, even an older epoch (an etcd
        // restored from a backup): the topology keeps its master meanwhile.
        s.writer = None;
    }
    let mut writer_seen = false;
    let mut operators_seen = Vec::new();
    for kv in all.kvs() {
        match apply_put(coord, failover, kv) {
            Some(KeyKind::Writer) => writer_seen = true,
            Some(KeyKind::Operator(node)) => operators_seen.push(node.to_string()),
            _ => {}
        }
    }
    if !writer_seen {
        tracing::warn!("no writer record in etcd yet: the holder records the master it reads back from the nodes");
    }
    reset_operators_not_in(coord, &operators_seen);
    let mut watch = bounded(
        "watch the cluster's keys",
        t,
        client.watch(
            prefix,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            ),
        ),
    )
    .await?;
    {
        let mut s = coord.state();
        s.etcd_up = true;
        s.last_error = None;
    }
    tracing::info!(instance = %coord.instance, lease, "etcd session started");
    let mut published: Option<InstanceView> = None;
    publish(coord, &mut client, lease, &mut published).await?;
    campaign(coord, &mut client, lease).await?;
    let mut changes = coord.topology.watch();
    let mut tick = tokio::time::interval(coord.config.lease_ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                // Leaving cleanly: the election and this view go at once,
                // not a lease later.
                if let Err(e) = bounded("revoke the lease", t, client.lease_revoke(lease)).await {
                    tracing::debug!(error = %e, "lease not revoked; it expires");
                }
                return Ok(());
            }
            _ = tick.tick() => {
                let overdue = coord
                    .state()
                    .lease_alive_until
                    .is_none_or(|until| Instant::now() >= until);
                if overdue {
                    return Err(CoordinationError::Unreachable(
                        "no keepalive answer within the lease".into(),
                    ));
                }
                bounded("send a keepalive", t, keeper.keep_alive()).await?;
            }
            answer = keepalive.message() => {
                match answer.map_err(CoordinationError::etcd("keepalive"))? {
                    Some(r) if r.ttl() > 0 => {
                        coord.state().lease_alive_until = Some(Instant::now() + alive_for);
                    }
                    Some(_) => return Err(CoordinationError::LeaseLost),
                    None => return Err(CoordinationError::Unreachable("keepalive stream ended".into())),
                }
            }
            message = watch.message() => {
                let Some(resp) = message.map_err(CoordinationError::etcd("watch"))? else {
                    return Err(CoordinationError::Unreachable("watch ended".into()));
                };
                if resp.canceled() {
                    return Err(CoordinationError::Etcd {
                        what: "watch",
                        error: format!("canceled: {}", resp.cancel_reason()),
                    });
                }
                let mut holder_gone = false;
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    match ev.event_type() {
                        EventType::Put => {
                            apply_put(coord, failover, kv);
                        }
                        EventType::Delete => {
                            holder_gone |= apply_delete(coord, kv) == Some(KeyKind::Holder);
                        }
                    }
                }
                if holder_gone {
                    campaign(coord, &mut client, lease).await?;
                }
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                publish(coord, &mut client, lease, &mut published).await?;
            }
            () = coord.republish.notified() => {
                publish(coord, &mut client, lease, &mut published).await?;
            }
        }
    }
}

/// Puts this instance's view under its lease, if it changed.
async fn publish(
    coord: &Coordinator,
    client: &mut Client,
    lease: i64,
    published: &mut Option<InstanceView>,
) -> Result<(), CoordinationError> {
    let view = coord.own_view();
    if published.as_ref() == Some(&view) {
        return Ok(());
    }
    bounded(
        "publish this instance's view",
        coord.config.timeout,
        client.put(
            coord.keys.instance(&coord.instance),
            keys::encode(&view),
            Some(PutOptions::new().with_lease(lease)),
        ),
    )
    .await?;
    *published = Some(view);
    Ok(())
}

/// Takes the election if nobody holds it: the holder key is created only if
/// it does not exist, under this instance's lease, so it goes when the
/// instance does. A key of this instance's previous session (another lease)
/// is removed first: it cannot be kept, and waiting for it to expire would
/// leave the cluster without a holder for a lease.
async fn campaign(
    coord: &Coordinator,
    client: &mut Client,
    lease: i64,
) -> Result<(), CoordinationError> {
    let t = coord.config.timeout;
    let key = coord.keys.holder();
    let stale =
        matches!(&coord.state().holder, Some((name, l)) if *name == coord.instance && *l != lease);
    if stale {
        let txn = Txn::new()
            .when([Compare::value(
                key.clone(),
                CompareOp::Equal,
                coord.instance.clone(),
            )])
            .and_then([TxnOp::delete(key.clone(), None)]);
        bounded("drop a stale holder key", t, client.txn(txn)).await?;
    }
    let txn = Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key,
            coord.instance.clone(),
            Some(PutOptions::new().with_lease(lease)),
        )]);
    let won = bounded("campaign", t, client.txn(txn)).await?.succeeded();
    if won {
        coord.state().holder = Some((coord.instance.clone(), lease));
        tracing::warn!(instance = %coord.instance, "this instance holds the election: it alone runs failover, fencing and rejoin");
        coord.republish.notify_one();
    }
    Ok(())
}

/// Applies one key's new value; returns what it was.
fn apply_put<'a>(
    coord: &Arc<Coordinator>,
    failover: &FailoverHandle,
    kv: &'a KeyValue,
) -> Option<KeyKind<'a>> {
    let key = kv.key_str().ok()?;
    let kind = coord.keys.kind(key);
    match &kind {
        KeyKind::Holder => {
            let name = kv.value_str().ok()?.to_string();
            let mut s = coord.state();
            if s.holder.as_ref().map(|(n, _)| n) != Some(&name) {
                tracing::info!(holder = %name, "election holder");
            }
            s.holder = Some((name, kv.lease()));
        }
        KeyKind::Writer => {
            let Some(record) = keys::decode::<WriterRecord>(kv.value()) else {
                tracing::error!(
                    key,
                    "unreadable writer record: following the last known writer"
                );
                return Some(kind);
            };
            follow(coord, record, kv.mod_revision());
        }
        KeyKind::Instance(name) => {
            if let Some(view) = keys::decode::<InstanceView>(kv.value()) {
                coord.state().instances.insert(name.to_string(), view);
            }
        }
        KeyKind::Operator(node) => {
            let record = keys::decode::<OperatorRecord>(kv.value()).unwrap_or_default();
            apply_operator(coord, node, &record);
            coord.state().operator.insert(node.to_string(), record);
        }
        KeyKind::Request(id) => {
            if coord.holds() {
                if let Some(req) = keys::decode::<keys::Forwarded>(kv.value()) {
                    super::forward::serve(Arc::clone(coord), failover.clone(), id.to_string(), req);
                }
            }
        }
        KeyKind::Reply(_) | KeyKind::Other => {}
    }
    Some(kind)
}

fn apply_delete<'a>(coord: &Coordinator, kv: &'a KeyValue) -> Option<KeyKind<'a>> {
    let key = kv.key_str().ok()?;
    let kind = coord.keys.kind(key);
    match &kind {
        KeyKind::Holder => {
            coord.state().holder = None;
            tracing::info!("election holder gone");
        }
        KeyKind::Writer => {
            tracing::error!("the writer record was deleted: following the last known writer");
        }
        KeyKind::Instance(name) => {
            coord.state().instances.remove(*name);
        }
        KeyKind::Operator(node) => {
            coord.state().operator.remove(*node);
            apply_operator(coord, node, &OperatorRecord::default());
        }
        KeyKind::Request(_) | KeyKind::Reply(_) | KeyKind::Other => {}
    }
    Some(kind)
}

/// The record names the writer: the topology follows it (never an older one).
fn follow(coord: &Coordinator, record: WriterRecord, revision: i64) {
    {
        let mut s = coord.state();
        if s.writer
            .as_ref()
            .is_some_and(|(w, r)| *r > revision || w.epoch > record.epoch)
        {
            return;
        }
        s.writer = Some((record.clone(), revision));
    }
    match coord.topology.node_id(&record.node) {
        Some(id) => {
            if coord.topology.master() != Some(id) {
                tracing::warn!(node = %record.node, epoch = record.epoch, by = %record.by, "following the writer recorded in etcd");
            }
            coord.topology.follow_writer(id);
        }
        None => tracing::error!(node = %record.node, epoch = record.epoch,
            "the writer record names a node this instance does not know; writes stay where they were"),
    }
    coord.republish.notify_one();
}

/// The operator's states from etcd, onto the topology (`None` = the config's).
fn apply_operator(coord: &Coordinator, node: &str, record: &OperatorRecord) {
    let Some(id) = coord.topology.node_id(node) else {
        return;
    };
    let admin = match record.admin.as_deref() {
        Some("offline") => AdminState::Offline,
        Some("drain") => AdminState::Drain,
        Some("online") | None => AdminState::Online,
        Some(other) => {
            tracing::warn!(
                node,
                state = other,
                "unknown operator state in etcd: online"
            );
            AdminState::Online
        }
    };
    let weight = record
        .weight
        .or_else(|| coord.base_weights.get(node).copied())
        .unwrap_or(1);
    let snap = coord.topology.snapshot();
    let Some(n) = snap.node(id) else { return };
    if n.admin != admin {
        tracing::info!(node, %admin, "operator state from etcd");
        coord.topology.set_admin_state(id, admin);
    }
    if n.weight != weight {
        tracing::info!(node, weight, "operator weight from etcd");
        coord.topology.set_weight(id, weight);
    }
}

/// Nodes with no operator key get the config's values back (a key deleted
/// while this instance was away from etcd).
fn reset_operators_not_in(coord: &Coordinator, present: &[String]) {
    let absent: Vec<&String> = coord
        .base_weights
        .keys()
        .filter(|n| !present.contains(n))
        .collect();
    {
        let mut s = coord.state();
        for n in &absent {
            s.operator.remove(n.as_str());
        }
    }
    for n in absent {
        apply_operator(coord, n, &OperatorRecord::default());
    }
}
