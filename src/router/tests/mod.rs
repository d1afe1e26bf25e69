//! Table-driven tests of the router: routing (`routes`), kinds and flags
//! (`kinds`), digests, the sqlparser fallback and garbage input (`digests`).

mod digests;
mod kinds;
mod routes;

use super::analyze::VerdictCache;
use super::classify::{classify_with, scan};
use super::*;

use Target::{Master, Read};

fn ctx(stmt: &Statement) -> RouterContext<'_> {
    RouterContext {
        stmt,
        in_transaction: false,
        pinned: false,
        read_split: true,
    }
}

fn routed(sql: &str) -> Route {
    let stmt = classify(sql.as_bytes());
    route(&ctx(&stmt))
}

/// Routes `sql` alone (autocommit on, not pinned, read split on) and checks the target.
#[track_caller]
fn check(sql: &str, expected: Target) {
    let r = routed(sql);
    assert_eq!(r.target, expected, "{sql:?} routed {r:?}");
}

#[track_caller]
fn check_why(sql: &str, expected: Target, why: Why) {
    let r = routed(sql);
    assert_eq!(
        r,
        Route {
            target: expected,
            why
        },
        "{sql:?}"
    );
}

#[track_caller]
fn kind(sql: &str, expected: StmtKind) {
    assert_eq!(classify(sql.as_bytes()).kind, expected, "{sql:?}");
}

#[track_caller]
fn digest(sql: &str, expected: &str) {
    assert_eq!(classify(sql.as_bytes()).digest, expected, "{sql:?}");
}
