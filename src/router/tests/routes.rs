//! Where statements go: PrestaShop and sysbench statements, transactions,
//! variables, locking reads, master-only functions.

use super::*;

#[test]
fn sysbench_statements() {
    check("SELECT c FROM sbtest1 WHERE id=4991", Read);
    check("SELECT c FROM sbtest1 WHERE id=?", Read);
    check("SELECT c FROM sbtest3 WHERE id BETWEEN 10 AND 109", Read);
    check(
        "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 5 AND 104",
        Read,
    );
    check(
        "SELECT c FROM sbtest1 WHERE id BETWEEN 5 AND 104 ORDER BY c",
        Read,
    );
    check(
        "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 5 AND 104 ORDER BY c",
        Read,
    );
    check_why("UPDATE sbtest1 SET k=k+1 WHERE id=5", Master, Why::Write);
    check_why(
        "UPDATE sbtest1 SET c='09-12' WHERE id=5",
        Master,
        Why::Write,
    );
    check_why("DELETE FROM sbtest1 WHERE id=5", Master, Why::Write);
    check_why(
        "INSERT INTO sbtest1 (id, k, c, pad) VALUES (5, 4, 'c', 'p')",
        Master,
        Why::Write,
    );
    check_why("BEGIN", Master, Why::Transaction);
    check_why("COMMIT", Master, Why::Transaction);
}

#[test]
fn prestashop_statements() {
    check(
        "SELECT `value` FROM `ps_configuration` WHERE `name` = 'PS_SHOP_ENABLE' LIMIT 1",
        Read,
    );
    check(
        "SELECT SQL_NO_CACHE c.`id_category`, cl.`name` FROM `ps_category` c \
         LEFT JOIN `ps_category_lang` cl ON (c.`id_category` = cl.`id_category` AND cl.`id_lang` = 1) \
         WHERE c.`id_parent` IN (2, 3, 4) ORDER BY c.`position` ASC LIMIT 0,10",
        Read,
    );
    check("SELECT p.* FROM ps_product p INNER JOIN ps_product_shop ps ON ps.id_product = p.id_product WHERE p.id_product = 7", Read);
    check(
        "SELECT COUNT(*) FROM `ps_orders` o WHERE o.`id_customer` = 2",
        Read,
    );
    check("SHOW TABLES LIKE 'ps_%'", Read);
    check("SHOW TABLE STATUS LIKE 'ps_product'", Read);
    check("SHOW COLUMNS FROM `ps_product`", Read);
    check("DESCRIBE ps_product", Read);
    check("DESC `ps_product`", Read);
    check("EXPLAIN SELECT * FROM ps_product", Read);
    check("EXPLAIN FORMAT=JSON SELECT * FROM ps_product", Read);
    check("HELP 'SELECT'", Read);
    check("SELECT @@session.sql_mode", Read);
    check("SELECT @@server_id, @@version", Read);
    check_why(
        "INSERT INTO `ps_connections` (`id_guest`, `date_add`) VALUES (1, NOW())",
        Master,
        Why::Write,
    );
    check_why(
        "UPDATE `ps_cart` SET `date_upd` = '2026-01-01' WHERE `id_cart` = 3",
        Master,
        Why::Write,
    );
    check_why(
        "REPLACE INTO ps_cart_product VALUES (1,2,3)",
        Master,
        Why::Write,
    );
    check_why(
        "INSERT INTO ps_x (a) SELECT a FROM ps_y",
        Master,
        Why::Write,
    );
    check_why(
        "DELETE FROM `ps_cart_rule_combination` WHERE `id_cart_rule_1` IN (1,2)",
        Master,
        Why::Write,
    );
}

