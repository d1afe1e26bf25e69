//! `SELECT @@var [, ...] [LIMIT n]` and `SELECT VERSION()`: what clients
//! ask on their own right after connecting (the `mariadb` CLI asks
//! `@@version_comment`, mysql_async `@@max_allowed_packet` and friends).
//! Known variables get the admin port's values, others NULL, so clients
//! connect without a special mode. Not a general SELECT.

use super::words::Word;
use super::{AdminCommand, AdminContext, AdminError, Exec, Reply};
use super::{ColKind, ResultSet, Words};

/// What `@@version_comment` says.
const VERSION_COMMENT: &str = "sqlproxy admin";

pub struct SelectVars {
    /// (column name as written, lower-case variable or function name)
    items: Vec<(String, String)>,
}

impl AdminCommand for SelectVars {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        if !w.starts_with(&["SELECT"]) {
            return None;
        }
        let syntax = || Some(Err(AdminError::Unknown(w.text())));
        let mut items = Vec::new();
        let mut i = 1;
        loop {
            match w.words.get(i) {
                Some(Word::Bare(b)) if b.starts_with("@@") => {
                    let name = b.trim_start_matches("@@").to_ascii_lowercase();
                    let name = name
                        .strip_prefix("session.")
                        .or_else(|| name.strip_prefix("global."))
                        .unwrap_or(&name)
                        .to_string();
                    items.push((b.clone(), name));
                    i += 1;
                }
                Some(Word::Bare(b))
                    if b.eq_ignore_ascii_case("version")
                        && w.words.get(i + 1) == Some(&Word::Punct('('))
                        && w.words.get(i + 2) == Some(&Word::Punct(')')) =>
                {
                    items.push((format!("{b}()"), "version".to_string()));
                    i += 3;
                }
                _ => return syntax(),
            }
            match w.words.get(i) {
                Some(Word::Punct(',')) => i += 1,
                None => break,
                Some(_) if w.is(i, "LIMIT") && w.number(i + 1).is_some() && w.len() == i + 2 => {
                    break
                }
                Some(_) => return syntax(),
            }
        }
        Some(Ok(SelectVars { items }))
    }

    fn name(&self) -> &'static str {
        "select"
    }

    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a> {
        let cols: Vec<(&str, ColKind)> = self
            .items
            .iter()
            .map(|(c, n)| {
                let kind = match n.as_str() {
                    "max_allowed_packet" | "wait_timeout" => ColKind::Int,
                    _ => ColKind::Text,
                };
                (c.as_str(), kind)
            })
            .collect();
        let mut rs = ResultSet::new(&cols);
        let version = String::from_utf8_lossy(&admin.proxy.server_version.load()).into_owned();
        let row = self
            .items
            .iter()
            .map(|(_, n)| match n.as_str() {
                "version_comment" => Some(VERSION_COMMENT.to_string()),
                "version" => Some(version.clone()),
                "max_allowed_packet" => Some(super::listener::MAX_PACKET.to_string()),
                "wait_timeout" => Some("28800".to_string()),
                "autocommit" => Some("1".to_string()),
                _ => None,
            })
            .collect();
        rs.push(row);
        super::ready(Ok(Reply::Rows(rs)))
    }
}
