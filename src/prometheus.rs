//! The Prometheus endpoint: `GET /metrics` on its own listener (hyper,
//! HTTP/1.1), in the OpenMetrics text format written by prometheus-client.
//! Nothing is copied into prometheus-client's own metric types: a
//! [`Collector`] reads the atomics of [`Metrics`], the topology snapshot and
//! the pools at scrape time, so `/metrics` and admin `SHOW` always agree.

use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod health;

use crate::context::ProxyContext;
use crate::topology::{AdminState, NodeState, Role};

/// `Content-Type` of the OpenMetrics text exposition.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Reads everything at scrape time; registered once under the `sqlproxy` prefix.
pub struct Exporter {
    ctx: Arc<ProxyContext>,
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exporter")
    }
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    m.encode_counter::<NoLabelSet, _, u64>(&value, None)
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    m.encode_gauge(&value)
}

/// A per-node family: one sample per node from `value(node id)`.
pub(super) fn per_node(
    enc: &mut DescriptorEncoder,
    names: &[String],
    (name, help, kind): (&str, &str, MetricType),
    value: impl Fn(usize) -> Option<u64>,
) -> Result<(), fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (id, node) in names.iter().enumerate() {
        let Some(v) = value(id) else { continue };
        let labels = [("node", node.as_str())];
        let mut f = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => f.encode_counter::<NoLabelSet, _, u64>(&v, None)?,
            _ => f.encode_gauge(&v)?,
        }
    }
    Ok(())
}

