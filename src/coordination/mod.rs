//! Several sqlproxy instances, one writer: agreement through etcd
//! (`[coordination]`, docs/coordination.md). Without that section none of
//! this runs and the failover controller acts alone ([`crate::topology::Solo`]).
//!
//! * `keys.rs`: the key layout and the JSON documents (writer record,
//!   instance views, operator states, forwarded requests).
//! * `quorum.rs`: the failover vote over the instances' views.
//! * `session.rs`: the one task that talks to etcd: lease, election, watch,
//!   publishing this instance's view, applying what the others wrote.
//! * `forward.rs`: SWITCHOVER / FAILOVER asked on a non-holder, run by the holder.
//!
//! [`Coordinator`] is the failover controller's [`Authority`]: the
//! controller acts only while this instance holds the election and etcd
//! answers, asks [`quorum`] before a failover, and records every new writer
//! here (an etcd transaction comparing the record's revision and this
//! instance's hold on the election) before making it writable. Every
//! instance follows the record into its topology through
//! [`Topology::follow_writer`], the one seam.

mod forward;
pub mod keys;
pub mod quorum;
mod session;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use tokio::time::Instant;

use crate::config::CoordinationConfig;
use crate::topology::{Agreement, Authority, Recording, Standing, Topology};
use keys::{InstanceView, Keys, OperatorRecord, WriterRecord};

pub use forward::ForwardError;

/// What went wrong talking to etcd; each carries what it was doing.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CoordinationError {
    #[error("etcd unreachable: {0}")]
    Unreachable(String),
    #[error("etcd: {what}: {error}")]
    Etcd { what: &'static str, error: String },
    #[error("etcd did not answer {what} within {after:?}")]
    Timeout { what: &'static str, after: Duration },
    #[error("this instance's etcd lease expired")]
    LeaseLost,
}

impl CoordinationError {
    fn etcd(what: &'static str) -> impl FnOnce(etcd_client::Error) -> CoordinationError {
        move |e| CoordinationError::Etcd {
            what,
            error: e.to_string(),
        }
    }
}

/// Runs an etcd request with the configured bound.
async fn bounded<T>(
    what: &'static str,
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, CoordinationError> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.map_err(CoordinationError::etcd(what)),
        Err(_) => Err(CoordinationError::Timeout { what, after: limit }),
    }
}

/// What this instance knows of the coordination, under one lock (never on
/// the per-statement path: the controller, the admin port and the session
/// task take it).
#[derive(Default)]
struct State {
    /// The live etcd client while a session is up.
    client: Option<Client>,
    /// This instance's lease, and until when it is surely alive (the last
    /// keepalive's answer plus its TTL, less a request's bound).
    lease: Option<i64>,
    lease_alive_until: Option<Instant>,
    etcd_up: bool,
    last_error: Option<String>,
    /// The holder key: instance name and its lease.
    holder: Option<(String, i64)>,
    /// The writer record and its etcd `mod_revision`.
    writer: Option<(WriterRecord, i64)>,
    /// Every live instance's view, this one's included.
    instances: BTreeMap<String, InstanceView>,
    operator: BTreeMap<String, OperatorRecord>,
}

/// One instance's part in the coordination. Shared: the session task, the
/// failover controller (as its [`Authority`]), the admin port.
pub struct Coordinator {
    config: CoordinationConfig,
    instance: String,
    keys: Keys,
    topology: Arc<Topology>,
    /// Each node's read weight in the config (an operator key removed
    /// gives it back).
    base_weights: BTreeMap<String, u32>,
    state: Mutex<State>,
    /// Failovers this instance refused because another instance still saw the master.
    vetoes: AtomicU64,
    /// Writer changes this instance recorded.
    recorded: AtomicU64,
    /// Wakes the session task to publish this instance's view again.
    republish: tokio::sync::Notify,
}

/// `SHOW COORDINATION`'s and the metrics' reading of the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinationView {
    pub instance: String,
    pub cluster: String,
    pub endpoints: Vec<String>,
    pub etcd_up: bool,
    pub last_error: Option<String>,
    pub holder: Option<String>,
    pub holds: bool,
    pub writer: Option<WriterRecord>,
    pub instances: BTreeMap<String, InstanceView>,
    pub vetoes: u64,
    pub recorded: u64,
}

