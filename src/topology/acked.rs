//! The highest commit, per GTID domain, that a client got an OK for. The
//! failover controller never promotes a node whose position is behind it:
//! whatever the nodes' semi-sync state was when the master died (replica
//! still reconnecting, semi-sync switched off by a timeout), no acknowledged
//! commit is lost by a promotion. Sessions record every OK that carried a
//! `last_gtid` from the node that wrote it.
//!
//! Every write records, so the common path takes no lock shared by all
//! sessions: a few slots of atomics, one per domain (a cluster has one
//! domain per node that ever was master), and a locked map only past them.
//!
//! The mark also says what it covers, for the rewind of a returning
//! master's unacknowledged tail: only commits written after this process
//! first saw each node (a commit from before may have been acknowledged by
//! the process before), and nothing at all once it was forgotten.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use super::gtid::{Gtid, GtidPos};

/// Domains tracked without a lock.
const SLOTS: usize = 8;
/// Marks a free slot. `gtid_domain_id` may be this value too (it is
/// unheard of); such a domain is kept in the locked map.
const FREE: u32 = u32::MAX;

#[derive(Debug)]
pub struct AckedCommits {
    domains: [AtomicU32; SLOTS],
    highest: [AtomicU64; SLOTS],
    more: Mutex<BTreeMap<u32, u64>>,
    watched: Mutex<Watched>,
}

/// Since when the mark is complete. Touched once per node at its first
/// check and by a rewind, never per statement.
#[derive(Debug, Default)]
struct Watched {
    /// Per domain, the highest sequence number any node held when this
    /// process first saw it.
    floor: BTreeMap<u32, u64>,
    /// A forced failover gave the mark up: what came before is unknown.
    forgotten: bool,
    /// A session may have switched off the node's `last_gtid` report, so
    /// its commits may have been acknowledged without raising the mark.
    untracked: bool,
}

/// Why the mark cannot vouch for a commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Uncovered {
    #[error("the mark of acknowledged commits was given up by a forced FAILOVER TO")]
    Forgotten,
    #[error("a session changed session_track_system_variables: commits it made may have been acknowledged without the proxy seeing their GTID")]
    Untracked,
    #[error("{gtid} was written before this process first saw the nodes (domain {domain} was at {floor} then)", domain = gtid.domain)]
    BeforeWatch { gtid: Gtid, floor: u64 },
}

impl Default for AckedCommits {
    fn default() -> Self {
        AckedCommits {
            domains: std::array::from_fn(|_| AtomicU32::new(FREE)),
            highest: std::array::from_fn(|_| AtomicU64::new(0)),
            more: Mutex::new(BTreeMap::new()),
            watched: Mutex::new(Watched::default()),
        }
    }
}

impl AckedCommits {
    pub fn record(&self, gtid: &Gtid) {
        let slotted = gtid.domain != FREE;
        for (domain, highest) in self.domains.iter().zip(&self.highest).filter(|_| slotted) {
            let owner = match domain.compare_exchange(
                FREE,
                gtid.domain,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => gtid.domain,
                Err(owner) => owner,
            };
            if owner == gtid.domain {
                highest.fetch_max(gtid.seq, Ordering::AcqRel);
                return;
            }
        }
        // A poisoned lock only means another thread panicked mid-insert of
        // a number: the map is still a valid map.
        let mut more = self.more.lock().unwrap_or_else(|e| e.into_inner());
        let seq = more.entry(gtid.domain).or_insert(0);
        *seq = (*seq).max(gtid.seq);
    }

