//! Copies one command's reply from a node to the client, packet by packet,
//! as the node framed it. Only OK/EOF packets are looked into (status flags,
//! GTID, schema) and rewritten when the client lacks session tracking; the
//! PREPARE_OK statement id is swapped for the client's. Output is batched
//! and flushed per reply (or every 64 KiB of a large result).

use bytes::Buf;

use super::connection::BackendConn;
use super::job::CommitGate;
use super::threads::ThreadOwners;
use crate::net::{NetError, PacketIo, FLUSH_THRESHOLD};
use crate::protocol::codec::{self, MAX_CHUNK};
use crate::protocol::err::err_renaming_statement;
use crate::protocol::processlist;
use crate::protocol::response::{
    eof_status, parse_err, parse_ok, strip_session_track, Expect, PacketKind, ResponseTracker,
};
use crate::protocol::{caps, status};

/// What the proxy learned from a reply.
#[derive(Debug, Default, Clone)]
pub struct RelayOutcome {
    /// Status flags of the last OK/EOF.
    pub status: Option<u16>,
    /// `last_gtid` reported by the node (a write committed).
    pub last_gtid: Option<String>,
    /// The node's current schema changed to this.
    pub schema: Option<Vec<u8>>,
    /// The reply ended in (or was) an ERR packet with this code.
    pub error: Option<u16>,
    /// COM_STMT_PREPARE: (node statement id, columns, params).
    pub prepared: Option<(u32, u16, u16)>,
    /// Sequence id the next packet to the client would carry.
    pub next_seq: u8,
    /// Rows sent plus rows affected (statistics only).
    pub rows: u64,
    /// An OK carried a generated id (`LAST_INSERT_ID()` now returns it).
    pub insert_id: bool,
    /// The reply left diagnostics: its last OK or EOF carried warnings, or
    /// it was an error.
    pub warnings: bool,
    /// The commit gate refused the reply's commit: its OK was not flushed,
    /// the queued bytes are the caller's to drop, and the connection is
    /// unusable if the refusal came before the reply's end.
    pub withheld: bool,
    /// With `withheld`: the sequence id of the first packet not flushed,
    /// which the error that replaces the rest of the reply must carry.
    pub withheld_seq: Option<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The node failed; `sent` says whether part of the reply reached the
    /// client, `torn` that the client was mid-upload (LOCAL INFILE).
    #[error("node failed: {error}")]
    Backend {
        error: NetError,
        sent: bool,
        next_seq: u8,
        torn: bool,
    },
    /// The client went away while we wrote to it.
    #[error("client failed: {0}")]
    Client(NetError),
}

/// Extras on a client reply, for the result cache. `None` in [`Sink::Client`] costs
/// nothing: both only act where the relay flushes.
#[derive(Debug, Default)]
pub struct Tap {
    /// Copy of every byte queued to the client, up to `limit`.
    pub capture: Option<Vec<u8>>,
    /// Stop capturing (and mark `overflow`) beyond this many bytes.
    pub limit: usize,
    /// The reply outgrew `limit`, or was not capturable (LOCAL INFILE).
    pub overflow: bool,
    /// The relay reached the reply's end (a partial capture must not be stored).
    pub complete: bool,
    /// Leave the reply's last bytes queued, unflushed: the caller flushes after it has
    /// acted on the outcome (a write's invalidation must precede its OK).
    pub hold_flush: bool,
}

impl Tap {
    fn take(&mut self, queued: &[u8]) {
        if let Some(buf) = &mut self.capture {
            if buf.len() + queued.len() > self.limit {
                self.overflow = true;
                self.capture = None;
            } else {
                buf.extend_from_slice(queued);
            }
        }
    }
}

/// The prepared statement a reply is about, as the client and the node
/// number it. The client sees only its own number: in PREPARE_OK, and in an
/// error that names the statement ("The statement (17) has no open cursor").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StmtIds {
    pub client: u32,
    /// None for COM_STMT_PREPARE, whose node id the reply brings.
    pub node: Option<u32>,
}

