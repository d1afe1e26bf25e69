//! One budget for the large client commands buffered at once, all sessions
//! together. A command is joined in memory before it is routed (the router
//! reads its whole text), so without a shared bound a hundred clients each
//! sending a command of `max_allowed_packet` bytes would make the proxy hold
//! a hundred of them at once. A chunk of a command from [`LARGE`] bytes up
//! takes its share of the budget before its body is read; a client that
//! finds the budget spent waits with its bytes left in its socket (TCP holds
//! the sender back) until commands ahead of it have gone to their node.
//! Commands under [`LARGE`] never wait, so the common path costs nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Chunks below this size are not counted.
pub const LARGE: usize = 64 * 1024;

/// Copies of a command the proxy holds while it runs: the bytes read from
/// the client and the framed copy written to the node.
const COPIES: usize = 2;

/// The budget is counted in KiB, so that a `u32` of permits covers any size.
const UNIT: usize = 1024;

#[derive(Debug, thiserror::Error)]
#[error("no room in mysql.max_command_memory for a command of {bytes} bytes within {waited:?}")]
pub struct NoRoom {
    pub bytes: usize,
    pub waited: Duration,
}

/// The shared budget (`mysql.max_command_memory`).
#[derive(Debug, Clone)]
pub struct CommandMemory {
    permits: Arc<Semaphore>,
    total: u32,
}

/// What one command holds of the budget; given back when dropped.
#[derive(Debug, Default)]
pub struct Reservation(Option<OwnedSemaphorePermit>);

impl CommandMemory {
    pub fn new(bytes: u64) -> CommandMemory {
        let total = u32::try_from(bytes / UNIT as u64)
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        CommandMemory {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// Adds a chunk of `len` bytes to `held`, waiting at most `wait` for
    /// room. A command larger than the whole budget takes all of it, so it
    /// runs alone rather than never. (Two commands of several chunks each
    /// can hold parts of the budget and wait for each other; the wait's
    /// bound ends that, and it needs `max_allowed_packet` raised past 16 MiB.)
    pub async fn reserve(
        &self,
        held: &mut Reservation,
        len: usize,
        wait: Option<Duration>,
    ) -> Result<(), NoRoom> {
        if len < LARGE {
            return Ok(());
        }
        let held_units = held.units();
        let want = held_units
            .saturating_add(len.saturating_mul(COPIES).div_ceil(UNIT))
            .min(self.total as usize);
        let units = u32::try_from(want.saturating_sub(held_units)).unwrap_or(u32::MAX);
        if units == 0 {
            return Ok(());
        }
        let acquire = self.permits.clone().acquire_many_owned(units);
        let permit = match wait {
            Some(t) => tokio::time::timeout(t, acquire).await.map_err(|_| NoRoom {
                bytes: len,
                waited: t,
            })?,
            None => acquire.await,
        };
        // The semaphore is never closed.
        let Ok(permit) = permit else {
            return Ok(());
        };
        match &mut held.0 {
            Some(p) => p.merge(permit),
            None => held.0 = Some(permit),
        }
        Ok(())
    }

    /// KiB of the budget not held by any command (for tests and metrics).
    pub fn available_kib(&self) -> usize {
        self.permits.available_permits()
    }
}

impl Reservation {
    fn units(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.num_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_chunks_take_nothing() {
        let m = CommandMemory::new(1 << 20);
        let mut r = Reservation::default();
        m.reserve(&mut r, LARGE - 1, None).await.expect("room");
        assert_eq!(m.available_kib(), 1024);
    }

    #[tokio::test]
    async fn a_large_chunk_holds_its_copies_until_dropped() {
        let m = CommandMemory::new(1 << 20);
        let mut r = Reservation::default();
        m.reserve(&mut r, 100 * 1024, None).await.expect("room");
        assert_eq!(m.available_kib(), 1024 - 200);
        drop(r);
        assert_eq!(m.available_kib(), 1024);
    }

    #[tokio::test]
    async fn a_command_larger_than_the_budget_takes_all_of_it_and_no_more() {
        let m = CommandMemory::new(1 << 20);
        let mut r = Reservation::default();
        m.reserve(&mut r, 4 << 20, None).await.expect("room");
        m.reserve(&mut r, 4 << 20, None)
            .await
            .expect("its next chunk");
        assert_eq!(m.available_kib(), 0);
        drop(r);
        assert_eq!(m.available_kib(), 1024);
    }

    #[tokio::test]
    async fn a_second_command_waits_for_the_first_and_gives_up_in_time() {
        let m = CommandMemory::new(1 << 20);
        let mut first = Reservation::default();
        m.reserve(&mut first, 400 * 1024, None).await.expect("room");
        let mut second = Reservation::default();
        let t = Duration::from_millis(20);
        let err = m.reserve(&mut second, 400 * 1024, Some(t)).await;
        assert!(err.is_err(), "the budget was spent");
        assert_eq!(m.available_kib(), 1024 - 800);
        drop(first);
        m.reserve(&mut second, 400 * 1024, Some(t))
            .await
            .expect("room again");
    }
}
