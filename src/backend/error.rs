//! Errors of node I/O, classified by what the session may do about them.

use std::time::Duration;

use crate::net::NetError;
use crate::protocol::response::parse_err;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("network: {0}")]
    Net(#[from] NetError),
    #[error("protocol: {0}")]
    Protocol(&'static str),
    /// The node answered with an ERR packet (kept whole, to relay unchanged).
    #[error("node error {code}: {message}")]
    Server {
        code: u16,
        message: String,
        payload: Vec<u8>,
    },
    #[error("node asks for unsupported auth plugin {0}")]
    Plugin(String),
    /// TLS towards the node failed (no TLS offered, certificate not
    /// verified): the node is not used in cleartext instead.
    #[error("TLS: {0}")]
    Tls(String),
    #[error("no usable password for this user yet (hash-only user who has not logged in)")]
    NoSecret,
    /// The node's connection limit was reached and no slot came free in
    /// time: the node is fine, the proxy is at its own bound.
    #[error("all {limit} connections to the node are in use (pool.max_per_node), none freed within {waited:?}")]
    PoolFull { limit: u32, waited: Duration },
}

impl BackendError {
    pub fn from_err_packet(payload: &[u8]) -> BackendError {
        match parse_err(payload) {
            Some((code, _, msg)) => BackendError::Server {
                code,
                message: String::from_utf8_lossy(msg).into_owned(),
                payload: payload.to_vec(),
            },
            None => BackendError::Protocol("malformed ERR packet"),
        }
    }

    /// The connection is gone or unusable (as opposed to a statement error).
    pub fn is_disconnect(&self) -> bool {
        !matches!(self, BackendError::Server { .. })
    }

    /// The node could not be reached or said it is going away: worth an
    /// immediate health check, and the command never ran there.
    pub fn suggests_node_down(&self) -> bool {
        match self {
            BackendError::Connect(_) | BackendError::ConnectTimeout(_) | BackendError::Net(_) => {
                true
            }
            // Server shutdown in progress, normal shutdown.
            BackendError::Server { code, .. } => matches!(code, 1053 | 1077),
            BackendError::Protocol(_)
            | BackendError::Plugin(_)
            | BackendError::NoSecret
            | BackendError::PoolFull { .. }
            | BackendError::Tls(_) => false,
        }
    }
}
