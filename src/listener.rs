//! The one accept loop of the proxy's TCP listeners (MySQL clients, the
//! admin port, `/metrics`): accept until shutdown, back off on accept errors
//! (EMFILE and friends) instead of spinning, set TCP_NODELAY, and run each
//! connection as a task on the server's tracker so shutdown can wait for it.
//! What a connection gets is the caller's `handle`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pause after a failed accept: long enough not to spin on EMFILE, short
/// enough that clients barely notice once descriptors free up.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Accepts on `listener` until `shutdown`; `what` names the listener in logs.
pub async fn accept_loop<H, F>(
    listener: TcpListener,
    what: &'static str,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    mut handle: H,
) where
    H: FnMut(TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(listener = what, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(listener = what, error = %e, "set_nodelay");
        }
        tracker.spawn(handle(stream, peer));
    }
}
