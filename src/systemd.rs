//! What systemd hears from the proxy (`Type=notify` in
//! `config/sqlproxy.service`), through the sd-notify crate: READY=1 once the
//! server says it is ready, RELOADING=1 … READY=1 around a SIGHUP reload,
//! STOPPING=1 at shutdown, and watchdog pings when systemd asked for them.
//! Every call is a no-op when the process was not started by systemd
//! (`NOTIFY_SOCKET` unset), so tests and hand-run proxies are unaffected.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// Sends `states`; a failure is logged, never fatal (the proxy serves
/// clients whether or not systemd hears about it).
fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

/// Startup is done: every listener is bound and the first topology discovery ran.
pub fn ready() {
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// A reload (SIGHUP) starts; systemd wants the monotonic time with it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// A reload finished (applied or refused): back to serving.
pub fn reloaded(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Shutdown has begun: running statements are finishing.
pub fn stopping() {
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("finishing running statements"),
    ]);
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// Pings the watchdog at half of `interval` (sd_watchdog_enabled(3)
/// advises pinging well within it) until `shutdown`. It runs as a task on
/// the proxy's runtime, so a runtime that stops making progress stops the
/// pings and systemd restarts the service.
pub async fn run_watchdog(interval: Duration, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(interval / 2);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => notify(&[NotifyState::Watchdog]),
        }
    }
}
