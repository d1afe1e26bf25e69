//! Replies from a node: where one ends, and the few fields routing needs.
//!
//! [`ResponseTracker`] is fed the first byte and length of each logical packet
//! and says when the reply to one command is complete (multi-result sets,
//! LOCAL INFILE requests, prepared-statement metadata, cursors). [`OkInfo`]
//! reads an OK packet's status flags and session-track data (`last_gtid`, the
//! schema). [`strip_session_track`] is the one rewrite the proxy makes: nodes
//! always get CLIENT_SESSION_TRACK (so each write's GTID arrives for free), and
//! a client that did not ask for it must get the OK a node would have sent it.

use super::lenenc;
use super::status;

/// What kind of reply a command produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// COM_QUERY / COM_STMT_EXECUTE: OK, ERR, LOCAL INFILE or result sets.
    Results { binary: bool, cursor: bool },
    /// COM_STMT_PREPARE: PREPARE_OK + parameter and column definitions, or ERR.
    Prepare,
    /// COM_STMT_FETCH: rows then a terminator, or ERR.
    Fetch,
    /// COM_FIELD_LIST: column definitions then a terminator, or ERR.
    FieldList,
    /// Exactly one packet (OK/ERR, or the COM_STATISTICS string).
    Single,
}

/// How the tracker classified one logical packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// Metadata or a row: forward untouched.
    Data,
    /// An OK packet (0x00 header, or 0xFE terminator with DEPRECATE_EOF).
    Ok,
    /// A classic EOF packet (0xFE, short).
    Eof,
    Err,
    /// 0xFB: the node asks the client for a local file.
    LocalInfile,
    /// COM_STMT_PREPARE's first packet.
    PrepareOk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    First,
    Columns {
        left: u64,
    },
    ColumnsEof,
    Rows,
    PrepParams {
        left: u16,
        cols: u16,
    },
    PrepParamsEof {
        cols: u16,
    },
    PrepCols {
        left: u16,
    },
    PrepColsEof,
    /// After a LOCAL INFILE request: the client's data goes up, then one OK/ERR.
    InfileResult,
    Done,
}

/// Follows one command's reply packet by packet.
#[derive(Debug, Clone)]
pub struct ResponseTracker {
    state: State,
    expect: Expect,
    deprecate_eof: bool,
    /// Status flags of the last OK/EOF seen.
    pub last_status: Option<u16>,
    /// Rows seen so far (all result sets), for statistics.
    pub rows: u64,
}

