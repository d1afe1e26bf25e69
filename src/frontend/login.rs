//! The connection phase towards a client: greeting, an optional switch to
//! TLS, HandshakeResponse, mysql_native_password check, and an auth switch
//! for clients that open with another plugin (MySQL 8 clients start with
//! caching_sha2_password).
//!
//! TLS follows MariaDB: the greeting offers CLIENT_SSL when the listener has
//! a certificate; a client that wants TLS sends a 32-byte SSL request
//! (sequence 1), both sides run the TLS handshake on the same socket, and the
//! HandshakeResponse (sequence 2) and everything after it travel inside TLS,
//! answered against the greeting's scramble. A listener that requires TLS
//! (or a user with `require_tls`) refuses a cleartext login after checking
//! the password, with the error MariaDB 10.11 gives under
//! `require_secure_transport`: 1045 access denied (it has no separate code).

use std::sync::Arc;
use std::time::Duration;

use super::login_guard::LoginGuard;
use super::FrontendError;
use crate::backend::Credentials;
use crate::context::Users;
use crate::net::PacketIo;
use crate::protocol::err::ProxyError;
use crate::protocol::handshake::{self, ClientHello, NATIVE_PLUGIN};
use crate::protocol::{caps, status};
use crate::tls::{ServerTls, TlsInfo};

/// Largest HandshakeResponse we accept (user, db, attributes).
const MAX_HELLO: usize = 64 * 1024;

/// An SSL request is the first 32 bytes of a HandshakeResponse41: flags,
/// max packet, collation, filler. A full response is longer (it has at
/// least the user's terminating NUL).
const SSL_REQUEST_LEN: usize = 32;

/// What a listener offers in the connection phase.
pub struct LoginSpec<'a> {
    pub users: &'a Users,
    /// Counts failed logins; refuses blocked addresses, slows guessing.
    pub guard: &'a LoginGuard,
    pub connection_id: u32,
    pub nonce: &'a [u8; 20],
    pub server_version: &'a [u8],
    /// Capabilities offered, without CLIENT_SSL (added when `tls` is set).
    pub server_caps: u32,
    /// Bounds each read of the phase and the TLS handshake.
    pub timeout: Duration,
    /// The listener's certificate, as it was when the client connected.
    pub tls: Option<Arc<ServerTls>>,
}

pub struct Login {
    pub hello: ClientHello,
    pub creds: Credentials,
    /// Capabilities in force for this client.
    pub caps: u32,
    /// Sequence id for the reply that ends the connection phase.
    pub next_seq: u8,
    /// Version and cipher when the client switched to TLS.
    pub tls: Option<TlsInfo>,
}

/// A client logged in past a connection limit: MariaDB's 1040, after the
/// login as a node sends it, then the connection ends.
pub async fn refuse_past_limit(io: &mut PacketIo, next_seq: u8) {
    io.queue(next_seq, &ProxyError::too_many_connections().to_payload());
    if let Err(e) = io.flush().await {
        tracing::debug!(error = %e, "could not send 1040");
    }
}