#[test]
fn prestashop_listing_with_joins() {
    let sql = "SELECT SQL_NO_CACHE p.*, product_shop.*, IFNULL(stock.quantity, 0) AS quantity, \
        pl.`name`, image_shop.`id_image` id_image, il.`legend` as legend, m.`name` AS manufacturer_name, \
        DATEDIFF(product_shop.`date_add`, DATE_SUB('2026-11-25 00:00:00', INTERVAL 20 DAY)) > 0 AS new \
        FROM `ps_category_product` cp \
        LEFT JOIN `ps_product` p ON p.`id_product` = cp.`id_product` \
        INNER JOIN ps_product_shop product_shop ON (product_shop.id_product = p.id_product AND product_shop.id_shop = 1) \
        LEFT JOIN `ps_stock_available` stock ON (stock.id_product = p.id_product AND stock.id_shop = 1) \
        LEFT JOIN `ps_product_lang` pl ON (p.`id_product` = pl.`id_product` AND pl.`id_lang` = 1) \
        LEFT JOIN `ps_image_shop` image_shop ON (image_shop.`id_product` = p.`id_product` AND image_shop.cover=1) \
        LEFT JOIN `ps_image_lang` il ON (image_shop.`id_image` = il.`id_image` AND il.`id_lang` = 1) \
        LEFT JOIN `ps_manufacturer` m ON m.`id_manufacturer` = p.`id_manufacturer` \
        WHERE product_shop.`id_shop` = 1 AND cp.`id_category` = 3 AND product_shop.`active` = 1 \
        AND product_shop.`visibility` IN ('both', 'catalog') ORDER BY cp.`position` ASC LIMIT 0,12";
    let s = classify(sql.as_bytes());
    assert_eq!(s.kind, StmtKind::Select);
    assert!(s.all_reads && !s.multi && !s.has_master_flag());
    assert!(s
        .digest
        .contains("product_shop.`visibility` IN (...) ORDER BY cp.`position` ASC LIMIT ?, ?"));
    assert!(
        s.digest.contains("DATE_SUB(?, INTERVAL ? DAY)"),
        "{}",
        s.digest
    );
    assert_eq!(
        route(&ctx(&s)),
        Route {
            target: Read,
            why: Why::Read
        }
    );
}

#[test]
fn calc_found_rows_and_found_rows_go_to_the_master() {
    check_why(
        "SELECT SQL_CALC_FOUND_ROWS id FROM t LIMIT 1",
        Master,
        Why::FoundRows,
    );
    check_why("SELECT FOUND_ROWS()", Master, Why::MasterFunction);
    check_why("select found_rows ( )", Master, Why::MasterFunction);
    // a column called found_rows is not the function
    check("SELECT found_rows FROM stats", Read);
}

#[test]
fn last_insert_id_and_identity_go_to_the_master() {
    check_why("SELECT LAST_INSERT_ID()", Master, Why::MasterFunction);
    check_why("SELECT LAST_INSERT_ID();", Master, Why::MasterFunction);
    check_why(
        "SELECT LAST_INSERT_ID() AS id ;  -- done",
        Master,
        Why::MasterFunction,
    );
    check_why("SELECT @@identity", Master, Why::MasterFunction);
    check_why("SELECT @@IDENTITY", Master, Why::MasterFunction);
    check_why(
        "SELECT @@session.last_insert_id",
        Master,
        Why::MasterFunction,
    );
    check_why("SELECT ROW_COUNT()", Master, Why::MasterFunction);
    check("UPDATE t SET id=LAST_INSERT_ID(id+1)", Master);
    assert!(!classify(b"SELECT LAST_INSERT_ID();").multi);
}

#[test]
fn temporary_tables_go_to_the_master_and_pin() {
    check_why(
        "CREATE TEMPORARY TABLE tmp_x AS SELECT * FROM t",
        Master,
        Why::TempTable,
    );
    check_why(
        "CREATE OR REPLACE TEMPORARY TABLE ps_cat_restriction (id int)",
        Master,
        Why::TempTable,
    );
    check_why(
        "DROP TEMPORARY TABLE IF EXISTS tmp_x",
        Master,
        Why::TempTable,
    );
    check_why("CREATE TABLE t (temporary int)", Master, Why::Ddl);
    let s = classify(b"CREATE TEMPORARY TABLE tmp_x (id int)");
    assert_eq!(pins_session(&s), Some(Why::TempTable));
}

