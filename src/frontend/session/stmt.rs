//! Server-side prepared statements: COM_STMT_PREPARE (on the master first),
//! EXECUTE placed like the statement it runs (the backend prepares it on
//! another node transparently), SEND_LONG_DATA, CLOSE, RESET and FETCH.
//! The session keeps what routing needs of each statement; the wire side
//! (ids per connection, parameter types) is the backend's.

use std::collections::HashMap;
use std::sync::Arc;

use super::effects::Change;
use super::exec::{Outcome, Rerun};
use super::{Nodes, Session};
use crate::backend::Job;
use crate::cache;
use crate::frontend::FrontendError;
use crate::protocol::err::ProxyError;
use crate::protocol::response::Expect;

/// COM_STMT_EXECUTE's flag asking for a read-only cursor.
const CURSOR_TYPE_READ_ONLY: u8 = 1;
use crate::router::{self, Request, Statement, StmtKind, Why};

/// What placing a prepared statement's executions needs.
#[derive(Debug, Clone)]
pub(super) struct StmtFacts {
    /// Shared: every execution places by it without copying it.
    pub stmt: Arc<Statement>,
    /// SEND_LONG_DATA went to the master: the next execution runs there.
    pub long_data: bool,
}

/// By the client's statement id.
pub(super) type PreparedFacts = HashMap<u32, StmtFacts>;

impl<N: Nodes> Session<N> {
    pub(super) async fn prepare(
        &mut self,
        payload: &[u8],
        sql: &[u8],
        seq: u8,
    ) -> Result<(), FrontendError> {
        let limit = self.ctx.config.mysql.max_prepared_statements;
        if self.prepared.len() >= limit as usize {
            // Each one costs the proxy its text and facts, and a node handle.
            let err = ProxyError::too_many_prepared_statements(limit);
            return self.reply_err(seq, err).await;
        }
        let stmt = router::classify(sql);
        self.note_gtid_tracking(&stmt, sql);
        let id = self.nodes.next_statement_id();
        let rewritten = self.with_connection_id(crate::protocol::com::STMT_PREPARE, sql, &stmt);
        let payload = rewritten.as_deref().unwrap_or(payload);
        let job = Job::Prepare { payload };
        let rerun = Some(Rerun::IfNoReply);
        let request = Request::Master(Why::Prepare);
        if let Outcome::Replied(_, node, out) = self.run_command(request, job, seq, rerun).await? {
            self.state.last_node = Some(node);
            if out.prepared.is_some() {
                let facts = StmtFacts {
                    stmt: Arc::new(stmt),
                    long_data: false,
                };
                self.prepared.insert(id, facts);
            }
        }
        Ok(())
    }

    pub(super) async fn execute(
        &mut self,
        payload: &[u8],
        id: u32,
        flags: u8,
        seq: u8,
    ) -> Result<(), FrontendError> {
        // Even a cache hit, which never reaches a node, binds types for later.
        self.nodes.note_types(id, payload);
        let Some(cache) = self.ctx.cache.clone() else {
            return self.execute_placed(payload, id, flags, seq, false).await;
        };
        let Some(facts) = self.prepared.get(&id) else {
            return self.execute_placed(payload, id, flags, seq, false).await;
        };
        let stmt = Arc::clone(&facts.stmt);
        let plain = flags == 0 && !facts.long_data;
        let (plan, writes) = {
            let sql = self.nodes.statement_text(id).unwrap_or_default();
            let params = plain
                .then(|| {
                    let (count, types) = self.nodes.statement_params(id)?;
                    cache::key::execute_params(payload, count, types)
                })
                .flatten();
            match params.and_then(|p| self.cache_plan(&cache, &stmt, sql, Some(&p))) {
                Some(plan) => (Some(plan), None),
                None => (
                    None,
                    cache.writes(&stmt, sql, self.state.setup.schema.as_deref()),
                ),
            }
        };
        if let Some(plan) = plan {
            let binary = Expect::Results {
                binary: true,
                cursor: false,
            };
            return self
                .cached_read(&cache, &plan, &stmt, payload, seq, binary)
                .await;
        }
        self.cache_writes_begin(&cache, writes);
        let res = self.execute_placed(payload, id, flags, seq, false).await;
        self.cache_writes_end(&cache).await?;
        res
    }

