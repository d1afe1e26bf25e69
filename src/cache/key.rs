//! Cache keys: the statement text normalized for comments and whitespace only, plus
//! everything else that changes the reply's bytes (user, schema, collation, the client
//! capabilities that change framing, the session's replayed SETs, bound parameters).
//!
//! The node echoes an un-aliased select-list expression as the column name byte for byte
//! (`SELECT a  +  b` names its column `a  +  b`), so whitespace and comments are only
//! dropped where they cannot reach the reply: before the statement, after it, and after
//! the first top-level `FROM`. Executable comments (`/*! */`, `/*M! */`) and optimizer
//! hints (`/*+ */`) are code and are kept. A text with a backslash is taken verbatim,
//! since whether `\` escapes a quote depends on the node's sql_mode.

use sha1::{Digest, Sha1};

use crate::protocol::caps;

/// A complete cache key (compared in full; no hash collisions can alias two results).
pub type CacheKey = Box<[u8]>;

/// Capability bits that change a reply's bytes: those the backend mirrors, and session
/// tracking, which the relay strips for clients that lack it.
pub const KEY_CAPS: u32 = caps::RESULT_AFFECTING | caps::SESSION_TRACK;

/// Who asks, in which session state.
#[derive(Debug, Clone, Copy)]
pub struct KeyParts<'a> {
    pub user: &'a str,
    pub schema: Option<&'a [u8]>,
    pub collation: u8,
    pub caps: u32,
    /// The session's replayed SET statements, in order.
    pub sets: &'a [Vec<u8>],
}

/// Key of a COM_QUERY text.
pub fn text_key(parts: &KeyParts<'_>, sql: &[u8]) -> CacheKey {
    build(parts, b'Q', sql, &[])
}

/// Key of a COM_STMT_EXECUTE: the prepared text and the bound values (null bitmap,
/// types, values as sent).
pub fn execute_key(parts: &KeyParts<'_>, sql: &[u8], params: &[u8]) -> CacheKey {
    build(parts, b'X', sql, params)
}

/// The part of a COM_STMT_EXECUTE payload that carries values, with the parameter types
/// made explicit (from the payload, or `stored` when this execution did not resend them).
/// None if the payload is short or the types are unknown.
pub fn execute_params(payload: &[u8], params: u16, stored: Option<&[u8]>) -> Option<Vec<u8>> {
    if params == 0 {
        return Some(Vec::new());
    }
    let n = params as usize;
    // command, statement id (4), flags, iteration count (4), then the null bitmap.
    let at = 10 + n.div_ceil(8);
    let bitmap = payload.get(10..at)?;
    let mut out = Vec::with_capacity(payload.len());
    out.extend_from_slice(bitmap);
    match payload.get(at)? {
        1 => {
            let types = payload.get(at + 1..at + 1 + 2 * n)?;
            out.extend_from_slice(types);
            out.extend_from_slice(payload.get(at + 1 + 2 * n..)?);
        }
        _ => {
            let types = stored.filter(|t| t.len() == 2 * n)?;
            out.extend_from_slice(types);
            out.extend_from_slice(payload.get(at + 1..)?);
        }
    }
    Some(out)
}

fn build(parts: &KeyParts<'_>, kind: u8, sql: &[u8], params: &[u8]) -> CacheKey {
    let mut k = Vec::with_capacity(sql.len() + params.len() + parts.user.len() + 64);
    k.push(kind);
    k.extend_from_slice(&(parts.caps & KEY_CAPS).to_le_bytes());
    k.push(parts.collation);
    push_lp(&mut k, parts.user.as_bytes());
    match parts.schema {
        Some(s) => {
            k.push(1);
            push_lp(&mut k, s);
        }
        None => k.push(0),
    }
    if parts.sets.is_empty() {
        k.push(0);
    } else {
        let mut h = Sha1::new();
        for s in parts.sets {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s);
        }
        k.push(1);
        k.extend_from_slice(&h.finalize());
    }
    push_lp(&mut k, params);
    normalize_into(sql, &mut k);
    k.into_boxed_slice()
}

fn push_lp(k: &mut Vec<u8>, b: &[u8]) {
    k.extend_from_slice(&(b.len() as u32).to_le_bytes());
    k.extend_from_slice(b);
}

pub fn normalize_into(sql: &[u8], out: &mut Vec<u8>) {
    if sql.contains(&b'\\') {
        out.extend_from_slice(sql);
        return;
    }
    let mut i = 0;
    let mut depth = 0usize;
    // After the top-level FROM, separators collapse to one space.
    let mut free = false;
    let mut started = false;
    let mut pending_space = false;
    // End of the last token written: trailing separators are cut back to it.
    let mut end = out.len();
    while i < sql.len() {
        let sep = separator_len(sql, i);
        if sep > 0 {
            if started && !free {
                out.extend_from_slice(&sql[i..i + sep]);
            } else {
                pending_space = started;
            }
            i += sep;
            continue;
        }
        if pending_space {
            out.push(b' ');
            pending_space = false;
        }
        started = true;
        let tok = token_len(sql, i);
        match &sql[i..i + tok] {
            b"(" => depth += 1,
            b")" => depth = depth.saturating_sub(1),
            w if depth == 0 && w.eq_ignore_ascii_case(b"FROM") => free = true,
            _ => {}
        }
        out.extend_from_slice(&sql[i..i + tok]);
        i += tok;
        end = out.len();
    }
    out.truncate(end);
}

