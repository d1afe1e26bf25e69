//! A node's process list, seen through the proxy, shows a client session's
//! id in place of the thread id of a node connection that session holds
//! (so `SHOW PROCESSLIST` agrees with the handshake, `CONNECTION_ID()` and
//! KILL). Pure functions over packets: which column holds the thread id, by
//! its definition, and a text-protocol row with that field replaced.

use super::lenenc;

/// Whether a column definition (protocol 4.1) is a process list's thread
/// id: `ID` of `information_schema.PROCESSLIST` (under any alias), or
/// `SHOW [FULL] PROCESSLIST`'s first column `Id`, which names no table.
pub fn is_id_column(def: &[u8], index: usize) -> bool {
    let mut pos = 0;
    let mut next = || lenenc::read_str(def, &mut pos);
    let (Some(_catalog), Some(schema), Some(_table), Some(org_table), Some(name), Some(org_name)) =
        (next(), next(), next(), next(), next(), next())
    else {
        return false;
    };
    let from_table = schema.eq_ignore_ascii_case(b"information_schema")
        && org_table.eq_ignore_ascii_case(b"PROCESSLIST")
        && org_name.eq_ignore_ascii_case(b"ID");
    let from_show = index == 0 && schema.is_empty() && org_table.is_empty() && name == b"Id";
    from_table || from_show
}

/// Where a field lies in a row: its length prefix at `at`, its value in
/// `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub at: usize,
    pub start: usize,
    pub end: usize,
}

/// Field `index` of a text-protocol row; None when it is NULL or the row is
/// malformed.
pub fn text_field(row: &[u8], index: usize) -> Option<Field> {
    let mut pos = 0;
    for i in 0..=index {
        if row.get(pos) == Some(&0xfb) {
            if i == index {
                return None;
            }
            pos += 1;
            continue;
        }
        let at = pos;
        let len = usize::try_from(lenenc::read_int(row, &mut pos)?).ok()?;
        let end = pos.checked_add(len).filter(|&e| e <= row.len())?;
        if i == index {
            return Some(Field {
                at,
                start: pos,
                end,
            });
        }
        pos = end;
    }
    None
}

/// `row` with `field` (found by [`text_field`]) made `value`, into `out`.
pub fn replace_field(row: &[u8], field: Field, value: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&row[..field.at]);
    lenenc::write_int(out, value.len() as u64);
    out.extend_from_slice(value);
    out.extend_from_slice(&row[field.end..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(schema: &str, org_table: &str, name: &str, org_name: &str) -> Vec<u8> {
        let mut d = Vec::new();
        for s in ["def", schema, "", org_table, name, org_name] {
            lenenc::write_int(&mut d, s.len() as u64);
            d.extend_from_slice(s.as_bytes());
        }
        d.extend_from_slice(b"\x0c?\x00\x0b\x00\x00\x00\x08\x81\x00\x00\x00\x00");
        d
    }

    #[test]
    fn id_columns_are_found_by_their_definition() {
        assert!(is_id_column(&def("", "", "Id", ""), 0));
        assert!(!is_id_column(&def("", "", "Id", ""), 1));
        assert!(!is_id_column(&def("shop", "t", "Id", "Id"), 0));
        assert!(is_id_column(
            &def("information_schema", "PROCESSLIST", "x", "ID"),
            3
        ));
        assert!(!is_id_column(
            &def("information_schema", "PROCESSLIST", "ID", "USER"),
            0
        ));
        assert!(!is_id_column(b"\x03def", 0));
    }

    #[test]
    fn a_field_is_replaced_in_place() {
        // "39", NULL, "u1"
        let row = b"\x0239\xfb\x02u1";
        let first = text_field(row, 0);
        assert_eq!(first.map(|f| (f.at, f.start, f.end)), Some((0, 1, 3)));
        assert_eq!(text_field(row, 1), None);
        let third = text_field(row, 2);
        assert_eq!(third.map(|f| (f.at, f.start, f.end)), Some((4, 5, 7)));
        assert_eq!(text_field(row, 3), None);
        let mut out = Vec::new();
        replace_field(row, third.expect("third"), b"abc", &mut out);
        assert_eq!(out, b"\x0239\xfb\x03abc");
        out.clear();
        replace_field(row, first.expect("first"), b"7", &mut out);
        assert_eq!(out, b"\x017\xfb\x02u1");
    }
}
