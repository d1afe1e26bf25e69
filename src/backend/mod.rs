//! Everything that talks to nodes on the data path: connections on our own
//! framing (mysql_common packet types), per-node pools, and the relay that
//! copies a reply to the client. The backend does I/O and makes no routing
//! decisions: the session tells it which node.
//!
//! * `node_conns`: [`NodeConns`], one session's connections; [`NodeConns::run`]
//!   runs a command on the node it is told and relays the reply.
//! * `job`: what a session hands `run` ([`Job`], [`ClientSink`]) and what
//!   running it came to ([`Ran`]).
//! * `setup`: [`SessionSetup`], what every connection of a session must share.
//! * `statements`: client statement ids ↔ each connection's own.
//! * `connection`: [`BackendConn`], one authenticated node connection.
//! * `pool`: [`Pools`], idle connections per node; where connections change hands.
//! * `relay`: copies one reply to the client, packet by packet.
//! * `threads`: [`HeldThreads`], the node threads a session holds (for KILL).

pub mod connection;
pub mod error;
mod job;
pub mod node_conns;
pub mod pool;
pub mod relay;
pub mod setup;
mod statements;
pub mod threads;

pub use connection::{BackendConn, ConnKey, Credentials, SimpleReply};
pub use error::BackendError;
pub use job::{Abandon, ClientSink, CommitGate, Job, Ran};
pub use node_conns::NodeConns;
pub use pool::{Pools, SlotCount};
pub use relay::{relay, RelayError, RelayOutcome, Sink, StmtIds, Tap};
pub use setup::SessionSetup;
pub use threads::{HeldThreads, KillTargets, ThreadOwners};
