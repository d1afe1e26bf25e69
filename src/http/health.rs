//! Active HTTP health checks (HAProxy `option httpchk`, `inter`, `rise`,
//! `fall`): one task per worker sends the configured request on a fresh
//! connection every interval, and [`RiseFall`] flips the worker after `fall`
//! consecutive failures or `rise` consecutive successes. This is
//! the only writer of a worker's health; operators set the admin state.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::pool;
use super::upstream::{Backend, LastCheck, WorkerAdminState};
use crate::config::HealthCheck;
use crate::rise_fall::RiseFall;

/// A change of a worker's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Up,
    Down,
}

/// Feeds one check result to the worker's rise/fall count; the transition it caused, if any.
fn observe(checks: &mut RiseFall, passed: bool) -> Option<Transition> {
    if passed {
        checks.pass().map(|_| Transition::Up)
    } else {
        checks.fail().map(|_| Transition::Down)
    }
}

/// What one check saw, in HAProxy's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Expected status.
    Ok(u16),
    /// Layer 7 answered with another status.
    BadStatus(u16),
    /// Could not connect (refused, unreachable, connect timeout).
    Connect(String),
    /// No complete answer within `timeout`.
    Timeout,
    /// Connected but the answer was not valid HTTP or the connection dropped.
    Response(String),
}

impl CheckOutcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, CheckOutcome::Ok(_))
    }
}

impl fmt::Display for CheckOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckOutcome::Ok(s) => write!(f, "L7OK {s}"),
            CheckOutcome::BadStatus(s) => write!(f, "L7STS {s}"),
            CheckOutcome::Connect(e) => write!(f, "L4CON {e}"),
            CheckOutcome::Timeout => f.write_str("L7TOUT"),
            CheckOutcome::Response(e) => write!(f, "L7RSP {e}"),
        }
    }
}

/// Sends one check request to `backend` on a fresh connection.
pub async fn check_once(backend: &Backend, cfg: &HealthCheck) -> CheckOutcome {
    let run = async {
        let mut conn = match pool::connect(&backend.address, cfg.timeout).await {
            Ok(c) => c,
            Err(e) => return CheckOutcome::Connect(e.to_string()),
        };
        let host = cfg.host.as_deref().unwrap_or(&backend.address);
        let req = Request::builder()
            .method(cfg.method.as_str())
            .uri(cfg.path.as_str())
            .header(hyper::header::HOST, host)
            .header(hyper::header::USER_AGENT, "sqlproxy-check")
            .header(hyper::header::CONNECTION, "close")
            .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed());
        let req = match req {
            Ok(r) => r,
            Err(e) => return CheckOutcome::Response(e.to_string()),
        };
        match conn.sender.send_request(req).await {
            Err(e) => CheckOutcome::Response(e.to_string()),
            Ok(resp) => {
                let status = resp.status().as_u16();
                // Read the body so the worker sees a clean close.
                if let Err(e) = resp.into_body().collect().await {
                    return CheckOutcome::Response(e.to_string());
                }
                if status == cfg.expect_status {
                    CheckOutcome::Ok(status)
                } else {
                    CheckOutcome::BadStatus(status)
                }
            }
        }
    };
    match tokio::time::timeout(cfg.timeout, run).await {
        Ok(o) => o,
        Err(_) => CheckOutcome::Timeout,
    }
}

/// Checks `backend` every interval until `shutdown`; maintenance pauses checks.
pub async fn run_checks(backend: Arc<Backend>, cfg: HealthCheck, shutdown: CancellationToken) {
    let mut checks = RiseFall::starting(backend.is_healthy(), cfg.rise, cfg.fall);
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if backend.admin_state() == WorkerAdminState::Maint {
            continue;
        }
        let started = Instant::now();
        let outcome = check_once(&backend, &cfg).await;
        let latency = started.elapsed();
        if let Ok(mut last) = backend.last_check.lock() {
            *last = LastCheck {
                at: Some(SystemTime::now()),
                result: outcome.to_string(),
                latency,
            };
        }
        if let Some(t) = observe(&mut checks, outcome.is_ok()) {
            backend.set_healthy(t == Transition::Up);
            match t {
                Transition::Up => {
                    tracing::info!(worker = %backend.name, check = %outcome, "http worker is UP")
                }
                Transition::Down => {
                    tracing::warn!(worker = %backend.name, check = %outcome, "http worker is DOWN")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The counting itself is tested from a table in `rise_fall.rs`.
    #[test]
    fn a_worker_flips_after_a_full_streak_either_way() {
        let mut checks = RiseFall::starting(true, 3, 2);
        assert_eq!(observe(&mut checks, false), None);
        assert_eq!(observe(&mut checks, false), Some(Transition::Down));
        assert_eq!(observe(&mut checks, true), None);
        assert_eq!(observe(&mut checks, true), None);
        assert_eq!(observe(&mut checks, true), Some(Transition::Up));
    }

    #[test]
    fn outcome_labels_like_haproxy() {
        assert_eq!(CheckOutcome::Ok(200).to_string(), "L7OK 200");
        assert_eq!(CheckOutcome::BadStatus(500).to_string(), "L7STS 500");
        assert_eq!(CheckOutcome::Timeout.to_string(), "L7TOUT");
    }
}