impl ResponseTracker {
    pub fn new(expect: Expect, deprecate_eof: bool) -> Self {
        let state = match expect {
            Expect::Fetch => State::Rows,
            Expect::FieldList => State::Columns { left: u64::MAX },
            _ => State::First,
        };
        ResponseTracker {
            state,
            expect,
            deprecate_eof,
            last_status: None,
            rows: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn is_terminator(&self, first: u8, len: usize) -> bool {
        first == 0xfe
            && if self.deprecate_eof {
                len < super::codec::MAX_CHUNK
            } else {
                len < 9
            }
    }

    fn term_kind(&self) -> PacketKind {
        if self.deprecate_eof {
            PacketKind::Ok
        } else {
            PacketKind::Eof
        }
    }

    /// Feeds one logical packet: its first payload byte(s) and total length.
    /// `status` is the status-flag value of an OK/EOF packet (the caller
    /// parses it only for packets classified Ok/Eof, then calls
    /// [`ResponseTracker::status_seen`]). Returns the packet's kind.
    pub fn on_packet(&mut self, payload: &[u8], len: usize) -> PacketKind {
        let first = payload.first().copied().unwrap_or(0);
        match self.state {
            State::Done => PacketKind::Data,
            State::First => match (self.expect, first) {
                (_, 0xff) => {
                    self.state = State::Done;
                    PacketKind::Err
                }
                (Expect::Single, _) => {
                    self.state = State::Done;
                    if first == 0x00 {
                        PacketKind::Ok
                    } else if first == 0xfe && len < 9 {
                        PacketKind::Eof
                    } else {
                        PacketKind::Data
                    }
                }
                (Expect::Prepare, 0x00) => {
                    let cols = u16_at(payload, 5);
                    let params = u16_at(payload, 7);
                    self.state = if params > 0 {
                        State::PrepParams { left: params, cols }
                    } else if cols > 0 {
                        State::PrepCols { left: cols }
                    } else {
                        State::Done
                    };
                    PacketKind::PrepareOk
                }
                (Expect::Results { .. }, 0x00) => {
                    // caller reports the status via status_seen
                    PacketKind::Ok
                }
                (Expect::Results { .. }, 0xfb) => {
                    self.state = State::InfileResult;
                    PacketKind::LocalInfile
                }
                (Expect::Results { .. }, _) => {
                    let mut pos = 0;
                    match lenenc::read_int(payload, &mut pos) {
                        Some(n) if n > 0 => {
                            self.state = State::Columns { left: n };
                            PacketKind::Data
                        }
                        _ => {
                            // Not a valid column count: treat as the end so
                            // the relay never waits for packets that won't come.
                            self.state = State::Done;
                            PacketKind::Data
                        }
                    }
                }
                _ => {
                    self.state = State::Done;
                    PacketKind::Data
                }
            },
            State::Columns { left } => {
                if self.expect == Expect::FieldList {
                    if first == 0xff {
                        self.state = State::Done;
                        return PacketKind::Err;
                    }
                    if self.is_terminator(first, len) {
                        self.state = State::Done;
                        return self.term_kind();
                    }
                    return PacketKind::Data;
                }
                let left = left - 1;
                self.state = if left > 0 {
                    State::Columns { left }
                } else if self.deprecate_eof {
                    match self.expect {
                        Expect::Results { cursor: true, .. } => State::ColumnsEof,
                        _ => State::Rows,
                    }
                } else {
                    State::ColumnsEof
                };
                PacketKind::Data
            }
            State::ColumnsEof => {
                if first == 0xfe && len < 9 {
                    // A classic EOF even under DEPRECATE_EOF (a cursor's
                    // metadata ends with one); status_seen decides whether
                    // rows follow or the node waits for COM_STMT_FETCH.
                    PacketKind::Eof
                } else if first == 0xfe && len < super::codec::MAX_CHUNK {
                    self.term_kind()
                } else if first == 0xff {
                    self.state = State::Done;
                    PacketKind::Err
                } else {
                    // cursor requested but node streamed rows
                    self.state = State::Rows;
                    self.on_packet(payload, len)
                }
            }
            State::Rows => {
                if first == 0xff {
                    self.state = State::Done;
                    PacketKind::Err
                } else if self.is_terminator(first, len) {
                    self.term_kind()
                } else {
                    self.rows += 1;
                    PacketKind::Data
                }
            }
            State::PrepParams { left, cols } => {
                let left = left - 1;
                self.state = if left > 0 {
                    State::PrepParams { left, cols }
                } else if !self.deprecate_eof {
                    State::PrepParamsEof { cols }
                } else if cols > 0 {
                    State::PrepCols { left: cols }
                } else {
                    State::Done
                };
                PacketKind::Data
            }
            State::PrepParamsEof { cols } => {
                self.state = if cols > 0 {
                    State::PrepCols { left: cols }
                } else {
                    State::Done
                };
                PacketKind::Eof
            }
            State::PrepCols { left } => {
                let left = left - 1;
                self.state = if left > 0 {
                    State::PrepCols { left }
                } else if !self.deprecate_eof {
                    State::PrepColsEof
                } else {
                    State::Done
                };
                PacketKind::Data
            }
            State::PrepColsEof => {
                self.state = State::Done;
                PacketKind::Eof
            }
            State::InfileResult => {
                self.state = State::First;
                self.on_packet(payload, len)
            }
        }
    }

    /// Reports the status flags of the OK/EOF packet just classified; decides
    /// whether another result follows.
    pub fn status_seen(&mut self, status_flags: u16) {
        self.last_status = Some(status_flags);
        let more = status_flags & status::MORE_RESULTS_EXISTS != 0;
        match self.state {
            State::First | State::Rows => {
                self.state = if more { State::First } else { State::Done };
            }
            State::ColumnsEof => {
                self.state = if self.cursor_opened(status_flags) {
                    State::Done
                } else {
                    State::Rows
                };
            }
            _ => {}
        }
    }
}

impl ResponseTracker {
    /// Whether the metadata just ended opened a cursor, so that the rows come
    /// only through COM_STMT_FETCH. The node sets CURSOR_EXISTS in other
    /// replies too (inside a stored program that has a cursor open, on text
    /// and binary results alike), so the flag counts only for an execution
    /// that asked for a cursor, and never on a result followed by more
    /// results: a cursor is only opened for a single result set.
    fn cursor_opened(&self, status_flags: u16) -> bool {
        matches!(
            self.expect,
            Expect::Results {
                binary: true,
                cursor: true
            }
        ) && status_flags & status::CURSOR_EXISTS != 0
            && status_flags & status::MORE_RESULTS_EXISTS == 0
    }
}

fn u16_at(p: &[u8], at: usize) -> u16 {
    match p.get(at..at + 2) {
        Some(b) => u16::from_le_bytes([b[0], b[1]]),
        None => 0,
    }
}

/// Status flags of a classic EOF packet (`fe warnings status`).
pub fn eof_status(payload: &[u8]) -> u16 {
    u16_at(payload, 3)
}

/// The fields of an OK packet the proxy looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OkInfo<'a> {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub status: u16,
    pub warnings: u16,
    /// Offset where `info` starts (after the warnings field).
    pub info_at: usize,
    /// `last_gtid` from session tracking, if the node sent it.
    pub last_gtid: Option<&'a [u8]>,
    /// New current schema from session tracking, if it changed.
    pub schema: Option<&'a [u8]>,
}

const TRACK_SYSTEM_VARIABLES: u8 = 0;
const TRACK_SCHEMA: u8 = 1;

/// Parses an OK packet (header 0x00 or 0xFE). `session_track`: whether the
/// connection it came on negotiated CLIENT_SESSION_TRACK (nodes always do).
pub fn parse_ok(payload: &[u8], session_track: bool) -> Option<OkInfo<'_>> {
    let mut pos = 1;
    let affected_rows = lenenc::read_int(payload, &mut pos)?;
    let last_insert_id = lenenc::read_int(payload, &mut pos)?;
    let status = u16_at(payload, pos);
    let warnings = u16_at(payload, pos + 2);
    pos += 4;
    if pos > payload.len() {
        return None;
    }
    let mut ok = OkInfo {
        affected_rows,
        last_insert_id,
        status,
        warnings,
        info_at: pos,
        ..OkInfo::default()
    };
    if session_track && pos < payload.len() {
        lenenc::read_str(payload, &mut pos)?; // info
        if status & status::SESSION_STATE_CHANGED != 0 {
            let state = lenenc::read_str(payload, &mut pos)?;
            let mut p = 0;
            while p < state.len() {
                let kind = state[p];
                p += 1;
                let data = lenenc::read_str(state, &mut p)?;
                let mut d = 0;
                match kind {
                    TRACK_SYSTEM_VARIABLES => {
                        let name = lenenc::read_str(data, &mut d)?;
                        let value = lenenc::read_str(data, &mut d)?;
                        if name == b"last_gtid" && !value.is_empty() {
                            ok.last_gtid = Some(value);
                        }
                    }
                    TRACK_SCHEMA => ok.schema = Some(lenenc::read_str(data, &mut d)?),
                    _ => {}
                }
            }
        }
    }
    Some(ok)
}

