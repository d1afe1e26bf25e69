//! The session's side of the result cache (`src/cache`): look up before a
//! cacheable read, capture and store a miss, replay a hit with fresh sequence
//! ids, and bump table generations around writes.

use std::sync::Arc;

use super::{Nodes, Session};
use crate::backend::{Job, Tap};
use crate::cache::{Captured, Entry, KeyParts, Loaded, QueryCache, ReadPlan, WriteSet};
use crate::frontend::FrontendError;
use crate::protocol::execute::statement_id;
use crate::protocol::response::Expect;
use crate::protocol::status;
use crate::router::{Request, Statement};

impl<N: Nodes> Session<N> {
    // ---- result cache (src/cache) -----------------------------------------

    /// A cache plan for a read, unless the session's state rules caching out: inside a
    /// transaction (its own writes are not committed), pinned (temporary tables, locks),
    /// or right after a `SET TRANSACTION` (a read of a table on the node uses that one-shot
    /// mode up; a hit would leave it for the next transaction).
    pub(super) fn cache_plan(
        &self,
        cache: &QueryCache,
        stmt: &Statement,
        sql: &[u8],
        params: Option<&[u8]>,
    ) -> Option<ReadPlan> {
        if self.state.in_transaction()
            || self.state.pinned.is_some()
            || !self.cache_pending.is_empty()
            || self.state.next_transaction.is_some()
        {
            return None;
        }
        let parts = KeyParts {
            user: &self.user,
            schema: self.state.setup.schema.as_deref(),
            collation: self.collation,
            caps: self.caps,
            sets: &self.state.setup.set_log,
        };
        cache.plan(stmt, sql, &parts, params)
    }

    /// Serves a cacheable read: a hit is replayed; on a miss one session per key loads it
    /// from the master while the others wait for its result.
    pub(super) async fn cached_read(
        &mut self,
        cache: &QueryCache,
        plan: &ReadPlan,
        stmt: &Statement,
        payload: &[u8],
        seq: u8,
        expect: Expect,
    ) -> Result<(), FrontendError> {
        if let Some(e) = cache.get(plan).await {
            return self.replay(&e, seq).await;
        }
        let mut failed = None;
        // Boxed: the load (moka's single-flight entry and the miss inside it)
        // is a 20 KB future; inline, it made every command's boxed future
        // that large, and each command paid the copy into its box.
        let loaded = Box::pin(cache.load(plan, async {
            match self
                .cache_miss(stmt, payload, seq, expect, cache.max_entry_bytes())
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    failed = Some(e);
                    None
                }
            }
        }))
        .await;
        if let Some(e) = failed {
            return Err(e);
        }
        match loaded {
            Loaded::Ran => Ok(()),
            Loaded::Shared(e) => self.replay(&e, seq).await,
            Loaded::Failed => self
                .cache_miss(stmt, payload, seq, expect, 0)
                .await
                .map(drop),
        }
    }

    /// Runs a cacheable read on the master, capturing up to `limit` bytes of its reply
    /// (0: no capture). Returns the reply if it is a complete result set worth storing.
    pub(super) async fn cache_miss(
        &mut self,
        stmt: &Statement,
        payload: &[u8],
        seq: u8,
        expect: Expect,
        limit: usize,
    ) -> Result<Option<Captured>, FrontendError> {
        self.tap = Some(Tap {
            capture: (limit > 0).then(Vec::new),
            limit,
            ..Tap::default()
        });
        let res = match (expect, statement_id(payload)) {
            (Expect::Results { binary: true, .. }, Some(id)) => {
                self.execute_placed(payload, id, 0, seq, true).await
            }
            _ => {
                let job = Job::Plain { payload, expect };
                self.statement(Request::CacheMiss(stmt), stmt, job, None, seq)
                    .await
                    .map(drop)
            }
        };
        let tap = self.tap.take();
        res?;
        let Some(tap) = tap.filter(|t| t.complete) else {
            return Ok(None);
        };
        if tap.overflow {
            return Ok(Some(Captured {
                overflow: true,
                ..Captured::default()
            }));
        }
        let Some(bytes) = tap.capture else {
            return Ok(None);
        };
        // A result set (not OK, ERR or LOCAL INFILE) that left no transaction open.
        let result_set = !matches!(bytes.get(4), None | Some(0x00 | 0xFF | 0xFB));
        let clean = self.state.status & (status::IN_TRANS | status::MORE_RESULTS_EXISTS) == 0;
        Ok((result_set && clean).then(|| Captured {
            first_seq: bytes.get(3).copied().unwrap_or(seq),
            bytes,
            overflow: false,
        }))
    }

    pub(super) async fn replay(&mut self, e: &Entry, seq: u8) -> Result<(), FrontendError> {
        e.replay_into(&mut self.client.wbuf, seq);
        self.client.flush().await?;
        // SHOW WARNINGS after a hit has no connection to ask.
        self.state.last_node = None;
        Ok(())
    }

    /// Before a statement runs: note the tables it writes (from [`QueryCache::writes`]). Outside a transaction they
    /// are invalidated now as well (covers a reply that never comes back); the reply is
    /// then held until [`Self::cache_writes_end`] invalidated again after the commit.
    pub(super) fn cache_writes_begin(&mut self, cache: &QueryCache, writes: Option<Arc<WriteSet>>) {
        if let Some(w) = writes {
            if !self.state.in_transaction() {
                cache.invalidate(&w);
            }
            self.cache_pending.merge(&w);
        }
        if !self.cache_pending.is_empty() {
            self.tap = Some(Tap {
                hold_flush: true,
                ..Tap::default()
            });
        }
    }

    /// After the node answered, before the client sees it: once no transaction is open
    /// (autocommit write, COMMIT, ROLLBACK), invalidate what it wrote; then flush.
    pub(super) async fn cache_writes_end(
        &mut self,
        cache: &QueryCache,
    ) -> Result<(), FrontendError> {
        if self.tap.take().is_none() {
            return Ok(());
        }
        if self.state.status & status::IN_TRANS == 0 {
            cache.invalidate(&std::mem::take(&mut self.cache_pending));
        }
        self.client.flush().await?;
        Ok(())
    }
}
