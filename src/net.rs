//! Buffered packet I/O over one TCP stream, in cleartext or TLS, shared by
//! the client side and the node side. Reads go into one growing buffer that
//! is consumed in place (no allocation per packet); writes are queued and
//! flushed once per reply, so a small result costs one syscall.
//!
//! The stream is an enum rather than a generic so that a session's type does
//! not depend on whether its client or its nodes negotiated TLS; the
//! cleartext path pays one predictable branch per read or write. A TLS
//! stream is boxed: rustls' connection state is large and most connections
//! of a LAN proxy may be cleartext.

use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use rustls::pki_types::ServerName;
use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

use crate::command_memory::{CommandMemory, NoRoom, Reservation, LARGE};
use crate::protocol::codec::{self, Chunk, Header, MAX_CHUNK};
use crate::tls::TlsInfo;

/// Flush queued output once it grows past this, so a large result streams
/// instead of piling up in memory.
pub const FLUSH_THRESHOLD: usize = 64 * 1024;

/// Read and write buffers start this small: thousands of idle clients
/// each hold a pair.
const INITIAL_BUFFER: usize = 4 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("connection closed by peer")]
    Closed,
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// `seq`: the sequence id of the chunk whose header passed the limit
    /// (a reply follows it).
    #[error("packet of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize, seq: u8 },
    #[error("out-of-order packet: expected sequence {expected}, got {got}")]
    Sequence { expected: u8, got: u8 },
    /// The TLS handshake failed (bad ClientHello, unverifiable certificate,
    /// no common version...): rustls' reason.
    #[error("TLS handshake: {0}")]
    Handshake(io::Error),
    /// TLS was asked of a connection that has unread bytes or is already TLS.
    #[error("cannot start TLS: {0}")]
    TlsState(&'static str),
    /// `mysql.max_command_memory` had no room for a large command in time.
    #[error("{source}")]
    NoRoom { source: NoRoom, seq: u8 },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The byte stream under the packets.
enum Stream {
    Plain(TcpStream),
    /// A client connection that switched to TLS (we are the server).
    Server(Box<server::TlsStream<TcpStream>>),
    /// A node connection that switched to TLS (we are the client).
    Client(Box<client::TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Server(s) => s.get_ref().0,
            Stream::Client(s) => s.get_ref().0,
        }
    }
}

/// `io::Read` straight on the socket, bypassing tokio's readiness cache
/// (which may not have seen bytes that already arrived): for feeding rustls
/// what is readable now, in a check that must not wait.
struct ReadNow<'a>(SockRef<'a>);

impl io::Read for ReadNow<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let socket: &socket2::Socket = &self.0;
        io::Read::read(&mut &*socket, buf)
    }
}

