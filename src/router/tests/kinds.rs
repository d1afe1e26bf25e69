//! Statement kinds, SET wrappers, comments and hints, unterminated and
//! non-UTF-8 text.

use super::*;

#[test]
fn other_kinds() {
    kind("USE shop", StmtKind::Use(b"shop".to_vec()));
    kind("USE `my``shop`;", StmtKind::Use(b"my`shop".to_vec()));
    kind("LOCK TABLES t WRITE, u READ", StmtKind::LockTables);
    kind("LOCK TABLE t READ", StmtKind::LockTables);
    kind("UNLOCK TABLES", StmtKind::UnlockTables);
    kind("PREPARE s FROM 'SELECT 1'", StmtKind::Prepare);
    kind("EXECUTE s USING @a", StmtKind::Execute);
    kind("EXECUTE IMMEDIATE 'SELECT 1'", StmtKind::Execute);
    kind("DEALLOCATE PREPARE s", StmtKind::Deallocate);
    kind("DROP PREPARE s", StmtKind::Deallocate);
    kind("XA START 'x'", StmtKind::Xa);
    kind("xa commit 'x'", StmtKind::Xa);
    kind(
        "KILL 42",
        StmtKind::Kill {
            query: false,
            id: Some(42),
        },
    );
    kind(
        "KILL QUERY 42",
        StmtKind::Kill {
            query: true,
            id: Some(42),
        },
    );
    kind(
        "KILL CONNECTION 7;",
        StmtKind::Kill {
            query: false,
            id: Some(7),
        },
    );
    kind(
        "KILL HARD QUERY 7",
        StmtKind::Kill {
            query: true,
            id: Some(7),
        },
    );
    kind(
        "KILL QUERY ID 7",
        StmtKind::Kill {
            query: true,
            id: None,
        },
    );
    kind(
        "KILL USER bob",
        StmtKind::Kill {
            query: false,
            id: None,
        },
    );
    kind(
        "KILL 99999999999999999999999",
        StmtKind::Kill {
            query: false,
            id: None,
        },
    );
    kind("DO SLEEP(1)", StmtKind::Do);
    kind("HANDLER t READ FIRST", StmtKind::Other);
    kind("CREATE TABLE t (a int)", StmtKind::Ddl);
    kind("ALTER TABLE t ADD COLUMN b int", StmtKind::Ddl);
    kind("TRUNCATE TABLE t", StmtKind::Ddl);
    kind("RENAME TABLE a TO b", StmtKind::Ddl);
    kind("GRANT SELECT ON *.* TO 'u'@'%'", StmtKind::Ddl);
    kind(
        "CREATE USER 'u'@'localhost' IDENTIFIED BY 'p'",
        StmtKind::Ddl,
    );
    kind("ANALYZE TABLE t", StmtKind::Ddl);
    kind("ANALYZE SELECT * FROM t", StmtKind::Other);
    kind("OPTIMIZE TABLE t", StmtKind::Ddl);
    kind("CHECK TABLE t", StmtKind::Ddl);
    kind("CHECKSUM TABLE t", StmtKind::Ddl);
    kind("REPAIR TABLE t", StmtKind::Ddl);
    kind("FLUSH PRIVILEGES", StmtKind::Ddl);
    kind("EXPLAIN UPDATE t SET a=1", StmtKind::Other);
    kind("EXPLAIN ANALYZE SELECT 1", StmtKind::Other);
    kind("DESCRIBE SELECT * FROM t", StmtKind::Show);
    kind("DESC DELETE FROM t", StmtKind::Other);
    kind("EXPLAIN EXTENDED SELECT 1", StmtKind::Show);
    kind("EXPLAIN ps_product", StmtKind::Show);
    kind("VALUES (1), (2)", StmtKind::Select);
    kind("TABLE t", StmtKind::Select);
    kind("((SELECT 1) UNION (SELECT 2))", StmtKind::Select);
    kind(
        "WITH c AS (SELECT * FROM t) SELECT * FROM c",
        StmtKind::Select,
    );
    kind(
        "WITH RECURSIVE c (n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c WHERE n<5) SELECT n FROM c",
        StmtKind::Select,
    );
    kind(
        "WITH c AS (SELECT id FROM t) UPDATE u JOIN c USING (id) SET u.a=1",
        StmtKind::Update,
    );
    kind(
        "WITH c AS (SELECT id FROM t) DELETE FROM u WHERE id IN (SELECT id FROM c)",
        StmtKind::Delete,
    );
    kind("", StmtKind::Other);
    kind("  -- only a comment", StmtKind::Other);
    kind("frobnicate the database", StmtKind::Other);
    check_why("LOCK TABLES t WRITE", Master, Why::LockTables);
    check_why("FLUSH TABLES WITH READ LOCK", Master, Why::LockTables);
    check_why("PREPARE s FROM 'SELECT 1'", Master, Why::Prepare);
    check_why("XA START 'x'", Master, Why::Xa);
    check_why("KILL QUERY 5", Master, Why::Kill);
    check_why("DO 1", Master, Why::Do);
    check_why("HANDLER t READ FIRST", Master, Why::Unknown);
    check_why("ALTER TABLE t ENGINE=InnoDB", Master, Why::Ddl);
    assert_eq!(
        pins_session(&classify(b"LOCK TABLES t WRITE")),
        Some(Why::LockTables)
    );
    assert_eq!(
        pins_session(&classify(b"FLUSH TABLES WITH READ LOCK")),
        Some(Why::LockTables)
    );
    assert_eq!(
        pins_session(&classify(b"PREPARE s FROM 'SELECT 1'")),
        Some(Why::Prepare)
    );
    assert_eq!(pins_session(&classify(b"SELECT 1")), None);
    assert_eq!(pins_session(&classify(b"UPDATE t SET a=1")), None);
}