    pub fn forget(&self) {
        self.watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forgotten = true;
        for highest in &self.highest {
            highest.store(0, Ordering::Release);
        }
        self.more.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// A session may have stopped the report of its commits' GTIDs: from
    /// now on the mark vouches for nothing (until the process restarts).
    pub fn untracked(&self) {
        self.watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .untracked = true;
    }

    /// Whether the mark still follows every acknowledged commit (no session
    /// may have switched off the report of its commits' GTIDs).
    pub fn tracked(&self) -> bool {
        !self
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .untracked
    }

    /// A node seen for the first time at `pos`: commits up to there were
    /// written before this process could acknowledge anything.
    pub fn watch_from(&self, pos: &GtidPos) {
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        for gtid in pos.iter() {
            let floor = watched.floor.entry(gtid.domain).or_insert(0);
            *floor = (*floor).max(gtid.seq);
        }
    }

    /// Whether every OK for `gtid` would have raised the mark: written
    /// while this process watched, and the mark never forgotten since.
    pub fn covers(&self, gtid: &Gtid) -> Result<(), Uncovered> {
        let watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        if watched.forgotten {
            return Err(Uncovered::Forgotten);
        }
        if watched.untracked {
            return Err(Uncovered::Untracked);
        }
        match watched.floor.get(&gtid.domain) {
            Some(&floor) if gtid.seq <= floor => Err(Uncovered::BeforeWatch { gtid: *gtid, floor }),
            _ => Ok(()),
        }
    }

    /// The first acknowledged commit `pos` does not hold, if any.
    pub fn missing_from(&self, pos: &GtidPos) -> Option<Gtid> {
        self.mark().missing_from(pos)
    }

    /// The mark as it is now. A node position read after this holds every
    /// commit in it that the node has; compared with the live mark instead,
    /// the master's own domain would have moved on meanwhile with the
    /// commits acknowledged since the read.
    pub fn mark(&self) -> AckedMark {
        let slots = self
            .domains
            .iter()
            .zip(&self.highest)
            .map(|(d, h)| (d.load(Ordering::Acquire), h.load(Ordering::Acquire)))
            .filter(|&(d, _)| d != FREE);
        let more: Vec<(u32, u64)> = self
            .more
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(&d, &s)| (d, s))
            .collect();
        AckedMark(slots.chain(more).collect())
    }
}

/// The highest acknowledged sequence number per domain, at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckedMark(Vec<(u32, u64)>);

impl AckedMark {
    /// The first acknowledged commit `pos` does not hold, if any. Sequence
    /// numbers grow per domain whichever server wrote them, so the server
    /// id is not compared.
    pub fn missing_from(&self, pos: &GtidPos) -> Option<Gtid> {
        self.0.iter().find_map(|&(domain, seq)| {
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
        acked.forget();
        assert_eq!(acked.missing_from(&"".parse().unwrap()), None);
    }

    #[test]
    fn a_mark_taken_before_a_live_master_is_read_is_held_by_what_was_read() {
        // The master keeps committing (and clients keep getting OKs) while
        // a returning node is judged: its position, read after the mark was
        // taken, holds the mark, but not the mark of a moment later.
        let acked = AckedCommits::default();
        acked.record(&"2-2-100".parse().unwrap());
        let before = acked.mark();
        let read: GtidPos = "1-1-40,2-2-100".parse().unwrap();
        acked.record(&"2-2-110".parse().unwrap());
        assert_eq!(before.missing_from(&read), None);
        assert_eq!(acked.missing_from(&read).map(|g| g.seq), Some(110));
    }

    #[test]
    fn a_session_that_stops_gtid_tracking_leaves_the_mark_vouching_for_nothing() {
        let acked = AckedCommits::default();
        acked.watch_from(&"1-1-10".parse().unwrap());
        let later: Gtid = "1-1-11".parse().unwrap();
        assert_eq!(acked.covers(&later), Ok(()));
        acked.untracked();
        assert_eq!(acked.covers(&later), Err(Uncovered::Untracked));
    }

    #[test]
    fn the_mark_covers_only_what_was_written_while_watched() {
        let acked = AckedCommits::default();
        acked.watch_from(&"0-1-50,1-2-7".parse().unwrap());
        acked.watch_from(&"0-1-40,2-2-3".parse().unwrap());
        let rows: &[(&str, bool)] = &[
            ("0-1-51", true),
            ("0-1-50", false),
            ("0-2-45", false),
            ("1-2-8", true),
            ("2-2-3", false),
            // A domain no node had at first sight: all of it was watched.
            ("5-5-1", true),
        ];
        for &(gtid, covered) in rows {
            assert_eq!(
                acked.covers(&gtid.parse().unwrap()).is_ok(),
                covered,
                "{gtid}"
            );
        }
        acked.forget();
        assert_eq!(
            acked.covers(&"0-1-99".parse().unwrap()),
            Err(Uncovered::Forgotten)
        );
    }

    #[test]
    fn domains_beyond_the_slots_are_kept_too() {
        let acked = AckedCommits::default();
        for d in 0..(SLOTS as u32 + 3) {
            acked.record(&Gtid {
                domain: d,
                server: 1,
                seq: 10 + u64::from(d),
            });
        }
        let all: String = (0..(SLOTS as u32 + 3))
            .map(|d| format!("{d}-1-{}", 10 + d))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(acked.missing_from(&all.parse().unwrap()), None);
        let last = SLOTS as u32 + 2;
        let short = all.replace(&format!("{last}-1-{}", 10 + last), &format!("{last}-1-1"));
        assert_eq!(
            acked
                .missing_from(&short.parse().unwrap())
                .map(|g| (g.domain, g.seq)),
            Some((last, 10 + u64::from(last)))
        );
    }
}