#[test]
fn transactions_and_autocommit() {
    kind("SET autocommit=0", StmtKind::SetAutocommit(false));
    kind("SET autocommit = 1", StmtKind::SetAutocommit(true));
    kind("SET autocommit=1;", StmtKind::SetAutocommit(true));
    kind("SET @@autocommit := 0", StmtKind::SetAutocommit(false));
    kind("SET SESSION @@session.autocommit = 0", StmtKind::SetSession);
    kind("set AUTOCOMMIT=off", StmtKind::SetAutocommit(false));
    kind("SET SESSION autocommit=ON", StmtKind::SetAutocommit(true));
    kind(
        "SET LOCAL autocommit := FALSE",
        StmtKind::SetAutocommit(false),
    );
    kind("SET @@autocommit=1", StmtKind::SetAutocommit(true));
    kind("SET @@session.autocommit=0", StmtKind::SetAutocommit(false));
    kind(
        "/*!40101 SET autocommit=0 */",
        StmtKind::SetAutocommit(false),
    );
    kind("SET autocommit=0, sql_mode=''", StmtKind::SetSession);
    kind("SET GLOBAL autocommit=0", StmtKind::SetGlobal);
    kind("SET @@global.autocommit=0", StmtKind::SetGlobal);
    kind("SET autocommit=2", StmtKind::SetSession);
    check_why("SET autocommit=0", Master, Why::Set);
    // after SET autocommit=0 the session reports in_transaction: the SELECT goes to the master
    let s = classify(b"SELECT version FROM t WHERE id=1");
    let r = route(&RouterContext {
        in_transaction: true,
        ..ctx(&s)
    });
    assert_eq!(
        r,
        Route {
            target: Master,
            why: Why::Transaction
        }
    );
    let default = StmtKind::Begin {
        access: Access::Default,
    };
    kind("BEGIN", default.clone());
    kind("begin work", default.clone());
    kind("BEGIN NOT ATOMIC SELECT 1; END", StmtKind::Other);
    kind("START TRANSACTION", default.clone());
    kind("START TRANSACTION WITH CONSISTENT SNAPSHOT", default);
    kind(
        "START TRANSACTION READ WRITE",
        StmtKind::Begin {
            access: Access::ReadWrite,
        },
    );
    kind("START SLAVE", StmtKind::Other);
    kind("COMMIT WORK AND NO CHAIN NO RELEASE", StmtKind::Commit);
    kind("ROLLBACK", StmtKind::Rollback);
    kind("ROLLBACK WORK AND CHAIN", StmtKind::Rollback);
    kind("ROLLBACK TO SAVEPOINT sp1", StmtKind::Savepoint);
    kind("ROLLBACK WORK TO sp1", StmtKind::Savepoint);
    kind("SAVEPOINT sp1", StmtKind::Savepoint);
    kind("RELEASE SAVEPOINT sp1", StmtKind::Savepoint);
}

