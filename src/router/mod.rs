//! TEMPORARY stand-in with the agreed API until the router branch lands.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StmtKind {
    Select,
    Show,
    Insert,
    Update,
    Delete,
    Replace,
    LoadData { local: bool },
    Ddl,
    Begin { read_only: bool },
    Commit,
    Rollback,
    Savepoint,
    SetAutocommit(bool),
    SetSession,
    SetUserVar,
    SetGlobal,
    Use(Vec<u8>),
    LockTables,
    UnlockTables,
    Call,
    Prepare,
    Execute,
    Deallocate,
    Xa,
    Kill { query: bool, id: Option<u64> },
    Do,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    Master,
    Replica,
}

#[derive(Debug, Clone)]
pub struct Statement {
    pub kind: StmtKind,
    pub multi: bool,
    pub all_reads: bool,
    pub locking: bool,
    pub into: bool,
    pub master_func: bool,
    pub user_vars: bool,
    pub calc_found_rows: bool,
    pub temp_table: bool,
    pub uses_lock: bool,
    pub non_deterministic: bool,
    pub session_vars: bool,
    pub hint: Option<Hint>,
    pub digest: String,
}

pub fn classify(sql: &[u8]) -> Statement {
    let s = String::from_utf8_lossy(sql)
        .trim_start()
        .to_ascii_uppercase();
    let kind = if s.starts_with("SELECT") {
        StmtKind::Select
    } else if s.starts_with("SHOW") {
        StmtKind::Show
    } else if s.starts_with("SET NAMES") {
        StmtKind::SetSession
    } else {
        StmtKind::Other
    };
    let user_vars = s.contains('@') && !s.contains("@@");
    Statement {
        all_reads: matches!(kind, StmtKind::Select | StmtKind::Show),
        kind,
        multi: false,
        locking: s.contains("FOR UPDATE"),
        into: false,
        master_func: s.contains("LAST_INSERT_ID") || s.contains("FOUND_ROWS"),
        user_vars,
        calc_found_rows: s.contains("SQL_CALC_FOUND_ROWS"),
        temp_table: s.contains("TEMPORARY"),
        uses_lock: false,
        non_deterministic: false,
        session_vars: false,
        hint: None,
        digest: s,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Master,
    Read,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Write,
    Transaction,
    Pinned,
    Unknown,
    Read,
    ReadSplitOff,
    UserVariable,
    TempTable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub target: Target,
    pub why: Why,
}

pub struct RouterContext<'a> {
    pub stmt: &'a Statement,
    pub in_transaction: bool,
    pub pinned: bool,
    pub read_split: bool,
}

pub fn route(ctx: &RouterContext) -> Route {
    let m = |why| Route {
        target: Target::Master,
        why,
    };
    if !ctx.read_split {
        return m(Why::ReadSplitOff);
    }
    if ctx.in_transaction {
        return m(Why::Transaction);
    }
    if ctx.pinned {
        return m(Why::Pinned);
    }
    let s = ctx.stmt;
    if s.all_reads && !s.locking && !s.master_func && !s.user_vars && !s.calc_found_rows {
        Route {
            target: Target::Read,
            why: Why::Read,
        }
    } else {
        m(Why::Unknown)
    }
}

pub fn pins_session(stmt: &Statement) -> Option<Why> {
    if stmt.user_vars {
        Some(Why::UserVariable)
    } else if stmt.temp_table {
        Some(Why::TempTable)
    } else {
        None
    }
}
