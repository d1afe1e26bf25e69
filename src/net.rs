//! Buffered packet I/O over one TCP stream, shared by the client side and the
//! node side. Reads go into one growing buffer that is consumed in place (no
//! allocation per packet); writes are queued and flushed once per reply, so a
//! small result costs one syscall.

use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::protocol::codec::{self, Chunk, Header};

/// Flush queued output once it grows past this, so a large result streams
/// instead of piling up in memory.
pub const FLUSH_THRESHOLD: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("connection closed by peer")]
    Closed,
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("packet of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("out-of-order packet: expected sequence {expected}, got {got}")]
    Sequence { expected: u8, got: u8 },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One logical packet (split chunks joined) read from a peer.
pub struct Packet {
    /// Sequence id of the last chunk.
    pub seq: u8,
    pub payload: BytesMut,
}

pub struct PacketIo {
    stream: TcpStream,
    pub rbuf: BytesMut,
    pub wbuf: Vec<u8>,
    /// Writes that put bytes on the wire so far: whoever must know whether
    /// a reply has started reaching the peer compares it before and after.
    pub flushes: u64,
}

impl PacketIo {
    pub fn new(stream: TcpStream) -> Self {
        PacketIo {
            stream,
            rbuf: BytesMut::with_capacity(16 * 1024),
            wbuf: Vec::with_capacity(16 * 1024),
            flushes: 0,
        }
    }

    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.stream.peer_addr()
    }

    /// Reads more bytes into the buffer; `Closed` at end of stream.
    pub async fn fill(&mut self, timeout: Option<Duration>) -> Result<usize, NetError> {
        if self.rbuf.capacity() - self.rbuf.len() < 8 * 1024 {
            self.rbuf.reserve(64 * 1024);
        }
        let n = match timeout {
            Some(t) => tokio::time::timeout(t, self.stream.read_buf(&mut self.rbuf))
                .await
                .map_err(|_| NetError::Timeout(t))??,
            None => self.stream.read_buf(&mut self.rbuf).await?,
        };
        if n == 0 {
            return Err(NetError::Closed);
        }
        Ok(n)
    }

    /// Waits until a whole physical packet is buffered; returns its header.
    /// `first_timeout` applies while nothing of the packet has arrived,
    /// `timeout` once it has started (a client stalled mid-packet is cut).
    pub async fn physical(
        &mut self,
        first_timeout: Option<Duration>,
        timeout: Option<Duration>,
    ) -> Result<Header, NetError> {
        loop {
            if let Some(h) = codec::complete_packet(&self.rbuf) {
                return Ok(h);
            }
            let t = if self.rbuf.is_empty() {
                first_timeout
            } else {
                timeout
            };
            self.fill(t).await?;
        }
    }

    /// Reads one logical packet, joining split chunks, refusing more than `limit` bytes.
    /// The size is checked from each chunk's header, before its body is buffered
    /// (`codec::next_chunk` decides; this only reads and joins).
    pub async fn read_packet(
        &mut self,
        limit: usize,
        first_timeout: Option<Duration>,
        timeout: Option<Duration>,
    ) -> Result<Packet, NetError> {
        let mut payload: Option<BytesMut> = None;
        let mut expected: Option<u8> = None;
        loop {
            let joined = payload.as_ref().map_or(0, |p| p.len());
            let h = match codec::next_chunk(&self.rbuf, joined, expected, limit) {
                Chunk::Ready(h) => h,
                Chunk::NeedHeader => {
                    // `first_timeout` only while nothing of the packet has arrived.
                    let wait = if payload.is_none() && self.rbuf.is_empty() {
                        first_timeout
                    } else {
                        timeout
                    };
                    self.fill(wait).await?;
                    continue;
                }
                Chunk::NeedBody(_) => {
                    self.fill(timeout).await?;
                    continue;
                }
                Chunk::TooLarge { size } => return Err(NetError::TooLarge { size, limit }),
                Chunk::OutOfOrder { expected, got } => {
                    return Err(NetError::Sequence { expected, got })
                }
            };
            let mut chunk = self.rbuf.split_to(4 + h.len);
            chunk.advance(4);
            let joined = match payload.take() {
                None => chunk,
                Some(mut p) => {
                    p.extend_from_slice(&chunk);
                    p
                }
            };
            if !h.continues() {
                return Ok(Packet {
                    seq: h.seq,
                    payload: joined,
                });
            }
            payload = Some(joined);
            expected = Some(h.seq.wrapping_add(1));
        }
    }

    /// Queues `payload` framed from `seq`; returns the next sequence id.
    pub fn queue(&mut self, seq: u8, payload: &[u8]) -> u8 {
        codec::write_packet(&mut self.wbuf, seq, payload)
    }

    /// Queues already-framed bytes.
    pub fn queue_raw(&mut self, bytes: &[u8]) {
        self.wbuf.extend_from_slice(bytes);
    }

    pub async fn flush(&mut self) -> Result<(), NetError> {
        if !self.wbuf.is_empty() {
            self.flushes += 1;
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
            if self.wbuf.capacity() > 4 * FLUSH_THRESHOLD {
                self.wbuf.shrink_to(FLUSH_THRESHOLD);
            }
        }
        Ok(())
    }

    /// Whether everything the peer sent has been consumed: the read buffer
    /// is empty and no byte waits on the socket (a non-blocking peek). A
    /// socket at end of stream or in error is not quiet.
    pub fn is_quiet(&self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        let mut byte = [MaybeUninit::<u8>::uninit(); 1];
        match SockRef::from(&self.stream).peek(&mut byte) {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            Ok(_) => false,
        }
    }

    /// Frees a large read buffer once it is empty (after a big result).
    pub fn shrink(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > 1024 * 1024 {
            self.rbuf = BytesMut::with_capacity(16 * 1024);
        }
    }

    pub async fn shutdown(&mut self) {
        // Best effort: the peer may already be gone.
        if let Err(e) = self.stream.shutdown().await {
            tracing::trace!(error = %e, "shutdown of a closed stream");
        }
    }
}
