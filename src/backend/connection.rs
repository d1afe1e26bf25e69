//! One authenticated connection to a node, spoken on our own framing (not
//! mysql_async: it has no raw packet access and never negotiates
//! CLIENT_SESSION_TRACK). Setup asks the node to report `last_gtid` in every
//! OK packet, so read-your-writes needs no extra round trip.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use super::error::BackendError;
use crate::net::{NetError, PacketIo};
use crate::protocol::handshake::{self, NativeSecret, NATIVE_PLUGIN};
use crate::protocol::response::{parse_err, parse_ok};
use crate::protocol::{caps, com};
use crate::tls::NodeTlsTarget;

/// Appends `last_gtid` to whatever the node tracks by default, so clients
/// that negotiated session tracking still get what a direct connection gives.
const TRACK_GTID: &[u8] = b"\x03SET SESSION session_track_system_variables = CONCAT_WS(',', NULLIF(@@global.session_track_system_variables, ''), 'last_gtid')";

/// How long to look for a node's last words after a write failed: the ERR,
/// if any, was sent before the close that failed the write, so it is
/// already here or never comes.
const PARTING_WAIT: Duration = Duration::from_millis(500);

/// An ERR packet is small; anything bigger is not one.
const MAX_PARTING_ERR: usize = 64 * 1024;

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// What distinguishes interchangeable pooled connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub user: Arc<str>,
    /// The client's result-affecting capability flags.
    pub caps: u32,
    /// Collation from the client's handshake.
    pub collation: u8,
    /// Current schema when the connection was made or last used.
    pub schema: Option<Vec<u8>>,
}

/// Login material for a node.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: Arc<str>,
    pub secret: NativeSecret,
}

/// What of the client session a connection has already been given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    pub schema: Option<Vec<u8>>,
    /// How many entries of the session's SET log ran here.
    pub sets_applied: usize,
    pub multi_statements: bool,
}

pub struct BackendConn {
    pub io: PacketIo,
    pub node: usize,
    pub node_name: Arc<str>,
    /// Unique per proxy process; prepared-statement ids are only valid on it.
    pub id: u64,
    /// The node's thread id for this connection (for KILL).
    pub thread_id: u32,
    pub key: ConnKey,
    /// Capabilities negotiated with the node.
    pub caps: u32,
    pub status: u16,
    pub sync: SyncState,
    /// Set when the connection can no longer be trusted (I/O error, reply cut).
    pub broken: bool,
    /// Set once a session ran anything on it: it must be reset before reuse.
    pub used: bool,
    /// A command was sent whose reply has not been read to its end.
    reply_pending: bool,
    /// When the last command was sent (or the connection made).
    last_sent: std::time::Instant,
    /// When the login finished: the pool closes connections past
    /// `pool.max_lifetime` instead of reusing them.
    pub born: std::time::Instant,
    pub read_timeout: Duration,
    /// The node's connection slot (`pool.max_per_node`), given back when
    /// the connection closes.
    pub slot: Option<tokio::sync::OwnedSemaphorePermit>,
    /// What the session's statements left on this connection that a later
    /// statement may ask for.
    pub residue: Residue,
}

/// State a session's statements left on one node connection that neither
/// the session's setup replays nor a pin covers, and that a later
/// statement may ask for: while any is there, multiplexing does not give
/// the connection back between statements (a fresh connection would answer
/// differently).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Residue {
    /// A statement generated an id: `LAST_INSERT_ID()` keeps it until the
    /// next one, however many statements later.
    pub insert_id: bool,
    /// The last reply carried warnings (`SHOW WARNINGS` asks about the
    /// previous statement).
    pub warnings: bool,
    /// A cursor was opened (COM_STMT_FETCH reads it) or long data sent to a
    /// statement (its next execution uses it).
    pub statement_state: bool,
}

impl Residue {
    pub fn any(&self) -> bool {
        self.insert_id || self.warnings || self.statement_state
    }
}

/// A reply that is a single OK or ERR packet.
#[derive(Debug)]
pub enum SimpleReply {
    Ok { status: u16 },
    Err { code: u16, payload: Vec<u8> },
}

/// Which node a connection goes to, and how.
pub struct NodeAddr<'a> {
    /// The topology's NodeId.
    pub node: usize,
    pub name: Arc<str>,
    pub address: &'a str,
    /// TLS towards the node; None in cleartext.
    pub tls: Option<&'a NodeTlsTarget>,
}

