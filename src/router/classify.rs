//! Statement facts from one pass over the tokens: kind, master-only flags, hint and digest.
//!
//! [`classify`] is the hot-path entry. It runs the [`Lexer`] once; each token updates the
//! per-statement scan (kind from the first tokens, flags from keyword patterns) and the
//! [`Digest`]. Only when the scan ends in [`StmtKind::Other`] does it ask [`analyze`] (sqlparser
//! behind a verdict cache keyed by the digest) whether the text is in fact a plain read.
//! Nothing here allocates except the digest, the `USE` name, and a verdict-cache miss.

use super::analyze::{self, Verdict, VerdictCache};
use super::digest::Digest;
use super::keywords::{self, Kw, MAX_KEYWORD_LEN};
use super::lexer::{Lexer, Token, TokenKind};
use super::set::SetScan;

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
    /// NOW(, RAND(, UUID(, CURRENT_TIMESTAMP, user and system variables, ... (for the cache).
    pub non_deterministic: bool,
    /// Reads `@@x` / `@@session.x`.
    pub session_vars: bool,
    /// Depends on the connection that ran the previous statement: SHOW WARNINGS/ERRORS,
    /// SHOW COUNT(*) WARNINGS, SHOW PROFILE(S), SHOW [SESSION] STATUS, @@warning_count,
    /// @@error_count, GET DIAGNOSTICS, LAST_INSERT_ID(, FOUND_ROWS(, ROW_COUNT(, @@identity.
    pub same_conn: bool,
    /// `SET STATEMENT ... FOR <stmt>`: `kind` and the flags describe `<stmt>`.
    pub set_statement: bool,
    /// `/* sqlproxy:master */` or `/* sqlproxy:replica */` in any comment.
    pub hint: Option<Hint>,
    /// Normalized text; see [`super::digest`].
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
    /// BEGIN [WORK], START TRANSACTION [READ ONLY|READ WRITE|WITH CONSISTENT SNAPSHOT].
    Begin {
        read_only: bool,
    },
    Commit,
    Rollback,
    /// SAVEPOINT, RELEASE SAVEPOINT, ROLLBACK [WORK] TO [SAVEPOINT].
    Savepoint,
    /// Exactly `SET [SESSION|LOCAL|@@session.|@@local.|@@]autocommit = 0|1|ON|OFF|TRUE|FALSE`.
    SetAutocommit(bool),
    /// SET of session system variables only (SET NAMES, SET CHARACTER SET, SET TRANSACTION, ...).
    SetSession,
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

impl StmtKind {
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

/// Classifies `sql`; an `Other` verdict is re-checked with sqlparser via the global cache.
pub fn classify(sql: &[u8]) -> Statement {
    classify_with(sql, analyze::global())
}

/// [`classify`] with an explicit verdict cache.
pub fn classify_with(sql: &[u8], cache: &VerdictCache) -> Statement {
    let (mut stmt, complete) = scan_inner(sql);
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
    scan_inner(sql).0
}

/// Per-statement flags; merged into the [`Statement`] when the statement ends.
#[derive(Clone, Copy, Default)]
struct Flags {
    locking: bool,
    saw_into: bool,
    master_func: bool,
    user_vars: bool,
    user_var_write: bool,
    calc_found_rows: bool,
    temp_table: bool,
    uses_lock: bool,
    non_det: bool,
    session_vars: bool,
    same_conn: bool,
}

/// How many leading tokens of a statement are kept to decide its kind.
const HEAD: usize = 8;

/// The scan of the statement being read.
struct StmtScan {
    head: [(Token, Kw); HEAD],
    n_head: usize,
    ntok: usize,
    depth: i32,
    base_depth: i32,
    /// The last three tokens' keywords, newest first (`Kw::None` for non-keywords).
    prev: [Kw; 3],
    prev_kind: Option<TokenKind>,
    flags: Flags,
    with_main: Option<Kw>,
    set: SetScan,
    set_statement: bool,
}

const NO_TOKEN: Token = Token {
    kind: TokenKind::Punct,
    start: 0,
    end: 0,
    joined: false,
    call: false,
};

impl StmtScan {
    fn new() -> Self {
        StmtScan {
            head: [(NO_TOKEN, Kw::None); HEAD],
            n_head: 0,
            ntok: 0,
            depth: 0,
            base_depth: 0,
            prev: [Kw::None; 3],
            prev_kind: None,
            flags: Flags::default(),
            with_main: None,
            set: SetScan::new(),
            set_statement: false,
        }
    }