#[test]
fn set_statement_reports_the_inner_statement() {
    let s = classify(b"SET STATEMENT max_statement_time=1 FOR SELECT * FROM t");
    assert_eq!(s.kind, StmtKind::Select);
    assert!(s.set_statement && s.all_reads);
    check(
        "SET STATEMENT max_statement_time=1 FOR SELECT * FROM t",
        Read,
    );
    let s = classify(b"SET STATEMENT sort_buffer_size=100000, sql_mode='' FOR UPDATE t SET a=1");
    assert_eq!(s.kind, StmtKind::Update);
    assert!(!s.locking);
    check_why(
        "SET STATEMENT x=1 FOR SELECT * FROM t FOR UPDATE",
        Master,
        Why::Locking,
    );
}

#[test]
fn comments_hints_and_executable_comments() {
    check_why("/* sqlproxy:master */ SELECT * FROM t", Master, Why::Hint);
    check_why("SELECT /* sqlproxy:replica */ * FROM t", Read, Why::Hint);
    check_why("SELECT * FROM t -- sqlproxy:master", Master, Why::Hint);
    check_why("SELECT * FROM t # SQLPROXY:MASTER", Master, Why::Hint);
    check_why(
        "/* sqlproxy:master */ SELECT /* sqlproxy:replica */ 1",
        Master,
        Why::Hint,
    );
    check_why(
        "/* sqlproxy:replica sqlproxy:master */ SELECT 1",
        Master,
        Why::Hint,
    );
    // a replica hint never sends a write, a transaction or a pinned session to a read node
    check_why(
        "/* sqlproxy:replica */ UPDATE t SET a=1",
        Master,
        Why::Write,
    );
    check_why(
        "/* sqlproxy:replica */ SELECT * FROM t FOR UPDATE",
        Master,
        Why::Locking,
    );
    let s = classify(b"/* sqlproxy:replica */ SELECT 1");
    assert_eq!(
        route(&RouterContext {
            pinned: true,
            ..ctx(&s)
        })
        .why,
        Why::Pinned
    );
    assert_eq!(
        route(&RouterContext {
            in_transaction: true,
            ..ctx(&s)
        })
        .why,
        Why::Transaction
    );
    assert_eq!(
        route(&RouterContext {
            read_split: false,
            ..ctx(&s)
        })
        .why,
        Why::ReadSplitOff
    );
    kind("/*!40101 SET NAMES utf8 */", StmtKind::SetSession);
    kind("/*!40101 SET NAMES utf8 */;", StmtKind::SetSession);
    kind("/* a comment */ SELECT 1", StmtKind::Select);
    kind("# comment\nDELETE FROM t", StmtKind::Delete);
    kind("-- comment\nINSERT INTO t VALUES (1)", StmtKind::Insert);
    kind("/*+ MAX_EXECUTION_TIME(1000) */ SELECT 1", StmtKind::Select);
    kind("SELECT /*+ BKA(t) */ * FROM t", StmtKind::Select);
    check("SELECT /*M!100100 1, */ 2", Read);
    check_why("SELECT '/* sqlproxy:replica */' FROM t", Read, Why::Read);
    check_why("SELECT \"-- sqlproxy:master\" FROM t", Read, Why::Read);
    check_why("SELECT@x", Master, Why::UserVariable);
    check_why("SELECT CONCAT(name,@x) FROM t", Master, Why::UserVariable);
    check(
        "SELECT email FROM customer WHERE email LIKE '%@example.com'",
        Read,
    );
    check_why("SELECT 1 /*!50000 FOR UPDATE */", Master, Why::Locking);
    check_why("/*!50000 UPDATE t SET a=1 */", Master, Why::Write);
}

