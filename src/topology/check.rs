//! One health check of one node: the [`Probe`] seam and its real
//! implementation over a node's own mysql_async connection.
//!
//! A check is three round trips on a kept connection: one `SELECT` of the
//! variables the proxy cares about, `SHOW SLAVE STATUS` and the semi-sync
//! status variables (for the metrics and alerts). The connection is
//! opened with `max_allowed_packet`, `wait_timeout` and `prefer_socket(false)`
//! set, so mysql_async runs no extra `SELECT` of its own on connect. Any error
//! drops the connection; the next check opens a new one. The monitor puts the
//! whole check (connect included) under `monitor.timeout`.

use std::future::Future;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row, Value};

use super::node_ssl::{NameError, NodeSsl};
use super::replication::ReplicationStatus;
use crate::config::{split_host_port, MonitorConfig};

/// The monitor reads a few short rows; a small packet limit is plenty and
/// keeps a confused server from making us buffer much.
const MONITOR_MAX_PACKET: usize = 1 << 20;

/// Told to mysql_async so it skips its `SELECT @@wait_timeout` on connect;
/// MariaDB's default (8 h). A check every `interval` keeps the session alive.
const MONITOR_WAIT_TIMEOUT_SECS: usize = 28_800;

/// Detects a peer that vanished without a FIN (power loss, cable) on a
/// connection mysql_async is closing in the background after a timed-out check.
const MONITOR_TCP_KEEPALIVE: Duration = Duration::from_secs(10);

/// The variables read by every check, in the order `observe` expects.
const VARIABLES_SQL: &str =
    "SELECT @@read_only, @@server_id, @@version, @@gtid_current_pos, @@gtid_binlog_pos";

/// Semi-sync as the node runs it (status) and as it is set (the master
/// side's switch); reading them needs no privilege. A server without
/// semi-sync (MySQL without the plugin) has none of the rows.
const SEMISYNC_SQL: &str =
    "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
     WHERE VARIABLE_NAME IN ('RPL_SEMI_SYNC_MASTER_STATUS', 'RPL_SEMI_SYNC_SLAVE_STATUS') \
     UNION ALL SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES \
     WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_ENABLED'";

/// Semi-synchronous replication as the node reports it (`Rpl_semi_sync_*_status`);
/// `None` where the server has no such variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SemiSync {
    /// The master side is active: commits wait for a replica's ack.
    pub master: Option<bool>,
    /// The master side is switched on (it may still have fallen back to
    /// asynchronous after a timeout: then `master` is false).
    pub master_enabled: Option<bool>,
    /// The replica side is active: this node acks its master's events.
    pub slave: Option<bool>,
}

/// What one successful check saw on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub read_only: bool,
    pub server_id: u32,
    pub version: String,
    pub gtid_current_pos: String,
    pub gtid_binlog_pos: String,
    /// `None`: `SHOW SLAVE STATUS` returned no row (not a replica).
    pub replication: Option<ReplicationStatus>,
    pub semisync: SemiSync,
}

