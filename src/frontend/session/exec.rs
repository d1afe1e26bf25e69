//! From a decision to I/O: ask the router where a command runs (with the
//! topology snapshot loaded once), pass the switchover gate for writes, have
//! the node connections run it, and turn a node that failed into the error
//! the client gets.
//!
//! A failover stays invisible to a session without a transaction or pinned
//! state: a command that finds no master waits for one, and a command whose
//! node failed before any byte of its reply reached the client runs again
//! where the next placement says, if it is safe to re-run ([`Rerun`]); both
//! for at most `failover.hold`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Nodes, Session};
use crate::backend::{Abandon, BackendError, ClientSink, CommitGate, Job, Ran, RelayOutcome};
use crate::frontend::FrontendError;
use crate::protocol::err::{ProxyError, ER_NET_PACKET_TOO_LARGE};
use crate::protocol::status;
use crate::router::{
    place, PlaceError, PlaceInput, Placement, Request, Settings, StmtKind, Target, Why,
};
use crate::topology::failover::WritePass;
use crate::topology::{NodeId, Topology};

/// Between two tries of a held command when the topology has not changed:
/// about a health check's burst interval, so a dead node is judged by then.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// How a run ended, for the caller.
pub(super) enum Outcome {
    /// The node replied (the reply may be an ERR); the client has it. The
    /// placement it ran under, and the node that answered (the placed one,
    /// or the fallback).
    Replied(Placement, NodeId, RelayOutcome),
    /// The client got the proxy's error instead; nothing to record.
    Failed,
    /// The statement id is not known where the command had to run.
    UnknownStatement,
}

/// When a command whose node failed before the client saw any of its reply
/// may run again elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rerun {
    /// Never: its answer belongs to that connection (SHOW WARNINGS, FETCH).
    Never,
    /// Only if it never reached the node (a write may have committed).
    IfNotDelivered,
    /// Whenever no byte of the reply reached the client (a read).
    IfNoReply,
}

impl Rerun {
    /// For a statement, from where it was placed.
    pub(super) fn for_placement(p: &Placement) -> Rerun {
        match (p.route.target, p.route.why) {
            // Its answer, or its transaction, lives on that connection.
            (_, Why::SameConnection | Why::ReadOnlyTx) => Rerun::Never,
            (Target::Read, _) => Rerun::IfNoReply,
            (Target::Master, _) => Rerun::IfNotDelivered,
        }
    }

    fn allows(self, ran: &Ran) -> bool {
        match ran {
            Ran::Unavailable { error, .. } => self != Rerun::Never && error.suggests_node_down(),
            Ran::Lost {
                delivered, sent, ..
            } => match self {
                Rerun::Never => false,
                Rerun::IfNotDelivered => !delivered,
                Rerun::IfNoReply => !sent,
            },
            Ran::Replied { .. } | Ran::UnknownStatement => false,
        }
    }
}

impl<N: Nodes> Session<N> {
    /// Where `request` runs now.
    pub(super) fn place(&self, request: Request<'_>) -> Result<Placement, PlaceError> {
        let config = &self.ctx.config;
        let settings = Settings {
            read_split: config.routing.read_split,
            consistency: config.routing.consistency,
            max_lag: config.failover.max_replication_lag,
        };
        let snapshot = self.ctx.topology.current();
        let applied_all_acked = match settings.consistency {
            crate::config::Consistency::Global => self.ctx.topology.applied_all_acked(&snapshot),
            _ => 0,
        };
        let input = PlaceInput {
            request,
            session: self.state.facts(),
            topology: &snapshot,
            settings,
            random: rand::random(),
            applied_all_acked,
        };
        place(&input)
    }

    /// Nothing ties the session to one node (no open transaction, no pins):
    /// a command may wait for a master and run again elsewhere.
    fn may_hold(&self) -> bool {
        self.state.status & status::IN_TRANS == 0 && self.state.pinned.is_none()
    }

