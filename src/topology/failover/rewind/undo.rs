//! The tail undone: each row change turned into its inverse statement,
//! newest first, and all of them applied in one transaction that is not
//! logged. Rows are found by the primary key when the table has one, else
//! by every column (NULL-safe); each statement must touch exactly one row,
//! or nothing is changed. Only tables whose changes can be undone exactly
//! qualify: InnoDB (transactional), no triggers (they would fire again), no
//! generated columns, no foreign key that cascades into them from a
//! parent's change (cascades are not in the binlog), and column types whose
//! binlog values map back to SQL values one to one.

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Value;

use super::tail::{RowChange, TableName, Txn};
use super::{sql, RewindError, Session};

/// How a column's binlog value becomes a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// As it is.
    Plain,
    /// The binlog does not say an integer is unsigned (MariaDB logs no
    /// signedness by default): a negative value is the high half.
    Unsigned { bits: u32 },
    /// Seconds since the epoch, as text (`sec` or `sec.micros`).
    Timestamp,
    /// Years, as text; 0000 reads back as 1900.
    Year,
    /// The member bitmap, little-endian bytes.
    Set,
    /// The bits, big-endian bytes.
    Bit,
}

/// The kind for a column by its `DATA_TYPE` and `COLUMN_TYPE`; `None` for
/// types whose binlog values are not known to round-trip.
fn kind_of(data_type: &str, column_type: &str) -> Option<Kind> {
    let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
    let int = |bits| {
        Some(if unsigned {
            Kind::Unsigned { bits }
        } else {
            Kind::Plain
        })
    };
    match data_type.to_ascii_lowercase().as_str() {
        "tinyint" => int(8),
        "smallint" => int(16),
        "mediumint" => int(24),
        "int" => int(32),
        "bigint" => int(64),
        "timestamp" => Some(Kind::Timestamp),
        "year" => Some(Kind::Year),
        "set" => Some(Kind::Set),
        "bit" => Some(Kind::Bit),
        "decimal" | "float" | "double" | "date" | "datetime" | "time" | "char" | "varchar"
        | "binary" | "varbinary" | "tinytext" | "text" | "mediumtext" | "longtext" | "tinyblob"
        | "blob" | "mediumblob" | "longblob" | "enum" => Some(Kind::Plain),
        _ => None,
    }
}

/// The SQL expression for a placeholder and the value bound to it.
fn param(kind: Kind, value: &Value) -> (&'static str, Value) {
    let number = |bytes: &[u8], big_endian: bool| {
        let fold = |n: u64, b: &u8| (n << 8) | u64::from(*b);
        if big_endian {
            bytes.iter().fold(0, fold)
        } else {
            bytes.iter().rev().fold(0, fold)
        }
    };
    match (kind, value) {
        (Kind::Unsigned { bits }, Value::Int(i)) if *i < 0 => {
            let mask = if bits >= 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            ("?", Value::UInt(*i as u64 & mask))
        }
        (Kind::Timestamp, Value::Bytes(b)) if b.as_slice() == b"0" => {
            ("?", Value::Bytes(b"0000-00-00 00:00:00".to_vec()))
        }
        // The session's time zone is UTC: the seconds are what is stored.
        (Kind::Timestamp, Value::Bytes(_)) => {
            ("FROM_UNIXTIME(CAST(? AS DECIMAL(20,6)))", value.clone())
        }
        (Kind::Year, Value::Bytes(b)) if b.as_slice() == b"1900" => ("?", Value::Int(0)),
        (Kind::Set, Value::Bytes(b)) if b.len() <= 8 => ("?", Value::UInt(number(b, false))),
        (Kind::Bit, Value::Bytes(b)) if b.len() <= 8 => ("?", Value::UInt(number(b, true))),
        _ => ("?", value.clone()),
    }
}

#[derive(Debug)]
struct Column {
    name: String,
    kind: Kind,
}

/// A table as the undo needs it.
#[derive(Debug)]
struct Table {
    name: TableName,
    columns: Vec<Column>,
    /// Primary key columns (indexes into `columns`); empty: match every column.
    key: Vec<usize>,
}

