//! A raw client that reads whole replies with its own reading of the
//! protocol, independent of sqlproxy's `ResponseTracker`: a test that
//! compares what a node sends with what the proxy relays must not share the
//! proxy's idea of where a reply ends. Written from MariaDB's protocol
//! description: result sets (text and binary), classic EOF or DEPRECATE_EOF,
//! MORE_RESULTS chains (CALL, multi-statements), ERR mid-chain, OUT
//! parameters, cursors opened by COM_STMT_EXECUTE and COM_STMT_FETCH.
//!
//! Every read has a deadline: a reply the proxy cuts short shows up as a
//! `Hang` instead of a test that never ends.

use std::net::SocketAddr;
use std::time::Duration;

use sqlproxy::protocol::caps;
use sqlproxy::protocol::codec;
use sqlproxy::protocol::handshake::{self, NativeSecret, NATIVE_PLUGIN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{APP_PASSWORD, APP_USER};

const MORE_RESULTS: u16 = 0x0008;
const CURSOR_EXISTS: u16 = 0x0040;

/// How long a reply may pause before the reader calls it a hang. Long enough
/// for a loaded 2-core box; a hang is forever.
pub const HANG: Duration = Duration::from_secs(30);

#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Nothing arrived for [`HANG`] while the reply was unfinished.
    Hang { after_packets: usize },
    /// The peer closed the connection.
    Closed { after_packets: usize },
}

/// What the next command's reply looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// COM_QUERY: text result sets, OK or ERR.
    Text,
    /// COM_STMT_EXECUTE; `cursor` if the execution asked for a read-only cursor.
    Binary { cursor: bool },
    /// COM_STMT_FETCH: rows, then a terminator.
    Fetch,
    /// COM_STMT_PREPARE.
    Prepare,
}

pub struct RawClient {
    pub stream: TcpStream,
    pub caps: u32,
    buf: Vec<u8>,
}

impl RawClient {
    /// Logs in as the application user with `client_caps` (PROTOCOL_41 and
    /// the auth flags are added), into `db`.
    pub async fn login(addr: SocketAddr, client_caps: u32, db: &str) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut c = RawClient {
            stream,
            caps: client_caps
                | caps::PROTOCOL_41
                | caps::SECURE_CONNECTION
                | caps::PLUGIN_AUTH
                | caps::PLUGIN_AUTH_LENENC_CLIENT_DATA
                | caps::TRANSACTIONS
                | caps::CONNECT_WITH_DB,
            buf: Vec::new(),
        };
        let greeting = c.packet().await.expect("greeting");
        let hello = handshake::parse_greeting(&greeting).expect("parse greeting");
        let token = NativeSecret::from_password(APP_PASSWORD)
            .scramble(&hello.nonce)
            .expect("scramble");
        let mut resp =
            handshake::backend_response(c.caps, 45, APP_USER.as_bytes(), &token, NATIVE_PLUGIN);
        let at = resp.len() - NATIVE_PLUGIN.len() - 1;
        let mut d = db.as_bytes().to_vec();
        d.push(0);
        resp.splice(at..at, d);
        c.send_seq(1, &resp).await;
        let ok = c.packet().await.expect("login reply");
        assert_eq!(
            ok[0],
            0x00,
            "login refused: {}",
            String::from_utf8_lossy(&ok)
        );
        c
    }

    pub fn deprecate_eof(&self) -> bool {
        self.caps & caps::DEPRECATE_EOF != 0
    }

    async fn send_seq(&mut self, seq: u8, payload: &[u8]) {
        let mut out = Vec::new();
        codec::write_packet(&mut out, seq, payload);
        self.stream.write_all(&out).await.expect("write");
    }

    /// Sends one command packet.
    pub async fn command(&mut self, payload: &[u8]) {
        self.send_seq(0, payload).await;
    }

    pub async fn query(&mut self, sql: &str) {
        let mut p = vec![0x03];
        p.extend_from_slice(sql.as_bytes());
        self.command(&p).await;
    }

    /// One packet's payload (joined if split), or why none came.
    pub async fn packet(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut payload = Vec::new();
        loop {
            while self.buf.len() < 4 || self.buf.len() < 4 + codec_len(&self.buf) {
                self.buf.reserve(64 * 1024);
                match tokio::time::timeout(HANG, self.stream.read_buf(&mut self.buf)).await {
                    Err(_) => return Err(ReadError::Hang { after_packets: 0 }),
                    Ok(Err(_)) | Ok(Ok(0)) => return Err(ReadError::Closed { after_packets: 0 }),
                    Ok(Ok(_)) => {}
                }
            }
            let len = codec_len(&self.buf);
            payload.extend_from_slice(&self.buf[4..4 + len]);
            self.buf.drain(..4 + len);
            if len < 0xff_ffff {
                return Ok(payload);
            }
        }
    }

    /// Reads one whole reply; returns its packets.
    pub async fn reply(&mut self, shape: Shape) -> Result<Vec<Vec<u8>>, ReadError> {
        let mut out = Vec::new();
        match self.reply_into(shape, &mut out).await {
            Ok(()) => Ok(out),
            Err(ReadError::Hang { .. }) => Err(ReadError::Hang {
                after_packets: out.len(),
            }),
            Err(ReadError::Closed { .. }) => Err(ReadError::Closed {
                after_packets: out.len(),
            }),
        }
    }

    async fn next(&mut self, out: &mut Vec<Vec<u8>>) -> Result<Vec<u8>, ReadError> {
        let p = self.packet().await?;
        out.push(p.clone());
        Ok(p)
    }

    async fn reply_into(&mut self, shape: Shape, out: &mut Vec<Vec<u8>>) -> Result<(), ReadError> {
        let deprecate_eof = self.deprecate_eof();
        match shape {
            Shape::Prepare => {
                let ok = self.next(out).await?;
                if ok[0] != 0x00 {
                    return Ok(());
                }
                let cols = u16::from_le_bytes([ok[5], ok[6]]) as usize;
                let params = u16::from_le_bytes([ok[7], ok[8]]) as usize;
                for n in [params, cols] {
                    for _ in 0..n {
                        self.next(out).await?;
                    }
                    if n > 0 && !deprecate_eof {
                        self.next(out).await?;
                    }
                }
                return Ok(());
            }
            Shape::Fetch => {
                self.rows(out, None).await?;
                return Ok(());
            }
            Shape::Text | Shape::Binary { .. } => {}
        }
        let cursor = shape == Shape::Binary { cursor: true };
        loop {
            let first = self.next(out).await?;
            let status = match first[0] {
                0x00 => ok_status(&first),
                0xff => return Ok(()),
                0xfb => panic!("LOCAL INFILE is not part of these tests"),
                _ => {
                    let cols = lenenc(&first);
                    for _ in 0..cols {
                        self.next(out).await?;
                    }
                    let mut first_row = None;
                    if !deprecate_eof || cursor {
                        // A classic EOF ends the metadata (and a cursor's
                        // metadata even under DEPRECATE_EOF). Without
                        // DEPRECATE_EOF it is always there.
                        let p = self.next(out).await?;
                        if is_classic_eof(&p) {
                            let s = eof_flags(&p);
                            if cursor && s & CURSOR_EXISTS != 0 && s & MORE_RESULTS == 0 {
                                return Ok(()); // rows come by COM_STMT_FETCH
                            }
                        } else if p[0] == 0xff {
                            return Ok(());
                        } else {
                            first_row = Some(p); // DEPRECATE_EOF: no EOF, rows at once
                        }
                    }
                    match self.rows(out, first_row).await? {
                        Some(s) => s,
                        None => return Ok(()),
                    }
                }
            };
            if status & MORE_RESULTS == 0 {
                return Ok(());
            }
        }
    }

    /// Rows up to the terminator; its status, or None after an ERR.
    async fn rows(
        &mut self,
        out: &mut Vec<Vec<u8>>,
        mut first: Option<Vec<u8>>,
    ) -> Result<Option<u16>, ReadError> {
        let deprecate_eof = self.deprecate_eof();
        loop {
            let p = match first.take() {
                Some(p) => p,
                None => self.next(out).await?,
            };
            match p[0] {
                0xff => return Ok(None),
                0xfe if deprecate_eof && p.len() < 0xff_ffff => return Ok(Some(ok_status(&p))),
                0xfe if is_classic_eof(&p) => return Ok(Some(eof_flags(&p))),
                _ => {}
            }
        }
    }
}

