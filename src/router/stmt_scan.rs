//! The scan of one statement: its kind from the first tokens, its flags from keyword patterns.
//!
//! [`StmtScan`] is fed every token of one statement (between `;`s) by the classifier. It keeps
//! the first [`HEAD`] tokens, the paren depth and the last three keywords, which is all the
//! context the kind and the flags need: `FOR UPDATE`, `LOCK IN SHARE MODE`, `NEXT VALUE FOR`,
//! `INTO`, function calls, variables, `CREATE TEMPORARY`, `FLUSH ... WITH READ LOCK`, and the
//! main statement after a `WITH` list. `SET STATEMENT ... FOR` restarts the head on the inner
//! statement.

use super::classify::{Access, StmtKind};
use super::keywords::Kw;
use super::lexer::{Token, TokenKind};
use super::non_deterministic::makes_non_deterministic;
use super::set::SetScan;

/// Per-statement flags; merged into the [`Statement`] when the statement ends.
#[derive(Clone, Copy, Default)]
pub(super) struct Flags {
    pub(super) locking: bool,
    pub(super) saw_into: bool,
    pub(super) master_func: bool,
    pub(super) user_vars: bool,
    pub(super) user_var_write: bool,
    pub(super) calc_found_rows: bool,
    pub(super) temp_table: bool,
    pub(super) uses_lock: bool,
    pub(super) non_det: bool,
    pub(super) session_vars: bool,
    pub(super) same_conn: bool,
    pub(super) accounts: bool,
    pub(super) sets_role: bool,
    pub(super) outlives_reset: bool,
}

/// How many leading tokens of a statement are kept to decide its kind.
const HEAD: usize = 8;

/// The scan of the statement being read.
pub(super) struct StmtScan {
    head: [(Token, Kw); HEAD],
    n_head: usize,
    pub(super) ntok: usize,
    depth: i32,
    base_depth: i32,
    /// The last three tokens' keywords, newest first (`Kw::None` for non-keywords).
    prev: [Kw; 3],
    prev_kind: Option<TokenKind>,
    pub(super) flags: Flags,
    with_main: Option<Kw>,
    set: SetScan,
    pub(super) set_statement: bool,
}

const NO_TOKEN: Token = Token {
    kind: TokenKind::Punct,
    start: 0,
    end: 0,
    joined: false,
    call: false,
};