/// One inverse statement.
#[derive(Debug, PartialEq)]
pub(super) struct Statement {
    table: TableName,
    sql: String,
    params: Vec<Value>,
}

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The statement that undoes `row` in `table`.
fn inverse(table: &Table, row: &RowChange) -> Result<Statement, RewindError> {
    let width = |values: &[Value]| {
        if values.len() == table.columns.len() {
            Ok(())
        } else {
            Err(RewindError::Table {
                table: table.name.clone(),
                why: format!(
                    "a row image has {} values for {} columns",
                    values.len(),
                    table.columns.len()
                ),
            })
        }
    };
    let mut params = Vec::new();
    let mut bind = |i: usize, values: &[Value]| {
        let (expr, v) = param(table.columns[i].kind, &values[i]);
        params.push(v);
        expr
    };
    let target = &table.name;
    let sql = match row {
        RowChange::Inserted(after) => {
            width(after)?;
            let matching = matching(table, after, &mut bind);
            format!("DELETE FROM {target} WHERE {matching} LIMIT 1")
        }
        RowChange::Deleted(before) => {
            width(before)?;
            let names: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
            let exprs: Vec<&str> = (0..table.columns.len()).map(|i| bind(i, before)).collect();
            format!(
                "INSERT INTO {target} ({}) VALUES ({})",
                names.join(", "),
                exprs.join(", ")
            )
        }
        RowChange::Updated { before, after } => {
            width(before)?;
            width(after)?;
            let set: Vec<String> = table
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{} = {}", quote(&c.name), bind(i, before)))
                .collect();
            let matching = matching(table, after, &mut bind);
            format!(
                "UPDATE {target} SET {} WHERE {matching} LIMIT 1",
                set.join(", ")
            )
        }
    };
    Ok(Statement {
        table: table.name.clone(),
        sql,
        params,
    })
}

/// `a <=> ? AND b <=> ?` over the key columns, or all columns without one.
fn matching(
    table: &Table,
    values: &[Value],
    bind: &mut impl FnMut(usize, &[Value]) -> &'static str,
) -> String {
    let columns: Vec<usize> = if table.key.is_empty() {
        (0..table.columns.len()).collect()
    } else {
        table.key.clone()
    };
    columns
        .into_iter()
        .map(|i| format!("{} <=> {}", quote(&table.columns[i].name), bind(i, values)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The inverse statements of `txns`, newest change first.
pub(super) async fn plan(
    session: &mut Session,
    txns: &[Txn],
) -> Result<Vec<Statement>, RewindError> {
    let mut tables: BTreeMap<TableName, Table> = BTreeMap::new();
    let mut out = Vec::new();
    for change in txns.iter().rev().flat_map(|t| t.changes.iter().rev()) {
        if !tables.contains_key(&change.table) {
            let table = describe(session, &change.table).await?;
            tables.insert(change.table.clone(), table);
        }
        let Some(table) = tables.get(&change.table) else {
            continue;
        };
        if table.columns.len() != change.columns {
            return Err(RewindError::Table {
                table: change.table.clone(),
                why: format!(
                    "the binlog has {} columns, the table now {}",
                    change.columns,
                    table.columns.len()
                ),
            });
        }
        out.push(inverse(table, &change.row)?);
    }
    Ok(out)
}

/// Reads what the undo needs to know of a table, and refuses a table whose
/// changes cannot be undone exactly.
async fn describe(session: &mut Session, name: &TableName) -> Result<Table, RewindError> {
    let refuse = |why: String| RewindError::Table {
        table: name.clone(),
        why,
    };
    let key = (name.schema.as_str(), name.name.as_str());
    let kind: Option<(Option<String>, String)> = select(
        session,
        "SELECT ENGINE, TABLE_TYPE FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        key,
    )
    .await?
    .into_iter()
    .next();
    match kind {
        // information_schema shows only what the account may SELECT.
        None => {
            return Err(refuse(
                "it does not exist, or the monitor account may not SELECT from it".into(),
            ))
        }
        Some((engine, table_type)) => {
            if table_type != "BASE TABLE" {
                return Err(refuse(format!("it is a {table_type}")));
            }
            if !engine
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case("InnoDB"))
            {
                return Err(refuse(format!(
                    "engine {} is not transactional",
                    engine.unwrap_or_default()
                )));
            }
        }
    }
    let rows: Vec<(String, String, String, String)> = select(
        session,
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_GENERATED FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        key,
    )
    .await?;
    let mut columns = Vec::new();
    for (column, data_type, column_type, generated) in rows {
        if generated != "NEVER" {
            return Err(refuse(format!("column {column} is generated")));
        }
        let kind = kind_of(&data_type, &column_type)
            .ok_or_else(|| refuse(format!("column {column} has type {column_type}")))?;
        columns.push(Column { name: column, kind });
    }
    let primary: Vec<String> = select(
        session,
        "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
        key,
    )
    .await?;
    let key_columns = primary
        .iter()
        .map(|p| columns.iter().position(|c| &c.name == p))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| refuse("its primary key names an unknown column".into()))?;
    let triggers: Vec<u64> = select(
        session,
        "SELECT COUNT(*) FROM information_schema.TRIGGERS \
         WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?",
        key,
    )
    .await?;
    if triggers.first().is_some_and(|&n| n > 0) {
        return Err(refuse("it has triggers, which the undo would fire".into()));
    }
    let cascades: Vec<u64> = select(
        session,
        "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS \
         WHERE UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ? \
         AND (DELETE_RULE NOT IN ('RESTRICT', 'NO ACTION') OR UPDATE_RULE NOT IN ('RESTRICT', 'NO ACTION'))",
        key,
    )
    .await?;
    if cascades.first().is_some_and(|&n| n > 0) {
        return Err(refuse(
            "a foreign key cascades from it, and cascaded changes are not in the binlog".into(),
        ));
    }
    Ok(Table {
        name: name.clone(),
        columns,
        key: key_columns,
    })
}

async fn select<T: mysql_async::prelude::FromRow + Send + 'static>(
    session: &mut Session,
    query: &str,
    params: (&str, &str),
) -> Result<Vec<T>, RewindError> {
    let node = session.node.clone();
    session
        .conn
        .exec(query, params)
        .await
        .map_err(sql(&node, "information_schema"))
}

