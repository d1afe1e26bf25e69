//! COM_CHANGE_USER (authenticate again, then start afresh as that user) and
//! COM_RESET_CONNECTION (start afresh as the same user): node connections
//! go back to their pools, which reset them, and every piece of session
//! state (prepared statements, SETs, pins, an open transaction) is dropped.

use super::{Flow, Nodes, Session};
use crate::frontend::state::SessionState;
use crate::frontend::FrontendError;
use crate::protocol::caps;
use crate::protocol::err::ProxyError;
use crate::protocol::handshake::{self, NATIVE_PLUGIN};

/// Largest auth-switch reply accepted from a client.
const MAX_AUTH_REPLY: usize = 64 * 1024;

impl<N: Nodes> Session<N> {
    pub(super) async fn change_user(
        &mut self,
        payload: &[u8],
        seq: u8,
    ) -> Result<Flow, FrontendError> {
        let Some(cu) = handshake::parse_change_user(payload, self.caps) else {
            self.reply_err(seq, ProxyError::malformed_packet()).await?;
            return Ok(Flow::Close);
        };
        let mut token = cu.auth.clone();
        let mut seq = seq;
        if cu.plugin.as_deref().is_some_and(|p| p != NATIVE_PLUGIN) {
            self.client.queue(
                seq,
                &handshake::auth_switch_request(NATIVE_PLUGIN, &self.nonce),
            );
            self.client.flush().await?;
            let t = Some(self.ctx.config.mysql.client_read_timeout);
            let reply = self.client.read_packet(MAX_AUTH_REPLY, t, t).await?;
            seq = reply.seq.wrapping_add(1);
            token = reply.payload.to_vec();
        }
        let Some(creds) = self.ctx.users.authenticate(&cu.user, &self.nonce, &token) else {
            let host = self
                .client
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let err = ProxyError::access_denied(&cu.user, &host, !token.is_empty());
            self.reply_err(seq, err).await?;
            return Ok(Flow::Close);
        };
        tracing::debug!(user = %creds.user, "change user");
        self.user = std::sync::Arc::clone(&creds.user);
        self.activity.set_user(&self.user);
        if let Some(cs) = cu.charset.and_then(|c| u8::try_from(c).ok()) {
            self.collation = cs;
        }
        self.nodes.change_user(creds, self.collation);
        self.reset_session(cu.db);
        if self.state.setup.schema.is_some() {
            if let Err(e) = self.open_master().await {
                self.send_backend_error(seq, None, &e).await;
                return Ok(Flow::Close);
            }
        }
        self.reply_ok(seq).await?;
        Ok(Flow::Continue)
    }

    /// Forgets all session state: node connections go back to their pools
    /// (which reset them), prepared statements and SETs are dropped.
    pub(super) fn reset_session(&mut self, schema: Option<Vec<u8>>) {
        self.nodes.release_all();
        self.prepared.clear();
        if let Some(c) = &self.ctx.cache {
            // The reset rolls back an open transaction; invalidating is the safe side.
            c.invalidate(&std::mem::take(&mut self.cache_pending));
        }
        self.state = SessionState::new(schema, self.caps & caps::MULTI_STATEMENTS != 0);
        self.count_transaction();
    }
}