fn codec_len(b: &[u8]) -> usize {
    b[0] as usize | (b[1] as usize) << 8 | (b[2] as usize) << 16
}

fn is_classic_eof(p: &[u8]) -> bool {
    p[0] == 0xfe && p.len() < 9
}

fn eof_flags(p: &[u8]) -> u16 {
    u16::from_le_bytes([p[3], p[4]])
}

/// Status flags of an OK packet (0x00 or 0xFE header).
fn ok_status(p: &[u8]) -> u16 {
    let mut pos = 1;
    for _ in 0..2 {
        pos += match p[pos] {
            0xfc => 3,
            0xfd => 4,
            0xfe => 9,
            _ => 1,
        };
    }
    u16::from_le_bytes([p[pos], p[pos + 1]])
}

fn lenenc(p: &[u8]) -> u64 {
    match p[0] {
        0xfc => u16::from_le_bytes([p[1], p[2]]) as u64,
        0xfd => u32::from_le_bytes([p[1], p[2], p[3], 0]) as u64,
        n => n as u64,
    }
}

/// COM_STMT_PREPARE; the statement id (panics on an ERR).
pub async fn prepare(c: &mut RawClient, sql: &str) -> u32 {
    let mut p = vec![0x16];
    p.extend_from_slice(sql.as_bytes());
    c.command(&p).await;
    let reply = c.reply(Shape::Prepare).await.expect("prepare reply");
    let ok = &reply[0];
    assert_eq!(
        ok[0],
        0x00,
        "prepare {sql}: {}",
        String::from_utf8_lossy(ok)
    );
    u32::from_le_bytes([ok[1], ok[2], ok[3], ok[4]])
}

/// COM_STMT_EXECUTE with integer parameters (types always sent).
pub fn execute_payload(id: u32, cursor: bool, params: &[i64]) -> Vec<u8> {
    let mut p = vec![0x17];
    p.extend_from_slice(&id.to_le_bytes());
    p.push(u8::from(cursor));
    p.extend_from_slice(&1u32.to_le_bytes());
    if !params.is_empty() {
        p.extend(std::iter::repeat_n(0u8, params.len().div_ceil(8)));
        p.push(1);
        for _ in params {
            p.extend_from_slice(&[0x08, 0x00]); // LONGLONG
        }
        for v in params {
            p.extend_from_slice(&v.to_le_bytes());
        }
    }
    p
}

/// COM_STMT_FETCH of `rows` rows.
pub fn fetch_payload(id: u32, rows: u32) -> Vec<u8> {
    let mut p = vec![0x1c];
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&rows.to_le_bytes());
    p
}