/// Why a check failed. Only failures that show the node cannot serve count
/// towards `fall` ([`CheckError::is_down_evidence`]).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// No answer in time, but a fresh TCP connection to the node was
    /// accepted: the server is there and slow (or stopped), not gone.
    #[error("no answer within {after:?} (the node still accepts connections)")]
    Stalled { after: Duration },
    /// The check failed and a fresh TCP connection got no answer either:
    /// the node may be dead, or cut off from the proxy (a partition).
    #[error("unreachable: {detail}")]
    Unreachable { detail: String },
    /// The check failed and a fresh TCP connection was refused: the host
    /// answers and nothing listens, the server process is gone.
    #[error("connection refused: {detail}")]
    Refused { detail: String },
    #[error("bad node address `{address}`: {reason}")]
    BadAddress { address: String, reason: String },
    #[error("connect: {source}")]
    Connect { source: mysql_async::Error },
    #[error("{what}: {source}")]
    Query {
        what: &'static str,
        source: mysql_async::Error,
    },
    #[error("{what}: no row")]
    NoRow { what: &'static str },
    /// The name a `verify-ca` node's certificate holds could not be read
    /// (node_ssl.rs).
    #[error("{0}")]
    CertificateName(#[from] NameError),
    #[error("{what}: unexpected value {value}")]
    BadValue { what: &'static str, value: String },
}

/// What kind of failure a check had: for the health machine (only
/// `Unreachable` and `ShuttingDown` say a node is down), the metrics
/// (`node_check_error{kind}`) and the alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckErrorKind {
    /// No answer in time from a node that still accepts connections.
    Timeout,
    /// No answer, and no answer to a fresh TCP connection either.
    Unreachable,
    /// A fresh TCP connection was refused: the server process is gone.
    Refused,
    /// The server says it is shutting down.
    ShuttingDown,
    /// The node answered but refused the monitor (access denied, missing
    /// grants, too many connections, host blocked): the node may be fine,
    /// the monitor's account or the node's limits need fixing.
    Denied,
    /// TLS towards the node failed: its certificate did not verify, or it
    /// does not offer TLS. The node is not used (never in cleartext).
    Tls,
    /// Any other error or an answer we could not use.
    Other,
}

impl CheckErrorKind {
    pub const ALL: [CheckErrorKind; 7] = [
        CheckErrorKind::Timeout,
        CheckErrorKind::Unreachable,
        CheckErrorKind::Refused,
        CheckErrorKind::ShuttingDown,
        CheckErrorKind::Denied,
        CheckErrorKind::Tls,
        CheckErrorKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckErrorKind::Timeout => "timeout",
            CheckErrorKind::Unreachable => "unreachable",
            CheckErrorKind::Refused => "refused",
            CheckErrorKind::ShuttingDown => "shutting_down",
            CheckErrorKind::Denied => "denied",
            CheckErrorKind::Tls => "tls",
            CheckErrorKind::Other => "other",
        }
    }
}

/// Errors that mean "the server is alive and refuses the monitor": access
/// denied (1044, 1045, 1698), command or column denied (1142, 1143),
/// missing privilege (1227, 1370), too many connections (1040, 1203, 1226),
/// host blocked or not allowed (1129, 1130), account locked (4151),
/// password expired (1820, 1862).
const DENIED_CODES: [u16; 15] = [
    1040, 1044, 1045, 1129, 1130, 1142, 1143, 1203, 1226, 1227, 1370, 1698, 1820, 1862, 4151,
];

/// A TLS failure as mysql_async reports it: its own TLS error, rustls'
/// error inside an I/O error (the handshake), or a node that does not
/// offer TLS when asked to.
fn is_tls_failure(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Io(mysql_async::IoError::Tls(_)) => true,
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => io
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>()),
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) => true,
        _ => false,
    }
}

/// Errors that mean "the server is going away": shutdown in progress (1053)
/// and normal shutdown (1077).
const SHUTDOWN_CODES: [u16; 2] = [1053, 1077];

impl CheckError {
    pub fn kind(&self) -> CheckErrorKind {
        match self {
            CheckError::Stalled { .. } => CheckErrorKind::Timeout,
            CheckError::Unreachable { .. } => CheckErrorKind::Unreachable,
            CheckError::Refused { .. } => CheckErrorKind::Refused,
            CheckError::Connect { source } | CheckError::Query { source, .. } => match source {
                mysql_async::Error::Server(e) if DENIED_CODES.contains(&e.code) => {
                    CheckErrorKind::Denied
                }
                mysql_async::Error::Server(e) if SHUTDOWN_CODES.contains(&e.code) => {
                    CheckErrorKind::ShuttingDown
                }
                e if is_tls_failure(e) => CheckErrorKind::Tls,
                _ => CheckErrorKind::Other,
            },
            CheckError::CertificateName(NameError::Tls(_)) => CheckErrorKind::Tls,
            CheckError::CertificateName(NameError::Network(_))
            | CheckError::BadAddress { .. }
            | CheckError::NoRow { .. }
            | CheckError::BadValue { .. } => CheckErrorKind::Other,
        }
    }