impl StmtScan {
    pub(super) fn new() -> Self {
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

    pub(super) fn feed(&mut self, src: &[u8], tok: &Token, kw: Kw) {
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
        f.non_det |= makes_non_deterministic(src, tok, kw, self.prev_kind, self.prev);
        match tok.kind {
            TokenKind::Punct if punct(b"(") => self.depth = self.depth.saturating_add(1),
            TokenKind::Punct if punct(b")") => self.depth = self.depth.saturating_sub(1),
            TokenKind::Punct if punct(b":=") && self.prev_kind == Some(TokenKind::UserVar) => {
                f.user_var_write = true;
            }
            TokenKind::UserVar => {
                f.user_vars = true;
                if self.prev[0] == Kw::Into {
                    f.user_var_write = true;
                }
            }
            TokenKind::SysVar => {
                f.session_vars = true;
                let name = sysvar_name(src.get(tok.start..tok.end).unwrap_or_default());
                let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
                f.outlives_reset |= head0 == Kw::Set && kept_through_reset(name);
                if is(b"identity") || is(b"last_insert_id") {
                    f.master_func = true;
                    f.same_conn = true;
                } else if is(b"warning_count") || is(b"error_count") {
                    f.same_conn = true;
                }
            }
            TokenKind::Word => {
                let word = |w: &[u8]| {
                    src.get(tok.start..tok.end)
                        .is_some_and(|t| t.eq_ignore_ascii_case(w))
                };
                // A node's grant tables edited and reloaded: as for GRANT, new
                // logins see what pooled connections logged in before do not.
                f.accounts |= head0 == Kw::Flush && word(b"privileges");
                f.outlives_reset |=
                    head0 == Kw::Set && src.get(tok.start..tok.end).is_some_and(kept_through_reset);
                self.keyword(tok, kw, head0);
            }
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
            }
            Kw::FnGetLock if tok.call => {
                f.master_func = true;
                f.uses_lock = true;
            }
            Kw::FnMaster if tok.call => f.master_func = true,
            Kw::SqlCalcFoundRows => f.calc_found_rows = true,
            Kw::Into => f.saw_into = true,
            Kw::Update | Kw::Share if prev[0] == Kw::For => f.locking = true,
            Kw::Mode if prev == [Kw::Share, Kw::In, Kw::Lock] => f.locking = true,
            Kw::For if prev[0] == Kw::Value && matches!(prev[1], Kw::Next | Kw::Previous) => {
                f.master_func = true;
            }
            Kw::For if head0 == Kw::Flush => f.uses_lock = true,
            Kw::Lock if head0 == Kw::Flush && prev[0] == Kw::Read && prev[1] == Kw::With => {
                f.uses_lock = true;
            }
            Kw::Temporary if matches!(head0, Kw::Create | Kw::Drop) && self.ntok <= 4 => {
                f.temp_table = true;
            }
            // GRANT, REVOKE; CREATE [OR REPLACE] / ALTER / DROP / RENAME USER
            // or ROLE; SET PASSWORD, SET DEFAULT ROLE.
            Kw::Grant | Kw::Revoke if self.ntok == 1 => f.accounts = true,
            Kw::User | Kw::Role
                if matches!(head0, Kw::Create | Kw::Alter | Kw::Drop | Kw::Rename)
                    && (self.ntok == 2 || (self.ntok == 4 && prev[0] == Kw::Replace)) =>
            {
                f.accounts = true;
            }
            Kw::Password if head0 == Kw::Set && self.ntok == 2 => f.accounts = true,
            Kw::Role if head0 == Kw::Set && self.ntok == 3 && prev[0] == Kw::Default => {
                f.accounts = true;
            }
            Kw::Role if head0 == Kw::Set && self.ntok == 2 => {
                f.sets_role = true;
                f.outlives_reset = true;
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
    pub(super) fn kind(&self, src: &[u8]) -> StmtKind {
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
                StmtKind::Begin {
                    access: Access::Default,
                }
            }
            Kw::Start if h(1) == Kw::Transaction => StmtKind::Begin {
                access: self.access(2),
            },
            Kw::Commit => StmtKind::Commit,
            Kw::Rollback if h(1) == Kw::To || (h(1) == Kw::Work && h(2) == Kw::To) => {
                StmtKind::Savepoint
            }
            Kw::Rollback => StmtKind::Rollback,
            Kw::Savepoint => StmtKind::Savepoint,
            Kw::Release if h(1) == Kw::Savepoint => StmtKind::Savepoint,
            Kw::Set if h(1) == Kw::Transaction && self.ntok > 2 => StmtKind::SetNextTransaction {
                read_only: self.access(2) == Access::ReadOnly,
            },
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
            Kw::Show | Kw::Help => StmtKind::Show,
            // DESCRIBE/DESC are synonyms of EXPLAIN: of a write (or with ANALYZE) it is Other.
            Kw::Explain | Kw::Describe | Kw::Desc => {
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

    /// The access mode among the leading tokens from `from` on: `READ ONLY`
    /// or `READ WRITE` (`READ COMMITTED` is an isolation level).
    fn access(&self, from: usize) -> Access {
        (from..self.n_head)
            .find_map(|i| match (self.head_kw(i), self.head_kw(i + 1)) {
                (Kw::Read, Kw::Only) => Some(Access::ReadOnly),
                (Kw::Read, Kw::Write) => Some(Access::ReadWrite),
                _ => None,
            })
            .unwrap_or(Access::Default)
    }

    /// `KILL [HARD|SOFT] [CONNECTION|QUERY [ID]] n`
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
pub(super) fn sysvar_name(tok: &[u8]) -> &[u8] {
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

/// Session variables whose effect COM_RESET_CONNECTION does not undo: the
/// profiling history (SHOW PROFILES: the statements' texts), and the network
/// settings MariaDB applies to the socket only when they are SET or at login
/// (a reset restores the variables' values, not the socket's).
fn kept_through_reset(name: &[u8]) -> bool {
    [
        &b"profiling"[..],
        b"net_write_timeout",
        b"net_retry_count",
        b"tcp_nodelay",
    ]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n))
}
