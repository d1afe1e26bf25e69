//! Which node threads a client session holds, for a KILL that names the
//! session: `KILL QUERY <session id>` becomes `KILL QUERY <thread>` on each
//! node connection the session holds. A thread id is only a safe target
//! while its connection belongs to that session: once the connection goes
//! back to the pool, another session may be running on it. So the table and
//! the hand-back share one lock: a killer takes the ids under it (and counts
//! itself in flight), and a session that lets its connections go while a
//! kill is in flight closes them instead of pooling them, so a late KILL
//! can only reach a connection nobody uses.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::topology::NodeId;

#[derive(Debug, Default)]
struct Held {
    /// The node thread id of the connection held to node n, if any.
    threads: Vec<Option<u32>>,
    /// Kills that took ids and have not finished sending them.
    kills_in_flight: usize,
}

/// The node threads of one session's connections (shared with the session
/// registry, which finds it by session id).
#[derive(Debug, Default)]
pub struct HeldThreads {
    held: Mutex<Held>,
}

/// Thread ids taken by a killer; while it lives, the session's connections
/// are closed rather than pooled when it lets them go.
#[derive(Debug)]
pub struct KillTargets<'a> {
    owner: &'a HeldThreads,
    /// (node, node thread id) of every connection held when the kill began.
    pub threads: Vec<(NodeId, u32)>,
}

impl HeldThreads {
    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session now holds `thread` on `node` (or nothing there).
    pub fn set(&self, node: NodeId, thread: Option<u32>) {
        let mut h = self.lock();
        if h.threads.len() <= node {
            h.threads.resize(node + 1, None);
        }
        h.threads[node] = thread;
    }

    /// The session lets every connection go. True: a kill is in flight, so
    /// the connections must be closed, not pooled.
    pub fn release_all(&self) -> bool {
        let mut h = self.lock();
        h.threads.iter_mut().for_each(|t| *t = None);
        h.kills_in_flight > 0
    }

    /// The session lets its connection to `node` go. True: a kill is in
    /// flight, so it must be closed, not pooled.
    pub fn release(&self, node: NodeId) -> bool {
        let mut h = self.lock();
        if let Some(t) = h.threads.get_mut(node) {
            *t = None;
        }
        h.kills_in_flight > 0
    }

    /// The threads held now, as (node, thread id).
    pub fn held(&self) -> Vec<(NodeId, u32)> {
        let h = self.lock();
        h.threads
            .iter()
            .enumerate()
            .filter_map(|(node, t)| t.map(|t| (node, t)))
            .collect()
    }

    /// A killer takes the current thread ids.
    pub fn begin_kill(&self) -> KillTargets<'_> {
        // Under the one lock: a release cannot slip in between.
        let mut h = self.lock();
        h.kills_in_flight += 1;
        let threads = h
            .threads
            .iter()
            .enumerate()
            .filter_map(|(node, t)| t.map(|t| (node, t)))
            .collect();
        KillTargets {
            owner: self,
            threads,
        }
    }
}

impl Drop for KillTargets<'_> {
    fn drop(&mut self) {
        let mut h = self.owner.lock();
        h.kills_in_flight = h.kills_in_flight.saturating_sub(1);
    }
}

/// Which client session holds each node thread, for a process list shown
/// through the proxy (a snapshot taken before the statement runs).
#[derive(Debug, Default, Clone)]
pub struct ThreadOwners(HashMap<(NodeId, u32), u32>);

impl ThreadOwners {
    /// The session holding `thread` on `node`.
    pub fn owner(&self, node: NodeId, thread: u32) -> Option<u32> {
        self.0.get(&(node, thread)).copied()
    }
}

impl FromIterator<((NodeId, u32), u32)> for ThreadOwners {
    fn from_iter<I: IntoIterator<Item = ((NodeId, u32), u32)>>(iter: I) -> Self {
        ThreadOwners(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kill_in_flight_keeps_connections_out_of_the_pool() {
        let held = HeldThreads::default();
        held.set(1, Some(77));
        held.set(0, Some(5));
        let kill = held.begin_kill();
        assert_eq!(kill.threads, vec![(0, 5), (1, 77)]);
        assert!(held.release_all(), "released during a kill: must close");
        assert!(held.begin_kill().threads.is_empty());
        drop(kill);
        held.set(0, Some(6));
        assert!(!held.release_all(), "no kill in flight: may pool");
        assert!(held.begin_kill().threads.is_empty());
    }
}
