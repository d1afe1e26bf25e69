//! Token scan over the raw bytes of one COM_QUERY / COM_STMT_PREPARE text.
//!
//! The lexer never allocates and never fails: it yields [`Token`]s that point into the input by
//! byte offsets, and anything it cannot finish (an unterminated quote or comment) becomes one
//! [`TokenKind::Unterminated`] token covering the rest of the input, after which it stops.
//! Input may be any bytes (latin1, broken UTF-8, NULs): bytes >= 0x80 are identifier bytes.
//!
//! What it knows of MariaDB's lexical rules:
//! * `'..'` and `".."` strings with backslash escapes and doubled quotes (backslash escapes
//!   can be turned off for a session whose sql_mode has `NO_BACKSLASH_ESCAPES`); `` `..` `` identifiers with doubled
//!   backticks; `X'..'`, `B'..'`, `N'..'`, `0x..`, `0b..` literals; numbers with fraction and
//!   exponent; identifiers may start with a digit (`1t`).
//! * Comments: `-- ` (dashes then a space or control byte), `#` to end of line, `/* */`.
//!   `/*!NNNNN ...*/` and `/*M!NNNNNN ...*/` are executed by the server, so their body is lexed
//!   as code (version digits skipped). `/*+ ... */` optimizer hints are plain comments here.
//! * A comment containing `sqlproxy:master` or `sqlproxy:replica` sets [`Lexer::hint`]
//!   (master wins if both appear).
//! * `@x`, `@'x'`, `` @`x` `` are user variables, `@@x` / `@@session.x` system variables; an
//!   `@` glued to a preceding string or word (`'u'@'host'`, `root@localhost`) is punctuation.

use super::keywords;

/// A routing hint found in a comment: `/* sqlproxy:master */` or `/* sqlproxy:replica */`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hint {
    Master,
    Replica,
}

/// What a token is. The bytes are `src[start..end]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A bare word: keyword or identifier.
    Word,
    /// A backtick-quoted identifier, backticks included.
    QuotedIdent,
    /// A `'..'` or `".."` string (with an `N`/`X`/`B` prefix if any).
    Str,
    /// A decimal number, or a `0x..` / `0b..` literal.
    Number,
    /// A `?` placeholder.
    Placeholder,
    /// `@name`, `@'name'`, `` @`name` ``.
    UserVar,
    /// `@@name`, `@@session.name`, `@@global.name`, `@@local.name`.
    SysVar,
    /// An operator or punctuation byte (`(`, `,`, `=`), or a multi-byte operator (`:=`, `<=>`).
    Punct,
    /// `;` outside quotes and comments.
    Semicolon,
    /// An unterminated quote or comment: the rest of the input. The lexer stops after it.
    Unterminated,
}

/// One token: its kind, its byte span, and two facts about its neighbourhood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
    /// No whitespace or comment between the previous token and this one.
    pub joined: bool,
    /// The next byte after optional spaces is `(` (a function call when the token is a word).
    pub call: bool,
}

/// Operators of more than one byte, longest first where they share a prefix.
const MULTI_OPS: &[&[u8]] = &[
    b"<=>", b"->>", b":=", b"<=", b">=", b"<>", b"!=", b"->", b"||", b"&&", b"<<", b">>",
];

/// Digits after `/*!` that form a MySQL version number (`/*!40101`).
const EXEC_VERSION_DIGITS: usize = 5;
/// Digits after `/*M!` that form a MariaDB version number (`/*M!100100`).
const MARIADB_VERSION_DIGITS: usize = 6;

/// Iterator over the tokens of `src`.
pub struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    /// Inside a `/*! ... */` body: the next `*/` closes it and is not a token.
    in_exec: bool,
    hint: Option<Hint>,
    /// End of the previous token, to compute `joined`.
    prev_start: usize,
    prev_end: usize,
    prev_kind: Option<TokenKind>,
    done: bool,
    /// A backslash escapes the next byte in strings (off under `NO_BACKSLASH_ESCAPES`).
    backslash_escapes: bool,
}