/// Applies `statements` on the node in one transaction that is not
/// binlogged, each bounded by `limit`; any statement that does not touch
/// exactly one row (or fails) rolls all of them back.
pub(super) async fn apply(
    session: &mut Session,
    statements: &[Statement],
    limit: Duration,
) -> Result<(), RewindError> {
    // Not logged: the node's binlog is reset to the master's state after.
    // Binary: strings go in byte for byte whatever a column's charset. UTC:
    // timestamps are given as seconds. No foreign key checks: the end state
    // is one the node had before, consistent as it was then. A 0 written to
    // an AUTO_INCREMENT column stays 0.
    for setting in [
        "SET SESSION sql_log_bin = 0",
        "SET NAMES binary",
        "SET SESSION time_zone = '+00:00', foreign_key_checks = 0, sql_mode = 'NO_AUTO_VALUE_ON_ZERO'",
        "START TRANSACTION",
    ] {
        session.exec(setting).await?;
    }
    let node = session.node.clone();
    for st in statements {
        let ran = tokio::time::timeout(limit, session.conn.exec_drop(&st.sql, st.params.clone()))
            .await
            .map_err(|_| sql(&node, "undo")("timed out"))
            .and_then(|r| r.map_err(sql(&node, &format!("undo on {}", st.table))));
        let failure = match ran {
            Err(e) => Some(e),
            Ok(()) if session.conn.affected_rows() != 1 => Some(RewindError::NoMatch {
                table: st.table.clone(),
                rows: session.conn.affected_rows(),
            }),
            Ok(()) => None,
        };
        if let Some(e) = failure {
            if let Err(r) = session.exec("ROLLBACK").await {
                tracing::warn!(node = %node, error = %r, "rolling back the undo (the connection closes, which rolls it back too)");
            }
            return Err(e);
        }
    }
    session.exec("COMMIT").await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(key: &[usize]) -> Table {
        let columns = [
            ("id", Kind::Unsigned { bits: 32 }),
            ("note", Kind::Plain),
            ("at", Kind::Timestamp),
        ];
        Table {
            name: TableName {
                schema: "shop".into(),
                name: "t`x".into(),
            },
            columns: columns
                .iter()
                .map(|&(name, kind)| Column {
                    name: name.into(),
                    kind,
                })
                .collect(),
            key: key.to_vec(),
        }
    }

    fn row(id: i64, note: Option<&str>) -> Vec<Value> {
        vec![
            Value::Int(id),
            note.map_or(Value::NULL, |n| Value::Bytes(n.as_bytes().to_vec())),
            Value::Bytes(b"1700000000".to_vec()),
        ]
    }

    #[test]
    fn each_change_has_its_inverse() {
        let ts = "FROM_UNIXTIME(CAST(? AS DECIMAL(20,6)))";
        let rows: &[(&[usize], RowChange, String, usize)] = &[
            (
                &[0],
                RowChange::Inserted(row(7, Some("a"))),
                "DELETE FROM `shop`.`t``x` WHERE `id` <=> ? LIMIT 1".into(),
                1,
            ),
            (
                &[],
                RowChange::Inserted(row(7, None)),
                format!(
                    "DELETE FROM `shop`.`t``x` WHERE `id` <=> ? AND `note` <=> ? AND `at` <=> {ts} LIMIT 1"
                ),
                3,
            ),
            (
                &[0],
                RowChange::Deleted(row(7, Some("a"))),
                format!("INSERT INTO `shop`.`t``x` (`id`, `note`, `at`) VALUES (?, ?, {ts})"),
                3,
            ),
            (
                &[0],
                RowChange::Updated {
                    before: row(7, Some("old")),
                    after: row(7, Some("new")),
                },
                format!(
                    "UPDATE `shop`.`t``x` SET `id` = ?, `note` = ?, `at` = {ts} WHERE `id` <=> ? LIMIT 1"
                ),
                4,
            ),
        ];
        for (key, change, sql, n) in rows {
            let st = inverse(&table(key), change).expect("inverse");
            assert_eq!(&st.sql, sql);
            assert_eq!(st.params.len(), *n, "{sql}");
        }
        // An update sets the old values and finds the row by the new ones.
        let st = inverse(
            &table(&[1]),
            &RowChange::Updated {
                before: row(7, Some("old")),
                after: row(8, Some("new")),
            },
        )
        .expect("inverse");
        assert_eq!(st.params[0], Value::Int(7));
        assert_eq!(st.params[1], Value::Bytes(b"old".to_vec()));
        assert_eq!(st.params[3], Value::Bytes(b"new".to_vec()));
    }

    #[test]
    fn a_row_image_of_another_width_is_refused() {
        let short = RowChange::Inserted(vec![Value::Int(1)]);
        assert!(matches!(
            inverse(&table(&[0]), &short),
            Err(RewindError::Table { .. })
        ));
    }

    #[test]
    fn binlog_values_become_the_sql_values_they_were() {
        let rows: &[(Kind, Value, &str, Value)] = &[
            (
                Kind::Unsigned { bits: 32 },
                Value::Int(-1),
                "?",
                Value::UInt(4_294_967_295),
            ),
            (
                Kind::Unsigned { bits: 8 },
                Value::Int(-128),
                "?",
                Value::UInt(128),
            ),
            (
                Kind::Unsigned { bits: 64 },
                Value::Int(-1),
                "?",
                Value::UInt(u64::MAX),
            ),
            (
                Kind::Unsigned { bits: 32 },
                Value::Int(5),
                "?",
                Value::Int(5),
            ),
            (Kind::Plain, Value::Int(-1), "?", Value::Int(-1)),
            (
                Kind::Timestamp,
                Value::Bytes(b"0".to_vec()),
                "?",
                Value::Bytes(b"0000-00-00 00:00:00".to_vec()),
            ),
            (
                Kind::Timestamp,
                Value::Bytes(b"1700000000.250000".to_vec()),
                "FROM_UNIXTIME(CAST(? AS DECIMAL(20,6)))",
                Value::Bytes(b"1700000000.250000".to_vec()),
            ),
            (Kind::Timestamp, Value::NULL, "?", Value::NULL),
            (
                Kind::Year,
                Value::Bytes(b"1900".to_vec()),
                "?",
                Value::Int(0),
            ),
            (
                Kind::Year,
                Value::Bytes(b"2024".to_vec()),
                "?",
                Value::Bytes(b"2024".to_vec()),
            ),
            (
                Kind::Set,
                Value::Bytes(vec![0x05, 0x01]),
                "?",
                Value::UInt(0x0105),
            ),
            (
                Kind::Bit,
                Value::Bytes(vec![0x01, 0x02]),
                "?",
                Value::UInt(0x0102),
            ),
            (
                Kind::Plain,
                Value::Bytes(vec![0xe9, 0x00]),
                "?",
                Value::Bytes(vec![0xe9, 0x00]),
            ),
        ];
        for (kind, value, expr, want) in rows {
            assert_eq!(
                param(*kind, value),
                (*expr, want.clone()),
                "{kind:?} {value:?}"
            );
        }
    }

    #[test]
    fn column_types_map_to_kinds_or_are_refused() {
        let rows = [
            ("int", "int(10) unsigned", Some(Kind::Unsigned { bits: 32 })),
            (
                "mediumint",
                "mediumint(8) unsigned zerofill",
                Some(Kind::Unsigned { bits: 24 }),
            ),
            ("bigint", "bigint(20)", Some(Kind::Plain)),
            ("varchar", "varchar(20)", Some(Kind::Plain)),
            ("longtext", "longtext", Some(Kind::Plain)),
            ("timestamp", "timestamp(6)", Some(Kind::Timestamp)),
            ("set", "set('a','b')", Some(Kind::Set)),
            ("geometry", "geometry", None),
            ("inet6", "inet6", None),
            ("uuid", "uuid", None),
        ];
        for (data_type, column_type, want) in rows {
            assert_eq!(kind_of(data_type, column_type), want, "{column_type}");
        }
    }
}