    /// The failure shows the node cannot serve: a fresh connection to it is
    /// refused or unanswered, or it says it is shutting down. A slow node,
    /// one that refuses the monitor, or an answer we cannot read is no such
    /// evidence: counting it would fail over a live master.
    pub fn is_down_evidence(&self) -> bool {
        matches!(
            self.kind(),
            CheckErrorKind::Unreachable
                | CheckErrorKind::Refused
                | CheckErrorKind::ShuttingDown
                | CheckErrorKind::Tls
        )
    }

    /// Whether a fresh TCP connection should tell what this failure means:
    /// every failure but an answer from the server itself (refusing the
    /// monitor, shutting down) or a bad address.
    pub fn needs_probe(&self) -> bool {
        !matches!(
            self.kind(),
            CheckErrorKind::Denied | CheckErrorKind::ShuttingDown | CheckErrorKind::Tls
        ) && !matches!(self, CheckError::BadAddress { .. })
    }
}

/// Runs health checks against one node. The seam lets the monitor's timing
/// be tested with a scripted probe under a paused clock.
pub trait Probe: Send + 'static {
    /// One check: reachability and what the node reports about itself.
    fn check(&mut self) -> impl Future<Output = Result<Observation, CheckError>> + Send;

    /// After a failed check: does the node still accept a new TCP
    /// connection within `limit`?
    fn accepts_connections(
        &mut self,
        limit: Duration,
    ) -> impl Future<Output = Result<(), ProbeFailure>> + Send;
}

/// Why a fresh TCP connection to a node failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFailure {
    /// Refused (or reset at once): the host answers, the server is gone.
    Refused(String),
    /// No answer in time, or no route: the node or the path to it is down.
    NoAnswer(String),
}

/// The real probe: a mysql_async connection as the monitor user.
pub struct MysqlProbe {
    /// `Err` if the configured address does not parse (config validation
    /// should have refused it); every check then fails with it. TLS comes
    /// from `ssl` at each connect.
    opts: Result<Opts, (String, String)>,
    ssl: NodeSsl,
    timeout: Duration,
    conn: Option<Conn>,
}

impl MysqlProbe {
    pub fn new(address: &str, monitor: &MonitorConfig, ssl: NodeSsl) -> MysqlProbe {
        let opts = split_host_port(address)
            .map(|(host, port)| {
                OptsBuilder::default()
                    .ip_or_hostname(host)
                    .tcp_port(port)
                    .user(Some(monitor.user.clone()))
                    .pass(Some(monitor.password.expose().to_owned()))
                    .prefer_socket(false)
                    .max_allowed_packet(Some(MONITOR_MAX_PACKET))
                    .wait_timeout(Some(MONITOR_WAIT_TIMEOUT_SECS))
                    .tcp_keepalive(Some(MONITOR_TCP_KEEPALIVE))
                    .stmt_cache_size(0)
                    .into()
            })
            .map_err(|reason| (address.to_string(), reason));
        MysqlProbe {
            opts,
            ssl,
            timeout: monitor.timeout,
            conn: None,
        }
    }

    async fn connect(&mut self) -> Result<Conn, CheckError> {
        let opts = match &self.opts {
            Ok(opts) => opts.clone(),
            Err((address, reason)) => {
                return Err(CheckError::BadAddress {
                    address: address.clone(),
                    reason: reason.clone(),
                })
            }
        };
        let ssl = self.ssl.opts(self.timeout).await?;
        let opts = OptsBuilder::from_opts(opts).ssl_opts(ssl);
        let conn = Conn::new(opts)
            .await
            .map_err(|source| CheckError::Connect { source });
        if conn
            .as_ref()
            .is_err_and(|e| e.kind() == CheckErrorKind::Tls)
        {
            self.ssl.forget();
        }
        conn
    }
}

