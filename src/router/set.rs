//! What a SET statement assigns: user variables, session or global system variables.
//!
//! SET is the statement whose kind depends on every assignment, not on its first words, so
//! it gets a small state machine fed with each token at the top level of the statement. The
//! scope keyword (`GLOBAL`, `SESSION`, `LOCAL`) carries over to later assignments that name
//! none, as in the server. `SET STATEMENT ... FOR` is detected here; the classifier then
//! restarts its scan on the inner statement.

use super::classify::StmtKind;
use super::keywords::Kw;
use super::lexer::{Token, TokenKind};
use super::stmt_scan::sysvar_name;

/// Assignment-by-assignment scan of one SET statement.
pub struct SetScan {
    at_target: bool,
    scope_global: bool,
    user: bool,
    global: bool,
    statement_prefix: bool,
}

impl SetScan {
    pub fn new() -> Self {
        SetScan {
            at_target: true,
            scope_global: false,
            user: false,
            global: false,
            statement_prefix: false,
        }
    }

    /// Inside the `var=value, ...` list of `SET STATEMENT`, before its `FOR`.
    pub fn is_statement_prefix(&self) -> bool {
        self.statement_prefix
    }

    /// One token of the SET statement after the `SET` keyword. `top` is false inside
    /// parentheses, where a comma does not start a new assignment.
    pub fn feed(&mut self, src: &[u8], tok: &Token, kw: Kw, top: bool) {
        if !self.at_target {
            let comma = tok.kind == TokenKind::Punct && src.get(tok.start..tok.end) == Some(b",");
            if top && comma {
                self.at_target = true;
            }
            return;
        }
        match (tok.kind, kw) {
            (TokenKind::Word, Kw::Session | Kw::Local) => {
                self.scope_global = false;
                return;
            }
            (TokenKind::Word, Kw::Global) => {
                self.scope_global = true;
                return;
            }
            (TokenKind::Word, Kw::Statement) if !self.statement_prefix => {
                self.statement_prefix = true;
            }
            (TokenKind::Word, Kw::Password | Kw::Role | Kw::Default) => self.global = true,
            (TokenKind::UserVar, _) => self.user = true,
            (TokenKind::SysVar, _) => {
                let raw = src.get(tok.start..tok.end).unwrap_or_default();
                let scoped_global = raw
                    .get(2..9)
                    .is_some_and(|s| s.eq_ignore_ascii_case(b"global."));
                let unscoped = sysvar_name(raw).len() + 2 == raw.len();
                self.global |= scoped_global || (unscoped && self.scope_global);
            }
            _ => self.global |= self.scope_global,
        }
        self.at_target = false;
    }

    /// The kind of the whole SET, given its first tokens and token count.
    pub fn kind(&self, src: &[u8], head: &[(Token, Kw)], ntok: usize) -> StmtKind {
        if self.user {
            StmtKind::SetUserVar
        } else if self.global {
            StmtKind::SetGlobal
        } else if let Some(on) = autocommit(src, head, ntok) {
            StmtKind::SetAutocommit(on)
        } else {
            StmtKind::SetSession
        }
    }
}

/// `SET [SESSION|LOCAL] autocommit = v` or `SET @@[session.|local.]autocommit = v`, alone.
fn autocommit(src: &[u8], head: &[(Token, Kw)], ntok: usize) -> Option<bool> {
    let text = |i: usize| {
        head.get(i)
            .and_then(|(t, _)| src.get(t.start..t.end))
            .unwrap_or_default()
    };
    let scoped = matches!(head.get(1), Some((_, Kw::Session | Kw::Local)));
    let at = 1 + usize::from(scoped);
    if ntok != at + 3 {
        return None;
    }
    let (target, _) = head.get(at)?;
    let name_ok = match target.kind {
        TokenKind::Word => text(at).eq_ignore_ascii_case(b"autocommit"),
        TokenKind::SysVar if !scoped => {
            let raw = text(at);
            let name = sysvar_name(raw);
            let scope = raw.get(2..raw.len() - name.len()).unwrap_or_default();
            name.eq_ignore_ascii_case(b"autocommit")
                && (scope.is_empty()
                    || scope.eq_ignore_ascii_case(b"session.")
                    || scope.eq_ignore_ascii_case(b"local."))
        }
        _ => false,
    };
    if !name_ok || !matches!(text(at + 1), b"=" | b":=") {
        return None;
    }
    let value = text(at + 2);
    let is = |v: &[u8]| value.eq_ignore_ascii_case(v);
    if is(b"1") || is(b"on") || is(b"true") {
        Some(true)
    } else if is(b"0") || is(b"off") || is(b"false") {
        Some(false)
    } else {
        None
    }
}
