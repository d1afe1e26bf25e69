//! The routing decision: master or any healthy read node, with the reason.
//!
//! [`route`] is a pure function of a [`RouterContext`]: the classified statement plus the
//! session facts the router may look at. Its rules, checked top to bottom (first match wins):
//!
//! | # | statement / session | target | why |
//! |---|---|---|---|
//! | 1 | INSERT, UPDATE, DELETE, REPLACE | master | `Write` |
//! | 2 | `LOAD DATA [LOCAL]` | master | `LoadData` |
//! | 3 | CREATE/DROP TEMPORARY TABLE | master | `TempTable` |
//! | 4 | FLUSH TABLES WITH READ LOCK, LOCK/UNLOCK TABLES | master | `LockTables` |
//! | 5 | other DDL (CREATE, ALTER, DROP, TRUNCATE, GRANT, FLUSH, OPTIMIZE ...) | master | `Ddl` |
//! | 0 | `START TRANSACTION READ ONLY`, or `SET TRANSACTION READ ONLY` (the next transaction's mode), outside a transaction, not pinned, read split on, no master hint | read node | `ReadOnlyTx` |
//! | 6 | BEGIN, START TRANSACTION, COMMIT, ROLLBACK, SAVEPOINT | master | `Transaction` |
//! | 7 | XA ... | master | `Xa` |
//! | 8 | SET of any kind (the session replays `SetSession` on its other connections) | master | `Set` / `UserVariable` |
//! | 9 | USE db | master | `Use` |
//! | 10 | CALL | master | `Call` |
//! | 11 | SQL-level PREPARE / EXECUTE / DEALLOCATE | master | `Prepare` |
//! | 12 | DO, KILL | master | `Do`, `Kill` |
//! | 13 | anything not understood (incl. unterminated quotes, HANDLER, EXPLAIN of a write) | master | `Unknown` |
//! | 14 | read with FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE | master | `Locking` |
//! | 15 | SELECT ... INTO | master | `SelectInto` |
//! | 16 | LAST_INSERT_ID(), FOUND_ROWS(), GET_LOCK(), NEXTVAL(), @@identity, SHOW PROCESSLIST ... | master | `MasterFunction` |
//! | 17 | SHOW WARNINGS/ERRORS, @@warning_count ... (about the previous statement) | master | `SameConnection` |
//! | 18 | SQL_CALC_FOUND_ROWS | master | `FoundRows` |
//! | 19 | reads or writes a user variable `@x` | master | `UserVariable` |
//! | 20 | several statements, not all plain reads | master | `MultiStatement` |
//! | 21 | session pinned to the master (user vars, temp tables, locks, SQL PREPARE, CALL) | master | `Pinned` |
//! | 22 | inside a transaction (server says IN_TRANS, or autocommit is off) | master | `Transaction` |
//! | 23 | `routing.read_split = false` | master | `ReadSplitOff` |
//! | 24 | `/* sqlproxy:master */` hint | master | `Hint` |
//! | 25 | `/* sqlproxy:replica */` hint on a plain read | read node | `Hint` |
//! | 26 | plain SELECT / SHOW / DESCRIBE / EXPLAIN SELECT / HELP (`@@session` reads allowed) | read node | `Read` |
//!
//! A replica hint never sends a write, a transaction or a pinned session's statement to a
//! read node: rules 1–24 come first. `SET STATEMENT ... FOR <stmt>` routes as `<stmt>`.

use std::fmt;

use super::classify::{Access, Hint, Statement, StmtKind};

/// Where a statement goes. `Read` = any healthy node by weight (topology picks which).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Master,
    Read,
}

/// Why a statement goes where it goes (for the debug log and admin output).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    Write,
    LoadData,
    Ddl,
    Transaction,
    Locking,
    MasterFunction,
    SameConnection,
    FoundRows,
    UserVariable,
    SelectInto,
    Call,
    LockTables,
    NamedLock,
    TempTable,
    Xa,
    Set,
    Use,
    Prepare,
    Do,
    Kill,
    Hint,
    Pinned,
    Unknown,
    MultiStatement,
    Read,
    ReadSplitOff,
    /// A cacheable read that missed the result cache runs on the master, so
    /// what it stores is committed data (`place`).
    CacheMiss,
    /// An execution that opens a cursor, and COM_STMT_FETCH (`place`).
    Cursor,
    /// An execution after COM_STMT_SEND_LONG_DATA (`place`).
    LongData,
    /// `START TRANSACTION READ ONLY` and every statement of that transaction:
    /// on the read node it began on (`place`).
    ReadOnlyTx,
    /// A protocol command that runs on the master (COM_STATISTICS, COM_PROCESS_KILL).
    Command,
}

