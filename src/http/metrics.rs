//! Prometheus exposition of the balancer's counters. A prometheus-client
//! [`Collector`] reads the same atomics the stats page reads at scrape
//! time, so there is one set of numbers and nothing to keep in sync. All
//! names carry the `sqlproxy_http_` prefix.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::stats::FrontendStats;
use super::upstream::Upstreams;

struct HttpCollector {
    ups: Arc<Upstreams>,
    frontend: Arc<FrontendStats>,
}

impl std::fmt::Debug for HttpCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCollector")
            .field("backends", &self.ups.backends().len())
            .finish()
    }
}

/// A registry holding the balancer's collector.
pub fn registry(ups: Arc<Upstreams>, frontend: Arc<FrontendStats>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(HttpCollector { ups, frontend }));
    r
}

/// The balancer's collector alone, for the proxy's own `/metrics`
/// endpoint (`[metrics]`), which then shows the HTTP workers too.
pub fn collector(ups: Arc<Upstreams>, frontend: Arc<FrontendStats>) -> Box<dyn Collector> {
    Box::new(HttpCollector { ups, frontend })
}

/// Renders the registry in the Prometheus text format.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    ConstCounter::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for HttpCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let f = &self.frontend;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut enc,
            "sqlproxy_http_requests",
            "Client requests received.",
            load(&f.requests),
        )?;
        counter(
            &mut enc,
            "sqlproxy_http_proxy_errors",
            "Requests answered with an error page made by the balancer.",
            load(&f.proxy_errors),
        )?;
        counter(
            &mut enc,
            "sqlproxy_http_tls_handshake_failures",
            "HTTPS connections dropped before their TLS handshake finished.",
            load(&f.tls_failures),
        )?;
        gauge(
            &mut enc,
            "sqlproxy_http_client_connections",
            "Client connections open now.",
            f.connections.load(Ordering::Relaxed) as i64,
        )?;
        gauge(
            &mut enc,
            "sqlproxy_http_queue",
            "Requests waiting for a worker slot.",
            self.ups.queued() as i64,
        )?;
        let bs = self.ups.backends();
        {
            let mut m = enc.encode_descriptor(
                "sqlproxy_http_backend_requests",
                "Requests answered by each worker.",
                None,
                MetricType::Counter,
            )?;
            for b in bs {
                ConstCounter::new(load(&b.stats.requests))
                    .encode(m.encode_family(&[("backend", b.name.as_str())])?)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "sqlproxy_http_backend_responses",
                "Worker responses by status class.",
                None,
                MetricType::Counter,
            )?;
            for b in bs {
                let s = &b.stats;
                for (class, c) in [
                    ("1xx", &s.status_1xx),
                    ("2xx", &s.status_2xx),
                    ("3xx", &s.status_3xx),
                    ("4xx", &s.status_4xx),
                    ("5xx", &s.status_5xx),
                ] {
                    ConstCounter::new(load(c)).encode(
                        m.encode_family(&[("backend", b.name.as_str()), ("code", class)])?,
                    )?;
                }
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "sqlproxy_http_backend_errors",
                "Worker failures: connect, response (invalid or lost), timeout.",
                None,
                MetricType::Counter,
            )?;
            for b in bs {
                let s = &b.stats;
                for (kind, c) in [
                    ("connect", &s.connect_errors),
                    ("response", &s.response_errors),
                    ("timeout", &s.timeouts),
                ] {
                    ConstCounter::new(load(c)).encode(
                        m.encode_family(&[("backend", b.name.as_str()), ("kind", kind)])?,
                    )?;
                }
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "sqlproxy_http_backend_retries",
                "Requests moved from each worker to another.",
                None,
                MetricType::Counter,
            )?;
            for b in bs {
                ConstCounter::new(load(&b.stats.retries))
                    .encode(m.encode_family(&[("backend", b.name.as_str())])?)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "sqlproxy_http_backend_active",
                "Requests in flight to each worker.",
                None,
                MetricType::Gauge,
            )?;
            for b in bs {
                ConstGauge::new(b.active() as i64)
                    .encode(m.encode_family(&[("backend", b.name.as_str())])?)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "sqlproxy_http_backend_up",
                "1 if the worker passes its health checks.",
                None,
                MetricType::Gauge,
            )?;
            for b in bs {
                ConstGauge::new(i64::from(b.is_healthy()))
                    .encode(m.encode_family(&[("backend", b.name.as_str())])?)?;
            }
        }
        Ok(())
    }
}
