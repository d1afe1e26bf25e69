//! The rewind of a returning former master's unacknowledged tail. A master
//! that committed without a semi-sync acknowledgement (its replica still
//! reconnecting, or a timeout) and then died comes back holding
//! transactions the new master never received; MariaDB's crash recovery
//! removes only prepared, uncommitted ones. If this process can prove that
//! no client got an OK for any of them, they are undone on the returning
//! node, its GTID state is made the new master's, and it rejoins.
//!
//! The proof, every part of which must hold (otherwise the node stays
//! diverged and the reason is logged):
//! * every commit this process acknowledged before the new master's
//!   position was read is in it (`Topology::acked_mark`), so the extra ones
//!   are not among them;
//! * the mark covers each extra commit: written after this process first
//!   saw the nodes, and the mark never forgotten (`Topology::acked_covers`);
//! * this instance decides alone: with coordination, each instance knows
//!   only what it acknowledged itself;
//! * the tail is row changes to tables only (full row images), each of which
//!   can be undone exactly.
//!
//! `tail.rs` finds and reads the tail in the node's binlog; `undo.rs` turns it
//! into inverse statements and applies them in one transaction.

mod tail;
mod undo;

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;

use super::authority::Standing;
use super::control::Control;
use crate::topology::gtid::{Gtid, GtidError, GtidPos};
use crate::topology::snapshot::Topology;
use crate::topology::{NodeId, Uncovered};
pub(super) use tail::TableName;

/// Bound on finding, reading and planning the undo of a tail: the
/// controller does nothing else meanwhile (a failover included), and a
/// crash tail is seconds of writes, not hours.
const READ_LIMIT: Duration = Duration::from_secs(30);

/// Row changes a rewind undoes at most, all held in memory: a tail larger
/// than this is no crash tail, and an operator should look at it.
const MAX_CHANGES: usize = 100_000;

/// Why a returning node was not rewound. Each says what was found.
#[derive(Debug, thiserror::Error)]
pub(super) enum RewindError {
    #[error("failover.rewind_unacknowledged is off")]
    Disabled,
    #[error("instances coordinate through etcd: this instance's mark of acknowledged commits is not the only one, so it proves nothing")]
    Coordinated,
    #[error("the new master lacks {gtid}, a commit a client got an OK for")]
    AcknowledgedMissing { gtid: Gtid },
    #[error("{0}")]
    Uncovered(#[from] Uncovered),
    #[error("binlog_format is {found}, not ROW")]
    BinlogFormat { found: String },
    #[error("binlog_row_image is {found}, not FULL")]
    RowImage { found: String },
    #[error("the tail holds something other than row changes: {gtid} has {what}")]
    NotRows { gtid: Gtid, what: String },
    #[error("{gtid} changes {table} with only some columns in its row image")]
    PartialImage { gtid: Gtid, table: TableName },
    #[error(
        "no binary log on the node starts before its first transaction the master lacks (purged?)"
    )]
    TailNotInBinlog,
    #[error("before the tail of domain {domain} the node has {found}, but the new master's last is {expected}: the two histories differ before it")]
    HistoriesDiffer {
        domain: u32,
        found: String,
        expected: String,
    },
    #[error(
        "the binlog read ends at {found} in domain {domain}, the node's position says {expected}"
    )]
    Incomplete {
        domain: u32,
        found: String,
        expected: String,
    },
    #[error("the tail holds more than {MAX_CHANGES} row changes")]
    TooLarge,
    #[error("table {table}: {why}")]
    Table { table: TableName, why: String },
    #[error("undoing a change to {table} matched {rows} rows instead of 1: the row is not as the tail left it")]
    NoMatch { table: TableName, rows: u64 },
    #[error("position moved while rewinding: {what}")]
    Moved { what: String },
    #[error("a GTID list did not parse: {0}")]
    Gtid(#[from] GtidError),
    #[error("binlog: {detail}")]
    Binlog { detail: String },
    #[error("{node}: {what}: {error}")]
    Sql {
        node: String,
        what: String,
        error: String,
    },
    #[error("reading the tail took longer than {0:?}")]
    TimedOut(Duration),
}

/// What a rewind undid, for the log: GTIDs and per table the rows, never
/// row values (they may be customer data).
#[derive(Debug)]
pub(super) struct Rewound {
    pub(super) transactions: Vec<Gtid>,
    pub(super) rows: BTreeMap<TableName, usize>,
}

