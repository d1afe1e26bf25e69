//! What the failover controller reports when it moves the master (or
//! rewinds a returning one): a [`TopologyEvent`] per change, handed to the callback the controller is
//! started with, before whoever asked for the change hears back. Counting,
//! alerting or logging them is the receiver's business, so `topology`
//! depends on none of those modules.

/// One change made by the failover controller. Nodes by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopologyEvent {
    /// The master failed its checks and the controller promoted `to`.
    AutoFailover { from: String, to: String },
    /// An operator's `FAILOVER TO`: `to` became master at once, without
    /// waiting for the old master.
    ForcedFailover { to: String },
    /// An operator's `SWITCHOVER TO`: writes held, `to` caught up, then became master.
    Switchover { to: String },
    /// A returning former master's unacknowledged transactions were undone
    /// so it could rejoin (topology/failover/rewind.rs).
    Rewound { node: String, transactions: usize },
}
