//! The slow path: sqlparser decides what the lexer could not, and its verdict is cached.
//!
//! sqlparser 0.64 costs 7–12 µs for a point select and hundreds of µs for a 2 KB statement,
//! and cannot read several MariaDB forms (`LOCK IN SHARE MODE`, `SET @a := 1`, `XA`, ...). So
//! it runs only for texts the classifier left as `Other`, once per digest: the verdict is kept
//! in a bounded, sharded map keyed by the digest (literals replaced), so the same statement
//! with other values costs one map look-up. A text the parser cannot read is cached as
//! [`Verdict::Unparsed`] (it goes to the master). Only [`Verdict::PlainRead`] may turn a
//! statement into a read; routing never depends on the parser succeeding. [`tables`] lists the
//! tables a text names, for the result cache's invalidation.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use std::ops::ControlFlow;

use sqlparser::ast::{visit_relations, Query, SetExpr, Statement as Ast};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

/// What sqlparser says about a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Exactly one query with no INTO, no locking clause, no data-changing CTE.
    PlainRead,
    /// Parsed, and not a plain read.
    NotRead,
    /// Not parsed (syntax sqlparser lacks, non-UTF-8, too long): treat as unknown.
    Unparsed,
}

/// Texts longer than this are not parsed (the parse would cost more than the query): master.
pub const MAX_ANALYZE_LEN: usize = 16 * 1024;
/// Nesting depth sqlparser may recurse to, so a hostile text cannot exhaust the stack.
pub const RECURSION_LIMIT: usize = 64;
/// Digests kept by the global cache: enough for every distinct statement shape of a shop,
/// at roughly 100–300 bytes each.
pub const DEFAULT_CAPACITY: usize = 8192;
/// Shards of the cache, so sessions on different cores rarely wait on the same lock.
const SHARDS: usize = 16;

/// Why a text could not be analyzed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalyzeError {
    #[error("statement of {len} bytes exceeds the analysis limit of {MAX_ANALYZE_LEN} bytes")]
    TooLong { len: usize },
    #[error("statement is not valid UTF-8 (first bad byte at offset {at})")]
    NotUtf8 { at: usize },
    #[error("sqlparser cannot read the statement: {reason}")]
    Parse { reason: String },
}

/// Parses `sql` with the MySQL dialect, within the length and recursion limits.
pub fn parse(sql: &[u8]) -> Result<Vec<Ast>, AnalyzeError> {
    if sql.len() > MAX_ANALYZE_LEN {
        return Err(AnalyzeError::TooLong { len: sql.len() });
    }
    let text = std::str::from_utf8(sql).map_err(|e| AnalyzeError::NotUtf8 {
        at: e.valid_up_to(),
    })?;
    Parser::new(&MySqlDialect {})
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| AnalyzeError::Parse {
            reason: e.to_string(),
        })
}

/// Parses `sql` and judges it; no cache.
pub fn analyze(sql: &[u8]) -> Verdict {
    match parse(sql).as_deref() {
        Ok([Ast::Query(q)]) if query_is_read(q) => Verdict::PlainRead,
        Ok(_) => Verdict::NotRead,
        Err(_) => Verdict::Unparsed,
    }
}

/// The tables a text names (read or written), unquoted, `db.table` where qualified, each once,
/// in order of first appearance. For cache invalidation; resolve unqualified names against the
/// session's schema.
pub fn tables(sql: &[u8]) -> Result<Vec<String>, AnalyzeError> {
    let stmts = parse(sql)?;
    let mut out: Vec<String> = Vec::new();
    let _: ControlFlow<()> = visit_relations(&stmts, |name| {
        let parts: Vec<&str> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident())
            .map(|i| i.value.as_str())
            .collect();
        let joined = parts.join(".");
        if !out.contains(&joined) {
            out.push(joined);
        }
        ControlFlow::Continue(())
    });
    Ok(out)
}

fn query_is_read(q: &Query) -> bool {
    q.locks.is_empty()
        && q.for_clause.is_none()
        && q.with
            .as_ref()
            .is_none_or(|w| w.cte_tables.iter().all(|c| query_is_read(&c.query)))
        && body_is_read(&q.body)
}

fn body_is_read(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(s) => s.into.is_none(),
        SetExpr::Query(q) => query_is_read(q),
        SetExpr::SetOperation { left, right, .. } => body_is_read(left) && body_is_read(right),
        SetExpr::Values(_) | SetExpr::Table(_) => true,
        _ => false,
    }
}

