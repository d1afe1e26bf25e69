//! COM_QUERY (through the result cache when it is on) and the other
//! text-protocol commands: COM_INIT_DB, COM_SET_OPTION, COM_FIELD_LIST.

use std::time::Instant;

use super::effects::Change;
use super::exec::{Outcome, Rerun};
use super::{Nodes, Session};
use crate::backend::Job;
use crate::frontend::FrontendError;
use crate::protocol::com;
use crate::protocol::err::ProxyError;
use crate::protocol::response::Expect;
use crate::router::{self, Request, Statement, StmtKind, Why};

/// A text-protocol reply.
pub(super) const TEXT: Expect = Expect::Results {
    binary: false,
    cursor: false,
};

impl<N: Nodes> Session<N> {
    pub(super) async fn query(
        &mut self,
        payload: &[u8],
        sql: &[u8],
        seq: u8,
    ) -> Result<(), FrontendError> {
        // A process list shows the sessions' ids for the node threads they hold.
        self.owners = router::reads_processlist(sql).then(|| self.ctx.sessions.thread_owners());
        let res = self.text_query(payload, sql, seq).await;
        self.owners = None;
        res
    }

    async fn text_query(
        &mut self,
        payload: &[u8],
        sql: &[u8],
        seq: u8,
    ) -> Result<(), FrontendError> {
        let stmt = router::classify(sql);
        self.note_gtid_tracking(&stmt, sql);
        if let Some(done) = self.kill_statement(&stmt, seq).await {
            return done;
        }
        let rewritten = self.with_connection_id(com::QUERY, sql, &stmt);
        let payload = rewritten.as_deref().unwrap_or(payload);
        let Some(cache) = self.ctx.cache.clone() else {
            return self.query_routed(payload, &stmt, seq).await;
        };
        if let Some(plan) = self.cache_plan(&cache, &stmt, sql, None) {
            return self
                .cached_read(&cache, &plan, &stmt, payload, seq, TEXT)
                .await;
        }
        let writes = cache.writes(&stmt, sql, self.state.setup.schema.as_deref());
        self.cache_writes_begin(&cache, writes);
        let res = self.query_routed(payload, &stmt, seq).await;
        self.cache_writes_end(&cache).await?;
        res
    }

    /// The command (`cmd`, then `sql`) with each `CONNECTION_ID()` made
    /// this session's id, so it is the same wherever the statement runs;
    /// None when there is none. Not in DDL: a view, routine, trigger, event
    /// or column default stores the call as text, to run later in whatever
    /// session uses it.
    pub(super) fn with_connection_id(
        &self,
        cmd: u8,
        sql: &[u8],
        stmt: &Statement,
    ) -> Option<Vec<u8>> {
        let ddl = |k: &StmtKind| *k == StmtKind::Ddl;
        if ddl(&stmt.kind) || stmt.rest.iter().any(ddl) {
            return None;
        }
        let sql = router::rewrite_connection_id(sql, self.activity.id())?;
        let mut p = Vec::with_capacity(1 + sql.len());
        p.push(cmd);
        p.extend_from_slice(&sql);
        Some(p)
    }

    /// A KILL naming a session is the proxy's to carry out (`kill.rs`);
    /// None for any other statement.
    async fn kill_statement(
        &mut self,
        stmt: &Statement,
        seq: u8,
    ) -> Option<Result<(), FrontendError>> {
        let is_kill = |k: &StmtKind| matches!(k, StmtKind::Kill { .. });
        if stmt.multi && (is_kill(&stmt.kind) || stmt.rest.iter().any(is_kill)) {
            // Sent on, it would reach whichever node thread has that number.
            let err = ProxyError::not_supported_yet(
                "KILL inside a multi-statement is not supported by sqlproxy",
            );
            return Some(self.reply_err(seq, err).await);
        }
        match stmt.kind {
            StmtKind::Kill {
                query,
                id: Some(id),
            } => Some(self.kill(query, id, seq).await),
            _ => None,
        }
    }

    async fn query_routed(
        &mut self,
        payload: &[u8],
        stmt: &Statement,
        seq: u8,
    ) -> Result<(), FrontendError> {
        let job = Job::Plain {
            payload,
            expect: TEXT,
        };
        // A session SET (autocommit included) is replayed on the session's
        // other connections, and on a new master's after a failover.
        // A one-shot SET TRANSACTION is not replayed but followed (effects.rs).
        let replayed = matches!(
            stmt.kind,
            StmtKind::SetSession | StmtKind::SetAutocommit(_) | StmtKind::SetNextTransaction { .. }
        );
        let set = (replayed && !stmt.multi).then_some(payload);
        self.statement(Request::Statement(stmt), stmt, job, set, seq)
            .await
            .map(drop)
    }

