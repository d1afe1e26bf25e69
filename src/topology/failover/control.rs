//! The failover controller's own connections to the nodes (as the monitor
//! user), one per node, made on demand and dropped on any error: the
//! statements that change roles (`SET GLOBAL read_only`, `STOP SLAVE`,
//! `MASTER_GTID_WAIT`, `KILL`) go through here and nowhere else.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use super::FailoverError;
use crate::config::Config;
use crate::topology::node_ssl::NodeSsl;
use crate::topology::snapshot::TopologySnapshot;
use crate::topology::NodeId;

pub(super) struct Control {
    addresses: Vec<(String, String)>,
    /// TLS towards each node (`node_tls`), by node id.
    ssl: Vec<NodeSsl>,
    user: String,
    password: crate::config::Secret,
    pub(super) timeout: Duration,
    conns: Vec<Option<mysql_async::Conn>>,
}

impl Control {
    pub(super) fn new(snap: &TopologySnapshot, config: &Config) -> Control {
        Control {
            addresses: snap
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.address.clone()))
                .collect(),
            ssl: NodeSsl::for_nodes(config),
            user: config.monitor.user.clone(),
            password: config.monitor.password.clone(),
            timeout: config.monitor.timeout.max(Duration::from_secs(2)),
            conns: snap.nodes.iter().map(|_| None).collect(),
        }
    }

    pub(super) fn name(&self, id: NodeId) -> String {
        self.addresses
            .get(id)
            .map_or_else(|| "?".into(), |a| a.0.clone())
    }

    pub(super) fn address(&self, id: NodeId) -> Option<&str> {
        self.addresses.get(id).map(|a| a.1.as_str())
    }

    /// Whether the node accepts a TCP connection within `limit`: a node that
    /// does is alive, whatever its checks said.
    pub(super) async fn accepts_connections(&self, id: NodeId, limit: Duration) -> bool {
        let Some(address) = self.address(id) else {
            return false;
        };
        matches!(
            tokio::time::timeout(limit, tokio::net::TcpStream::connect(address)).await,
            Ok(Ok(_))
        )
    }

    pub(super) async fn conn(
        &mut self,
        id: NodeId,
    ) -> Result<&mut mysql_async::Conn, FailoverError> {
        let name = self.name(id);
        let err = |e: String| FailoverError::Control {
            node: name.clone(),
            error: e,
        };
        let missing = self.conns.get(id).is_some_and(Option::is_none);
        let opts = if missing {
            Some(self.opts(id).await?)
        } else {
            None
        };
        let slot = self
            .conns
            .get_mut(id)
            .ok_or_else(|| FailoverError::UnknownNode(id.to_string()))?;
        if let Some(opts) = opts {
            let c = tokio::time::timeout(self.timeout, mysql_async::Conn::new(opts))
                .await
                .map_err(|_| err("connect timed out".into()))?
                .map_err(|e| err(e.to_string()))?;
            *slot = Some(c);
        }
        slot.as_mut().ok_or_else(|| err("no connection".into()))
    }

    /// How to log in to a node as the controller does (TLS included), also
    /// for a connection of one's own (the rewind's session settings must not
    /// leak into ours).
    pub(super) async fn opts(&self, id: NodeId) -> Result<mysql_async::OptsBuilder, FailoverError> {
        let (name, address) = self
            .addresses
            .get(id)
            .ok_or_else(|| FailoverError::UnknownNode(id.to_string()))?;
        let (host, port) =
            crate::config::split_host_port(address).map_err(|error| FailoverError::Control {
                node: name.clone(),
                error,
            })?;
        let ssl = match self.ssl.get(id) {
            Some(ssl) => ssl
                .opts(self.timeout)
                .await
                .map_err(|e| FailoverError::Control {
                    node: name.clone(),
                    error: e.to_string(),
                })?,
            None => None,
        };
        Ok(mysql_async::OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.expose().to_owned()))
            .prefer_socket(false)
            .max_allowed_packet(Some(16 * 1024 * 1024))
            .wait_timeout(Some(28_800))
            .ssl_opts(ssl))
    }

    /// Runs a statement on a node; on any error the connection is dropped.
    pub(super) async fn exec(
        &mut self,
        id: NodeId,
        sql: &str,
        limit: Duration,
    ) -> Result<(), FailoverError> {
        // A statement without a result set reads as no row.
        self.value::<mysql_async::Value>(id, sql, limit)
            .await
            .map(drop)
    }

    pub(super) async fn value<T: mysql_async::prelude::FromValue + Send + 'static>(
        &mut self,
        id: NodeId,
        sql: &str,
        limit: Duration,
    ) -> Result<Option<T>, FailoverError> {
        let name = self.name(id);
        let conn = self.conn(id).await?;
        let result = tokio::time::timeout(limit, conn.query_first::<T, _>(sql)).await;
        let error = match result {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => format!("{sql}: {e}"),
            Err(_) => format!("{sql}: timed out"),
        };
        if let Some(slot) = self.conns.get_mut(id) {
            *slot = None;
        }
        Err(FailoverError::Control { node: name, error })
    }

    /// Every value of a one-column result.
    pub(super) async fn column<T: mysql_async::prelude::FromValue + Send + 'static>(
        &mut self,
        id: NodeId,
        sql: &str,
    ) -> Result<Vec<T>, FailoverError> {
        let name = self.name(id);
        let limit = self.timeout * 5;
        let conn = self.conn(id).await?;
        match tokio::time::timeout(limit, conn.query::<T, _>(sql)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(FailoverError::Control {
                node: name,
                error: format!("{sql}: {e}"),
            }),
            Err(_) => Err(FailoverError::Control {
                node: name,
                error: format!("{sql}: timed out"),
            }),
        }
    }

    pub(super) async fn set_read_only(
        &mut self,
        id: NodeId,
        on: bool,
    ) -> Result<(), FailoverError> {
        let sql = if on {
            "SET GLOBAL read_only = ON"
        } else {
            "SET GLOBAL read_only = OFF"
        };
        self.exec(id, sql, self.timeout * 5).await
    }

    /// Fences a node that must not take writes: `read_only=ON`, then every
    /// client connection is killed, so no session goes on writing there with
    /// an account that `read_only` does not stop (or inside a transaction it
    /// began before). Replication threads, the event scheduler and this
    /// connection are left alone.
    pub(super) async fn fence(&mut self, id: NodeId) -> Result<usize, FailoverError> {
        self.set_read_only(id, true).await?;
        let sql = format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() \
             AND USER NOT IN ('system user', 'event_scheduler', '{}') \
             AND COMMAND NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon', 'Killed')",
            self.user.replace('\'', "''")
        );
        let ids: Vec<u64> = self.column(id, &sql).await?;
        let t = self.timeout * 5;
        for thread in &ids {
            // Gone meanwhile (1094) is fine.
            if let Err(e) = self.exec(id, &format!("KILL CONNECTION {thread}"), t).await {
                tracing::debug!(error = %e, "kill");
            }
        }
        Ok(ids.len())
    }
}
