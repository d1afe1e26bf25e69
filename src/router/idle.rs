//! What a session's own `SET ... wait_timeout = ...` says, so the proxy
//! cuts an idle client when the node would have (MariaDB's `wait_timeout`
//! is per session; PyMySQL's own tests set it and wait for "gone away").
//! Only literal values are understood; anything else leaves the session's
//! timeout as it was.

use super::lexer::{Lexer, TokenKind};
use super::stmt_scan::sysvar_name;

pub use crate::config::{WAIT_TIMEOUT_MAX, WAIT_TIMEOUT_MIN};

/// A session's assignment to its own `wait_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleSet {
    /// A literal number of seconds, clamped to MariaDB's bounds.
    Secs(u64),
    /// `= DEFAULT`: back to the global value.
    Default,
}

/// The last session-scoped `wait_timeout` assignment of a SET statement
/// with a literal value, if any.
pub fn session_wait_timeout(sql: &[u8]) -> Option<IdleSet> {
    let mut toks = Lexer::new(sql).peekable();
    let first = toks.next()?;
    if !word_is(sql, first.start, first.end, b"set") {
        return None;
    }
    let mut found = None;
    let mut global = false;
    loop {
        // One assignment: optional scope words, the target, `=`, the value.
        let mut target = None;
        for t in toks.by_ref() {
            let raw = sql.get(t.start..t.end).unwrap_or_default();
            match t.kind {
                TokenKind::Word if raw.eq_ignore_ascii_case(b"global") => global = true,
                TokenKind::Word
                    if raw.eq_ignore_ascii_case(b"session")
                        || raw.eq_ignore_ascii_case(b"local") =>
                {
                    global = false
                }
                TokenKind::Word => {
                    target = Some((!global && raw.eq_ignore_ascii_case(b"wait_timeout"), t));
                    break;
                }
                TokenKind::SysVar => {
                    let scoped_global = raw
                        .get(2..9)
                        .is_some_and(|s| s.eq_ignore_ascii_case(b"global."));
                    let unscoped = sysvar_name(raw).len() + 2 == raw.len();
                    let is_global = scoped_global || (unscoped && global);
                    let ours = sysvar_name(raw).eq_ignore_ascii_case(b"wait_timeout");
                    target = Some((ours && !is_global, t));
                    break;
                }
                _ => {
                    target = Some((false, t));
                    break;
                }
            }
        }
        let (ours, _) = target?;
        let eq = toks.next()?;
        let op = sql.get(eq.start..eq.end).unwrap_or_default();
        let is_assign = eq.kind == TokenKind::Punct && (op == b"=" || op == b":=");
        let value = if is_assign { toks.next() } else { None };
        // The value is a literal only if the assignment ends right after it.
        let ends = match toks.peek() {
            None => true,
            Some(n) => {
                n.kind == TokenKind::Semicolon
                    || (n.kind == TokenKind::Punct && sql.get(n.start..n.end) == Some(b","))
            }
        };
        if ours && ends {
            if let Some(v) = value {
                let raw = sql.get(v.start..v.end).unwrap_or_default();
                match v.kind {
                    TokenKind::Number => {
                        if let Some(n) = std::str::from_utf8(raw)
                            .ok()
                            .and_then(|s| s.parse::<u64>().ok())
                        {
                            found =
                                Some(IdleSet::Secs(n.clamp(WAIT_TIMEOUT_MIN, WAIT_TIMEOUT_MAX)));
                        }
                    }
                    TokenKind::Word if raw.eq_ignore_ascii_case(b"default") => {
                        found = Some(IdleSet::Default)
                    }
                    _ => {}
                }
            }
        }
        // Skip to the next top-level comma.
        let mut depth = 0usize;
        let mut more = false;
        for t in toks.by_ref() {
            let raw = sql.get(t.start..t.end).unwrap_or_default();
            match (t.kind, raw) {
                (TokenKind::Punct, b"(") => depth += 1,
                (TokenKind::Punct, b")") => depth = depth.saturating_sub(1),
                (TokenKind::Punct, b",") if depth == 0 => {
                    more = true;
                    break;
                }
                (TokenKind::Semicolon, _) => break,
                _ => {}
            }
        }
        if !more {
            return found;
        }
    }
}

fn word_is(sql: &[u8], start: usize, end: usize, word: &[u8]) -> bool {
    sql.get(start..end)
        .is_some_and(|w| w.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str, want: Option<IdleSet>) {
        assert_eq!(session_wait_timeout(sql.as_bytes()), want, "{sql}");
    }

    #[test]
    fn session_assignments_with_literal_values() {
        use IdleSet::*;
        check("SET wait_timeout=1", Some(Secs(1)));
        check("set session wait_timeout = 20", Some(Secs(20)));
        check("SET LOCAL wait_timeout := 7", Some(Secs(7)));
        check("SET @@wait_timeout=5", Some(Secs(5)));
        check("SET @@session.wait_timeout=5", Some(Secs(5)));
        check("SET @@local.WAIT_TIMEOUT=5", Some(Secs(5)));
        check("SET wait_timeout=0", Some(Secs(1)));
        check("SET wait_timeout=99999999999", Some(Secs(WAIT_TIMEOUT_MAX)));
        check("SET wait_timeout=DEFAULT", Some(Default));
        check("SET NAMES utf8, wait_timeout=9, sql_mode=''", Some(Secs(9)));
        check("SET wait_timeout=9, wait_timeout=10", Some(Secs(10)));
        check(
            "SET sql_mode=CONCAT(@@sql_mode, ',X'), wait_timeout = 4",
            Some(Secs(4)),
        );
    }

    #[test]
    fn other_assignments_are_not_ours() {
        check("SET GLOBAL wait_timeout=1", None);
        check("SET @@global.wait_timeout=1", None);
        check("SET SESSION sql_mode='', GLOBAL wait_timeout=1", None);
        check("SET interactive_timeout=1", None);
        check("SET @wait_timeout=1", None);
        check("SET wait_timeout=1+1", None);
        check("SET wait_timeout=@x", None);
        check("SELECT 1", None);
        check("SET net_read_timeout=1", None);
    }
}