impl Why {
    /// A short snake_case name for logs and admin output.
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Write => "write",
            Why::LoadData => "load_data",
            Why::Ddl => "ddl",
            Why::Transaction => "transaction",
            Why::Locking => "locking",
            Why::MasterFunction => "master_function",
            Why::SameConnection => "same_connection",
            Why::FoundRows => "found_rows",
            Why::UserVariable => "user_variable",
            Why::SelectInto => "select_into",
            Why::Call => "call",
            Why::LockTables => "lock_tables",
            Why::NamedLock => "named_lock",
            Why::TempTable => "temp_table",
            Why::Xa => "xa",
            Why::Set => "set",
            Why::Use => "use",
            Why::Prepare => "prepare",
            Why::Do => "do",
            Why::Kill => "kill",
            Why::Hint => "hint",
            Why::Pinned => "pinned",
            Why::Unknown => "unknown",
            Why::MultiStatement => "multi_statement",
            Why::Read => "read",
            Why::ReadSplitOff => "read_split_off",
            Why::CacheMiss => "cache_miss",
            Why::Cursor => "cursor",
            Why::LongData => "long_data",
            Why::ReadOnlyTx => "read_only_transaction",
            Why::Command => "command",
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The decision: target and reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub target: Target,
    pub why: Why,
}

impl Route {
    fn master(why: Why) -> Self {
        Route {
            target: Target::Master,
            why,
        }
    }
}

/// Everything [`route`] may look at.
#[derive(Clone, Copy, Debug)]
pub struct RouterContext<'a> {
    pub stmt: &'a Statement,
    /// The backend said SERVER_STATUS_IN_TRANS, or autocommit is off.
    pub in_transaction: bool,
    /// The session is pinned to the master (see [`pins_session`]).
    pub pinned: bool,
    /// Config `routing.read_split`.
    pub read_split: bool,
}

/// Decides where the statement goes; see the module table.
pub fn route(ctx: &RouterContext) -> Route {
    let s = ctx.stmt;
    let read_only = matches!(
        s.kind,
        StmtKind::Begin {
            access: Access::ReadOnly
        } | StmtKind::SetNextTransaction { read_only: true }
    );
    if read_only
        && !s.multi
        && !ctx.pinned
        && !ctx.in_transaction
        && ctx.read_split
        && s.hint != Some(Hint::Master)
    {
        return Route {
            target: Target::Read,
            why: Why::ReadOnlyTx,
        };
    }
    if let Some(why) = kind_why(s) {
        return Route::master(why);
    }
    if let Some(why) = flag_why(s) {
        return Route::master(why);
    }
    if s.multi && !s.all_reads {
        return Route::master(Why::MultiStatement);
    }
    if ctx.pinned {
        return Route::master(Why::Pinned);
    }
    if ctx.in_transaction {
        return Route::master(Why::Transaction);
    }
    if !ctx.read_split {
        return Route::master(Why::ReadSplitOff);
    }
    match s.hint {
        Some(Hint::Master) => Route::master(Why::Hint),
        Some(Hint::Replica) => Route {
            target: Target::Read,
            why: Why::Hint,
        },
        None => Route {
            target: Target::Read,
            why: Why::Read,
        },
    }
}

/// The reason a statement of this kind always goes to the master; None for reads.
fn kind_why(s: &Statement) -> Option<Why> {
    Some(match s.kind {
        StmtKind::Select | StmtKind::Show => return None,
        StmtKind::Insert | StmtKind::Update | StmtKind::Delete | StmtKind::Replace => Why::Write,
        StmtKind::LoadData { .. } => Why::LoadData,
        StmtKind::Ddl if s.temp_table => Why::TempTable,
        StmtKind::Ddl if s.uses_lock => Why::LockTables,
        StmtKind::Ddl => Why::Ddl,
        StmtKind::Begin { .. } | StmtKind::Commit | StmtKind::Rollback | StmtKind::Savepoint => {
            Why::Transaction
        }
        StmtKind::Xa => Why::Xa,
        StmtKind::SetUserVar => Why::UserVariable,
        StmtKind::SetAutocommit(_)
        | StmtKind::SetSession
        | StmtKind::SetNextTransaction { .. }
        | StmtKind::SetGlobal => Why::Set,
        StmtKind::Use(_) => Why::Use,
        StmtKind::LockTables | StmtKind::UnlockTables => Why::LockTables,
        StmtKind::Call => Why::Call,
        StmtKind::Prepare | StmtKind::Execute | StmtKind::Deallocate => Why::Prepare,
        StmtKind::Do => Why::Do,
        StmtKind::Kill { .. } => Why::Kill,
        StmtKind::Other => Why::Unknown,
    })
}

