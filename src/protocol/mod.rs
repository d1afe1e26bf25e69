//! The MySQL wire protocol as pure functions over bytes: no sockets here, so
//! everything is unit-testable and fuzzable. The proxy relays packets and
//! decodes only what a decision needs: the command byte, statement text, the
//! headers and status flags of OK/ERR/EOF packets, and session-track data.
//! mysql_common supplies the handshake packet types and scrambles; what it
//! cannot do for a relay (see each file's `//!`) is written here.

pub mod codec;
pub mod command;
pub mod err;
pub mod execute;
pub mod handshake;
pub mod processlist;
pub mod response;

/// Capability flags (protocol constants, see MariaDB's `mysql_com.h`).
pub mod caps {
    pub const LONG_PASSWORD: u32 = 1;
    pub const FOUND_ROWS: u32 = 1 << 1;
    pub const LONG_FLAG: u32 = 1 << 2;
    pub const CONNECT_WITH_DB: u32 = 1 << 3;
    pub const NO_SCHEMA: u32 = 1 << 4;
    pub const COMPRESS: u32 = 1 << 5;
    pub const ODBC: u32 = 1 << 6;
    pub const LOCAL_FILES: u32 = 1 << 7;
    pub const IGNORE_SPACE: u32 = 1 << 8;
    pub const PROTOCOL_41: u32 = 1 << 9;
    pub const INTERACTIVE: u32 = 1 << 10;
    pub const SSL: u32 = 1 << 11;
    pub const TRANSACTIONS: u32 = 1 << 13;
    pub const SECURE_CONNECTION: u32 = 1 << 15;
    pub const MULTI_STATEMENTS: u32 = 1 << 16;
    pub const MULTI_RESULTS: u32 = 1 << 17;
    pub const PS_MULTI_RESULTS: u32 = 1 << 18;
    pub const PLUGIN_AUTH: u32 = 1 << 19;
    pub const CONNECT_ATTRS: u32 = 1 << 20;
    pub const PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 1 << 21;
    pub const SESSION_TRACK: u32 = 1 << 23;
    pub const DEPRECATE_EOF: u32 = 1 << 24;

    /// What the proxy offers clients. SSL is added by a listener that has a
    /// certificate (`frontend/login.rs`); no COMPRESS (relaying would need
    /// re-framing), no MariaDB extended capabilities
    /// (bulk, cached metadata) so replies keep the classic shapes we track.
    pub const PROXY_SERVER: u32 = LONG_PASSWORD
        | FOUND_ROWS
        | LONG_FLAG
        | CONNECT_WITH_DB
        | NO_SCHEMA
        | ODBC
        | IGNORE_SPACE
        | PROTOCOL_41
        | INTERACTIVE
        | TRANSACTIONS
        | SECURE_CONNECTION
        | MULTI_STATEMENTS
        | MULTI_RESULTS
        | PS_MULTI_RESULTS
        | PLUGIN_AUTH
        | CONNECT_ATTRS
        | PLUGIN_AUTH_LENENC_CLIENT_DATA
        | SESSION_TRACK
        | DEPRECATE_EOF;

    /// Flags that change the bytes or meaning of replies: backend connections
    /// copy them from the client, and pooled connections are keyed by them.
    pub const RESULT_AFFECTING: u32 = FOUND_ROWS
        | LONG_FLAG
        | NO_SCHEMA
        | ODBC
        | LOCAL_FILES
        | IGNORE_SPACE
        | INTERACTIVE
        | MULTI_STATEMENTS
        | MULTI_RESULTS
        | PS_MULTI_RESULTS
        | DEPRECATE_EOF;

    /// Always set towards nodes. SESSION_TRACK is the deliberate exception to
    /// mirroring: it brings each write's GTID in its OK packet.
    pub const BACKEND_BASE: u32 = LONG_PASSWORD
        | PROTOCOL_41
        | TRANSACTIONS
        | SECURE_CONNECTION
        | PLUGIN_AUTH
        | PLUGIN_AUTH_LENENC_CLIENT_DATA
        | SESSION_TRACK;
}

