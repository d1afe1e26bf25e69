//! What a client session has set up, kept so that any node connection the
//! session uses can be brought to the same state before a statement runs.

use crate::protocol::status;
use crate::router::Why;

/// Bound on remembered SET statements; a session that issues more distinct
/// ones is pinned to the master instead of replaying an ever longer list.
pub const MAX_SET_LOG: usize = 256;

#[derive(Debug, Clone)]
pub struct SessionState {
    /// Current schema (from the handshake, COM_INIT_DB or session tracking).
    pub schema: Option<Vec<u8>>,
    /// Session-variable SETs, as COM_QUERY payloads, in the order they ran.
    pub set_log: Vec<Vec<u8>>,
    /// COM_SET_OPTION multi-statements state.
    pub multi_statements: bool,
    /// Status flags of the master connection's last reply.
    pub status: u16,
    /// Why the session must stay on the master, once something made it so.
    pub pinned: Option<Why>,
    /// GTID of the session's last committed write.
    pub last_gtid: Option<crate::topology::gtid::Gtid>,
}

impl SessionState {
    pub fn new(schema: Option<Vec<u8>>, multi_statements: bool) -> Self {
        SessionState {
            schema,
            set_log: Vec::new(),
            multi_statements,
            status: status::AUTOCOMMIT,
            pinned: None,
            last_gtid: None,
        }
    }

    /// Inside a transaction by the node's own account, or with autocommit off.
    pub fn in_transaction(&self) -> bool {
        self.status & status::IN_TRANS != 0 || self.status & status::AUTOCOMMIT == 0
    }

    /// Remembers a SET that ran; returns false when the log is full.
    pub fn record_set(&mut self, payload: &[u8]) -> bool {
        // Connections track how much of the log they ran by index, so the log
        // is append-only; only an exact repeat of the last entry is skipped.
        if self.set_log.last().is_some_and(|s| s == payload) {
            return true;
        }
        if self.set_log.len() >= MAX_SET_LOG {
            return false;
        }
        self.set_log.push(payload.to_vec());
        true
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
    }

    #[test]
    fn set_log_is_bounded() {
        let mut s = SessionState::new(None, false);
        assert!(s.record_set(b"\x03SET NAMES utf8"));
        assert!(s.record_set(b"\x03SET NAMES utf8"));
        assert_eq!(s.set_log.len(), 1);
        for i in 0..MAX_SET_LOG - 1 {
            assert!(s.record_set(format!("SET @@x={i}").as_bytes()));
        }
        assert!(!s.record_set(b"one more"));
    }
}