/// The first master-only flag of a read, in the table's order.
fn flag_why(s: &Statement) -> Option<Why> {
    [
        (s.locking, Why::Locking),
        (s.into, Why::SelectInto),
        (s.master_func, Why::MasterFunction),
        (s.same_conn, Why::SameConnection),
        (s.calc_found_rows, Why::FoundRows),
        (s.user_vars, Why::UserVariable),
        (s.temp_table, Why::TempTable),
        (s.uses_lock, Why::LockTables),
    ]
    .into_iter()
    .find_map(|(on, why)| on.then_some(why))
}

/// Whether a command may run inside a read-only transaction, which is open
/// on a read node. The node itself refuses writes while the transaction
/// lasts (1792); what it cannot refuse is a statement after one that ends the
/// transaction among several (`COMMIT; INSERT ...` would write on the read
/// node), nor what a read-only transaction does not stop (ANALYZE, FLUSH, a
/// global SET, XA). Such commands get the read-only transaction's error.
pub fn fits_read_only_tx(stmt: &Statement) -> bool {
    if stmt.multi {
        return stmt.reads_only;
    }
    !matches!(
        stmt.kind,
        StmtKind::Insert
            | StmtKind::Update
            | StmtKind::Delete
            | StmtKind::Replace
            | StmtKind::LoadData { .. }
            | StmtKind::Ddl
            | StmtKind::SetGlobal
            | StmtKind::LockTables
            | StmtKind::Xa
            | StmtKind::Other
    )
}

/// Whether running `stmt` pins the session to the master for the rest of its life, and why:
/// a user variable written, a temporary table, a named lock or table lock, an SQL-level
/// PREPARE or EXECUTE, or a CALL (a procedure may create temp tables or set variables we cannot see).
pub fn pins_session(stmt: &Statement) -> Option<Why> {
    let kinds = || std::iter::once(&stmt.kind).chain(&stmt.rest);
    let any = |k: StmtKind| kinds().any(|s| *s == k);
    if stmt.user_var_write || any(StmtKind::SetUserVar) {
        Some(Why::UserVariable)
    } else if stmt.temp_table {
        Some(Why::TempTable)
    } else if any(StmtKind::LockTables) || (stmt.uses_lock && any(StmtKind::Ddl)) {
        Some(Why::LockTables)
    } else if stmt.uses_lock {
        Some(Why::NamedLock)
    } else if any(StmtKind::Prepare) || any(StmtKind::Execute) {
        // EXECUTE IMMEDIATE runs a text the proxy does not see: a SET, a
        // lock, a temporary table may be in it.
        Some(Why::Prepare)
    } else if any(StmtKind::Call) {
        Some(Why::Call)
    } else if stmt.sets_role {
        // The role is not replayed on other connections: the session
        // stays on the master, where it ran.
        Some(Why::Set)
    } else if stmt.multi
        && kinds().any(|k| matches!(k, StmtKind::SetSession | StmtKind::SetAutocommit(_)))
    {
        // A SET among several statements is not replayed (only a SET alone
        // is): its connection alone has it.
        Some(Why::Set)
    } else {
        None
    }
}

/// Whether running `stmt` may leave state on its node connection that the
/// session neither replays nor is pinned for: a statement not understood
/// (a HANDLER opened), XA, a function whose value lives in the connection
/// (a sequence's `LASTVAL()` after `NEXTVAL()`, `LAST_INSERT_ID(expr)`) or
/// asks about its previous statement (`ROW_COUNT()`, `SHOW WARNINGS`: the
/// session relies on that), `SQL_CALC_FOUND_ROWS` (`FOUND_ROWS()` follows),
/// a global-kind SET (`SET ROLE`), a `SET TRANSACTION` among several
/// statements (the session follows only one on its own). Multiplexing
/// then leaves the session its node connections for the rest of its life.
pub fn keeps_connection(stmt: &Statement) -> bool {
    let kinds = || std::iter::once(&stmt.kind).chain(&stmt.rest);
    stmt.master_func
        || stmt.same_conn
        || stmt.calc_found_rows
        || kinds().any(|k| matches!(k, StmtKind::Other | StmtKind::Xa | StmtKind::SetGlobal))
        || (stmt.multi && kinds().any(|k| matches!(k, StmtKind::SetNextTransaction { .. })))
}
