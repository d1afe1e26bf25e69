//! Reads an HAProxy configuration into sections of directives, as HAProxy
//! itself splits it: a line is words separated by blanks, `#` starts a
//! comment, `\` escapes one character (`\r`, `\n`, `\t` are control
//! characters), `"…"` and `'…'` quote (adjacent
//! quoted and bare parts make one word, `${VAR}` stays as written). A line
//! whose first word is a section keyword (`global`, `defaults`, `frontend`,
//! `backend`, `listen`, …) opens a section; every other line belongs to the
//! section above it. Nothing is interpreted here: `map.rs` decides what the
//! directives mean.

use super::ImportError;

/// Keywords that open a section (HAProxy 2.x "configuration.txt", section 2).
const SECTION_KEYWORDS: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "userlist",
    "peers",
    "resolvers",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
    "crt-store",
    "traces",
];

/// What a section is; the ones sqlproxy maps are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionKind {
    Global,
    Defaults,
    Frontend,
    Backend,
    Listen,
    /// userlist, peers, resolvers...: listed as not mapped.
    Other(String),
}

/// One configuration line: its number (from 1) and its words, unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub line: usize,
    pub words: Vec<String>,
}

impl Directive {
    /// The first word (the keyword).
    pub fn keyword(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    /// The word at `i`, if any.
    pub fn word(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }

    /// The words from `i` on, joined by a space (for comments).
    pub fn text(&self) -> String {
        self.words.join(" ")
    }

    /// Does the line start with these words (ASCII case-insensitive)?
    pub fn starts_with(&self, words: &[&str]) -> bool {
        words.len() <= self.words.len()
            && words
                .iter()
                .zip(&self.words)
                .all(|(w, have)| have.eq_ignore_ascii_case(w))
    }
}

/// A section header and the directives under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: SectionKind,
    /// Required for frontend, backend and listen; optional for defaults.
    pub name: Option<String>,
    /// The header's own words after the name (`listen db :3306` binds there).
    pub args: Vec<String>,
    pub line: usize,
    pub directives: Vec<Directive>,
}

impl Section {
    /// The first directive starting with `words`.
    pub fn find(&self, words: &[&str]) -> Option<&Directive> {
        self.directives.iter().find(|d| d.starts_with(words))
    }

    /// Every directive starting with `words`.
    pub fn all<'a>(&'a self, words: &'a [&'a str]) -> impl Iterator<Item = &'a Directive> + 'a {
        self.directives.iter().filter(move |d| d.starts_with(words))
    }

    /// A proxy section (frontend, backend, listen).
    pub fn is_proxy(&self) -> bool {
        matches!(
            self.kind,
            SectionKind::Frontend | SectionKind::Backend | SectionKind::Listen
        )
    }

    /// `global`, `frontend web`...: how the section reads in comments.
    pub fn title(&self) -> String {
        let kind = match &self.kind {
            SectionKind::Global => "global",
            SectionKind::Defaults => "defaults",
            SectionKind::Frontend => "frontend",
            SectionKind::Backend => "backend",
            SectionKind::Listen => "listen",
            SectionKind::Other(k) => k.as_str(),
        };
        match &self.name {
            Some(n) => format!("{kind} {n}"),
            None => kind.to_string(),
        }
    }
}

/// A whole configuration, sections in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HaproxyConfig {
    pub sections: Vec<Section>,
}

impl HaproxyConfig {
    /// The `defaults` section in force for the section at `index`: the last
    /// one above it (HAProxy's rule when defaults are not named in `from`).
    pub fn defaults_for(&self, index: usize) -> Option<&Section> {
        self.sections[..index.min(self.sections.len())]
            .iter()
            .rev()
            .find(|s| s.kind == SectionKind::Defaults)
    }

    pub fn global(&self) -> Option<&Section> {
        self.sections.iter().find(|s| s.kind == SectionKind::Global)
    }

    /// The backend (or listen) called `name`, with its index.
    pub fn backend(&self, name: &str) -> Option<(usize, &Section)> {
        self.sections.iter().enumerate().find(|(_, s)| {
            matches!(s.kind, SectionKind::Backend | SectionKind::Listen)
                && s.name.as_deref() == Some(name)
        })
    }
}

/// Parses the whole text; the error names the line.
pub fn parse(text: &str) -> Result<HaproxyConfig, ImportError> {
    let mut config = HaproxyConfig::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let words = split_words(raw, line)?;
        let Some(first) = words.first() else { continue };
        let keyword = first.to_ascii_lowercase();
        if SECTION_KEYWORDS.contains(&keyword.as_str()) {
            config.sections.push(section(keyword, words, line)?);
            continue;
        }
        match config.sections.last_mut() {
            Some(section) => section.directives.push(Directive { line, words }),
            None => {
                return Err(ImportError::OutsideSection {
                    line,
                    keyword: first.clone(),
                })
            }
        }
    }
    Ok(config)
}

