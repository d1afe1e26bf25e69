//! Where a returning node's tail (its transactions the new master lacks)
//! starts in its binlog, and what each of them changed. `SHOW BINLOG
//! EVENTS` finds the start without reading row data; a binlog dump from
//! there (mysql_async's binlog stream, mysql_common's row decoding) reads
//! the rows to the end of the binlog. mysql_common knows MySQL's events
//! only, so MariaDB's GTID events are read here by hand.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;

use mysql_async::binlog::events::{Event, EventData, RowsEventData};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Value};

use super::{is_extra, Ahead, RewindError, Session, MAX_CHANGES};
use crate::topology::gtid::Gtid;

/// Rows of `SHOW BINLOG EVENTS` read per round trip.
const PAGE: usize = 1000;

/// The server id the dump registers with. A node ends an older dump that
/// registered with the same id, so it is one no replica is likely to have.
const DUMP_SERVER_ID: u32 = 4_233_000_001;

/// MariaDB's own event types (mysql_common does not know them).
const MARIA_ANNOTATE_ROWS: u8 = 160;
const MARIA_BINLOG_CHECKPOINT: u8 = 161;
const MARIA_GTID: u8 = 162;
const MARIA_GTID_LIST: u8 = 163;
const MARIA_START_ENCRYPTION: u8 = 164;
/// `FL_STANDALONE` in a GTID event: the transaction is the one event that
/// follows (DDL), with no COMMIT or XID after it.
const FL_STANDALONE: u8 = 1;

/// `@mariadb_slave_capability` for a dump that gets MariaDB's GTID events
/// as they are (MARIA_SLAVE_CAPABILITY_GTID), not rewritten for MySQL.
const SLAVE_CAPABILITY_GTID: u8 = 4;

/// A table as the binlog names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(in crate::topology::failover) struct TableName {
    pub(super) schema: String,
    pub(super) name: String,
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}`.`{}`",
            self.schema.replace('`', "``"),
            self.name.replace('`', "``")
        )
    }
}

/// One row change, values in column order as the binlog holds them.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RowChange {
    Inserted(Vec<Value>),
    Deleted(Vec<Value>),
    Updated {
        before: Vec<Value>,
        after: Vec<Value>,
    },
}

#[derive(Debug)]
pub(super) struct Change {
    pub(super) table: TableName,
    /// Columns in the table map: the table as it was when logged.
    pub(super) columns: usize,
    pub(super) row: RowChange,
}

/// One transaction of the tail and its row changes, in binlog order.
#[derive(Debug)]
pub(super) struct Txn {
    pub(super) gtid: Gtid,
    pub(super) changes: Vec<Change>,
}

/// Where the tail starts, and per domain the last GTID logged before it.
#[derive(Debug)]
pub(super) struct Start {
    pub(super) file: String,
    pub(super) pos: u64,
    last: BTreeMap<u32, Gtid>,
}

/// The GTID of a `Gtid` event's Info (`BEGIN GTID 0-1-57`, `GTID 0-1-9`,
/// with ` cid=N` or an XA id around it).
fn gtid_of_info(info: &str) -> Option<Gtid> {
    let mut words = info.split_whitespace();
    words.find(|w| *w == "GTID")?;
    words.next()?.parse().ok()
}

/// A `Gtid_list` event's Info (`[0-1-56,1-2-3]`) reduced to the highest
/// GTID per domain: the binlog state when its file began.
fn gtid_list_of_info(info: &str) -> Option<BTreeMap<u32, Gtid>> {
    let inner = info.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut last = BTreeMap::new();
    for item in inner.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let g: Gtid = item.parse().ok()?;
        let e = last.entry(g.domain).or_insert(g);
        if g.seq > e.seq {
            *e = g;
        }
    }
    Some(last)
}

/// `SHOW BINLOG EVENTS` rows: (Pos, Event_type, End_log_pos, Info).
type EventRow = (u64, String, u64, Vec<u8>);

async fn events(
    session: &mut Session,
    file: &str,
    from: Option<u64>,
    limit: usize,
) -> Result<Vec<EventRow>, RewindError> {
    let file = file.replace('\\', "\\\\").replace('\'', "\\'");
    let from = from.map_or(String::new(), |p| format!(" FROM {p}"));
    let rows: Vec<mysql_async::Row> = session
        .rows(&format!(
            "SHOW BINLOG EVENTS IN '{file}'{from} LIMIT {limit}"
        ))
        .await?;
    rows.into_iter()
        .map(|r| {
            let row: Option<(String, u64, String, u64, u64, Vec<u8>)> =
                mysql_async::from_row_opt(r).ok();
            row.map(|(_, pos, kind, _, end, info)| (pos, kind, end, info))
                .ok_or_else(|| RewindError::Binlog {
                    detail: "SHOW BINLOG EVENTS returned an unexpected row".into(),
                })
        })
        .collect()
}