/// True for bytes that may appear in a bare identifier.
pub fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

impl<'a> Lexer<'a> {
    /// A lexer for the default sql_mode (backslash escapes on).
    pub fn new(src: &'a [u8]) -> Self {
        Self::with_backslash_escapes(src, true)
    }

    /// A lexer with backslash escapes in strings on or off.
    pub fn with_backslash_escapes(src: &'a [u8], backslash_escapes: bool) -> Self {
        Lexer {
            src,
            pos: 0,
            in_exec: false,
            hint: None,
            prev_start: 0,
            prev_end: usize::MAX,
            prev_kind: None,
            done: false,
            backslash_escapes,
        }
    }

    /// The routing hint seen in comments so far (`Master` if any comment asked for it).
    pub fn hint(&self) -> Option<Hint> {
        self.hint
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.src.get(i).copied()
    }

    /// Skips whitespace and comments. Returns false if a comment is unterminated.
    fn skip_trivia(&mut self) -> bool {
        while let Some(b) = self.at(self.pos) {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => self.pos += 1,
                b'#' => self.skip_line_comment(self.pos + 1),
                b'-' if self.at(self.pos + 1) == Some(b'-')
                    && self.at(self.pos + 2).is_none_or(|c| c <= b' ') =>
                {
                    self.skip_line_comment(self.pos + 2)
                }
                b'*' if self.in_exec && self.at(self.pos + 1) == Some(b'/') => {
                    self.in_exec = false;
                    self.pos += 2;
                }
                b'/' if self.at(self.pos + 1) == Some(b'*') => {
                    if !self.skip_block_comment() {
                        return false;
                    }
                }
                _ => return true,
            }
        }
        true
    }

    fn skip_line_comment(&mut self, body: usize) {
        let end = self.src[body.min(self.src.len())..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(self.src.len(), |p| body + p);
        self.note_hint(body, end);
        self.pos = end;
    }

    /// At `/*`: enters an executable comment or skips an ordinary one.
    fn skip_block_comment(&mut self) -> bool {
        let open = self.pos;
        let (exec, digits_at, max_digits) = match (self.at(open + 2), self.at(open + 3)) {
            (Some(b'!'), _) => (true, open + 3, EXEC_VERSION_DIGITS),
            (Some(b'M'), Some(b'!')) => (true, open + 4, MARIADB_VERSION_DIGITS),
            _ => (false, open + 2, 0),
        };
        if exec && !self.in_exec {
            let digits = self.src[digits_at.min(self.src.len())..]
                .iter()
                .take(max_digits)
                .take_while(|c| c.is_ascii_digit())
                .count();
            self.in_exec = true;
            self.pos = digits_at + digits;
            // The body must be closed somewhere, or the statement is unterminated.
            return find(self.src, self.pos, b"*/").is_some();
        }
        match find(self.src, open + 2, b"*/") {
            Some(close) => {
                self.note_hint(open + 2, close);
                self.pos = close + 2;
                true
            }
            None => false,
        }
    }

    fn note_hint(&mut self, start: usize, end: usize) {
        let body = self.src.get(start..end).unwrap_or_default();
        if let Some(h) = find_hint(body) {
            // A master hint wins over a replica hint, wherever each appears.
            if self.hint != Some(Hint::Master) {
                self.hint = Some(h);
            }
        }
    }

    /// Scans a quoted run starting at the opening quote `q`; returns the end after the closing
    /// quote, or None if unterminated.
    fn quoted_end(&self, open: usize, q: u8) -> Option<usize> {
        let mut i = open + 1;
        loop {
            let b = self.at(i)?;
            if b == b'\\' && q != b'`' && self.backslash_escapes {
                i += 2;
            } else if b == q {
                if self.at(i + 1) == Some(q) {
                    i += 2;
                } else {
                    return Some(i + 1);
                }
            } else {
                i += 1;
            }
        }
    }

    fn ident_end(&self, from: usize) -> usize {
        let mut i = from;
        while self.at(i).is_some_and(is_ident_byte) {
            i += 1;
        }
        i
    }

    /// At a digit (or `.digit`): a number, a `0x`/`0b` literal, or an identifier such as `1t`.
    fn number_or_word(&self, start: usize) -> (TokenKind, usize) {
        let src = self.src;
        let digits = |mut i: usize, ok: fn(&u8) -> bool| {
            while src.get(i).is_some_and(ok) {
                i += 1;
            }
            i
        };
        let word_end = self.ident_end(start);
        if self.at(start) == Some(b'0') {
            let radix: Option<fn(&u8) -> bool> = match self.at(start + 1) {
                Some(b'x') => Some(u8::is_ascii_hexdigit),
                Some(b'b') => Some(|c: &u8| *c == b'0' || *c == b'1'),
                _ => None,
            };
            if let Some(ok) = radix {
                let end = digits(start + 2, ok);
                if end > start + 2 && end == word_end {
                    return (TokenKind::Number, end);
                }
            }
        }
        let mut end = digits(start, u8::is_ascii_digit);
        if end < word_end {
            // Letters follow the digits: an exponent, or an identifier like `1t`.
            if matches!(self.at(end), Some(b'e' | b'E')) {
                let sign = usize::from(matches!(self.at(end + 1), Some(b'+' | b'-')));
                let exp = digits(end + 1 + sign, u8::is_ascii_digit);
                if exp > end + 1 + sign && !self.at(exp).is_some_and(is_ident_byte) {
                    return (TokenKind::Number, exp);
                }
            }
            return (TokenKind::Word, word_end);
        }
        if self.at(end) == Some(b'.') {
            end = digits(end + 1, u8::is_ascii_digit);
        }
        if matches!(self.at(end), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.at(end + 1), Some(b'+' | b'-')));
            let exp = digits(end + 1 + sign, u8::is_ascii_digit);
            if exp > end + 1 + sign {
                end = exp;
            }
        }
        (TokenKind::Number, end)
    }

    /// At `@`: a user or system variable, or punctuation (`'u'@'host'`).
    fn at_sign(&self, start: usize, joined: bool) -> (TokenKind, usize) {
        let glued_to_name = joined
            && match self.prev_kind {
                Some(TokenKind::Str | TokenKind::QuotedIdent) => true,
                // `root@localhost`, but `SELECT@x` reads a variable.
                Some(TokenKind::Word) => self
                    .src
                    .get(self.prev_start..self.prev_end)
                    .is_some_and(|w| keywords::lookup_ci(w).is_none()),
                _ => false,
            };
        if glued_to_name {
            return (TokenKind::Punct, start + 1);
        }
        if self.at(start + 1) == Some(b'@') {
            let mut end = start + 2;
            while self.at(end).is_some_and(|c| is_ident_byte(c) || c == b'.') {
                end += 1;
            }
            if end == start + 2 {
                return (TokenKind::Punct, start + 2);
            }
            return (TokenKind::SysVar, end);
        }
        match self.at(start + 1) {
            Some(q @ (b'\'' | b'"' | b'`')) => match self.quoted_end(start + 1, q) {
                Some(end) => (TokenKind::UserVar, end),
                None => (TokenKind::Unterminated, self.src.len()),
            },
            Some(c) if is_ident_byte(c) || c == b'.' => {
                let mut end = start + 1;
                while self.at(end).is_some_and(|c| is_ident_byte(c) || c == b'.') {
                    end += 1;
                }
                (TokenKind::UserVar, end)
            }
            _ => (TokenKind::Punct, start + 1),
        }
    }

    fn next_paren(&self, from: usize) -> bool {
        self.src[from.min(self.src.len())..]
            .iter()
            .find(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
            == Some(&b'(')
    }

    fn scan(&mut self, start: usize, joined: bool) -> (TokenKind, usize) {
        let Some(b) = self.at(start) else {
            return (TokenKind::Unterminated, start);
        };
        let quoted =
            |this: &Self, open: usize, q: u8, kind: TokenKind| match this.quoted_end(open, q) {
                Some(end) => (kind, end),
                None => (TokenKind::Unterminated, this.src.len()),
            };
        match b {
            b'\'' | b'"' => quoted(self, start, b, TokenKind::Str),
            b'`' => quoted(self, start, b'`', TokenKind::QuotedIdent),
            b'x' | b'X' | b'b' | b'B' | b'n' | b'N' if self.at(start + 1) == Some(b'\'') => {
                quoted(self, start + 1, b'\'', TokenKind::Str)
            }
            b'0'..=b'9' => self.number_or_word(start),
            b'.' if self.at(start + 1).is_some_and(|c| c.is_ascii_digit())
                && !(joined
                    && matches!(
                        self.prev_kind,
                        Some(TokenKind::Word | TokenKind::QuotedIdent)
                    )) =>
            {
                self.number_or_word(start + 1)
            }
            b'?' => (TokenKind::Placeholder, start + 1),
            b';' => (TokenKind::Semicolon, start + 1),
            b'@' => self.at_sign(start, joined),
            c if is_ident_byte(c) => (TokenKind::Word, self.ident_end(start)),
            b'<' | b'>' | b'-' | b'!' | b':' | b'|' | b'&' => {
                let rest = self.src.get(start..).unwrap_or_default();
                let len = MULTI_OPS
                    .iter()
                    .find(|op| rest.starts_with(op))
                    .map_or(1, |op| op.len());
                (TokenKind::Punct, start + len)
            }
            _ => (TokenKind::Punct, start + 1),
        }
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        if self.done {
            return None;
        }
        let before = self.pos;
        if !self.skip_trivia() {
            self.done = true;
            return Some(self.unterminated(before));
        }
        let start = self.pos;
        if start >= self.src.len() {
            self.done = true;
            if self.in_exec {
                // `/*!` without its `*/`: the server rejects it, so must we.
                return Some(self.unterminated(start));
            }
            return None;
        }
        let joined = start == before && self.prev_end == start;
        let (kind, end) = self.scan(start, joined);
        if kind == TokenKind::Unterminated {
            self.done = true;
            return Some(self.unterminated(start));
        }
        let end = end.clamp(start + 1, self.src.len());
        self.pos = end;
        self.prev_start = start;
        self.prev_end = end;
        self.prev_kind = Some(kind);
        let call = matches!(kind, TokenKind::Word | TokenKind::QuotedIdent) && self.next_paren(end);
        Some(Token {
            kind,
            start,
            end,
            joined,
            call,
        })
    }
}

