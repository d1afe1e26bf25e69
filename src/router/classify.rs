//! Statement facts from one pass over the tokens: kind, master-only flags, hint and digest.
//!
//! [`classify`] is the hot-path entry. It runs the [`Lexer`] once; each token updates the
//! per-statement scan (kind from the first tokens, flags from keyword patterns) and the
//! digest. Only when the scan ends in [`StmtKind::Other`] does it ask [`analyze`] (sqlparser
//! behind a verdict cache keyed by the digest) whether the text is in fact a plain read.
//! Nothing here allocates except the digest, the `USE` name, and a verdict-cache miss.

use super::analyze::{self, Verdict, VerdictCache};
use super::digest::Digest;
use super::keywords::{self, Kw};
use super::lexer::{Lexer, TokenKind};
use super::stmt_scan::{Flags, StmtScan};

pub use super::lexer::Hint;

/// Facts about one COM_QUERY / COM_STMT_PREPARE text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// Kind of the first statement (of the inner one for `SET STATEMENT ... FOR`).
    pub kind: StmtKind,
    /// More than one statement separated by `;` (a trailing `;` is not multi).
    pub multi: bool,
    /// Every statement is a plain read (Select/Show) with no master-only flag.
    pub all_reads: bool,
    /// Every statement is a Select or Show, master-only flags aside: none
    /// of them writes (false when the text could not be scanned to its end).
    pub reads_only: bool,
    /// `FOR UPDATE`, `FOR SHARE`, `LOCK IN SHARE MODE` (any statement).
    pub locking: bool,
    /// `SELECT ... INTO` (@var, OUTFILE, DUMPFILE).
    pub into: bool,
    /// Must run on the master: LAST_INSERT_ID(, FOUND_ROWS(, ROW_COUNT(, the lock functions,
    /// MASTER_GTID_WAIT(, MASTER_POS_WAIT(, NEXTVAL(, LASTVAL(, SETVAL(, `NEXT VALUE FOR`,
    /// `PREVIOUS VALUE FOR`, @@identity, @@last_insert_id; also SHOW of node-local state
    /// (PROCESSLIST, MASTER/SLAVE/REPLICA STATUS, BINLOG, BINARY LOGS, ENGINE, GLOBAL STATUS).
    pub master_func: bool,
    /// Reads or writes a user variable `@x` (not `@@x`).
    pub user_vars: bool,
    /// Writes a user variable: `@x :=`, `INTO @x`, or a `SET @x`.
    pub user_var_write: bool,
    /// `SQL_CALC_FOUND_ROWS`.
    pub calc_found_rows: bool,
    /// `CREATE TEMPORARY TABLE` / `DROP TEMPORARY TABLE`.
    pub temp_table: bool,
    /// `GET_LOCK(`, `LOCK TABLE(S)`, `FLUSH TABLES WITH READ LOCK` / `FOR EXPORT`.
    pub uses_lock: bool,
    /// The result may differ between two runs over the same data: NOW(, RAND(, UUID(,
    /// CURRENT_TIMESTAMP, variables, SQL_NO_CACHE, ... (`non_deterministic.rs`). The cache
    /// never keeps it; routing does not look at it.
    pub non_deterministic: bool,
    /// Reads `@@x` / `@@session.x`.
    pub session_vars: bool,
    /// Depends on the connection that ran the previous statement: SHOW WARNINGS/ERRORS,
    /// SHOW COUNT(*) WARNINGS, SHOW PROFILE(S), `SHOW [SESSION] STATUS`, @@warning_count,
    /// @@error_count, GET DIAGNOSTICS, LAST_INSERT_ID(, FOUND_ROWS(, ROW_COUNT(, @@identity.
    pub same_conn: bool,
    /// Changes accounts or privileges (GRANT, REVOKE, CREATE/ALTER/DROP/
    /// RENAME USER or ROLE, SET PASSWORD, SET DEFAULT ROLE, FLUSH PRIVILEGES): pooled
    /// connections logged in before it must not serve new sessions.
    pub accounts: bool,
    /// `SET ROLE`: the role is not replayed on the session's other
    /// connections, so the session stays on the master, where it ran.
    pub sets_role: bool,
    /// Leaves on its connections what COM_RESET_CONNECTION does not undo:
    /// the current role (`SET ROLE`), the profiling history (`SET
    /// profiling`), or may (an SQL-level `EXECUTE [IMMEDIATE]`, whose text
    /// the proxy does not see). Those connections must never serve another
    /// session.
    pub outlives_reset: bool,
    /// `SET STATEMENT ... FOR <stmt>`: `kind` and the flags describe `<stmt>`.
    pub set_statement: bool,
    /// `/* sqlproxy:master */` or `/* sqlproxy:replica */` in any comment.
    pub hint: Option<Hint>,
    /// Normalized text: literals → `?`, comments dropped, keywords upper-cased, identifiers
    /// as written, `IN (...)` lists collapsed.
    pub digest: String,
    /// Kinds of the statements after the first (empty unless `multi`).
    pub rest: Vec<StmtKind>,
}

