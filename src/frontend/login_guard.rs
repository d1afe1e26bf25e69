//! Failed logins, counted per client address and per user name. The proxy
//! runs the connection phase and checks passwords itself, so the nodes' own
//! counters (MariaDB's `max_connect_errors`, `max_password_errors`) never
//! see a client's errors: they are kept here instead.
//!
//! * An address with `mysql.max_connect_errors` malformed connection phases
//!   within `mysql.host_block_time` is refused before the greeting, with
//!   MariaDB's 1129, until that time has passed since its first error. As in
//!   MariaDB, only handshake errors count, not wrong passwords, and a
//!   successful login clears the count.
//! * Wrong passwords slow down instead: once an address or a user name has
//!   three, each later denial for it is held back (doubling from 100 ms, at
//!   most [`MAX_DELAY`]). Guessing slows to the pace the pending-login
//!   limits allow, while a right password is never delayed or refused, so
//!   nobody can lock a shop out by guessing, and a shop deployed with a
//!   wrong password is serving again the moment it is fixed.
//!
//! Every table is bounded (oldest entries go first), whatever the number
//! of addresses or names a client invents.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

/// Entries per table: a flood of invented names or addresses costs at most
/// this many small records.
const MAX_ENTRIES: u64 = 10_000;
/// Wrong passwords an address or user name gets before denials slow down.
const FREE_FAILURES: u32 = 3;
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// Below the login deadline (`mysql.connect_timeout`, 10 s by default).
pub const MAX_DELAY: Duration = Duration::from_secs(2);
/// How long wrong passwords are remembered without a new one.
const MEMORY: Duration = Duration::from_secs(300);
/// Longest user name kept as a key: longer ones are cut (MariaDB's limit
/// is 80 characters, so no real account is affected).
const MAX_USER_KEY: usize = 256;

pub struct LoginGuard {
    /// Malformed connection phases per address (these block).
    handshake_errors: Cache<IpAddr, Arc<AtomicU32>>,
    /// Wrong passwords per address and per user name (these slow down).
    host_denials: Cache<IpAddr, Arc<AtomicU32>>,
    user_denials: Cache<Vec<u8>, Arc<AtomicU32>>,
    max_errors: u32,
    block: Duration,
}

impl LoginGuard {
    pub fn new(max_errors: u32, block: Duration) -> LoginGuard {
        LoginGuard {
            handshake_errors: Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(block)
                .build(),
            host_denials: remembered(),
            user_denials: remembered(),
            max_errors,
            block,
        }
    }

    /// The address has used up its handshake errors.
    pub fn is_blocked(&self, host: IpAddr) -> bool {
        self.handshake_errors
            .get(&host)
            .is_some_and(|n| n.load(Ordering::Relaxed) >= self.max_errors)
    }

    /// How long the block of an address lasts at most.
    pub fn block_time(&self) -> Duration {
        self.block
    }

    /// A malformed connection phase from `host`.
    pub fn handshake_error(&self, host: Option<IpAddr>) {
        if let Some(host) = host {
            bump(&self.handshake_errors.get_with(host, Default::default));
        }
    }

    /// Records a wrong password; returns how long to hold the denial back.
    pub fn denied(&self, host: Option<IpAddr>, user: &[u8]) -> Duration {
        let by_host = host.map_or(0, |h| {
            bump(&self.host_denials.get_with(h, Default::default))
        });
        let key = user[..user.len().min(MAX_USER_KEY)].to_vec();
        let by_user = bump(&self.user_denials.get_with(key, Default::default));
        delay_after(by_host.max(by_user))
    }

    /// A login succeeded: the address starts afresh (the user name's
    /// denials stay: they may be someone else's guesses).
    pub fn succeeded(&self, host: Option<IpAddr>) {
        if let Some(host) = host {
            self.handshake_errors.invalidate(&host);
            self.host_denials.invalidate(&host);
        }
    }
}

/// A table of wrong passwords, each entry kept while it keeps growing.
fn remembered<K>() -> Cache<K, Arc<AtomicU32>>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(MAX_ENTRIES)
        .time_to_idle(MEMORY)
        .build()
}

/// Counts one more; returns the new count.
fn bump(n: &AtomicU32) -> u32 {
    n.fetch_add(1, Ordering::Relaxed).saturating_add(1)
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
    fn only_handshake_errors_block_and_a_success_clears_them() {
        let guard = LoginGuard::new(3, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..10 {
            guard.denied(Some(a), b"shop");
        }
        assert!(!guard.is_blocked(a), "wrong passwords never block");
        for _ in 0..3 {
            guard.handshake_error(Some(a));
        }
        assert!(guard.is_blocked(a));
        assert!(!guard.is_blocked(b), "another address is not affected");
        guard.succeeded(Some(a));
        assert!(!guard.is_blocked(a));
    }

    #[test]
    fn denials_slow_down_by_address_as_well_as_by_user() {
        let guard = LoginGuard::new(100, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let delays: Vec<u128> = (0..5)
            .map(|i| {
                guard
                    .denied(Some(a), format!("user{i}").as_bytes())
                    .as_millis()
            })
            .collect();
        assert_eq!(delays, [0, 0, 0, 100, 200], "new names from one address");
    }

    #[test]
    fn a_long_invented_user_name_is_cut_and_counted() {
        let guard = LoginGuard::new(100, Duration::from_secs(60));
        let long = vec![b'x'; 100_000];
        let mut last = Duration::ZERO;
        for _ in 0..5 {
            last = guard.denied(None, &long);
        }
        assert_eq!(last, Duration::from_millis(200));
    }
}
