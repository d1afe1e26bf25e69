//! The stats listener's routes: the HAProxy-like page at the configured URI
//! (`{uri}` HTML, `{uri}.json` JSON), behind basic auth; runtime control of
//! a worker by `POST {uri}/backends/{name}/{drain|ready|maint}` (the admin
//! SQL interface does not exist yet); and `/metrics` in Prometheus text on
//! a dedicated stats listener. Also owns the frontend counters.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use prometheus_client::registry::Registry;

use super::error::{error_page, full, RespBody};
use super::page;
use super::upstream::{Upstreams, WorkerAdminState};
use crate::config::StatsConfig;

/// Counters of the client side.
#[derive(Debug, Default)]
pub struct FrontendStats {
    pub requests: AtomicU64,
    pub proxy_errors: AtomicU64,
    pub status_2xx: AtomicU64,
    pub status_3xx: AtomicU64,
    pub status_4xx: AtomicU64,
    pub status_5xx: AtomicU64,
    /// Client connections open now.
    pub connections: AtomicUsize,
    /// HTTPS connections dropped before their TLS handshake finished
    /// (garbage, a stall past the header timeout, no common version).
    pub tls_failures: AtomicU64,
}

impl FrontendStats {
    pub fn record_status(&self, status: u16) {
        let c = match status {
            200..=299 => &self.status_2xx,
            300..=399 => &self.status_3xx,
            400..=499 => &self.status_4xx,
            500..=599 => &self.status_5xx,
            _ => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Answers the stats routes.
pub struct Stats {
    pub(super) ups: Arc<Upstreams>,
    pub(super) frontend: Arc<FrontendStats>,
    uri: String,
    /// `Basic base64(user:password)`, compared in constant time.
    expected_auth: Vec<u8>,
    /// Required on control POSTs (`?token=`): only a page or client that
    /// could read the authenticated stats knows it, so another site cannot
    /// make an operator's browser post a control action (CSRF).
    control_token: String,
    registry: Registry,
}

impl Stats {
    pub fn new(cfg: &StatsConfig, ups: Arc<Upstreams>, frontend: Arc<FrontendStats>) -> Self {
        let token = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            cfg.user,
            cfg.password.expose()
        ));
        Stats {
            registry: super::metrics::registry(Arc::clone(&ups), Arc::clone(&frontend)),
            ups,
            frontend,
            uri: cfg.uri.trim_end_matches('/').to_string(),
            expected_auth: format!("Basic {token}").into_bytes(),
            control_token: {
                use rand::Rng;
                let bytes: [u8; 16] = rand::rng().random();
                bytes.iter().map(|b| format!("{b:02x}")).collect()
            },
        }
    }

    /// The token control POSTs carry (shown to authenticated readers only).
    pub fn control_token(&self) -> &str {
        &self.control_token
    }

    /// A control POST is made by the stats page itself or a client that
    /// read it: the token matches, and a browser's `Origin`/`Referer`/
    /// `Sec-Fetch-Site` does not name another site.
    fn control_allowed<B>(&self, req: &Request<B>) -> bool {
        let h = req.headers();
        let token = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .unwrap_or("");
        if !constant_time_eq(token.as_bytes(), self.control_token.as_bytes()) {
            return false;
        }
        if h.get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() != b"same-origin" && v.as_bytes() != b"none")
        {
            return false;
        }
        let host = h.get(header::HOST).map(|v| v.as_bytes());
        let from = h.get(header::ORIGIN).or_else(|| h.get(header::REFERER));
        match from {
            None => true,
            Some(v) => {
                let authority = v
                    .to_str()
                    .ok()
                    .and_then(|s| s.parse::<http::Uri>().ok())
                    .and_then(|u| u.authority().map(|a| a.as_str().as_bytes().to_vec()));
                authority.is_some() && authority.as_deref() == host
            }
        }
    }

    /// Whether `path` belongs to the stats routes (on the balancer listener).
    pub fn owns(&self, path: &str) -> bool {
        path == self.uri
            || path
                .strip_prefix(&self.uri)
                .is_some_and(|rest| rest.starts_with('/') || rest == ".json" || rest == ";json")
    }

    /// Serves one stats request. `metrics` enables `/metrics` (dedicated listener).
    pub fn handle<B>(&self, req: &Request<B>, metrics: bool) -> Response<RespBody> {
        let mut r = self.route(req, metrics);
        // The page has control buttons: never inside another site's frame.
        r.headers_mut()
            .insert("x-frame-options", HeaderValue::from_static("DENY"));
        r.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
        r
    }

    fn route<B>(&self, req: &Request<B>, metrics: bool) -> Response<RespBody> {
        let path = req.uri().path();
        if metrics && path == "/metrics" {
            return match super::metrics::render(&self.registry) {
                Ok(text) => with_type(
                    Response::new(full(text)),
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
                Err(_) => error_page(StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed"),
            };
        }
        if !self.owns(path) {
            return error_page(StatusCode::NOT_FOUND, "No such page.");
        }
        if !self.authorized(req.headers().get(header::AUTHORIZATION)) {
            let mut r = error_page(
                StatusCode::UNAUTHORIZED,
                "Access to the statistics needs a password.",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sqlproxy stats\""),
            );
            return r;
        }
        let rest = &path[self.uri.len()..];
        match (req.method(), rest) {
            (&Method::GET | &Method::HEAD, "" | "/") => with_type(
                Response::new(full(page::html(self, &self.uri))),
                "text/html; charset=utf-8",
            ),
            (&Method::GET | &Method::HEAD, ".json" | ";json" | "/json") => {
                json_response(StatusCode::OK, &page::json(self))
            }
            (&Method::POST, _) if !self.control_allowed(req) => error_page(
                StatusCode::FORBIDDEN,
                "Control actions need the page's token and must come from the stats page itself.",
            ),
            (&Method::POST, control) => self.control(control),
            _ => error_page(StatusCode::NOT_FOUND, "No such page."),
        }
    }

    /// `POST {uri}/backends/{name}/{drain|ready|maint}`.
    fn control(&self, rest: &str) -> Response<RespBody> {
        let mut it = rest.trim_matches('/').split('/');
        let (Some("backends"), Some(name), Some(action), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return error_page(
                StatusCode::NOT_FOUND,
                "Use POST {uri}/backends/NAME/drain|ready|maint.",
            );
        };
        let Some(state) = WorkerAdminState::parse(action) else {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Action must be drain, ready or maint.",
            );
        };
        let Some(b) = self.ups.by_name(name) else {
            return error_page(StatusCode::NOT_FOUND, "No such backend.");
        };
        let before = b.admin_state();
        b.set_admin_state(state);
        tracing::info!(worker = %b.name, from = %before, to = %state, "http worker admin state changed");
        json_response(StatusCode::OK, &page::backend_json(b))
    }

    fn authorized(&self, got: Option<&HeaderValue>) -> bool {
        let got = got.map(|v| v.as_bytes()).unwrap_or(b"");
        constant_time_eq(got, &self.expected_auth)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in b.iter().enumerate() {
        diff |= x ^ a.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

fn with_type(mut r: Response<RespBody>, ct: &'static str) -> Response<RespBody> {
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response<RespBody> {
    let mut r = with_type(Response::new(full(v.to_string())), "application/json");
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"Basic abc", b"Basic abc"));
        assert!(!constant_time_eq(b"Basic ab", b"Basic abc"));
        assert!(!constant_time_eq(b"Basic abd", b"Basic abc"));
        assert!(!constant_time_eq(b"", b"Basic abc"));
    }
}
