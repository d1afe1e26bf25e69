//! The cache's counters (atomics, updated on the hot path) and [`CacheStats`], the plain
//! snapshot that admin `SHOW CACHE`, `SHOW QUERY DIGEST` and /metrics will read once they
//! exist.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters.
#[derive(Debug, Default)]
pub struct Counters {
    pub lookups: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stores: AtomicU64,
    pub too_big: AtomicU64,
    pub stale: AtomicU64,
    pub evictions: AtomicU64,
    pub expirations: AtomicU64,
    pub invalidations: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A point-in-time copy of the cache's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries held (moka's estimate; exact after pending maintenance ran).
    pub entries: u64,
    /// Weighted bytes held (reply bytes + key + per-entry overhead).
    pub bytes: u64,
    /// Cacheable statements that looked in the cache (counted before any wait).
    pub lookups: u64,
    /// Answered from the cache, including waiters on another session's load.
    pub hits: u64,
    /// Went to the node.
    pub misses: u64,
    /// Results stored.
    pub stores: u64,
    /// Results over `max_entry_bytes`, relayed and not stored.
    pub too_big: u64,
    /// Results not stored or dropped because a write moved their tables.
    pub stale: u64,
    /// Entries evicted for size.
    pub evictions: u64,
    /// Entries whose TTL ran out.
    pub expirations: u64,
    /// Table counters moved by writes and flushes (one per table, one per epoch bump).
    pub invalidations: u64,
    /// Hits per digest, most hit first.
    pub digest_hits: Vec<(String, u64)>,
}

impl CacheStats {
    pub(super) fn from_counters(c: &Counters, entries: u64, bytes: u64) -> CacheStats {
        CacheStats {
            entries,
            bytes,
            lookups: get(&c.lookups),
            hits: get(&c.hits),
            misses: get(&c.misses),
            stores: get(&c.stores),
            too_big: get(&c.too_big),
            stale: get(&c.stale),
            evictions: get(&c.evictions),
            expirations: get(&c.expirations),
            invalidations: get(&c.invalidations),
            digest_hits: Vec::new(),
        }
    }

    /// hits / (hits + misses), 0 before any lookup.
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}
