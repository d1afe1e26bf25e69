//! The client side: the MySQL listener (accept, pending logins bounded,
//! `max_connections` → 1040 once logged in) and one session per client. The
//! session talks to the client, asks the router where each command goes and
//! has the backend run it there.
//!
//! * `login`: the connection phase (greeting, auth, auth switch).
//! * `pending`: connections still logging in, counted apart from sessions.
//! * `session`: the command loop.
//! * `state`: [`state::SessionState`], what a session knows about itself.

pub mod login;
pub mod login_guard;
pub mod pending;
pub mod session;
pub mod state;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::context::ProxyContext;
use crate::net::{NetError, PacketIo};
use crate::protocol::err::ProxyError;
use pending::{PendingLogin, PendingLogins};

#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("client network: {0}")]
    Net(#[from] NetError),
    #[error("client rejected: {0}")]
    Rejected(ProxyError),
    /// The session ends; the client was already told why.
    #[error("session closed")]
    Closed,
}

/// Accepts MySQL clients until `shutdown`; each session runs on `tracker`.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<ProxyContext>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let stop = shutdown.clone();
    let cfg = &ctx.config.mysql;
    let pending = PendingLogins::new(
        cfg.max_pending_logins as usize,
        cfg.max_pending_logins_per_host as usize,
    );
    crate::listener::accept_loop(listener, "mysql", stop, tracker, move |stream, peer| {
        let id = ctx.next_session_id();
        let admitted = pending.admit(peer.ip());
        let ctx = Arc::clone(&ctx);
        let shutdown = shutdown.clone();
        let span = tracing::debug_span!("session", session_id = id, %peer);
        async move {
            let mut io = PacketIo::new(stream);
            let pending = match admitted {
                Ok(p) => p,
                Err(e) => {
                    tracing::info!(error = %e, "connection refused before login");
                    ctx.metrics.sessions_refused.fetch_add(1, Ordering::Relaxed);
                    refuse_pre_handshake(&mut io).await;
                    return;
                }
            };
            session::run(ctx, io, id, shutdown, pending).await;
        }
        .instrument(span)
    })
    .await;
}

/// 1040 as the first packet, as MariaDB sends it when it is full.
pub async fn refuse_pre_handshake(io: &mut PacketIo) {
    io.queue(
        0,
        &ProxyError::too_many_connections().to_payload_pre_handshake(),
    );
    if let Err(e) = io.flush().await {
        tracing::debug!(error = %e, "could not send 1040");
    }
}

/// Runs the connection phase within `deadline` as a whole, however the
/// client paces its bytes, and gives up if `pending` is dropped to make
/// room for a newer login. `None` when the client is gone (nothing sent).
pub async fn login_within<F, T>(
    deadline: std::time::Duration,
    pending: &PendingLogin,
    login: F,
) -> Option<Result<T, FrontendError>>
where
    F: std::future::Future<Output = Result<T, FrontendError>>,
{
    tokio::select! {
        _ = pending.dropped() => {
            tracing::info!("pending login dropped to make room for a newer one");
            None
        }
        r = tokio::time::timeout(deadline, login) => match r {
            Ok(r) => Some(r),
            Err(_) => {
                tracing::info!(?deadline, "login not done within connect_timeout");
                None
            }
        },
    }
}