/// Bytes of whitespace or a plain comment at `i` (0 if neither).
pub(crate) fn separator_len(s: &[u8], i: usize) -> usize {
    let c = s[i];
    if c.is_ascii_whitespace() {
        return s[i..]
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
    }
    if c == b'#'
        || (c == b'-'
            && s.get(i + 1) == Some(&b'-')
            && s.get(i + 2)
                .is_none_or(|b| b.is_ascii_whitespace() || b.is_ascii_control()))
    {
        return s[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(s.len() - i, |p| p + 1);
    }
    if c == b'/' && s.get(i + 1) == Some(&b'*') {
        let code = matches!(s.get(i + 2), Some(b'!') | Some(b'+'))
            || (s.get(i + 2) == Some(&b'M') && s.get(i + 3) == Some(&b'!'));
        if !code {
            return match s[i + 2..].windows(2).position(|w| w == b"*/") {
                Some(p) => p + 4,
                None => 0, // unterminated: leave it to the node
            };
        }
    }
    0
}

/// Length of the token at `i` (not a separator): a quoted string or identifier, an
/// executable comment, a word, or one byte.
fn token_len(s: &[u8], i: usize) -> usize {
    let c = s[i];
    match c {
        b'\'' | b'"' | b'`' => {
            let mut j = i + 1;
            while j < s.len() {
                if s[j] == c {
                    // A doubled quote is an escaped quote.
                    if s.get(j + 1) == Some(&c) {
                        j += 2;
                        continue;
                    }
                    return j + 1 - i;
                }
                j += 1;
            }
            s.len() - i
        }
        b'/' if s.get(i + 1) == Some(&b'*') => match s[i + 2..].windows(2).position(|w| w == b"*/")
        {
            Some(p) => p + 4,
            None => s.len() - i,
        },
        _ if is_word(c) => s[i..].iter().take_while(|&&b| is_word(b)).count(),
        _ => 1,
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        let mut out = Vec::new();
        normalize_into(s.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn comments_and_spaces_go_only_where_the_reply_cannot_see_them() {
        let cases = [
            ("SELECT 1", "SELECT 1"),
            (
                "  /* req 42 */ SELECT c FROM t  WHERE id = 1 ;\n",
                "SELECT c FROM t WHERE id = 1 ;",
            ),
            (
                "SELECT c FROM t -- tail\n WHERE  id=1",
                "SELECT c FROM t WHERE id=1",
            ),
            ("SELECT c FROM t # tail", "SELECT c FROM t"),
            // The select list is echoed as column names: kept verbatim.
            ("SELECT a  +  b FROM t", "SELECT a  +  b FROM t"),
            ("SELECT a /* x */ + b FROM t", "SELECT a /* x */ + b FROM t"),
            ("SELECT 1 + 1   ", "SELECT 1 + 1"),
            // Strings and code comments are untouched.
            (
                "SELECT c FROM t WHERE v = 'a  /* b */  c'",
                "SELECT c FROM t WHERE v = 'a  /* b */  c'",
            ),
            (
                "SELECT /*!40001 SQL_NO_CACHE */ c FROM t",
                "SELECT /*!40001 SQL_NO_CACHE */ c FROM t",
            ),
            // A FROM inside a subquery of the select list does not end the list.
            (
                "SELECT (SELECT  1 FROM u) , x  FROM  t",
                "SELECT (SELECT  1 FROM u) , x  FROM t",
            ),
            ("SELECT `from`  FROM  t", "SELECT `from`  FROM t"),
            // Backslashes: verbatim.
            (
                "SELECT c FROM t WHERE v='\\'  /* */'",
                "SELECT c FROM t WHERE v='\\'  /* */'",
            ),
        ];
        for (sql, want) in cases {
            assert_eq!(n(sql), want, "{sql}");
        }
    }

    #[test]
    fn every_reply_affecting_fact_is_in_the_key() {
        let base = KeyParts {
            user: "app",
            schema: Some(b"shop"),
            collation: 45,
            caps: caps::DEPRECATE_EOF,
            sets: &[],
        };
        let k = text_key(&base, b"SELECT 1");
        assert_eq!(k, text_key(&base, b" /* x */ SELECT 1 "));
        assert_ne!(
            k,
            text_key(&base, b"SELECT 2"),
            "literals are part of the key"
        );
        let sets = [b"\x03SET NAMES latin1".to_vec()];
        for other in [
            KeyParts {
                user: "other",
                ..base
            },
            KeyParts {
                schema: None,
                ..base
            },
            KeyParts {
                schema: Some(b"shop2"),
                ..base
            },
            KeyParts {
                collation: 8,
                ..base
            },
            KeyParts { caps: 0, ..base },
            KeyParts {
                sets: &sets,
                ..base
            },
        ] {
            assert_ne!(k, text_key(&other, b"SELECT 1"), "{other:?}");
        }
        // Bits that do not change the reply do not split the cache.
        let mt = KeyParts {
            caps: caps::DEPRECATE_EOF | caps::CONNECT_ATTRS,
            ..base
        };
        assert_eq!(k, text_key(&mt, b"SELECT 1"));
        assert_ne!(
            execute_key(&base, b"SELECT ?", b"\x00\x01"),
            execute_key(&base, b"SELECT ?", b"\x00\x02")
        );
        assert_ne!(k, execute_key(&base, b"SELECT 1", b""));
    }
}
