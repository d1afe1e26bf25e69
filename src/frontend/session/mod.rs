//! One client session: the command loop, the replies the proxy makes
//! itself, and nothing else. Where a command runs is the router's decision
//! (`router::place`, asked in `exec.rs`); running it there is the backend's
//! ([`Nodes`], normally `backend::NodeConns`); what a reply changed in the
//! session is applied in one place (`effects.rs`).
//!
//! * `exec.rs`: place a command, run it, turn a failure into the client's error.
//! * `effects.rs`: a reply's effects on the session state.
//! * `query.rs`: COM_QUERY and the other text-protocol commands.
//! * `stmt.rs`: prepared-statement commands.
//! * `cache_hooks.rs`: the result cache's lookups, stores and invalidation.
//! * `user.rs`: COM_CHANGE_USER and COM_RESET_CONNECTION.
//! * `kill.rs`: KILL and COM_PROCESS_KILL naming a client session.
//! * `nodes.rs`: the [`Nodes`] seam, so the loop is unit-tested with a fake.

mod cache_hooks;
mod effects;
mod exec;
mod kill;
mod nodes;
mod query;
mod stmt;
#[cfg(test)]
mod tests;
mod user;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::login::{self, Login};
use super::pending::PendingLogin;
use super::state::SessionState;
use super::{login_within, FrontendError};
use crate::backend::{BackendError, ConnKey, NodeConns, Tap, ThreadOwners};
use crate::cache::WriteSet;
use crate::command_memory::Reservation;
use crate::context::{ProxyContext, SessionHandle};
use crate::net::{NetError, PacketIo};
use crate::protocol::command::Command;
use crate::protocol::err::ProxyError;
use crate::protocol::handshake;
use crate::protocol::response::ok_payload;
use crate::protocol::{caps, status};
use crate::router::Why;
use crate::topology::failover::WritePass;
pub use nodes::Nodes;

/// How long a closing session reads what its client still sends.
const CLOSE_DRAIN: Duration = Duration::from_secs(1);

/// Runs a client from greeting to goodbye. The login, the switch to TLS
/// included, counts as `pending` and runs within `connect_timeout`; only
/// then does the session take one of the `max_connections` slots.
pub async fn run(
    ctx: Arc<ProxyContext>,
    io: PacketIo,
    id: u32,
    shutdown: CancellationToken,
    pending: PendingLogin,
) {
    let nonce = handshake::new_nonce();
    let version = ctx.server_version.load_full();
    let spec = login::LoginSpec {
        users: &ctx.users,
        guard: &ctx.login_guard,
        connection_id: id,
        nonce: &nonce,
        server_version: &version,
        server_caps: ctx.server_caps,
        timeout: ctx.config.mysql.client_read_timeout,
        tls: ctx.tls.current(),
    };
    let attempt = login::login(io, &spec);
    // Boxed, as each command below: the session's own future stays small
    // while it waits for its client (thousands of idle clients hold one).
    let outcome = Box::pin(login_within(
        ctx.config.mysql.connect_timeout,
        &pending,
        attempt,
    ))
    .await;
    drop(pending);
    let (mut io, login) = match outcome {
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            tracing::debug!(error = %e, "login failed");
            ctx.metrics.login_failures.fetch_add(1, Relaxed);
            return;
        }
        None => {
            ctx.metrics.login_failures.fetch_add(1, Relaxed);
            return;
        }
    };
    let Some(_slot) = ctx.session_slot() else {
        ctx.metrics.sessions_refused.fetch_add(1, Relaxed);
        tracing::info!("logged in past max_connections: 1040");
        super::login::refuse_past_limit(&mut io, login.next_seq).await;
        return;
    };
    let logins = match &login.tls {
        Some(_) => &ctx.metrics.logins_tls,
        None => &ctx.metrics.logins_cleartext,
    };
    logins.fetch_add(1, Relaxed);
    tracing::debug!(user = %login.creds.user, tls = login.tls.is_some(), "logged in");
    let (peer, db) = (io.peer_addr().ok(), login.hello.db.as_deref());
    let key = ConnKey {
        user: Arc::clone(&login.creds.user),
        caps: login.caps & caps::RESULT_AFFECTING,
        collation: login.hello.collation,
        schema: None,
    };
    let nodes = NodeConns::new(
        Arc::clone(&ctx.pools),
        ctx.topology.snapshot().nodes.len(),
        key,
        login.creds.clone(),
    );
    let activity = ctx.sessions.register(
        id,
        &login.creds.user,
        peer,
        db,
        nodes.threads(),
        login.tls.clone(),
    );
    let mut s = Session::new(ctx, io, login, nonce, activity, nodes);
    s.serve(shutdown).await;
}

