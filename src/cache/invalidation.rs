//! Table generations: the cache's notion of "has this table changed".
//!
//! Every table the cache has seen has a counter ([`TableGen`]); a write through the proxy
//! bumps the counters of the tables it names, and a write whose tables are unknown bumps the
//! global epoch, which every entry depends on. A SELECT snapshots the counters of its tables
//! *before* it runs ([`GenSnapshot`]); its result is stored only if none moved while it ran,
//! and an entry is served only while all of them still hold the snapshotted values. That is
//! what closes the race where a SELECT that started before a write stores its stale result
//! after the write's invalidation ran: the stale entry carries the old generation and is
//! never served. Counters are never removed, so a handle stays valid for the process's life.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Tables tracked at most; beyond this, writes to untracked tables bump the epoch and reads
/// of untracked tables are not cached (a guard against clients inventing table names).
pub const MAX_TABLES: usize = 100_000;

/// One table's write counter.
#[derive(Debug)]
pub struct TableGen {
    /// `schema.table`, lower-cased.
    pub name: Box<str>,
    gen: AtomicU64,
}

impl TableGen {
    pub fn get(&self) -> u64 {
        self.gen.load(Ordering::SeqCst)
    }
}

/// The counters of all tables, plus the epoch.
#[derive(Debug, Default)]
pub struct Generations {
    tables: RwLock<HashMap<Box<str>, Arc<TableGen>>>,
    epoch: AtomicU64,
}

/// The tables a write touches: known counters, or "unknown" (bump the epoch).
#[derive(Debug, Default, Clone)]
pub struct WriteSet {
    pub tables: Vec<Arc<TableGen>>,
    pub unknown: bool,
}

impl WriteSet {
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && !self.unknown
    }

    /// Adds `other`'s tables (a transaction accumulating its writes).
    pub fn merge(&mut self, other: &WriteSet) {
        self.unknown |= other.unknown;
        for t in &other.tables {
            if !self.tables.iter().any(|x| Arc::ptr_eq(x, t)) {
                self.tables.push(Arc::clone(t));
            }
        }
    }
}

/// Generations of a statement's tables (and the epoch) at one moment.
#[derive(Debug, Clone)]
pub struct GenSnapshot {
    epoch: u64,
    gens: Box<[(Arc<TableGen>, u64)]>,
}

impl GenSnapshot {
    /// True while no table of the snapshot (nor the epoch) moved.
    pub fn is_current(&self, g: &Generations) -> bool {
        g.epoch() == self.epoch && self.gens.iter().all(|(t, v)| t.get() == *v)
    }

    /// Whether this snapshot covers `table` (for `CACHE FLUSH 'table'`).
    pub fn reads(&self, table: &str) -> bool {
        self.gens.iter().any(|(t, _)| &*t.name == table)
    }
}

impl Generations {
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// The counter of `schema.table` (names lower-cased), created on first use; None
    /// once [`MAX_TABLES`] are tracked.
    pub fn table(&self, qualified: &str) -> Option<Arc<TableGen>> {
        let name = qualified.to_ascii_lowercase();
        if let Some(t) = read(&self.tables).get(name.as_str()) {
            return Some(Arc::clone(t));
        }
        let mut map = write(&self.tables);
        if let Some(t) = map.get(name.as_str()) {
            return Some(Arc::clone(t));
        }
        if map.len() >= MAX_TABLES {
            return None;
        }
        let t = Arc::new(TableGen {
            name: name.clone().into_boxed_str(),
            gen: AtomicU64::new(0),
        });
        map.insert(name.into_boxed_str(), Arc::clone(&t));
        Some(t)
    }

    /// The counter of `qualified` if it exists (no creation).
    pub fn existing(&self, qualified: &str) -> Option<Arc<TableGen>> {
        read(&self.tables)
            .get(qualified.to_ascii_lowercase().as_str())
            .cloned()
    }

    pub fn snapshot(&self, tables: &[Arc<TableGen>]) -> GenSnapshot {
        // The epoch first: a bump between the two loads only makes the snapshot older.
        let epoch = self.epoch();
        GenSnapshot {
            epoch,
            gens: tables.iter().map(|t| (Arc::clone(t), t.get())).collect(),
        }
    }

    /// Invalidates everything that reads a table of `w`; returns how many counters moved.
    pub fn bump(&self, w: &WriteSet) -> u64 {
        for t in &w.tables {
            t.gen.fetch_add(1, Ordering::SeqCst);
        }
        if w.unknown {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
        w.tables.len() as u64 + u64::from(w.unknown)
    }

    /// Invalidates every entry.
    pub fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

// A poisoned lock only means a thread panicked while inserting a counter; the map is intact.
pub(super) fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_during_a_read_makes_its_snapshot_stale() {
        let g = Generations::default();
        let t = g.table("Shop.Product").into_iter().collect::<Vec<_>>();
        let other = g.table("shop.lang").into_iter().collect::<Vec<_>>();
        let snap = g.snapshot(&t);
        assert!(snap.is_current(&g));
        assert!(snap.reads("shop.product"));
        g.bump(&WriteSet {
            tables: other,
            unknown: false,
        });
        assert!(snap.is_current(&g), "another table moved");
        g.bump(&WriteSet {
            tables: t.clone(),
            unknown: false,
        });
        assert!(!snap.is_current(&g));
        let snap = g.snapshot(&t);
        g.bump(&WriteSet {
            tables: vec![],
            unknown: true,
        });
        assert!(!snap.is_current(&g), "the epoch covers every entry");
        assert!(Arc::ptr_eq(&t[0], &g.table("shop.PRODUCT").unwrap()));
    }
}
