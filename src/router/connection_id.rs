//! `CONNECTION_ID()` must name the client's session, as the handshake did,
//! not whichever node connection runs the statement. [`rewrite_connection_id`]
//! replaces each call, outside strings and comments, by the session id in a
//! form the node types exactly as it types the function (INT UNSIGNED NOT
//! NULL, display width 10): `CAST(0000000042 AS UNSIGNED)`. A select item
//! that had no alias keeps the name the client would have seen (MariaDB
//! names an item by its text): ``SELECT CONNECTION_ID() + 0`` becomes
//! ``SELECT CAST(0000000042 AS UNSIGNED) + 0 AS `CONNECTION_ID() + 0` ``.
//! Only the first SELECT list of each statement names result columns; a
//! subquery's or a later UNION branch's items are rewritten without alias.
//!
//! A statement that also reads node thread ids (`IS_USED_LOCK()`, the
//! process list, `INNODB_TRX`...) keeps the node's `CONNECTION_ID()`: it
//! compares the two (`IS_USED_LOCK('job') = CONNECTION_ID()`, `WHERE ID =
//! CONNECTION_ID()`), which only works in the node's numbering. A process
//! list's ids are shown as session ids in the reply instead (`reads_processlist`).

use super::lexer::{Lexer, Token, TokenKind};

/// Whether a statement reads a node's process list (`SHOW PROCESSLIST`,
/// `information_schema.PROCESSLIST`): its thread ids are then shown as the
/// client sessions holding them.
pub fn reads_processlist(sql: &[u8]) -> bool {
    const WORD: &[u8] = b"PROCESSLIST";
    sql.windows(WORD.len())
        .any(|w| w.eq_ignore_ascii_case(WORD))
        && Lexer::new(sql).any(|t| {
            matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent)
                && sql.get(t.start..t.end).is_some_and(|w| {
                    let bare = w.strip_prefix(b"`").and_then(|w| w.strip_suffix(b"`"));
                    bare.unwrap_or(w).eq_ignore_ascii_case(WORD)
                })
        })
}

const FUNCTION: &[u8] = b"CONNECTION_ID";

/// Names of functions and tables that give node thread ids.
const NODE_THREAD_IDS: &[&[u8]] = &[
    b"IS_USED_LOCK",
    b"PROCESSLIST",
    b"PROCESSLIST_ID",
    b"INNODB_TRX",
    b"THREADS",
    b"METADATA_LOCK_INFO",
];

/// MariaDB cuts a longer alias; an item this long keeps the rewritten text as its name.
const MAX_ALIAS: usize = 256;

/// Words that may follow SELECT before the first item.
const SELECT_MODIFIERS: &[&[u8]] = &[
    b"ALL",
    b"DISTINCT",
    b"DISTINCTROW",
    b"HIGH_PRIORITY",
    b"STRAIGHT_JOIN",
    b"SQL_SMALL_RESULT",
    b"SQL_BIG_RESULT",
    b"SQL_BUFFER_RESULT",
    b"SQL_CACHE",
    b"SQL_NO_CACHE",
    b"SQL_CALC_FOUND_ROWS",
];

/// Words that end a SELECT list.
const LIST_END: &[&[u8]] = &[
    b"FROM",
    b"INTO",
    b"WHERE",
    b"GROUP",
    b"HAVING",
    b"ORDER",
    b"LIMIT",
    b"UNION",
    b"EXCEPT",
    b"INTERSECT",
    b"FOR",
    b"LOCK",
    b"WINDOW",
    b"PROCEDURE",
];

/// Words after which the next word is an operand, never an alias.
const OPERATOR_WORDS: &[&[u8]] = &[
    b"AND",
    b"OR",
    b"XOR",
    b"NOT",
    b"IS",
    b"LIKE",
    b"REGEXP",
    b"RLIKE",
    b"DIV",
    b"MOD",
    b"IN",
    b"BETWEEN",
    b"COLLATE",
    b"BINARY",
    b"INTERVAL",
    b"ESCAPE",
    b"SOUNDS",
    b"CASE",
    b"WHEN",
    b"THEN",
    b"ELSE",
    b"AS",
    b"SELECT",
];