/// Where a reply goes.
pub enum Sink<'a> {
    Client {
        io: &'a mut PacketIo,
        caps: u32,
        /// Statement ids to show the client instead of the node's.
        stmt: Option<StmtIds>,
        /// Capture / deferred flush for the cache.
        tap: Option<&'a mut Tap>,
        /// A process list's thread ids shown as the client sessions holding
        /// them (a statement that reads one).
        owners: Option<&'a ThreadOwners>,
        /// Asked before a commit's OK is flushed (see [`CommitGate`]).
        gate: Option<&'a CommitGate<'a>>,
        /// A write: if its reply ends in a classic EOF, which carries no
        /// GTID, the node is asked for `@@last_gtid` before that end is
        /// flushed, so that the gate sees the commit.
        ask_last_gtid: bool,
    },
    /// Read and drop (a transparent re-prepare, a replayed SET).
    Discard,
}

/// Relays the reply to the command just sent on `conn`.
pub async fn relay(
    conn: &mut BackendConn,
    mut sink: Sink<'_>,
    expect: Expect,
) -> Result<RelayOutcome, RelayError> {
    let mut tracker = ResponseTracker::new(expect, conn.deprecate_eof());
    let mut out = RelayOutcome::default();
    let mut continuing = false;
    let mut sent = false;
    let mut scratch = Vec::new();
    // The commit the gate last let through (asked once per commit).
    let mut asked = None;
    // Sequence id of the first packet queued to the client since the last flush.
    let mut unflushed_from: Option<u8> = None;
    // Start of the bytes this reply queued that the tap has not seen.
    let mut mark = match &sink {
        Sink::Client { io, .. } => io.wbuf.len(),
        Sink::Discard => 0,
    };
    let node = conn.node;
    // The process list's thread id column of the current result set.
    let mut columns = 0usize;
    let mut id_column = None;
    loop {
        while let Some(h) = codec::complete_packet(&conn.io.rbuf) {
            let total = 4 + h.len;
            out.next_seq = h.seq.wrapping_add(1);
            if continuing {
                continuing = h.continues();
                if let Sink::Client { io, .. } = &mut sink {
                    io.queue_raw(&conn.io.rbuf[..total]);
                }
                conn.io.rbuf.advance(total);
                continue;
            }
            continuing = h.continues();
            unflushed_from.get_or_insert(h.seq);
            let payload = &conn.io.rbuf[4..total];
            let len = if continuing { MAX_CHUNK } else { h.len };
            let (at_column, at_row) = (tracker.at_column(), tracker.at_row());
            let kind = tracker.on_packet(payload, len);
            let mut infile = false;
            match &mut sink {
                Sink::Discard => note(kind, payload, &mut tracker, &mut out),
                Sink::Client {
                    io,
                    caps: ccaps,
                    stmt,
                    owners,
                    ..
                } => {
                    let strip = *ccaps & caps::SESSION_TRACK == 0;
                    note(kind, payload, &mut tracker, &mut out);
                    if owners.is_some() && kind == PacketKind::Data && !continuing {
                        if at_column {
                            if id_column.is_none() && processlist::is_id_column(payload, columns) {
                                id_column = Some(columns);
                            }
                            columns += 1;
                        } else if !at_row {
                            // A column count: a new result set begins.
                            (columns, id_column) = (0, None);
                        }
                    }
                    let owned = match (owners, id_column) {
                        (Some(o), Some(i)) if at_row && kind == PacketKind::Data && !continuing => {
                            session_holding(o, node, payload, i)
                        }
                        _ => None,
                    };
                    match kind {
                        PacketKind::Data if owned.is_some() => {
                            scratch.clear();
                            if let Some((field, session)) = owned {
                                let id = session.to_string();
                                processlist::replace_field(
                                    payload,
                                    field,
                                    id.as_bytes(),
                                    &mut scratch,
                                );
                            }
                            io.queue(h.seq, &scratch);
                        }
                        PacketKind::Ok if strip => {
                            scratch.clear();
                            match strip_session_track(payload, &mut scratch) {
                                Some(()) => {
                                    io.queue(h.seq, &scratch);
                                }
                                None => io.queue_raw(&conn.io.rbuf[..total]),
                            }
                        }
                        PacketKind::Eof if strip => {
                            scratch.clear();
                            scratch.extend_from_slice(payload);
                            if let Some(b) = scratch.get_mut(4) {
                                *b &= !((status::SESSION_STATE_CHANGED >> 8) as u8);
                            }
                            io.queue(h.seq, &scratch);
                        }
                        PacketKind::PrepareOk if stmt.is_some() => {
                            scratch.clear();
                            scratch.extend_from_slice(payload);
                            if let (Some(ids), Some(b)) = (*stmt, scratch.get_mut(1..5)) {
                                b.copy_from_slice(&ids.client.to_le_bytes());
                            }
                            io.queue(h.seq, &scratch);
                        }
                        PacketKind::Err => {
                            scratch.clear();
                            let renamed = stmt.and_then(|ids| Some((ids.node?, ids.client)));
                            match renamed {
                                Some((node, client))
                                    if err_renaming_statement(
                                        payload,
                                        node,
                                        client,
                                        &mut scratch,
                                    ) =>
                                {
                                    io.queue(h.seq, &scratch);
                                }
                                _ => io.queue_raw(&conn.io.rbuf[..total]),
                            }
                        }
                        PacketKind::LocalInfile => {
                            io.queue_raw(&conn.io.rbuf[..total]);
                            infile = true;
                        }
                        _ => io.queue_raw(&conn.io.rbuf[..total]),
                    }
                }
            }
            conn.io.rbuf.advance(total);
            if infile {
                if let Sink::Client { io, tap, gate, .. } = &mut sink {
                    // The flush carries what the reply queued before the
                    // request, a multi-statement's commit OK among it.
                    if refused(*gate, &out, &mut asked) {
                        out.withheld = true;
                        out.withheld_seq = unflushed_from;
                        conn.broken = true;
                        return Ok(out);
                    }
                    if let Some(t) = tap {
                        t.overflow = true;
                        t.capture = None;
                    }
                    io.flush().await.map_err(RelayError::Client)?;
                    sent = true;
                    unflushed_from = None;
                    mark = 0;
                    relay_infile(conn, io).await?;
                }
            } else if let Sink::Client { io, tap, gate, .. } = &mut sink {
                if io.wbuf.len() >= FLUSH_THRESHOLD {
                    // A commit's OK early in a long multi-statement reply
                    // would go out with this flush: the gate is asked now.
                    if refused(*gate, &out, &mut asked) {
                        out.withheld = true;
                        out.withheld_seq = unflushed_from;
                        // The rest of the reply is never read: the
                        // connection cannot serve another command.
                        conn.broken = true;
                        return Ok(out);
                    }
                    if let Some(t) = tap {
                        t.take(io.wbuf.get(mark..).unwrap_or_default());
                    }
                    io.flush().await.map_err(RelayError::Client)?;
                    sent = true;
                    unflushed_from = None;
                    mark = 0;
                }
            }
            if tracker.is_done() && !continuing {
                if let Sink::Client {
                    io,
                    tap,
                    gate,
                    ask_last_gtid,
                    ..
                } = &mut sink
                {
                    let committed = out.status.is_some_and(|s| s & status::IN_TRANS == 0);
                    if *ask_last_gtid
                        && gate.is_some()
                        && kind == PacketKind::Eof
                        && out.last_gtid.is_none()
                        && committed
                    {
                        match last_gtid_of(conn).await {
                            Ok(g) => out.last_gtid = g,
                            Err(error) => return Err(node_failed(conn, error, sent, out.next_seq)),
                        }
                    }
                    if refused(*gate, &out, &mut asked) {
                        out.withheld = true;
                        out.withheld_seq = unflushed_from;
                    } else {
                        match tap {
                            Some(t) => {
                                t.take(io.wbuf.get(mark..).unwrap_or_default());
                                t.complete = true;
                                if !t.hold_flush {
                                    io.flush().await.map_err(RelayError::Client)?;
                                }
                            }
                            None => io.flush().await.map_err(RelayError::Client)?,
                        }
                    }
                }
                conn.reply_complete();
                conn.io.shrink();
                if let Some(s) = out.status {
                    conn.status = s;
                }
                out.rows += tracker.rows;
                return Ok(out);
            }
        }
        if let Err(error) = conn.io.fill(Some(conn.read_timeout)).await {
            return Err(node_failed(conn, error, sent, out.next_seq));
        }
    }
}

