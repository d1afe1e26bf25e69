//! A raw MySQL client for tests that need exact packets (pipelining,
//! malformed input, COM_STMT_EXECUTE without parameter types): logs in with
//! sqlproxy's own protocol functions and speaks bytes.

use std::net::SocketAddr;

use sqlproxy::protocol::caps;
use sqlproxy::protocol::codec;
use sqlproxy::protocol::handshake::{self, NativeSecret, NATIVE_PLUGIN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{APP_PASSWORD, APP_USER};

/// Capabilities of the raw client: modern, DEPRECATE_EOF, no session tracking.
pub const CLIENT_CAPS: u32 = caps::PROTOCOL_41
    | caps::SECURE_CONNECTION
    | caps::PLUGIN_AUTH
    | caps::PLUGIN_AUTH_LENENC_CLIENT_DATA
    | caps::DEPRECATE_EOF
    | caps::TRANSACTIONS
    | caps::MULTI_RESULTS
    | caps::PS_MULTI_RESULTS;

/// Reads one packet's payload; None at end of stream.
pub async fn read_packet(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).await.ok()?;
    let len = h[0] as usize | (h[1] as usize) << 8 | (h[2] as usize) << 16;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).await.ok()?;
    Some(p)
}

/// Logs in as the application user (optionally into `db`).
pub async fn login(addr: SocketAddr, db: Option<&str>) -> TcpStream {
    login_with_caps(addr, db, CLIENT_CAPS).await
}

/// [`login`] with these capability flags.
pub async fn login_with_caps(addr: SocketAddr, db: Option<&str>, caps_wanted: u32) -> TcpStream {
    let mut s = TcpStream::connect(addr)
        .await
        .expect("connect to the proxy");
    let greeting = read_packet(&mut s).await.expect("greeting");
    let hello = handshake::parse_greeting(&greeting).expect("parse greeting");
    let token = NativeSecret::from_password(APP_PASSWORD)
        .scramble(&hello.nonce)
        .expect("scramble");
    let mut c = caps_wanted;
    if db.is_some() {
        c |= caps::CONNECT_WITH_DB;
    }
    let mut resp = handshake::backend_response(c, 45, APP_USER.as_bytes(), &token, NATIVE_PLUGIN);
    if let Some(db) = db {
        let at = resp.len() - NATIVE_PLUGIN.len() - 1;
        let mut d = db.as_bytes().to_vec();
        d.push(0);
        resp.splice(at..at, d);
    }
    send_seq(&mut s, 1, &resp).await;
    let ok = read_packet(&mut s).await.expect("login reply");
    assert_eq!(ok[0], 0x00, "login OK, got {ok:?}");
    s
}

pub async fn send_seq(s: &mut TcpStream, seq: u8, payload: &[u8]) {
    let mut out = Vec::new();
    codec::write_packet(&mut out, seq, payload);
    s.write_all(&out).await.expect("write to the proxy");
}

/// Sends a command packet (sequence 0).
pub async fn send(s: &mut TcpStream, payload: &[u8]) {
    send_seq(s, 0, payload).await;
}

pub async fn query(s: &mut TcpStream, sql: &str) {
    let mut p = vec![0x03];
    p.extend_from_slice(sql.as_bytes());
    send(s, &p).await;
}

/// A whole reply under DEPRECATE_EOF: `Ok(rows)` (row payloads; empty for
/// an OK) or `Err(code)` for an ERR packet.
pub async fn read_result(s: &mut TcpStream) -> Result<Vec<Vec<u8>>, u16> {
    let first = read_packet(s).await.expect("reply");
    match first[0] {
        0x00 => return Ok(Vec::new()),
        0xff => return Err(u16::from_le_bytes([first[1], first[2]])),
        _ => {}
    }
    let cols = first[0] as usize;
    for _ in 0..cols {
        read_packet(s).await.expect("column definition");
    }
    let mut rows = Vec::new();
    loop {
        let p = read_packet(s).await.expect("row or terminator");
        if p[0] == 0xfe && p.len() < 0xff_ffff {
            return Ok(rows);
        }
        if p[0] == 0xff {
            return Err(u16::from_le_bytes([p[1], p[2]]));
        }
        rows.push(p);
    }
}

/// COM_STMT_PREPARE; returns (statement id, params) or the error code.
pub async fn prepare(s: &mut TcpStream, sql: &str) -> Result<(u32, u16), u16> {
    let mut p = vec![0x16];
    p.extend_from_slice(sql.as_bytes());
    send(s, &p).await;
    let ok = read_packet(s).await.expect("prepare reply");
    if ok[0] == 0xff {
        return Err(u16::from_le_bytes([ok[1], ok[2]]));
    }
    let id = u32::from_le_bytes([ok[1], ok[2], ok[3], ok[4]]);
    let cols = u16::from_le_bytes([ok[5], ok[6]]);
    let params = u16::from_le_bytes([ok[7], ok[8]]);
    for _ in 0..(cols + params) {
        read_packet(s).await.expect("definition");
    }
    Ok((id, params))
}

/// COM_STMT_EXECUTE with string parameters; `bind_types` sets the
/// new-params-bound flag (and sends the types) or not.
pub async fn execute(s: &mut TcpStream, id: u32, params: &[&str], bind_types: bool) {
    let mut p = vec![0x17];
    p.extend_from_slice(&id.to_le_bytes());
    p.push(0); // no cursor
    p.extend_from_slice(&1u32.to_le_bytes());
    if !params.is_empty() {
        p.extend(std::iter::repeat_n(0u8, params.len().div_ceil(8)));
        p.push(u8::from(bind_types));
        if bind_types {
            for _ in params {
                p.extend_from_slice(&[0xfd, 0x00]); // VAR_STRING
            }
        }
        for v in params {
            p.push(v.len() as u8);
            p.extend_from_slice(v.as_bytes());
        }
    }
    send(s, &p).await;
}

/// Every packet of one reply (payloads), ended where sqlproxy's own
/// `ResponseTracker` says the reply ends (DEPRECATE_EOF client).
pub async fn read_reply(
    s: &mut TcpStream,
    expect: sqlproxy::protocol::response::Expect,
) -> Vec<Vec<u8>> {
    use sqlproxy::protocol::response::{eof_status, parse_ok, PacketKind, ResponseTracker};
    let mut t = ResponseTracker::new(expect, true);
    let mut out = Vec::new();
    while !t.is_done() {
        let p = read_packet(s).await.expect("reply packet");
        match t.on_packet(&p, p.len()) {
            PacketKind::Ok => t.status_seen(parse_ok(&p, false).map_or(0, |o| o.status)),
            PacketKind::Eof => t.status_seen(eof_status(&p)),
            _ => {}
        }
        out.push(p);
    }
    out
}