/// Re-encodes an OK packet from a node (which has CLIENT_SESSION_TRACK) for a
/// client without it: same fields, no session-state block, flag cleared, and
/// `info` only when non-empty — what MariaDB sends such a client directly.
pub fn strip_session_track(payload: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let ok = parse_ok(payload, false)?;
    let mut pos = ok.info_at;
    let info: &[u8] = if pos < payload.len() {
        lenenc::read_str(payload, &mut pos)?
    } else {
        &[]
    };
    out.push(payload[0]);
    lenenc::write_int(out, ok.affected_rows);
    lenenc::write_int(out, ok.last_insert_id);
    out.extend_from_slice(&(ok.status & !status::SESSION_STATE_CHANGED).to_le_bytes());
    out.extend_from_slice(&ok.warnings.to_le_bytes());
    if !info.is_empty() {
        lenenc::write_str(out, info);
    }
    Some(())
}

/// A proxy-made OK payload (affected 0, no insert id).
pub fn ok_payload(status_flags: u16, session_track: bool) -> Vec<u8> {
    let mut p = vec![0x00, 0x00, 0x00];
    p.extend_from_slice(&status_flags.to_le_bytes());
    p.extend_from_slice(&[0, 0]);
    if session_track {
        p.push(0); // empty info, as MariaDB sends to tracking clients
    }
    p
}

