//! One client session: the command loop. It reads a command, asks the router
//! where it goes, brings that node's connection to the session's state, has
//! the backend relay the reply, and records what the reply changed (status
//! flags, GTID, schema, SETs, pins). Routing rules live in `router`; this file
//! only applies the decision. Prepared-statement commands are in `stmt.rs`,
//! the result-cache hooks in `cache.rs` (child modules: same `Session`).

mod cache_hooks;
mod stmt;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::login::{self, Login};
use super::prepared::Prepared;
use super::state::SessionState;
use super::{FrontendError, ProxyContext};
use crate::admin::SessionHandle;
use crate::backend::{
    relay, BackendConn, BackendError, ConnKey, Credentials, RelayError, RelayOutcome, Sink,
    StmtIds, Tap,
};
use crate::cache::WriteSet;
use crate::config::Consistency;
use crate::net::{NetError, PacketIo};
use crate::protocol::command::Command;
use crate::protocol::err::ProxyError;
use crate::protocol::handshake::{self, NATIVE_PLUGIN};
use crate::protocol::response::{ok_payload, Expect};
use crate::protocol::{caps, com, status};
use crate::router::{self, Route, RouterContext, Statement, StmtKind, Target};
use crate::topology::failover::WritePass;

/// Runs a client from greeting to goodbye.
pub async fn run(ctx: Arc<ProxyContext>, mut io: PacketIo, id: u32, shutdown: CancellationToken) {
    let nonce = handshake::new_nonce();
    let version = ctx.server_version.load_full();
    let timeout = ctx.config.mysql.client_read_timeout;
    let login = match login::login(
        &mut io,
        &ctx.users,
        id,
        &nonce,
        &version,
        ctx.server_caps,
        timeout,
    )
    .await
    {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(error = %e, "login failed");
            ctx.metrics.login_failures.fetch_add(1, Relaxed);
            return;
        }
    };
    tracing::debug!(user = %login.creds.user, "logged in");
    let (peer, db) = (io.peer_addr().ok(), login.hello.db.as_deref());
    let sessions = &ctx.metrics.sessions;
    let activity = sessions.register(id, &login.creds.user, peer, db);
    let mut s = Session::new(ctx, io, login, nonce, activity);
    let seq = s.login_seq;
    if s.state.schema.is_some() {
        // The node decides whether the schema exists (1049 otherwise).
        if let Err(e) = s.open_master().await {
            s.send_backend_error(seq, &e).await;
            return;
        }
    }
    if s.reply_ok(seq).await.is_err() {
        return;
    }
    s.command_loop(shutdown).await;
}

enum Flow {
    Continue,
    Close,
}

/// Result of one try of a command on one node.
enum Attempt {
    Done(RelayOutcome),
    /// The node failed before (`sent == false`) or while replying.
    NodeFailed {
        sent: bool,
        next_seq: u8,
        error: String,
    },
    /// No usable connection to the node.
    Unavailable(BackendError),
}

struct Session {
    ctx: Arc<ProxyContext>,
    client: PacketIo,
    caps: u32,
    creds: Credentials,
    collation: u8,
    nonce: [u8; 20],
    state: SessionState,
    conns: Vec<Option<BackendConn>>,
    prepared: Prepared,
    login_seq: u8,
    /// Node of the previous statement: SHOW WARNINGS and friends go there.
    last_node: Option<usize>,
    /// The master this session writes to; it stays while a transaction is
    /// open there, so a switchover never splits a transaction.
    home: Option<usize>,
    /// This session's open transaction is counted in the switchover gate.
    tx_counted: bool,
    /// This session's entry in admin SHOW SESSIONS.
    activity: SessionHandle,
    /// Capture / held flush for the reply being relayed (result cache).
    tap: Option<Tap>,
    /// Tables written by the open transaction: invalidated when it ends.
    cache_pending: WriteSet,
}

impl Drop for Session {
    fn drop(&mut self) {
        // The transaction's fate is unknown (a COMMIT may have reached the node).
        if let Some(c) = &self.ctx.cache {
            if !self.cache_pending.is_empty() {
                c.invalidate(&self.cache_pending);
            }
        }
        for c in self.conns.iter_mut().filter_map(Option::take) {
            self.ctx.pools.checkin(c);
        }
        if self.tx_counted {
            self.ctx.failover.gate.tx_closed();
        }
    }
}