/// The node connection failed during a reply: it serves nothing more.
fn node_failed(conn: &mut BackendConn, error: NetError, sent: bool, next_seq: u8) -> RelayError {
    conn.broken = true;
    RelayError::Backend {
        error,
        sent,
        next_seq,
        torn: false,
    }
}

/// The node's `@@last_gtid` for this connection: the commit of a write whose
/// reply ended in a classic EOF (`INSERT ... RETURNING` to a client without
/// DEPRECATE_EOF), which reports no GTID of its own.
async fn last_gtid_of(conn: &mut BackendConn) -> Result<Option<String>, NetError> {
    conn.send(b"\x03SELECT @@last_gtid").await?;
    let expect = Expect::Results {
        binary: false,
        cursor: false,
    };
    let mut tracker = ResponseTracker::new(expect, conn.deprecate_eof());
    let mut gtid = None;
    let t = Some(conn.read_timeout);
    while !tracker.is_done() {
        let p = conn.io.read_packet(MAX_CHUNK, t, t).await?;
        let at_row = tracker.at_row();
        match tracker.on_packet(&p.payload, p.payload.len()) {
            PacketKind::Data if at_row => {
                let mut pos = 0;
                gtid = crate::protocol::lenenc::read_str(&p.payload, &mut pos)
                    .filter(|g| !g.is_empty())
                    .map(|g| String::from_utf8_lossy(g).into_owned());
            }
            PacketKind::Ok => {
                tracker.status_seen(parse_ok(&p.payload, true).map_or(0, |o| o.status))
            }
            PacketKind::Eof => tracker.status_seen(eof_status(&p.payload)),
            _ => {}
        }
    }
    Ok(gtid)
}

