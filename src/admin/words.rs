//! Splits one admin statement into words: bare words (matched without
//! regard to case), quoted strings ('x', "x", `x`), and single punctuation
//! characters. A trailing `;` and surrounding blanks are dropped. This is all
//! the grammar the admin commands need; anything richer is refused.

/// One word of an admin statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Word {
    /// Letters, digits, `_`, `@`, `.`, `$`, `-` as written.
    Bare(String),
    /// The inside of a quoted string.
    Quoted(String),
    /// Any other single character (`,`, `(`, `)`, `=`...).
    Punct(char),
}

/// A quote was not closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unterminated;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    pub words: Vec<Word>,
}

impl Words {
    pub fn split(sql: &str) -> Result<Words, Unterminated> {
        let mut words = Vec::new();
        let mut chars = sql.trim().trim_end_matches(';').chars().peekable();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
            } else if c == '\'' || c == '"' || c == '`' {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(Unterminated),
                        Some(q) if q == c => {
                            // A doubled quote is the quote itself.
                            if chars.peek() == Some(&c) {
                                chars.next();
                                s.push(c);
                            } else {
                                break;
                            }
                        }
                        Some(ch) => s.push(ch),
                    }
                }
                words.push(Word::Quoted(s));
            } else if is_bare(c) {
                let mut s = String::new();
                while let Some(&ch) = chars.peek().filter(|&&ch| is_bare(ch)) {
                    s.push(ch);
                    chars.next();
                }
                words.push(Word::Bare(s));
            } else {
                chars.next();
                words.push(Word::Punct(c));
            }
        }
        Ok(Words { words })
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The statement starts with these bare words (any case).
    pub fn starts_with(&self, keywords: &[&str]) -> bool {
        keywords.len() <= self.words.len()
            && keywords
                .iter()
                .zip(&self.words)
                .all(|(k, w)| matches!(w, Word::Bare(b) if b.eq_ignore_ascii_case(k)))
    }

    /// Word `i` is the bare keyword `k` (any case).
    pub fn is(&self, i: usize, k: &str) -> bool {
        matches!(self.words.get(i), Some(Word::Bare(b)) if b.eq_ignore_ascii_case(k))
    }

    /// Word `i` as a name: quoted, or bare.
    pub fn name(&self, i: usize) -> Option<&str> {
        match self.words.get(i)? {
            Word::Bare(s) | Word::Quoted(s) => Some(s),
            Word::Punct(_) => None,
        }
    }

    /// Word `i` as a non-negative integer.
    pub fn number(&self, i: usize) -> Option<u64> {
        match self.words.get(i)? {
            Word::Bare(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// The statement, normalised, for error messages.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for w in &self.words {
            if !out.is_empty() {
                out.push(' ');
            }
            match w {
                Word::Bare(s) => out.push_str(s),
                Word::Quoted(s) => {
                    out.push('\'');
                    out.push_str(s);
                    out.push('\'');
                }
                Word::Punct(c) => out.push(*c),
            }
        }
        out
    }
}

fn is_bare(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '@' | '.' | '$' | '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_quotes_and_punctuation() {
        let w = Words::split("  set BACKEND 'c''n2' weight 3 ;").unwrap();
        assert_eq!(
            w.words,
            vec![
                Word::Bare("set".into()),
                Word::Bare("BACKEND".into()),
                Word::Quoted("c'n2".into()),
                Word::Bare("weight".into()),
                Word::Bare("3".into()),
            ]
        );
        assert!(w.starts_with(&["SET", "backend"]));
        assert!(!w.starts_with(&["SET", "backend", "x", "y", "z", "q"]));
        assert_eq!(w.name(2), Some("c'n2"));
        assert_eq!(w.number(4), Some(3));
        assert_eq!(w.number(3), None);
        let w = Words::split("select @@version_comment, VERSION() limit 1").unwrap();
        assert_eq!(w.words[2], Word::Punct(','));
        assert_eq!(w.words[4], Word::Punct('('));
        assert_eq!(Words::split("SHOW 'x"), Err(Unterminated));
        assert!(Words::split(" ; ").unwrap().is_empty());
    }
}