/// Finds the tail's first transaction. Binlog files are looked at newest
/// first, by the binlog state each began with (its `Gtid_list` event); the
/// newest one that began before any extra transaction holds the first.
pub(super) async fn locate(session: &mut Session, ahead: &Ahead) -> Result<Start, RewindError> {
    let files: Vec<mysql_async::Row> = session.rows("SHOW BINARY LOGS").await?;
    let files: Vec<String> = files
        .into_iter()
        .filter_map(|r| r.get_opt::<String, _>(0).and_then(Result::ok))
        .collect();
    for file in files.iter().rev() {
        let head = events(session, file, None, 4).await?;
        let began = head
            .iter()
            .find(|(_, kind, _, _)| kind == "Gtid_list")
            .and_then(|(_, _, _, info)| gtid_list_of_info(&String::from_utf8_lossy(info)))
            .ok_or_else(|| RewindError::Binlog {
                detail: format!("{file} has no readable Gtid_list event"),
            })?;
        if began.values().any(|g| is_extra(g, ahead)) {
            continue;
        }
        let mut last = began;
        let mut from = None;
        loop {
            let page = events(session, file, from, PAGE).await?;
            for (pos, kind, _, info) in &page {
                if kind != "Gtid" {
                    continue;
                }
                let gtid = gtid_of_info(&String::from_utf8_lossy(info)).ok_or_else(|| {
                    RewindError::Binlog {
                        detail: format!("{file} at {pos}: a Gtid event without a GTID"),
                    }
                })?;
                if is_extra(&gtid, ahead) {
                    return Ok(Start {
                        file: file.clone(),
                        pos: *pos,
                        last,
                    });
                }
                last.insert(gtid.domain, gtid);
            }
            match page.last() {
                Some((_, _, end, _)) if page.len() == PAGE => from = Some(*end),
                _ => break,
            }
        }
        return Err(RewindError::Binlog {
            detail: format!("{file} began before the tail but does not hold its start"),
        });
    }
    Err(RewindError::TailNotInBinlog)
}

/// What the reader is in the middle of.
enum InTxn {
    None,
    /// A transaction the master has too: passed over.
    Shared {
        standalone: bool,
    },
    Tail {
        txn: Txn,
        standalone: bool,
    },
}

/// Reads every transaction of the tail from `start` to the end of the
/// binlog, checking that each domain's tail begins right after the
/// master's last GTID there and ends at the node's position (`until`).
pub(super) async fn read(
    opts: mysql_async::OptsBuilder,
    start: &Start,
    ahead: &Ahead,
    until: &crate::topology::gtid::GtidPos,
) -> Result<Vec<Txn>, RewindError> {
    let dump_err = |e: mysql_async::Error| RewindError::Binlog {
        detail: e.to_string(),
    };
    let mut conn = mysql_async::Conn::new(opts).await.map_err(dump_err)?;
    let own: u32 = conn
        .query_first("SELECT @@server_id")
        .await
        .map_err(dump_err)?
        .unwrap_or(0);
    conn.query_drop(format!(
        "SET @mariadb_slave_capability = {SLAVE_CAPABILITY_GTID}"
    ))
    .await
    .map_err(dump_err)?;
    let server_id = if own == DUMP_SERVER_ID {
        DUMP_SERVER_ID + 1
    } else {
        DUMP_SERVER_ID
    };
    let request = BinlogStreamRequest::new(server_id)
        .with_filename(start.file.as_bytes())
        .with_pos(start.pos)
        .with_non_blocking();
    let mut stream = conn.get_binlog_stream(request).await.map_err(dump_err)?;
    let mut reader = Reader {
        ahead,
        last: start.last.clone(),
        started: Vec::new(),
        state: InTxn::None,
        tail: Vec::new(),
        changes: 0,
    };
    loop {
        let next =
            std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut stream), cx))
                .await;
        let Some(event) = next else { break };
        let event = event.map_err(dump_err)?;
        reader.event(&event, |id| stream.get_tme(id))?;
    }
    if let Err(e) = stream.close().await {
        tracing::debug!(error = %e, "closing the binlog dump");
    }
    if !matches!(reader.state, InTxn::None) {
        return Err(RewindError::Binlog {
            detail: "the binlog ends inside a transaction".into(),
        });
    }
    for &domain in ahead.keys() {
        let found = reader.last.get(&domain).copied();
        if found != until.get(domain) {
            return Err(RewindError::Incomplete {
                domain,
                found: found.map_or("nothing".into(), |g| g.to_string()),
                expected: until
                    .get(domain)
                    .map_or("nothing".into(), |g| g.to_string()),
            });
        }
    }
    Ok(reader.tail)
}

