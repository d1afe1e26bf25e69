//! The switchover gate: holds new writes while the master changes hands,
//! and counts what is still writing on the old master.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Holds new writes during a switchover and counts what is still writing on
/// the master: statements that passed the gate and open transactions. A
/// switchover closes the gate, then waits for that count to reach zero, so
/// no transaction is still running on the old master when it is fenced.
/// Sessions pay one atomic add and one load per master statement.
#[derive(Debug, Default)]
pub struct WriteGate {
    closed: AtomicBool,
    opened: Notify,
    active: AtomicUsize,
}

/// A master statement in flight; dropping it says the statement is done.
#[derive(Debug)]
pub struct WritePass(Arc<WriteGate>);

impl Drop for WritePass {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WriteGate {
    /// Waits while the gate is closed, at most `limit`. True if open.
    pub async fn wait_open(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.closed.load(Ordering::SeqCst) {
            let notified = self.opened.notified();
            if !self.closed.load(Ordering::SeqCst) {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return !self.closed.load(Ordering::SeqCst);
            }
        }
        true
    }

    /// Lets a master statement through (waiting while closed, at most
    /// `limit`). Counted before the closed flag is read, so a switchover that
    /// closes the gate either sees this statement or this statement sees it.
    pub async fn enter(self: &Arc<Self>, limit: Duration) -> WritePass {
        let deadline = Instant::now() + limit;
        loop {
            self.active.fetch_add(1, Ordering::SeqCst);
            if !self.closed.load(Ordering::SeqCst) || Instant::now() >= deadline {
                return WritePass(Arc::clone(self));
            }
            self.active.fetch_sub(1, Ordering::SeqCst);
            self.wait_open(deadline.saturating_duration_since(Instant::now()))
                .await;
        }
    }

    /// A session's transaction opened / ended on the master.
    pub fn tx_opened(&self) {
        self.active.fetch_add(1, Ordering::SeqCst);
    }

    pub fn tx_closed(&self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }

    /// Waits until nothing is writing through the proxy, at most `limit`.
    pub(super) async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.active.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    pub(super) fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
        self.opened.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gate_holds_until_opened() {
        let gate = Arc::new(WriteGate::default());
        assert!(gate.wait_open(Duration::from_millis(1)).await);
        gate.close();
        assert!(!gate.wait_open(Duration::from_millis(20)).await);
        let g = Arc::clone(&gate);
        let waiter = tokio::spawn(async move { g.wait_open(Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.open();
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn switchover_waits_for_statements_and_transactions() {
        let gate = Arc::new(WriteGate::default());
        let pass = gate.enter(Duration::from_secs(1)).await;
        gate.tx_opened();
        gate.close();
        assert!(
            !gate.wait_idle(Duration::from_millis(20)).await,
            "a statement and a transaction run"
        );
        drop(pass);
        assert!(
            !gate.wait_idle(Duration::from_millis(20)).await,
            "the transaction is still open"
        );
        gate.tx_closed();
        assert!(gate.wait_idle(Duration::from_millis(20)).await);
        // A new statement waits at the closed gate and is not counted meanwhile.
        let g = Arc::clone(&gate);
        let held = tokio::spawn(async move { g.enter(Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(gate.wait_idle(Duration::from_millis(1)).await);
        gate.open();
        let pass = held.await.unwrap();
        assert!(!gate.wait_idle(Duration::from_millis(1)).await);
        drop(pass);
    }
}