/// A bounded map digest → verdict, safe to share between sessions.
pub struct VerdictCache {
    shards: Vec<Mutex<HashMap<String, Verdict>>>,
    per_shard: usize,
    hasher: RandomState,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl VerdictCache {
    /// A cache holding at most about `capacity` digests.
    pub fn new(capacity: usize) -> Self {
        VerdictCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached verdict for `digest`, or parses `sql` and caches the result.
    pub fn verdict(&self, digest: &str, sql: &[u8]) -> Verdict {
        let Some(shard) = self.shard(digest) else {
            return analyze(sql);
        };
        if let Some(v) = lock(shard).get(digest) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return *v;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        // Parse outside the lock: a slow parse must not stall other sessions.
        let verdict = analyze(sql);
        if sql.len() <= MAX_ANALYZE_LEN {
            let mut map = lock(shard);
            if map.len() >= self.per_shard {
                // Evict an arbitrary entry (HashMap order is random per process).
                if let Some(old) = map.keys().next().cloned() {
                    map.remove(&old);
                }
            }
            map.insert(digest.to_owned(), verdict);
        }
        verdict
    }

    fn shard(&self, digest: &str) -> Option<&Mutex<HashMap<String, Verdict>>> {
        let h = self.hasher.hash_one(digest) as usize;
        self.shards.get(h % SHARDS)
    }

    /// Number of digests held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (hits, misses) since creation.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// Locks a shard; a poisoned lock only means another thread panicked mid-insert, and the map
/// of plain values is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The process-wide cache used by [`super::classify()`].
pub fn global() -> &'static VerdictCache {
    static CACHE: OnceLock<VerdictCache> = OnceLock::new();
    CACHE.get_or_init(|| VerdictCache::new(DEFAULT_CAPACITY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(analyze(b"SELECT 1"), Verdict::PlainRead);
        assert_eq!(
            analyze(b"(SELECT a FROM t) UNION (SELECT b FROM u)"),
            Verdict::PlainRead
        );
        assert_eq!(
            analyze(b"WITH c AS (SELECT 1) SELECT * FROM c"),
            Verdict::PlainRead
        );
        assert_eq!(analyze(b"SELECT a FROM t FOR UPDATE"), Verdict::NotRead);
        assert_eq!(analyze(b"SELECT a INTO @x FROM t"), Verdict::NotRead);
        assert_eq!(analyze(b"UPDATE t SET a=1"), Verdict::NotRead);
        assert_eq!(analyze(b"SELECT 1; SELECT 2"), Verdict::NotRead);
        assert_eq!(
            analyze(b"SELECT a FROM t LOCK IN SHARE MODE"),
            Verdict::Unparsed
        );
        assert_eq!(analyze(b"SELECT \xff"), Verdict::Unparsed);
        let deep = format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500));
        assert_eq!(analyze(deep.as_bytes()), Verdict::Unparsed);
    }

    #[test]
    fn tables_are_unquoted_and_deduplicated() {
        let sql = b"SELECT * FROM `ps_product` p JOIN shop.`ps_lang` l ON 1 \
                    WHERE p.id IN (SELECT id FROM ps_product)";
        assert_eq!(
            tables(sql),
            Ok(vec!["ps_product".to_string(), "shop.ps_lang".to_string()])
        );
        assert_eq!(
            tables(b"INSERT INTO t2 SELECT * FROM t"),
            Ok(vec!["t2".to_string(), "t".to_string()])
        );
        assert!(matches!(
            tables(b"XA START 'x'"),
            Err(AnalyzeError::Parse { .. })
        ));
        assert_eq!(tables(b"SELECT \xff"), Err(AnalyzeError::NotUtf8 { at: 7 }));
        let long = vec![b' '; MAX_ANALYZE_LEN + 1];
        assert_eq!(
            tables(&long),
            Err(AnalyzeError::TooLong {
                len: MAX_ANALYZE_LEN + 1
            })
        );
    }

    #[test]
    fn cache_counts_hits_and_stays_bounded() {
        let cache = VerdictCache::new(SHARDS);
        assert_eq!(cache.verdict("SELECT ?", b"SELECT 1"), Verdict::PlainRead);
        assert_eq!(cache.verdict("SELECT ?", b"SELECT 2"), Verdict::PlainRead);
        assert_eq!(cache.stats(), (1, 1));
        for i in 0..200 {
            let sql = format!("SELECT {i} AS c{i}");
            cache.verdict(&sql, sql.as_bytes());
        }
        assert!(cache.len() <= SHARDS, "len {}", cache.len());
    }
}
