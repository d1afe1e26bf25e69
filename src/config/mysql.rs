//! The MySQL side's own sections: `[mysql]` (the client listener and its limits),
//! `[pool]` (node connections), `[routing]` (read split and consistency) and
//! `[runtime]` (threads).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// MariaDB's bounds on `wait_timeout` (seconds); a session's values outside
/// are clamped (with a warning), as the node does.
pub const WAIT_TIMEOUT_MIN: u64 = 1;
pub const WAIT_TIMEOUT_MAX: u64 = 31_536_000;

/// The client-facing MySQL listener.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    pub listen: SocketAddr,
    /// HAProxy's `maxconn`: clients beyond it get error 1040.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: u32,
    /// Largest command a client may send (bytes); larger gets error 1153.
    #[serde(default = "defaults::max_allowed_packet")]
    pub max_allowed_packet: u32,
    /// Bytes of large commands (64 KiB and up, each counted twice: as read
    /// and as sent) that all sessions together may hold at once. A command
    /// that finds no room waits, its bytes left in the client's socket, up to
    /// `client_read_timeout`, then gets 1041 and the connection closes.
    #[serde(default = "defaults::max_command_memory")]
    pub max_command_memory: u64,
    /// Prepared statements one session may keep open; one more gets MariaDB's
    /// 1461 (ER_MAX_PREPARED_STMT_COUNT_REACHED), as past `max_prepared_stmt_count`.
    #[serde(default = "defaults::max_prepared_statements")]
    pub max_prepared_statements: u32,
    /// LOAD DATA LOCAL INFILE is refused unless enabled (the file is the client's, relayed).
    #[serde(default)]
    pub local_infile: bool,
    /// The whole login (greeting to final OK) must finish within this, however
    /// the client paces its bytes (MariaDB's `connect_timeout`).
    #[serde(default = "defaults::connect_timeout_client", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Connections still logging in, all sources together. Past it the
    /// oldest pending login is dropped to make room, so a real client always
    /// gets its turn. Logged-in sessions count against `max_connections` only.
    #[serde(default = "defaults::max_pending_logins")]
    pub max_pending_logins: u32,
    /// Connections still logging in from one source address; more get 1040.
    #[serde(default = "defaults::max_pending_logins_per_host")]
    pub max_pending_logins_per_host: u32,
    /// Malformed connection phases from one address before it is refused
    /// with 1129 (MariaDB's `max_connect_errors`; the proxy runs the
    /// handshake, so the node's own never counts them). Wrong passwords do
    /// not count here: they slow down (frontend/login_guard.rs).
    #[serde(default = "defaults::max_connect_errors")]
    pub max_connect_errors: u32,
    /// How long those failures count, and so how long a block lasts.
    #[serde(default = "defaults::host_block_time", with = "humantime_serde")]
    pub host_block_time: Duration,
    /// A logged-in client idle this long between commands is disconnected
    /// (MariaDB's `wait_timeout`); a session's own `SET wait_timeout` wins.
    #[serde(default = "defaults::wait_timeout", with = "humantime_serde")]
    pub wait_timeout: Duration,
    /// The same for clients that log in with CLIENT_INTERACTIVE (the mariadb
    /// CLI), as MariaDB's `interactive_timeout`.
    #[serde(default = "defaults::wait_timeout", with = "humantime_serde")]
    pub interactive_timeout: Duration,
    /// A client that sends part of a packet and then stalls is cut after this.
    #[serde(default = "defaults::client_read_timeout", with = "humantime_serde")]
    pub client_read_timeout: Duration,
    /// On SIGTERM, in-flight statements get this long to finish.
    #[serde(default = "defaults::shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// `[mysql.tls]`: clients may switch to TLS (and must, with `require`).
    #[serde(default)]
    pub tls: Option<super::ListenerTls>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Idle authenticated connections kept per node and connection kind.
    #[serde(default = "defaults::max_idle")]
    pub max_idle: usize,
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// A node that sends nothing for this long during a reply is given up on.
    #[serde(default = "defaults::read_timeout", with = "humantime_serde")]
    pub read_timeout: Duration,
    /// Connections the proxy opens to one node at most, idle ones included
    /// (ProxySQL's per-server `max_connections`); a node's own
    /// `[nodes.NAME] max_connections` overrides it. Below MariaDB's default
    /// `max_connections` (151), so clients can never take the slots the
    /// monitor, replication and an operator's console need.
    #[serde(default = "defaults::max_per_node")]
    pub max_per_node: u32,
    /// How long a session waits for a connection slot on a node at its
    /// limit before it gets 1040 (Too many connections).
    #[serde(default = "defaults::checkout_timeout", with = "humantime_serde")]
    pub checkout_timeout: Duration,
    /// A connection older than this, from its login, is closed when it is
    /// given back instead of being reused (node-side memory, a password
    /// changed on the node, a load balancer's own idle cut).
    #[serde(default = "defaults::max_lifetime", with = "humantime_serde")]
    pub max_lifetime: Duration,
    /// An idle pooled connection unused for this long is closed.
    #[serde(default = "defaults::idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Multiplexing: a session that nothing ties to its node connections
    /// (no transaction, no pins, nothing the next statement may ask of that
    /// connection) gives them back to the pool between statements, so idle
    /// clients hold no node connection.
    #[serde(default = "defaults::multiplex")]
    pub multiplex: bool,
    /// How long such a session keeps its connections after a command
    /// before giving them back; at once while other sessions wait for a
    /// slot on the node. "0s": after every command.
    #[serde(default = "defaults::multiplex_idle", with = "humantime_serde")]
    pub multiplex_idle: Duration,
}