/// Runs the connection phase up to (not including) the final OK. Returns
/// the connection, which is a TLS one if the client asked for it.
pub async fn login(
    mut io: PacketIo,
    spec: &LoginSpec<'_>,
) -> Result<(PacketIo, Login), FrontendError> {
    let peer = io.peer_addr().ok().map(|a| a.ip());
    if let Some(host) = peer.filter(|h| spec.guard.is_blocked(*h)) {
        // Before the greeting, as MariaDB refuses a blocked host.
        let err = ProxyError::host_blocked(&host.to_string(), spec.guard.block_time());
        io.queue(0, &err.to_payload_pre_handshake());
        io.flush().await?;
        return Err(FrontendError::Rejected(err));
    }
    let mut server_caps = spec.server_caps & !caps::SSL;
    if spec.tls.is_some() {
        server_caps |= caps::SSL;
    }
    let greeting = handshake::greeting(
        spec.connection_id,
        spec.nonce,
        spec.server_version,
        server_caps,
        // utf8mb4_general_ci, what MariaDB 10.11 greets with by default
        45,
        status::AUTOCOMMIT,
    );
    io.queue(0, &greeting);
    io.flush().await?;
    let t = Some(spec.timeout);
    // Read exactly one packet: after an SSL request the client's TLS
    // ClientHello follows at once, and must stay on the socket.
    let mut pkt = io.read_exact_packet(MAX_HELLO, spec.timeout).await?;
    let mut tls_info = None;
    if is_ssl_request(&pkt.payload) {
        let Some(tls) = &spec.tls else {
            // TLS was not offered; a client that insists gets a clear error.
            return reject(
                &mut io,
                pkt.seq.wrapping_add(1),
                ProxyError::malformed_packet(),
            )
            .await;
        };
        io = io.accept_tls(&tls.acceptor, spec.timeout).await?;
        tls_info = io.tls_info();
        pkt = io.read_packet(MAX_HELLO, t, t).await?;
    }
    let mut seq = pkt.seq.wrapping_add(1);
    let Some(hello) = handshake::parse_client_hello(&pkt.payload) else {
        spec.guard.handshake_error(peer);
        return reject(&mut io, seq, ProxyError::malformed_packet()).await;
    };
    let mut token = hello.auth.clone();
    let plugin_is_native = hello.plugin.as_deref().is_none_or(|p| p == NATIVE_PLUGIN);
    if !plugin_is_native {
        io.queue(
            seq,
            &handshake::auth_switch_request(NATIVE_PLUGIN, spec.nonce),
        );
        io.flush().await?;
        let reply = io.read_packet(MAX_HELLO, t, t).await?;
        seq = reply.seq.wrapping_add(1);
        token = reply.payload.to_vec();
    }
    let host = io
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let denied =
        |hello: &ClientHello| ProxyError::access_denied(&hello.user, &host, !token.is_empty());
    let Some(creds) = spec.users.authenticate(&hello.user, spec.nonce, &token) else {
        let hold = spec.guard.denied(peer, &hello.user);
        tokio::time::sleep(hold).await;
        let err = denied(&hello);
        return reject(&mut io, seq, err).await;
    };
    spec.guard.succeeded(peer);
    let tls_required =
        spec.tls.as_ref().is_some_and(|t| t.require) || spec.users.requires_tls(&hello.user);
    if tls_info.is_none() && tls_required {
        tracing::info!(user = %creds.user, "cleartext login refused: TLS required");
        let err = denied(&hello);
        return reject(&mut io, seq, err).await;
    }
    let caps = hello.capabilities & server_caps;
    Ok((
        io,
        Login {
            hello,
            creds,
            caps,
            next_seq: seq,
            tls: tls_info,
        },
    ))
}

/// A 32-byte first packet with CLIENT_SSL set.
fn is_ssl_request(payload: &[u8]) -> bool {
    payload.len() == SSL_REQUEST_LEN
        && payload
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .is_some_and(|b: [u8; 4]| u32::from_le_bytes(b) & caps::SSL != 0)
}

async fn reject<T>(io: &mut PacketIo, seq: u8, err: ProxyError) -> Result<T, FrontendError> {
    io.queue(seq, &err.to_payload());
    io.flush().await?;
    Err(FrontendError::Rejected(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_request_is_recognised_by_length_and_flag() {
        let mut p = vec![0u8; 32];
        p[..4].copy_from_slice(&(caps::SSL | caps::PROTOCOL_41).to_le_bytes());
        assert!(is_ssl_request(&p));
        p[..4].copy_from_slice(&caps::PROTOCOL_41.to_le_bytes());
        assert!(!is_ssl_request(&p));
        let mut full = vec![0u8; 40];
        full[..4].copy_from_slice(&(caps::SSL | caps::PROTOCOL_41).to_le_bytes());
        assert!(!is_ssl_request(&full));
        assert!(!is_ssl_request(&[]));
    }
}