#[test]
fn user_and_session_variables() {
    kind("SET @sessionvariable='value'", StmtKind::SetUserVar);
    kind("SET @a := 1", StmtKind::SetUserVar);
    kind("SET @a = 1, @@session.sql_mode = ''", StmtKind::SetUserVar);
    kind(
        "SET NAMES utf8mb4 COLLATE 'utf8mb4_unicode_ci'",
        StmtKind::SetSession,
    );
    kind("SET NAMES utf8", StmtKind::SetSession);
    kind("SET CHARACTER SET utf8", StmtKind::SetSession);
    kind("SET CHARSET latin1", StmtKind::SetSession);
    kind("SET @@session.sql_select_limit=10", StmtKind::SetSession);
    kind(
        "SET SESSION group_concat_max_len=100000",
        StmtKind::SetSession,
    );
    kind(
        "SET sql_mode=CONCAT(@@sql_mode, ',STRICT_ALL_TABLES'), time_zone='+00:00'",
        StmtKind::SetSession,
    );
    kind(
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        StmtKind::SetSession,
    );
    kind("SET GLOBAL max_connections=1000", StmtKind::SetGlobal);
    kind(
        "SET GLOBAL read_only=1, sort_buffer_size=100",
        StmtKind::SetGlobal,
    );
    kind(
        "SET GLOBAL TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        StmtKind::SetGlobal,
    );
    kind("SET PASSWORD = PASSWORD('x')", StmtKind::SetGlobal);
    kind("SET ROLE admin", StmtKind::SetGlobal);
    kind("SET DEFAULT ROLE admin FOR u", StmtKind::SetGlobal);
    check_why("SET @x=1", Master, Why::UserVariable);
    check_why("SELECT @sessionvariable", Master, Why::UserVariable);
    check_why("SELECT @x:=MAX(id) FROM t", Master, Why::UserVariable);
    check_why("SET NAMES utf8mb4", Master, Why::Set);
    let s = classify(b"SELECT @x:=MAX(id) FROM t");
    assert!(s.user_var_write && s.user_vars);
    assert_eq!(pins_session(&s), Some(Why::UserVariable));
    assert_eq!(
        pins_session(&classify(b"SET @a=1")),
        Some(Why::UserVariable)
    );
    assert_eq!(pins_session(&classify(b"SELECT @a")), None);
    assert_eq!(pins_session(&classify(b"SET NAMES utf8")), None);
    let s = classify(b"SELECT @@session.tx_read_only");
    assert!(s.session_vars && !s.user_vars);
    assert_eq!(route(&ctx(&s)).target, Read);
}

#[test]
fn load_data_goes_to_the_master() {
    kind(
        "LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE t",
        StmtKind::LoadData { local: true },
    );
    kind(
        "LOAD DATA CONCURRENT LOCAL INFILE 'x.csv' INTO TABLE t",
        StmtKind::LoadData { local: true },
    );
    kind(
        "load data infile '/tmp/x' into table t",
        StmtKind::LoadData { local: false },
    );
    kind(
        "LOAD XML LOCAL INFILE 'x.xml' INTO TABLE t",
        StmtKind::LoadData { local: true },
    );
    check_why(
        "LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE t",
        Master,
        Why::LoadData,
    );
    assert!(!classify(b"LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE t").into);
}

#[test]
fn multi_statements_route_by_their_strongest_part() {
    let s = classify(b"INSERT INTO test(t) VALUES ('a'); SELECT LAST_INSERT_ID() AS LID;");
    assert!(s.multi && !s.all_reads);
    assert_eq!(s.kind, StmtKind::Insert);
    check(
        "INSERT INTO test(t) VALUES ('a'); SELECT LAST_INSERT_ID() AS LID;",
        Master,
    );
    check_why("USE db1; SELECT 1", Master, Why::Use);
    let s = classify(b"SELECT 1; SELECT 2");
    assert!(s.multi && s.all_reads);
    check("SELECT 1; SELECT 2", Read);
    check_why("SELECT 1; UPDATE t SET a=1", Master, Why::MultiStatement);
    check_why(
        "SELECT * FROM t; DELETE FROM t",
        Master,
        Why::MultiStatement,
    );
    check_why("SELECT 1; SELECT 2 FOR UPDATE", Master, Why::Locking);
    let s = classify(b"SELECT 1 ; ; -- trailing\n /* c */ ");
    assert!(!s.multi && s.all_reads);
    check("SELECT ';' FROM t", Read);
    let s = classify(b"USE db1; SELECT 1; COMMIT");
    assert_eq!(s.kind, StmtKind::Use(b"db1".to_vec()));
    assert_eq!(s.rest, vec![StmtKind::Select, StmtKind::Commit]);
    assert!(classify(b"SELECT 1;").rest.is_empty());
    assert_eq!(
        pins_session(&classify(b"SELECT 1; PREPARE s FROM 'SELECT 2'")),
        Some(Why::Prepare)
    );
    assert_eq!(
        pins_session(&classify(b"SELECT 1; SET @a=1")),
        Some(Why::UserVariable)
    );
    assert_eq!(
        pins_session(&classify(b"SELECT 1; CREATE TEMPORARY TABLE x (a int)")),
        Some(Why::TempTable)
    );
}