impl PoolConfig {
    /// The offending key and why, for `ConfigError::Invalid`.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        for (key, t) in [
            ("pool.connect_timeout", self.connect_timeout),
            ("pool.read_timeout", self.read_timeout),
            ("pool.checkout_timeout", self.checkout_timeout),
            ("pool.max_lifetime", self.max_lifetime),
            ("pool.idle_timeout", self.idle_timeout),
        ] {
            if t.is_zero() {
                return Err((key, "must be greater than 0"));
            }
        }
        if self.max_per_node == 0 {
            return Err(("pool.max_per_node", "must be at least 1"));
        }
        Ok(())
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_idle: defaults::max_idle(),
            connect_timeout: defaults::connect_timeout(),
            read_timeout: defaults::read_timeout(),
            max_per_node: defaults::max_per_node(),
            checkout_timeout: defaults::checkout_timeout(),
            max_lifetime: defaults::max_lifetime(),
            idle_timeout: defaults::idle_timeout(),
            multiplex: defaults::multiplex(),
            multiplex_idle: defaults::multiplex_idle(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// A session reads only from nodes that applied its own writes.
    #[default]
    Session,
    /// A read goes only to a node that applied every commit any client got
    /// an OK for through this proxy (what a shop's next page needs: it is a
    /// new session); until the monitor shows it has, to the master.
    Global,
    /// Any healthy node within the lag limit.
    Eventual,
    /// Every read goes to the master.
    Master,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Send reads to other nodes at all; off routes everything to the master.
    #[serde(default = "super::default_on")]
    pub read_split: bool,
    #[serde(default)]
    pub consistency: Consistency,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            read_split: true,
            consistency: Consistency::default(),
        }
    }
}

/// `[runtime]`: how many threads serve clients, nodes and the HTTP balancer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Worker threads; 0 = one per CPU this process may use (HAProxy's `nbthread`).
    #[serde(default)]
    pub worker_threads: usize,
}

impl RuntimeConfig {
    /// The worker threads to start. Where the proxy shares a small machine with MariaDB
    /// or PHP, fewer threads than CPUs can relay more (docs/performance.md).
    pub fn threads(&self) -> usize {
        if self.worker_threads > 0 {
            return self.worker_threads;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Defaults, named so that `config/ha.toml` and the code agree.
mod defaults {
    use std::time::Duration;
    /// HAProxy's seed used `maxconn 20000` for HTTP; for MySQL clients a
    /// few thousand is what one MariaDB pair serves comfortably.
    pub fn max_connections() -> u32 {
        4096
    }
    /// MariaDB 10.11's own default: each client may make the proxy hold
    /// one command this large, so a thousand clients cannot ask for a
    /// terabyte. Raise it (up to 1 GiB) together with the nodes' own.
    pub fn max_allowed_packet() -> u32 {
        16 << 20
    }
    /// Eight commands of the default `max_allowed_packet` at once.
    pub fn max_command_memory() -> u64 {
        256 << 20
    }
    /// MariaDB's `max_prepared_stmt_count` default: one session through the
    /// proxy may keep as many as a node would let it.
    pub fn max_prepared_statements() -> u32 {
        16_382
    }
    /// MariaDB's own `connect_timeout` default.
    pub fn connect_timeout_client() -> Duration {
        Duration::from_secs(10)
    }
    /// A login takes a round trip or two; hundreds at once means a burst of
    /// PHP workers starting, thousands means someone is holding sockets open.
    pub fn max_pending_logins() -> u32 {
        512
    }
    /// One PHP host opens a few dozen connections at once at most.
    pub fn max_pending_logins_per_host() -> u32 {
        64
    }
    /// MariaDB's default.
    pub fn max_connect_errors() -> u32 {
        100
    }
    pub fn host_block_time() -> Duration {
        Duration::from_secs(300)
    }
    /// MariaDB's `wait_timeout` and `interactive_timeout` default: 8 hours.
    pub fn wait_timeout() -> Duration {
        Duration::from_secs(28_800)
    }
    /// MariaDB's `net_read_timeout` default.
    pub fn client_read_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn shutdown_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn max_idle() -> usize {
        8
    }
    /// HAProxy `timeout connect` in the seed.
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(2)
    }
    /// Long enough for any statement a shop runs; a node silent this long is dead.
    pub fn read_timeout() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn max_per_node() -> u32 {
        128
    }
    pub fn checkout_timeout() -> Duration {
        Duration::from_secs(5)
    }
    pub fn max_lifetime() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn idle_timeout() -> Duration {
        Duration::from_secs(300)
    }
    pub fn multiplex() -> bool {
        true
    }
    pub fn multiplex_idle() -> Duration {
        Duration::from_secs(1)
    }
}
