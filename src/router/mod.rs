//! The router: reads a statement's text and decides where it runs. No I/O, never awaits.
//!
//! * `lexer`: token scan over raw bytes (comments, quotes, executable comments, hints).
//! * `keywords`: the sorted keyword table (roles and digest upper-casing).
//! * `classify`: [`Statement`] facts and the digest, from one pass over the tokens.
//! * `stmt_scan`: one statement's kind and flags from its tokens.
//! * `non_deterministic`: the one judge of whether a result may differ between two runs
//!   (the cache's test), from the keyword table's roles.
//! * `set`: what a SET statement assigns (user, session or global variables).
//! * `digest`: the normalized text that keys the verdict cache and stats.
//! * `analyze`: sqlparser fallback for texts the lexer left as `Other`, with a bounded
//!   verdict cache keyed by digest.
//! * `route`: [`route()`] from a [`RouterContext`] to a [`Route`] with its [`Why`]:
//!   master or read, by what the statement is and the session's state.
//! * `place`: [`place()`], the one decider of the node: a [`Placement`] from
//!   a [`PlaceInput`] (the request, the session's facts, the topology).
//! * `connection_id`: [`rewrite_connection_id`], `CONNECTION_ID()` made the
//!   session's id in the text sent to a node (the one rewrite of SQL text).

pub mod analyze;
pub mod classify;
mod connection_id;
mod digest;
mod gtid_tracking;
pub mod idle;
pub mod keywords;
pub mod lexer;
mod non_deterministic;
pub mod place;
pub mod redact;
pub mod route;
mod set;
mod stmt_scan;

pub use classify::{classify, Access, Hint, LexMode, Statement, StmtKind};
pub use connection_id::{reads_processlist, rewrite_connection_id};
pub use gtid_tracking::may_stop_gtid_tracking;
pub use place::{place, PlaceError, PlaceInput, Placement, Request, SessionFacts, Settings};
pub use route::{
    fits_read_only_tx, keeps_connection, pins_session, route, Route, RouterContext, Target, Why,
};

#[cfg(test)]
mod tests;
