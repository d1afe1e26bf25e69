//! The one decider of where a command runs: [`place`] takes everything a
//! node choice reads ([`PlaceInput`]: what is placed, the session's facts,
//! the topology snapshot loaded once for the command, the routing settings
//! and a random number) and returns a [`Placement`]: the node, the reason,
//! the node a read may fall back to, and the master the session writes to
//! from now on. Pure: no I/O, no clock, no RNG, no state of its own.
//!
//! Rules, first match wins:
//!
//! | # | request / session | node | why |
//! |---|---|---|---|
//! | 1 | a statement about the previous one (SHOW WARNINGS, `@@warning_count`) | the previous statement's node | `SameConnection` |
//! | 2 | a statement [`route`] sends to the master (writes, DDL, transactions, pins...) | the master | [`route`]'s |
//! | 3 | an execution that opens a cursor | the master (COM_STMT_FETCH finds it there) | `Cursor` |
//! | 4 | an execution after COM_STMT_SEND_LONG_DATA (which went to the master) | the master | `LongData` |
//! | 5 | a cacheable read that missed the cache (so what is stored is committed) | the master | `CacheMiss` |
//! | 6 | a protocol command that runs on the master (PREPARE, FETCH, INIT_DB...) | the master | the command's |
//! | 7 | `consistency = "master"` | the master | `Read` |
//! | 8 | a read | a readable node by weight; the master if the one drawn lacks the session's last write (`consistency = "session"`) | `Read` / `Hint` |
//!
//! Before the table: every statement of a read-only transaction open on a
//! read node goes there, and a `BEGIN` right after a `SET TRANSACTION READ
//! ONLY` that ran on a read node opens that transaction there (`ReadOnlyTx`).
//!
//! "The master" is the topology's. A transaction open on a node that is no
//! longer the master, or a session pinned by state that lives only there,
//! cannot follow the new one and is not finished on the old one
//! ([`PlaceError::MasterChanged`]).
//! While no master is named, reads still go to a readable node; everything
//! else waits for one ([`PlaceError::NoMaster`]).
//! A read placed on another node may fall back to the master if that node
//! fails before any byte reached the client; nothing else is ever retried.

use std::time::Duration;

use super::classify::{Access, Statement, StmtKind};
use super::route::{route, Route, RouterContext, Target, Why};
use crate::config::Consistency;
use crate::topology::gtid::Gtid;
use crate::topology::{NodeId, TopologySnapshot};

/// What is being placed.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// A statement: COM_QUERY, or COM_STMT_EXECUTE of a prepared one.
    Statement(&'a Statement),
    /// COM_STMT_EXECUTE asking for a read-only cursor.
    Cursor(&'a Statement),
    /// COM_STMT_EXECUTE after COM_STMT_SEND_LONG_DATA.
    LongData(&'a Statement),
    /// A cacheable read that missed the result cache.
    CacheMiss(&'a Statement),
    /// COM_FIELD_LIST: a read without a statement.
    FieldList,
    /// A protocol command that runs on the master, for this reason.
    Master(Why),
}

/// What the session knows about itself that a node choice depends on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionFacts<'a> {
    /// The node reports an open transaction, or autocommit is off: every
    /// statement goes to the master.
    pub in_transaction: bool,
    /// A transaction is open on the session's master (the node says
    /// IN_TRANS): it finishes there, even after the master changed. With
    /// autocommit off but nothing started yet, the session follows a new
    /// master.
    pub open_transaction: bool,
    /// State that lives only on the master (user variables, temp tables...).
    pub pinned: bool,
    /// The master this session writes to (where its transaction or pins are).
    pub home: Option<NodeId>,
    /// The node of the previous statement.
    pub last_node: Option<NodeId>,
    /// The session's last committed write.
    pub last_gtid: Option<&'a Gtid>,
    /// A `START TRANSACTION READ ONLY` is open on this read node: every
    /// statement goes there until it ends.
    pub read_only_tx: Option<NodeId>,
    /// The previous statement was `SET TRANSACTION READ ONLY`, run on this
    /// read node: a `BEGIN` now opens the read-only transaction there.
    pub read_only_next: Option<NodeId>,
}

/// The routing settings of the config.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub read_split: bool,
    pub consistency: Consistency,
    /// Replicas further behind than this serve no reads.
    pub max_lag: Duration,
}

/// Everything [`place`] reads.
#[derive(Debug, Clone, Copy)]
pub struct PlaceInput<'a> {
    pub request: Request<'a>,
    pub session: SessionFacts<'a>,
    pub topology: &'a TopologySnapshot,
    pub settings: Settings,
    /// For the weighted choice among read nodes.
    pub random: u64,
    /// With `Consistency::Global`: the nodes (bit i for node i) that applied
    /// every acknowledged commit.
    pub applied_all_acked: u64,
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub node: NodeId,
    /// Master or read, and why (logs, digests).
    pub route: Route,
    /// Where a read may run instead if its node fails before any byte of
    /// the reply reached the client: the master, for reads placed elsewhere.
    pub fallback: Option<NodeId>,
    /// The master the session writes to after this command (its new home).
    pub home: Option<NodeId>,
}

