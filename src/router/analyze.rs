//! The slow path: sqlparser decides what the lexer could not, and its verdict is cached.
//!
//! sqlparser 0.64 costs 7–12 µs for a point select and hundreds of µs for a 2 KB statement,
//! and cannot read several MariaDB forms (`LOCK IN SHARE MODE`, `SET @a := 1`, `XA`, ...). So
//! it runs only for texts the classifier left as `Other`, once per digest: the verdict is kept
//! in a bounded, sharded map keyed by the digest (literals replaced), so the same statement
//! with other values costs one map look-up. A text the parser cannot read is cached as
//! [`Verdict::Unparsed`] (it goes to the master). Only [`Verdict::PlainRead`] may turn a
//! statement into a read; routing never depends on the parser succeeding.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use sqlparser::ast::{Query, SetExpr, Statement as Ast};
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

/// Parses `sql` and judges it; no cache.
pub fn analyze(sql: &[u8]) -> Verdict {
    if sql.len() > MAX_ANALYZE_LEN {
        return Verdict::Unparsed;
    }
    let Ok(text) = std::str::from_utf8(sql) else {
        return Verdict::Unparsed;
    };
    let parsed = Parser::new(&MySqlDialect {})
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_statements());
    match parsed.as_deref() {
        Ok([Ast::Query(q)]) if query_is_read(q) => Verdict::PlainRead,
        Ok(_) => Verdict::NotRead,
        Err(_) => Verdict::Unparsed,
    }
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

/// The process-wide cache used by [`super::classify`].
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