#[test]
fn call_goes_to_the_master_and_pins() {
    check_why("CALL p()", Master, Why::Call);
    check_why("call shop.p(1, @out)", Master, Why::Call);
    assert_eq!(pins_session(&classify(b"CALL p()")), Some(Why::Call));
}

#[test]
fn read_only_transactions() {
    let read_only = StmtKind::Begin {
        access: Access::ReadOnly,
    };
    kind("START TRANSACTION READ ONLY", read_only.clone());
    kind(
        "START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT",
        read_only,
    );
    kind("SET SESSION TRANSACTION READ ONLY", StmtKind::SetSession);
    kind("SET SESSION TRANSACTION READ WRITE", StmtKind::SetSession);
    kind("SET GLOBAL TRANSACTION READ ONLY", StmtKind::SetGlobal);
    // Without a scope: the next transaction only (never replayed).
    let next = |read_only| StmtKind::SetNextTransaction { read_only };
    kind("SET TRANSACTION READ ONLY", next(true));
    kind(
        "set transaction read only, isolation level read committed",
        next(true),
    );
    // The access mode is looked for among the first words only: past them
    // the SET is an ordinary one-shot, on the master.
    kind(
        "SET TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY",
        next(false),
    );
    kind("SET TRANSACTION READ WRITE", next(false));
    kind(
        "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
        next(false),
    );
    kind(
        "SET transaction_isolation = 'READ-COMMITTED'",
        StmtKind::SetSession,
    );
    check_why("SET TRANSACTION READ ONLY", Read, Why::ReadOnlyTx);
    check_why("SET TRANSACTION READ WRITE", Master, Why::Set);
    check_why("SET TRANSACTION READ ONLY; SELECT 1", Master, Why::Set);
    // On a read node, like a read, unless something ties the session to the master.
    check_why("START TRANSACTION READ ONLY", Read, Why::ReadOnlyTx);
    check_why(
        "START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT",
        Read,
        Why::ReadOnlyTx,
    );
    check_why("START TRANSACTION READ WRITE", Master, Why::Transaction);
    check_why(
        "/* sqlproxy:master */ START TRANSACTION READ ONLY",
        Master,
        Why::Transaction,
    );
    let stmt = classify(b"START TRANSACTION READ ONLY");
    for c in [
        RouterContext {
            pinned: true,
            ..ctx(&stmt)
        },
        RouterContext {
            in_transaction: true,
            ..ctx(&stmt)
        },
        RouterContext {
            read_split: false,
            ..ctx(&stmt)
        },
    ] {
        assert_eq!(route(&c).target, Master, "{c:?}");
    }
    check("SELECT @@session.transaction_read_only", Read);
    check("SELECT @@tx_read_only", Read);
}

#[test]
fn locking_reads() {
    check_why(
        "SELECT * FROM t WHERE id=1 FOR UPDATE",
        Master,
        Why::Locking,
    );
    check_why(
        "SELECT * FROM t WHERE id=1 for update skip locked",
        Master,
        Why::Locking,
    );
    check_why(
        "SELECT * FROM t WHERE id=1 FOR UPDATE NOWAIT",
        Master,
        Why::Locking,
    );
    check_why(
        "SELECT * FROM t WHERE id=1 LOCK IN SHARE MODE",
        Master,
        Why::Locking,
    );
    check_why("SELECT * FROM t FOR SHARE", Master, Why::Locking);
    check_why("(SELECT * FROM t FOR UPDATE)", Master, Why::Locking);
    check("SELECT `for`, `update` FROM t", Read);
    check("SELECT 'FOR UPDATE' FROM t", Read);
    check("SELECT * FROM t /* FOR UPDATE */", Read);
}

