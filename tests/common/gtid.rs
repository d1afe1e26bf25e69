//! MariaDB GTID positions (`@@gtid_current_pos`) as the harness compares
//! them: one `domain-server-seq` per replication domain.

use std::collections::BTreeMap;
use std::fmt;

/// A GTID position: per domain, the last (server_id, seq_no) applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidPos(BTreeMap<u32, (u32, u64)>);

impl GtidPos {
    /// Parses `"1-1-5,2-2-3"`; an empty string is the empty position. Parts
    /// that are not `domain-server-seq` are skipped (MariaDB never sends them).
    pub fn parse(text: &str) -> GtidPos {
        let mut map = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.splitn(3, '-');
            let (Some(d), Some(s), Some(q)) = (fields.next(), fields.next(), fields.next()) else {
                continue;
            };
            if let (Ok(d), Ok(s), Ok(q)) = (d.parse(), s.parse(), q.parse()) {
                map.insert(d, (s, q));
            }
        }
        GtidPos(map)
    }

    /// The sequence number reached in `domain` (0 when the domain is unseen).
    pub fn seq(&self, domain: u32) -> u64 {
        self.0.get(&domain).map_or(0, |&(_, seq)| seq)
    }

    /// Per domain, the further of the two positions.
    pub fn union(&self, other: &GtidPos) -> GtidPos {
        let mut map = self.0.clone();
        for (&domain, &(server, seq)) in &other.0 {
            let entry = map.entry(domain).or_insert((server, seq));
            if seq > entry.1 {
                *entry = (server, seq);
            }
        }
        GtidPos(map)
    }

    /// True when this position has reached `target` in every domain of `target`.
    pub fn covers(&self, target: &GtidPos) -> bool {
        target
            .0
            .iter()
            .all(|(&domain, &(_, seq))| self.seq(domain) >= seq)
    }
}

impl fmt::Display for GtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(d, (s, q))| format!("{d}-{s}-{q}"))
            .collect();
        if parts.is_empty() {
            f.write_str("(empty)")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}