    /// [`Session::place`], for a command that may write: outside a
    /// transaction a master-bound one first passes the switchover gate
    /// (waiting while a switchover runs) and is placed after it, on the
    /// master the switchover left. The pass is held until the reply is in.
    async fn place_gated(
        &mut self,
        request: Request<'_>,
    ) -> Result<(Placement, Option<WritePass>), PlaceError> {
        let first = self.place(request)?;
        if first.route.target != Target::Master || self.state.status & status::IN_TRANS != 0 {
            return Ok((first, None));
        }
        let limit = self.ctx.config.failover.switchover_timeout * 3;
        let pass = self.ctx.failover.gate.enter(limit).await;
        Ok((self.place(request)?, Some(pass)))
    }

    /// Places `request` and runs `job` there, the reply going to the client;
    /// holds and re-runs it across a failover as the module says. `rerun`:
    /// None decides from the placement ([`Rerun::for_placement`]).
    pub(super) async fn run_command(
        &mut self,
        request: Request<'_>,
        job: Job<'_>,
        seq: u8,
        rerun: Option<Rerun>,
    ) -> Result<Outcome, FrontendError> {
        let deadline = Instant::now() + self.ctx.config.failover.hold;
        let mut changes = self.ctx.topology.watch();
        loop {
            let holding = self.may_hold() && Instant::now() < deadline;
            let (placement, pass) = match self.place_gated(request).await {
                Ok(p) => p,
                Err(PlaceError::NoMaster) if holding => {
                    tracing::debug!("no master named: holding the command");
                    let pause = deadline.saturating_duration_since(Instant::now());
                    let _ = tokio::time::timeout(pause, changes.changed()).await;
                    continue;
                }
                // Held long enough: this command fails, the session goes on.
                Err(PlaceError::NoMaster) if self.may_hold() => {
                    self.reply_err(seq, refusal(PlaceError::NoMaster)).await?;
                    return Ok(Outcome::Failed);
                }
                Err(e) => return Err(FrontendError::Rejected(refusal(e))),
            };
            let ran = self.run_once(&placement, job, writes_rows(request)).await?;
            if self.activity.killed().is_cancelled() {
                // KILL: whatever the node said, the session ends now.
                return Err(FrontendError::Closed);
            }
            let rerun = rerun.unwrap_or_else(|| Rerun::for_placement(&placement));
            if holding && rerun.allows(&ran) {
                if let Ran::Lost { node, .. } | Ran::Unavailable { node, .. } = ran {
                    self.ctx.metrics.node_failure(node);
                    self.ctx.topology.suspect(node);
                    tracing::debug!(node = %self.nodes.node_name(node), "node failed before answering: holding the command for the next placement");
                }
                self.client.wbuf.clear();
                let pause = RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now()));
                let _ = tokio::time::timeout(pause, changes.changed()).await;
                continue;
            }
            // Released once the command's effects are applied (command loop).
            self.write_pass = pass;
            return self.conclude(placement, ran, seq).await;
        }
    }

    /// A one-shot `SET TRANSACTION` is for whatever runs next (a write gets
    /// the node's 1792). If that goes to another node than the one the SET
    /// waits on, the SET runs there first (its reply is the client's
    /// already), and an empty transaction uses it up where it waited, or the
    /// session's next transaction there would still take it.
    async fn follow_next_transaction(&mut self, node: NodeId) {
        let Some(next) = self
            .state
            .next_transaction
            .as_ref()
            .filter(|n| n.node != node)
        else {
            return;
        };
        let (waited, sql) = (next.node, next.sql.clone());
        let setup = &self.state.setup;
        if let Err(e) = self.nodes.side_query(node, setup, &sql).await {
            tracing::debug!(error = %e, "SET TRANSACTION not repeated");
        }
        for sql in ["BEGIN", "COMMIT"] {
            if let Err(e) = self.nodes.side_query(waited, setup, sql).await {
                tracing::debug!(error = %e, "SET TRANSACTION not used up where it waited");
                break;
            }
        }
    }

    /// One try on the placed node (and its fallback).
    async fn run_once(
        &mut self,
        placement: &Placement,
        job: Job<'_>,
        writes: bool,
    ) -> Result<Ran, FrontendError> {
        self.follow_next_transaction(placement.node).await;
        let topology = &self.ctx.topology;
        let on_master = placement.route.target == Target::Master;
        // A commit's OK is recorded before the client gets it, and not sent
        // at all once a failover may have checked its candidate without it.
        let node = placement.node;
        let gate = move |gtid: &str| match gtid.parse() {
            Ok(g) => topology.acknowledge(node, &g),
            Err(_) => true,
        };
        let mut sink = ClientSink {
            io: &mut self.client,
            caps: self.caps,
            tap: self.tap.as_mut(),
            owners: self.owners.as_ref(),
            gate: on_master.then_some(&gate as &CommitGate<'_>),
            ask_last_gtid: writes,
        };
        // A command placed on the master must not have its reply relayed
        // once that node is no longer the master (a late OK of a write).
        // Placed just before another node became master: abandoned at once.
        let lost_role = on_master.then(|| lost_master_role(topology, placement.node));
        let abandon = Some(abandon_when(lost_role, self.activity.killed().clone()));
        let ran = self
            .nodes
            .run(
                placement.node,
                placement.fallback,
                job,
                &self.state.setup,
                &mut sink,
                abandon,
            )
            .await?;
        if let Ran::Replied {
            fell_back_from: Some((failed, _)),
            ..
        } = &ran
        {
            self.ctx.metrics.node_failure(*failed);
            self.ctx.topology.suspect(*failed);
        }
        Ok(ran)
    }

    /// What the client gets for a run that will not be tried again.
    async fn conclude(
        &mut self,
        placement: Placement,
        ran: Ran,
        seq: u8,
    ) -> Result<Outcome, FrontendError> {
        let metrics = Arc::clone(&self.ctx.metrics);
        match ran {
            Ran::Replied {
                node,
                outcome,
                took,
                ..
            } => {
                metrics.node_reply(node, took, outcome.error.is_some());
                if outcome.withheld {
                    // Committed on a node that lost, or is losing, the role
                    // to one that may lack it: the client must not count on
                    // it, and this session's connections are to the old master.
                    let name = self.nodes.node_name(node);
                    tracing::warn!(node = %name, gtid = outcome.last_gtid.as_deref().unwrap_or_default(),
                        "a commit's OK withheld: a failover is replacing its node");
                    self.client.wbuf.clear();
                    let seq = outcome.withheld_seq.unwrap_or(seq);
                    self.reply_err(seq, ProxyError::backend_lost(&name)).await?;
                    return Err(FrontendError::Closed);
                }
                if outcome.error == Some(ER_NET_PACKET_TOO_LARGE) {
                    // The node closed its connection after this error; the
                    // client's ends the same way.
                    tracing::info!(node = %self.nodes.node_name(node), "command over the node's max_allowed_packet; session closed");
                    return Err(FrontendError::Closed);
                }
                Ok(Outcome::Replied(placement, node, outcome))
            }
            Ran::Lost {
                node,
                sent,
                next_seq,
                error,
                torn,
                ..
            } => {
                metrics.node_failure(node);
                self.ctx.topology.suspect(node);
                tracing::warn!(node = %self.nodes.node_name(node), %error, "node connection lost during a command");
                if torn {
                    // As a client of the node sees its node die: the
                    // connection ends, with nothing after what it got.
                    self.client.wbuf.clear();
                    return Err(FrontendError::Closed);
                }
                let seq = if sent { next_seq } else { seq };
                let name = self.nodes.node_name(node);
                self.reply_err(seq, ProxyError::backend_lost(&name)).await?;
                self.after_lost_connection(node)?;
                Ok(Outcome::Failed)
            }
            Ran::Unavailable { node, error } => {
                metrics.node_failure(node);
                if error.suggests_node_down() {
                    self.ctx.topology.suspect(node);
                }
                self.send_backend_error(seq, Some(node), &error).await;
                Ok(Outcome::Failed)
            }
            Ran::UnknownStatement => Ok(Outcome::UnknownStatement),
        }
    }

    /// Runs a protocol command on the master, for `why`, and records what
    /// its reply changed.
    pub(super) async fn on_master_command(
        &mut self,
        payload: &[u8],
        why: Why,
        seq: u8,
    ) -> Result<(), FrontendError> {
        let job = Job::Plain {
            payload,
            expect: crate::protocol::response::Expect::Single,
        };
        let rerun = Some(Rerun::IfNotDelivered);
        let outcome = self
            .run_command(Request::Master(why), job, seq, rerun)
            .await?;
        if let Outcome::Replied(placement, node, out) = outcome {
            self.apply(
                node,
                placement.home,
                &out,
                super::effects::Change::default(),
            );
        }
        Ok(())
    }

    /// Holds a connection to the master in the session's setup (at login
    /// with a schema: the node says whether it exists). Waits for a master
    /// like a command does.
    pub(super) async fn open_master(&mut self) -> Result<(), BackendError> {
        let deadline = Instant::now() + self.ctx.config.failover.hold;
        let mut changes = self.ctx.topology.watch();
        loop {
            let waiting = Instant::now() < deadline;
            match self.place(Request::Master(Why::Use)) {
                Ok(placement) => {
                    self.state.home = placement.home;
                    match self.nodes.open(placement.node, &self.state.setup).await {
                        Err(e) if e.suggests_node_down() && waiting => {
                            self.ctx.topology.suspect(placement.node);
                        }
                        opened => return opened,
                    }
                }
                Err(_) if waiting => {}
                Err(_) => return Err(BackendError::Protocol("no master")),
            }
            let pause = RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now()));
            let _ = tokio::time::timeout(pause, changes.changed()).await;
        }
    }

    /// A node connection died under the session: if the session had state
    /// there (an open transaction, pins), the client must not carry on as if
    /// nothing happened, so the session ends.
    fn after_lost_connection(&mut self, node: NodeId) -> Result<(), FrontendError> {
        if self.state.read_only_tx == Some(node) {
            return Err(FrontendError::Closed);
        }
        if Some(node) == self.state.home {
            if self.state.status & status::IN_TRANS != 0 || self.state.pinned.is_some() {
                return Err(FrontendError::Closed);
            }
            self.state.home = None;
        }
        Ok(())
    }
}