fn is_word(src: &[u8], t: &Token, words: &[&[u8]]) -> bool {
    t.kind == TokenKind::Word
        && src
            .get(t.start..t.end)
            .is_some_and(|w| words.iter().any(|k| w.eq_ignore_ascii_case(k)))
}

fn is_punct(src: &[u8], t: &Token, p: u8) -> bool {
    t.kind == TokenKind::Punct && src.get(t.start..t.end) == Some(&[p][..])
}

/// The text with every `CONNECTION_ID()` call replaced by `id`; None when
/// there is none (the text is sent as it is).
pub fn rewrite_connection_id(sql: &[u8], id: u32) -> Option<Vec<u8>> {
    if !sql
        .windows(FUNCTION.len())
        .any(|w| w.eq_ignore_ascii_case(FUNCTION))
    {
        return None;
    }
    let tokens: Vec<Token> = Lexer::new(sql).collect();
    // Token index of each call's name; the call spans it and the next two.
    let calls: Vec<usize> = (0..tokens.len())
        .filter(|&i| is_call(sql, &tokens, i))
        .collect();
    let compares_node_ids = tokens.iter().any(|t| {
        matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent)
            && sql.get(t.start..t.end).is_some_and(|w| {
                let bare = w.strip_prefix(b"`").and_then(|w| w.strip_suffix(b"`"));
                let w = bare.unwrap_or(w);
                NODE_THREAD_IDS.iter().any(|n| w.eq_ignore_ascii_case(n))
            })
    });
    if calls.is_empty() || compares_node_ids {
        return None;
    }
    let value = format!("CAST({id:010} AS UNSIGNED)");
    // (byte offset, bytes to skip there, text to put there), in order.
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    let mut next_call = calls.iter().peekable();
    for (first, last) in unaliased_items(sql, &tokens) {
        while let Some(&&c) = next_call.peek() {
            if c > last {
                break;
            }
            let (start, end) = (tokens[c].start, tokens[c + 2].end);
            edits.push((start, end - start, value.clone().into_bytes()));
            next_call.next();
            if c >= first && c + 2 <= last {
                // The item holds a call: give it back its name.
                let name = &sql[tokens[first].start..tokens[last].end];
                if name.len() <= MAX_ALIAS && !edits_alias_at(&edits, tokens[last].end) {
                    edits.push((tokens[last].end, 0, alias(name)));
                }
            }
        }
    }
    for &c in next_call {
        let (start, end) = (tokens[c].start, tokens[c + 2].end);
        edits.push((start, end - start, value.clone().into_bytes()));
    }
    edits.sort_by_key(|e| (e.0, e.1 == 0));
    let mut out = Vec::with_capacity(sql.len() + edits.len() * 32);
    let mut at = 0;
    for (pos, skip, text) in edits {
        out.extend_from_slice(&sql[at..pos]);
        out.extend_from_slice(&text);
        at = pos + skip;
    }
    out.extend_from_slice(&sql[at..]);
    Some(out)
}

fn edits_alias_at(edits: &[(usize, usize, Vec<u8>)], pos: usize) -> bool {
    edits.iter().any(|e| e.0 == pos && e.1 == 0)
}

/// ``AS `name` `` with backticks doubled.
fn alias(name: &[u8]) -> Vec<u8> {
    let mut a = b" AS `".to_vec();
    for &b in name {
        if b == b'`' {
            a.push(b'`');
        }
        a.push(b);
    }
    a.push(b'`');
    a
}

