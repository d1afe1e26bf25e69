//! `SHOW HTTP BACKENDS` and `SET HTTP BACKEND 'wa1' DRAIN | READY | MAINT`:
//! the web workers of the HTTP balancer, from the same SQL port operators use
//! for the database nodes. The numbers are the ones the stats page shows.

use std::sync::atomic::Ordering::Relaxed;

use super::{cell, exact, AdminCommand, AdminContext, AdminError, Exec, Reply};
use super::{ColKind, ResultSet, Words};
use crate::http::WorkerAdminState;

const USAGE_SET: &str = "SET HTTP BACKEND 'worker' DRAIN | READY | MAINT";

pub struct ShowHttpBackends;

impl AdminCommand for ShowHttpBackends {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        exact(
            w,
            &["SHOW", "HTTP", "BACKENDS"],
            "SHOW HTTP BACKENDS",
            ShowHttpBackends,
        )
    }

    fn name(&self) -> &'static str {
        "show_http_backends"
    }

    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a> {
        let Some(ups) = admin.http.as_ref() else {
            return super::ready(Err(AdminError::Refused(
                "the HTTP balancer is not configured".into(),
            )));
        };
        let mut rs = ResultSet::new(&[
            ("name", ColKind::Text),
            ("address", ColKind::Text),
            ("state", ColKind::Text),
            ("weight", ColKind::Int),
            ("active", ColKind::Int),
            ("requests", ColKind::Int),
            ("2xx", ColKind::Int),
            ("4xx", ColKind::Int),
            ("5xx", ColKind::Int),
            ("errors", ColKind::Int),
            ("last_check", ColKind::Text),
        ]);
        for b in ups.backends() {
            let check = b
                .last_check
                .lock()
                .map(|c| c.result.clone())
                .unwrap_or_default();
            rs.push(vec![
                cell(&b.name),
                cell(&b.address),
                cell(b.state_label()),
                cell(b.weight),
                cell(b.active()),
                cell(b.stats.requests.load(Relaxed)),
                cell(b.stats.status_2xx.load(Relaxed)),
                cell(b.stats.status_4xx.load(Relaxed)),
                cell(b.stats.status_5xx.load(Relaxed)),
                cell(b.stats.errors()),
                cell(check),
            ]);
        }
        super::ready(Ok(Reply::Rows(rs)))
    }
}

pub struct SetHttpBackend {
    worker: String,
    state: WorkerAdminState,
}

impl AdminCommand for SetHttpBackend {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        if !w.starts_with(&["SET", "HTTP", "BACKEND"]) {
            return None;
        }
        let state = w.name(4).and_then(WorkerAdminState::parse);
        Some(match (w.len(), w.name(3), state) {
            (5, Some(worker), Some(state)) => Ok(SetHttpBackend {
                worker: worker.to_string(),
                state,
            }),
            _ => Err(AdminError::Syntax { usage: USAGE_SET }),
        })
    }

    fn name(&self) -> &'static str {
        "set_http_backend"
    }

    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a> {
        let Some(ups) = admin.http.as_ref() else {
            return super::ready(Err(AdminError::Refused(
                "the HTTP balancer is not configured".into(),
            )));
        };
        let Some(b) = ups.by_name(&self.worker) else {
            return super::ready(Err(AdminError::NoNode(self.worker.clone())));
        };
        let before = b.admin_state();
        b.set_admin_state(self.state);
        tracing::info!(worker = %self.worker, from = %before, to = %self.state, "http worker state set by admin");
        let mut rs = ResultSet::new(&[
            ("worker", ColKind::Text),
            ("before", ColKind::Text),
            ("now", ColKind::Text),
        ]);
        rs.push(vec![cell(&self.worker), cell(before), cell(self.state)]);
        super::ready(Ok(Reply::Rows(rs)))
    }
}
