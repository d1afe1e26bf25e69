//! The one judge of non-determinism: whether a statement's result may differ between two
//! runs over the same data, because it depends on the clock, chance, the session, the
//! connection or a lock. The classifier asks it about every token and reports the verdict
//! as [`Statement::non_deterministic`](super::Statement); the result cache never keeps such
//! a result. Routing does not depend on it (the master-only flags do that).
//!
//! The words are roles in the keyword table (`keywords.rs`), so judging costs no look-up
//! of its own: [`Kw::FnNonDet`] and the other function roles count when called,
//! [`Kw::NonDetWord`] wherever it stands. Variables (`@x`, `@@x`) and account names
//! (`'u'@'h'`) count too.

use super::keywords::Kw;
use super::lexer::{Token, TokenKind};

/// True if `tok` makes its statement non-deterministic. `prev` holds the keyword roles of
/// the three tokens before it, newest first, and `prev_kind` the kind of the last one.
pub(super) fn makes_non_deterministic(
    src: &[u8],
    tok: &Token,
    kw: Kw,
    prev_kind: Option<TokenKind>,
    prev: [Kw; 3],
) -> bool {
    match tok.kind {
        TokenKind::UserVar | TokenKind::SysVar => true,
        TokenKind::Punct => match src.get(tok.start..tok.end) {
            Some(b"@") => true,
            // A call is the word before `(`, whatever spaces or comments stand between.
            Some(b"(") => prev_kind == Some(TokenKind::Word) && counts_when_called(prev[0]),
            _ => false,
        },
        TokenKind::Word => {
            counts_anywhere(kw)
                || (kw == Kw::For
                    && prev[0] == Kw::Value
                    && matches!(prev[1], Kw::Next | Kw::Previous))
        }
        _ => false,
    }
}

/// `NOW(`, `RAND(`, `USER(`, `LAST_INSERT_ID(`, `GET_LOCK(`, `NEXTVAL(`, `VERSION(`, ...: as
/// bare words these are often column names (`user`, `version`).
fn counts_when_called(kw: Kw) -> bool {
    matches!(
        kw,
        Kw::FnNonDet | Kw::FnSameConn | Kw::FnGetLock | Kw::FnMaster | Kw::Database | Kw::User
    )
}

/// `CURRENT_TIMESTAMP`, `UTC_DATE`, `SQL_NO_CACHE`, `SQL_CALC_FOUND_ROWS`, `PROCEDURE`, ...
fn counts_anywhere(kw: Kw) -> bool {
    matches!(kw, Kw::NonDetWord | Kw::SqlCalcFoundRows)
}

#[cfg(test)]
mod tests {
    use super::super::classify;

    #[track_caller]
    fn check(sql: &str, expected: bool) {
        assert_eq!(
            classify(sql.as_bytes()).non_deterministic,
            expected,
            "{sql:?}"
        );
    }

    #[test]
    fn judged_by_calls_words_and_variables() {
        check("SELECT NOW()", true);
        check("SELECT now ( )", true);
        check("SELECT NOW/* why */()", true);
        check("SELECT NOW -- why\n()", true);
        check("SELECT /*!NOW()*/", true);
        check("SELECT RAND() FROM t", true);
        check("SELECT NOW(), RAND(), UUID()", true);
        check("SELECT USER()", true);
        check("SELECT DATABASE()", true);
        check("SELECT SCHEMA()", true);
        check("SELECT VERSION()", true);
        check("SELECT c FROM t WHERE id = LAST_INSERT_ID()", true);
        check("SELECT GET_LOCK('x', 1)", true);
        check("SELECT NEXT VALUE FOR s", true);
        check("SELECT PREVIOUS VALUE FOR s", true);
        check("SELECT t.now() FROM t", true);
        check("SELECT CURRENT_TIMESTAMP", true);
        check("SELECT c FROM t WHERE d > CURRENT_DATE", true);
        check("SELECT SQL_NO_CACHE c FROM t", true);
        check("SELECT SQL_CALC_FOUND_ROWS c FROM t LIMIT 1", true);
        check("SELECT c FROM t PROCEDURE ANALYSE()", true);
        check("SELECT @x", true);
        check("SELECT @@version", true);
        check("SELECT c FROM t WHERE a = 'u'@'h'", true);

        check("SELECT c FROM t WHERE id = 1", false);
        check("SELECT c FROM t WHERE id = ?", false);
        check("SELECT user FROM accounts WHERE id = ?", false);
        check("SELECT now FROM t", false);
        check("SELECT version, database FROM t", false);
        check("SELECT t.database FROM t", false);
        check("SELECT `now`() FROM t", false);
        check("SELECT 'NOW()', '@x' FROM t", false);
        check("SELECT c FROM t /* NOW() @x */", false);
        check("SELECT c FROM t; (1)", false);
    }

    /// Every word either list caught before the two became one.
    #[test]
    fn every_listed_word_is_caught() {
        let calls = "NOW CURDATE CURTIME SYSDATE UNIX_TIMESTAMP RAND RANDOM_BYTES UUID UUID_SHORT \
            SYS_GUID LAST_INSERT_ID FOUND_ROWS ROW_COUNT CONNECTION_ID USER SESSION_USER \
            SYSTEM_USER DATABASE SCHEMA SLEEP BENCHMARK GET_LOCK RELEASE_LOCK RELEASE_ALL_LOCKS \
            IS_FREE_LOCK IS_USED_LOCK MASTER_POS_WAIT MASTER_GTID_WAIT NEXTVAL LASTVAL SETVAL \
            LOAD_FILE VERSION";
        for name in calls.split_whitespace() {
            check(&format!("SELECT {name}()"), true);
            check(&format!("select {} (1)", name.to_lowercase()), true);
        }
        let words = "CURRENT_TIMESTAMP CURRENT_DATE CURRENT_TIME CURRENT_USER CURRENT_ROLE LOCALTIME \
            LOCALTIMESTAMP UTC_DATE UTC_TIME UTC_TIMESTAMP SQL_NO_CACHE SQL_CALC_FOUND_ROWS PROCEDURE";
        for word in words.split_whitespace() {
            check(&format!("SELECT {word}"), true);
            check(&format!("select {}", word.to_lowercase()), true);
        }
    }
}
