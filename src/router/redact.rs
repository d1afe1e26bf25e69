//! Statement text as operators see it (admin SHOW SESSIONS): string
//! literals that are passwords (`IDENTIFIED BY '...'`, `PASSWORD('...')`,
//! `MASTER_PASSWORD = '...'`, `IDENTIFIED ... AS/USING '...'`) are replaced
//! by `'<secret>'`. Digests never carry literals at all (`digest.rs`).

use std::borrow::Cow;

use super::lexer::{Lexer, TokenKind};

/// Words after which a string literal is a secret.
const LEADS: &[&[u8]] = &[
    b"by",
    b"using",
    b"password",
    b"old_password",
    b"master_password",
];

/// What replaces a secret literal.
const HIDDEN: &str = "'<secret>'";

/// `sql` with secret literals hidden; borrowed when it names no secret.
pub fn redact_secrets(sql: &[u8]) -> Cow<'_, str> {
    if !mentions(sql, b"password") && !mentions(sql, b"identified") {
        return String::from_utf8_lossy(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    let mut lead = false;
    let mut identified = false;
    for t in Lexer::new(sql) {
        let raw = sql.get(t.start..t.end).unwrap_or_default();
        match t.kind {
            TokenKind::Str | TokenKind::Unterminated if lead => {
                out.push_str(&String::from_utf8_lossy(
                    sql.get(copied..t.start).unwrap_or_default(),
                ));
                out.push_str(HIDDEN);
                copied = t.end;
                lead = false;
            }
            // `PASSWORD('x')`, `MASTER_PASSWORD = 'x'`: the lead carries over.
            TokenKind::Punct if raw == b"(" || raw == b"=" => {}
            TokenKind::Word => {
                identified |= raw.eq_ignore_ascii_case(b"identified");
                lead = LEADS.iter().any(|w| raw.eq_ignore_ascii_case(w))
                    || (identified && raw.eq_ignore_ascii_case(b"as"));
            }
            _ => lead = false,
        }
    }
    out.push_str(&String::from_utf8_lossy(
        sql.get(copied..).unwrap_or_default(),
    ));
    Cow::Owned(out)
}

fn mentions(sql: &[u8], word: &[u8]) -> bool {
    sql.windows(word.len())
        .any(|w| w.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str, want: &str) {
        assert_eq!(redact_secrets(sql.as_bytes()), want, "{sql}");
    }

    #[test]
    fn password_literals_are_hidden() {
        check(
            "CREATE USER 'a'@'%' IDENTIFIED BY 'pw1'",
            "CREATE USER 'a'@'%' IDENTIFIED BY '<secret>'",
        );
        check(
            "ALTER USER a IDENTIFIED VIA ed25519 USING PASSWORD('pw2')",
            "ALTER USER a IDENTIFIED VIA ed25519 USING PASSWORD('<secret>')",
        );
        check(
            "SET PASSWORD FOR a = PASSWORD(\"pw3\")",
            "SET PASSWORD FOR a = PASSWORD('<secret>')",
        );
        check("SET PASSWORD = 'pw3b'", "SET PASSWORD = '<secret>'");
        check(
            "GRANT ALL ON *.* TO a IDENTIFIED WITH mysql_native_password AS '*ABCD'",
            "GRANT ALL ON *.* TO a IDENTIFIED WITH mysql_native_password AS '<secret>'",
        );
        check(
            "CHANGE MASTER TO MASTER_USER='r', MASTER_PASSWORD = 'pw4'",
            "CHANGE MASTER TO MASTER_USER='r', MASTER_PASSWORD = '<secret>'",
        );
        check(
            "SELECT PASSWORD('pw5'), 'kept'",
            "SELECT PASSWORD('<secret>'), 'kept'",
        );
        // Cut short (SHOW SESSIONS keeps the first bytes): the rest is hidden too.
        check(
            "CREATE USER a IDENTIFIED BY 'pw6",
            "CREATE USER a IDENTIFIED BY '<secret>'",
        );
    }

    #[test]
    fn other_statements_are_unchanged() {
        check("SELECT 'a' AS b FROM t", "SELECT 'a' AS b FROM t");
        check(
            "SELECT * FROM users WHERE name = 'x'",
            "SELECT * FROM users WHERE name = 'x'",
        );
    }
}