#[test]
fn unterminated_input_goes_to_master() {
    check_why("SELECT 'abc", Master, Why::Unknown);
    check_why("SELECT * FROM t WHERE a=\"x", Master, Why::Unknown);
    check_why("SELECT `abc FROM t", Master, Why::Unknown);
    check_why("SELECT 1 /* open", Master, Why::Unknown);
    check_why("SELECT /*!40101 1", Master, Why::Unknown);
    check_why("SELECT 1; SELECT 'x", Master, Why::MultiStatement);
    kind("SELECT 'it''s' FROM t", StmtKind::Select);
    // under NO_BACKSLASH_ESCAPES the same bytes hide a write after the string
    let sql = b"SELECT 'a\\'; DELETE FROM t; -- '";
    let cache = VerdictCache::new(16);
    let default = classify_with(sql, LexMode::default(), &cache);
    assert!(!default.multi && default.all_reads);
    let nbe = LexMode {
        no_backslash_escapes: true,
    };
    let s = classify_with(sql, nbe, &cache);
    assert!(s.multi && !s.all_reads);
    assert_eq!(route(&ctx(&s)).why, Why::MultiStatement);
    kind("SELECT 'a\\'b' FROM t", StmtKind::Select);
}

#[test]
fn non_utf8_text() {
    let latin1 = b"SELECT * FROM ps_product_lang WHERE name = 'caf\xe9' AND `d\xe9j\xe0` = 1";
    let s = classify(latin1);
    assert_eq!(s.kind, StmtKind::Select);
    assert_eq!(route(&ctx(&s)).target, Read);
    assert!(s
        .digest
        .starts_with("SELECT * FROM ps_product_lang WHERE name = ?"));
    let s = classify(b"UPDATE t\xff SET a=1");
    assert_eq!(s.kind, StmtKind::Update);
}