/// Why nothing can be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    #[error("no master is named")]
    NoMaster,
    /// The session's state lives on a master that no longer is one.
    #[error("the master changed under a session pinned to the old one")]
    MasterChanged,
}

/// A statement of a read-only transaction on a read node, or the `BEGIN`
/// that opens one there: that node, nowhere else.
fn read_only_tx_on(node: NodeId, home: Option<NodeId>) -> Placement {
    Placement {
        node,
        route: Route {
            target: Target::Read,
            why: Why::ReadOnlyTx,
        },
        fallback: None,
        home,
    }
}

/// Decides where a command runs; see the module table.
pub fn place(input: &PlaceInput) -> Result<Placement, PlaceError> {
    let facts = &input.session;
    if let Some(node) = facts.read_only_tx {
        return Ok(read_only_tx_on(node, facts.home));
    }
    let (stmt, forced) = match input.request {
        Request::Statement(s) => (Some(s), None),
        Request::Cursor(s) => (Some(s), Some(Why::Cursor)),
        Request::LongData(s) => (Some(s), Some(Why::LongData)),
        Request::CacheMiss(s) => (Some(s), Some(Why::CacheMiss)),
        Request::FieldList => (None, None),
        Request::Master(why) => (None, Some(why)),
    };
    if let (Some(node), Some(s)) = (facts.read_only_next, stmt) {
        let default_begin = s.kind
            == StmtKind::Begin {
                access: Access::Default,
            };
        if default_begin && !s.multi && !facts.in_transaction && !facts.pinned {
            return Ok(read_only_tx_on(node, facts.home));
        }
    }
    if let Some(s) = stmt {
        let r = route(&RouterContext {
            stmt: s,
            in_transaction: facts.in_transaction,
            pinned: facts.pinned,
            read_split: input.settings.read_split,
        });
        // A write among several statements overrides the previous
        // statement's node: writes go to the master only.
        let writes_too = s.multi && !s.reads_only;
        if r.why == Why::SameConnection && !s.master_func && !writes_too {
            if let Some(node) = facts.last_node {
                // On the master only if that node still is it: a command
                // placed on the master is abandoned once its node is not.
                let target = if input.topology.master == Some(node) {
                    Target::Master
                } else {
                    Target::Read
                };
                return Ok(Placement {
                    node,
                    route: Route { target, ..r },
                    fallback: None,
                    home: facts.home,
                });
            }
        }
        if r.target == Target::Master {
            return on_master(input, r.why);
        }
        if let Some(why) = forced {
            return on_master(input, why);
        }
        return read(input, r);
    }
    match forced {
        Some(why) => on_master(input, why),
        None => read(
            input,
            Route {
                target: Target::Read,
                why: Why::Read,
            },
        ),
    }
}

/// The master for this session: the topology's, or where its open
/// transaction runs. Returns (master, the session's home from now on).
fn master(input: &PlaceInput) -> Result<NodeId, PlaceError> {
    let facts = &input.session;
    let current = input.topology.master.ok_or(PlaceError::NoMaster)?;
    match facts.home {
        // Never finished on the old master: one cut off before it could be
        // fenced would acknowledge a COMMIT the new master never gets.
        Some(home) if home != current && (facts.open_transaction || facts.pinned) => {
            Err(PlaceError::MasterChanged)
        }
        _ => Ok(current),
    }
}

fn on_master(input: &PlaceInput, why: Why) -> Result<Placement, PlaceError> {
    let node = master(input)?;
    Ok(Placement {
        node,
        route: Route {
            target: Target::Master,
            why,
        },
        fallback: None,
        home: Some(node),
    })
}

fn read(input: &PlaceInput, route: Route) -> Result<Placement, PlaceError> {
    // Without a master, reads still go to a readable node (the survivor of
    // a failed master); only a pinned session's master error stops them.
    let master = match master(input) {
        Ok(m) => Some(m),
        Err(PlaceError::NoMaster) => None,
        Err(e) => return Err(e),
    };
    let snap = input.topology;
    let settings = &input.settings;
    let mut node = master;
    if settings.consistency != Consistency::Master {
        node = snap
            .pick_readable(input.random, settings.max_lag)
            .or(master);
    }
    if node != master && settings.consistency == Consistency::Session {
        if let (Some(g), Some(n)) = (input.session.last_gtid, node) {
            // Until the monitor shows the node applied the session's last write.
            if !snap.node(n).is_some_and(|n| n.has_applied(g)) {
                node = master;
            }
        }
    }
    if node != master && settings.consistency == Consistency::Global {
        // Until the monitor shows the node applied every acknowledged write.
        if let Some(n) = node {
            if n >= 64 || input.applied_all_acked & (1 << n) == 0 {
                node = master;
            }
        }
    }
    let node = node.ok_or(PlaceError::NoMaster)?;
    Ok(Placement {
        node,
        route,
        fallback: master.filter(|m| *m != node),
        home: master,
    })
}

#[cfg(test)]
#[path = "place_tests.rs"]
mod tests;