impl Lexer<'_> {
    fn unterminated(&mut self, start: usize) -> Token {
        self.pos = self.src.len();
        Token {
            kind: TokenKind::Unterminated,
            start: start.min(self.src.len()),
            end: self.src.len(),
            joined: false,
            call: false,
        }
    }
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// Looks for `sqlproxy:master` / `sqlproxy:replica` (ASCII case-insensitive) in a comment body.
pub fn find_hint(body: &[u8]) -> Option<Hint> {
    const TAG: &[u8] = b"sqlproxy:";
    let mut found = None;
    let mut i = 0;
    while i + TAG.len() <= body.len() {
        if body[i..i + TAG.len()].eq_ignore_ascii_case(TAG) {
            let rest = &body[i + TAG.len()..];
            let starts =
                |w: &[u8]| rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w);
            if starts(b"master") {
                return Some(Hint::Master);
            } else if starts(b"replica") {
                found = Some(Hint::Replica);
            }
            i += TAG.len();
        } else {
            i += 1;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(TokenKind, String)> {
        Lexer::new(sql.as_bytes())
            .map(|t| (t.kind, sql[t.start..t.end].to_string()))
            .collect()
    }

    use TokenKind::*;

    #[test]
    fn literals_and_words() {
        assert_eq!(
            kinds("SELECT c FROM t WHERE id=1.5e3 AND x='a''b\\'c' AND y=0x1F AND z=X'ff' AND w=?"),
            vec![
                (Word, "SELECT".into()),
                (Word, "c".into()),
                (Word, "FROM".into()),
                (Word, "t".into()),
                (Word, "WHERE".into()),
                (Word, "id".into()),
                (Punct, "=".into()),
                (Number, "1.5e3".into()),
                (Word, "AND".into()),
                (Word, "x".into()),
                (Punct, "=".into()),
                (Str, "'a''b\\'c'".into()),
                (Word, "AND".into()),
                (Word, "y".into()),
                (Punct, "=".into()),
                (Number, "0x1F".into()),
                (Word, "AND".into()),
                (Word, "z".into()),
                (Punct, "=".into()),
                (Str, "X'ff'".into()),
                (Word, "AND".into()),
                (Word, "w".into()),
                (Punct, "=".into()),
                (Placeholder, "?".into()),
            ]
        );
    }

    #[test]
    fn identifiers_starting_with_digits_and_qualified_names() {
        assert_eq!(
            kinds("1t.5c `a``b`.c t.1"),
            vec![
                (Word, "1t".into()),
                (Punct, ".".into()),
                (Word, "5c".into()),
                (QuotedIdent, "`a``b`".into()),
                (Punct, ".".into()),
                (Word, "c".into()),
                (Word, "t".into()),
                (Punct, ".".into()),
                (Number, "1".into()),
            ]
        );
    }

    #[test]
    fn comments_are_skipped_and_executable_ones_lexed() {
        assert_eq!(
            kinds("-- x\n# y\n/* z */ SELECT /*!40101 1, */ /*M!100100 2 */ 3 --1"),
            vec![
                (Word, "SELECT".into()),
                (Number, "1".into()),
                (Punct, ",".into()),
                (Number, "2".into()),
                (Number, "3".into()),
                (Punct, "-".into()),
                (Punct, "-".into()),
                (Number, "1".into()),
            ]
        );
    }

    #[test]
    fn variables_and_user_at_host() {
        assert_eq!(
            kinds("@a:=@@session.x, 'u'@'%', root@localhost, @'q r', SELECT@b"),
            vec![
                (UserVar, "@a".into()),
                (Punct, ":=".into()),
                (SysVar, "@@session.x".into()),
                (Punct, ",".into()),
                (Str, "'u'".into()),
                (Punct, "@".into()),
                (Str, "'%'".into()),
                (Punct, ",".into()),
                (Word, "root".into()),
                (Punct, "@".into()),
                (Word, "localhost".into()),
                (Punct, ",".into()),
                (UserVar, "@'q r'".into()),
                (Punct, ",".into()),
                (Word, "SELECT".into()),
                (UserVar, "@b".into()),
            ]
        );
    }

    #[test]
    fn unterminated_input_ends_in_one_token() {
        for sql in [
            "SELECT 'abc",
            "SELECT `a",
            "SELECT /* x",
            "SELECT /*!40101 1",
            "SELECT @'x",
        ] {
            let toks: Vec<_> = Lexer::new(sql.as_bytes()).collect();
            assert_eq!(toks.last().map(|t| t.kind), Some(Unterminated), "{sql}");
        }
    }

    #[test]
    fn no_backslash_escapes_moves_the_string_end() {
        let sql = b"SELECT 'a\\'; DELETE FROM t; -- '";
        let on: Vec<_> = Lexer::new(sql).map(|t| t.kind).collect();
        assert_eq!(on, vec![Word, Str]);
        let off: Vec<_> = Lexer::with_backslash_escapes(sql, false)
            .map(|t| t.kind)
            .collect();
        assert_eq!(off, vec![Word, Str, Semicolon, Word, Word, Word, Semicolon]);
    }

    #[test]
    fn hints_and_calls() {
        let mut lx = Lexer::new(b"SELECT /* sqlproxy:replica */ NOW ()");
        let toks: Vec<_> = lx.by_ref().collect();
        assert_eq!(lx.hint(), Some(Hint::Replica));
        assert!(toks[1].call);
        assert!(!toks[0].call);
        assert_eq!(find_hint(b" SQLPROXY:Master "), Some(Hint::Master));
        assert_eq!(find_hint(b"sqlproxy:"), None);
    }
}
