//! Wake-ups inside the cluster's bookkeeping. A session that sees a node
//! fail on the data path (a refused connection, a reset) asks for that node
//! to be checked at once instead of at its next interval; every published
//! change of the topology wakes the failover controller, so a master that
//! went down is acted on without waiting for the controller's own tick.

use tokio::sync::{watch, Notify};

use super::NodeId;

#[derive(Debug)]
pub(super) struct Signals {
    /// One per node: "check this node now".
    suspects: Vec<Notify>,
    /// The generation of the last published snapshot: the failover
    /// controller and sessions waiting for a master watch it.
    published: watch::Sender<u64>,
}

impl Signals {
    pub(super) fn new(nodes: usize) -> Signals {
        Signals {
            suspects: (0..nodes).map(|_| Notify::new()).collect(),
            published: watch::Sender::new(0),
        }
    }

    /// Asks for `node` to be checked now. A permit is kept if the monitor is
    /// busy, so a report is never lost; several reports make one check.
    pub(super) fn suspect(&self, node: NodeId) {
        if let Some(n) = self.suspects.get(node) {
            n.notify_one();
        }
    }

    /// Resolves when someone suspects `node` (never, for an unknown id).
    pub(super) async fn suspected(&self, node: NodeId) {
        match self.suspects.get(node) {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    }

    pub(super) fn published(&self, generation: u64) {
        self.published.send_replace(generation);
    }

    /// A receiver whose `changed()` resolves at each later publication.
    pub(super) fn watch(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }
}