impl BackendConn {
    /// Connects and logs in as `creds`, with the client's result-affecting
    /// flags and collation (`key`), then enables GTID tracking.
    pub async fn connect(
        to: NodeAddr<'_>,
        creds: &Credentials,
        key: ConnKey,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<BackendConn, BackendError> {
        let NodeAddr {
            node,
            name: node_name,
            address,
            tls,
        } = to;
        let t = connect_timeout;
        let stream = tokio::time::timeout(t, TcpStream::connect(address))
            .await
            .map_err(|_| BackendError::ConnectTimeout(t))?
            .map_err(BackendError::Connect)?;
        stream.set_nodelay(true).map_err(BackendError::Connect)?;
        let mut io = PacketIo::new(stream);
        let greeting = io.read_packet(1 << 16, Some(t), Some(t)).await?;
        if greeting.payload.first() == Some(&0xff) {
            return Err(BackendError::from_err_packet(&greeting.payload));
        }
        let hello = handshake::parse_greeting(&greeting.payload)
            .ok_or(BackendError::Protocol("bad greeting"))?;
        let mut caps = caps::BACKEND_BASE | (key.caps & caps::RESULT_AFFECTING);
        if key.schema.is_some() {
            caps |= caps::CONNECT_WITH_DB;
        }
        caps &= hello.capabilities | caps::CONNECT_WITH_DB;
        if caps & caps::SESSION_TRACK == 0 {
            return Err(BackendError::Protocol("node lacks CLIENT_SESSION_TRACK"));
        }
        let mut seq = greeting.seq.wrapping_add(1);
        if let Some(tls) = tls {
            // Never fall back to cleartext: a node without TLS is an error.
            if hello.capabilities & caps::SSL == 0 {
                return Err(BackendError::Tls("the node does not offer TLS".into()));
            }
            caps |= caps::SSL;
            io.queue(seq, &handshake::ssl_request(caps, key.collation));
            io.flush().await?;
            io = io
                .connect_tls(&tls.connector, tls.server_name.clone(), t)
                .await
                .map_err(|e| match e {
                    NetError::Handshake(e) => BackendError::Tls(e.to_string()),
                    other => BackendError::Net(other),
                })?;
            seq = seq.wrapping_add(1);
        }
        let token = creds
            .secret
            .scramble(&hello.nonce)
            .ok_or(BackendError::NoSecret)?;
        let mut resp = handshake::backend_response(
            caps,
            key.collation,
            creds.user.as_bytes(),
            &token,
            NATIVE_PLUGIN,
        );
        if let Some(db) = &key.schema {
            // CONNECT_WITH_DB: the schema goes between auth data and plugin name.
            let plugin_at = resp.len() - NATIVE_PLUGIN.len() - 1;
            let mut with_db = db.clone();
            with_db.push(0);
            resp.splice(plugin_at..plugin_at, with_db);
        }
        io.queue(seq, &resp);
        io.flush().await?;
        loop {
            let reply = io.read_packet(1 << 16, Some(t), Some(t)).await?;
            let seq = reply.seq.wrapping_add(1);
            match reply.payload.first() {
                Some(0x00) => break,
                Some(0xff) => return Err(BackendError::from_err_packet(&reply.payload)),
                Some(0xfe) => {
                    let (plugin, nonce) = handshake::parse_auth_switch(&reply.payload)
                        .ok_or(BackendError::Protocol("bad auth switch"))?;
                    if plugin != NATIVE_PLUGIN {
                        return Err(BackendError::Plugin(String::from_utf8_lossy(plugin).into()));
                    }
                    let token = creds.secret.scramble(nonce).ok_or(BackendError::NoSecret)?;
                    io.queue(seq, &token);
                    io.flush().await?;
                }
                _ => return Err(BackendError::Protocol("unexpected auth reply")),
            }
        }
        let mut conn = BackendConn {
            io,
            node,
            node_name,
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            thread_id: hello.connection_id,
            sync: SyncState {
                schema: key.schema.clone(),
                sets_applied: 0,
                multi_statements: key.caps & caps::MULTI_STATEMENTS != 0,
            },
            key,
            caps,
            status: hello.status,
            broken: false,
            used: false,
            reply_pending: false,
            last_sent: std::time::Instant::now(),
            born: std::time::Instant::now(),
            read_timeout,
            slot: None,
            residue: Residue::default(),
        };
        conn.expect_ok(TRACK_GTID).await?;
        Ok(conn)
    }

    pub fn deprecate_eof(&self) -> bool {
        self.caps & caps::DEPRECATE_EOF != 0
    }

    /// Sends a command whose reply the caller then reads to its end (the
    /// relay, or [`BackendConn::read_simple`]). Until it has, the connection
    /// cannot change hands.
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), NetError> {
        self.used = true;
        self.reply_pending = true;
        self.last_sent = std::time::Instant::now();
        self.io.queue(0, payload);
        self.io.flush().await.inspect_err(|_| self.broken = true)
    }

    /// Sends a command the node does not answer (COM_STMT_CLOSE,
    /// COM_STMT_SEND_LONG_DATA).
    pub async fn send_unanswered(&mut self, payload: &[u8]) -> Result<(), NetError> {
        self.used = true;
        self.io.queue(0, payload);
        self.io.flush().await.inspect_err(|_| self.broken = true)
    }

