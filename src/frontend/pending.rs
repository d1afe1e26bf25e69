//! Connections that have not logged in yet. They are counted apart from
//! logged-in sessions, so sockets that connect and say nothing can never
//! take the slots of clients that authenticate: past the per-address limit
//! a new connection is refused (1040), past the total the oldest pending
//! login is dropped to make room, so a real client always gets its turn.
//! Shared by the MySQL listener and the admin port (each has its own).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

/// The registry of one listener's pending logins.
pub struct PendingLogins {
    max: usize,
    per_host: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    /// Pending logins oldest first, each with the token that drops it.
    by_age: BTreeMap<u64, CancellationToken>,
    /// Pending logins per source address (dropped ones until their task ends).
    hosts: HashMap<IpAddr, usize>,
}

/// Why a connection may not even start logging in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{pending} logins already pending from {ip}")]
pub struct HostFull {
    pub ip: IpAddr,
    pub pending: usize,
}

/// One pending login; dropping it (login done or failed) frees its place.
pub struct PendingLogin {
    registry: Arc<PendingLogins>,
    id: u64,
    ip: IpAddr,
    dropped: CancellationToken,
}

impl PendingLogins {
    pub fn new(max: usize, per_host: usize) -> Arc<Self> {
        Arc::new(PendingLogins {
            max: max.max(1),
            per_host: per_host.max(1),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The map stays consistent even if a holder panicked mid-update:
        // every update is a single insert or remove.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `ip`, dropping the oldest pending login
    /// when all places are taken.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<PendingLogin, HostFull> {
        let mut inner = self.lock();
        let from_host = inner.hosts.get(&ip).copied().unwrap_or(0);
        if from_host >= self.per_host {
            return Err(HostFull {
                ip,
                pending: from_host,
            });
        }
        while inner.by_age.len() >= self.max {
            match inner.by_age.pop_first() {
                Some((_, oldest)) => oldest.cancel(),
                None => break,
            }
        }
        let id = inner.next;
        inner.next += 1;
        let dropped = CancellationToken::new();
        inner.by_age.insert(id, dropped.clone());
        *inner.hosts.entry(ip).or_insert(0) += 1;
        Ok(PendingLogin {
            registry: Arc::clone(self),
            id,
            ip,
            dropped,
        })
    }

    /// Logins pending now (admin and tests).
    pub fn len(&self) -> usize {
        self.lock().by_age.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PendingLogin {
    /// Resolves when this login was dropped to make room for a newer one.
    pub async fn dropped(&self) {
        self.dropped.cancelled().await
    }
}

impl Drop for PendingLogin {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        inner.by_age.remove(&self.id);
        if let Some(n) = inner.hosts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                inner.hosts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_host_past_its_share_is_refused_and_others_are_not() {
        let r = PendingLogins::new(10, 2);
        let a = r.admit(ip(1)).unwrap();
        let _b = r.admit(ip(1)).unwrap();
        assert_eq!(
            r.admit(ip(1)).err(),
            Some(HostFull {
                ip: ip(1),
                pending: 2
            })
        );
        assert!(r.admit(ip(2)).is_ok());
        drop(a);
        assert!(r.admit(ip(1)).is_ok());
    }

    #[test]
    fn past_the_total_the_oldest_is_dropped() {
        let r = PendingLogins::new(2, 10);
        let first = r.admit(ip(1)).unwrap();
        let second = r.admit(ip(2)).unwrap();
        let _third = r.admit(ip(3)).unwrap();
        assert!(first.dropped.is_cancelled());
        assert!(!second.dropped.is_cancelled());
        assert_eq!(r.len(), 2);
        drop(first);
        assert_eq!(r.len(), 2);
        drop(second);
        assert_eq!(r.len(), 1);
    }
}
