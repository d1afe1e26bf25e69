//! What a session hands [`super::NodeConns::run`]: the command ([`Job`]),
//! where its reply goes ([`ClientSink`]), when to give it up ([`Abandon`]),
//! and what running it came to ([`Ran`]).

use std::time::Duration;

use super::error::BackendError;
use super::relay::{RelayOutcome, Tap};
use super::threads::ThreadOwners;
use crate::net::PacketIo;
use crate::protocol::response::Expect;
use crate::topology::NodeId;

/// Resolves when a running command's reply must no longer be relayed.
pub type Abandon = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Where a reply goes: the client, with what the relay needs to know of it.
pub struct ClientSink<'a> {
    pub io: &'a mut PacketIo,
    /// The client's capability flags.
    pub caps: u32,
    /// Capture / held flush for the result cache.
    pub tap: Option<&'a mut Tap>,
    /// For a statement that reads a process list: who holds which thread.
    pub owners: Option<&'a ThreadOwners>,
    /// A command on the master: asked, with the reply's `last_gtid`, before
    /// a commit's OK is flushed to the client (see [`CommitGate`]).
    pub gate: Option<&'a CommitGate<'a>>,
    /// The command writes rows: a reply ending in a classic EOF (which
    /// carries no GTID) has the node asked for the commit's GTID.
    pub ask_last_gtid: bool,
}

/// Records a commit as acknowledged and says whether its OK may reach the
/// client: false once a failover may have checked its candidate without it.
/// Asked before the flush, so every OK a client gets was recorded first.
pub type CommitGate<'a> = dyn Fn(&str) -> bool + Sync + 'a;

/// A command to run on a node.
#[derive(Debug, Clone, Copy)]
pub enum Job<'a> {
    /// Sent as the client sent it (COM_QUERY, COM_FIELD_LIST, COM_INIT_DB...).
    Plain { payload: &'a [u8], expect: Expect },
    /// COM_STMT_PREPARE: registered under [`super::NodeConns::next_statement_id`],
    /// the id the client is shown.
    Prepare { payload: &'a [u8] },
    /// COM_STMT_EXECUTE of the client's statement `id`: prepared on the
    /// connection first if needed, the id swapped, types re-sent if missing.
    Execute {
        payload: &'a [u8],
        id: u32,
        cursor: bool,
    },
    /// COM_STMT_FETCH: only where the statement's cursor is open.
    Fetch { payload: &'a [u8], id: u32 },
    /// COM_STMT_RESET of the client's statement `id` (prepared first if needed).
    Reset { payload: &'a [u8], id: u32 },
}

/// What running a command came to.
#[derive(Debug)]
pub enum Ran {
    /// The node replied (perhaps with an ERR); the reply reached the client.
    Replied {
        node: NodeId,
        outcome: RelayOutcome,
        took: Duration,
        /// The node tried first failed before any byte reached the client.
        fell_back_from: Option<(NodeId, String)>,
    },
    /// The node failed while the command ran. `delivered`: the command
    /// reached the node (it may have run); `sent`: part of the reply reached
    /// the client already; `next_seq` is the sequence id to use. `torn`:
    /// where the client's stream stands is unknown (a reply abandoned part
    /// way, a LOCAL INFILE upload cut): no error can follow it, the session
    /// must close.
    Lost {
        node: NodeId,
        delivered: bool,
        sent: bool,
        next_seq: u8,
        error: String,
        torn: bool,
    },
    /// No usable connection to the node (or it refused the login).
    Unavailable { node: NodeId, error: BackendError },
    /// The client's statement id is unknown (or its cursor gone).
    UnknownStatement,
}
