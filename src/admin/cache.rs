//! `SHOW CACHE`, `SHOW CACHE DIGEST [LIMIT n]`, `CACHE FLUSH` and
//! `CACHE FLUSH 'db.table'`: the result cache's counters and manual
//! invalidation (docs/cache.md).

use super::{cell, exact, AdminCommand, AdminContext, AdminError, Exec, Reply};
use super::{ColKind, ResultSet, Words};

fn cache(admin: &AdminContext) -> Result<&crate::cache::QueryCache, AdminError> {
    admin.proxy.cache.as_deref().ok_or_else(|| {
        AdminError::Refused("the result cache is off ([cache] enabled = false)".into())
    })
}

pub struct ShowCache;

impl AdminCommand for ShowCache {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        exact(w, &["SHOW", "CACHE"], "SHOW CACHE", ShowCache)
    }

    fn name(&self) -> &'static str {
        "show_cache"
    }

    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a> {
        Box::pin(async move {
            let c = cache(admin)?;
            // moka counts entries lazily; settle its pending work for exact numbers.
            c.run_pending_tasks().await;
            let s = c.stats();
            let pairs = [
                ("entries", s.entries.to_string()),
                ("bytes", s.bytes.to_string()),
                ("lookups", s.lookups.to_string()),
                ("hits", s.hits.to_string()),
                ("misses", s.misses.to_string()),
                ("hit_ratio", format!("{:.4}", s.hit_ratio())),
                ("stores", s.stores.to_string()),
                ("too_big", s.too_big.to_string()),
                ("stale", s.stale.to_string()),
                ("evictions", s.evictions.to_string()),
                ("expirations", s.expirations.to_string()),
                ("invalidations", s.invalidations.to_string()),
            ];
            let rs = ResultSet::pairs(
                ("counter", "value"),
                pairs.into_iter().map(|(k, v)| (k.to_string(), v)),
            );
            Ok(Reply::Rows(rs))
        })
    }
}

pub struct ShowCacheDigest;

impl AdminCommand for ShowCacheDigest {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        exact(
            w,
            &["SHOW", "CACHE", "DIGEST"],
            "SHOW CACHE DIGEST",
            ShowCacheDigest,
        )
    }

    fn name(&self) -> &'static str {
        "show_cache_digest"
    }

    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a> {
        let c = match cache(admin) {
            Ok(c) => c,
            Err(e) => return super::ready(Err(e)),
        };
        let mut rs = ResultSet::new(&[("digest", ColKind::Text), ("hits", ColKind::Int)]);
        for (digest, hits) in c.stats().digest_hits {
            rs.push(vec![cell(digest), cell(hits)]);
        }
        super::ready(Ok(Reply::Rows(rs)))
    }
}

pub struct CacheFlush {
    table: Option<String>,
}

impl AdminCommand for CacheFlush {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        if !w.starts_with(&["CACHE", "FLUSH"]) {
            return None;
        }
        Some(match (w.len(), w.name(2)) {
            (2, _) => Ok(CacheFlush { table: None }),
            (3, Some(t)) => Ok(CacheFlush {
                table: Some(t.to_string()),
            }),
            _ => Err(AdminError::Syntax {
                usage: "CACHE FLUSH ['db.table']",
            }),
        })
    }

    fn name(&self) -> &'static str {
        "cache_flush"
    }

    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a> {
        let c = match cache(admin) {
            Ok(c) => c,
            Err(e) => return super::ready(Err(e)),
        };
        let said = match &self.table {
            None => {
                c.flush();
                "all entries invalidated".to_string()
            }
            Some(t) if c.flush_table(t) => format!("entries reading {t} invalidated"),
            Some(t) => format!("no cached statement reads {t}"),
        };
        let mut rs = ResultSet::new(&[("result", ColKind::Text)]);
        rs.push(vec![cell(said)]);
        super::ready(Ok(Reply::Rows(rs)))
    }
}
