//! `SHOW BACKENDS`: one row per node: where it is, what the proxy uses it
//! for, its health and the operator's state, weight, lag, GTID position,
//! connections and what it served.

use std::sync::atomic::Ordering::Relaxed;

use super::{cell, exact, AdminCommand, AdminContext, AdminError, Exec, Reply};
use super::{ColKind, ResultSet, Words};

pub struct ShowBackends;

impl AdminCommand for ShowBackends {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        exact(w, &["SHOW", "BACKENDS"], "SHOW BACKENDS", ShowBackends)
    }

    fn name(&self) -> &'static str {
        "show backends"
    }

    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a> {
        super::ready(Ok(Reply::Rows(backends(admin))))
    }
}

fn backends(admin: &AdminContext) -> ResultSet {
    use ColKind::{Int, Text};
    let proxy = &admin.proxy;
    let snap = proxy.topology.snapshot();
    let idle = proxy.pools.idle_counts();
    let in_use = proxy.sessions.in_use(snap.nodes.len());
    let mut rs = ResultSet::new(&[
        ("name", Text),
        ("address", Text),
        ("role", Text),
        ("state", Text),
        ("check", Text),
        ("admin", Text),
        ("weight", Int),
        ("lag_s", Int),
        ("replicating", Text),
        ("serves_reads", Text),
        ("diverged", Text),
        ("read_only", Text),
        ("semi_sync", Text),
        ("gtid_current_pos", Text),
        ("open_conns", Int),
        ("idle_conns", Int),
        ("queries", Int),
        ("errors", Int),
        ("failures", Int),
        ("avg_latency_us", Int),
        ("reason", Text),
        ("last_error", Text),
    ]);
    for n in &snap.nodes {
        let idle = idle.get(n.id).map_or(0, |(_, c)| *c);
        let used = in_use.get(n.id).copied().unwrap_or(0);
        let c = proxy.metrics.node(n.id);
        let load = |f: fn(&crate::metrics::NodeCounters) -> u64| c.map_or(0, f);
        let queries = load(|c| c.queries.load(Relaxed));
        let avg = load(|c| c.latency.sum_us()).checked_div(queries);
        let repl = n.replication.as_ref();
        rs.push(vec![
            cell(&n.name),
            cell(&n.address),
            cell(n.role),
            cell(n.state),
            cell(check(n)),
            cell(n.admin),
            cell(n.weight),
            repl.and_then(|r| r.seconds_behind_master).and_then(cell),
            repl.map(|r| if r.is_replicating() { "yes" } else { "no" }.to_string()),
            cell(yes_no(
                snap.readable(n.id, proxy.config.failover.max_replication_lag),
            )),
            cell(yes_no(n.diverged.is_some())),
            n.read_only
                .map(|r| if r { "ON" } else { "OFF" }.to_string()),
            semi_sync(n),
            n.gtid_current_pos.clone(),
            cell(idle + used),
            cell(idle),
            cell(queries),
            cell(load(|c| c.errors.load(Relaxed))),
            cell(load(|c| c.failures.load(Relaxed))),
            avg.and_then(cell),
            match &n.diverged {
                Some(why) => Some(format!("diverged: {why}")),
                None => n.state_reason.as_ref().and_then(cell),
            },
            n.last_error.clone(),
        ]);
    }
    rs
}

/// How the last check went: `ok`, or the kind of failure;
/// `monitor-denied` says the node answers but refuses the monitor (it is
/// never failed over for that: fix the monitor's account or grants).
fn check(n: &crate::topology::NodeStatus) -> &'static str {
    use crate::topology::CheckErrorKind;
    match n.last_error_kind {
        None if n.last_check.is_none() => "unchecked",
        None => "ok",
        Some(CheckErrorKind::Denied) => "monitor-denied",
        Some(kind) => kind.as_str(),
    }
}

/// The master side's live state (`Rpl_semi_sync_master_status`) and the
/// replica side's, as the last check saw them.
fn semi_sync(n: &crate::topology::NodeStatus) -> Option<String> {
    let on = |b: Option<bool>| match b {
        Some(true) => "on",
        Some(false) => "off",
        None => "-",
    };
    let s = n.semisync;
    (s.master.is_some() || s.slave.is_some())
        .then(|| format!("master {}, replica {}", on(s.master), on(s.slave)))
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
