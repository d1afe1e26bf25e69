//! From a decision to I/O: ask the router where a command runs (with the
//! topology snapshot loaded once), pass the switchover gate for writes, have
//! the node connections run it, and turn a node that failed into the error
//! the client gets.

use std::sync::Arc;

use super::{Nodes, Session};
use crate::backend::{ClientSink, Job, Ran, RelayOutcome};
use crate::frontend::FrontendError;
use crate::protocol::err::ProxyError;
use crate::protocol::status;
use crate::router::{place, PlaceError, PlaceInput, Placement, Request, Settings, Target};
use crate::topology::failover::WritePass;
use crate::topology::NodeId;

/// How a run ended, for the caller.
pub(super) enum Outcome {
    /// The node replied (the reply may be an ERR); the client has it.
    Replied(NodeId, RelayOutcome),
    /// The client got the proxy's error instead; nothing to record.
    Failed,
    /// The statement id is not known where the command had to run.
    UnknownStatement,
}

impl<N: Nodes> Session<N> {
    /// Where `request` runs now.
    pub(super) fn place(&self, request: Request<'_>) -> Result<Placement, FrontendError> {
        let config = &self.ctx.config;
        let settings = Settings {
            read_split: config.routing.read_split,
            consistency: config.routing.consistency,
            max_lag: config.failover.max_replication_lag,
        };
        let snapshot = self.ctx.topology.current();
        let input = PlaceInput {
            request,
            session: self.state.facts(),
            topology: &snapshot,
            settings,
            random: rand::random(),
        };
        place(&input).map_err(|e| {
            FrontendError::Rejected(match e {
                PlaceError::NoMaster => ProxyError::no_node("writes (no master)"),
                PlaceError::MasterChanged => ProxyError::master_changed(),
            })
        })
    }

    /// [`Session::place`], for a statement that may write: outside a
    /// transaction a master-bound one first passes the switchover gate
    /// (waiting while a switchover runs) and is placed after it, on the
    /// master the switchover left. The pass is held until the reply is in.
    pub(super) async fn place_gated(
        &mut self,
        request: Request<'_>,
    ) -> Result<(Placement, Option<WritePass>), FrontendError> {
        let first = self.place(request)?;
        if first.route.target != Target::Master || self.state.status & status::IN_TRANS != 0 {
            return Ok((first, None));
        }
        let limit = self.ctx.config.failover.switchover_timeout * 3;
        let pass = self.ctx.failover.gate.enter(limit).await;
        Ok((self.place(request)?, Some(pass)))
    }

    /// Runs `job` where `placement` says, the reply going to the client.
    pub(super) async fn run(
        &mut self,
        placement: &Placement,
        job: Job<'_>,
        seq: u8,
    ) -> Result<Outcome, FrontendError> {
        let mut sink = ClientSink {
            io: &mut self.client,
            caps: self.caps,
            tap: self.tap.as_mut(),
        };
        let ran = self
            .nodes
            .run(
                placement.node,
                placement.fallback,
                job,
                &self.state.setup,
                &mut sink,
            )
            .await?;
        let metrics = Arc::clone(&self.ctx.metrics);
        match ran {
            Ran::Replied {
                node,
                outcome,
                took,
                fell_back_from,
            } => {
                if let Some((failed, _)) = fell_back_from {
                    metrics.node_failure(failed);
                }
                metrics.node_reply(node, took, outcome.error.is_some());
                Ok(Outcome::Replied(node, outcome))
            }
            Ran::Lost {
                node,
                sent,
                next_seq,
                error,
            } => {
                metrics.node_failure(node);
                tracing::warn!(node = %self.nodes.node_name(node), %error, "node connection lost during a command");
                let seq = if sent { next_seq } else { seq };
                let name = self.nodes.node_name(node);
                self.reply_err(seq, ProxyError::backend_lost(&name)).await?;
                self.after_lost_connection(node)?;
                Ok(Outcome::Failed)
            }
            Ran::Unavailable { node, error } => {
                metrics.node_failure(node);
                self.send_backend_error(seq, &error).await;
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
        why: crate::router::Why,
        seq: u8,
    ) -> Result<(), FrontendError> {
        let placement = self.place(Request::Master(why))?;
        let job = Job::Plain {
            payload,
            expect: crate::protocol::response::Expect::Single,
        };
        if let Outcome::Replied(node, out) = self.run(&placement, job, seq).await? {
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
    /// with a schema: the node says whether it exists).
    pub(super) async fn open_master(&mut self) -> Result<(), crate::backend::BackendError> {
        let placement = self
            .place(Request::Master(crate::router::Why::Use))
            .map_err(|_| crate::backend::BackendError::Protocol("no master"))?;
        self.state.home = placement.home;
        self.nodes.open(placement.node, &self.state.setup).await
    }

    /// A node connection died under the session: if the session had state
    /// there (a transaction, pins), the client must not carry on as if
    /// nothing happened, so the session ends.
    fn after_lost_connection(&mut self, node: NodeId) -> Result<(), FrontendError> {
        if Some(node) == self.state.home {
            if self.state.in_transaction() || self.state.pinned.is_some() {
                return Err(FrontendError::Closed);
            }
            self.state.home = None;
        }
        Ok(())
    }
}
