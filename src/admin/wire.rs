//! Result sets the admin port writes: column definitions and text rows in
//! the classic protocol, ended by an EOF packet or, for clients that sent
//! CLIENT_DEPRECATE_EOF, an OK packet with the 0xFE header. Pure: it fills
//! a buffer with framed packets, the listener writes it.

use crate::protocol::codec::write_packet;
use crate::protocol::{caps, lenenc, status};

/// MySQL column types used here.
const TYPE_LONGLONG: u8 = 0x08;
const TYPE_VAR_STRING: u8 = 0xfd;
/// utf8mb4_general_ci for text, binary for numbers (as a server sends them).
const CHARSET_UTF8MB4: u16 = 45;
const CHARSET_BINARY: u16 = 63;
const FLAG_UNSIGNED: u16 = 32;
const FLAG_NUM: u16 = 32768;

/// Status flags of every admin reply: autocommit, never in a transaction.
const STATUS: u16 = status::AUTOCOMMIT;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColKind {
    Text,
    /// Unsigned integer (clients may read it as a number).
    Int,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: ColKind,
}

/// A result: columns, then rows of optional text (None = SQL NULL).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResultSet {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl ResultSet {
    /// Columns given as (name, kind).
    pub fn new(columns: &[(&str, ColKind)]) -> ResultSet {
        ResultSet {
            columns: columns
                .iter()
                .map(|(n, k)| Column {
                    name: (*n).to_string(),
                    kind: *k,
                })
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; cells beyond the columns are dropped, missing ones are NULL.
    pub fn push(&mut self, mut row: Vec<Option<String>>) {
        row.resize(self.columns.len(), None);
        self.rows.push(row);
    }

    /// A two-column (name, value) result: SHOW STATS, SHOW CONFIG.
    pub fn pairs(names: (&str, &str), pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut rs = ResultSet::new(&[(names.0, ColKind::Text), (names.1, ColKind::Text)]);
        for (k, v) in pairs {
            rs.push(vec![Some(k), Some(v)]);
        }
        rs
    }

    /// Appends the framed packets of this result, starting at `seq`, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>, mut seq: u8, client_caps: u32) {
        let deprecate_eof = client_caps & caps::DEPRECATE_EOF != 0;
        let mut p = Vec::with_capacity(64);
        lenenc::write_int(&mut p, self.columns.len() as u64);
        seq = write_packet(out, seq, &p);
        for c in &self.columns {
            p.clear();
            column_definition(&mut p, c);
            seq = write_packet(out, seq, &p);
        }
        if !deprecate_eof {
            seq = write_packet(out, seq, &eof());
        }
        for row in &self.rows {
            p.clear();
            for cell in row {
                match cell {
                    Some(v) => lenenc::write_str(&mut p, v.as_bytes()),
                    None => p.push(0xfb),
                }
            }
            seq = write_packet(out, seq, &p);
        }
        if deprecate_eof {
            // OK with the EOF header: affected rows 0, insert id 0, status, warnings.
            let mut end = vec![0xfe, 0, 0];
            end.extend_from_slice(&STATUS.to_le_bytes());
            end.extend_from_slice(&[0, 0]);
            write_packet(out, seq, &end);
        } else {
            write_packet(out, seq, &eof());
        }
    }
}

fn eof() -> Vec<u8> {
    let mut p = vec![0xfe, 0, 0];
    p.extend_from_slice(&STATUS.to_le_bytes());
    p
}

fn column_definition(p: &mut Vec<u8>, c: &Column) {
    lenenc::write_str(p, b"def");
    lenenc::write_str(p, b""); // schema
    lenenc::write_str(p, b""); // table
    lenenc::write_str(p, b""); // org_table
    lenenc::write_str(p, c.name.as_bytes());
    lenenc::write_str(p, c.name.as_bytes());
    p.push(0x0c);
    let (charset, len, ty, flags) = match c.kind {
        ColKind::Text => (CHARSET_UTF8MB4, 1024u32 * 4, TYPE_VAR_STRING, 0u16),
        ColKind::Int => (CHARSET_BINARY, 20, TYPE_LONGLONG, FLAG_UNSIGNED | FLAG_NUM),
    };
    p.extend_from_slice(&charset.to_le_bytes());
    p.extend_from_slice(&len.to_le_bytes());
    p.push(ty);
    p.extend_from_slice(&flags.to_le_bytes());
    p.push(0); // decimals
    p.extend_from_slice(&[0, 0]);
}

/// An OK packet (no info, no session state), as the admin sends for PING etc.
pub fn ok(out: &mut Vec<u8>, seq: u8) {
    let mut p = vec![0x00, 0, 0];
    p.extend_from_slice(&STATUS.to_le_bytes());
    p.extend_from_slice(&[0, 0]);
    write_packet(out, seq, &p);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec::complete_packet;
    use crate::protocol::response::{Expect, PacketKind, ResponseTracker};

    /// Splits framed bytes into (seq, payload) pairs.
    fn packets(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut v = Vec::new();
        while let Some(h) = complete_packet(b) {
            v.push((h.seq, b[4..4 + h.len].to_vec()));
            b = &b[4 + h.len..];
        }
        assert!(b.is_empty(), "trailing bytes");
        v
    }

    fn sample() -> ResultSet {
        let mut rs = ResultSet::new(&[("name", ColKind::Text), ("n", ColKind::Int)]);
        rs.push(vec![Some("cn1".into()), Some("7".into())]);
        rs.push(vec![None]);
        rs
    }

    #[test]
    fn result_set_is_what_the_relay_tracker_expects() {
        for deprecate in [false, true] {
            let mut out = Vec::new();
            let caps = if deprecate { caps::DEPRECATE_EOF } else { 0 };
            sample().encode(&mut out, 1, caps);
            let pk = packets(&out);
            // count + 2 columns + (EOF) + 2 rows + end
            assert_eq!(pk.len(), if deprecate { 6 } else { 7 });
            assert!(pk
                .iter()
                .enumerate()
                .all(|(i, (s, _))| *s as usize == i + 1));
            let mut t = ResponseTracker::new(
                Expect::Results {
                    binary: false,
                    cursor: false,
                },
                deprecate,
            );
            let mut kinds = Vec::new();
            for (_, p) in &pk {
                let k = t.on_packet(p, p.len());
                if matches!(k, PacketKind::Ok | PacketKind::Eof) {
                    t.status_seen(STATUS);
                }
                kinds.push(k);
            }
            assert!(t.is_done(), "deprecate_eof={deprecate}: {kinds:?}");
            let row2 = &pk[pk.len() - 2].1;
            assert_eq!(row2, &vec![0xfb, 0xfb], "missing cells are NULL");
        }
    }

    #[test]
    fn mysql_common_reads_the_column_definitions() {
        use mysql_common::io::ParseBuf;
        use mysql_common::packets::Column as MyColumn;
        use mysql_common::proto::MyDeserialize;
        let mut out = Vec::new();
        sample().encode(&mut out, 1, caps::DEPRECATE_EOF);
        let pk = packets(&out);
        let c = MyColumn::deserialize((), &mut ParseBuf(&pk[2].1)).unwrap();
        assert_eq!(c.name_ref(), b"n");
        assert_eq!(
            c.column_type(),
            mysql_common::constants::ColumnType::MYSQL_TYPE_LONGLONG
        );
    }
}
