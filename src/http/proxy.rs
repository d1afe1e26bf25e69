//! Forwarding one client request to a worker and its response back.
//!
//! Which failed attempts move to another worker is `retry`'s decision
//! (`http.retry_on`); this file measures the facts it needs: whether the
//! request was sent, and whether one response byte came back. Requests that
//! are not idempotent, or have a body, always go on a fresh connection
//! (HAProxy's `http-reuse safe`), so a keep-alive race with a worker closing
//! an idle connection can never eat a POST.

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::body::{self, UpstreamBody};
use super::error::{full, GatewayError, RespBody};
use super::headers::{self, ClientInfo};
use super::idle::InFlight;
use super::pool::{self, Conn, UpBody};
use super::retry::{self, Failure, RetryPolicy, Verdict};
use super::stats::FrontendStats;
use super::upload::{Progress, UploadBody, UploadTimeout};
use super::upstream::{Lease, Upstreams};
use crate::config::http::{Cidr, RetryOn};
use crate::config::{HttpConfig, Timeouts};

/// What the proxy needs from the config, plus the shared state. There is
/// one per event loop (`shard`), which picks that loop's keep-alive pools.
pub struct Proxy {
    ups: Arc<Upstreams>,
    shard: usize,
    retries: u32,
    retry_on: RetryPolicy,
    timeouts: Timeouts,
    max_body: u64,
    trust_forwarded: bool,
    /// `http.trusted_proxies`, parsed (validated at load).
    trusted_proxies: Vec<Cidr>,
    sticky: Option<String>,
    pub frontend: Arc<FrontendStats>,
}

/// The client connection a request came on; made once per connection.
pub struct ClientAddr {
    pub addr: SocketAddr,
    /// `addr`'s IP as an `X-Forwarded-For` item.
    forwarded_for: HeaderValue,
    /// `X-Forwarded-Proto`: what the client spoke to the balancer.
    proto: &'static str,
}

impl ClientAddr {
    /// `secure`: the connection came over TLS.
    pub fn new(addr: SocketAddr, secure: bool) -> Self {
        ClientAddr {
            addr,
            forwarded_for: headers::forwarded_for(addr.ip()),
            proto: if secure { "https" } else { "http" },
        }
    }
}

/// A body-less idempotent request head, kept so it can be sent again after
/// an empty response.
struct Replay {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Replay {
    fn build(&self) -> Request<UpBody> {
        let mut r = Request::new(empty_body());
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = self.uri.clone();
        *r.version_mut() = Version::HTTP_11;
        *r.headers_mut() = self.headers.clone();
        r
    }
}

fn empty_body() -> UpBody {
    Empty::new().map_err(|e| match e {}).boxed()
}

impl Proxy {
    pub fn new(
        cfg: &HttpConfig,
        ups: Arc<Upstreams>,
        frontend: Arc<FrontendStats>,
        shard: usize,
    ) -> Self {
        Proxy {
            ups,
            shard,
            retries: cfg.retries,
            retry_on: RetryPolicy::new(&cfg.retry_on),
            timeouts: cfg.timeouts.clone(),
            max_body: cfg.max_body_size,
            trust_forwarded: cfg.trust_forwarded,
            trusted_proxies: cfg
                .trusted_proxies
                .iter()
                .filter_map(|c| Cidr::parse(c).ok())
                .collect(),
            sticky: cfg.sticky.as_ref().map(|s| s.cookie.clone()),
            frontend,
        }
    }