struct Reader<'a> {
    ahead: &'a Ahead,
    /// Per domain, the last GTID read.
    last: BTreeMap<u32, Gtid>,
    /// Domains whose tail has begun.
    started: Vec<u32>,
    state: InTxn,
    tail: Vec<Txn>,
    changes: usize,
}

impl Reader<'_> {
    fn event<'e>(
        &mut self,
        event: &Event,
        table_map: impl Fn(u64) -> Option<&'e mysql_async::binlog::events::TableMapEvent<'static>>,
    ) -> Result<(), RewindError> {
        let raw = event.header().event_type_raw();
        match raw {
            MARIA_GTID => return self.gtid(event),
            MARIA_ANNOTATE_ROWS
            | MARIA_BINLOG_CHECKPOINT
            | MARIA_GTID_LIST
            | MARIA_START_ENCRYPTION => return Ok(()),
            _ => {}
        }
        let data = event.read_data().map_err(|e| RewindError::Binlog {
            detail: format!("event type {raw}: {e}"),
        })?;
        match (&mut self.state, data) {
            (
                _,
                Some(
                    EventData::FormatDescriptionEvent(_)
                    | EventData::RotateEvent(_)
                    | EventData::StopEvent
                    | EventData::HeartbeatEvent
                    | EventData::TableMapEvent(_),
                ),
            ) => Ok(()),
            (_, Some(EventData::IncidentEvent(_))) => Err(RewindError::Binlog {
                detail: "an incident event: the binlog may lack changes".into(),
            }),
            (
                InTxn::None,
                Some(EventData::XidEvent(_) | EventData::QueryEvent(_) | EventData::RowsEvent(_)),
            ) => Err(RewindError::Binlog {
                detail: format!("event type {raw} outside a transaction"),
            }),
            (InTxn::None, _) => Ok(()),
            (_, Some(EventData::XidEvent(_))) => self.end(),
            (state, Some(EventData::QueryEvent(q))) => {
                let text = q.query();
                let word = text.split_whitespace().next().unwrap_or("");
                let commit = word.eq_ignore_ascii_case("COMMIT");
                let (tail, standalone) = match state {
                    InTxn::Tail { txn, standalone } => (Some(txn.gtid), *standalone),
                    InTxn::Shared { standalone } => (None, *standalone),
                    InTxn::None => (None, false),
                };
                if let Some(gtid) = tail {
                    if standalone || !(commit || word.eq_ignore_ascii_case("BEGIN")) {
                        // Only the first word: a statement may carry row values.
                        return Err(not_rows(gtid, word));
                    }
                }
                if commit || standalone {
                    return self.end();
                }
                Ok(())
            }
            (InTxn::Tail { txn, .. }, Some(EventData::RowsEvent(rows))) => {
                let gtid = txn.gtid;
                let tme = table_map(rows.table_id()).ok_or_else(|| RewindError::Binlog {
                    detail: format!("{gtid}: rows for a table with no table map"),
                })?;
                let table = TableName {
                    schema: tme.database_name().into_owned(),
                    name: tme.table_name().into_owned(),
                };
                let columns = usize::try_from(tme.columns_count()).unwrap_or(usize::MAX);
                let kind =
                    change_kind(&rows).ok_or_else(|| not_rows(gtid, "PARTIAL_UPDATE_ROWS"))?;
                for row in rows.rows(tme) {
                    let (before, after) = row.map_err(|e| RewindError::Binlog {
                        detail: format!("{gtid}: {table}: {e}"),
                    })?;
                    let image = |r: Option<mysql_async::binlog::row::BinlogRow>| {
                        values(r, columns).ok_or_else(|| RewindError::PartialImage {
                            gtid,
                            table: table.clone(),
                        })
                    };
                    let row = match kind {
                        Kind::Write => RowChange::Inserted(image(after)?),
                        Kind::Delete => RowChange::Deleted(image(before)?),
                        Kind::Update => RowChange::Updated {
                            before: image(before)?,
                            after: image(after)?,
                        },
                    };
                    self.changes += 1;
                    if self.changes > MAX_CHANGES {
                        return Err(RewindError::TooLarge);
                    }
                    txn.changes.push(Change {
                        table: table.clone(),
                        columns,
                        row,
                    });
                }
                Ok(())
            }
            (InTxn::Shared { .. }, _) => Ok(()),
            (InTxn::Tail { txn, .. }, other) => {
                let what = match other {
                    Some(_) => format!("a {:?} event", event.header().event_type()),
                    None => format!("an event of type {raw}"),
                };
                Err(not_rows(txn.gtid, &what))
            }
        }
    }

    /// A MariaDB GTID event: 8 bytes sequence number, 4 bytes domain, one
    /// byte of flags; the server id is the event header's.
    fn gtid(&mut self, event: &Event) -> Result<(), RewindError> {
        if !matches!(self.state, InTxn::None) {
            return Err(RewindError::Binlog {
                detail: "a transaction without its end".into(),
            });
        }
        let body = event.data();
        let (Some(seq), Some(domain), Some(&flags)) = (
            body.get(0..8).and_then(|b| b.try_into().ok()),
            body.get(8..12).and_then(|b| b.try_into().ok()),
            body.get(12),
        ) else {
            return Err(RewindError::Binlog {
                detail: "a GTID event too short".into(),
            });
        };
        let gtid = Gtid {
            domain: u32::from_le_bytes(domain),
            server: event.header().server_id(),
            seq: u64::from_le_bytes(seq),
        };
        let standalone = flags & FL_STANDALONE != 0;
        if is_extra(&gtid, self.ahead) {
            if !self.started.contains(&gtid.domain) {
                let before = self.last.get(&gtid.domain).copied();
                let expected = self.ahead.get(&gtid.domain).copied().flatten();
                if before != expected {
                    return Err(RewindError::HistoriesDiffer {
                        domain: gtid.domain,
                        found: before.map_or("nothing".into(), |g| g.to_string()),
                        expected: expected.map_or("nothing".into(), |g| g.to_string()),
                    });
                }
                self.started.push(gtid.domain);
            }
            self.state = InTxn::Tail {
                txn: Txn {
                    gtid,
                    changes: Vec::new(),
                },
                standalone,
            };
        } else {
            self.state = InTxn::Shared { standalone };
        }
        self.last.insert(gtid.domain, gtid);
        Ok(())
    }

    fn end(&mut self) -> Result<(), RewindError> {
        if let InTxn::Tail { txn, .. } = std::mem::replace(&mut self.state, InTxn::None) {
            self.tail.push(txn);
        }
        Ok(())
    }
}