/// What kind of statement a text starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StmtKind {
    /// SELECT, WITH ... SELECT, VALUES, TABLE, (SELECT ...).
    Select,
    /// SHOW, DESCRIBE/DESC, EXPLAIN of a read, HELP.
    Show,
    Insert,
    Update,
    Delete,
    Replace,
    LoadData {
        local: bool,
    },
    /// CREATE/ALTER/DROP/RENAME/TRUNCATE/GRANT/REVOKE, ANALYZE/OPTIMIZE/REPAIR/CHECK/CHECKSUM
    /// TABLE, FLUSH.
    Ddl,
    /// `BEGIN [WORK]`, `START TRANSACTION [READ ONLY|READ WRITE|WITH CONSISTENT SNAPSHOT]`.
    Begin {
        access: Access,
    },
    Commit,
    Rollback,
    /// `SAVEPOINT`, `RELEASE SAVEPOINT`, `ROLLBACK [WORK] TO [SAVEPOINT]`.
    Savepoint,
    /// Exactly `SET [SESSION|LOCAL|@@session.|@@local.|@@]autocommit = 0|1|ON|OFF|TRUE|FALSE`.
    SetAutocommit(bool),
    /// SET of session system variables only (SET NAMES, SET CHARACTER SET,
    /// SET SESSION TRANSACTION, ...).
    SetSession,
    /// `SET TRANSACTION ...` without a scope: the characteristics of the
    /// session's next transaction only, so never replayed elsewhere.
    SetNextTransaction {
        read_only: bool,
    },
    /// A SET that assigns a user variable (possibly with system variables).
    SetUserVar,
    /// SET GLOBAL / @@global.x, SET PASSWORD, SET ROLE, SET DEFAULT ROLE.
    SetGlobal,
    /// USE db (backticks removed, raw bytes).
    Use(Vec<u8>),
    LockTables,
    UnlockTables,
    Call,
    Prepare,
    Execute,
    Deallocate,
    Xa,
    /// KILL [HARD|SOFT] [CONNECTION|QUERY] n; `id` is None unless n is a plain number.
    Kill {
        query: bool,
        id: Option<u64>,
    },
    Do,
    /// Anything else, or not understood (goes to the master).
    Other,
}

/// The access mode a transaction's first statement names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Neither: the session's (or a one-shot `SET TRANSACTION`'s) mode.
    Default,
    ReadOnly,
    ReadWrite,
}

impl StmtKind {
    /// A data change: INSERT, UPDATE, DELETE, REPLACE, LOAD DATA.
    pub fn writes_rows(&self) -> bool {
        matches!(
            self,
            StmtKind::Insert
                | StmtKind::Update
                | StmtKind::Delete
                | StmtKind::Replace
                | StmtKind::LoadData { .. }
        )
    }

    /// Select or Show.
    pub fn is_read(&self) -> bool {
        matches!(self, StmtKind::Select | StmtKind::Show)
    }
}

impl Statement {
    /// True if any flag forbids running a read on a read node.
    pub fn has_master_flag(&self) -> bool {
        self.locking
            || self.into
            || self.master_func
            || self.user_vars
            || self.calc_found_rows
            || self.temp_table
            || self.uses_lock
            || self.same_conn
    }
}

/// The parts of a session's sql_mode that change how its text is lexed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LexMode {
    /// sql_mode contains `NO_BACKSLASH_ESCAPES`: `\` is an ordinary byte in strings.
    pub no_backslash_escapes: bool,
}

/// Classifies `sql` (default sql_mode); an `Other` verdict is re-checked with sqlparser via
/// the global verdict cache.
pub fn classify(sql: &[u8]) -> Statement {
    classify_with(sql, LexMode::default(), analyze::global())
}

/// [`classify`] with the session's lexing mode and an explicit verdict cache.
pub fn classify_with(sql: &[u8], mode: LexMode, cache: &VerdictCache) -> Statement {
    let (mut stmt, complete) = scan_inner(sql, mode);
    if stmt.kind == StmtKind::Other && complete && !stmt.multi && !stmt.digest.is_empty() {
        let verdict = cache.verdict(&stmt.digest, sql);
        if verdict == Verdict::PlainRead {
            stmt.kind = StmtKind::Select;
            stmt.all_reads = !stmt.has_master_flag();
        }
    }
    stmt
}

/// The lexer pass alone, without the sqlparser fallback.
pub fn scan(sql: &[u8]) -> Statement {
    scan_inner(sql, LexMode::default()).0
}

