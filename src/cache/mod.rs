//! The result cache: complete replies of hot SELECTs, replayed byte for byte, and dropped
//! as soon as a write through the proxy touches one of their tables.
//!
//! * `key`: statement text normalized for comments/whitespace + everything that changes
//!   the reply's bytes.
//! * `shape`: per (schema, digest) analysis, done once: cacheable?, TTL, tables read or written.
//! * `invalidation`: per-table generation counters and the global epoch.
//! * `entry`: a stored reply and its replay with fresh sequence ids.
//! * `stats`: counters and the [`CacheStats`] snapshot for admin and metrics.
//!
//! Storage, the byte weigher, TTLs and single flight are moka's. The session drives it:
//! [`QueryCache::plan`] → [`QueryCache::get`] → on a miss [`QueryCache::load`] (one backend
//! query per key however many sessions miss at once); writes go through
//! [`QueryCache::writes`] and [`QueryCache::invalidate`]. See docs/cache.md.

pub mod entry;
pub mod invalidation;
pub mod key;
pub mod shape;
pub mod stats;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::Expiry;

pub use entry::Entry;
pub use invalidation::{Generations, WriteSet};
pub use key::{CacheKey, KeyParts};
pub use stats::CacheStats;

use crate::config::{CacheConfig, CacheConfigError};
use crate::router::{Hint, Statement, StmtKind};
use shape::{ReadShape, Rule, Shapes};
use stats::Counters;

/// Bytes charged per entry beyond its key and reply (the entry struct, moka's node).
const ENTRY_OVERHEAD: usize = 160;

/// A cacheable read, ready to look up.
#[derive(Debug)]
pub struct ReadPlan {
    key: CacheKey,
    shape: Arc<ReadShape>,
    ttl: Duration,
}

impl ReadPlan {
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The statement's digest (literals as `?`).
    pub fn digest(&self) -> &str {
        &self.shape.digest
    }
}

/// A reply captured on its way to the client.
#[derive(Debug, Default)]
pub struct Captured {
    pub bytes: Vec<u8>,
    pub first_seq: u8,
    /// The reply outgrew the capture limit (`bytes` is then empty).
    pub overflow: bool,
}

/// What [`QueryCache::load`] did.
pub enum Loaded {
    /// This session ran the query; its client has the reply.
    Ran,
    /// Another session's load finished first: replay this.
    Shared(Arc<Entry>),
    /// Neither: run the query uncached.
    Failed,
}

/// Why a loaded result was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotStored {
    #[error("the query failed or its reply was not captured")]
    NoReply,
    #[error("the reply exceeds max_entry_bytes")]
    TooBig,
    #[error("a write moved one of its tables while it ran")]
    Stale,
}

struct EntryTtl;

