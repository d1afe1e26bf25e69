//! Digests, when the sqlparser fallback runs, and garbage never panicking.

use super::*;

#[test]
fn digests() {
    digest(
        "SELECT c FROM sbtest1 WHERE id=4991",
        "SELECT c FROM sbtest1 WHERE id = ?",
    );
    digest(
        "select c from sbtest1 where id = ?",
        "SELECT c FROM sbtest1 WHERE id = ?",
    );
    digest(
        "SELECT  `Value`\n FROM  `ps_Configuration`  WHERE Name='x'",
        "SELECT `Value` FROM `ps_Configuration` WHERE Name = ?",
    );
    digest(
        "SELECT a FROM t WHERE id IN (1, 2, 3)",
        "SELECT a FROM t WHERE id IN (...)",
    );
    digest(
        "SELECT a FROM t WHERE id IN ('a','b') AND b NOT IN (?)",
        "SELECT a FROM t WHERE id IN (...) AND b NOT IN (...)",
    );
    digest(
        "SELECT a FROM t WHERE id IN (SELECT id FROM u)",
        "SELECT a FROM t WHERE id IN (SELECT id FROM u)",
    );
    digest(
        "SELECT a FROM t WHERE id IN (1, b)",
        "SELECT a FROM t WHERE id IN (?, b)",
    );
    digest(
        "SELECT x'ff', 0x1F, b'01', 1.5e3, -2, \"s\", N'n'",
        "SELECT ?, ?, ?, ?, - ?, ?, ?",
    );
    digest("SELECT /* hello */ 1 -- bye", "SELECT ?");
    digest("SELECT /*M!100100 1, */ 2", "SELECT ?, ?");
    digest("/*!40101 SET NAMES utf8 */", "SET NAMES utf8");
    digest(
        "SELECT COUNT(*) FROM t LIMIT 0,10",
        "SELECT COUNT(*) FROM t LIMIT ?, ?",
    );
    digest(
        "INSERT INTO t (a,b) VALUES (1,'x')",
        "INSERT INTO t (a, b) VALUES (?, ?)",
    );
    digest(
        "SELECT t.a, `t`.`b` FROM db.t",
        "SELECT t.a, `t`.`b` FROM db.t",
    );
    digest(
        "SELECT @x := 1, @@session.sql_mode",
        "SELECT @x := ?, @@session.sql_mode",
    );
    digest("SELECT 1; SELECT 2;", "SELECT ?; SELECT ?");
    digest("GRANT ALL ON *.* TO 'u'@'%'", "GRANT ALL ON *.* TO ?@?");
    digest("SELECT LAST_INSERT_ID();", "SELECT LAST_INSERT_ID()");
    assert_eq!(
        classify(b"SELECT c FROM t WHERE id=1").digest,
        classify(b"select c   FROM t WHERE id = 99").digest
    );
}

#[test]
fn sqlparser_fallback_only_for_other() {
    let cache = VerdictCache::new(64);
    let s = classify_with(
        b"SELECT c FROM sbtest1 WHERE id=1",
        LexMode::default(),
        &cache,
    );
    assert_eq!(s.kind, StmtKind::Select);
    assert_eq!(
        cache.stats(),
        (0, 0),
        "a lexer-decided statement must not reach sqlparser"
    );
    let s = classify_with(b"HANDLER t READ FIRST", LexMode::default(), &cache);
    assert_eq!(s.kind, StmtKind::Other);
    assert_eq!(cache.stats(), (0, 1));
    classify_with(b"HANDLER t READ FIRST", LexMode::default(), &cache);
    assert_eq!(cache.stats(), (1, 1));
    // the lexer cannot see the main query of a WITH inside parentheses; sqlparser can
    let sql = b"WITH c AS (SELECT 1 AS n) (SELECT n FROM c)";
    assert_eq!(scan(sql).kind, StmtKind::Other);
    let s = classify_with(sql, LexMode::default(), &cache);
    assert_eq!(s.kind, StmtKind::Select);
    assert!(s.all_reads);
    assert_eq!(
        route(&ctx(&s)),
        Route {
            target: Read,
            why: Why::Read
        }
    );
    assert_eq!(cache.stats(), (1, 2));
    // a parsed read keeps the lexer's master-only flags
    let s = classify_with(
        b"WITH c AS (SELECT 1) (SELECT LAST_INSERT_ID())",
        LexMode::default(),
        &cache,
    );
    assert_eq!(s.kind, StmtKind::Select);
    assert_eq!(route(&ctx(&s)).why, Why::MasterFunction);
    let (hits, misses) = cache.stats();
    // unterminated text is never parsed
    classify_with(b"SELECT 'x", LexMode::default(), &cache);
    assert_eq!(cache.stats(), (hits, misses));
    assert_eq!(scan(b"SELECT 1").kind, StmtKind::Select);
}

/// A tiny deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn garbage_never_panics() {
    const PIECES: &[&[u8]] = &[
        b"SELECT",
        b"SET",
        b"STATEMENT",
        b"FOR",
        b"UPDATE",
        b"(",
        b")",
        b"'",
        b"\"",
        b"`",
        b"/*",
        b"*/",
        b"/*!",
        b"/*M!",
        b"--",
        b"-- ",
        b"#",
        b"\n",
        b";",
        b"@",
        b"@@",
        b"@@global.",
        b".",
        b"0x",
        b"0b",
        b"1e",
        b"1.5",
        b".5",
        b"x'",
        b"\\",
        b"IN",
        b" ",
        b",",
        b"?",
        b":=",
        b"\xff",
        b"\x00",
        b"USE",
        b"KILL",
        b"WITH",
        b"LOCK",
        b"IN SHARE MODE",
        b"autocommit",
        b"=",
    ];
    let cache = VerdictCache::new(256);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..20_000 {
        let mut buf = Vec::new();
        let n = rng.next() % 24;
        for _ in 0..n {
            let r = rng.next();
            if round % 2 == 0 {
                buf.push((r >> 8) as u8);
            } else {
                let piece = PIECES[(r as usize) % PIECES.len()];
                buf.extend_from_slice(piece);
            }
        }
        let mode = LexMode {
            no_backslash_escapes: round % 3 == 0,
        };
        let s = classify_with(&buf, mode, &cache);
        let r = route(&ctx(&s));
        if !s.kind.is_read() {
            assert_eq!(r.target, Master, "{buf:?}");
        }
        let _ = pins_session(&s);
    }
    // a few long ones: deep nesting, long comment and string runs
    for round in 0..200u64 {
        let mut buf = Vec::new();
        for _ in 0..400 {
            let r = rng.next();
            let piece = PIECES[(r as usize) % PIECES.len()];
            buf.extend_from_slice(piece);
            if round % 2 == 0 {
                buf.push(b'(');
            }
        }
        let s = classify_with(&buf, LexMode::default(), &cache);
        if !s.kind.is_read() {
            assert_eq!(route(&ctx(&s)).target, Master, "{buf:?}");
        }
    }
}