/// Per GTID domain in which the returning node is ahead of the new master:
/// the new master's last GTID there (`None`: it has none of the domain).
type Ahead = BTreeMap<u32, Option<Gtid>>;

/// The domains in which `node` holds transactions `master` lacks.
fn ahead_domains(node: &GtidPos, master: &GtidPos) -> Ahead {
    node.iter()
        .filter(|g| g.seq > master.get(g.domain).map_or(0, |m| m.seq))
        .map(|g| (g.domain, master.get(g.domain)))
        .collect()
}

/// Is `gtid` one of the transactions the new master lacks?
fn is_extra(gtid: &Gtid, ahead: &Ahead) -> bool {
    ahead
        .get(&gtid.domain)
        .is_some_and(|m| gtid.seq > m.map_or(0, |m| m.seq))
}

/// A `@@gtid_binlog_state`: every (domain, server) pair's last GTID, in
/// the server's order (the last of a domain is its position).
fn parse_state(text: &str) -> Result<Vec<Gtid>, GtidError> {
    text.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::parse)
        .collect()
}

/// The binlog state the node has once its tail is undone: the new
/// master's entries for the domains it was ahead in (the shared history
/// ends where the master's does), its own for the others. Domains only the
/// master has stay out: the node has none of them and fetches them.
fn rewound_state(node: &[Gtid], master: &[Gtid], ahead: &Ahead) -> Vec<Gtid> {
    let mut domains: Vec<u32> = Vec::new();
    for g in node {
        if !domains.contains(&g.domain) {
            domains.push(g.domain);
        }
    }
    let mut state = Vec::new();
    for domain in domains {
        let from = if ahead.contains_key(&domain) {
            master
        } else {
            node
        };
        state.extend(from.iter().filter(|g| g.domain == domain));
    }
    state
}

/// The last GTID of `domain` in a binlog state: the domain's position.
fn last_in(state: &[Gtid], domain: u32) -> Option<Gtid> {
    state.iter().rev().find(|g| g.domain == domain).copied()
}