/// Whether a request's statements write rows (its commit may end a result
/// set: `INSERT ... RETURNING`).
fn writes_rows(request: Request<'_>) -> bool {
    match request {
        Request::Statement(s) | Request::Cursor(s) | Request::LongData(s) => {
            std::iter::once(&s.kind)
                .chain(&s.rest)
                .any(StmtKind::writes_rows)
        }
        Request::CacheMiss(_) | Request::FieldList | Request::Master(_) => false,
    }
}

/// The error a command gets when it cannot be placed.
fn refusal(e: PlaceError) -> ProxyError {
    match e {
        PlaceError::NoMaster => ProxyError::no_node("writes (no master)"),
        PlaceError::MasterChanged => ProxyError::master_changed(),
    }
}

/// Resolves when a running command's reply must no longer be relayed: the
/// session was killed, or (`lost_role`) its node lost the master role.
fn abandon_when(lost_role: Option<Abandon>, killed: CancellationToken) -> Abandon {
    Box::pin(async move {
        match lost_role {
            Some(lost) => tokio::select! {
                () = lost => {}
                () = killed.cancelled() => {}
            },
            None => killed.cancelled().await,
        }
    })
}

/// Resolves once `node` is no longer the topology's master.
fn lost_master_role(topology: &Arc<Topology>, node: NodeId) -> Abandon {
    let topology = Arc::clone(topology);
    let mut changes = topology.watch();
    Box::pin(async move {
        while topology.master() == Some(node) {
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    })
}
