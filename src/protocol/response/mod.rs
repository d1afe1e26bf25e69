//! Replies from a node: where one ends, and the few fields routing needs.
//!
//! [`ResponseTracker`] is fed the first byte and length of each logical packet
//! and says when the reply to one command is complete (multi-result sets,
//! LOCAL INFILE requests, prepared-statement metadata, cursors). [`OkInfo`]
//! reads an OK packet's status flags and session-track data (`last_gtid`, the
//! schema). [`strip_session_track`] is the one rewrite the proxy makes: nodes
//! always get CLIENT_SESSION_TRACK (so each write's GTID arrives for free), and
//! a client that did not ask for it must get the OK a node would have sent it.

use super::{lenenc, status};

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

    /// The next packet is a result set's column definition.
    pub fn at_column(&self) -> bool {
        matches!(self.state, State::Columns { .. })
    }

    /// The next packet is a row (or the rows' terminator).
    pub fn at_row(&self) -> bool {
        self.state == State::Rows
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
                } else if self.deprecate_eof {
                    // No EOF ends the metadata of a streamed result under
                    // DEPRECATE_EOF: a cursor was asked for but not opened
                    // (SHOW WARNINGS, CALL...) and there were no rows, so
                    // this was the reply's terminator.
                    if more {
                        State::First
                    } else {
                        State::Done
                    }
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

mod ok;
#[cfg(test)]
mod tests;

pub use ok::{ok_payload, parse_err, parse_ok, strip_session_track, OkInfo};
