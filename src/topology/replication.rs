//! What a node says about its own replication (`SHOW SLAVE STATUS`), as a
//! typed value. Parsing is a pure function over (column, value) pairs so it
//! is tested without a server; `check.rs` feeds it the row.

use std::fmt;

/// State of the replica's IO thread (`Slave_IO_Running`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoThread {
    /// Connected to the master and receiving events.
    Running,
    /// Trying to (re)connect to the master.
    Connecting,
    Stopped,
}

impl fmt::Display for IoThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoThread::Running => "Yes",
            IoThread::Connecting => "Connecting",
            IoThread::Stopped => "No",
        })
    }
}

/// One node's replication from its master (the default connection's row of
/// `SHOW SLAVE STATUS`). Empty strings from the server become `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationStatus {
    pub io_thread: IoThread,
    pub sql_running: bool,
    /// NULL while the SQL thread is stopped or the IO thread is not connected.
    pub seconds_behind_master: Option<u64>,
    /// The GTID position received from the master (unparsed; see `gtid`).
    pub gtid_io_pos: Option<String>,
    pub last_io_error: Option<String>,
    pub last_sql_error: Option<String>,
    pub master_host: Option<String>,
    pub master_port: Option<u16>,
}

impl ReplicationStatus {
    /// Both threads running: the node is applying its master's writes.
    pub fn is_replicating(&self) -> bool {
        self.io_thread == IoThread::Running && self.sql_running
    }

    /// Builds the status from a `SHOW SLAVE STATUS` row given as (column
    /// name, text value) pairs; NULL is `None`. Unknown columns are ignored
    /// and missing ones read as stopped/absent, so a server that renames or
    /// adds columns degrades instead of failing the health check.
    pub fn from_columns<'a>(
        columns: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> ReplicationStatus {
        let mut status = ReplicationStatus {
            io_thread: IoThread::Stopped,
            sql_running: false,
            seconds_behind_master: None,
            gtid_io_pos: None,
            last_io_error: None,
            last_sql_error: None,
            master_host: None,
            master_port: None,
        };
        for (name, value) in columns {
            let text = value.map(str::trim).filter(|v| !v.is_empty());
            match name {
                "Slave_IO_Running" => {
                    status.io_thread = match text {
                        Some(v) if v.eq_ignore_ascii_case("yes") => IoThread::Running,
                        Some(v) if v.eq_ignore_ascii_case("connecting") => IoThread::Connecting,
                        _ => IoThread::Stopped,
                    }
                }
                "Slave_SQL_Running" => {
                    status.sql_running = text.is_some_and(|v| v.eq_ignore_ascii_case("yes"))
                }
                "Seconds_Behind_Master" => {
                    status.seconds_behind_master = text.and_then(|v| v.parse().ok())
                }
                "Gtid_IO_Pos" => status.gtid_io_pos = text.map(String::from),
                "Last_IO_Error" => status.last_io_error = text.map(String::from),
                "Last_SQL_Error" => status.last_sql_error = text.map(String::from),
                "Master_Host" => status.master_host = text.map(String::from),
                "Master_Port" => status.master_port = text.and_then(|v| v.parse().ok()),
                _ => {}
            }
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_replica() {
        let s = ReplicationStatus::from_columns([
            ("Slave_IO_State", Some("Waiting for master to send event")),
            ("Master_Host", Some("127.0.0.1")),
            ("Master_Port", Some("3306")),
            ("Slave_IO_Running", Some("Yes")),
            ("Slave_SQL_Running", Some("Yes")),
            ("Last_IO_Error", Some("")),
            ("Last_SQL_Error", Some("")),
            ("Seconds_Behind_Master", Some("0")),
            ("Gtid_IO_Pos", Some("0-1-100,1-2-5")),
        ]);
        assert_eq!(
            s,
            ReplicationStatus {
                io_thread: IoThread::Running,
                sql_running: true,
                seconds_behind_master: Some(0),
                gtid_io_pos: Some("0-1-100,1-2-5".into()),
                last_io_error: None,
                last_sql_error: None,
                master_host: Some("127.0.0.1".into()),
                master_port: Some(3306),
            }
        );
        assert!(s.is_replicating());
    }

    #[test]
    fn broken_replica_keeps_its_errors_and_null_lag() {
        let s = ReplicationStatus::from_columns([
            ("Slave_IO_Running", Some("Connecting")),
            ("Slave_SQL_Running", Some("No")),
            ("Seconds_Behind_Master", None),
            (
                "Last_IO_Error",
                Some("error reconnecting to master 'repl@127.0.0.1:3306'"),
            ),
            (
                "Last_SQL_Error",
                Some("Duplicate entry '1' for key 'PRIMARY'"),
            ),
            ("Gtid_IO_Pos", Some("")),
        ]);
        assert_eq!(s.io_thread, IoThread::Connecting);
        assert!(!s.sql_running);
        assert!(!s.is_replicating());
        assert_eq!(s.seconds_behind_master, None);
        assert_eq!(s.gtid_io_pos, None);
        assert!(s.last_io_error.is_some_and(|e| e.contains("reconnecting")));
        assert!(s.last_sql_error.is_some_and(|e| e.contains("Duplicate")));
    }

    #[test]
    fn missing_columns_read_as_stopped() {
        let s = ReplicationStatus::from_columns([("Something_New", Some("x"))]);
        assert_eq!(s.io_thread, IoThread::Stopped);
        assert!(!s.sql_running);
        assert_eq!(s.master_port, None);
        assert_eq!(IoThread::Connecting.to_string(), "Connecting");
    }
}