fn section(keyword: String, words: Vec<String>, line: usize) -> Result<Section, ImportError> {
    let kind = match keyword.as_str() {
        "global" => SectionKind::Global,
        "defaults" => SectionKind::Defaults,
        "frontend" => SectionKind::Frontend,
        "backend" => SectionKind::Backend,
        "listen" => SectionKind::Listen,
        _ => SectionKind::Other(keyword.clone()),
    };
    let mut rest = words.into_iter().skip(1);
    let name = rest.next();
    let proxy = matches!(
        kind,
        SectionKind::Frontend | SectionKind::Backend | SectionKind::Listen
    );
    if proxy && name.is_none() {
        return Err(ImportError::MissingName {
            line,
            section: keyword,
        });
    }
    Ok(Section {
        kind,
        name,
        args: rest.collect(),
        line,
        directives: Vec::new(),
    })
}

/// One line's words with quotes and escapes resolved; comments dropped.
fn split_words(raw: &str, line: usize) -> Result<Vec<String>, ImportError> {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Double,
        Single,
    }
    let mut words = Vec::new();
    let mut word = String::new();
    // A word may be an empty quoted string (`""`), so "in a word" is tracked apart.
    let mut in_word = false;
    let mut quote = Quote::None;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match (&quote, c) {
            (Quote::Single, '\'') => quote = Quote::None,
            (Quote::Single, c) => word.push(c),
            (_, '\\') => match chars.next() {
                Some(escaped) => {
                    word.push(match escaped {
                        'r' => '\r',
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                    in_word = true;
                }
                // A trailing backslash: HAProxy does not join lines; keep it.
                None => word.push('\\'),
            },
            (Quote::Double, '"') => quote = Quote::None,
            (Quote::Double, c) => word.push(c),
            (Quote::None, '"') => {
                quote = Quote::Double;
                in_word = true;
            }
            (Quote::None, '\'') => {
                quote = Quote::Single;
                in_word = true;
            }
            (Quote::None, '#') => break,
            (Quote::None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (Quote::None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote != Quote::None {
        return Err(ImportError::UnterminatedQuote { line });
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        split_words(s, 1).unwrap()
    }

    #[test]
    fn lines_split_like_haproxy() {
        assert_eq!(
            words("  server cn1 10.0.0.1:3306   weight 256 check"),
            ["server", "cn1", "10.0.0.1:3306", "weight", "256", "check"]
        );
        assert_eq!(
            words("bind 127.0.0.1:\"${PORT}\" # the port"),
            ["bind", "127.0.0.1:${PORT}"]
        );
        assert_eq!(
            words(r"option httpchk GET / HTTP/1.1\r\nHost:\ shop"),
            ["option", "httpchk", "GET", "/", "HTTP/1.1\r\nHost: shop"]
        );
        assert_eq!(
            words("stats auth 'adm in':\"p#w\""),
            ["stats", "auth", "adm in:p#w"]
        );
        assert_eq!(words("errorfile 503 \"\""), ["errorfile", "503", ""]);
        assert!(words("   # only a comment").is_empty());
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("global\n  log \"/dev/log\n").unwrap_err();
        assert!(
            matches!(e, ImportError::UnterminatedQuote { line: 2 }),
            "{e}"
        );
        let e = parse("\nmaxconn 10\nglobal\n").unwrap_err();
        assert!(
            matches!(&e, ImportError::OutsideSection { line: 2, keyword } if keyword == "maxconn"),
            "{e}"
        );
        let e = parse("backend\n").unwrap_err();
        assert!(matches!(e, ImportError::MissingName { line: 1, .. }), "{e}");
    }

    #[test]
    fn sections_keep_their_directives_and_defaults() {
        let c = parse(
            "global\n maxconn 10\ndefaults\n mode tcp\nlisten db 0.0.0.0:3306\n server a 1.2.3.4:3306\n\
             defaults web\n mode http\nbackend b\n server w 1.2.3.5:80\n",
        )
        .unwrap();
        assert_eq!(c.sections.len(), 5);
        assert_eq!(c.sections[2].kind, SectionKind::Listen);
        assert_eq!(c.sections[2].args, ["0.0.0.0:3306"]);
        assert_eq!(c.sections[2].find(&["server"]).map(|d| d.line), Some(6));
        assert_eq!(
            c.defaults_for(2)
                .and_then(|d| d.find(&["mode"]))
                .map(|d| d.text()),
            Some("mode tcp".into())
        );
        assert_eq!(
            c.defaults_for(4).and_then(|d| d.name.clone()),
            Some("web".into())
        );
        assert_eq!(c.backend("b").map(|(i, _)| i), Some(4));
        assert_eq!(c.global().map(|g| g.directives.len()), Some(1));
    }
}