impl Coordinator {
    /// `default_instance` names this instance when the config does not.
    pub fn new(
        config: CoordinationConfig,
        default_instance: String,
        topology: Arc<Topology>,
        base_weights: BTreeMap<String, u32>,
    ) -> Arc<Coordinator> {
        let instance = config.instance.clone().unwrap_or(default_instance);
        Arc::new(Coordinator {
            keys: Keys::new(&config.cluster),
            config,
            instance,
            topology,
            base_weights,
            state: Mutex::new(State::default()),
            vetoes: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            republish: tokio::sync::Notify::new(),
        })
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is plain data; a panic elsewhere leaves it consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Does this instance hold the election now? Only while etcd answers and
    /// the lease is surely alive: an instance that cannot tell acts as if not.
    pub fn holds(&self) -> bool {
        let s = self.state();
        self.holds_in(&s)
    }

    fn holds_in(&self, s: &State) -> bool {
        let alive = s.lease_alive_until.is_some_and(|t| Instant::now() < t);
        s.etcd_up
            && alive
            && matches!((&s.holder, s.lease), (Some((name, hl)), Some(l)) if *name == self.instance && *hl == l)
    }

    /// The holder's name, as last seen in etcd.
    pub fn holder(&self) -> Option<String> {
        self.state().holder.as_ref().map(|(n, _)| n.clone())
    }

    pub fn view(&self) -> CoordinationView {
        let s = self.state();
        CoordinationView {
            instance: self.instance.clone(),
            cluster: self.config.cluster.clone(),
            endpoints: self.config.etcd.clone(),
            etcd_up: s.etcd_up,
            last_error: s.last_error.clone(),
            holder: s.holder.as_ref().map(|(n, _)| n.clone()),
            holds: self.holds_in(&s),
            writer: s.writer.as_ref().map(|(w, _)| w.clone()),
            instances: s.instances.clone(),
            vetoes: self.vetoes.load(Ordering::Relaxed),
            recorded: self.recorded.load(Ordering::Relaxed),
        }
    }

    /// `SET BACKEND` with coordination: the operator's state goes to etcd,
    /// and every instance (this one included) applies it from there. Refused
    /// while etcd cannot be written, so no instance differs.
    pub async fn set_operator(
        &self,
        node: &str,
        admin: Option<String>,
        weight: Option<u32>,
    ) -> Result<(), CoordinationError> {
        let (client, current) = {
            let s = self.state();
            let client = s
                .client
                .clone()
                .filter(|_| s.etcd_up)
                .ok_or_else(|| CoordinationError::Unreachable("no session".into()))?;
            (client, s.operator.get(node).cloned().unwrap_or_default())
        };
        let next = OperatorRecord {
            admin: admin.or(current.admin),
            weight: weight.or(current.weight),
        };
        let mut kv = client.kv_client();
        bounded(
            "put operator state",
            self.config.timeout,
            kv.put(self.keys.operator(node), keys::encode(&next), None),
        )
        .await?;
        Ok(())
    }

    /// The view this instance publishes: each node up, down or unchecked.
    fn own_view(&self) -> InstanceView {
        let snap = self.topology.snapshot();
        let nodes = snap
            .nodes
            .iter()
            .map(|n| {
                let v = match (n.state, n.last_check) {
                    (_, None) => keys::NodeView::Unchecked,
                    (crate::topology::NodeState::Up, _) => keys::NodeView::Up,
                    (crate::topology::NodeState::Down, _) => keys::NodeView::Down,
                };
                (n.name.clone(), v)
            })
            .collect();
        InstanceView {
            instance: self.instance.clone(),
            epoch: self.state().writer.as_ref().map(|(w, _)| w.epoch),
            nodes,
        }
    }
}

impl Authority for Coordinator {
    fn standing(&self) -> Standing {
        let s = self.state();
        if self.holds_in(&s) {
            Standing::Holder {
                writer_recorded: s.writer.is_some(),
                previous: s.writer.as_ref().and_then(|(w, _)| w.previous.clone()),
            }
        } else {
            Standing::Follower {
                holder: s.holder.as_ref().map(|(n, _)| n.clone()),
            }
        }
    }

    fn others_agree_down(&self, node: &str) -> Agreement {
        quorum::agreement(&self.instance, node, &self.state().instances)
    }

    fn vetoed(&self, _agreement: &Agreement) {
        self.vetoes.fetch_add(1, Ordering::Relaxed);
    }

    /// One etcd transaction: the record is replaced only if it is still the
    /// revision this instance last saw (so the epoch grows by exactly one)
    /// and the holder key is still this instance's, under this lease.
    fn record_writer<'a>(
        &'a self,
        node: &'a str,
        gtid: &'a str,
        previous: Option<&'a str>,
    ) -> Recording<'a> {
        Box::pin(async move {
            let (client, lease, rev, epoch) = {
                let s = self.state();
                if !self.holds_in(&s) {
                    return Err(match &s.holder {
                        Some((h, _)) if *h != self.instance => {
                            format!("instance '{h}' holds the election")
                        }
                        _ => "this instance does not hold the election (or cannot reach etcd)"
                            .to_string(),
                    });
                }
                let (rev, epoch) = s.writer.as_ref().map_or((0, 0), |(w, r)| (*r, w.epoch));
                match (s.client.clone(), s.lease) {
                    (Some(c), Some(l)) => (c, l, rev, epoch),
                    _ => return Err("no etcd session".to_string()),
                }
            };
            let record = WriterRecord {
                node: node.to_string(),
                epoch: epoch + 1,
                gtid: gtid.to_string(),
                previous: previous.map(str::to_string),
                by: self.instance.clone(),
            };
            let holder = self.keys.holder();
            let txn = Txn::new()
                .when([
                    Compare::value(holder.clone(), CompareOp::Equal, self.instance.clone()),
                    Compare::lease(holder, CompareOp::Equal, lease),
                    Compare::mod_revision(self.keys.writer(), CompareOp::Equal, rev),
                ])
                .and_then([TxnOp::put(self.keys.writer(), keys::encode(&record), None)]);
            let mut kv = client.kv_client();
            let resp = bounded("record the writer", self.config.timeout, kv.txn(txn))
                .await
                .map_err(|e| e.to_string())?;
            if !resp.succeeded() {
                return Err(
                    "the writer record changed meanwhile, or this instance lost the election"
                        .to_string(),
                );
            }
            let new_rev = resp.header().map_or(rev + 1, |h| h.revision());
            {
                let mut s = self.state();
                if s.writer.as_ref().is_none_or(|(_, r)| *r < new_rev) {
                    s.writer = Some((record.clone(), new_rev));
                }
            }
            self.recorded.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(node, epoch = record.epoch, gtid, "writer recorded in etcd");
            self.republish.notify_one();
            Ok(record.epoch)
        })
    }
}

/// The instance name when the config gives none: the host's name and the
/// MySQL port, unique on a host and readable in SHOW COORDINATION.
pub fn default_instance_name(mysql_port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sqlproxy".to_string());
    format!("{host}:{mysql_port}")
}

pub use session::run;