    /// The reply to the last command has been read to its end. Bytes already
    /// buffered beyond it belong to no command: the framing disagrees with
    /// the node, so the connection is never used again.
    pub(super) fn reply_complete(&mut self) {
        self.reply_pending = false;
        if !self.io.rbuf.is_empty() {
            tracing::error!(node = %self.node_name, bytes = self.io.rbuf.len(),
                "node sent more than its reply; connection closed");
            self.broken = true;
        }
    }

    /// Whether this connection may go to another session (or back to the
    /// pool): it is sound, every reply it owes has been read to its end, and
    /// nothing more is readable on its socket (checked without blocking).
    /// This is where session isolation is enforced: a connection that fails
    /// it is closed, never shared.
    pub fn can_change_hands(&mut self) -> bool {
        !self.broken && !self.reply_pending && self.io.is_quiet()
    }

    /// The proxy's own account, which no node can falsify: no reply owed,
    /// nothing buffered. (What the node may have sent since is the socket
    /// check's business in [`BackendConn::can_change_hands`].)
    pub fn reply_read(&self) -> bool {
        !self.reply_pending && self.io.rbuf.is_empty()
    }

    /// How long since the connection last carried a command.
    pub fn idle_for(&self) -> Duration {
        self.last_sent.elapsed()
    }

    /// Sends a command whose reply is one OK/ERR packet and reads that reply.
    pub async fn simple(&mut self, payload: &[u8]) -> Result<SimpleReply, BackendError> {
        self.send(payload).await?;
        self.read_simple().await
    }

    /// Reads one OK/ERR reply.
    pub async fn read_simple(&mut self) -> Result<SimpleReply, BackendError> {
        let t = Some(self.read_timeout);
        let p = match self.io.read_packet(usize::MAX, t, t).await {
            Ok(p) => p,
            Err(e) => {
                self.broken = true;
                return Err(e.into());
            }
        };
        self.reply_complete();
        match p.payload.first() {
            Some(0x00) | Some(0xfe) => {
                let status = parse_ok(&p.payload, true).map_or(self.status, |ok| ok.status);
                self.status = status;
                Ok(SimpleReply::Ok { status })
            }
            Some(0xff) => Ok(SimpleReply::Err {
                code: parse_err(&p.payload).map_or(0, |e| e.0),
                payload: p.payload.to_vec(),
            }),
            _ => {
                self.broken = true;
                Err(BackendError::Protocol("expected OK or ERR"))
            }
        }
    }

    /// After a failed write: the ERR the node sent before it closed, if one
    /// is readable (its sequence id and payload). The connection is done
    /// either way.
    pub async fn parting_error(&mut self) -> Option<(u8, Vec<u8>)> {
        self.broken = true;
        let t = Some(PARTING_WAIT);
        let p = self.io.read_packet(MAX_PARTING_ERR, t, t).await.ok()?;
        (p.payload.first() == Some(&0xff)).then(|| (p.seq, p.payload.to_vec()))
    }

    /// Like [`BackendConn::simple`], but an ERR is an error.
    pub async fn expect_ok(&mut self, payload: &[u8]) -> Result<(), BackendError> {
        match self.simple(payload).await? {
            SimpleReply::Ok { .. } => Ok(()),
            SimpleReply::Err { payload, .. } => Err(BackendError::from_err_packet(&payload)),
        }
    }

    /// Returns the connection to a clean state for another session:
    /// COM_RESET_CONNECTION (drops variables, temp tables, prepared
    /// statements, locks, open transaction) and GTID tracking again, pipelined.
    pub async fn reset(&mut self) -> Result<(), BackendError> {
        self.io.queue(0, &[com::RESET_CONNECTION]);
        self.io.queue(0, TRACK_GTID);
        self.io.flush().await.inspect_err(|_| self.broken = true)?;
        for _ in 0..2 {
            // Pipelined: the first reply leaves the second's bytes buffered.
            self.reply_pending = true;
            let t = Some(self.read_timeout);
            let p = self
                .io
                .read_packet(usize::MAX, t, t)
                .await
                .inspect_err(|_| self.broken = true)?;
            match p.payload.first() {
                Some(0x00) => self.reply_pending = false,
                Some(0xff) => {
                    self.broken = true;
                    return Err(BackendError::from_err_packet(&p.payload));
                }
                _ => {
                    self.broken = true;
                    return Err(BackendError::Protocol("expected OK to a reset"));
                }
            }
        }
        if !self.can_change_hands() {
            self.broken = true;
            return Err(BackendError::Protocol("unread bytes after a reset"));
        }
        self.sync.sets_applied = 0;
        self.residue = Residue::default();
        // `sync.multi_statements` stays: COM_RESET_CONNECTION does not undo
        // a COM_SET_OPTION on the node, so the next session must be synced
        // from what the connection really does.
        self.used = false;
        Ok(())
    }
}