/// Whether the gate refuses the reply's latest commit, asking it once per
/// commit: a commit it let through at an earlier flush is recorded already.
fn refused(gate: Option<&CommitGate<'_>>, out: &RelayOutcome, asked: &mut Option<String>) -> bool {
    let (Some(gate), Some(gtid)) = (gate, out.last_gtid.as_deref()) else {
        return false;
    };
    if asked.as_deref() == Some(gtid) {
        return false;
    }
    if !gate(gtid) {
        return true;
    }
    *asked = Some(gtid.to_owned());
    false
}

/// A process-list row whose thread id (field `column`) is a node thread a
/// client session holds: the field and that session's id.
fn session_holding(
    owners: &ThreadOwners,
    node: usize,
    row: &[u8],
    column: usize,
) -> Option<(processlist::Field, u32)> {
    let field = processlist::text_field(row, column)?;
    let thread: u32 = std::str::from_utf8(row.get(field.start..field.end)?)
        .ok()?
        .parse()
        .ok()?;
    Some((field, owners.owner(node, thread)?))
}

/// Records what a packet tells the proxy.
fn note(kind: PacketKind, payload: &[u8], tracker: &mut ResponseTracker, out: &mut RelayOutcome) {
    match kind {
        PacketKind::Ok => {
            if let Some(ok) = parse_ok(payload, true) {
                tracker.status_seen(ok.status);
                out.status = Some(ok.status);
                out.rows += ok.affected_rows;
                out.insert_id |= ok.last_insert_id != 0;
                out.warnings = ok.warnings != 0;
                if let Some(g) = ok.last_gtid {
                    out.last_gtid = Some(String::from_utf8_lossy(g).into_owned());
                }
                if let Some(s) = ok.schema {
                    out.schema = Some(s.to_vec());
                }
            } else {
                tracker.status_seen(0);
            }
        }
        PacketKind::Eof => {
            let s = eof_status(payload);
            tracker.status_seen(s);
            out.status = Some(s);
            out.warnings = payload.get(1..3).is_some_and(|w| w != [0, 0]);
        }
        PacketKind::Err => {
            out.error = parse_err(payload).map(|e| e.0);
            // The error is in the diagnostics SHOW WARNINGS reads next.
            out.warnings = true;
        }
        PacketKind::PrepareOk => {
            let u32_at = |i: usize| {
                payload
                    .get(i..i + 4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            };
            let u16_at = |i: usize| {
                payload
                    .get(i..i + 2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]))
            };
            if let (Some(id), Some(c), Some(p)) = (u32_at(1), u16_at(5), u16_at(7)) {
                out.prepared = Some((id, c, p));
            }
        }
        PacketKind::Data | PacketKind::LocalInfile => {}
    }
}