    fn head_kw(&self, i: usize) -> Kw {
        if i < self.n_head {
            self.head[i].1
        } else {
            Kw::None
        }
    }

    /// Restarts the head for the inner statement of `SET STATEMENT ... FOR`.
    fn start_inner(&mut self) {
        let flags = self.flags;
        *self = StmtScan::new();
        self.flags = flags;
        self.set_statement = true;
    }

    fn feed(&mut self, src: &[u8], tok: &Token, kw: Kw) {
        let punct =
            |p: &[u8]| tok.kind == TokenKind::Punct && src.get(tok.start..tok.end) == Some(p);
        let head0 = self.head_kw(0);
        if head0 == Kw::Set && kw == Kw::For && self.set.is_statement_prefix() && self.depth == 0 {
            self.start_inner();
            return;
        }
        if self.ntok == 0 && punct(b"(") {
            self.depth = self.depth.saturating_add(1);
            self.base_depth = self.depth;
            return;
        }
        self.ntok += 1;
        if self.n_head < HEAD {
            self.head[self.n_head] = (*tok, kw);
            self.n_head += 1;
        }
        if head0 == Kw::Set {
            self.set.feed(src, tok, kw, self.depth == self.base_depth);
        }
        let f = &mut self.flags;
        match tok.kind {
            TokenKind::Punct if punct(b"(") => self.depth = self.depth.saturating_add(1),
            TokenKind::Punct if punct(b")") => self.depth = self.depth.saturating_sub(1),
            TokenKind::Punct if punct(b":=") && self.prev_kind == Some(TokenKind::UserVar) => {
                f.user_var_write = true;
            }
            TokenKind::UserVar => {
                f.user_vars = true;
                f.non_det = true;
                if self.prev[0] == Kw::Into {
                    f.user_var_write = true;
                }
            }
            TokenKind::SysVar => {
                f.session_vars = true;
                f.non_det = true;
                let name = sysvar_name(src.get(tok.start..tok.end).unwrap_or_default());
                let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
                if is(b"identity") || is(b"last_insert_id") {
                    f.master_func = true;
                    f.same_conn = true;
                } else if is(b"warning_count") || is(b"error_count") {
                    f.same_conn = true;
                }
            }
            TokenKind::Word => self.keyword(tok, kw, head0),
            _ => {}
        }
        self.prev = [kw, self.prev[0], self.prev[1]];
        self.prev_kind = Some(tok.kind);
    }

    fn keyword(&mut self, tok: &Token, kw: Kw, head0: Kw) {
        let prev = self.prev;
        let f = &mut self.flags;
        match kw {
            Kw::FnSameConn if tok.call => {
                f.master_func = true;
                f.same_conn = true;
                f.non_det = true;
            }
            Kw::FnGetLock if tok.call => {
                f.master_func = true;
                f.uses_lock = true;
                f.non_det = true;
            }
            Kw::FnMaster if tok.call => {
                f.master_func = true;
                f.non_det = true;
            }
            Kw::FnNonDet | Kw::Database | Kw::User if tok.call => f.non_det = true,
            Kw::NonDetWord => f.non_det = true,
            Kw::SqlCalcFoundRows => f.calc_found_rows = true,
            Kw::Into => f.saw_into = true,
            Kw::Update | Kw::Share if prev[0] == Kw::For => f.locking = true,
            Kw::Mode if prev == [Kw::Share, Kw::In, Kw::Lock] => f.locking = true,
            Kw::For if prev[0] == Kw::Value && matches!(prev[1], Kw::Next | Kw::Previous) => {
                f.master_func = true;
                f.non_det = true;
            }
            Kw::For if head0 == Kw::Flush => f.uses_lock = true,
            Kw::Lock if head0 == Kw::Flush && prev[0] == Kw::Read && prev[1] == Kw::With => {
                f.uses_lock = true;
            }
            Kw::Temporary if matches!(head0, Kw::Create | Kw::Drop) && self.ntok <= 4 => {
                f.temp_table = true;
            }
            _ => {}
        }
        if head0 == Kw::Show {
            self.show_keyword(kw);
        }
        if head0 == Kw::With
            && self.ntok > 1
            && self.with_main.is_none()
            && self.depth == self.base_depth
            && matches!(
                kw,
                Kw::Select
                    | Kw::Insert
                    | Kw::Update
                    | Kw::Delete
                    | Kw::Replace
                    | Kw::Values
                    | Kw::Table
            )
        {
            self.with_main = Some(kw);
        }
    }

