//! Failed logins, counted per client address and per user name. The proxy
//! checks passwords itself, so the nodes' own counters (MariaDB's
//! `max_connect_errors`, `max_password_errors`) never see a guess: they
//! are kept here instead.
//!
//! * An address with `mysql.max_connect_errors` failed logins within
//!   `mysql.host_block_time` is refused before the greeting, with MariaDB's
//!   1129, until that time has passed since its first failure. A successful
//!   login clears its count, as MariaDB does.
//! * A user name with failed logins gets its later denials delayed
//!   (doubling from the fourth, at most [`MAX_DELAY`]): guessing one
//!   account slows to the pace the pending-login limits allow, and a right
//!   password is never delayed, so an attacker cannot lock the account out.
//!
//! Both tables are bounded (oldest entries go first), whatever the number
//! of addresses or names a client invents.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

/// Entries per table: a flood of invented names or addresses costs at most
/// this many small records.
const MAX_ENTRIES: u64 = 10_000;
/// Failed logins a user name gets before its denials slow down.
const FREE_FAILURES: u32 = 3;
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// Below the login deadline (`mysql.connect_timeout`, 10 s by default).
pub const MAX_DELAY: Duration = Duration::from_secs(2);
/// How long a user name's failures are remembered without a new one.
const USER_MEMORY: Duration = Duration::from_secs(300);
/// Longest user name kept as a key: longer ones are cut (MariaDB's limit
/// is 80 characters, so no real account is affected).
const MAX_USER_KEY: usize = 256;

pub struct LoginGuard {
    hosts: Cache<IpAddr, Arc<AtomicU32>>,
    users: Cache<Vec<u8>, Arc<AtomicU32>>,
    max_errors: u32,
    block: Duration,
}

impl LoginGuard {
    pub fn new(max_errors: u32, block: Duration) -> LoginGuard {
        LoginGuard {
            hosts: Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(block)
                .build(),
            users: Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_idle(USER_MEMORY)
                .build(),
            max_errors,
            block,
        }
    }

    /// The address has used up its failed logins.
    pub fn is_blocked(&self, host: IpAddr) -> bool {
        self.hosts
            .get(&host)
            .is_some_and(|n| n.load(Ordering::Relaxed) >= self.max_errors)
    }

    /// How long the block of an address lasts at most.
    pub fn block_time(&self) -> Duration {
        self.block
    }

    /// Records a failed login; returns how long to hold the denial back.
    pub fn failed(&self, host: Option<IpAddr>, user: &[u8]) -> Duration {
        if let Some(host) = host {
            let n = self.hosts.get_with(host, Default::default);
            n.fetch_add(1, Ordering::Relaxed);
        }
        let key = user[..user.len().min(MAX_USER_KEY)].to_vec();
        let n = self.users.get_with(key, Default::default);
        let failures = n.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        delay_after(failures)
    }

    /// A malformed connection phase: counts against the address only.
    pub fn protocol_error(&self, host: Option<IpAddr>) {
        if let Some(host) = host {
            let n = self.hosts.get_with(host, Default::default);
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A login succeeded: the address starts afresh (the user name's
    /// failures stay: they may be someone else's guesses).
    pub fn succeeded(&self, host: Option<IpAddr>) {
        if let Some(host) = host {
            self.hosts.invalidate(&host);
        }
    }
}

/// The hold-back for a user name's `failures`-th failed login.
fn delay_after(failures: u32) -> Duration {
    if failures <= FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES - 1).min(16);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_slow_down_after_three_failures_up_to_the_cap() {
        let delays: Vec<u128> = (1..=10).map(|n| delay_after(n).as_millis()).collect();
        assert_eq!(delays, [0, 0, 0, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(delay_after(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn an_address_is_blocked_at_its_limit_and_cleared_by_a_success() {
        let guard = LoginGuard::new(3, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..2 {
            guard.failed(Some(a), b"shop");
        }
        assert!(!guard.is_blocked(a));
        guard.failed(Some(a), b"shop");
        assert!(guard.is_blocked(a));
        assert!(!guard.is_blocked(b), "another address is not affected");
        guard.succeeded(Some(a));
        assert!(!guard.is_blocked(a));
    }

    #[test]
    fn a_long_invented_user_name_is_cut_and_counted() {
        let guard = LoginGuard::new(100, Duration::from_secs(60));
        let long = vec![b'x'; 100_000];
        let mut last = Duration::ZERO;
        for _ in 0..5 {
            last = guard.failed(None, &long);
        }
        assert_eq!(last, Duration::from_millis(200));
    }
}
