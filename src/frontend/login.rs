//! The connection phase towards a client: greeting, HandshakeResponse,
//! mysql_native_password check, and an auth switch for clients that open with
//! another plugin (MySQL 8 clients start with caching_sha2_password).

use std::time::Duration;

use super::FrontendError;
use crate::backend::Credentials;
use crate::context::Users;
use crate::net::PacketIo;
use crate::protocol::err::ProxyError;
use crate::protocol::handshake::{self, ClientHello, NATIVE_PLUGIN};
use crate::protocol::{caps, status};

/// Largest HandshakeResponse we accept (user, db, attributes).
const MAX_HELLO: usize = 64 * 1024;

pub struct Login {
    pub hello: ClientHello,
    pub creds: Credentials,
    /// Capabilities in force for this client.
    pub caps: u32,
    /// Sequence id for the reply that ends the connection phase.
    pub next_seq: u8,
}

/// A client logged in past a connection limit: MariaDB's 1040, after the
/// login as a node sends it, then the connection ends.
pub async fn refuse_past_limit(io: &mut PacketIo, next_seq: u8) {
    io.queue(next_seq, &ProxyError::too_many_connections().to_payload());
    if let Err(e) = io.flush().await {
        tracing::debug!(error = %e, "could not send 1040");
    }
}

/// Runs the connection phase up to (not including) the final OK.
pub async fn login(
    io: &mut PacketIo,
    users: &Users,
    connection_id: u32,
    nonce: &[u8; 20],
    server_version: &[u8],
    server_caps: u32,
    timeout: Duration,
) -> Result<Login, FrontendError> {
    let greeting = handshake::greeting(
        connection_id,
        nonce,
        server_version,
        server_caps,
        // utf8mb4_general_ci, what MariaDB 10.11 greets with by default
        45,
        status::AUTOCOMMIT,
    );
    io.queue(0, &greeting);
    io.flush().await?;
    let t = Some(timeout);
    let pkt = io.read_packet(MAX_HELLO, t, t).await?;
    let mut seq = pkt.seq.wrapping_add(1);
    if pkt.payload.len() == 32 && {
        let f = u32::from_le_bytes([
            pkt.payload[0],
            pkt.payload[1],
            pkt.payload[2],
            pkt.payload[3],
        ]);
        f & caps::SSL != 0
    } {
        // TLS was not offered; a client that insists gets a clear error.
        return reject(io, seq, ProxyError::malformed_packet()).await;
    }
    let Some(hello) = handshake::parse_client_hello(&pkt.payload) else {
        return reject(io, seq, ProxyError::malformed_packet()).await;
    };
    let mut token = hello.auth.clone();
    let plugin_is_native = hello.plugin.as_deref().is_none_or(|p| p == NATIVE_PLUGIN);
    if !plugin_is_native {
        io.queue(seq, &handshake::auth_switch_request(NATIVE_PLUGIN, nonce));
        io.flush().await?;
        let reply = io.read_packet(MAX_HELLO, t, t).await?;
        seq = reply.seq.wrapping_add(1);
        token = reply.payload.to_vec();
    }
    let host = io
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let Some(creds) = users.authenticate(&hello.user, nonce, &token) else {
        let err = ProxyError::access_denied(&hello.user, &host, !token.is_empty());
        return reject(io, seq, err).await;
    };
    let caps = hello.capabilities & server_caps;
    Ok(Login {
        hello,
        creds,
        caps,
        next_seq: seq,
    })
}

async fn reject<T>(io: &mut PacketIo, seq: u8, err: ProxyError) -> Result<T, FrontendError> {
    io.queue(seq, &err.to_payload());
    io.flush().await?;
    Err(FrontendError::Rejected(err))
}
