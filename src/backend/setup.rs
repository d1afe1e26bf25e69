//! What a client session has set up that every node connection it uses must
//! share: the schema, the session-variable SETs it ran (replayed in order)
//! and the multi-statement option. [`sync`] brings one connection there
//! before a command; each step runs only where the connection differs.

use super::connection::BackendConn;
use super::error::BackendError;
use crate::protocol::com;

/// Bound on remembered SET statements; a session that issues more distinct
/// ones is pinned to the master instead of replaying an ever longer list.
pub const MAX_SET_LOG: usize = 256;

/// Bound on the bytes of remembered SET statements, for the same reason: a
/// session's SETs may each be as long as a command (comments included).
pub const MAX_SET_LOG_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSetup {
    /// Current schema (from the handshake, COM_INIT_DB or session tracking).
    pub schema: Option<Vec<u8>>,
    /// Session-variable SETs, as COM_QUERY payloads, in the order they ran.
    pub set_log: Vec<Vec<u8>>,
    /// Bytes in `set_log`.
    pub set_log_bytes: usize,
    /// COM_SET_OPTION multi-statements state.
    pub multi_statements: bool,
}

impl SessionSetup {
    pub fn new(schema: Option<Vec<u8>>, multi_statements: bool) -> Self {
        SessionSetup {
            schema,
            set_log: Vec::new(),
            set_log_bytes: 0,
            multi_statements,
        }
    }

    /// Remembers a SET that ran; false when the log is full.
    pub fn record_set(&mut self, payload: &[u8]) -> bool {
        // Connections track how much of the log they ran by index, so the log
        // is append-only; only an exact repeat of the last entry is skipped.
        if self.set_log.last().is_some_and(|s| s == payload) {
            return true;
        }
        if self.set_log.len() >= MAX_SET_LOG
            || self.set_log_bytes + payload.len() > MAX_SET_LOG_BYTES
        {
            return false;
        }
        self.set_log_bytes += payload.len();
        self.set_log.push(payload.to_vec());
        true
    }
}

/// Brings a node connection to the session's setup.
pub async fn sync(conn: &mut BackendConn, setup: &SessionSetup) -> Result<(), BackendError> {
    if setup.schema.is_some() && conn.sync.schema != setup.schema {
        if let Some(db) = &setup.schema {
            let mut p = vec![com::INIT_DB];
            p.extend_from_slice(db);
            conn.expect_ok(&p).await?;
            conn.sync.schema = Some(db.clone());
        }
    }
    while conn.sync.sets_applied < setup.set_log.len() {
        conn.expect_ok(&setup.set_log[conn.sync.sets_applied])
            .await?;
        conn.sync.sets_applied += 1;
    }
    if conn.sync.multi_statements != setup.multi_statements {
        let opt: u16 = if setup.multi_statements { 0 } else { 1 };
        let mut p = vec![com::SET_OPTION];
        p.extend_from_slice(&opt.to_le_bytes());
        conn.expect_ok(&p).await?;
        conn.sync.multi_statements = setup.multi_statements;
    }
    Ok(())
}

/// A command that changed the setup has just run on `conn` itself: the
/// connection already is where the setup now says.
pub fn mark_synced(conn: &mut BackendConn, setup: &SessionSetup) {
    if setup.schema.is_some() {
        conn.sync.schema = setup.schema.clone();
    }
    conn.sync.sets_applied = setup.set_log.len();
    conn.sync.multi_statements = setup.multi_statements;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_log_is_bounded_and_skips_a_repeat() {
        let mut s = SessionSetup::new(None, false);
        assert!(s.record_set(b"\x03SET NAMES utf8"));
        assert!(s.record_set(b"\x03SET NAMES utf8"));
        assert_eq!(s.set_log.len(), 1);
        for i in 0..MAX_SET_LOG - 1 {
            assert!(s.record_set(format!("SET @@x={i}").as_bytes()));
        }
        assert!(!s.record_set(b"one more"));
    }

    #[test]
    fn set_log_is_bounded_in_bytes() {
        let mut s = SessionSetup::new(None, false);
        let big = vec![b' '; MAX_SET_LOG_BYTES / 2];
        assert!(s.record_set(&big));
        assert!(!s.record_set(&[&big[..], b"more"].concat()));
        assert!(s.record_set(b"SET NAMES utf8"));
        assert_eq!(s.set_log.len(), 2);
    }
}
