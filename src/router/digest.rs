//! The statement digest: the normalized text that keys the verdict cache and the stats.
//!
//! Built token by token during the classifier's single pass. Literals (numbers, strings,
//! `X'..'`, `0x..`, `b'..'`, `?`) become `?`; whitespace collapses to one space; ordinary
//! comments vanish (the lexer never yields them) while `/*! */` bodies stay as code; keywords
//! are upper-cased and identifiers keep their case; `IN (?, ?, ?)` becomes `IN (...)`.
//! Spacing is canonical: no space before `,` `)` `.`, none after `(` `.`, and none between a
//! function name and its `(` when they touch in the input (`COUNT(*)`, but `VALUES (`).

use super::keywords::Kw;
use super::lexer::{Token, TokenKind};

/// An `IN (` list being watched: collapse it if it holds only literals.
#[derive(Clone, Copy)]
struct InList {
    /// Digest length just after the `(`.
    open_at: usize,
    literals: usize,
}

/// Accumulates the digest of one text (all its statements).
pub struct Digest {
    out: String,
    prev_plain_word: bool,
    prev_at: bool,
    after_in: bool,
    in_list: Option<InList>,
}

impl Digest {
    pub fn with_capacity(n: usize) -> Self {
        Digest {
            out: String::with_capacity(n),
            prev_plain_word: false,
            prev_at: false,
            after_in: false,
            in_list: None,
        }
    }

    /// Separates two statements of a multi-statement text.
    pub fn statement_break(&mut self) {
        if !self.out.is_empty() {
            self.out.push(';');
        }
        self.in_list = None;
        self.after_in = false;
        self.prev_plain_word = false;
        self.prev_at = false;
    }

    /// Appends one token. `upper` says the word is a keyword to upper-case.
    pub fn push(&mut self, src: &[u8], tok: &Token, kw: Kw, upper: bool) {
        let bytes = src.get(tok.start..tok.end).unwrap_or_default();
        let literal = matches!(
            tok.kind,
            TokenKind::Str | TokenKind::Number | TokenKind::Placeholder
        );
        let punct = |p: &[u8]| tok.kind == TokenKind::Punct && bytes == p;

        if let Some(list) = self.in_list.as_mut() {
            if literal {
                list.literals += 1;
            } else if punct(b")") {
                let list = *list;
                self.in_list = None;
                if list.literals > 0 {
                    self.out.truncate(list.open_at);
                    self.out.push_str("...)");
                    self.after_tok(false, false, false);
                    return;
                }
            } else if !(punct(b",") || punct(b"-") || punct(b"+")) {
                self.in_list = None;
            }
        }

        let is_at = punct(b"@");
        let space = match self.out.as_bytes().last() {
            None | Some(b'(' | b'.' | b' ') => false,
            Some(_) if punct(b",") || punct(b")") || punct(b".") => false,
            Some(_) if punct(b"(") && tok.joined && self.prev_plain_word => false,
            Some(_) if tok.joined && (is_at || self.prev_at) => false,
            Some(_) => true,
        };
        if space {
            self.out.push(' ');
        }
        match tok.kind {
            TokenKind::Str | TokenKind::Number | TokenKind::Placeholder => self.out.push('?'),
            TokenKind::Unterminated => self.out.push('?'),
            TokenKind::Word if upper => {
                for &b in bytes {
                    self.out.push(char::from(b.to_ascii_uppercase()));
                }
            }
            _ => match std::str::from_utf8(bytes) {
                Ok(text) => self.out.push_str(text),
                Err(_) => self.out.push_str(&String::from_utf8_lossy(bytes)),
            },
        }
        if punct(b"(") && self.after_in {
            self.in_list = Some(InList {
                open_at: self.out.len(),
                literals: 0,
            });
        }
        let plain_word =
            matches!(tok.kind, TokenKind::QuotedIdent) || (tok.kind == TokenKind::Word && !upper);
        self.after_tok(plain_word, is_at, kw == Kw::In);
    }

    fn after_tok(&mut self, plain_word: bool, at: bool, after_in: bool) {
        self.prev_plain_word = plain_word;
        self.prev_at = at;
        self.after_in = after_in;
    }

    pub fn finish(self) -> String {
        self.out
    }
}
