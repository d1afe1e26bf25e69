//! Everything that talks to nodes on the data path: connections on our own
//! framing (mysql_common packet types), per-node pools, and the relay that
//! copies a reply to the client. The backend does I/O and makes no routing
//! decisions: the session tells it which node.

pub mod connection;
pub mod error;
pub mod pool;
pub mod relay;

pub use connection::{BackendConn, ConnKey, Credentials, SimpleReply};
pub use error::BackendError;
pub use pool::Pools;
pub use relay::{relay, RelayError, RelayOutcome, Sink, StmtIds, Tap};