impl Collector for Exporter {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let ctx = &self.ctx;
        let m = &ctx.metrics;
        let snap = ctx.topology.snapshot();
        let names: Vec<String> = snap.nodes.iter().map(|n| n.name.clone()).collect();
        let counters =
            |f: fn(&crate::metrics::NodeCounters) -> u64| move |id: usize| m.node(id).map(f);
        per_node(
            &mut enc,
            &names,
            (
                "node_queries",
                "Commands relayed to the node",
                MetricType::Counter,
            ),
            counters(|n| n.queries.load(Relaxed)),
        )?;
        per_node(
            &mut enc,
            &names,
            (
                "node_errors",
                "Replies from the node that were an ERR packet",
                MetricType::Counter,
            ),
            counters(|n| n.errors.load(Relaxed)),
        )?;
        per_node(
            &mut enc,
            &names,
            (
                "node_failures",
                "Commands whose node connection was lost or could not be opened",
                MetricType::Counter,
            ),
            counters(|n| n.failures.load(Relaxed)),
        )?;
        {
            let mut h = enc.encode_descriptor(
                "node_latency_seconds",
                "Time from sending a command to the node until its reply was relayed",
                None,
                MetricType::Histogram,
            )?;
            for (id, node) in names.iter().enumerate() {
                let Some(c) = m.node(id) else { continue };
                let labels = [("node", node.as_str())];
                let sum = c.latency.sum_us() as f64 / 1e6;
                h.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                    sum,
                    c.latency.count(),
                    &c.latency.buckets_seconds(),
                    None,
                )?;
            }
        }
        let node = |id: usize| snap.nodes.get(id);
        per_node(
            &mut enc,
            &names,
            (
                "node_up",
                "1 when the health checks pass",
                MetricType::Gauge,
            ),
            |id| node(id).map(|n| u64::from(n.state == NodeState::Up)),
        )?;
        per_node(
            &mut enc,
            &names,
            (
                "node_master",
                "1 for the node that takes the writes",
                MetricType::Gauge,
            ),
            |id| node(id).map(|n| u64::from(n.role == Role::Master)),
        )?;
        per_node(
            &mut enc,
            &names,
            (
                "node_online",
                "1 unless an operator set the node OFFLINE or DRAIN",
                MetricType::Gauge,
            ),
            |id| node(id).map(|n| u64::from(n.admin == AdminState::Online)),
        )?;
        per_node(
            &mut enc,
            &names,
            ("node_weight", "Read weight in force", MetricType::Gauge),
            |id| node(id).map(|n| u64::from(n.weight)),
        )?;
        per_node(
            &mut enc,
            &names,
            (
                "node_replication_lag_seconds",
                "Seconds_Behind_Master as of the last check (absent when not replicating)",
                MetricType::Gauge,
            ),
            |id| {
                node(id)
                    .and_then(|n| n.replication.as_ref())
                    .and_then(|r| r.seconds_behind_master)
            },
        )?;
        let idle = ctx.pools.idle_counts();
        per_node(
            &mut enc,
            &names,
            (
                "pool_idle_connections",
                "Idle authenticated connections pooled for the node",
                MetricType::Gauge,
            ),
            |id| idle.get(id).map(|(_, n)| *n as u64),
        )?;
        let slots = ctx.pools.slot_counts();
        per_node(
            &mut enc,
            &names,
            (
                "node_connections",
                "Connections the proxy holds to the node, idle ones included",
                MetricType::Gauge,
            ),
            |id| slots.get(id).map(|s| u64::from(s.held)),
        )?;
        per_node(
            &mut enc,
            &names,
            (
                "node_connections_max",
                "The proxy's limit of connections to the node (pool.max_per_node)",
                MetricType::Gauge,
            ),
            |id| slots.get(id).map(|s| u64::from(s.limit)),
        )?;
        per_node(
            &mut enc,
            &names,
            (
                "node_connection_waits_failed",
                "Sessions that waited pool.checkout_timeout for a connection to the node in vain (1040)",
                MetricType::Counter,
            ),
            |id| slots.get(id).map(|s| s.timeouts),
        )?;
        let in_use = ctx.sessions.in_use(names.len());
        per_node(
            &mut enc,
            &names,
            (
                "pool_in_use_connections",
                "Connections to the node held by client sessions",
                MetricType::Gauge,
            ),
            |id| in_use.get(id).map(|n| *n as u64),
        )?;
        counter(
            &mut enc,
            "failovers",
            "Master changes by failover",
            m.failovers.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "switchovers",
            "Planned master changes",
            m.switchovers.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "rewinds",
            "Returning former masters whose unacknowledged transactions were undone so they could rejoin",
            m.rewinds.load(Relaxed),
        )?;
        gauge(
            &mut enc,
            "client_sessions",
            "Client sessions open now",
            ctx.sessions.len() as i64,
        )?;
        counter(
            &mut enc,
            "client_sessions_opened",
            "Client sessions that logged in",
            ctx.sessions.total(),
        )?;
        counter(
            &mut enc,
            "client_login_failures",
            "Client logins refused",
            m.login_failures.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "client_refused",
            "Clients refused at max_connections (error 1040)",
            m.sessions_refused.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "client_logins_tls",
            "Client logins over TLS",
            m.logins_tls.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "client_logins_cleartext",
            "Client logins in cleartext",
            m.logins_cleartext.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "admin_commands",
            "Commands run on the admin port",
            m.admin_commands.load(Relaxed),
        )?;
        gauge(
            &mut enc,
            "query_digests",
            "Distinct statement digests tracked",
            m.digests.len() as i64,
        )?;
        if let Some(cache) = &self.ctx.cache {
            let c = cache.stats();
            for (name, help, v) in [
                (
                    "cache_lookups",
                    "Cacheable statements that looked in the result cache",
                    c.lookups,
                ),
                ("cache_hits", "Results served from the cache", c.hits),
                (
                    "cache_misses",
                    "Cacheable statements that went to a node",
                    c.misses,
                ),
                ("cache_stores", "Results stored in the cache", c.stores),
                (
                    "cache_evictions",
                    "Cache entries evicted for size",
                    c.evictions,
                ),
                (
                    "cache_expirations",
                    "Cache entries whose TTL ran out",
                    c.expirations,
                ),
                (
                    "cache_invalidations",
                    "Table generations moved by writes and flushes",
                    c.invalidations,
                ),
            ] {
                counter(&mut enc, name, help, v)?;
            }
            gauge(
                &mut enc,
                "cache_entries",
                "Entries in the result cache",
                i64::try_from(c.entries).unwrap_or(i64::MAX),
            )?;
            gauge(
                &mut enc,
                "cache_bytes",
                "Bytes held by the result cache",
                i64::try_from(c.bytes).unwrap_or(i64::MAX),
            )?;
        }
        health::encode(&mut enc, ctx, &snap, &names)?;
        gauge(
            &mut enc,
            "topology_generation",
            "Topology snapshots published since start",
            i64::try_from(snap.generation).unwrap_or(i64::MAX),
        )?;
        if let Some(co) = &ctx.coordination {
            let v = co.view();
            gauge(
                &mut enc,
                "coordination_etcd_up",
                "1 while this instance has a working etcd session (0: it promotes nothing)",
                i64::from(v.etcd_up),
            )?;
            gauge(
                &mut enc,
                "coordination_holder",
                "1 while this instance holds the election (runs failover, fencing, rejoin)",
                i64::from(v.holds),
            )?;
            gauge(
                &mut enc,
                "coordination_epoch",
                "Epoch of the writer record this instance follows (0: none)",
                v.writer
                    .as_ref()
                    .map_or(0, |w| i64::try_from(w.epoch).unwrap_or(i64::MAX)),
            )?;
            gauge(
                &mut enc,
                "coordination_instances",
                "Instances alive in etcd, as this instance last saw them",
                v.instances.len() as i64,
            )?;
            counter(
                &mut enc,
                "coordination_vetoes",
                "Failovers refused because another instance still reached the master",
                v.vetoes,
            )?;
            counter(
                &mut enc,
                "coordination_writer_changes",
                "Writer records this instance wrote to etcd",
                v.recorded,
            )?;
        }
        Ok(())
    }
}