    /// Places and runs one statement (text or prepared), then applies what
    /// its reply changed and records its digest. Returns whether a node
    /// replied (None: the statement id was unknown where it had to run).
    pub(super) async fn statement(
        &mut self,
        request: Request<'_>,
        stmt: &Statement,
        job: Job<'_>,
        set: Option<&[u8]>,
        seq: u8,
    ) -> Result<Option<bool>, FrontendError> {
        if self.state.read_only_tx.is_some() && !router::fits_read_only_tx(stmt) {
            // A write: the replica would answer first for its read_only
            // (1290); the answer of the master, which a client of one node
            // talks to, is that the transaction is read-only. Anything that
            // could change the read node itself is refused the same way.
            self.reply_err(seq, ProxyError::read_only_transaction())
                .await?;
            return Ok(Some(false));
        }
        let started = Instant::now();
        let (placement, node, out) = match self.run_command(request, job, seq, None).await? {
            Outcome::Replied(placement, node, out) => (placement, node, out),
            Outcome::Failed => return Ok(Some(false)),
            Outcome::UnknownStatement => return Ok(None),
        };
        tracing::debug!(node = %self.nodes.node_name(node), route = ?placement.route.target,
            why = %placement.route.why, us = started.elapsed().as_micros() as u64,
            digest = %stmt.digest, "statement");
        let one_shot = matches!(stmt.kind, StmtKind::SetNextTransaction { .. });
        let change = Change {
            set: set.filter(|_| !one_shot),
            next_transaction: set.filter(|_| one_shot),
            pin: router::pins_session(stmt),
            keep: router::keeps_connection(stmt),
            read_only_tx: placement.route.why == Why::ReadOnlyTx,
            // The node reports the new schema unless the session switched
            // `session_track_schema` off: then the USE's own name says it.
            schema: match &stmt.kind {
                StmtKind::Use(db) if !stmt.multi && out.schema.is_none() => Some(db.as_slice()),
                _ => None,
            },
            ..Change::default()
        };
        self.apply(node, placement.home, &out, change);
        if stmt.outlives_reset {
            // Even after an error: a multi-statement may have run part of it.
            self.nodes.keep_from_other_sessions();
        }
        if stmt.accounts && out.error.is_none() {
            tracing::info!("accounts or privileges changed: pooled node connections renewed");
            self.ctx.pools.accounts_changed();
        }
        self.record(&stmt.digest, placement.route, node, started, &out);
        Ok(Some(true))
    }

    pub(super) async fn init_db(
        &mut self,
        payload: &[u8],
        db: &[u8],
        seq: u8,
    ) -> Result<(), FrontendError> {
        let change = Change {
            schema: Some(db),
            ..Change::default()
        };
        self.on_master(payload, Why::Use, seq, change).await
    }

    pub(super) async fn set_option(
        &mut self,
        payload: &[u8],
        opt: u16,
        seq: u8,
    ) -> Result<(), FrontendError> {
        // MYSQL_OPTION_MULTI_STATEMENTS_ON = 0, _OFF = 1
        let change = Change {
            multi_statements: Some(opt == 0),
            ..Change::default()
        };
        self.on_master(payload, Why::Set, seq, change).await
    }

    /// A command with a one-packet reply that changes session state: run on
    /// the master (re-run elsewhere if it got no reply), then applied.
    async fn on_master(
        &mut self,
        payload: &[u8],
        why: Why,
        seq: u8,
        change: Change<'_>,
    ) -> Result<(), FrontendError> {
        let job = Job::Plain {
            payload,
            expect: Expect::Single,
        };
        let rerun = Some(Rerun::IfNoReply);
        if let Outcome::Replied(placement, node, out) = self
            .run_command(Request::Master(why), job, seq, rerun)
            .await?
        {
            self.apply(node, placement.home, &out, change);
        }
        Ok(())
    }

    pub(super) async fn field_list(
        &mut self,
        payload: &[u8],
        seq: u8,
    ) -> Result<(), FrontendError> {
        let job = Job::Plain {
            payload,
            expect: Expect::FieldList,
        };
        let rerun = Some(Rerun::IfNoReply);
        if let Outcome::Replied(placement, node, out) = self
            .run_command(Request::FieldList, job, seq, rerun)
            .await?
        {
            self.apply(node, placement.home, &out, Change::default());
        }
        Ok(())
    }
}
