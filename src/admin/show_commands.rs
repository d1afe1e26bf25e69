//! `SHOW COMMANDS`: what the admin port understands, with the syntax. The
//! error for an unknown statement points here.

use super::{cell, exact, AdminCommand, AdminContext, AdminError, Exec, Reply};
use super::{ColKind, ResultSet, Words};

/// (syntax, what it does), in the order docs/admin.md lists them.
pub const COMMANDS: &[(&str, &str)] = &[
    ("SHOW BACKENDS", "nodes: role, health, admin state, weight, lag, GTID, connections, queries, errors, latency"),
    ("SHOW SESSIONS", "live client sessions and what they run"),
    ("SHOW POOLS", "idle and in-use node connections per node"),
    ("SHOW STATS", "proxy-wide counters (the numbers /metrics exports)"),
    ("SHOW CONFIG", "the config in force, passwords masked"),
    ("SHOW QUERY DIGEST [LIMIT n]", "normalised statements: count, time, rows, route"),
    ("SET BACKEND 'node' ONLINE | OFFLINE | DRAIN", "put a node in or out of read rotation"),
    ("SET BACKEND 'node' WEIGHT n", "change a node's read weight"),
    ("RELOAD CONFIG", "re-read the config file; keeps the running one on error"),
    ("SWITCHOVER TO 'node'", "planned master change: hold writes, catch up, promote (docs/failover.md)"),
    ("FAILOVER TO 'node'", "forced master change: no catch-up wait; refused if the node is down"),
    ("SHOW COORDINATION", "etcd coordination: endpoints and health, the holder, the writer and its epoch, each instance's view"),
    ("SHOW HTTP BACKENDS", "the HTTP balancer's web workers: state, requests, errors"),
    ("SET HTTP BACKEND 'worker' DRAIN | READY | MAINT", "drain a web worker, or take it out for maintenance"),
    ("SHOW CACHE", "result cache counters: entries, bytes, hits, misses, evictions, invalidations, hit ratio"),
    ("SHOW CACHE DIGEST", "cache hits per statement digest"),
    ("CACHE FLUSH ['db.table']", "invalidate all cached results, or those reading one table"),
    ("SHOW COMMANDS", "this list"),
];

pub struct ShowCommands;

impl AdminCommand for ShowCommands {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        exact(w, &["SHOW", "COMMANDS"], "SHOW COMMANDS", ShowCommands)
            .or_else(|| exact(w, &["HELP"], "HELP", ShowCommands))
    }

    fn name(&self) -> &'static str {
        "show commands"
    }

    fn execute<'a>(&'a self, _admin: &'a AdminContext) -> Exec<'a> {
        let mut rs = ResultSet::new(&[("command", ColKind::Text), ("description", ColKind::Text)]);
        for (c, d) in COMMANDS {
            rs.push(vec![cell(c), cell(d)]);
        }
        super::ready(Ok(Reply::Rows(rs)))
    }
}