#[test]
fn select_into_and_master_functions() {
    check_why("SELECT a INTO @x FROM t", Master, Why::SelectInto);
    check_why(
        "SELECT * FROM t INTO OUTFILE '/tmp/x'",
        Master,
        Why::SelectInto,
    );
    check_why(
        "SELECT a FROM t INTO DUMPFILE '/tmp/x'",
        Master,
        Why::SelectInto,
    );
    assert!(classify(b"SELECT a INTO @x FROM t").user_var_write);
    check_why("SELECT GET_LOCK('x', 10)", Master, Why::MasterFunction);
    check_why("SELECT RELEASE_LOCK('x')", Master, Why::MasterFunction);
    check_why("SELECT IS_FREE_LOCK('x')", Master, Why::MasterFunction);
    check_why(
        "SELECT MASTER_GTID_WAIT('0-1-100', 1)",
        Master,
        Why::MasterFunction,
    );
    check_why("SELECT NEXTVAL(seq)", Master, Why::MasterFunction);
    check_why("SELECT NEXT VALUE FOR seq", Master, Why::MasterFunction);
    check_why("SELECT PREVIOUS VALUE FOR seq", Master, Why::MasterFunction);
    check_why("SELECT lastval(s)", Master, Why::MasterFunction);
    assert_eq!(
        pins_session(&classify(b"SELECT GET_LOCK('x', 10)")),
        Some(Why::NamedLock)
    );
    // Non-deterministic reads still go to a read node; the cache is what refuses them
    // (`non_deterministic.rs` tests that judgment).
    check("SELECT NOW(), RAND(), UUID()", Read);
}

#[test]
fn show_of_connection_or_node_state() {
    check_why("SHOW WARNINGS", Master, Why::SameConnection);
    check_why("SHOW ERRORS LIMIT 1", Master, Why::SameConnection);
    check_why("SHOW COUNT(*) WARNINGS", Master, Why::SameConnection);
    check_why("SELECT @@warning_count", Master, Why::SameConnection);
    check_why("SHOW STATUS LIKE 'Handler%'", Master, Why::SameConnection);
    check_why("SHOW FULL PROCESSLIST", Master, Why::MasterFunction);
    check_why("SHOW MASTER STATUS", Master, Why::MasterFunction);
    check_why("SHOW SLAVE STATUS", Master, Why::MasterFunction);
    check_why("SHOW GLOBAL STATUS", Master, Why::MasterFunction);
    check_why(
        "GET DIAGNOSTICS CONDITION 1 @p = MESSAGE_TEXT",
        Master,
        Why::Unknown,
    );
    check("SHOW VARIABLES LIKE 'sql_mode'", Read);
    check("SHOW CREATE TABLE ps_product", Read);
    check("SHOW DATABASES", Read);
    check("SHOW INDEX FROM ps_product", Read);
}

#[test]
fn a_read_only_transaction_takes_nothing_that_could_change_its_read_node() {
    let fits = |sql: &str| fits_read_only_tx(&classify(sql.as_bytes()));
    for sql in [
        "SELECT * FROM t",
        "SHOW WARNINGS",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT a",
        "SET NAMES utf8mb4",
        "CALL p()",
        "SELECT 1; SHOW WARNINGS",
    ] {
        assert!(fits(sql), "{sql}");
    }
    for sql in [
        "INSERT INTO t VALUES (1)",
        "UPDATE t SET a = 1",
        "CREATE TABLE u (a INT)",
        "ANALYZE TABLE t",
        "FLUSH TABLES",
        "SET GLOBAL max_connections = 10",
        "XA START 'x'",
        "LOCK TABLES t READ",
        // The transaction ends, and what follows would run on the read node.
        "COMMIT; INSERT INTO t VALUES (1)",
        "ROLLBACK; CREATE TABLE u (a INT)",
        "SET autocommit = 1; DELETE FROM t",
        "SELECT 1; COMMIT",
    ] {
        assert!(!fits(sql), "{sql}");
    }
}
