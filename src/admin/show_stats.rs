//! `SHOW STATS`: the proxy-wide counters as (name, value) rows; the same
//! numbers `/metrics` exports.

use std::sync::atomic::Ordering::Relaxed;

use super::{exact, AdminCommand, AdminContext, AdminError, Exec, Reply};
use super::{ResultSet, Words};

pub struct ShowStats;

impl AdminCommand for ShowStats {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        exact(w, &["SHOW", "STATS"], "SHOW STATS", ShowStats)
    }

    fn name(&self) -> &'static str {
        "show stats"
    }

    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a> {
        let proxy = &admin.proxy;
        let m = &proxy.metrics;
        let (queries, errors, failures, sum_us) = m.totals();
        let (hits, misses) = crate::router::analyze::global().stats();
        let snap = proxy.topology.snapshot();
        let rows: Vec<(&str, u64)> = vec![
            ("uptime_s", m.started.elapsed().as_secs()),
            ("client_sessions", proxy.sessions.len() as u64),
            ("client_sessions_opened", proxy.sessions.total()),
            ("client_login_failures", m.login_failures.load(Relaxed)),
            ("client_refused", m.sessions_refused.load(Relaxed)),
            ("client_logins_tls", m.logins_tls.load(Relaxed)),
            ("client_logins_cleartext", m.logins_cleartext.load(Relaxed)),
            ("queries", queries),
            ("query_errors", errors),
            ("node_failures", failures),
            ("avg_latency_us", sum_us.checked_div(queries).unwrap_or(0)),
            ("failovers", m.failovers.load(Relaxed)),
            ("switchovers", m.switchovers.load(Relaxed)),
            ("rewinds", m.rewinds.load(Relaxed)),
            ("admin_commands", m.admin_commands.load(Relaxed)),
            ("query_digests", m.digests.len() as u64),
            ("parser_cache_hits", hits),
            ("parser_cache_misses", misses),
            ("topology_generation", snap.generation),
        ];
        let rs = ResultSet::pairs(
            ("name", "value"),
            rows.into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        super::ready(Ok(Reply::Rows(rs)))
    }
}