impl Expiry<CacheKey, Arc<Entry>> for EntryTtl {
    fn expire_after_create(&self, _: &CacheKey, v: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// The shared cache; one per proxy, in `ProxyContext`.
pub struct QueryCache {
    store: moka::future::Cache<CacheKey, Arc<Entry>, foldhash::quality::RandomState>,
    gens: Generations,
    shapes: Shapes,
    rules: Vec<Rule>,
    default_ttl: Duration,
    max_entry_bytes: usize,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for QueryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryCache")
            .field("entries", &self.store.entry_count())
            .finish_non_exhaustive()
    }
}

impl QueryCache {
    /// A cache for a validated `[cache]` section.
    pub fn new(cfg: &CacheConfig) -> Result<QueryCache, CacheConfigError> {
        cfg.validate()?;
        let mut rules = Vec::with_capacity(cfg.rules.len());
        for (i, r) in cfg.rules.iter().enumerate() {
            rules.push(Rule::compile(r).map_err(|e| CacheConfigError {
                key: format!("cache.rules[{i}].regex"),
                reason: e.to_string(),
            })?);
        }
        let counters = Arc::new(Counters::default());
        let c = Arc::clone(&counters);
        let store = moka::future::Cache::builder()
            .max_capacity(cfg.max_bytes)
            .weigher(|k: &CacheKey, v: &Arc<Entry>| {
                u32::try_from(k.len() + v.bytes.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(EntryTtl)
            .eviction_listener(move |_k, _v, cause| match cause {
                RemovalCause::Size => Counters::add(&c.evictions, 1),
                RemovalCause::Expired => Counters::add(&c.expirations, 1),
                RemovalCause::Explicit | RemovalCause::Replaced => {}
            })
            .build_with_hasher(foldhash::quality::RandomState::default());
        Ok(QueryCache {
            store,
            gens: Generations::default(),
            shapes: Shapes::default(),
            rules,
            default_ttl: cfg.default_ttl,
            max_entry_bytes: usize::try_from(cfg.max_entry_bytes).unwrap_or(usize::MAX),
            counters,
        })
    }

    /// Largest reply stored; a capture may stop copying beyond it.
    pub fn max_entry_bytes(&self) -> usize {
        self.max_entry_bytes
    }

    /// The statement's own facts allow caching (the session checks its transaction state).
    /// Whether its result may differ between two runs is the router's one judgment
    /// (`non_deterministic`), made while classifying.
    pub fn cacheable(stmt: &Statement) -> bool {
        stmt.kind == StmtKind::Select
            && !stmt.multi
            && stmt.all_reads
            && !stmt.has_master_flag()
            && !stmt.non_deterministic
            && !stmt.session_vars
            && !stmt.set_statement
            && stmt.hint != Some(Hint::Master)
            && !stmt.digest.is_empty()
    }

    /// A plan for a cacheable read, or None. `params` are an execution's bound values.
    pub fn plan(
        &self,
        stmt: &Statement,
        sql: &[u8],
        parts: &KeyParts<'_>,
        params: Option<&[u8]>,
    ) -> Option<ReadPlan> {
        if !Self::cacheable(stmt) {
            return None;
        }
        let shape = self.shapes.read(
            parts.schema,
            &stmt.digest,
            sql,
            &self.rules,
            self.default_ttl,
            &self.gens,
        );
        let ttl = shape.verdict.ok()?;
        let key = match params {
            None => key::text_key(parts, sql),
            Some(p) => key::execute_key(parts, sql, p),
        };
        Some(ReadPlan { key, shape, ttl })
    }

    /// A current entry for `plan`, counted as a hit; a stale one is dropped.
    pub async fn get(&self, plan: &ReadPlan) -> Option<Arc<Entry>> {
        Counters::add(&self.counters.lookups, 1);
        let e = self.store.get(&plan.key).await?;
        if e.snapshot.is_current(&self.gens) {
            self.hit(&e);
            return Some(e);
        }
        Counters::add(&self.counters.stale, 1);
        self.store.invalidate(&plan.key).await;
        None
    }

    fn hit(&self, e: &Entry) {
        Counters::add(&self.counters.hits, 1);
        Counters::add(&e.shape.hits, 1);
    }

    /// Runs `run` (which relays the query to its client and returns the captured reply)
    /// unless another session is already loading the same key, in which case this waits
    /// for that result. The reply is stored only if none of its tables moved while it ran.
    pub async fn load<F>(&self, plan: &ReadPlan, run: F) -> Loaded
    where
        F: Future<Output = Option<Captured>>,
    {
        let mut ran = false;
        let res = self
            .store
            .try_get_with_by_ref(&plan.key, async {
                ran = true;
                // Before the query leaves: a write that commits after this moves a counter.
                let snapshot = self.gens.snapshot(&plan.shape.tables);
                let cap = run.await.ok_or(NotStored::NoReply)?;
                if cap.overflow || cap.bytes.len() > self.max_entry_bytes {
                    Counters::add(&self.counters.too_big, 1);
                    return Err(NotStored::TooBig);
                }
                if !snapshot.is_current(&self.gens) {
                    Counters::add(&self.counters.stale, 1);
                    return Err(NotStored::Stale);
                }
                Counters::add(&self.counters.stores, 1);
                Ok(Arc::new(Entry {
                    packets: entry::count_packets(&cap.bytes),
                    bytes: cap.bytes.into_boxed_slice(),
                    first_seq: cap.first_seq,
                    snapshot,
                    ttl: plan.ttl,
                    shape: Arc::clone(&plan.shape),
                }))
            })
            .await;
        if ran {
            Counters::add(&self.counters.misses, 1);
            return Loaded::Ran;
        }
        match res {
            Ok(e) if e.snapshot.is_current(&self.gens) => {
                self.hit(&e);
                Loaded::Shared(e)
            }
            _ => {
                Counters::add(&self.counters.misses, 1);
                Loaded::Failed
            }
        }
    }

    /// The tables a statement may write (None: it writes nothing). Tables unknown to the
    /// parser, stored procedures and anything unrecognised invalidate everything.
    pub fn writes(
        &self,
        stmt: &Statement,
        sql: &[u8],
        schema: Option<&[u8]>,
    ) -> Option<Arc<WriteSet>> {
        let unknown = || {
            Some(Arc::new(WriteSet {
                tables: Vec::new(),
                unknown: true,
            }))
        };
        if stmt.multi && !stmt.all_reads {
            return unknown();
        }
        match stmt.kind {
            StmtKind::Insert
            | StmtKind::Update
            | StmtKind::Delete
            | StmtKind::Replace
            | StmtKind::Ddl
            | StmtKind::LoadData { .. } => {
                let insert = matches!(stmt.kind, StmtKind::Insert | StmtKind::Replace);
                Some(
                    self.shapes
                        .write(schema, &stmt.digest, sql, insert, &self.gens),
                )
            }
            StmtKind::Call | StmtKind::Execute | StmtKind::Other | StmtKind::Do => unknown(),
            _ => None,
        }
    }

    /// Makes every entry that reads a table of `w` unservable, at once.
    pub fn invalidate(&self, w: &WriteSet) {
        let n = self.gens.bump(w);
        Counters::add(&self.counters.invalidations, n);
    }

    /// `CACHE FLUSH`: drops every entry.
    pub fn flush(&self) {
        self.gens.bump_epoch();
        self.store.invalidate_all();
        Counters::add(&self.counters.invalidations, 1);
    }

    /// `CACHE FLUSH 'db.table'`: invalidates the entries that read it; false if no entry
    /// ever read or wrote that table.
    pub fn flush_table(&self, qualified: &str) -> bool {
        match self.gens.existing(qualified) {
            Some(t) => {
                self.invalidate(&WriteSet {
                    tables: vec![t],
                    unknown: false,
                });
                true
            }
            None => false,
        }
    }

    /// Runs moka's pending maintenance (evictions, expirations) now.
    pub async fn run_pending_tasks(&self) {
        self.store.run_pending_tasks().await;
    }

    /// Hits per digest (summed over schemas), most hit first.
    pub fn digest_hits(&self) -> Vec<(String, u64)> {
        self.shapes.digest_hits()
    }

    /// A snapshot of the counters, sizes and per-digest hits.
    pub fn stats(&self) -> CacheStats {
        let mut s = CacheStats::from_counters(
            &self.counters,
            self.store.entry_count(),
            self.store.weighted_size(),
        );
        s.digest_hits = self.shapes.digest_hits();
        s
    }
}