    /// `cache_miss`: a cacheable read loads from the master (docs/cache.md).
    pub(super) async fn execute_placed(
        &mut self,
        payload: &[u8],
        id: u32,
        flags: u8,
        seq: u8,
        cache_miss: bool,
    ) -> Result<(), FrontendError> {
        let Some(facts) = self.prepared.get(&id) else {
            let err = ProxyError::unknown_stmt_handler(id, "mysqld_stmt_execute");
            return self.reply_err(seq, err).await;
        };
        let stmt = Arc::clone(&facts.stmt);
        // CURSOR_TYPE_READ_ONLY is the only flag that opens a cursor; MariaDB
        // ignores the others (FOR_UPDATE, SCROLLABLE, parameter count).
        let cursor = flags & CURSOR_TYPE_READ_ONLY != 0;
        let request = if cache_miss {
            Request::CacheMiss(&stmt)
        } else if facts.long_data {
            Request::LongData(&stmt)
        } else if cursor {
            Request::Cursor(&stmt)
        } else {
            Request::Statement(&stmt)
        };
        let job = Job::Execute {
            payload,
            id,
            cursor,
        };
        match self.statement(request, &stmt, job, None, seq).await? {
            Some(true) => {
                if matches!(
                    stmt.kind,
                    StmtKind::SetSession | StmtKind::SetNextTransaction { .. }
                ) {
                    // A prepared SET cannot be replayed as text: the session
                    // stays where it ran.
                    self.state.pinned.get_or_insert(Why::Set);
                }
                if let Some(f) = self.prepared.get_mut(&id) {
                    f.long_data = false;
                }
                Ok(())
            }
            Some(false) => Ok(()),
            None => {
                let err = ProxyError::unknown_stmt_handler(id, "mysqld_stmt_execute");
                self.reply_err(seq, err).await
            }
        }
    }

    /// Long data goes to the master; the execution that follows runs there,
    /// on the same connection (the backend refuses any other).
    pub(super) async fn send_long_data(
        &mut self,
        payload: &[u8],
        id: u32,
    ) -> Result<(), FrontendError> {
        let Some(facts) = self.prepared.get_mut(&id) else {
            // A node ignores long data for an unknown statement too.
            return Ok(());
        };
        facts.long_data = true;
        let Ok(placement) = self.place(Request::Master(Why::LongData)) else {
            // No reply to give; the execution will find the data gone.
            tracing::warn!("long data not delivered: no master");
            return Ok(());
        };
        let sent = self
            .nodes
            .send_long_data(placement.node, id, payload, &self.state.setup)
            .await;
        if let Err(e) = sent {
            // No reply to give; the execution will find the data gone.
            tracing::warn!(error = %e, "long data not delivered");
        }
        Ok(())
    }

    pub(super) async fn stmt_close(&mut self, id: u32) {
        self.prepared.remove(&id);
        self.nodes.close_statement(id).await;
    }

    pub(super) async fn stmt_reset(
        &mut self,
        payload: &[u8],
        id: u32,
        seq: u8,
    ) -> Result<(), FrontendError> {
        let Some(facts) = self.prepared.get_mut(&id) else {
            let err = ProxyError::unknown_stmt_handler(id, "mysqld_stmt_reset");
            return self.reply_err(seq, err).await;
        };
        facts.long_data = false;
        // The master's copy answers the client; other copies are reset quietly.
        if let Ok(placement) = self.place(Request::Master(Why::Prepare)) {
            self.nodes
                .reset_other_copies(id, placement.node, payload)
                .await;
        }
        let job = Job::Reset { payload, id };
        let rerun = Some(Rerun::IfNotDelivered);
        match self
            .run_command(Request::Master(Why::Prepare), job, seq, rerun)
            .await?
        {
            Outcome::Replied(..) | Outcome::Failed => Ok(()),
            Outcome::UnknownStatement => self.reply_ok(seq).await,
        }
    }

    pub(super) async fn fetch(
        &mut self,
        payload: &[u8],
        id: u32,
        seq: u8,
    ) -> Result<(), FrontendError> {
        let job = Job::Fetch { payload, id };
        let rerun = Some(Rerun::Never);
        match self
            .run_command(Request::Master(Why::Cursor), job, seq, rerun)
            .await?
        {
            Outcome::Replied(placement, node, out) => {
                self.apply(node, placement.home, &out, Change::default());
                Ok(())
            }
            Outcome::Failed => Ok(()),
            Outcome::UnknownStatement => {
                let err = ProxyError::unknown_stmt_handler(id, "mysqld_stmt_fetch");
                self.reply_err(seq, err).await
            }
        }
    }
}
