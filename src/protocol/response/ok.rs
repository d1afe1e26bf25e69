//! OK and ERR packets: the fields routing reads, and the session-track strip.

use super::u16_at;
use crate::protocol::{lenenc, status};

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
}