    /// SHOW of per-connection or per-node state.
    fn show_keyword(&mut self, kw: Kw) {
        let prev = self.prev[0];
        let after_show = prev == Kw::Show;
        let f = &mut self.flags;
        match kw {
            Kw::Warnings | Kw::Errors
                if after_show || (prev == Kw::None && self.prev_kind == Some(TokenKind::Punct)) =>
            {
                f.same_conn = true;
            }
            Kw::Profile | Kw::Profiles if after_show => f.same_conn = true,
            Kw::Status if prev == Kw::Global => f.master_func = true,
            Kw::Status if matches!(prev, Kw::Show | Kw::Session | Kw::Local) => f.same_conn = true,
            Kw::Processlist if self.ntok <= 3 => f.master_func = true,
            Kw::Master | Kw::Slave | Kw::Replica | Kw::Binlog | Kw::Binary | Kw::Engine
                if after_show =>
            {
                f.master_func = true;
            }
            _ => {}
        }
    }

    /// Decides the kind once the statement has ended.
    fn kind(&self, src: &[u8]) -> StmtKind {
        let h = |i: usize| self.head_kw(i);
        let has = |kw: Kw| (1..self.n_head).any(|i| self.head[i].1 == kw);
        let table_next = matches!(h(1), Kw::Table | Kw::Tables);
        match h(0) {
            Kw::Select | Kw::Values | Kw::Table => StmtKind::Select,
            Kw::With => match self.with_main {
                Some(Kw::Select | Kw::Values | Kw::Table) => StmtKind::Select,
                Some(Kw::Update) => StmtKind::Update,
                Some(Kw::Delete) => StmtKind::Delete,
                Some(Kw::Insert) => StmtKind::Insert,
                Some(Kw::Replace) => StmtKind::Replace,
                _ => StmtKind::Other,
            },
            Kw::Insert => StmtKind::Insert,
            Kw::Update => StmtKind::Update,
            Kw::Delete => StmtKind::Delete,
            Kw::Replace => StmtKind::Replace,
            Kw::Load if matches!(h(1), Kw::Data | Kw::Xml) => StmtKind::LoadData {
                local: (2..5).any(|i| h(i) == Kw::Local),
            },
            Kw::Drop if h(1) == Kw::Prepare => StmtKind::Deallocate,
            Kw::Create
            | Kw::Alter
            | Kw::Drop
            | Kw::Rename
            | Kw::Truncate
            | Kw::Grant
            | Kw::Revoke
            | Kw::Optimize
            | Kw::Repair
            | Kw::Flush => StmtKind::Ddl,
            Kw::Analyze if table_next || matches!(h(1), Kw::NoWriteToBinlog | Kw::Local) => {
                StmtKind::Ddl
            }
            Kw::Check | Kw::Checksum if table_next => StmtKind::Ddl,
            Kw::Begin if self.ntok == 1 || (self.ntok == 2 && h(1) == Kw::Work) => {
                StmtKind::Begin { read_only: false }
            }
            Kw::Start if h(1) == Kw::Transaction => StmtKind::Begin {
                read_only: (2..self.n_head).any(|i| h(i) == Kw::Read && h(i + 1) == Kw::Only),
            },
            Kw::Commit => StmtKind::Commit,
            Kw::Rollback if h(1) == Kw::To || (h(1) == Kw::Work && h(2) == Kw::To) => {
                StmtKind::Savepoint
            }
            Kw::Rollback => StmtKind::Rollback,
            Kw::Savepoint => StmtKind::Savepoint,
            Kw::Release if h(1) == Kw::Savepoint => StmtKind::Savepoint,
            Kw::Set => self.set.kind(src, &self.head[..self.n_head], self.ntok),
            Kw::Use if self.ntok == 2 => StmtKind::Use(unquote(
                src.get(self.head[1].0.start..self.head[1].0.end)
                    .unwrap_or_default(),
            )),
            Kw::Lock if table_next => StmtKind::LockTables,
            Kw::Unlock if table_next => StmtKind::UnlockTables,
            Kw::Call => StmtKind::Call,
            Kw::Prepare => StmtKind::Prepare,
            Kw::Execute => StmtKind::Execute,
            Kw::Deallocate => StmtKind::Deallocate,
            Kw::Xa => StmtKind::Xa,
            Kw::Kill => self.kill(src),
            Kw::Do => StmtKind::Do,
            Kw::Show | Kw::Describe | Kw::Desc | Kw::Help => StmtKind::Show,
            Kw::Explain => {
                let writes = [Kw::Analyze, Kw::Insert, Kw::Update, Kw::Delete, Kw::Replace];
                if writes.iter().any(|&w| has(w)) {
                    StmtKind::Other
                } else {
                    StmtKind::Show
                }
            }
            _ => StmtKind::Other,
        }
    }