impl Session {
    fn new(
        ctx: Arc<ProxyContext>,
        client: PacketIo,
        login: Login,
        nonce: [u8; 20],
        activity: SessionHandle,
    ) -> Session {
        let nodes = ctx.topology.snapshot().nodes.len();
        let Login {
            hello,
            creds,
            caps,
            next_seq,
        } = login;
        Session {
            client,
            caps,
            creds,
            collation: hello.collation,
            nonce,
            state: SessionState::new(hello.db, caps & caps::MULTI_STATEMENTS != 0),
            conns: (0..nodes).map(|_| None).collect(),
            prepared: Prepared::default(),
            login_seq: next_seq,
            last_node: None,
            home: None,
            tx_counted: false,
            activity,
            tap: None,
            cache_pending: WriteSet::default(),
            ctx,
        }
    }

    async fn command_loop(&mut self, shutdown: CancellationToken) {
        let max = self.ctx.config.mysql.max_allowed_packet as usize;
        let timeout = Some(self.ctx.config.mysql.client_read_timeout);
        loop {
            let pkt = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = self.client.read_packet(max, None, timeout) => p,
            };
            let pkt = match pkt {
                Ok(p) => p,
                Err(NetError::TooLarge { size, .. }) => {
                    tracing::info!(size, "client packet over max_allowed_packet");
                    let _ = self.reply_err(1, ProxyError::packet_too_large()).await;
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "client gone");
                    break;
                }
            };
            let seq = pkt.seq.wrapping_add(1);
            let payload = pkt.payload;
            let started = Instant::now();
            let cmd = Command::parse(&payload);
            self.activity.begin(&cmd);
            let flow = self.dispatch(cmd, &payload, seq).await;
            let held = self.conns.iter().map(Option::is_some);
            self.activity.end(self.state.schema.as_deref(), held);
            tracing::trace!(
                command = cmd.name(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "command done"
            );
            self.client.shrink();
            match flow {
                Ok(Flow::Continue) => {}
                Ok(Flow::Close) => break,
                Err(FrontendError::Rejected(e)) => {
                    // The session cannot go on (e.g. its state was on a master that
                    // changed): say why, then close.
                    tracing::info!(error = %e, "session closed by the proxy");
                    let _ = self.reply_err(seq, e).await;
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "session ends");
                    break;
                }
            }
        }
    }

    async fn dispatch(
        &mut self,
        cmd: Command<'_>,
        payload: &[u8],
        seq: u8,
    ) -> Result<Flow, FrontendError> {
        match cmd {
            Command::Quit => return Ok(Flow::Close),
            Command::Query(sql) => self.query(payload, sql, seq).await?,
            Command::InitDb(db) => self.init_db(payload, db, seq).await?,
            Command::Ping => self.reply_ok(seq).await?,
            Command::StmtPrepare(sql) => self.prepare(payload, sql, seq).await?,
            Command::StmtExecute { id, flags } => self.execute(payload, id, flags, seq).await?,
            Command::StmtSendLongData { id } => self.send_long_data(payload, id).await,
            Command::StmtClose { id } => self.stmt_close(id).await,
            Command::StmtReset { id } => self.stmt_reset(payload, id, seq).await?,
            Command::StmtFetch { id } => self.fetch(payload, id, seq).await?,
            Command::SetOption(opt) => self.set_option(payload, opt, seq).await?,
            Command::FieldList => {
                let node = self.read_node(None);
                self.exec(node, payload, Expect::FieldList, seq, true, None)
                    .await?;
            }
            Command::Statistics | Command::ProcessKill(_) => {
                let master = self.master()?;
                self.exec(master, payload, Expect::Single, seq, false, None)
                    .await?;
            }
            Command::ChangeUser => return self.change_user(payload, seq).await,
            Command::ResetConnection => {
                self.reset_session(self.state.schema.clone());
                self.reply_ok(seq).await?;
            }
            Command::Unknown(c) => self.reply_err(seq, ProxyError::unknown_command(c)).await?,
            Command::Malformed(_) => self.reply_err(seq, ProxyError::malformed_packet()).await?,
        }
        Ok(Flow::Continue)
    }

    // ---- routing helpers -------------------------------------------------

    /// The node for master-routed statements: the topology's master, except
    /// that an open transaction finishes where it started. A session pinned
    /// by state that lives only on the old master cannot follow a new one.
    fn master(&mut self) -> Result<usize, FrontendError> {
        let current =
            self.ctx.topology.master().ok_or_else(|| {
                FrontendError::Rejected(ProxyError::no_node("writes (no master)"))
            })?;
        match self.home {
            Some(home) if home != current => {
                if self.state.in_transaction() {
                    return Ok(home);
                }
                if self.state.pinned.is_some() {
                    return Err(FrontendError::Rejected(ProxyError::master_changed()));
                }
                tracing::info!(from = home, to = current, "session follows the new master");
                self.home = Some(current);
            }
            Some(_) => {}
            None => self.home = Some(current),
        }
        Ok(current)
    }

    /// Lets a master statement pass the switchover gate (waiting while it
    /// is closed); None inside an open transaction, which is already counted
    /// and must be allowed to finish.
    async fn write_pass(&self) -> Option<WritePass> {
        if self.state.status & status::IN_TRANS != 0 {
            return None;
        }
        let limit = self.ctx.config.failover.switchover_timeout * 3;
        Some(self.ctx.failover.gate.enter(limit).await)
    }

    /// Keeps the gate's count of open transactions on the master right.
    fn count_transaction(&mut self) {
        let open = self.state.status & status::IN_TRANS != 0;
        if open != self.tx_counted {
            if open {
                self.ctx.failover.gate.tx_opened();
            } else {
                self.ctx.failover.gate.tx_closed();
            }
            self.tx_counted = open;
        }
    }

    /// A node for a read: by weight, honouring the consistency mode. With no
    /// usable choice, the master.
    fn read_node(&self, stmt: Option<&Statement>) -> usize {
        let snap = self.ctx.topology.current();
        let master = self.home.or(snap.master).unwrap_or(0);
        if self.state.in_transaction() || self.state.pinned.is_some() {
            return master;
        }
        if stmt.is_some_and(|s| s.hint == Some(router::Hint::Master)) {
            return master;
        }
        let routing = &self.ctx.config.routing;
        if !routing.read_split || routing.consistency == Consistency::Master {
            return master;
        }
        let max_lag = self.ctx.config.failover.max_replication_lag;
        let node = snap
            .pick_readable(rand::random(), max_lag)
            .unwrap_or(master);
        if node != master && routing.consistency == Consistency::Session {
            if let Some(g) = &self.state.last_gtid {
                // Until the monitor shows the replica applied our last write.
                if !snap.nodes.get(node).is_some_and(|n| n.has_applied(g)) {
                    return master;
                }
            }
        }
        node
    }

    fn node_for(&mut self, route: Route, stmt: &Statement) -> Result<usize, FrontendError> {
        if route.why == router::Why::SameConnection && !stmt.master_func {
            // About the previous statement: ask the connection that ran it.
            if let Some(node) = self.last_node {
                return Ok(node);
            }
        }
        match route.target {
            Target::Master => self.master(),
            Target::Read => Ok(self.read_node(Some(stmt))),
        }
    }

    fn router_context<'a>(&self, stmt: &'a Statement, force_master: bool) -> RouterContext<'a> {
        RouterContext {
            stmt,
            in_transaction: self.state.in_transaction(),
            pinned: self.state.pinned.is_some() || force_master,
            read_split: self.ctx.config.routing.read_split,
        }
    }

    fn key(&self) -> ConnKey {
        ConnKey {
            user: self.creds.user.clone(),
            caps: self.caps & caps::RESULT_AFFECTING,
            collation: self.collation,
            schema: self.state.schema.clone(),
        }
    }

    // ---- node connections ---------------------------------------------------

    /// Makes sure the session holds a connection to `node` in the session's state.
    async fn ready_conn(&mut self, node: usize) -> Result<(), BackendError> {
        if node >= self.conns.len() {
            return Err(BackendError::Protocol("unknown node"));
        }
        if self.conns[node].is_none() {
            let key = self.key();
            let conn = self.ctx.pools.checkout(node, &key, &self.creds).await?;
            self.conns[node] = Some(conn);
        }
        let Some(conn) = self.conns[node].as_mut() else {
            return Err(BackendError::Protocol("connection vanished"));
        };
        if let Err(e) = sync(conn, &self.state).await {
            if e.is_disconnect() || conn.broken {
                self.conns[node] = None;
            }
            return Err(e);
        }
        Ok(())
    }

    async fn open_master(&mut self) -> Result<(), BackendError> {
        let master = self
            .master()
            .map_err(|_| BackendError::Protocol("no master"))?;
        self.ready_conn(master).await
    }

    /// Sends `payload` to `node` and relays the reply to the client.
    async fn attempt(
        &mut self,
        node: usize,
        payload: &[u8],
        expect: Expect,
        stmt: Option<StmtIds>,
    ) -> Result<Attempt, FrontendError> {
        let started = Instant::now();
        if let Err(e) = self.ready_conn(node).await {
            self.ctx.metrics.node_failure(node);
            return Ok(Attempt::Unavailable(e));
        }
        let Some(conn) = self.conns[node].as_mut() else {
            return Ok(Attempt::Unavailable(BackendError::Protocol(
                "connection vanished",
            )));
        };
        if let Err(e) = conn.send(payload).await {
            self.conns[node] = None;
            self.ctx.metrics.node_failure(node);
            return Ok(Attempt::NodeFailed {
                sent: false,
                next_seq: 0,
                error: e.to_string(),
            });
        }
        let sink = Sink::Client {
            io: &mut self.client,
            caps: self.caps,
            stmt,
            tap: self.tap.as_mut(),
        };
        match relay(conn, sink, expect).await {
            Ok(out) => {
                let failed = out.error.is_some();
                self.ctx.metrics.node_reply(node, started.elapsed(), failed);
                Ok(Attempt::Done(out))
            }
            Err(RelayError::Backend {
                error,
                sent,
                next_seq,
            }) => {
                self.conns[node] = None;
                self.ctx.metrics.node_failure(node);
                if !sent {
                    // Nothing reached the client: drop the partial reply, so a
                    // retry (or our ERR) is all the client sees.
                    self.client.wbuf.clear();
                }
                Ok(Attempt::NodeFailed {
                    sent,
                    next_seq,
                    error: error.to_string(),
                })
            }
            Err(RelayError::Client(e)) => {
                // The node is mid-reply: drop that connection, not the pool's.
                self.conns[node] = None;
                Err(FrontendError::Net(e))
            }
        }
    }

    /// Runs a command on `node`; a read (`retry`) whose node fails before any
    /// byte reached the client is retried once on the master. Returns the
    /// node that answered and what it said, or None when the client got an
    /// error from the proxy instead.
    async fn exec(
        &mut self,
        mut node: usize,
        payload: &[u8],
        expect: Expect,
        seq: u8,
        mut retry: bool,
        stmt: Option<StmtIds>,
    ) -> Result<Option<(usize, RelayOutcome)>, FrontendError> {
        loop {
            let master = self.master()?;
            retry &= node != master;
            match self.attempt(node, payload, expect, stmt).await? {
                Attempt::Done(out) => return Ok(Some((node, out))),
                Attempt::NodeFailed { sent: false, .. } | Attempt::Unavailable(_) if retry => {
                    tracing::debug!(node, "read node failed; retrying on the master");
                    node = master;
                    retry = false;
                }
                Attempt::NodeFailed {
                    sent,
                    next_seq,
                    error,
                } => {
                    tracing::warn!(node, %error, "node connection lost during a command");
                    let seq = if sent { next_seq } else { seq };
                    let name = self.ctx.pools.node_name(node);
                    self.reply_err(seq, ProxyError::backend_lost(&name)).await?;
                    self.after_lost_connection(node)?;
                    return Ok(None);
                }
                Attempt::Unavailable(e) => {
                    self.send_backend_error(seq, &e).await;
                    return Ok(None);
                }
            }
        }
    }

    /// A node connection died under the session: if the session had state
    /// there (a transaction, pins), the client must not carry on as if
    /// nothing happened, so the session ends.
    fn after_lost_connection(&mut self, node: usize) -> Result<(), FrontendError> {
        if Some(node) == self.home && (self.state.in_transaction() || self.state.pinned.is_some()) {
            return Err(FrontendError::Closed);
        }
        if Some(node) == self.home {
            self.home = None;
        }
        Ok(())
    }

    /// Records what a reply from `node` changed.
    fn after(&mut self, node: usize, out: &RelayOutcome) {
        self.last_node = Some(node);
        if Some(node) == self.home {
            if let Some(s) = out.status {
                self.state.status = s;
            }
            self.count_transaction();
        }
        if let Some(g) = out.last_gtid.as_deref().and_then(|g| g.parse().ok()) {
            self.state.last_gtid = Some(g);
        }
        if let Some(schema) = &out.schema {
            self.state.schema = Some(schema.clone());
            if let Some(c) = self.conns.get_mut(node).and_then(Option::as_mut) {
                c.sync.schema = Some(schema.clone());
            }
        }
    }

    /// A statement's reply is relayed: record what it changed, then its digest's totals.
    fn finish(
        &mut self,
        node: usize,
        digest: &str,
        route: Route,
        started: Instant,
        out: &RelayOutcome,
    ) {
        self.after(node, out);
        let on_master = self.master().is_ok_and(|m| m == node);
        let took = started.elapsed();
        self.ctx
            .metrics
            .statement(digest, route, on_master, took, out);
    }

    // ---- commands ----------------------------------------------------------

    async fn query(&mut self, payload: &[u8], sql: &[u8], seq: u8) -> Result<(), FrontendError> {
        let stmt = router::classify(sql);
        let Some(cache) = self.ctx.cache.clone() else {
            return self.query_routed(payload, stmt, seq).await;
        };
        if let Some(plan) = self.cache_plan(&cache, &stmt, sql, None) {
            let text = Expect::Results {
                binary: false,
                cursor: false,
            };
            return self.cached_read(&cache, &plan, payload, seq, text).await;
        }
        let writes = cache.writes(&stmt, sql, self.state.schema.as_deref());
        self.cache_writes_begin(&cache, writes);
        let res = self.query_routed(payload, stmt, seq).await;
        self.cache_writes_end(&cache).await?;
        res
    }

    async fn query_routed(
        &mut self,
        payload: &[u8],
        stmt: Statement,
        seq: u8,
    ) -> Result<(), FrontendError> {
        let route = router::route(&self.router_context(&stmt, false));
        let _pass = match route.target {
            Target::Master => self.write_pass().await,
            Target::Read => None,
        };
        let node = self.node_for(route, &stmt)?;
        let started = Instant::now();
        let res = self
            .exec(
                node,
                payload,
                Expect::Results {
                    binary: false,
                    cursor: false,
                },
                seq,
                route.target == Target::Read,
                None,
            )
            .await?;
        let Some((node, out)) = res else {
            return Ok(());
        };
        tracing::debug!(node = %self.ctx.pools.node_name(node), route = ?route.target, why = ?route.why,
            us = started.elapsed().as_micros() as u64, digest = %stmt.digest, "statement");
        self.finish(node, &stmt.digest, route, started, &out);
        if out.error.is_none() {
            if stmt.kind == StmtKind::SetSession && !stmt.multi {
                if self.state.record_set(payload) {
                    let applied = self.state.set_log.len();
                    if let Some(c) = self.conns.get_mut(node).and_then(Option::as_mut) {
                        c.sync.sets_applied = applied;
                    }
                } else {
                    self.state.pinned = Some(router::Why::Pinned);
                }
            }
            if let Some(why) = router::pins_session(&stmt) {
                if self.state.pinned.is_none() {
                    tracing::debug!(why = ?why, "session pinned to the master");
                }
                self.state.pinned.get_or_insert(why);
            }
        }
        Ok(())
    }

    async fn init_db(&mut self, payload: &[u8], db: &[u8], seq: u8) -> Result<(), FrontendError> {
        let master = self.master()?;
        if let Some((node, out)) = self
            .exec(master, payload, Expect::Single, seq, false, None)
            .await?
        {
            self.after(node, &out);
            if out.error.is_none() {
                self.state.schema = Some(db.to_vec());
                if let Some(c) = self.conns.get_mut(node).and_then(Option::as_mut) {
                    c.sync.schema = Some(db.to_vec());
                }
            }
        }
        Ok(())
    }

    async fn set_option(&mut self, payload: &[u8], opt: u16, seq: u8) -> Result<(), FrontendError> {
        let master = self.master()?;
        if let Some((node, out)) = self
            .exec(master, payload, Expect::Single, seq, false, None)
            .await?
        {
            if out.error.is_none() {
                // MYSQL_OPTION_MULTI_STATEMENTS_ON = 0, _OFF = 1
                self.state.multi_statements = opt == 0;
                if let Some(c) = self.conns.get_mut(node).and_then(Option::as_mut) {
                    c.sync.multi_statements = opt == 0;
                }
            }
        }
        Ok(())
    }

    async fn change_user(&mut self, payload: &[u8], seq: u8) -> Result<Flow, FrontendError> {
        let Some(cu) = handshake::parse_change_user(payload, self.caps) else {
            self.reply_err(seq, ProxyError::malformed_packet()).await?;
            return Ok(Flow::Close);
        };
        let mut token = cu.auth.clone();
        let mut seq = seq;
        if cu.plugin.as_deref().is_some_and(|p| p != NATIVE_PLUGIN) {
            self.client.queue(
                seq,
                &handshake::auth_switch_request(NATIVE_PLUGIN, &self.nonce),
            );
            self.client.flush().await?;
            let t = Some(self.ctx.config.mysql.client_read_timeout);
            let reply = self.client.read_packet(64 * 1024, t, t).await?;
            seq = reply.seq.wrapping_add(1);
            token = reply.payload.to_vec();
        }
        let Some(creds) = self.ctx.users.authenticate(&cu.user, &self.nonce, &token) else {
            let host = self
                .client
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            self.reply_err(
                seq,
                ProxyError::access_denied(&cu.user, &host, !token.is_empty()),
            )
            .await?;
            return Ok(Flow::Close);
        };
        tracing::debug!(user = %creds.user, "change user");
        self.creds = creds;
        self.activity.set_user(&self.creds.user);
        if let Some(cs) = cu.charset.and_then(|c| u8::try_from(c).ok()) {
            self.collation = cs;
        }
        self.reset_session(cu.db);
        if self.state.schema.is_some() {
            if let Err(e) = self.open_master().await {
                self.send_backend_error(seq, &e).await;
                return Ok(Flow::Close);
            }
        }
        self.reply_ok(seq).await?;
        Ok(Flow::Continue)
    }

    /// Forgets all session state: node connections go back to their pools
    /// (which reset them), prepared statements and SETs are dropped.
    fn reset_session(&mut self, schema: Option<Vec<u8>>) {
        for c in self.conns.iter_mut().filter_map(Option::take) {
            self.ctx.pools.checkin(c);
        }
        self.prepared.clear();
        if let Some(c) = &self.ctx.cache {
            // The reset rolls back an open transaction; invalidating is the safe side.
            c.invalidate(&std::mem::take(&mut self.cache_pending));
        }
        self.state = SessionState::new(schema, self.caps & caps::MULTI_STATEMENTS != 0);
        self.count_transaction();
    }

    // ---- replies made by the proxy ----------------------------------------

    async fn reply_ok(&mut self, seq: u8) -> Result<(), FrontendError> {
        let p = ok_payload(self.state.status, self.caps & caps::SESSION_TRACK != 0);
        self.client.queue(seq, &p);
        self.client.flush().await?;
        Ok(())
    }

    async fn reply_err(&mut self, seq: u8, err: ProxyError) -> Result<(), FrontendError> {
        tracing::debug!(code = err.code, message = %err.message, "error to client");
        self.client.queue(seq, &err.to_payload());
        self.client.flush().await?;
        Ok(())
    }

    /// A node's own ERR goes through unchanged; anything else becomes ours.
    async fn send_backend_error(&mut self, seq: u8, e: &BackendError) {
        let res = match e {
            BackendError::Server { payload, .. } => {
                let payload = crate::protocol::err::with_sqlstate(payload);
                self.client.queue(seq, &payload);
                self.client.flush().await.map_err(FrontendError::from)
            }
            other => {
                tracing::warn!(error = %other, "node unavailable");
                let master = self.master().ok();
                let name = master
                    .map(|m| self.ctx.pools.node_name(m))
                    .unwrap_or_else(|| Arc::from("?"));
                self.reply_err(
                    seq,
                    ProxyError::backend_unavailable(&name, &other.to_string()),
                )
                .await
            }
        };
        if let Err(e) = res {
            tracing::debug!(error = %e, "could not send error");
        }
    }
}

/// Brings a node connection to the session's state: schema, replayed SETs,
/// multi-statement option. Each step only runs when something differs.
async fn sync(conn: &mut BackendConn, state: &SessionState) -> Result<(), BackendError> {
    if state.schema.is_some() && conn.sync.schema != state.schema {
        if let Some(db) = &state.schema {
            let mut p = vec![com::INIT_DB];
            p.extend_from_slice(db);
            conn.used = true;
            conn.expect_ok(&p).await?;
            conn.sync.schema = Some(db.clone());
        }
    }
    while conn.sync.sets_applied < state.set_log.len() {
        conn.used = true;
        conn.expect_ok(&state.set_log[conn.sync.sets_applied])
            .await?;
        conn.sync.sets_applied += 1;
    }
    if conn.sync.multi_statements != state.multi_statements {
        let opt: u16 = if state.multi_statements { 0 } else { 1 };
        let mut p = vec![com::SET_OPTION];
        p.extend_from_slice(&opt.to_le_bytes());
        conn.used = true;
        conn.expect_ok(&p).await?;
        conn.sync.multi_statements = state.multi_statements;
    }
    Ok(())
}