impl Probe for MysqlProbe {
    async fn accepts_connections(&mut self, limit: Duration) -> Result<(), ProbeFailure> {
        // The connection the failed check was on is no use any more.
        self.conn = None;
        let Ok(opts) = &self.opts else {
            return Err(ProbeFailure::NoAnswer("bad address".into()));
        };
        let address = (opts.ip_or_hostname().to_string(), opts.tcp_port());
        match tokio::time::timeout(limit, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(match e.kind() {
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset => {
                    ProbeFailure::Refused(e.to_string())
                }
                _ => ProbeFailure::NoAnswer(e.to_string()),
            }),
            Err(_) => Err(ProbeFailure::NoAnswer(format!(
                "connect timed out after {limit:?}"
            ))),
        }
    }

    async fn check(&mut self) -> Result<Observation, CheckError> {
        // A kept connection may have died since the last check (server
        // restart, wait_timeout); that alone is no reason to count a failure,
        // so it gets one retry on a fresh connection.
        if let Some(mut conn) = self.conn.take() {
            match observe(&mut conn).await {
                Ok(seen) => {
                    self.conn = Some(conn);
                    return Ok(seen);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "kept monitor connection failed; reconnecting")
                }
            }
        }
        let mut conn = self.connect().await?;
        let seen = observe(&mut conn).await?;
        self.conn = Some(conn);
        Ok(seen)
    }
}

/// The two queries of one check on an open connection.
async fn observe(conn: &mut Conn) -> Result<Observation, CheckError> {
    const VARS: &str = "reading @@variables";
    const SLAVE: &str = "SHOW SLAVE STATUS";
    let row: Row = conn
        .query_first(VARIABLES_SQL)
        .await
        .map_err(|source| CheckError::Query { what: VARS, source })?
        .ok_or(CheckError::NoRow { what: VARS })?;
    let text = |i: usize| value_text(row.as_ref(i));
    let read_only = parse_read_only(text(0).as_deref())?;
    let server_id = text(1)
        .as_deref()
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| CheckError::BadValue {
            what: "@@server_id",
            value: format!("{:?}", text(1)),
        })?;
    let slave: Option<Row> = conn
        .query_first(SLAVE)
        .await
        .map_err(|source| CheckError::Query {
            what: SLAVE,
            source,
        })?;
    let replication = slave.map(|row| {
        let names: Vec<String> = row
            .columns_ref()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        let values: Vec<Option<String>> = (0..names.len())
            .map(|i| value_text(row.as_ref(i)))
            .collect();
        ReplicationStatus::from_columns(
            names
                .iter()
                .map(String::as_str)
                .zip(values.iter().map(Option::as_deref)),
        )
    });
    let status: Vec<(String, String)> =
        conn.query(SEMISYNC_SQL)
            .await
            .map_err(|source| CheckError::Query {
                what: "semi-sync status",
                source,
            })?;
    Ok(Observation {
        read_only,
        server_id,
        version: text(2).unwrap_or_default(),
        gtid_current_pos: text(3).unwrap_or_default(),
        gtid_binlog_pos: text(4).unwrap_or_default(),
        replication,
        semisync: parse_semisync(&status),
    })
}

/// `(Variable_name, Value)` rows of the semi-sync status variables.
fn parse_semisync(rows: &[(String, String)]) -> SemiSync {
    let on = |name: &str| {
        rows.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.eq_ignore_ascii_case("ON") || v == "1")
    };
    SemiSync {
        master: on("Rpl_semi_sync_master_status"),
        master_enabled: on("Rpl_semi_sync_master_enabled"),
        slave: on("Rpl_semi_sync_slave_status"),
    }
}

