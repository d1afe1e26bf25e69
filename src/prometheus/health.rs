//! The `/metrics` families that alerting and the dashboard need beyond the
//! counters of `export.rs`: what each node says about itself (read_only,
//! replication threads, semi-sync), why its last check failed, statements
//! by route, and the client limit. Read from the topology snapshot and the
//! atomics at scrape time, like the rest of the endpoint.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::per_node;
use crate::context::ProxyContext;
use crate::topology::{CheckErrorKind, IoThread, TopologySnapshot};

pub(super) fn encode(
    enc: &mut DescriptorEncoder,
    ctx: &ProxyContext,
    snap: &TopologySnapshot,
    names: &[String],
) -> Result<(), fmt::Error> {
    let node = |id: usize| snap.nodes.get(id);
    per_node(
        enc,
        names,
        (
            "node_read_only",
            "@@read_only as of the last successful check (absent until one)",
            MetricType::Gauge,
        ),
        |id| node(id).and_then(|n| n.read_only).map(u64::from),
    )?;
    let replication = |id: usize| node(id).and_then(|n| n.replication.as_ref());
    per_node(
        enc,
        names,
        (
            "node_replication_io_running",
            "1 when the replica's IO thread is connected to its master (absent when not a replica)",
            MetricType::Gauge,
        ),
        |id| replication(id).map(|r| u64::from(r.io_thread == IoThread::Running)),
    )?;
    per_node(
        enc,
        names,
        (
            "node_replication_sql_running",
            "1 when the replica's SQL thread applies events (absent when not a replica)",
            MetricType::Gauge,
        ),
        |id| replication(id).map(|r| u64::from(r.sql_running)),
    )?;
    per_node(
        enc,
        names,
        (
            "node_semisync_master",
            "Rpl_semi_sync_master_status: 1 when commits wait for a replica's ack",
            MetricType::Gauge,
        ),
        |id| node(id).and_then(|n| n.semisync.master).map(u64::from),
    )?;
    per_node(
        enc,
        names,
        (
            "node_semisync_slave",
            "Rpl_semi_sync_slave_status: 1 when the node acks its master's events",
            MetricType::Gauge,
        ),
        |id| node(id).and_then(|n| n.semisync.slave).map(u64::from),
    )?;
    per_node(
        enc,
        names,
        (
            "node_diverged",
            "1 when the node has transactions the master lacks (kept out of rotation)",
            MetricType::Gauge,
        ),
        |id| node(id).map(|n| u64::from(n.diverged.is_some())),
    )?;
    {
        let mut m = enc.encode_descriptor(
            "node_check_error",
            "1 for the kind of error the node's last check failed with: why a node is down",
            None,
            MetricType::Gauge,
        )?;
        for (id, name) in names.iter().enumerate() {
            let Some(n) = node(id) else { continue };
            for kind in CheckErrorKind::ALL {
                let labels = [("node", name.as_str()), ("kind", kind.as_str())];
                let v = u64::from(n.last_error_kind == Some(kind));
                m.encode_family(&labels)?.encode_gauge(&v)?;
            }
        }
    }
    {
        let mut m = enc.encode_descriptor(
            "statements",
            "Client statements by route: target (master, read) and reason",
            None,
            MetricType::Counter,
        )?;
        for (target, why, v) in ctx.metrics.routes.snapshot() {
            let labels = [("target", target), ("why", why)];
            m.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
        }
    }
    let mut m = enc.encode_descriptor(
        "client_max_connections",
        "mysql.max_connections: clients beyond it get error 1040",
        None,
        MetricType::Gauge,
    )?;
    m.encode_gauge(&i64::from(ctx.config.mysql.max_connections))
}
