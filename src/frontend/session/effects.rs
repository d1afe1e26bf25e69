//! The one place where a reply changes the session: the master's status
//! flags (transactions), the last write's GTID, the schema, the replayed
//! SETs, the multi-statement option and the pins, then the statement's
//! totals. Everything a command may change is said up front as a
//! [`Change`], applied only if the node accepted the command.

use std::time::{Duration, Instant};

use super::{Nodes, Session};
use crate::backend::RelayOutcome;
use crate::frontend::state::NextTransaction;
use crate::protocol::status;
use crate::router::idle::IdleSet;
use crate::router::{self, Route, Why};
use crate::topology::NodeId;

/// What a command changes in the session once its node accepted it.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Change<'a> {
    /// A session SET (its COM_QUERY payload), replayed on the session's
    /// other connections from now on.
    pub set: Option<&'a [u8]>,
    /// Pins the session to the master, for this reason.
    pub pin: Option<Why>,
    /// COM_INIT_DB, or a USE the node did not report: the new schema.
    pub schema: Option<&'a [u8]>,
    /// COM_SET_OPTION: multi-statements on or off.
    pub multi_statements: Option<bool>,
    /// Placed as part of a read-only transaction on a read node (its
    /// `START TRANSACTION READ ONLY` or a statement inside it).
    pub read_only_tx: bool,
    /// A `SET TRANSACTION` (the next transaction's characteristics, its
    /// COM_QUERY payload): waits on a read node for the `BEGIN`, or stays
    /// on the master connection until some transaction there takes it.
    pub next_transaction: Option<&'a [u8]>,
    /// May leave state on the node connection that nothing replays
    /// (`router::keeps_connection`).
    pub keep: bool,
}

impl<N: Nodes> Session<N> {
    /// Before `stmt` runs: if it may switch off the node's `last_gtid`
    /// report, the mark of acknowledged commits can no longer prove a
    /// commit unacknowledged (no rewind relies on it from now on).
    pub(super) fn note_gtid_tracking(&self, stmt: &router::Statement, sql: &[u8]) {
        if router::may_stop_gtid_tracking(stmt, sql) {
            tracing::warn!("session_track_system_variables changed by a client: rewinds of a returning master's tail are off until sqlproxy restarts");
            self.ctx.topology.acked_untracked();
        }
    }

    /// Records what the reply of `node` changed; `home` is the master the
    /// placement named for the session.
    pub(super) fn apply(
        &mut self,
        node: NodeId,
        home: Option<NodeId>,
        out: &RelayOutcome,
        change: Change<'_>,
    ) {
        let state = &mut self.state;
        state.last_node = Some(node);
        // A one-shot SET TRANSACTION is for the very next statement only.
        // Run again on this node first if it is not the one it waited on
        // (`exec.rs`), it may be left on this connection too.
        if state
            .next_transaction
            .take()
            .is_some_and(|waited| waited.node != node)
        {
            state.keeps_connections = true;
        }
        // Even after an error: a multi-statement may have run part of it.
        state.keeps_connections |= change.keep;
        state.home = home;
        if Some(node) == home {
            if let Some(s) = out.status {
                state.status = s;
            }
            self.count_transaction();
        }
        let state = &mut self.state;
        if change.read_only_tx && change.next_transaction.is_none() && Some(node) != home {
            // Open while that node says IN_TRANS (an ERR carries no status).
            if let Some(s) = out.status {
                state.read_only_tx = (s & status::IN_TRANS != 0).then_some(node);
            }
        }
        if let Some(g) = out.last_gtid.as_deref().and_then(|g| g.parse().ok()) {
            // Relayed to the client by now: an acknowledged commit.
            self.ctx.topology.record_acked(&g);
            if self.ctx.topology.master() != Some(node) {
                // Its node lost the role while the reply was relayed: the new
                // master must hold it, or the failover that named it lost it.
                tracing::warn!(node = %self.nodes.node_name(node), gtid = %g,
                    "a commit acknowledged by a node that is no longer the master");
            }
            state.last_gtid = Some(g);
        }
        let mut synced = false;
        if let Some(schema) = &out.schema {
            // An empty name: the current database was dropped (no database
            // now, as after a login without one).
            state.setup.schema = (!schema.is_empty()).then(|| schema.clone());
            synced = true;
        }
        if let (Some(set), None) = (change.next_transaction, &out.error) {
            let sql = String::from_utf8_lossy(set.get(1..).unwrap_or_default()).into_owned();
            state.next_transaction = Some(NextTransaction {
                node,
                sql,
                read_only: change.read_only_tx,
            });
            if Some(node) == home || !change.read_only_tx {
                // Left on that connection until a transaction there takes
                // it, which the proxy cannot see: not given back.
                state.keeps_connections = true;
            }
        }
        if out.error.is_none() {
            if let Some(db) = change.schema {
                state.setup.schema = Some(db.to_vec());
                synced = true;
            }
            if let Some(on) = change.multi_statements {
                state.setup.multi_statements = on;
                synced = true;
            }
            if let Some(set) = change.set {
                let sql = set.get(1..).unwrap_or_default();
                match crate::router::idle::session_wait_timeout(sql) {
                    Some(IdleSet::Secs(s)) => state.idle_timeout = Some(Duration::from_secs(s)),
                    Some(IdleSet::Default) => {
                        state.idle_timeout = Some(self.ctx.config.mysql.wait_timeout)
                    }
                    None => {}
                }
                if state.setup.record_set(set) {
                    synced = true;
                } else {
                    state.pinned.get_or_insert(Why::Pinned);
                }
            }
            if let Some(why) = change.pin {
                if state.pinned.is_none() {
                    tracing::debug!(why = %why, "session pinned to the master");
                }
                state.pinned.get_or_insert(why);
            }
        }
        if synced {
            self.nodes.mark_synced(node, &self.state.setup);
        }
    }

    /// A statement's digest totals, once its reply is relayed.
    pub(super) fn record(
        &self,
        digest: &str,
        route: Route,
        node: NodeId,
        started: Instant,
        out: &RelayOutcome,
    ) {
        let on_master = self.ctx.topology.current().master == Some(node);
        self.ctx
            .metrics
            .statement(digest, route, on_master, started.elapsed(), out);
    }
}
