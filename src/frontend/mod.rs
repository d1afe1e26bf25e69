//! The client side: the MySQL listener (accept, `max_connections` → 1040)
//! and one session per client. The session talks to the client, asks the
//! router where each command goes and has the backend run it there.
//!
//! * `login`: the connection phase (greeting, auth, auth switch).
//! * `session`: the command loop.
//! * `state`: [`state::SessionState`], what a session knows about itself.

pub mod login;
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
    crate::listener::accept_loop(listener, "mysql", stop, tracker, move |stream, peer| {
        let id = ctx.next_session_id();
        let slot = ctx.session_slot();
        let ctx = Arc::clone(&ctx);
        let shutdown = shutdown.clone();
        let span = tracing::debug_span!("session", session_id = id, %peer);
        async move {
            let mut io = PacketIo::new(stream);
            let Some(slot) = slot else {
                ctx.metrics.sessions_refused.fetch_add(1, Ordering::Relaxed);
                io.queue(
                    0,
                    &ProxyError::too_many_connections().to_payload_pre_handshake(),
                );
                if let Err(e) = io.flush().await {
                    tracing::debug!(error = %e, "could not send 1040");
                }
                return;
            };
            session::run(ctx, io, id, shutdown).await;
            drop(slot);
        }
        .instrument(span)
    })
    .await;
}