/// Code and SQLSTATE of an ERR packet.
pub fn parse_err(payload: &[u8]) -> Option<(u16, &[u8], &[u8])> {
    if payload.first() != Some(&0xff) || payload.len() < 3 {
        return None;
    }
    let code = u16_at(payload, 1);
    if payload.get(3) == Some(&b'#') && payload.len() >= 9 {
        Some((code, &payload[4..9], &payload[9..]))
    } else {
        Some((code, b"HY000", &payload[3..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // INSERT's OK with last_gtid as probed on MariaDB 10.11 (rust-stack.md §2.4).
    const OK_GTID: &[u8] = b"\x00\x01\x02\x02\x40\x00\x00\x00\x13\x00\x11\x09last_gtid\x060-91-6";

    #[test]
    fn ok_with_gtid() {
        let ok = parse_ok(OK_GTID, true).unwrap();
        assert_eq!(ok.affected_rows, 1);
        assert_eq!(ok.last_insert_id, 2);
        assert_eq!(ok.status, 0x4002);
        assert_eq!(ok.last_gtid, Some(&b"0-91-6"[..]));
    }

    #[test]
    fn strip_gives_plain_ok() {
        let mut out = Vec::new();
        strip_session_track(OK_GTID, &mut out).unwrap();
        assert_eq!(out, b"\x00\x01\x02\x02\x00\x00\x00");
        // info is kept when present
        let mut with_info = b"\x00\x00\x00\x02\x00\x00\x00\x05Rows!".to_vec();
        with_info.extend_from_slice(b"");
        let mut out = Vec::new();
        strip_session_track(&with_info, &mut out).unwrap();
        assert_eq!(out, b"\x00\x00\x00\x02\x00\x00\x00\x05Rows!");
    }

    #[test]
    fn schema_tracking() {
        // info "", state block: type 1, len 5, lenenc "test"
        let p = b"\x00\x00\x00\x02\x40\x00\x00\x00\x07\x01\x05\x04test";
        let ok = parse_ok(p, true).unwrap();
        assert_eq!(ok.schema, Some(&b"test"[..]));
    }

    #[test]
    fn truncated_ok_is_none() {
        assert!(parse_ok(b"\x00\xfc", true).is_none());
        assert!(parse_ok(b"\x00", true).is_none());
    }

    #[test]
    fn tracker_result_set_deprecate_eof() {
        let mut t = ResponseTracker::new(
            Expect::Results {
                binary: false,
                cursor: false,
            },
            true,
        );
        assert_eq!(t.on_packet(&[2], 1), PacketKind::Data);
        assert_eq!(t.on_packet(b"\x03def", 30), PacketKind::Data);
        assert_eq!(t.on_packet(b"\x03def", 30), PacketKind::Data);
        assert_eq!(t.on_packet(b"\x01a", 4), PacketKind::Data);
        assert_eq!(t.on_packet(b"\xfe\x00\x00", 7), PacketKind::Ok);
        t.status_seen(status::AUTOCOMMIT | status::MORE_RESULTS_EXISTS);
        assert!(!t.is_done());
        assert_eq!(t.on_packet(b"\x00\x00\x00", 7), PacketKind::Ok);
        t.status_seen(status::AUTOCOMMIT);
        assert!(t.is_done());
    }

    #[test]
    fn tracker_result_set_classic_eof() {
        let mut t = ResponseTracker::new(
            Expect::Results {
                binary: false,
                cursor: false,
            },
            false,
        );
        t.on_packet(&[1], 1);
        t.on_packet(b"\x03def", 30);
        assert_eq!(t.on_packet(b"\xfe\x00\x00\x02\x00", 5), PacketKind::Eof);
        t.status_seen(2);
        assert!(!t.is_done());
        assert_eq!(t.on_packet(b"\x01a", 2), PacketKind::Data);
        assert_eq!(t.on_packet(b"\xfe\x00\x00\x02\x00", 5), PacketKind::Eof);
        t.status_seen(2);
        assert!(t.is_done());
    }

    #[test]
    fn tracker_err_mid_rows_ends() {
        let mut t = ResponseTracker::new(
            Expect::Results {
                binary: false,
                cursor: false,
            },
            true,
        );
        t.on_packet(&[1], 1);
        t.on_packet(b"\x03def", 30);
        t.on_packet(b"\x01a", 2);
        assert_eq!(t.on_packet(b"\xff\x25\x05", 20), PacketKind::Err);
        assert!(t.is_done());
    }

    #[test]
    fn tracker_prepare() {
        // 2 params, 1 column, classic EOF
        let mut t = ResponseTracker::new(Expect::Prepare, false);
        let ok = [0u8, 1, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0];
        assert_eq!(t.on_packet(&ok, 12), PacketKind::PrepareOk);
        t.on_packet(b"\x03def", 20);
        t.on_packet(b"\x03def", 20);
        assert_eq!(t.on_packet(b"\xfe\0\0\x02\0", 5), PacketKind::Eof);
        t.on_packet(b"\x03def", 20);
        assert!(!t.is_done());
        assert_eq!(t.on_packet(b"\xfe\0\0\x02\0", 5), PacketKind::Eof);
        assert!(t.is_done());
        // no params, no columns
        let mut t = ResponseTracker::new(Expect::Prepare, true);
        t.on_packet(&[0u8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 12);
        assert!(t.is_done());
    }

    #[test]
    fn tracker_local_infile() {
        let mut t = ResponseTracker::new(
            Expect::Results {
                binary: false,
                cursor: false,
            },
            true,
        );
        assert_eq!(t.on_packet(b"\xfbfile.csv", 9), PacketKind::LocalInfile);
        assert!(!t.is_done());
        assert_eq!(t.on_packet(b"\x00\x03\x00", 7), PacketKind::Ok);
        t.status_seen(2);
        assert!(t.is_done());
    }

    /// Feeds packets as the relay does; returns how many were read when the
    /// tracker said the reply ended (None: it still waits).
    fn ends_after(t: &mut ResponseTracker, packets: &[&[u8]]) -> Option<usize> {
        for (i, p) in packets.iter().enumerate() {
            match t.on_packet(p, p.len()) {
                PacketKind::Ok => t.status_seen(parse_ok(p, true).map_or(0, |o| o.status)),
                PacketKind::Eof => t.status_seen(eof_status(p)),
                _ => {}
            }
            if t.is_done() {
                return Some(i + 1);
            }
        }
        None
    }

    // Replies of MariaDB 10.11 to `CALL p1(1)`, a procedure that loops over a
    // cursor and SELECTs each value: the node leaves CURSOR_EXISTS (0x40) in
    // the status of every EOF inside the call (0x006a, with MORE_RESULTS).
    const COLDEF: &[u8] =
        b"\x03def\x00\x00\x00\x03v_a\x03v_a\x0c?\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00\x00";
    const EOF_IN_CALL: &[u8] = b"\xfe\x00\x00\x6a\x00";
    const TERM_IN_CALL: &[u8] = b"\xfe\x00\x00\x6a\x00\x00\x00";
    const CALL_OK: &[u8] = b"\x00\x00\x00\x22\x00\x00\x00";
    const TEXT: Expect = Expect::Results {
        binary: false,
        cursor: false,
    };
    const CURSOR: Expect = Expect::Results {
        binary: true,
        cursor: true,
    };

    #[test]
    fn text_reply_of_a_procedure_with_a_cursor_is_read_to_its_end() {
        let classic: &[&[u8]] = &[b"\x01", COLDEF, EOF_IN_CALL, b"\x011", EOF_IN_CALL, CALL_OK];
        let mut t = ResponseTracker::new(TEXT, false);
        assert_eq!(ends_after(&mut t, classic), Some(classic.len()));
        let modern: &[&[u8]] = &[b"\x01", COLDEF, b"\x011", TERM_IN_CALL, CALL_OK];
        let mut t = ResponseTracker::new(TEXT, true);
        assert_eq!(ends_after(&mut t, modern), Some(modern.len()));
    }

    #[test]
    fn cursor_requested_on_a_call_streams_every_result() {
        // The node opens no cursor for CALL: rows follow the metadata.
        let row: &[u8] = b"\x00\x00\x01\x00\x00\x00";
        let classic: &[&[u8]] = &[b"\x01", COLDEF, EOF_IN_CALL, row, EOF_IN_CALL, CALL_OK];
        let mut t = ResponseTracker::new(CURSOR, false);
        assert_eq!(ends_after(&mut t, classic), Some(classic.len()));
        let modern: &[&[u8]] = &[b"\x01", COLDEF, row, TERM_IN_CALL, CALL_OK];
        let mut t = ResponseTracker::new(CURSOR, true);
        assert_eq!(ends_after(&mut t, modern), Some(modern.len()));
    }

    #[test]
    fn an_opened_cursor_ends_the_reply_after_its_metadata() {
        // SELECT with CURSOR_TYPE_READ_ONLY: metadata, then one classic EOF
        // with CURSOR_EXISTS (0x0062), in both EOF styles; rows come by FETCH.
        let opened: &[&[u8]] = &[b"\x01", COLDEF, b"\xfe\x00\x00\x62\x00"];
        for deprecate_eof in [false, true] {
            let mut t = ResponseTracker::new(CURSOR, deprecate_eof);
            assert_eq!(
                ends_after(&mut t, opened),
                Some(3),
                "deprecate_eof={deprecate_eof}"
            );
        }
        // Without a cursor asked for, the same flag means nothing.
        let mut t = ResponseTracker::new(
            Expect::Results {
                binary: true,
                cursor: false,
            },
            false,
        );
        assert_eq!(ends_after(&mut t, opened), None);
        // FETCH: rows, then an EOF with LAST_ROW_SENT.
        let fetched: &[&[u8]] = &[b"\x00\x00\x01\x00\x00\x00", b"\xfe\x00\x00\x82\x00"];
        let mut t = ResponseTracker::new(Expect::Fetch, false);
        assert_eq!(ends_after(&mut t, fetched), Some(2));
    }

    #[test]
    fn tracker_never_panics_on_garbage() {
        for expect in [
            Expect::Results {
                binary: true,
                cursor: true,
            },
            Expect::Prepare,
            Expect::Fetch,
            Expect::FieldList,
            Expect::Single,
        ] {
            for eof in [true, false] {
                let mut t = ResponseTracker::new(expect, eof);
                for b in 0..=255u8 {
                    let k = t.on_packet(&[b, b, b], b as usize);
                    if matches!(k, PacketKind::Ok | PacketKind::Eof) {
                        t.status_seen(b as u16);
                    }
                    t.on_packet(&[], 0);
                }
            }
        }
    }
}