/// The single pass. Returns the statement and whether the text lexed to the end.
fn scan_inner(sql: &[u8], mode: LexMode) -> (Statement, bool) {
    let mut lexer = Lexer::with_backslash_escapes(sql, !mode.no_backslash_escapes);
    let mut digest = Digest::with_capacity(sql.len().min(4096));
    let mut cur = StmtScan::new();
    let mut out = Acc::default();
    let mut complete = true;
    // Tokens of the current statement so far (a `SET STATEMENT` prefix included).
    let mut in_stmt = 0usize;
    for tok in lexer.by_ref() {
        match tok.kind {
            TokenKind::Semicolon => {
                out.finish(sql, &cur);
                cur = StmtScan::new();
                in_stmt = 0;
                continue;
            }
            TokenKind::Unterminated => {
                complete = false;
                digest.push(sql, &tok, Kw::None, false);
                break;
            }
            _ => {}
        }
        if in_stmt == 0 && out.count > 0 {
            digest.statement_break();
        }
        in_stmt += 1;
        let (kw, upper) = if tok.kind == TokenKind::Word {
            keywords::lookup_ci(sql.get(tok.start..tok.end).unwrap_or_default())
                .unwrap_or((Kw::None, false))
        } else {
            (Kw::None, false)
        };
        digest.push(sql, &tok, kw, upper);
        cur.feed(sql, &tok, kw);
    }
    out.finish(sql, &cur);
    if !complete {
        out.first_kind = Some(match out.first_kind {
            Some(k) if out.count > 1 => k,
            _ => StmtKind::Other,
        });
        out.all_reads = false;
    }
    let f = out.flags;
    let kind = out.first_kind.unwrap_or(StmtKind::Other);
    let stmt = Statement {
        all_reads: out.all_reads && out.count > 0 && complete,
        reads_only: out.reads_only && out.count > 0 && complete,
        multi: out.count > 1,
        kind,
        locking: f.locking,
        into: out.into,
        master_func: f.master_func,
        user_vars: f.user_vars,
        user_var_write: f.user_var_write || out.set_user_var,
        calc_found_rows: f.calc_found_rows,
        temp_table: f.temp_table,
        uses_lock: f.uses_lock,
        non_deterministic: f.non_det,
        session_vars: f.session_vars,
        same_conn: f.same_conn,
        accounts: f.accounts,
        sets_role: f.sets_role,
        outlives_reset: f.outlives_reset,
        set_statement: out.set_statement,
        hint: lexer.hint(),
        digest: digest.finish(),
        rest: out.rest,
    };
    (stmt, complete)
}

/// What the finished statements add up to.
struct Acc {
    count: usize,
    first_kind: Option<StmtKind>,
    all_reads: bool,
    reads_only: bool,
    into: bool,
    set_user_var: bool,
    set_statement: bool,
    flags: Flags,
    rest: Vec<StmtKind>,
}

impl Default for Acc {
    fn default() -> Self {
        Acc {
            count: 0,
            first_kind: None,
            all_reads: true,
            reads_only: true,
            into: false,
            set_user_var: false,
            set_statement: false,
            flags: Flags::default(),
            rest: Vec::new(),
        }
    }
}

impl Acc {
    fn finish(&mut self, src: &[u8], s: &StmtScan) {
        if s.ntok == 0 {
            return;
        }
        let kind = s.kind(src);
        let f = s.flags;
        let into = f.saw_into && kind == StmtKind::Select;
        let master_only = f.locking
            || into
            || f.master_func
            || f.user_vars
            || f.calc_found_rows
            || f.temp_table
            || f.uses_lock
            || f.same_conn;
        self.all_reads &= kind.is_read() && !master_only;
        self.reads_only &= kind.is_read();
        self.into |= into;
        self.set_user_var |= kind == StmtKind::SetUserVar;
        self.set_statement |= s.set_statement;
        let acc = &mut self.flags;
        acc.locking |= f.locking;
        acc.master_func |= f.master_func;
        acc.user_vars |= f.user_vars;
        acc.user_var_write |= f.user_var_write;
        acc.calc_found_rows |= f.calc_found_rows;
        acc.temp_table |= f.temp_table;
        acc.uses_lock |= f.uses_lock || kind == StmtKind::LockTables;
        acc.non_det |= f.non_det;
        acc.session_vars |= f.session_vars;
        acc.same_conn |= f.same_conn;
        acc.accounts |= f.accounts;
        acc.sets_role |= f.sets_role;
        acc.outlives_reset |= f.outlives_reset || kind == StmtKind::Execute;
        if self.first_kind.is_none() {
            self.first_kind = Some(kind);
        } else {
            self.rest.push(kind);
        }
        self.count += 1;
    }
}
