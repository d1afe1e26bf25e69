//! The node connections of one client session, and everything tied to
//! them: checkout from the pools, bringing a connection to the session's
//! setup before a command, the prepared statements' ids per connection, and
//! running one command on a node with its reply relayed to the client.
//! [`NodeConns::run`] is the only way a session talks to a node. A failed
//! connection is dropped in one place ([`NodeConns::drop_conn`]); the node
//! to use, and the one a read may fall back to, are always given: this
//! module never chooses a node.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connection::{BackendConn, ConnKey, Credentials};
use super::error::BackendError;
use super::job::{Abandon, ClientSink, Job, Ran};
use super::pool::Pools;
use super::relay::{relay, RelayError, RelayOutcome, Sink, StmtIds};
use super::setup::{mark_synced, sync, SessionSetup};
use super::statements::Statements;
use super::threads::HeldThreads;
use crate::net::NetError;
use crate::protocol::com;
use crate::protocol::execute::with_statement_id;
use crate::protocol::response::Expect;
use crate::topology::NodeId;

/// A held connection idle longer than this is checked before use (one
/// non-blocking peek): rarely enough to cost nothing on a busy session.
/// So is one the session comes back to from another node: the node's role
/// may have changed meanwhile, and a switchover's fence kills the client
/// connections of the master it demotes, which can become master again.
const IDLE_RECHECK: Duration = Duration::from_millis(500);

pub struct NodeConns {
    pools: Arc<Pools>,
    key: ConnKey,
    creds: Credentials,
    conns: Vec<Option<BackendConn>>,
    statements: Statements,
    /// The node threads held, for a KILL naming this session.
    threads: Arc<HeldThreads>,
    /// The node the last command ran on.
    last_used: Option<NodeId>,
    /// The session ran something whose state COM_RESET_CONNECTION does not
    /// undo: its connections are closed when it lets go of them.
    retire: bool,
}

impl Drop for NodeConns {
    fn drop(&mut self) {
        self.release_all();
    }
}

impl NodeConns {
    /// `key` says which pooled connections fit the client (its schema is
    /// filled from the setup at each checkout).
    pub fn new(pools: Arc<Pools>, nodes: usize, key: ConnKey, creds: Credentials) -> NodeConns {
        NodeConns {
            pools,
            key,
            creds,
            conns: (0..nodes).map(|_| None).collect(),
            statements: Statements::default(),
            threads: Arc::default(),
            last_used: None,
            retire: false,
        }
    }

    /// The node threads this session holds (the session registry keeps it,
    /// so a KILL naming the session finds them).
    pub fn threads(&self) -> Arc<HeldThreads> {
        Arc::clone(&self.threads)
    }