/// Server status flags carried by OK and EOF packets.
pub mod status {
    pub const IN_TRANS: u16 = 0x0001;
    pub const AUTOCOMMIT: u16 = 0x0002;
    pub const MORE_RESULTS_EXISTS: u16 = 0x0008;
    pub const CURSOR_EXISTS: u16 = 0x0040;
    pub const LAST_ROW_SENT: u16 = 0x0080;
    pub const IN_TRANS_READONLY: u16 = 0x2000;
    pub const SESSION_STATE_CHANGED: u16 = 0x4000;
}

/// Command bytes (first byte of a client packet).
pub mod com {
    pub const QUIT: u8 = 0x01;
    pub const INIT_DB: u8 = 0x02;
    pub const QUERY: u8 = 0x03;
    pub const FIELD_LIST: u8 = 0x04;
    pub const STATISTICS: u8 = 0x09;
    pub const PROCESS_KILL: u8 = 0x0c;
    pub const PING: u8 = 0x0e;
    pub const CHANGE_USER: u8 = 0x11;
    pub const STMT_PREPARE: u8 = 0x16;
    pub const STMT_EXECUTE: u8 = 0x17;
    pub const STMT_SEND_LONG_DATA: u8 = 0x18;
    pub const STMT_CLOSE: u8 = 0x19;
    pub const STMT_RESET: u8 = 0x1a;
    pub const SET_OPTION: u8 = 0x1b;
    pub const STMT_FETCH: u8 = 0x1c;
    pub const RESET_CONNECTION: u8 = 0x1f;
}

/// Length-encoded integers and strings (protocol basics).
pub mod lenenc {
    /// Reads a length-encoded integer at `buf[*pos..]`, advancing `pos`.
    pub fn read_int(buf: &[u8], pos: &mut usize) -> Option<u64> {
        let first = *buf.get(*pos)?;
        let (len, val) = match first {
            0..=0xfa => (1, first as u64),
            0xfc => (3, le(buf.get(*pos + 1..*pos + 3)?)),
            0xfd => (4, le(buf.get(*pos + 1..*pos + 4)?)),
            0xfe => (9, le(buf.get(*pos + 1..*pos + 9)?)),
            _ => return None,
        };
        *pos += len;
        Some(val)
    }

    /// Reads a length-encoded string, returning the slice.
    pub fn read_str<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
        let len = usize::try_from(read_int(buf, pos)?).ok()?;
        let s = buf.get(*pos..pos.checked_add(len)?)?;
        *pos += len;
        Some(s)
    }

    fn le(b: &[u8]) -> u64 {
        b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64)
    }

    pub fn write_int(out: &mut Vec<u8>, v: u64) {
        match v {
            0..=0xfa => out.push(v as u8),
            0xfb..=0xffff => {
                out.push(0xfc);
                out.extend_from_slice(&(v as u16).to_le_bytes());
            }
            0x1_0000..=0xff_ffff => {
                out.push(0xfd);
                out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
            }
            _ => {
                out.push(0xfe);
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    pub fn write_str(out: &mut Vec<u8>, s: &[u8]) {
        write_int(out, s.len() as u64);
        out.extend_from_slice(s);
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        #[test]
        fn round_trip() {
            for v in [
                0u64,
                250,
                251,
                0xffff,
                0x10000,
                0xffffff,
                0x1000000,
                u64::MAX,
            ] {
                let mut out = Vec::new();
                write_int(&mut out, v);
                let mut pos = 0;
                assert_eq!(read_int(&out, &mut pos), Some(v));
                assert_eq!(pos, out.len());
            }
            let mut pos = 0;
            assert_eq!(read_int(&[0xfc, 1], &mut pos), None);
            assert_eq!(read_int(&[0xff], &mut pos), None);
        }
    }
}