enum Flow {
    Continue,
    Close,
}

/// How the wait for a client's next command ended.
enum Waited<T> {
    Command(T),
    Shutdown,
    Killed,
}

pub(crate) struct Session<N: Nodes> {
    ctx: Arc<ProxyContext>,
    client: PacketIo,
    /// The client's capability flags.
    caps: u32,
    user: Arc<str>,
    collation: u8,
    nonce: [u8; 20],
    state: SessionState,
    nodes: N,
    /// Routing facts of the client's prepared statements, by client id.
    prepared: stmt::PreparedFacts,
    login_seq: u8,
    /// This session's open transaction is counted in the switchover gate.
    tx_counted: bool,
    /// The gate pass of the command being handled: kept until the command
    /// is done and its reply's effects applied, so a transaction the reply
    /// opened is counted (`count_transaction`) before the pass stops
    /// counting the statement. Otherwise a switchover could see nothing
    /// writing in between and fence the master under an open transaction.
    write_pass: Option<WritePass>,
    /// This session's entry in admin SHOW SESSIONS.
    activity: SessionHandle,
    /// Idle limit between commands unless the session set its own:
    /// `wait_timeout`, or `interactive_timeout` for CLIENT_INTERACTIVE clients.
    login_idle: Duration,
    /// Capture / held flush for the reply being relayed (result cache).
    tap: Option<Tap>,
    /// Tables written by the open transaction: invalidated when it ends.
    cache_pending: WriteSet,
    /// While a statement reads a process list: who holds which node thread.
    owners: Option<ThreadOwners>,
}

impl<N: Nodes> Drop for Session<N> {
    fn drop(&mut self) {
        // The transaction's fate is unknown (a COMMIT may have reached the node).
        if let Some(c) = &self.ctx.cache {
            if !self.cache_pending.is_empty() {
                c.invalidate(&self.cache_pending);
            }
        }
        self.nodes.release_all();
        if self.tx_counted {
            self.ctx.failover.gate.tx_closed();
        }
    }
}

impl<N: Nodes> Session<N> {
    fn new(
        ctx: Arc<ProxyContext>,
        client: PacketIo,
        login: Login,
        nonce: [u8; 20],
        activity: SessionHandle,
        nodes: N,
    ) -> Session<N> {
        let Login {
            hello,
            creds,
            caps,
            next_seq,
            tls: _,
        } = login;
        let mysql = &ctx.config.mysql;
        let login_idle = if hello.capabilities & caps::INTERACTIVE != 0 {
            mysql.interactive_timeout
        } else {
            mysql.wait_timeout
        };
        Session {
            client,
            caps,
            login_idle,
            user: creds.user,
            collation: hello.collation,
            nonce,
            state: SessionState::new(hello.db, caps & caps::MULTI_STATEMENTS != 0),
            nodes,
            prepared: stmt::PreparedFacts::default(),
            login_seq: next_seq,
            tx_counted: false,
            write_pass: None,
            activity,
            tap: None,
            cache_pending: WriteSet::default(),
            owners: None,
            ctx,
        }
    }

