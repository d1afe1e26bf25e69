//! The highest commit, per GTID domain, that a client got an OK for. The
//! failover controller never promotes a node whose position is behind it:
//! whatever the nodes' semi-sync state was when the master died (replica
//! still reconnecting, semi-sync switched off by a timeout), no acknowledged
//! commit is lost by a promotion. Sessions record every OK that carried a
//! `last_gtid` from the node that wrote it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::gtid::{Gtid, GtidPos};

#[derive(Debug, Default)]
pub struct AckedCommits {
    /// domain -> highest sequence number acknowledged in it.
    highest: Mutex<BTreeMap<u32, u64>>,
}

impl AckedCommits {
    pub fn record(&self, gtid: &Gtid) {
        // A poisoned lock only means another thread panicked mid-insert of
        // a number: the map is still a valid map.
        let mut highest = self.highest.lock().unwrap_or_else(|e| e.into_inner());
        let seq = highest.entry(gtid.domain).or_insert(0);
        *seq = (*seq).max(gtid.seq);
    }

    pub fn forget(&self) {
        self.highest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The first acknowledged commit `pos` does not hold, if any. Sequence
    /// numbers grow per domain whichever server wrote them, so the server
    /// id is not compared.
    pub fn missing_from(&self, pos: &GtidPos) -> Option<Gtid> {
        let highest = self.highest.lock().unwrap_or_else(|e| e.into_inner());
        highest.iter().find_map(|(&domain, &seq)| {
            let held = pos.get(domain).map_or(0, |g| g.seq);
            (held < seq).then_some(Gtid {
                domain,
                server: 0,
                seq,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_behind_in_any_domain_misses_acknowledged_commits() {
        let acked = AckedCommits::default();
        assert_eq!(acked.missing_from(&"".parse().unwrap()), None);
        for g in ["0-1-5", "0-1-3", "1-2-7"] {
            acked.record(&g.parse().unwrap());
        }
        let rows: &[(&str, Option<(u32, u64)>)] = &[
            ("0-1-5,1-2-7", None),
            ("0-2-9,1-1-8", None),
            ("0-1-4,1-2-7", Some((0, 5))),
            ("0-1-5", Some((1, 7))),
            ("", Some((0, 5))),
        ];
        for &(pos, want) in rows {
            let got = acked
                .missing_from(&pos.parse().unwrap())
                .map(|g| (g.domain, g.seq));
            assert_eq!(got, want, "{pos}");
        }
    }
}
