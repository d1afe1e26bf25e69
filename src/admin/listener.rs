//! The admin port: accepts operators, logs them in with the frontend's own
//! handshake code (mysql_native_password against the `[admin]` account, a
//! fresh nonce per connection), then answers one command packet at a time.
//! COM_QUERY goes to the command table; PING, RESET_CONNECTION and INIT_DB
//! get OK; prepared statements and anything else get an error, and the
//! connection carries on. A client that sends garbage, pipelines, or goes
//! away mid-packet only ends its own connection.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::{wire, AdminContext, Reply};
use crate::frontend::pending::{PendingLogin, PendingLogins};
use crate::frontend::{login, login_within, refuse_pre_handshake};
use crate::net::{NetError, PacketIo};
use crate::protocol::caps;
use crate::protocol::command::Command;
use crate::protocol::err::ProxyError;
use crate::protocol::handshake;

/// Largest command accepted on the admin port: admin statements are short.
pub const MAX_PACKET: usize = 1024 * 1024;

/// Concurrent admin connections; more get error 1040. Operators and a
/// scraper or two, not an application.
const MAX_ADMIN_CONNECTIONS: usize = 64;

/// Admin connections still logging in, in total and per source address;
/// counted apart so silent sockets cannot lock operators out.
const MAX_ADMIN_PENDING: usize = 32;
const MAX_ADMIN_PENDING_PER_HOST: usize = 8;

/// The version string of the admin greeting: `5.5.5-` makes MySQL clients
/// read it as MariaDB, the rest says where they are.
const ADMIN_VERSION: &[u8] = b"5.5.5-10.11-sqlproxy-admin";

/// What the admin offers: the proxy's flags without multi-statements (one
/// command per query keeps every reply a single result set).
const ADMIN_CAPS: u32 = caps::PROXY_SERVER & !(caps::MULTI_STATEMENTS | caps::PS_MULTI_RESULTS);

/// Serves the admin port until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    admin: Arc<AdminContext>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let limit = Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS));
    let pending = PendingLogins::new(MAX_ADMIN_PENDING, MAX_ADMIN_PENDING_PER_HOST);
    let next_id = AtomicU32::new(1);
    let stop = shutdown.clone();
    crate::listener::accept_loop(listener, "admin", stop, tracker, move |stream, peer| {
        let id = next_id.fetch_add(1, Relaxed);
        let admitted = pending.admit(peer.ip());
        let limit = Arc::clone(&limit);
        let admin = Arc::clone(&admin);
        let stop = shutdown.clone();
        let span = tracing::info_span!("admin", admin_session = id, %peer);
        async move {
            let mut io = PacketIo::new(stream);
            let pending = match admitted {
                Ok(p) => p,
                Err(e) => {
                    tracing::info!(error = %e, "admin connection refused before login");
                    refuse_pre_handshake(&mut io).await;
                    return;
                }
            };
            session(&admin, io, id, stop, pending, limit).await;
        }
        .instrument(span)
    })
    .await;
}

async fn session(
    admin: &AdminContext,
    io: PacketIo,
    id: u32,
    shutdown: CancellationToken,
    pending: PendingLogin,
    limit: Arc<Semaphore>,
) {
    let nonce = handshake::new_nonce();
    let timeout = admin.proxy.config.mysql.client_read_timeout;
    let users = admin.users();
    let spec = login::LoginSpec {
        users: &users,
        guard: &admin.login_guard,
        connection_id: id,
        nonce: &nonce,
        server_version: ADMIN_VERSION,
        server_caps: ADMIN_CAPS,
        timeout,
        tls: admin.tls.current(),
    };
    let login = login::login(io, &spec);
    let deadline = admin.proxy.config.mysql.connect_timeout;
    let login = tokio::select! {
        _ = shutdown.cancelled() => return,
        l = login_within(deadline, &pending, login) => l,
    };
    drop(pending);
    let (mut io, login) = match login {
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            tracing::info!(error = %e, "admin login refused");
            return;
        }
        None => return,
    };
    let Ok(_permit) = limit.try_acquire_owned() else {
        login::refuse_past_limit(&mut io, login.next_seq).await;
        return;
    };
    tracing::info!(user = %login.creds.user, tls = login.tls.is_some(), "admin logged in");
    let caps = login.caps;
    wire::ok(&mut io.wbuf, login.next_seq);
    if io.flush().await.is_err() {
        return;
    }
    loop {
        let pkt = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = io.read_packet(MAX_PACKET, None, Some(timeout)) => p,
        };
        let pkt = match pkt {
            Ok(p) => p,
            Err(NetError::TooLarge { seq, .. }) => {
                io.queue(
                    seq.wrapping_add(1),
                    &ProxyError::packet_too_large().to_payload(),
                );
                let _ = io.flush().await;
                break;
            }
            Err(e) => {
                tracing::debug!(error = %e, "admin client gone");
                break;
            }
        };
        let seq = pkt.seq.wrapping_add(1);
        let cmd = Command::parse(&pkt.payload);
        match cmd {
            Command::Quit => break,
            // No reply is expected to these.
            Command::StmtClose { .. } | Command::StmtSendLongData { .. } => continue,
            Command::Query(sql) => query(admin, &mut io, sql, seq, caps).await,
            Command::Ping | Command::ResetConnection | Command::InitDb(_) => {
                wire::ok(&mut io.wbuf, seq)
            }
            Command::StmtPrepare(_)
            | Command::StmtExecute { .. }
            | Command::StmtReset { .. }
            | Command::StmtFetch { .. } => {
                io.queue(seq, &ProxyError::prepared_not_supported().to_payload());
            }
            Command::Malformed(_) => {
                io.queue(seq, &ProxyError::malformed_packet().to_payload());
            }
            other => {
                let code = pkt.payload.first().copied().unwrap_or(0);
                tracing::debug!(command = other.name(), "admin: command not supported");
                io.queue(seq, &ProxyError::unknown_command(code).to_payload());
            }
        }
        if let Err(e) = io.flush().await {
            tracing::debug!(error = %e, "admin client gone");
            break;
        }
        io.shrink();
    }
}

/// Runs one admin statement and queues its reply.
async fn query(admin: &AdminContext, io: &mut PacketIo, sql: &[u8], seq: u8, caps: u32) {
    admin.proxy.metrics.admin_commands.fetch_add(1, Relaxed);
    let Ok(sql) = std::str::from_utf8(sql) else {
        io.queue(
            seq,
            &ProxyError::admin_syntax("admin statements must be UTF-8").to_payload(),
        );
        return;
    };
    let result = match super::parse(sql) {
        Ok(cmd) => {
            let r = cmd.execute(admin).await;
            tracing::debug!(command = cmd.name(), ok = r.is_ok(), "admin command");
            r
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(Reply::Rows(rs)) => rs.encode(&mut io.wbuf, seq, caps),
        Ok(Reply::Ok) => wire::ok(&mut io.wbuf, seq),
        Err(e) => {
            tracing::info!(error = %e, "admin command refused");
            io.queue(seq, &e.to_proxy_error().to_payload());
        }
    }
}