    /// After login: the final OK (once the schema asked for is known to
    /// exist), then the command loop.
    async fn serve(&mut self, shutdown: CancellationToken) {
        let seq = self.login_seq;
        if self.state.setup.schema.is_some() {
            // The node decides whether the schema exists (1049 otherwise).
            if let Err(e) = Box::pin(self.open_master()).await {
                self.send_backend_error(seq, None, &e).await;
                return;
            }
        }
        if self.reply_ok(seq).await.is_err() {
            return;
        }
        self.command_loop(shutdown).await;
    }

    /// Multiplexing is on and nothing of the session itself ties it to
    /// the node connections it holds.
    fn multiplexing(&self) -> bool {
        self.ctx.config.pool.multiplex
            && self.state.may_release_connections()
            && self.nodes.held().any(|h| h)
    }

    async fn command_loop(&mut self, shutdown: CancellationToken) {
        let max = self.ctx.config.mysql.max_allowed_packet as usize;
        let timeout = Some(self.ctx.config.mysql.client_read_timeout);
        loop {
            let idle = self.state.idle_timeout.unwrap_or(self.login_idle);
            // This command's share of mysql.max_command_memory, held until
            // it has gone to its node.
            let mut held = Reservation::default();
            if self.multiplexing()
                && (self.ctx.config.pool.multiplex_idle.is_zero() || self.nodes.slot_wanted())
            {
                // Another session waits for a slot this one holds.
                self.nodes.release_untied();
            }
            // Multiplexing: connections nothing ties to the session go back
            // to the pool once it has been idle for `pool.multiplex_idle`.
            // The read's own wait for a first byte measures that pause (one
            // timer per command, not two): when it ends with nothing read,
            // the connections go back and the read goes on for the rest of
            // the idle timeout.
            let mut linger = self
                .multiplexing()
                .then_some(self.ctx.config.pool.multiplex_idle)
                .filter(|l| *l < idle);
            let mut idle_left = idle;
            let pkt = loop {
                let wait = linger.unwrap_or(idle_left);
                let read = self.client.read_command(
                    max,
                    (&self.ctx.command_memory, &mut held),
                    Some(wait),
                    timeout,
                );
                let waited = tokio::select! {
                    biased;
                    p = read => Waited::Command(p),
                    _ = shutdown.cancelled() => Waited::Shutdown,
                    _ = self.activity.killed().cancelled() => Waited::Killed,
                };
                match waited {
                    Waited::Command(Err(NetError::Timeout(_)))
                        if linger.is_some() && self.client.rbuf.is_empty() =>
                    {
                        linger = None;
                        idle_left = idle_left.saturating_sub(wait);
                        let n = self.nodes.release_untied();
                        self.activity.set_held(self.nodes.held());
                        tracing::trace!(released = n, "idle: node connections given back");
                    }
                    other => break other,
                }
            };
            let pkt = match pkt {
                Waited::Command(p) => p,
                Waited::Shutdown => break,
                Waited::Killed => {
                    // KILL: closed without a word, as a node closes a killed connection.
                    self.close_killed().await;
                    break;
                }
            };
            let pkt = match pkt {
                Ok(p) => p,
                // Both answer after the chunk the client sent last, then
                // close; the rest of the command is read and dropped, so the
                // client gets the error, not a reset.
                Err(NetError::TooLarge { size, seq, .. }) => {
                    tracing::info!(size, "client packet over max_allowed_packet");
                    let reply = self.reply_err(seq.wrapping_add(1), ProxyError::packet_too_large());
                    if let Err(e) = reply.await {
                        tracing::debug!(error = %e, "could not send 1153");
                    }
                    self.close_draining().await;
                    break;
                }
                Err(NetError::NoRoom { source, seq }) => {
                    tracing::warn!(error = %source, "large command refused");
                    let reply = self.reply_err(seq.wrapping_add(1), ProxyError::out_of_resources());
                    if let Err(e) = reply.await {
                        tracing::debug!(error = %e, "could not send 1041");
                    }
                    self.close_draining().await;
                    break;
                }
                Err(NetError::Timeout(_)) if self.client.rbuf.is_empty() => {
                    // As MariaDB does past wait_timeout: no message, and a
                    // reset, so the client's next write fails ("gone away").
                    tracing::info!(?idle, "idle session closed (wait_timeout)");
                    self.client.reset_on_close();
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
            let flow = Box::pin(self.dispatch(cmd, &payload, seq)).await;
            self.write_pass = None;
            let schema = self.state.setup.schema.as_deref();
            self.activity.end(schema, self.nodes.held());
            tracing::trace!(
                command = cmd.name(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "command done"
            );
            drop(payload);
            self.client.shrink();
            drop(held);
            match flow {
                Ok(Flow::Continue) => {}
                Ok(Flow::Close) => break,
                Err(FrontendError::Rejected(e)) => {
                    // The session cannot go on (e.g. its state was on a master that
                    // changed): say why, then close.
                    tracing::info!(error = %e, "session closed by the proxy");
                    if let Err(e) = self.reply_err(seq, e).await {
                        tracing::debug!(error = %e, "could not send the reason");
                    }
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
            Command::StmtSendLongData { id } => self.send_long_data(payload, id).await?,
            Command::StmtClose { id } => self.stmt_close(id).await,
            Command::StmtReset { id } => self.stmt_reset(payload, id, seq).await?,
            Command::StmtFetch { id } => self.fetch(payload, id, seq).await?,
            Command::SetOption(opt) => self.set_option(payload, opt, seq).await?,
            Command::FieldList => self.field_list(payload, seq).await?,
            Command::Statistics => self.on_master_command(payload, Why::Command, seq).await?,
            Command::ProcessKill(id) => self.kill(false, id.into(), seq).await?,
            Command::ChangeUser => return self.change_user(payload, seq).await,
            Command::ResetConnection => {
                self.reset_session(self.state.setup.schema.clone());
                self.reply_ok(seq).await?;
            }
            Command::Unknown(c) => self.reply_err(seq, ProxyError::unknown_command(c)).await?,
            Command::Malformed(_) => self.reply_err(seq, ProxyError::malformed_packet()).await?,
        }
        Ok(Flow::Continue)
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
    /// `node` is the node it came from, None for the master.
    async fn send_backend_error(
        &mut self,
        seq: u8,
        node: Option<crate::topology::NodeId>,
        e: &BackendError,
    ) {
        let name = match node.or(self.ctx.topology.snapshot().master) {
            Some(n) => self.nodes.node_name(n),
            None => Arc::from("?"),
        };
        let res = match e {
            BackendError::Server { payload, .. } => {
                let payload = crate::protocol::err::with_sqlstate(payload);
                self.client.queue(seq, &payload);
                self.client.flush().await.map_err(FrontendError::from)
            }
            BackendError::PoolFull { limit, .. } => {
                let err = ProxyError::too_many_node_connections(&name, *limit);
                self.reply_err(seq, err).await
            }
            other => {
                tracing::warn!(error = %other, "node unavailable");
                let err = ProxyError::backend_unavailable(&name, &other.to_string());
                self.reply_err(seq, err).await
            }
        };
        if let Err(e) = res {
            tracing::debug!(error = %e, "could not send error");
        }
    }

    /// Keeps the gate's count of open transactions on the master right.
    /// Closes the client's connection after the proxy's last packet, reading
    /// (and dropping) what the client still sends for a moment: closing with
    /// unread bytes would be a reset, which can discard that last packet
    /// before the client reads it.
    async fn close_draining(&mut self) {
        self.client.shutdown().await;
        let drain = async {
            while self.client.fill(None).await.is_ok() {
                self.client.rbuf.clear();
            }
        };
        if tokio::time::timeout(CLOSE_DRAIN, drain).await.is_err() {
            tracing::debug!("client still sending after the close; cut");
        }
    }

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
}