/// Whether a TLS connection has nothing more to give: rustls holds no
/// decrypted bytes and the socket has none waiting. Bytes on the socket are
/// fed to rustls first, because not all of them are data: a TLS 1.3 server
/// sends session tickets after the handshake, which carry no plaintext. A
/// record cut in the middle stays in rustls with its rest still in flight,
/// which is the same race as cleartext bytes in flight: not caught here.
fn tls_quiet<D>(tcp: &TcpStream, conn: &mut rustls::ConnectionCommon<D>) -> bool {
    loop {
        match conn.read_tls(&mut ReadNow(SockRef::from(tcp))) {
            // End of stream: not quiet, the connection is finished.
            Ok(0) => return false,
            Ok(_) => match conn.process_new_packets() {
                Ok(state) if state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed() => {}
                _ => return false,
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => return false,
        }
    }
    match conn.process_new_packets() {
        Ok(state) => state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed(),
        Err(_) => false,
    }
}

/// One logical packet (split chunks joined) read from a peer.
pub struct Packet {
    /// Sequence id of the last chunk.
    pub seq: u8,
    pub payload: BytesMut,
}

pub struct PacketIo {
    stream: Stream,
    pub rbuf: BytesMut,
    pub wbuf: Vec<u8>,
    /// Writes that put bytes on the wire so far: whoever must know whether
    /// a reply has started reaching the peer compares it before and after.
    pub flushes: u64,
}

impl PacketIo {
    pub fn new(stream: TcpStream) -> Self {
        PacketIo {
            stream: Stream::Plain(stream),
            rbuf: BytesMut::with_capacity(INITIAL_BUFFER),
            wbuf: Vec::with_capacity(INITIAL_BUFFER),
            flushes: 0,
        }
    }

    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.stream.tcp().peer_addr()
    }

    /// The TLS version and cipher, when the connection switched to TLS.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        match &self.stream {
            Stream::Plain(_) => None,
            Stream::Server(s) => Some(TlsInfo::of(s.get_ref().1)),
            Stream::Client(s) => Some(TlsInfo::of(s.get_ref().1)),
        }
    }

    /// The DER certificate a TLS server presented first (its leaf), on a
    /// connection we opened.
    pub fn server_leaf(&self) -> Option<Vec<u8>> {
        match &self.stream {
            Stream::Client(s) => s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| leaf.to_vec()),
            _ => None,
        }
    }

    /// The cleartext TCP stream, refusing a TLS one or one with bytes
    /// already buffered (those would have to be TLS records).
    fn take_plain(self) -> Result<TcpStream, NetError> {
        if !self.rbuf.is_empty() || !self.wbuf.is_empty() {
            return Err(NetError::TlsState(
                "bytes buffered before the TLS handshake",
            ));
        }
        match self.stream {
            Stream::Plain(tcp) => Ok(tcp),
            _ => Err(NetError::TlsState("already TLS")),
        }
    }

    /// Runs the server side of a TLS handshake on this cleartext connection
    /// (after a client's SSL request), bounded by `timeout`.
    pub async fn accept_tls(
        self,
        acceptor: &TlsAcceptor,
        timeout: Duration,
    ) -> Result<PacketIo, NetError> {
        let flushes = self.flushes;
        let tcp = self.take_plain()?;
        let tls = tokio::time::timeout(timeout, acceptor.accept(tcp))
            .await
            .map_err(|_| NetError::Timeout(timeout))?
            .map_err(NetError::Handshake)?;
        let mut io = PacketIo::new_on(Stream::Server(Box::new(tls)));
        io.flushes = flushes;
        Ok(io)
    }

    /// Runs the client side of a TLS handshake towards `name` (after our
    /// SSL request to a node), bounded by `timeout`.
    pub async fn connect_tls(
        self,
        connector: &TlsConnector,
        name: ServerName<'static>,
        timeout: Duration,
    ) -> Result<PacketIo, NetError> {
        let flushes = self.flushes;
        let tcp = self.take_plain()?;
        let tls = tokio::time::timeout(timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| NetError::Timeout(timeout))?
            .map_err(NetError::Handshake)?;
        let mut io = PacketIo::new_on(Stream::Client(Box::new(tls)));
        io.flushes = flushes;
        Ok(io)
    }

    fn new_on(stream: Stream) -> Self {
        PacketIo {
            stream,
            rbuf: BytesMut::with_capacity(INITIAL_BUFFER),
            wbuf: Vec::with_capacity(INITIAL_BUFFER),
            flushes: 0,
        }
    }

    /// Reads one packet of at most `limit` bytes without reading a byte
    /// past it: what follows a client's SSL request is its TLS ClientHello,
    /// which must stay on the socket for the TLS handshake.
    pub async fn read_exact_packet(
        &mut self,
        limit: usize,
        timeout: Duration,
    ) -> Result<Packet, NetError> {
        if !self.rbuf.is_empty() {
            return Err(NetError::TlsState("bytes buffered before the first packet"));
        }
        let read = async {
            let mut header = [0u8; 4];
            self.read_exact(&mut header).await?;
            let len =
                usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
            if len > limit || len >= MAX_CHUNK {
                return Err(NetError::TooLarge {
                    size: len,
                    limit,
                    seq: header[3],
                });
            }
            let mut payload = BytesMut::zeroed(len);
            self.read_exact(&mut payload).await?;
            Ok(Packet {
                seq: header[3],
                payload,
            })
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| NetError::Timeout(timeout))?
    }

    async fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), NetError> {
        let r = match &mut self.stream {
            Stream::Plain(s) => s.read_exact(buf).await,
            Stream::Server(s) => s.read_exact(buf).await,
            Stream::Client(s) => s.read_exact(buf).await,
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(NetError::Closed),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads more bytes into the buffer; `Closed` at end of stream.
    pub async fn fill(&mut self, timeout: Option<Duration>) -> Result<usize, NetError> {
        if self.rbuf.capacity() - self.rbuf.len() < INITIAL_BUFFER {
            // Doubling up to 64 KiB: a connection that only ever sees small
            // packets (most idle clients) keeps small buffers.
            let more = self.rbuf.capacity().clamp(INITIAL_BUFFER, 64 * 1024);
            self.rbuf.reserve(more);
        }
        read_some(&mut self.stream, &mut self.rbuf, timeout).await
    }

    /// The body of a large chunk whose header is at the front of the read
    /// buffer, read into a buffer of its own sized to it: the read buffer
    /// never grows to a large command's size, so nothing of it stays with
    /// the connection afterwards, and the bytes are not copied again.
    async fn large_chunk(
        &mut self,
        h: Header,
        timeout: Option<Duration>,
    ) -> Result<BytesMut, NetError> {
        self.rbuf.advance(4);
        let mut body = BytesMut::with_capacity(h.len);
        let have = self.rbuf.len().min(h.len);
        body.extend_from_slice(&self.rbuf.split_to(have));
        while body.len() < h.len {
            let missing = h.len - body.len();
            read_some(&mut self.stream, &mut (&mut body).limit(missing), timeout).await?;
        }
        Ok(body)
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
        self.read_joined(limit, None, first_timeout, timeout).await
    }

    /// [`Self::read_packet`] for a client's command: each large chunk takes
    /// its share of `memory` before its body is read (waiting at most
    /// `timeout`), held in `held` until the caller is done with the command.
    pub async fn read_command(
        &mut self,
        limit: usize,
        memory: (&CommandMemory, &mut Reservation),
        first_timeout: Option<Duration>,
        timeout: Option<Duration>,
    ) -> Result<Packet, NetError> {
        self.read_joined(limit, Some(memory), first_timeout, timeout)
            .await
    }

    async fn read_joined(
        &mut self,
        limit: usize,
        mut memory: Option<(&CommandMemory, &mut Reservation)>,
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
                Chunk::NeedBody(h) if h.len >= LARGE => {
                    if let Some((budget, held)) = memory.as_mut() {
                        budget
                            .reserve(held, h.len, timeout)
                            .await
                            .map_err(|source| NetError::NoRoom { source, seq: h.seq })?;
                    }
                    let chunk = self.large_chunk(h, timeout).await?;
                    match join(&mut payload, chunk, h) {
                        Some(packet) => return Ok(packet),
                        None => expected = Some(h.seq.wrapping_add(1)),
                    }
                    continue;
                }
                Chunk::NeedBody(_) => {
                    self.fill(timeout).await?;
                    continue;
                }
                Chunk::TooLarge { size, seq } => {
                    return Err(NetError::TooLarge { size, limit, seq })
                }
                Chunk::OutOfOrder { expected, got } => {
                    return Err(NetError::Sequence { expected, got })
                }
            };
            if let (Some((budget, held)), true) = (memory.as_mut(), h.len >= LARGE) {
                // A large chunk that arrived whole in one read: counted all the same.
                budget
                    .reserve(held, h.len, timeout)
                    .await
                    .map_err(|source| NetError::NoRoom { source, seq: h.seq })?;
            }
            let mut chunk = self.rbuf.split_to(4 + h.len);
            chunk.advance(4);
            match join(&mut payload, chunk, h) {
                Some(packet) => return Ok(packet),
                None => expected = Some(h.seq.wrapping_add(1)),
            }
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
            match &mut self.stream {
                Stream::Plain(s) => s.write_all(&self.wbuf).await?,
                // rustls may keep records back until flushed.
                Stream::Server(s) => {
                    s.write_all(&self.wbuf).await?;
                    s.flush().await?;
                }
                Stream::Client(s) => {
                    s.write_all(&self.wbuf).await?;
                    s.flush().await?;
                }
            }
            self.wbuf.clear();
            if self.wbuf.capacity() > 4 * FLUSH_THRESHOLD {
                // A new small buffer rather than shrinking in place: a small
                // block left at the start of the large one would keep the
                // allocator from reusing the rest for the next large command.
                self.wbuf = Vec::with_capacity(FLUSH_THRESHOLD);
            }
        }
        Ok(())
    }

    /// Whether everything the peer sent has been consumed: the read buffer
    /// is empty and no byte waits on the socket (a non-blocking peek), nor,
    /// over TLS, decrypted in rustls. A socket at end of stream or in error
    /// is not quiet.
    pub fn is_quiet(&mut self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        match &mut self.stream {
            Stream::Plain(tcp) => {
                let mut byte = [MaybeUninit::<u8>::uninit(); 1];
                match SockRef::from(&*tcp).peek(&mut byte) {
                    Err(e) => e.kind() == io::ErrorKind::WouldBlock,
                    Ok(_) => false,
                }
            }
            Stream::Server(s) => {
                let (tcp, conn) = s.get_mut();
                tls_quiet(tcp, &mut **conn)
            }
            Stream::Client(s) => {
                let (tcp, conn) = s.get_mut();
                tls_quiet(tcp, &mut **conn)
            }
        }
    }

    /// Frees a large read buffer once it is empty (after a big result).
    pub fn shrink(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > 1024 * 1024 {
            self.rbuf = BytesMut::with_capacity(INITIAL_BUFFER);
        }
    }

    /// Makes the close that follows abortive (RST instead of FIN), as
    /// MariaDB's own close of an idle session is.
    pub fn reset_on_close(&self) {
        if let Err(e) = SockRef::from(self.stream.tcp()).set_linger(Some(Duration::ZERO)) {
            tracing::debug!(error = %e, "SO_LINGER");
        }
    }

    pub async fn shutdown(&mut self) {
        // Best effort: the peer may already be gone. Over TLS this sends
        // close_notify first.
        let done = match &mut self.stream {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Server(s) => s.shutdown().await,
            Stream::Client(s) => s.shutdown().await,
        };
        if let Err(e) = done {
            tracing::trace!(error = %e, "shutdown of a closed stream");
        }
    }
}

/// Reads what the stream has into `buf`; `Closed` at end of stream.
async fn read_some(
    stream: &mut Stream,
    buf: &mut impl BufMut,
    timeout: Option<Duration>,
) -> Result<usize, NetError> {
    let read = async {
        match stream {
            Stream::Plain(s) => s.read_buf(buf).await,
            Stream::Server(s) => s.read_buf(buf).await,
            Stream::Client(s) => s.read_buf(buf).await,
        }
    };
    let n = match timeout {
        Some(t) => tokio::time::timeout(t, read)
            .await
            .map_err(|_| NetError::Timeout(t))??,
        None => read.await?,
    };
    if n == 0 {
        return Err(NetError::Closed);
    }
    Ok(n)
}

/// Adds a chunk to the packet being joined; the packet once `h` ends it.
fn join(payload: &mut Option<BytesMut>, chunk: BytesMut, h: Header) -> Option<Packet> {
    let joined = match payload.take() {
        None => chunk,
        Some(mut p) => {
            p.extend_from_slice(&chunk);
            p
        }
    };
    if h.continues() {
        *payload = Some(joined);
        return None;
    }
    Some(Packet {
        seq: h.seq,
        payload: joined,
    })
}