    /// Answers one client request; never fails (errors become pages).
    /// `guard` marks the request in flight on its client connection until
    /// the response body is finished.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        client: &ClientAddr,
        guard: InFlight,
    ) -> Response<RespBody> {
        self.frontend.requests.fetch_add(1, Ordering::Relaxed);
        let method = req.method().clone();
        let uri = req.uri().clone(); // shares the bytes: no copy unless logged
        let resp = match self.forward(req, client, guard).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    client = %client.addr, method = %method, path = uri.path(),
                    status = e.status().as_u16(), source = ?e.source_kind(), error = %e,
                    "http request failed"
                );
                self.frontend.proxy_errors.fetch_add(1, Ordering::Relaxed);
                e.into_response()
            }
        };
        self.frontend.record_status(resp.status().as_u16());
        resp
    }

    async fn forward(
        &self,
        mut req: Request<Incoming>,
        client: &ClientAddr,
        guard: InFlight,
    ) -> Result<Response<RespBody>, GatewayError> {
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body) {
            return Err(GatewayError::BodyTooLarge {
                limit: self.max_body,
            });
        }
        let http2 = req.version() == http::Version::HTTP_2;
        let upgrade = headers::is_upgrade_request(req.version(), req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let sticky_to: Option<String> = self
            .sticky
            .as_deref()
            .and_then(|name| headers::cookie_value(req.headers(), name).map(str::to_string));
        let (mut parts, body) = req.into_parts();
        let info = ClientInfo {
            forwarded_for: &client.forwarded_for,
            proto: client.proto,
            trust_forwarded: self.trust_forwarded
                || self
                    .trusted_proxies
                    .iter()
                    .any(|c| c.contains(client.addr.ip())),
            sticky_cookie: self.sticky.as_deref(),
        };
        headers::prepare_request(&mut parts, &info, upgrade);
        let replayable = body.is_end_stream() && headers::is_idempotent(&parts.method);
        // The head is only copied when a replay is possible at all. An
        // unsent request comes back from hyper whole, and needs no copy.
        let replay = (replayable
            && self.retries > 0
            && self.retry_on.lists(RetryOn::EmptyResponse))
        .then(|| Replay {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        });
        let limit = usize::try_from(self.max_body).unwrap_or(usize::MAX);
        // Only a request with a body can make progress while waiting, or
        // hold a worker while it trickles in.
        let (up_body, progress) = if body.is_end_stream() {
            (empty_body(), None)
        } else {
            let progress = Progress::new();
            let b = UploadBody::new(
                Limited::new(body, limit).boxed(),
                Arc::clone(&progress),
                self.timeouts.request_body,
            );
            (b.boxed(), Some(progress))
        };
        let mut pending = Some(Request::from_parts(parts, up_body));
        let mut tried: Vec<usize> = Vec::new();
        let mut attempt: u32 = 0;
        loop {
            let lease = self
                .ups
                .acquire(sticky_to.as_deref(), &tried)
                .await
                .map_err(GatewayError::NoWorker)?;
            let Some(req) = pending
                .take()
                .or_else(|| replay.as_ref().map(Replay::build))
            else {
                // Unreachable by construction: we only loop with a request in hand.
                return Err(GatewayError::BadRequest(
                    "request cannot be replayed".into(),
                ));
            };
            let backend = Arc::clone(&lease.backend);
            let can_retry = attempt < self.retries;
            // One clock read per attempt on a pooled connection: the pool's
            // idle check, the server timeout and the latency count from
            // here (so they include a wait for the connection's `ready()`);
            // after a connect, from the end of the connect.
            let mut started = Instant::now();
            let mut conn = match self.conn_for(&lease, replayable, started).await {
                Ok((c, pooled)) => {
                    if !pooled {
                        started = Instant::now();
                    }
                    c
                }
                Err(e) => {
                    backend.stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                    let retry = can_retry
                        && retry::verdict(Failure::NotSent, replayable, self.retry_on)
                            == Verdict::Retry;
                    tracing::warn!(worker = %backend.name, error = %e, retry, "http worker unreachable");
                    if retry {
                        pending = Some(req);
                        self.note_retry(&lease, &mut tried, &mut attempt);
                        continue;
                    }
                    return Err(GatewayError::Connect {
                        worker: backend.name.clone(),
                        source: e,
                    });
                }
            };
            conn.start(started);
            let read_before = conn.bytes_read();
            let response = conn.sender.try_send_request(req);
            let sent = match &progress {
                Some(p) => {
                    p.touch();
                    p.within(self.timeouts.server, response).await
                }
                None => tokio::time::timeout_at(started + self.timeouts.server, response)
                    .await
                    .ok(),
            };
            let result = match sent {
                None => {
                    backend.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    return Err(GatewayError::Timeout {
                        worker: backend.name.clone(),
                        secs: self.timeouts.server.as_secs_f64(),
                    });
                }
                Some(r) => r,
            };
            let resp = match result {
                Ok(resp) => resp,
                Err(mut e) => {
                    if let Some(unsent) = e.take_message() {
                        // Never reached the socket: safe for any method.
                        backend.stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                        if can_retry
                            && retry::verdict(Failure::NotSent, replayable, self.retry_on)
                                == Verdict::Retry
                        {
                            pending = Some(unsent);
                            self.note_retry(&lease, &mut tried, &mut attempt);
                            continue;
                        }
                    }
                    let err = e.into_error();
                    if caused_by::<http_body_util::LengthLimitError>(&err) {
                        return Err(GatewayError::BodyTooLarge {
                            limit: self.max_body,
                        });
                    }
                    if caused_by::<UploadTimeout>(&err) {
                        // hyper aborted the request; `conn` is dropped here,
                        // so that worker connection is closed, not pooled.
                        return Err(GatewayError::RequestBodyTimeout {
                            secs: self.timeouts.request_body.as_secs_f64(),
                        });
                    }
                    if err.is_user() {
                        // Our request body failed: the client aborted its upload.
                        return Err(GatewayError::ClientBody(err));
                    }
                    backend
                        .stats
                        .response_errors
                        .fetch_add(1, Ordering::Relaxed);
                    let nothing_back = conn.bytes_read() == read_before;
                    if err.is_parse() || err.is_parse_status() {
                        return Err(GatewayError::InvalidResponse {
                            worker: backend.name.clone(),
                            source: err,
                        });
                    }
                    if nothing_back && can_retry {
                        let v = retry::verdict(Failure::EmptyResponse, replayable, self.retry_on);
                        // `replay` is kept exactly when this can say Retry.
                        if v == Verdict::Retry && replay.is_some() {
                            tracing::warn!(worker = %backend.name, error = %err, "http worker dropped an idempotent request; retrying");
                            self.note_retry(&lease, &mut tried, &mut attempt);
                            continue;
                        }
                        tracing::debug!(worker = %backend.name, why = %v, "http request dropped by its worker is not replayed");
                    }
                    return Err(GatewayError::ConnectionLost {
                        worker: backend.name.clone(),
                        source: err,
                    });
                }
            };
            let latency = started.elapsed();
            backend.stats.requests.fetch_add(1, Ordering::Relaxed);
            backend
                .stats
                .latency_us_total
                .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
            backend.stats.record_status(resp.status().as_u16());
            let set_cookie = match (&self.sticky, sticky_to.as_deref()) {
                (Some(c), to) if to != Some(backend.name.as_str()) => {
                    headers::sticky_set_cookie(c, &backend.name)
                }
                _ => None,
            };
            let resp = self.respond(resp, conn, lease, client_upgrade, set_cookie, guard);
            return Ok(if http2 {
                body::paced_by_client(resp, self.timeouts.client)
            } else {
                resp
            });
        }
    }

    fn note_retry(&self, lease: &Lease, tried: &mut Vec<usize>, attempt: &mut u32) {
        lease.backend.stats.retries.fetch_add(1, Ordering::Relaxed);
        tried.push(lease.idx);
        *attempt += 1;
    }

    /// A pooled connection for replayable requests (`true`), a fresh one
    /// otherwise (`false`).
    async fn conn_for(
        &self,
        lease: &Lease,
        may_reuse: bool,
        now: Instant,
    ) -> Result<(Conn, bool), pool::ConnectError> {
        if may_reuse {
            if let Some(c) = lease
                .backend
                .pool(self.shard)
                .take(now, self.timeouts.connect)
                .await
            {
                return Ok((c, true));
            }
        }
        let c = pool::connect(&lease.backend.address, self.timeouts.connect).await?;
        Ok((c, false))
    }

    fn respond(
        &self,
        mut resp: Response<Incoming>,
        conn: Conn,
        lease: Lease,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        set_cookie: Option<http::HeaderValue>,
        guard: InFlight,
    ) -> Response<RespBody> {
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switching {
            if let Some(client_up) = client_upgrade {
                let worker_up = hyper::upgrade::on(&mut resp);
                let (mut parts, _) = resp.into_parts();
                headers::prepare_response(&mut parts, true, set_cookie);
                drop(conn);
                guard.into_tunnel();
                tokio::spawn(tunnel(client_up, worker_up, lease));
                return Response::from_parts(parts, full(bytes::Bytes::new()));
            }
        }
        let (mut parts, body) = resp.into_parts();
        headers::prepare_response(&mut parts, false, set_cookie);
        let reuse = !switching;
        let body = UpstreamBody::new(
            body,
            reuse.then_some(conn),
            lease,
            self.timeouts.server,
            self.shard,
            guard,
        );
        Response::from_parts(parts, RespBody::Upstream(body))
    }
}

/// `err` came from an `E` (our request body's own errors, which hyper
/// wraps): the body went over `max_body_size`, or past its deadline.
fn caused_by<E: std::error::Error + 'static>(err: &hyper::Error) -> bool {
    let mut src = err.source();
    while let Some(s) = src {
        if s.is::<E>() {
            return true;
        }
        src = s.source();
    }
    false
}

/// Relays bytes both ways after a `101 Switching Protocols` (WebSocket).
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    worker: hyper::upgrade::OnUpgrade,
    lease: Lease,
) {
    let name = lease.backend.name.clone();
    match tokio::try_join!(client, worker) {
        Ok((c, w)) => {
            let mut c = TokioIo::new(c);
            let mut w = TokioIo::new(w);
            match tokio::io::copy_bidirectional(&mut c, &mut w).await {
                Ok((up, down)) => {
                    tracing::debug!(worker = %name, up, down, "upgraded connection closed")
                }
                Err(e) => tracing::debug!(worker = %name, error = %e, "upgraded connection ended"),
            }
        }
        Err(e) => tracing::warn!(worker = %name, error = %e, "upgrade failed"),
    }
    drop(lease);
}