fn not_rows(gtid: Gtid, what: &str) -> RewindError {
    RewindError::NotRows {
        gtid,
        what: what.to_string(),
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Write,
    Delete,
    Update,
}

fn change_kind(rows: &RowsEventData<'_>) -> Option<Kind> {
    match rows {
        RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => Some(Kind::Write),
        RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => {
            Some(Kind::Delete)
        }
        RowsEventData::UpdateRowsEventV1(_) | RowsEventData::UpdateRowsEvent(_) => {
            Some(Kind::Update)
        }
        RowsEventData::PartialUpdateRowsEvent(_) => None,
    }
}

/// A row image's values, if it has every column (a full image).
fn values(row: Option<mysql_async::binlog::row::BinlogRow>, columns: usize) -> Option<Vec<Value>> {
    let row = row?;
    if row.len() != columns {
        return None;
    }
    row.unwrap()
        .into_iter()
        .map(|v| match v {
            BinlogValue::Value(v) => Some(v),
            // MySQL's binary JSON; MariaDB logs JSON as text.
            BinlogValue::Jsonb(_) | BinlogValue::JsonDiff(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_events_name_their_gtid() {
        let rows = [
            ("BEGIN GTID 0-1-57", Some("0-1-57")),
            ("GTID 1-1-9", Some("1-1-9")),
            ("BEGIN GTID 0-1-57 cid=12", Some("0-1-57")),
            ("XA START X'31',X'',1 GTID 2-1-5", Some("2-1-5")),
            ("BEGIN", None),
            ("GTID x", None),
        ];
        for (info, want) in rows {
            assert_eq!(
                gtid_of_info(info).map(|g| g.to_string()).as_deref(),
                want,
                "{info}"
            );
        }
    }

    #[test]
    fn a_gtid_list_gives_the_highest_per_domain() {
        let last = gtid_list_of_info("[1-1-5,1-2-9,2-2-3,2-1-7]").expect("list");
        let got: Vec<String> = last.values().map(Gtid::to_string).collect();
        assert_eq!(got, ["1-2-9", "2-1-7"]);
        assert_eq!(gtid_list_of_info("[]").map(|l| l.len()), Some(0));
        assert!(gtid_list_of_info("1-1-1").is_none());
    }

    #[test]
    fn table_names_are_quoted_for_sql() {
        let t = TableName {
            schema: "s`1".into(),
            name: "t".into(),
        };
        assert_eq!(t.to_string(), "`s``1`.`t`");
    }
}
