//! Renders the imported config: TOML tables in the order of the shipped
//! `config/ha.toml`, each value with the comment saying which HAProxy line
//! it came from, then the list of HAProxy settings that were not mapped.
//! Values are written by the `toml` crate, so quoting is TOML's own.

/// One `key = value` line and the comment above it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub value: toml::Value,
    pub comment: Option<String>,
}

/// One `[table]` (or `[[array]]` element) with comments under its header.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// `mysql`, `nodes.cn1`, `http.timeouts`...
    pub name: String,
    /// `[[name]]` instead of `[name]`.
    pub array: bool,
    pub comments: Vec<String>,
    pub entries: Vec<Entry>,
}

impl Table {
    pub fn new(name: impl Into<String>) -> Table {
        Table {
            name: name.into(),
            array: false,
            comments: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// An element of an array of tables (`[[http.backends]]`).
    pub fn element(name: impl Into<String>) -> Table {
        Table {
            array: true,
            ..Table::new(name)
        }
    }

    pub fn comment(&mut self, text: impl Into<String>) -> &mut Table {
        self.comments.push(text.into());
        self
    }

    /// Adds `key = value`, with `comment` above it when not empty.
    pub fn set(
        &mut self,
        key: &str,
        value: impl Into<toml::Value>,
        comment: impl Into<String>,
    ) -> &mut Table {
        let comment = comment.into();
        self.entries.push(Entry {
            key: key.to_string(),
            value: value.into(),
            comment: (!comment.is_empty()).then_some(comment),
        });
        self
    }
}

/// An HAProxy setting (or part of one) that has no sqlproxy equivalent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    pub line: usize,
    /// The HAProxy text, e.g. `errorfile 503 /etc/haproxy/errors/503.http`.
    pub text: String,
    pub why: String,
}

/// Everything the import writes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Output {
    /// The file read, for the header.
    pub source: String,
    /// Said at the top, before any table (what was found, what to do next).
    pub notes: Vec<String>,
    pub tables: Vec<Table>,
    pub unmapped: Vec<Unmapped>,
}

/// The commented TOML text.
pub fn render(out: &Output) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "# sqlproxy config imported from {} by `sqlproxy import-haproxy` {}.\n",
        out.source,
        crate::cli::VERSION
    ));
    s.push_str("# Check it with `sqlproxy --check --config <this file>`; every key is\n");
    s.push_str("# explained in /etc/sqlproxy/ha.toml (config/ha.toml in the source).\n");
    for note in &out.notes {
        s.push_str(&format!("# {note}\n"));
    }
    for table in &out.tables {
        s.push('\n');
        if table.array {
            s.push_str(&format!("[[{}]]\n", table.name));
        } else {
            s.push_str(&format!("[{}]\n", table.name));
        }
        for c in &table.comments {
            s.push_str(&format!("# {c}\n"));
        }
        for e in &table.entries {
            if let Some(c) = &e.comment {
                s.push_str(&format!("# {c}\n"));
            }
            s.push_str(&format!("{} = {}\n", e.key, e.value));
        }
    }
    s.push_str("\n# HAProxy settings with no sqlproxy equivalent (not imported):\n");
    if out.unmapped.is_empty() {
        s.push_str("#   none\n");
    }
    for u in &out.unmapped {
        s.push_str(&format!(
            "#   line {}: {} -- {}\n",
            u.line,
            one_line(&u.text),
            u.why
        ));
    }
    s
}

/// Control characters (an httpchk version with `\r\n`) shown escaped in a comment.
fn one_line(text: &str) -> String {
    text.replace('\r', "\\r").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_as_toml_that_parses() {
        let mut mysql = Table::new("mysql");
        mysql
            .comment("from listen mariadb")
            .set("listen", "0.0.0.0:3306", "bind :3306 (line 3)");
        let mut wa1 = Table::element("http.backends");
        wa1.set("name", "wa1", "").set("weight", 1, "");
        let out = Output {
            source: "/etc/haproxy/haproxy.cfg".into(),
            notes: vec!["one note".into()],
            tables: vec![mysql, wa1],
            unmapped: vec![Unmapped {
                line: 9,
                text: "option httpchk GET / HTTP/1.1\r\nHost: x".into(),
                why: "because".into(),
            }],
        };
        let text = render(&out);
        assert!(text.contains("[mysql]\n# from listen mariadb\n# bind :3306 (line 3)\nlisten = \"0.0.0.0:3306\"\n"), "{text}");
        assert!(
            text.contains("[[http.backends]]\nname = \"wa1\"\nweight = 1\n"),
            "{text}"
        );
        assert!(
            text.contains("#   line 9: option httpchk GET / HTTP/1.1\\r\\nHost: x -- because"),
            "{text}"
        );
        let parsed: toml::Table = text.parse().unwrap();
        assert_eq!(parsed["mysql"]["listen"].as_str(), Some("0.0.0.0:3306"));
    }

    #[test]
    fn strings_are_quoted_by_toml() {
        let mut t = Table::new("users.shop");
        t.set("password", "a\"b\\c", "");
        let text = render(&Output {
            tables: vec![t],
            ..Output::default()
        });
        let parsed: toml::Table = text.parse().unwrap();
        assert_eq!(
            parsed["users"]["shop"]["password"].as_str(),
            Some("a\"b\\c")
        );
    }
}