/// `CONNECTION_ID ( )` at token `i`: the built-in, not `db.connection_id()`.
fn is_call(src: &[u8], tokens: &[Token], i: usize) -> bool {
    let t = &tokens[i];
    let named = t.kind == TokenKind::Word
        && t.call
        && src
            .get(t.start..t.end)
            .is_some_and(|w| w.eq_ignore_ascii_case(FUNCTION));
    let qualified = i > 0 && is_punct(src, &tokens[i - 1], b'.');
    named
        && !qualified
        && tokens.get(i + 1).is_some_and(|t| is_punct(src, t, b'('))
        && tokens.get(i + 2).is_some_and(|t| is_punct(src, t, b')'))
}

/// (first, last) token index of every item of each statement's first SELECT
/// list, in order; items with an alias of their own come back as
/// `(usize::MAX, index of their last token)` so calls in them are still
/// found in order but get no alias.
fn unaliased_items(src: &[u8], tokens: &[Token]) -> Vec<(usize, usize)> {
    let mut items = Vec::new();
    let mut stmt_start = 0;
    while stmt_start < tokens.len() {
        let stmt_end = (stmt_start..tokens.len())
            .find(|&i| tokens[i].kind == TokenKind::Semicolon)
            .unwrap_or(tokens.len());
        if is_word(src, &tokens[stmt_start], &[b"SELECT"]) {
            select_items(src, tokens, stmt_start + 1, stmt_end, &mut items);
        }
        stmt_start = stmt_end + 1;
    }
    items
}

fn select_items(
    src: &[u8],
    tokens: &[Token],
    from: usize,
    to: usize,
    items: &mut Vec<(usize, usize)>,
) {
    let mut i = from;
    while i < to && is_word(src, &tokens[i], SELECT_MODIFIERS) {
        i += 1;
    }
    let mut depth = 0usize;
    let mut first = i;
    while i <= to {
        let t = tokens.get(i);
        let end_of_list = match t {
            None => true,
            Some(_) if i == to => true,
            Some(t) if depth == 0 && is_word(src, t, LIST_END) => true,
            Some(t) if depth == 0 && is_punct(src, t, b')') => true,
            _ => false,
        };
        let separator = !end_of_list && t.is_some_and(|t| depth == 0 && is_punct(src, t, b','));
        if end_of_list || separator {
            if i > first {
                let last = i - 1;
                let named = has_alias(src, &tokens[first..=last]);
                items.push((if named { usize::MAX } else { first }, last));
            }
            if end_of_list {
                return;
            }
            first = i + 1;
        } else if let Some(t) = t {
            if is_punct(src, t, b'(') {
                depth += 1;
            } else if is_punct(src, t, b')') {
                depth = depth.saturating_sub(1);
            }
        }
        i += 1;
    }
}

