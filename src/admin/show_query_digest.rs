//! `SHOW QUERY DIGEST [LIMIT n]`: normalised statements (literals as `?`)
//! with how often they ran, their total/average/maximum time, rows, where
//! they went, how many runs the result cache answered, most total time
//! first. The map is bounded (`metrics.rs`).

use crate::metrics::digest_key;
use std::collections::HashMap;

use super::{cell, AdminCommand, AdminContext, AdminError, Exec, Reply};
use super::{ColKind, ResultSet, Words};

/// Rows shown without LIMIT.
const DEFAULT_LIMIT: usize = 100;

const USAGE: &str = "SHOW QUERY DIGEST [LIMIT n]";

pub struct ShowQueryDigest {
    limit: usize,
}

impl AdminCommand for ShowQueryDigest {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        if !w.starts_with(&["SHOW", "QUERY", "DIGEST"]) {
            return None;
        }
        let syntax = Err(AdminError::Syntax { usage: USAGE });
        Some(match w.len() {
            3 => Ok(ShowQueryDigest {
                limit: DEFAULT_LIMIT,
            }),
            5 if w.is(3, "LIMIT") => match w.number(4).and_then(|n| usize::try_from(n).ok()) {
                Some(limit) => Ok(ShowQueryDigest { limit }),
                None => syntax,
            },
            _ => syntax,
        })
    }

    fn name(&self) -> &'static str {
        "show query digest"
    }

    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a> {
        use ColKind::{Int, Text};
        let mut rs = ResultSet::new(&[
            ("digest", Text),
            ("count", Int),
            ("errors", Int),
            ("total_ms", Int),
            ("avg_us", Int),
            ("max_us", Int),
            ("rows", Int),
            ("on_master", Int),
            ("on_replica", Int),
            ("route", Text),
            ("cache_hits", Int),
        ]);
        // Hits never reach a node, so they are counted by the cache, per
        // digest; keyed as the digest totals are (long digests are cut).
        let mut hits: HashMap<String, u64> = HashMap::new();
        if let Some(c) = admin.proxy.cache.as_ref() {
            for (d, h) in c.digest_hits() {
                *hits.entry(digest_key(&d).to_owned()).or_default() += h;
            }
        }
        for d in admin.proxy.metrics.digests.top(self.limit) {
            rs.push(vec![
                cell(&d.digest),
                cell(d.count),
                cell(d.errors),
                cell(d.total_us / 1000),
                cell(d.total_us.checked_div(d.count).unwrap_or(0)),
                cell(d.max_us),
                cell(d.rows),
                cell(d.on_master),
                cell(d.on_replica),
                cell(format!(
                    "{}/{}",
                    match d.last_route.target {
                        crate::router::Target::Master => "master",
                        crate::router::Target::Read => "read",
                    },
                    d.last_route.why
                )),
                cell(hits.get(&d.digest).copied().unwrap_or(0)),
            ]);
        }
        super::ready(Ok(Reply::Rows(rs)))
    }
}