/// What `/metrics` shows: the proxy's families under the `sqlproxy` prefix,
/// plus `extra` collectors that name their own (the HTTP balancer's
/// `sqlproxy_http_*`).
pub fn registry(ctx: &Arc<ProxyContext>, extra: Vec<Box<dyn Collector>>) -> Registry {
    let mut registry = Registry::default();
    registry
        .sub_registry_with_prefix("sqlproxy")
        .register_collector(Box::new(Exporter {
            ctx: Arc::clone(ctx),
        }));
    for c in extra {
        registry.register_collector(c);
    }
    registry
}

/// The whole exposition of `registry`, as `/metrics` serves it.
pub fn render(registry: &Registry) -> Result<String, fmt::Error> {
    let mut out = String::with_capacity(8 * 1024);
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

fn respond(registry: &Registry, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &'static str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET /metrics\n".into(),
        );
    }
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "text/plain", "try /metrics\n".into());
    }
    match render(registry) {
        Ok(body) => reply(StatusCode::OK, CONTENT_TYPE, body),
        Err(_) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "encoding failed\n".into(),
        ),
    }
}

/// Serves `/metrics` on `listener` until `shutdown`; connections run on
/// `tracker`. `extra`: collectors of other services (the HTTP balancer).
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<ProxyContext>,
    extra: Vec<Box<dyn Collector>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let registry = Arc::new(registry(&ctx, extra));
    let stop = shutdown.clone();
    crate::listener::accept_loop(listener, "metrics", stop, tracker, move |stream, _| {
        let registry = Arc::clone(&registry);
        let stop = shutdown.clone();
        async move {
            let service = hyper::service::service_fn(move |req| {
                let resp = respond(&registry, &req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "metrics connection");
                    }
                }
                // A scrape is short; at shutdown the connection is just closed.
                _ = stop.cancelled() => {}
            }
        }
    })
    .await;
}
