//! MariaDB GTIDs (`domain-server-seq`) and GTID positions (one GTID per
//! replication domain, as in `@@gtid_current_pos` or `Gtid_IO_Pos`).
//!
//! Read-your-writes compares a session's last write GTID with a node's
//! position. Sequence numbers grow per *domain*, so the comparison is per
//! domain and the server id plays no part in it: a position that holds
//! `1-2-50` has applied `1-1-40`, whichever server wrote it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Why a GTID or a GTID list did not parse; each variant names the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GtidError {
    #[error("`{text}` is not a GTID (expected domain-server-seq)")]
    Malformed { text: String },
    #[error("`{text}`: {part} is not a number in range")]
    BadNumber { text: String, part: &'static str },
    #[error("domain {domain} appears twice in the GTID list")]
    DuplicateDomain { domain: u32 },
}

/// One MariaDB GTID: `0-1-100` is domain 0, server 1, sequence 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl FromStr for Gtid {
    type Err = GtidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let mut parts = text.splitn(3, '-');
        let (Some(domain), Some(server), Some(seq)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(GtidError::Malformed { text: text.into() });
        };
        let number = |value: &str, part: &'static str| {
            // `u64::from_str` accepts a leading '+'; a GTID never has one.
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(GtidError::BadNumber {
                    text: text.into(),
                    part,
                });
            }
            value.parse::<u64>().map_err(|_| GtidError::BadNumber {
                text: text.into(),
                part,
            })
        };
        let narrow = |value: u64, part: &'static str| {
            u32::try_from(value).map_err(|_| GtidError::BadNumber {
                text: text.into(),
                part,
            })
        };
        Ok(Gtid {
            domain: narrow(number(domain, "domain")?, "domain")?,
            server: narrow(number(server, "server id")?, "server id")?,
            seq: number(seq, "sequence")?,
        })
    }
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// A GTID position: per domain, the last GTID applied (server, seq).
/// The empty string is the empty position (a node that applied nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidPos {
    domains: BTreeMap<u32, (u32, u64)>,
}

impl GtidPos {
    /// The last GTID of `domain`, if the position has one.
    pub fn get(&self, domain: u32) -> Option<Gtid> {
        self.domains.get(&domain).map(|&(server, seq)| Gtid {
            domain,
            server,
            seq,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// The GTIDs, one per domain, in domain order.
    pub fn iter(&self) -> impl Iterator<Item = Gtid> + '_ {
        self.domains.iter().map(|(&domain, &(server, seq))| Gtid {
            domain,
            server,
            seq,
        })
    }
}

impl FromStr for GtidPos {
    type Err = GtidError;

    /// Parses `0-1-100,1-2-50`; blanks and newlines around items are
    /// ignored (MariaDB wraps long lists in `SHOW SLAVE STATUS`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut domains = BTreeMap::new();
        for item in s.split(',').map(str::trim) {
            if item.is_empty() {
                // "" is the empty position; a stray trailing comma is harmless.
                continue;
            }
            let gtid: Gtid = item.parse()?;
            if domains
                .insert(gtid.domain, (gtid.server, gtid.seq))
                .is_some()
            {
                return Err(GtidError::DuplicateDomain {
                    domain: gtid.domain,
                });
            }
        }
        Ok(GtidPos { domains })
    }
}

impl FromIterator<Gtid> for GtidPos {
    /// One GTID per domain: a later GTID of a domain replaces an earlier
    /// one, as the last entry of a binlog state is its domain's position.
    fn from_iter<I: IntoIterator<Item = Gtid>>(gtids: I) -> Self {
        GtidPos {
            domains: gtids
                .into_iter()
                .map(|g| (g.domain, (g.server, g.seq)))
                .collect(),
        }
    }
}

impl fmt::Display for GtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, gtid) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{gtid}")?;
        }
        Ok(())
    }
}

/// Has a node at position `pos` applied `gtid`? True when `pos` has the
/// same domain at a sequence number at least as high.
pub fn includes(pos: &GtidPos, gtid: &Gtid) -> bool {
    pos.domains
        .get(&gtid.domain)
        .is_some_and(|&(_, seq)| seq >= gtid.seq)
}

/// Has `pos` applied everything in `wanted` (every domain of it)?
pub fn includes_all(pos: &GtidPos, wanted: &GtidPos) -> bool {
    wanted.iter().all(|gtid| includes(pos, &gtid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(s: &str) -> GtidPos {
        s.parse().unwrap()
    }

    fn gtid(s: &str) -> Gtid {
        s.parse().unwrap()
    }

    #[test]
    fn parses_one_gtid() {
        assert_eq!(
            gtid("0-1-100"),
            Gtid {
                domain: 0,
                server: 1,
                seq: 100
            }
        );
        assert_eq!(gtid(" 4294967295-7-18446744073709551615 ").seq, u64::MAX);
        assert_eq!(gtid("3-2-1").to_string(), "3-2-1");
    }

    #[test]
    fn rejects_bad_gtids() {
        for bad in [
            "",
            "0-1",
            "0-1-",
            "a-1-2",
            "0-1-2-3",
            "0--1-2",
            "+1-2-3",
            "4294967296-1-1",
        ] {
            assert!(bad.parse::<Gtid>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            "0-x-1".parse::<Gtid>(),
            Err(GtidError::BadNumber {
                text: "0-x-1".into(),
                part: "server id"
            })
        );
    }

    #[test]
    fn parses_lists() {
        assert!(pos("").is_empty());
        assert!(pos("  ").is_empty());
        let p = pos("0-1-100,1-2-50");
        assert_eq!(p.get(0), Some(gtid("0-1-100")));
        assert_eq!(p.get(1), Some(gtid("1-2-50")));
        assert_eq!(p.get(2), None);
        // MariaDB may wrap long lists with a newline after the comma.
        assert_eq!(pos("1-2-50,\n0-1-100"), p);
        assert_eq!(p.to_string(), "0-1-100,1-2-50");
        assert_eq!(
            "0-1-1,0-2-5".parse::<GtidPos>(),
            Err(GtidError::DuplicateDomain { domain: 0 })
        );
        assert!("0-1-1,garbage".parse::<GtidPos>().is_err());
    }

    #[test]
    fn includes_compares_per_domain() {
        let p = pos("0-1-100,1-2-50");
        assert!(includes(&p, &gtid("0-1-100")));
        assert!(includes(&p, &gtid("0-1-99")));
        assert!(!includes(&p, &gtid("0-1-101")));
        // The server id does not order GTIDs: domain 1 is at 50 whoever wrote it.
        assert!(includes(&p, &gtid("1-9-50")));
        assert!(!includes(&p, &gtid("1-2-51")));
        // A domain the position has never seen is not applied.
        assert!(!includes(&p, &gtid("2-1-1")));
        assert!(!includes(&pos(""), &gtid("0-1-1")));
        // Domains do not leak into each other.
        assert!(!includes(&pos("0-1-1000"), &gtid("1-1-1")));
    }

    #[test]
    fn includes_all_needs_every_domain() {
        let p = pos("0-1-100,1-2-50");
        assert!(includes_all(&p, &pos("")));
        assert!(includes_all(&p, &pos("0-1-100,1-2-49")));
        assert!(!includes_all(&p, &pos("0-1-100,1-2-51")));
        assert!(!includes_all(&p, &pos("0-1-1,5-5-5")));
    }
}
