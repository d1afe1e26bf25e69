//! `KILL [CONNECTION|QUERY] <id>` and COM_PROCESS_KILL, where the id is a
//! client session's (what its handshake and `CONNECTION_ID()` said). The
//! proxy carries it out, as MariaDB would for a thread of its own:
//!
//! * an id that names no live session: 1094, as the node says for an
//!   unknown thread (a node thread id is never killed through the proxy: the
//!   same number may be another session's);
//! * another user's session: allowed with CONNECTION ADMIN or SUPER (the
//!   node's own rule, `PRIV_KILL_OTHER_USER_PROCESS`), asked of the node for
//!   the killer's account; otherwise 1095;
//! * KILL QUERY: `KILL QUERY <thread>` on each node connection the session
//!   holds, sent on the killer's own connection to that node; the victim
//!   gets the node's own 1317 for its running statement;
//! * KILL [CONNECTION]: the session is told to end (it closes its client
//!   without a word, as a node closes a killed connection; a statement it
//!   is relaying is abandoned), and its node threads are killed;
//! * the session's own id: 1317 (KILL QUERY) or 1927 and the end (KILL).

use super::{Nodes, Session};
use crate::frontend::FrontendError;
use crate::protocol::err::ProxyError;
use crate::router::{Request, Why};

/// Whether the killer's account may kill other users' threads: CONNECTION
/// ADMIN or SUPER granted to it (MariaDB's rule since 10.5.2).
const MAY_KILL_OTHERS: &str = "SELECT 1 FROM information_schema.USER_PRIVILEGES \
    WHERE PRIVILEGE_TYPE IN ('CONNECTION ADMIN', 'SUPER') AND GRANTEE = CONCAT('''', \
    LEFT(CURRENT_USER(), CHAR_LENGTH(CURRENT_USER()) - CHAR_LENGTH(SUBSTRING_INDEX(CURRENT_USER(), '@', -1)) - 1), \
    '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')";

/// ER_KILL_DENIED_ERROR, as a node answers a KILL it refuses.
const ER_KILL_DENIED: u16 = 1095;

impl<N: Nodes> Session<N> {
    /// Carries out a KILL naming session `id`; `query`: KILL QUERY.
    pub(super) async fn kill(
        &mut self,
        query: bool,
        id: u64,
        seq: u8,
    ) -> Result<(), FrontendError> {
        if id == u64::from(self.activity.id()) {
            if query {
                return self.reply_err(seq, ProxyError::query_interrupted()).await;
            }
            self.reply_err(seq, ProxyError::connection_killed()).await?;
            return Err(FrontendError::Closed);
        }
        let target = u32::try_from(id)
            .ok()
            .and_then(|id| self.ctx.sessions.kill_target(id));
        let Some(target) = target else {
            tracing::debug!(session = id, live = ?self.ctx.sessions.list().iter().map(|v| v.id).collect::<Vec<_>>(), "kill: no such session");
            return self.reply_err(seq, ProxyError::no_such_thread(id)).await;
        };
        if target.user != *self.user && !self.may_kill_others().await {
            return self.reply_err(seq, ProxyError::kill_denied(id)).await;
        }
        tracing::info!(session = id, query, "kill");
        if !query {
            target.killed.cancel();
        }
        let verb = if query {
            "KILL QUERY"
        } else {
            "KILL CONNECTION"
        };
        let kill = target.threads.begin_kill();
        for &(node, thread) in &kill.threads {
            let sql = format!("{verb} {thread}");
            match self.nodes.side_query(node, &self.state.setup, &sql).await {
                // The node's rule said no (a grant through a role, say).
                Ok(out) if out.error == Some(ER_KILL_DENIED) => {
                    return self.reply_err(seq, ProxyError::kill_denied(id)).await;
                }
                // 1094 included: that statement or connection ended meanwhile.
                Ok(_) => {}
                Err(e) => tracing::warn!(node = %self.nodes.node_name(node), error = %e,
                    "could not send the kill to the node"),
            }
        }
        drop(kill);
        self.reply_ok(seq).await
    }

    /// Ends a session killed while it waited for a command: no word, the
    /// connection closed as a node closes a killed one.
    pub(super) async fn close_killed(&mut self) {
        self.close_draining().await;
    }

    /// Asks the master whether this session's account holds CONNECTION
    /// ADMIN or SUPER; no answer means no.
    async fn may_kill_others(&mut self) -> bool {
        let Ok(placement) = self.place(Request::Master(Why::Kill)) else {
            return false;
        };
        let setup = &self.state.setup;
        match self
            .nodes
            .side_query(placement.node, setup, MAY_KILL_OTHERS)
            .await
        {
            Ok(out) => out.error.is_none() && out.rows > 0,
            Err(e) => {
                tracing::warn!(error = %e, "could not ask the master for the KILL privilege");
                false
            }
        }
    }
}