/// A text-protocol cell as a string; NULL (or a missing column) is `None`.
fn value_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::NULL => None,
        Value::Bytes(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// `@@read_only` is 0/1 on MariaDB 10.x and an enum (OFF, ON, NO_LOCK,
/// NO_LOCK_NO_ADMIN) on 11.x; everything but 0/OFF refuses user writes.
fn parse_read_only(value: Option<&str>) -> Result<bool, CheckError> {
    match value.map(str::trim) {
        Some(v) if v == "0" || v.eq_ignore_ascii_case("OFF") => Ok(false),
        Some(v)
            if v == "1"
                || ["ON", "NO_LOCK", "NO_LOCK_NO_ADMIN"]
                    .iter()
                    .any(|k| v.eq_ignore_ascii_case(k)) =>
        {
            Ok(true)
        }
        other => Err(CheckError::BadValue {
            what: "@@read_only",
            value: format!("{other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_values() {
        assert!(!parse_read_only(Some("0")).unwrap());
        assert!(!parse_read_only(Some("OFF")).unwrap());
        assert!(parse_read_only(Some("1")).unwrap());
        assert!(parse_read_only(Some("no_lock")).unwrap());
        assert!(parse_read_only(None).is_err());
        assert!(parse_read_only(Some("maybe")).is_err());
    }

    #[test]
    fn cells_become_text() {
        assert_eq!(value_text(None), None);
        assert_eq!(value_text(Some(&Value::NULL)), None);
        assert_eq!(
            value_text(Some(&Value::Bytes(b"0-1-5".to_vec()))),
            Some("0-1-5".into())
        );
        assert_eq!(value_text(Some(&Value::Int(-3))), Some("-3".into()));
    }

    #[test]
    fn semisync_rows() {
        let rows = vec![
            ("Rpl_semi_sync_master_status".to_string(), "ON".to_string()),
            ("RPL_SEMI_SYNC_SLAVE_STATUS".to_string(), "OFF".to_string()),
            ("RPL_SEMI_SYNC_MASTER_ENABLED".to_string(), "ON".to_string()),
        ];
        assert_eq!(
            parse_semisync(&rows),
            SemiSync {
                master: Some(true),
                master_enabled: Some(true),
                slave: Some(false)
            }
        );
        assert_eq!(parse_semisync(&[]), SemiSync::default());
    }

    #[test]
    fn only_a_node_that_cannot_serve_is_down_evidence() {
        let after = Duration::from_secs(1);
        let rows: [(CheckError, bool); 5] = [
            (
                CheckError::Unreachable {
                    detail: "connect timed out".into(),
                },
                true,
            ),
            (
                CheckError::Refused {
                    detail: "refused".into(),
                },
                true,
            ),
            (CheckError::Stalled { after }, false),
            (CheckError::NoRow { what: "x" }, false),
            (
                CheckError::BadValue {
                    what: "@@read_only",
                    value: "2".into(),
                },
                false,
            ),
        ];
        for (e, down) in rows {
            assert_eq!(e.is_down_evidence(), down, "{e}");
        }
    }

    #[tokio::test]
    async fn a_closed_port_refuses_the_probe() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut probe = MysqlProbe::new(
            &format!("127.0.0.1:{port}"),
            &MonitorConfig::default(),
            NodeSsl::cleartext(),
        );
        let e = probe.check().await.unwrap_err();
        assert!(matches!(e, CheckError::Connect { .. }), "{e}");
        assert!(e.needs_probe(), "{e}");
        let probed = probe.accepts_connections(Duration::from_secs(1)).await;
        assert!(
            matches!(probed, Err(ProbeFailure::Refused(_))),
            "{probed:?}"
        );
    }

    #[tokio::test]
    async fn bad_address_fails_every_check() {
        let mut probe = MysqlProbe::new("nowhere", &MonitorConfig::default(), NodeSsl::cleartext());
        for _ in 0..2 {
            let e = probe.check().await.unwrap_err();
            assert!(
                matches!(&e, CheckError::BadAddress { address, .. } if address == "nowhere"),
                "{e}"
            );
        }
    }
}