#[test]
fn account_and_privilege_statements_are_flagged() {
    let accounts = |sql: &str| classify(sql.as_bytes()).accounts;
    for sql in [
        "GRANT SELECT ON shop.* TO 'app'@'%'",
        "REVOKE PROCESS ON *.* FROM app",
        "CREATE USER 'u'@'%' IDENTIFIED BY 'x'",
        "CREATE OR REPLACE USER u",
        "create user if not exists u",
        "ALTER USER u IDENTIFIED BY 'y'",
        "DROP USER IF EXISTS u",
        "RENAME USER a TO b",
        "CREATE ROLE r",
        "DROP ROLE r",
        "SET PASSWORD FOR u = PASSWORD('x')",
        "SET DEFAULT ROLE r FOR u",
        "SELECT 1; GRANT ALL ON *.* TO u",
        "FLUSH PRIVILEGES",
        "flush local privileges",
        "FLUSH NO_WRITE_TO_BINLOG TABLES, PRIVILEGES",
    ] {
        assert!(accounts(sql), "{sql}");
    }
    for sql in [
        "SELECT user FROM mysql.user",
        "CREATE TABLE user (id INT)",
        "CREATE TABLE t (role INT)",
        "SET ROLE r",
        "FLUSH TABLES",
        "SELECT privileges FROM t",
        "SET password_reuse = 1",
        "SELECT 'GRANT'",
        "SHOW GRANTS",
    ] {
        assert!(!accounts(sql), "{sql}");
    }
}

#[test]
fn profiling_switched_on_outlives_a_reset() {
    let outlives = |sql: &str| classify(sql.as_bytes()).outlives_reset;
    for sql in [
        "SET profiling = 1",
        "SET SESSION profiling=1",
        "set @@profiling = 1",
        "SET sql_mode = '', profiling = 1",
        "SET net_write_timeout = 1",
        "SET @@session.net_retry_count = 1",
        "SET SESSION tcp_nodelay = OFF",
    ] {
        assert!(outlives(sql), "{sql}");
    }
    for sql in [
        "SELECT @@profiling",
        "SHOW PROFILES",
        "SET sql_mode = ''",
        "SET net_read_timeout = 10",
        "SELECT @@net_write_timeout",
    ] {
        assert!(!outlives(sql), "{sql}");
    }
}

#[test]
fn set_role_is_flagged_and_set_default_role_is_not() {
    let sets_role = |sql: &str| classify(sql.as_bytes()).sets_role;
    for sql in ["SET ROLE r", "set role NONE", "SELECT 1; SET ROLE r"] {
        assert!(sets_role(sql), "{sql}");
        assert!(classify(sql.as_bytes()).outlives_reset, "{sql}");
        let s = classify(sql.as_bytes());
        assert_eq!(
            crate::router::pins_session(&s),
            Some(crate::router::Why::Set),
            "{sql}"
        );
    }
    for sql in [
        "SET DEFAULT ROLE r FOR u",
        "SET @role = 1",
        "SELECT role FROM t",
        "SET sql_mode = 'role'",
    ] {
        assert!(!sets_role(sql), "{sql}");
    }
}

#[test]
fn an_sql_level_execute_pins_the_session_and_outlives_a_reset() {
    // Its text is not seen: `EXECUTE IMMEDIATE 'SET ROLE r'`, a GET_LOCK or
    // a temporary table may be in it.
    for sql in [
        "EXECUTE IMMEDIATE 'SET ROLE r'",
        "execute immediate concat('SELECT GET_LOCK(', 1, ')')",
        "EXECUTE s",
        "EXECUTE s USING @a",
    ] {
        let s = classify(sql.as_bytes());
        assert!(s.outlives_reset, "{sql}");
        assert_eq!(
            crate::router::pins_session(&s),
            Some(crate::router::Why::Prepare),
            "{sql}"
        );
    }
    assert!(!classify(b"SELECT execute FROM t").outlives_reset);
}

#[test]
fn a_set_among_several_statements_pins_the_session_where_it_ran() {
    // Only a SET alone is replayed on the session's other connections.
    for sql in [
        "SET NAMES utf8mb4; SET time_zone = '+00:00'",
        "SELECT 1; SET sql_mode = ''",
        "SET autocommit = 0; SELECT 1",
    ] {
        assert_eq!(
            crate::router::pins_session(&classify(sql.as_bytes())),
            Some(crate::router::Why::Set),
            "{sql}"
        );
    }
    for sql in ["SET NAMES utf8mb4", "SELECT 1; SELECT 2"] {
        assert_eq!(
            crate::router::pins_session(&classify(sql.as_bytes())),
            None,
            "{sql}"
        );
    }
}
