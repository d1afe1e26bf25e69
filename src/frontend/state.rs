//! What a client session knows about itself: the setup every node
//! connection must share ([`SessionSetup`]), the master connection's status
//! flags, why it is pinned to the master, its last write's GTID, the master
//! it writes to and the node of its last statement. The router reads these
//! as [`SessionFacts`]; `session/effects.rs` is the one place that changes
//! them after a reply.

use std::time::Duration;

use crate::backend::SessionSetup;
use crate::protocol::status;
use crate::router::{SessionFacts, Why};
use crate::topology::gtid::Gtid;
use crate::topology::NodeId;

#[derive(Debug, Clone)]
pub struct SessionState {
    pub setup: SessionSetup,
    /// Status flags of the master connection's last reply.
    pub status: u16,
    /// Why the session must stay on the master, once something made it so.
    pub pinned: Option<Why>,
    /// GTID of the session's last committed write.
    pub last_gtid: Option<Gtid>,
    /// The master this session writes to. A transaction open there when
    /// another node becomes master gets an error, never a COMMIT on it.
    pub home: Option<NodeId>,
    /// Node of the previous statement: SHOW WARNINGS and friends go there.
    pub last_node: Option<NodeId>,
    /// The session's own `SET wait_timeout`, once it ran one (otherwise the
    /// timeout from login applies).
    pub idle_timeout: Option<Duration>,
    /// A `START TRANSACTION READ ONLY` open on this read node (not the
    /// master: a read-only transaction there is an ordinary one).
    pub read_only_tx: Option<NodeId>,
    /// The previous statement was a `SET TRANSACTION`: it waits on that
    /// node's connection for the next transaction. Only for the next
    /// statement; one placed elsewhere runs the same SET first where it runs,
    /// and the waiting one is used up (`session/exec.rs`).
    pub next_transaction: Option<NextTransaction>,
    /// A statement may have left state on a node connection that nothing
    /// replays (`router::keeps_connection`): no multiplexing from then on.
    pub keeps_connections: bool,
}

/// A one-shot `SET TRANSACTION` waiting on a node connection.
#[derive(Debug, Clone)]
pub struct NextTransaction {
    pub node: NodeId,
    /// Its text, to run again where the next statement goes.
    pub sql: String,
    /// `READ ONLY`: a `BEGIN` right after opens a read-only transaction
    /// there when that is a read node.
    pub read_only: bool,
}

impl SessionState {
    pub fn new(schema: Option<Vec<u8>>, multi_statements: bool) -> Self {
        SessionState {
            setup: SessionSetup::new(schema, multi_statements),
            status: status::AUTOCOMMIT,
            pinned: None,
            last_gtid: None,
            home: None,
            last_node: None,
            idle_timeout: None,
            read_only_tx: None,
            next_transaction: None,
            keeps_connections: false,
        }
    }

    /// Inside a transaction by the node's own account (the master's, or the
    /// read node's of a read-only one), or with autocommit off.
    pub fn in_transaction(&self) -> bool {
        self.status & status::IN_TRANS != 0
            || self.status & status::AUTOCOMMIT == 0
            || self.read_only_tx.is_some()
    }

    /// Nothing of the session itself ties it to its node connections (no
    /// transaction, autocommit on, no pins, no `SET TRANSACTION` waiting
    /// for its transaction): multiplexing may give back those without
    /// residue of their own.
    pub fn may_release_connections(&self) -> bool {
        !self.in_transaction()
            && self.pinned.is_none()
            && !self.keeps_connections
            && self.next_transaction.is_none()
    }

    /// The facts a node choice reads.
    pub fn facts(&self) -> SessionFacts<'_> {
        SessionFacts {
            in_transaction: self.in_transaction(),
            open_transaction: self.status & status::IN_TRANS != 0,
            pinned: self.pinned.is_some(),
            home: self.home,
            last_node: self.last_node,
            last_gtid: self.last_gtid.as_ref(),
            read_only_tx: self.read_only_tx,
            read_only_next: self
                .next_transaction
                .as_ref()
                .filter(|n| n.read_only && Some(n.node) != self.home)
                .map(|n| n.node),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_follows_status_flags() {
        let mut s = SessionState::new(None, false);
        assert!(!s.in_transaction());
        s.status = status::AUTOCOMMIT | status::IN_TRANS;
        assert!(s.in_transaction());
        s.status = 0; // autocommit=0
        assert!(s.in_transaction());
        assert!(s.facts().in_transaction);
    }
}