    /// Which nodes the session holds a connection to.
    pub fn held(&self) -> impl Iterator<Item = bool> + '_ {
        self.conns.iter().map(Option::is_some)
    }

    /// The node's name, for errors and logs.
    pub fn node_name(&self, node: NodeId) -> Arc<str> {
        self.pools.node_name(node)
    }

    /// The id the next prepared statement will be shown to the client as.
    pub fn next_statement_id(&self) -> u32 {
        self.statements.next_id()
    }

    /// The statement's SQL text, as the client prepared it.
    pub fn statement_text(&self, id: u32) -> Option<&[u8]> {
        self.statements.prepare_payload(id).and_then(|p| p.get(1..))
    }

    /// A statement's parameter count and last bound types (for cache keys).
    pub fn statement_params(&self, id: u32) -> Option<(u16, Option<&[u8]>)> {
        self.statements.params(id)
    }

    /// Remembers the parameter types an execution bound.
    pub fn note_types(&mut self, id: u32, execute: &[u8]) {
        self.statements.note_types(id, execute);
    }

    /// The session left state that no reset undoes (and its replayed SETs
    /// may leave it on every connection it opens from now on): each is
    /// closed, not pooled, when the session lets go of it.
    pub fn keep_from_other_sessions(&mut self) {
        self.retire = true;
    }

    /// The one place a session lets go of a failed connection: closed, not pooled.
    pub fn drop_conn(&mut self, node: NodeId) {
        if let Some(slot) = self.conns.get_mut(node) {
            *slot = None;
            self.threads.set(node, None);
        }
    }

    /// Gives every connection back to its pool (which resets it, or closes
    /// it if it cannot change hands) and forgets the prepared statements.
    /// While a KILL naming this session is being sent, they are closed
    /// instead: its thread ids must not reach another session.
    pub fn release_all(&mut self) {
        let close = self.threads.release_all();
        let retire = std::mem::take(&mut self.retire);
        for c in self.conns.iter_mut().filter_map(Option::take) {
            if close {
                tracing::debug!(node = %c.node_name, "a kill is in flight; connection closed");
            } else if retire {
                tracing::debug!(node = %c.node_name, "holds state no reset undoes; connection closed");
            } else {
                self.pools.checkin(c);
            }
        }
        self.statements.clear();
    }

    /// Multiplexing: gives back to the pool every held connection that
    /// nothing of this session is left on ([`super::connection::Residue`]);
    /// the caller has checked that the session itself is tied to none (no
    /// transaction, no pins). Its prepared statements are prepared again
    /// wherever they next run. Returns how many went back.
    pub fn release_untied(&mut self) -> usize {
        let mut released = 0;
        for (node, slot) in self.conns.iter_mut().enumerate() {
            if slot.as_ref().is_none_or(|c| c.residue.any()) {
                continue;
            }
            let close = self.threads.release(node);
            self.statements.forget_node(node);
            if let Some(c) = slot.take() {
                if close {
                    tracing::debug!(node = %c.node_name, "a kill is in flight; connection closed");
                } else if self.retire {
                    tracing::debug!(node = %c.node_name, "holds state no reset undoes; connection closed");
                } else {
                    self.pools.checkin(c);
                }
                released += 1;
            }
        }
        released
    }

    /// Another session waits for a connection slot on a node this one
    /// holds a connection to.
    pub fn slot_wanted(&self) -> bool {
        self.conns
            .iter()
            .enumerate()
            .any(|(node, c)| c.is_some() && self.pools.waiting(node))
    }

    /// New credentials and client flags (COM_CHANGE_USER): connections of
    /// the old user go back first.
    pub fn change_user(&mut self, creds: Credentials, collation: u8) {
        self.release_all();
        self.key.user = Arc::clone(&creds.user);
        self.key.collation = collation;
        self.creds = creds;
    }

    /// A command that changed the setup ran on `node`: its connection
    /// already has the new setup.
    pub fn mark_synced(&mut self, node: NodeId, setup: &SessionSetup) {
        if let Some(c) = self.conns.get_mut(node).and_then(Option::as_mut) {
            mark_synced(c, setup);
        }
    }

    /// Makes sure the session holds a connection to `node` in its setup.
    pub async fn open(
        &mut self,
        node: NodeId,
        setup: &SessionSetup,
    ) -> Result<&mut BackendConn, BackendError> {
        let slot = self
            .conns
            .get_mut(node)
            .ok_or(BackendError::Protocol("unknown node"))?;
        // A connection held but idle for a while, or left for another node,
        // may have been closed by the node meanwhile (a fence kills a
        // demoted master's connections, a restart, wait_timeout): a command
        // sent there would be lost with no way to tell whether it ran.
        // Checked with a non-blocking peek. One known broken (bytes after
        // a reply's end, a failed write) or owing part of a reply never
        // carries another command.
        let returning = self.last_used != Some(node);
        if slot.as_mut().is_some_and(|c| {
            c.broken
                || !c.reply_read()
                || ((returning || c.idle_for() > IDLE_RECHECK) && !c.can_change_hands())
        }) {
            *slot = None;
            self.threads.set(node, None);
        }
        if slot.is_none() {
            let mut key = self.key.clone();
            key.schema.clone_from(&setup.schema);
            let conn = self.pools.checkout(node, &key, &self.creds).await?;
            self.threads.set(node, Some(conn.thread_id));
            *slot = Some(conn);
        }
        let Some(conn) = slot.as_mut() else {
            return Err(BackendError::Protocol("connection vanished"));
        };
        if let Err(e) = sync(conn, setup).await {
            if e.is_disconnect() || conn.broken {
                *slot = None;
                self.threads.set(node, None);
            }
            return Err(e);
        }
        match slot.as_mut() {
            Some(conn) => Ok(conn),
            None => Err(BackendError::Protocol("connection vanished")),
        }
    }

    /// Runs `job` on `node`, relaying the reply to the client. If `node`
    /// fails before any byte reached the client, runs it on `fallback`.
    /// Once `abandon` resolves, no more of the reply is relayed: the node
    /// lost the role the command was placed there for (a write's late OK
    /// from a master that was replaced must never reach the client).
    /// Errs only when the client is gone.
    pub async fn run(
        &mut self,
        node: NodeId,
        fallback: Option<NodeId>,
        job: Job<'_>,
        setup: &SessionSetup,
        client: &mut ClientSink<'_>,
        abandon: Option<Abandon>,
    ) -> Result<Ran, NetError> {
        let mut abandon = abandon;
        let first = self
            .attempt(node, job, setup, client, abandon.as_mut())
            .await?;
        let Some(other) = fallback.filter(|f| *f != node) else {
            return Ok(first);
        };
        let why = match &first {
            Ran::Lost {
                sent: false, error, ..
            } => error.clone(),
            Ran::Unavailable { error, .. } => error.to_string(),
            Ran::UnknownStatement if matches!(job, Job::Execute { .. }) => {
                "cannot prepare the statement there".to_string()
            }
            _ => return Ok(first),
        };
        tracing::debug!(node = %self.node_name(node), error = %why, "read node failed; running it on the master");
        Ok(match self.attempt(other, job, setup, client, None).await? {
            Ran::Replied {
                node: ran_on,
                outcome,
                took,
                ..
            } => Ran::Replied {
                node: ran_on,
                outcome,
                took,
                fell_back_from: Some((node, why)),
            },
            ran => ran,
        })
    }

    async fn attempt(
        &mut self,
        node: NodeId,
        job: Job<'_>,
        setup: &SessionSetup,
        client: &mut ClientSink<'_>,
        abandon: Option<&mut Abandon>,
    ) -> Result<Ran, NetError> {
        let started = Instant::now();
        let opened = self.open(node, setup).await.map(drop);
        self.last_used = Some(node);
        if let Err(error) = opened {
            return Ok(Ran::Unavailable { node, error });
        }
        let (payload, expect, stmt) = match self.wire_command(node, job).await {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(Ran::UnknownStatement),
            Err(error) => return Ok(Ran::Unavailable { node, error }),
        };
        let Some(conn) = self.conns.get_mut(node).and_then(Option::as_mut) else {
            return Ok(Ran::Unavailable {
                node,
                error: BackendError::Protocol("connection vanished"),
            });
        };
        let conn_id = conn.id;
        if let Err(e) = conn.send(&payload).await {
            // A node refuses a command over its max_allowed_packet before
            // reading all of it (1153), then closes: the write fails, but
            // its ERR is readable and is the client's answer.
            let parting = conn.parting_error().await;
            self.drop_conn(node);
            if let Some((seq, err)) = parting {
                client.io.queue(seq, &err);
                client.io.flush().await?;
                let outcome = RelayOutcome {
                    error: crate::protocol::response::parse_err(&err).map(|e| e.0),
                    next_seq: seq.wrapping_add(1),
                    ..RelayOutcome::default()
                };
                return Ok(Ran::Replied {
                    node,
                    outcome,
                    took: started.elapsed(),
                    fell_back_from: None,
                });
            }
            return Ok(Ran::Lost {
                node,
                delivered: false,
                sent: false,
                next_seq: 0,
                error: e.to_string(),
                torn: false,
            });
        }
        let flushes_before = client.io.flushes;
        let sink = Sink::Client {
            io: &mut *client.io,
            caps: client.caps,
            stmt,
            tap: client.tap.as_deref_mut(),
            owners: client.owners,
            gate: client.gate,
            ask_last_gtid: client.ask_last_gtid,
        };
        let relayed = match abandon {
            None => relay(conn, sink, expect).await,
            Some(abandon) => tokio::select! {
                r = relay(conn, sink, expect) => r,
                () = abandon => {
                    self.drop_conn(node);
                    let sent = client.io.flushes != flushes_before;
                    if !sent {
                        client.io.wbuf.clear();
                    }
                    // Part of the reply went out, perhaps half a packet (the
                    // flush itself may be what was dropped): the client's
                    // stream cannot be continued.
                    return Ok(Ran::Lost {
                        node,
                        delivered: true,
                        sent,
                        next_seq: 0,
                        error: "the node lost the master role while the command ran".into(),
                        torn: sent,
                    });
                }
            },
        };
        match relayed {
            Ok(outcome) => {
                conn.residue.insert_id |= outcome.insert_id;
                conn.residue.warnings = outcome.warnings;
                if matches!(job, Job::Execute { cursor: true, .. }) {
                    conn.residue.statement_state = true;
                }
                if let (Job::Prepare { payload }, Some((stmt_id, _, params))) =
                    (job, outcome.prepared)
                {
                    let id = self.statements.next_id();
                    let schema = conn.sync.schema.clone();
                    self.statements
                        .insert(id, payload, schema, params, node, conn_id, stmt_id);
                }
                Ok(Ran::Replied {
                    node,
                    outcome,
                    took: started.elapsed(),
                    fell_back_from: None,
                })
            }
            Err(RelayError::Backend {
                error,
                sent,
                next_seq,
                torn,
            }) => {
                self.drop_conn(node);
                if !sent {
                    // Nothing reached the client: drop the partial reply, so a
                    // retry (or our ERR) is all the client sees.
                    client.io.wbuf.clear();
                }
                Ok(Ran::Lost {
                    node,
                    delivered: true,
                    sent,
                    next_seq,
                    error: error.to_string(),
                    torn,
                })
            }
            Err(RelayError::Client(e)) => {
                // The node is mid-reply: that connection cannot be reused.
                self.drop_conn(node);
                Err(e)
            }
        }
    }

    /// The bytes `job` sends on `node`'s connection, what its reply looks
    /// like and the statement ids the client must see; None when the
    /// statement is not known there (and cannot be prepared for it).
    /// Text commands and prepares go as the client sent them, not copied.
    async fn wire_command<'j>(
        &mut self,
        node: NodeId,
        job: Job<'j>,
    ) -> Result<Option<(Cow<'j, [u8]>, Expect, Option<StmtIds>)>, BackendError> {
        Ok(Some(match job {
            Job::Plain { payload, expect } => (Cow::Borrowed(payload), expect, None),
            Job::Prepare { payload } => {
                let ids = StmtIds {
                    client: self.statements.next_id(),
                    node: None,
                };
                (Cow::Borrowed(payload), Expect::Prepare, Some(ids))
            }
            Job::Execute {
                payload,
                id,
                cursor,
            } => {
                let Some(stmt_id) = self.prepared_here(id, node).await? else {
                    return Ok(None);
                };
                let conn_id = self.conn_id(node).unwrap_or_default();
                let Some(p) = self.statements.execution_for(id, node, conn_id, payload) else {
                    return Ok(None);
                };
                let expect = Expect::Results {
                    binary: true,
                    cursor,
                };
                let ids = StmtIds {
                    client: id,
                    node: Some(stmt_id),
                };
                (Cow::Owned(p), expect, Some(ids))
            }
            Job::Reset { payload, id } => {
                let Some(stmt_id) = self.prepared_here(id, node).await? else {
                    return Ok(None);
                };
                let Some(p) = with_statement_id(payload, stmt_id) else {
                    return Ok(None);
                };
                let ids = StmtIds {
                    client: id,
                    node: Some(stmt_id),
                };
                (Cow::Owned(p), Expect::Single, Some(ids))
            }
            Job::Fetch { payload, id } => {
                let conn_id = self.conn_id(node);
                let Some(ns) = conn_id.and_then(|c| self.statements.on_conn(id, node, c)) else {
                    return Ok(None);
                };
                let Some(p) = with_statement_id(payload, ns.stmt_id) else {
                    return Ok(None);
                };
                let ids = StmtIds {
                    client: id,
                    node: Some(ns.stmt_id),
                };
                (Cow::Owned(p), Expect::Fetch, Some(ids))
            }
        }))
    }

    fn conn_id(&self, node: NodeId) -> Option<u64> {
        self.conns.get(node)?.as_ref().map(|c| c.id)
    }

    /// The node statement id of the client's statement `id` on `node`'s
    /// connection, preparing it there first if needed. None if the client
    /// never prepared it or the node refuses to.
    async fn prepared_here(&mut self, id: u32, node: NodeId) -> Result<Option<u32>, BackendError> {
        let Some(conn_id) = self.conn_id(node) else {
            return Err(BackendError::Protocol("connection vanished"));
        };
        if let Some(ns) = self.statements.on_conn(id, node, conn_id) {
            return Ok(Some(ns.stmt_id));
        }
        let Some(prepare) = self.statements.prepare_payload(id).map(<[u8]>::to_vec) else {
            return Ok(None);
        };
        let schema = self.statements.schema(id).map(<[u8]>::to_vec);
        let Some(conn) = self.conns.get_mut(node).and_then(Option::as_mut) else {
            return Err(BackendError::Protocol("connection vanished"));
        };
        // A statement binds its tables in the schema of its PREPARE, as on
        // the node: prepared again in that schema if the session moved since.
        let back = conn.sync.schema.clone();
        let elsewhere = schema.is_some() && schema != back;
        if elsewhere {
            if let Err(e) = in_schema(conn, schema.as_deref()).await {
                self.drop_conn(node);
                return Err(e);
            }
        }
        if let Err(e) = conn.send(&prepare).await {
            self.drop_conn(node);
            return Err(e.into());
        }
        let out = match relay(conn, Sink::Discard, Expect::Prepare).await {
            Ok(out) => out,
            Err(_) => {
                self.drop_conn(node);
                return Err(BackendError::Protocol("connection lost while preparing"));
            }
        };
        if elsewhere && back.is_some() {
            if let Err(e) = in_schema(conn, back.as_deref()).await {
                self.drop_conn(node);
                return Err(e);
            }
        }
        let Some((stmt_id, _, _)) = out.prepared else {
            return Ok(None);
        };
        self.statements.prepared_on(id, node, conn_id, stmt_id);
        Ok(Some(stmt_id))
    }

    /// Runs `sql` on the session's own connection to `node`, its reply read
    /// and dropped (what it said is in the outcome): the proxy's own
    /// statements on the session's behalf, such as the KILL that carries
    /// out a `KILL <session id>`.
    pub async fn side_query(
        &mut self,
        node: NodeId,
        setup: &SessionSetup,
        sql: &str,
    ) -> Result<RelayOutcome, BackendError> {
        let conn = self.open(node, setup).await?;
        let mut payload = Vec::with_capacity(1 + sql.len());
        payload.push(com::QUERY);
        payload.extend_from_slice(sql.as_bytes());
        if let Err(e) = conn.send(&payload).await {
            self.drop_conn(node);
            return Err(e.into());
        }
        let text = Expect::Results {
            binary: false,
            cursor: false,
        };
        match relay(conn, Sink::Discard, text).await {
            Ok(out) => Ok(out),
            Err(_) => {
                self.drop_conn(node);
                Err(BackendError::Protocol(
                    "connection lost during the proxy's statement",
                ))
            }
        }
    }

    /// COM_STMT_SEND_LONG_DATA for the client's statement `id`, to `node`
    /// (no reply). Quietly nothing if the statement is unknown, as a node
    /// answers nothing to it either.
    pub async fn send_long_data(
        &mut self,
        node: NodeId,
        id: u32,
        payload: &[u8],
        setup: &SessionSetup,
    ) -> Result<(), BackendError> {
        self.open(node, setup).await?;
        let Some(stmt_id) = self.prepared_here(id, node).await? else {
            return Ok(());
        };
        let Some(p) = with_statement_id(payload, stmt_id) else {
            return Ok(());
        };
        let Some(conn) = self.conns.get_mut(node).and_then(Option::as_mut) else {
            return Ok(());
        };
        self.statements.long_data_sent(id, node, conn.id);
        conn.residue.statement_state = true;
        if let Err(e) = conn.send_unanswered(&p).await {
            self.drop_conn(node);
            return Err(e.into());
        }
        Ok(())
    }

    /// COM_STMT_CLOSE: the statement is forgotten and closed on every
    /// connection that still holds it (no reply).
    pub async fn close_statement(&mut self, id: u32) {
        for (node, ns) in self.statements.remove(id) {
            let Some(conn) = self.conns.get_mut(node).and_then(Option::as_mut) else {
                continue;
            };
            if conn.id != ns.conn_id {
                continue;
            }
            let mut p = vec![com::STMT_CLOSE];
            p.extend_from_slice(&ns.stmt_id.to_le_bytes());
            if conn.send_unanswered(&p).await.is_err() {
                self.drop_conn(node);
            }
        }
    }

    /// COM_STMT_RESET on every copy of the statement but `node`'s, quietly;
    /// the caller then runs the reset on `node`, whose reply the client gets.
    pub async fn reset_other_copies(&mut self, id: u32, node: NodeId, payload: &[u8]) {
        for (other, ns) in self.statements.copies(id) {
            if other == node {
                continue;
            }
            let Some(conn) = self.conns.get_mut(other).and_then(Option::as_mut) else {
                continue;
            };
            if conn.id != ns.conn_id {
                continue;
            }
            let Some(p) = with_statement_id(payload, ns.stmt_id) else {
                continue;
            };
            if conn.simple(&p).await.is_err() {
                self.drop_conn(other);
            }
        }
    }
}

/// Moves `conn` into `schema` (COM_INIT_DB), noting it in its sync state.
async fn in_schema(conn: &mut BackendConn, schema: Option<&[u8]>) -> Result<(), BackendError> {
    let Some(db) = schema else {
        return Ok(());
    };
    let mut p = vec![com::INIT_DB];
    p.extend_from_slice(db);
    conn.expect_ok(&p).await?;
    conn.sync.schema = Some(db.to_vec());
    Ok(())
}