/// LOAD DATA LOCAL: the node asked for a file; the client streams it up as
/// packets ending with an empty one. The proxy never reads its own disk.
async fn relay_infile(conn: &mut BackendConn, client: &mut PacketIo) -> Result<(), RelayError> {
    loop {
        let h = client
            .physical(Some(conn.read_timeout), Some(conn.read_timeout))
            .await
            .map_err(RelayError::Client)?;
        let total = 4 + h.len;
        conn.io.queue_raw(&client.rbuf[..total]);
        client.rbuf.advance(total);
        if conn.io.wbuf.len() >= FLUSH_THRESHOLD || h.len == 0 {
            if let Err(error) = conn.io.flush().await {
                conn.broken = true;
                return Err(RelayError::Backend {
                    error,
                    sent: true,
                    next_seq: h.seq.wrapping_add(1),
                    // The client goes on sending its file: what it sends
                    // next is no command.
                    torn: true,
                });
            }
        }
        if h.len == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn with_gtid(gtid: Option<&str>) -> RelayOutcome {
        RelayOutcome {
            last_gtid: gtid.map(str::to_owned),
            ..RelayOutcome::default()
        }
    }

    #[test]
    fn every_commit_of_a_reply_is_asked_about_before_its_flush_and_only_once() {
        let asked_about = Mutex::new(Vec::new());
        let allow = Mutex::new(true);
        let gate = |g: &str| {
            asked_about.lock().unwrap().push(g.to_owned());
            *allow.lock().unwrap()
        };
        let mut asked = None;
        // No commit yet: nothing to ask.
        assert!(!refused(Some(&gate), &with_gtid(None), &mut asked));
        // A commit early in the reply, asked at the first flush.
        assert!(!refused(Some(&gate), &with_gtid(Some("1-1-5")), &mut asked));
        // The same commit at the next flush and at the end: recorded already.
        assert!(!refused(Some(&gate), &with_gtid(Some("1-1-5")), &mut asked));
        // A later commit of the same reply, while a promotion checks: refused.
        *allow.lock().unwrap() = false;
        assert!(refused(Some(&gate), &with_gtid(Some("1-1-6")), &mut asked));
        assert_eq!(*asked_about.lock().unwrap(), ["1-1-5", "1-1-6"]);
        // Asked again after a refusal: refused again, never let through.
        assert!(refused(Some(&gate), &with_gtid(Some("1-1-6")), &mut asked));
        // No gate (a replica, a discarded reply): nothing is refused.
        assert!(!refused(None, &with_gtid(Some("1-1-7")), &mut None));
    }
}