/// Whether a select item names itself: `expr AS x` or `expr x`. When in
/// doubt, yes: a second alias would be a syntax error, a missing one only a
/// different column name.
fn has_alias(src: &[u8], item: &[Token]) -> bool {
    let mut depth = 0usize;
    for t in item {
        if is_punct(src, t, b'(') {
            depth += 1;
        } else if is_punct(src, t, b')') {
            depth = depth.saturating_sub(1);
        } else if depth == 0 && is_word(src, t, &[b"AS"]) {
            return true;
        }
    }
    let [.., prev, last] = item else {
        return false;
    };
    let could_be_name = matches!(
        last.kind,
        TokenKind::Word | TokenKind::QuotedIdent | TokenKind::Str
    );
    let operand_follows = match prev.kind {
        TokenKind::Punct => !is_punct(src, prev, b')'),
        TokenKind::Word => is_word(src, prev, OPERATOR_WORDS),
        _ => false,
    };
    let case_end =
        is_word(src, last, &[b"END"]) && item.iter().any(|t| is_word(src, t, &[b"CASE"]));
    could_be_name && !operand_follows && !case_end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str, expected: Option<&str>) {
        let got = rewrite_connection_id(sql.as_bytes(), 42);
        let got = got
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned());
        assert_eq!(got.as_deref(), expected, "{sql}");
    }

    const ID: &str = "CAST(0000000042 AS UNSIGNED)";

    #[test]
    fn calls_become_the_session_id() {
        check("SELECT 1", None);
        check(
            "SELECT CONNECTION_ID()",
            Some(&format!("SELECT {ID} AS `CONNECTION_ID()`")),
        );
        check(
            "select connection_id ( ) ",
            Some(&format!("select {ID} AS `connection_id ( )` ")),
        );
        check(
            "SELECT CONNECTION_ID() + 0, 'x'",
            Some(&format!("SELECT {ID} + 0 AS `CONNECTION_ID() + 0`, 'x'")),
        );
        check(
            "SELECT DISTINCT CONNECTION_ID() AS c, CONNECTION_ID() d FROM t WHERE id = CONNECTION_ID()",
            Some(&format!(
                "SELECT DISTINCT {ID} AS c, {ID} d FROM t WHERE id = {ID}"
            )),
        );
        check(
            "UPDATE t SET owner = CONNECTION_ID() WHERE 1",
            Some(&format!("UPDATE t SET owner = {ID} WHERE 1")),
        );
        check(
            "SELECT IF(CONNECTION_ID() > 0, 1, 2) FROM dual",
            Some(&format!(
                "SELECT IF({ID} > 0, 1, 2) AS `IF(CONNECTION_ID() > 0, 1, 2)` FROM dual"
            )),
        );
        check(
            "SELECT 1; SELECT CONNECTION_ID() IS NULL",
            Some(&format!(
                "SELECT 1; SELECT {ID} IS NULL AS `CONNECTION_ID() IS NULL`"
            )),
        );
    }

    #[test]
    fn statements_comparing_node_thread_ids_keep_the_nodes_id() {
        check("SELECT IS_USED_LOCK('job') = CONNECTION_ID()", None);
        check(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()",
            None,
        );
        check("SELECT trx_id FROM information_schema.`INNODB_TRX` WHERE trx_mysql_thread_id = CONNECTION_ID()", None);
    }

    #[test]
    fn process_list_readers() {
        assert!(reads_processlist(b"SHOW FULL PROCESSLIST"));
        assert!(reads_processlist(
            b"select id from information_schema.`processlist`"
        ));
        assert!(!reads_processlist(b"SELECT 'processlist'"));
        assert!(!reads_processlist(b"SELECT 1"));
    }

    #[test]
    fn strings_comments_and_other_functions_stay() {
        check("SELECT 'CONNECTION_ID()' -- CONNECTION_ID()", None);
        check("SELECT db.CONNECTION_ID()", None);
        check("SELECT CONNECTION_ID", None);
        check("SELECT /* CONNECTION_ID() */ 1", None);
        check("SELECT `CONNECTION_ID`()", None);
        check(
            "SELECT /*!50000 CONNECTION_ID() */",
            Some(&format!("SELECT /*!50000 {ID} AS `CONNECTION_ID()` */")),
        );
    }

    #[test]
    fn item_names_are_quoted_and_subqueries_left_alone() {
        check(
            "SELECT CONNECTION_ID() `a``b`",
            Some(&format!("SELECT {ID} `a``b`")),
        );
        check(
            "SELECT (SELECT CONNECTION_ID()) x",
            Some(&format!("SELECT (SELECT {ID}) x")),
        );
        check(
            "SELECT CASE WHEN CONNECTION_ID() THEN 1 END",
            Some(&format!(
                "SELECT CASE WHEN {ID} THEN 1 END AS `CASE WHEN CONNECTION_ID() THEN 1 END`"
            )),
        );
        check(
            "INSERT INTO t SELECT CONNECTION_ID()",
            Some(&format!("INSERT INTO t SELECT {ID}")),
        );
    }
}