    /// KILL [HARD|SOFT] [CONNECTION|QUERY [ID]] n
    fn kill(&self, src: &[u8]) -> StmtKind {
        let mut i = 1;
        if matches!(self.head_kw(i), Kw::Hard | Kw::Soft) {
            i += 1;
        }
        let query = self.head_kw(i) == Kw::Query;
        if matches!(self.head_kw(i), Kw::Query | Kw::Connection) {
            i += 1;
        }
        let by_query_id = self.head_kw(i) == Kw::Id;
        let id = match self.head.get(i) {
            Some((tok, _))
                if i + 1 == self.ntok && !by_query_id && tok.kind == TokenKind::Number =>
            {
                src.get(tok.start..tok.end)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .and_then(|s| s.parse::<u64>().ok())
            }
            _ => None,
        };
        StmtKind::Kill { query, id }
    }
}

/// The name of a system variable token without `@@` and scope: `@@session.x` → `x`.
pub(crate) fn sysvar_name(tok: &[u8]) -> &[u8] {
    let name = tok.get(2..).unwrap_or_default();
    match name.iter().position(|&c| c == b'.') {
        Some(dot) => name.get(dot + 1..).unwrap_or_default(),
        None => name,
    }
}

/// Removes backticks from `` `db` `` and undoubles ``` `` ```; returns bare names as they are.
fn unquote(raw: &[u8]) -> Vec<u8> {
    match raw {
        [b'`', inner @ .., b'`'] => {
            let mut out = Vec::with_capacity(inner.len());
            let mut i = 0;
            while let Some(&b) = inner.get(i) {
                out.push(b);
                i += if b == b'`' && inner.get(i + 1) == Some(&b'`') {
                    2
                } else {
                    1
                };
            }
            out
        }
        _ => raw.to_vec(),
    }
}

/// Looks a word up in the keyword table (ASCII case-insensitive).
fn lookup_word(word: &[u8]) -> Option<(Kw, bool)> {
    if word.len() > MAX_KEYWORD_LEN || !word.first().is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    let mut buf = [0u8; MAX_KEYWORD_LEN];
    let upper = buf.get_mut(..word.len())?;
    for (d, s) in upper.iter_mut().zip(word) {
        *d = s.to_ascii_uppercase();
    }
    keywords::lookup(upper)
}

/// The single pass. Returns the statement and whether the text lexed to the end.
fn scan_inner(sql: &[u8]) -> (Statement, bool) {
    let mut lexer = Lexer::new(sql);
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
            lookup_word(sql.get(tok.start..tok.end).unwrap_or_default())
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
        if self.first_kind.is_none() {
            self.first_kind = Some(kind);
        } else {
            self.rest.push(kind);
        }
        self.count += 1;
    }
}