fn list(gtids: &[Gtid]) -> String {
    gtids
        .iter()
        .map(Gtid::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Undoes `node`'s tail beyond `master` if it is provably unacknowledged,
/// and leaves it with the master's GTID state and its replication stopped
/// (the caller restarts it). Any error leaves the node's data as it was,
/// except one from the GTID reset after the undo committed (logged then).
pub(super) async fn rewind(
    control: &Control,
    topology: &Topology,
    enabled: bool,
    standing: &Standing,
    node: NodeId,
    master: NodeId,
) -> Result<Rewound, RewindError> {
    if !enabled {
        return Err(RewindError::Disabled);
    }
    if *standing != Standing::Alone {
        return Err(RewindError::Coordinated);
    }
    let t = control.timeout * 5;
    let name = control.name(node);
    let mut on_node = Session::open(control, node, t).await?;
    let mut on_master = Session::open(control, master, t).await?;
    // Taken before the master's position is read: clients keep getting OKs
    // for its commits meanwhile, and those are in its position only if it
    // is read after them.
    let acked = topology.acked_mark();
    let master_pos = on_master.positions().await?;
    if let Some(gtid) = acked.missing_from(&master_pos.current) {
        return Err(RewindError::AcknowledgedMissing { gtid });
    }
    // Its replication stopped first: a returning node that replicates from
    // the master logs the master's new commits while its binlog is read,
    // and the read would end past the position it was compared with.
    on_node.exec("STOP SLAVE").await?;
    let node_pos = on_node.positions().await?.binlog;
    let (format, image): (String, String) = on_node
        .first("SELECT @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image")
        .await?;
    if !format.eq_ignore_ascii_case("ROW") {
        return Err(RewindError::BinlogFormat { found: format });
    }
    if !image.eq_ignore_ascii_case("FULL") {
        return Err(RewindError::RowImage { found: image });
    }
    // Compared as the controller judges divergence: the node's binlog
    // against what the master has applied.
    let ahead = ahead_domains(&node_pos, &master_pos.current);
    let read = async {
        let start = tail::locate(&mut on_node, &ahead).await?;
        tracing::info!(node = %name, file = %start.file, pos = start.pos, "the tail the master lacks starts here");
        let txns = tail::read(
            control.opts(node).await.map_err(sql(&name, "options"))?,
            &start,
            &ahead,
            &node_pos,
        )
        .await?;
        for txn in &txns {
            topology.acked_covers(&txn.gtid)?;
        }
        let statements = undo::plan(&mut on_node, &txns).await?;
        Ok::<_, RewindError>((txns, statements))
    };
    let (txns, statements) = tokio::time::timeout(READ_LIMIT, read)
        .await
        .map_err(|_| RewindError::TimedOut(READ_LIMIT))??;

    // From here on nothing but this session changes the node: its
    // replication is stopped, and what was read must still be all there is.
    let node_now = on_node.positions().await?;
    let master_now = on_master.positions().await?;
    for (&domain, &last) in &ahead {
        let unchanged = node_now.binlog.get(domain) == node_pos.get(domain)
            && master_now.current.get(domain) == last
            && last_in(&master_now.state, domain) == last;
        if !unchanged {
            return Err(RewindError::Moved {
                what: format!(
                    "domain {domain}: node {} (was {node_pos}), master {} (binlog state {})",
                    node_now.binlog,
                    master_now.current,
                    list(&master_now.state)
                ),
            });
        }
    }
    undo::apply(&mut on_node, &statements, t).await?;
    let state = rewound_state(&node_now.state, &master_now.state, &ahead);
    let slave_pos: GtidPos = state.iter().copied().collect();
    for sql in [
        "RESET MASTER".to_string(),
        format!("SET GLOBAL gtid_binlog_state = '{}'", list(&state)),
        format!("SET GLOBAL gtid_slave_pos = '{slave_pos}'"),
    ] {
        if let Err(e) = on_node.exec(&sql).await {
            tracing::error!(node = %name, error = %e, "the tail was undone but the node's GTID state could not be reset: it stays diverged; repair it by hand");
            return Err(e);
        }
    }
    // The node's binlog now starts at the master's state. Should the master
    // later replicate from it again (master-master set up by hand), a
    // replica position from before would ask for events that binlog no
    // longer holds (error 1236); the node holds nothing the master lacks,
    // so the master's own position is where that replication starts.
    match on_master
        .rows::<mysql_async::Row>("SHOW ALL SLAVES STATUS")
        .await
    {
        Ok(slaves) => {
            let running = slaves.iter().any(|row| {
                ["Slave_IO_Running", "Slave_SQL_Running"].iter().any(|col| {
                    row.get_opt::<String, _>(*col)
                        .and_then(Result::ok)
                        .is_some_and(|v| v != "No")
                })
            });
            if running {
                tracing::warn!("the master replicates: its replica position is left as it is");
            } else if let Err(e) = on_master
                .exec("SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos")
                .await
            {
                tracing::warn!(error = %e, "could not align the master's replica position with the rewound node");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read the master's replication state"),
    }
    let mut rows = BTreeMap::new();
    for change in txns.iter().flat_map(|t| &t.changes) {
        *rows.entry(change.table.clone()).or_insert(0) += 1;
    }
    Ok(Rewound {
        transactions: txns.iter().map(|t| t.gtid).collect(),
        rows,
    })
}

/// Maps a driver error to [`RewindError::Sql`].
fn sql<'a, E: std::fmt::Display>(node: &'a str, what: &'a str) -> impl Fn(E) -> RewindError + 'a {
    move |e| RewindError::Sql {
        node: node.to_string(),
        what: what.to_string(),
        error: e.to_string(),
    }
}

/// A connection of the rewind's own to one node, each statement bounded.
pub(super) struct Session {
    pub(super) conn: mysql_async::Conn,
    pub(super) node: String,
    limit: Duration,
}

impl Session {
    async fn open(control: &Control, id: NodeId, limit: Duration) -> Result<Session, RewindError> {
        let node = control.name(id);
        // Affected rows count matched rows: an UPDATE that undoes a change
        // must find its row even if the values it sets are already there.
        let opts = control
            .opts(id)
            .await
            .map_err(sql(&node, "options"))?
            .client_found_rows(true);
        let conn = tokio::time::timeout(limit, mysql_async::Conn::new(opts))
            .await
            .map_err(|_| sql(&node, "connect")("timed out"))?
            .map_err(sql(&node, "connect"))?;
        Ok(Session { conn, node, limit })
    }

    async fn exec(&mut self, statement: &str) -> Result<(), RewindError> {
        let first = statement.split(" = ").next().unwrap_or(statement);
        match tokio::time::timeout(self.limit, self.conn.query_drop(statement)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(sql(&self.node, first)(e)),
            Err(_) => Err(sql(&self.node, first)("timed out")),
        }
    }

    pub(super) async fn first<T: mysql_async::prelude::FromRow + Send + 'static>(
        &mut self,
        query: &str,
    ) -> Result<T, RewindError> {
        match tokio::time::timeout(self.limit, self.conn.query_first::<T, _>(query)).await {
            Ok(Ok(Some(row))) => Ok(row),
            Ok(Ok(None)) => Err(sql(&self.node, query)("no row")),
            Ok(Err(e)) => Err(sql(&self.node, query)(e)),
            Err(_) => Err(sql(&self.node, query)("timed out")),
        }
    }

    pub(super) async fn rows<T: mysql_async::prelude::FromRow + Send + 'static>(
        &mut self,
        query: &str,
    ) -> Result<Vec<T>, RewindError> {
        match tokio::time::timeout(self.limit, self.conn.query::<T, _>(query)).await {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => Err(sql(&self.node, query)(e)),
            Err(_) => Err(sql(&self.node, query)("timed out")),
        }
    }

    async fn positions(&mut self) -> Result<Positions, RewindError> {
        let (current, binlog, state): (String, String, String) = self
            .first("SELECT @@GLOBAL.gtid_current_pos, @@GLOBAL.gtid_binlog_pos, @@GLOBAL.gtid_binlog_state")
            .await?;
        Ok(Positions {
            current: current.parse()?,
            binlog: binlog.parse()?,
            state: parse_state(&state)?,
        })
    }
}

/// A node's GTID positions, read in one statement.
struct Positions {
    current: GtidPos,
    /// What the node logged, which is what it holds (`log_slave_updates`).
    binlog: GtidPos,
    state: Vec<Gtid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(s: &str) -> GtidPos {
        s.parse().expect("pos")
    }

    fn gtid(s: &str) -> Gtid {
        s.parse().expect("gtid")
    }

    #[test]
    fn the_extra_transactions_are_those_beyond_the_master_per_domain() {
        let ahead = ahead_domains(&pos("1-1-60,2-2-5,3-1-4"), &pos("1-1-57,2-2-9,4-4-1"));
        assert_eq!(
            ahead,
            BTreeMap::from([(1, Some(gtid("1-1-57"))), (3, None)])
        );
        let rows = [
            ("1-1-58", true),
            ("1-2-58", true),
            ("1-1-57", false),
            ("2-2-7", false),
            ("3-1-1", true),
            ("4-4-2", false),
        ];
        for (g, extra) in rows {
            assert_eq!(is_extra(&gtid(g), &ahead), extra, "{g}");
        }
    }

    #[test]
    fn the_rewound_state_takes_the_masters_history_where_the_node_was_ahead() {
        // Domain 1: the node's tail (1-1-60) goes, the master's entries come
        // (server 2 wrote in domain 1 once, server 1 last). Domain 2: the
        // node is behind there and keeps its own. Domain 3: only the
        // master has it; the node fetches it by replicating.
        let node = parse_state("1-2-10,1-1-60,2-2-5").expect("state");
        let master = parse_state("1-2-10,1-1-57,2-2-9,3-3-1").expect("state");
        let ahead = ahead_domains(&pos("1-1-60,2-2-5"), &pos("1-1-57,2-2-9,3-3-1"));
        let state = rewound_state(&node, &master, &ahead);
        assert_eq!(list(&state), "1-2-10,1-1-57,2-2-5");
        let slave_pos: GtidPos = state.iter().copied().collect();
        assert_eq!(slave_pos, pos("1-1-57,2-2-5"));
        // A domain wholly the node's own tail vanishes.
        let ahead = ahead_domains(&pos("1-1-3"), &pos(""));
        assert!(rewound_state(&parse_state("1-1-3").expect("state"), &[], &ahead).is_empty());
    }

    #[test]
    fn binlog_states_keep_their_order() {
        let state = parse_state("1-2-9, 1-1-5,2-1-7").expect("state");
        assert_eq!(list(&state), "1-2-9,1-1-5,2-1-7");
        assert!(parse_state("").expect("empty").is_empty());
        assert!(parse_state("1-1").is_err());
    }
}
