//! The `[http]` section: listener, workers, balancing, health checks,
//! timeouts, limits, stats page and sticky cookie, in HAProxy's words
//! (`balance`, `weight`, `maxconn`, `retries`, `inter`/`rise`/`fall`,
//! `timeout connect|server|client|http-request|queue`). Defaults are named
//! constants with the reason for their value; [`HttpConfig::validate`] checks
//! what serde cannot and names the key in every error.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The seed's HAProxy ran `maxconn 20000` on the HTTP front.
pub const DEFAULT_MAXCONN: usize = 20_000;
/// The seed's `retries 3`.
pub const DEFAULT_RETRIES: u32 = 3;
/// HAProxy's default `retry-on conn-failure`: only a request no worker saw
/// is moved on. One that reached a worker may have been acted on (a
/// PrestaShop GET can have side effects), so replaying it is opt-in.
pub const DEFAULT_RETRY_ON: &[RetryOn] = &[RetryOn::ConnFailure];
/// Requests allowed to wait for a worker slot when every worker is at its
/// `maxconn`; beyond this the balancer answers 503 at once.
pub const DEFAULT_MAX_QUEUE: usize = 1024;
/// Request line + headers. PrestaShop's cookies stay far below this; a
/// larger header is almost always an attack, and gets 431.
pub const DEFAULT_MAX_HEADER_SIZE: usize = 32 * 1024;
/// PrestaShop's back office uploads product images and module zips.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 64 * 1024 * 1024;
/// Idle keep-alive connections kept per worker.
pub const DEFAULT_POOL_MAX_IDLE: usize = 256;
/// The seed's `timeout connect 5s`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The seed's `timeout server 60s`: a PHP page slower than this is a 504.
pub const DEFAULT_SERVER_TIMEOUT: Duration = Duration::from_secs(60);
/// The seed's `timeout client 60s`: a client connection idle this long (no
/// request in flight, no byte moved) is closed, and so is one whose client
/// has not made room for a waiting write this long (it stopped reading).
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// HAProxy's `timeout http-request`: the whole header must arrive within
/// this, which cuts slowloris clients.
pub const DEFAULT_REQUEST_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole request body, from the end of its header. The server timeout
/// restarts at every body chunk, so without this a client dripping a byte
/// every few seconds holds a connection and a worker slot for ever (HAProxy
/// bounds it with `timeout http-request` and `option http-buffer-request`).
/// 60 s is PHP's default `max_input_time` too; raise it if large uploads
/// come over slow links (64 MiB in 60 s needs about 9 Mbit/s).
pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// HAProxy's `timeout queue`: how long a request waits for a worker slot.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle upstream connections older than this are not reused: PHP-FPM/Apache
/// close keep-alive after 5 s by default, so reuse only younger ones.
pub const DEFAULT_UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// The seed's `check inter 2s rise 3 fall 2`.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_RISE: u32 = 3;
pub const DEFAULT_FALL: u32 = 2;
pub const DEFAULT_CHECK_PATH: &str = "/";
pub const DEFAULT_CHECK_METHOD: &str = "GET";
pub const DEFAULT_CHECK_STATUS: u16 = 200;
/// HAProxy's `stats uri /stats`.
pub const DEFAULT_STATS_URI: &str = "/stats";
/// HAProxy's `cookie SERVERID insert`.
pub const DEFAULT_STICKY_COOKIE: &str = "SERVERID";
/// HAProxy's default server weight.
pub const DEFAULT_WEIGHT: u32 = 1;
/// `threads = 0`: one event loop per CPU, as HAProxy's `nbthread` defaults to.
pub const AUTO_THREADS: usize = 0;
/// More event loops than this only adds idle threads and split pools.
pub const MAX_THREADS: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid value for `{key}`: {reason}")]
pub struct HttpConfigError {
    pub key: String,
    pub reason: String,
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> HttpConfigError {
    HttpConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// `[http]` section of the config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Client-facing address (port 0 picks a free one).
    pub listen: SocketAddr,
    #[serde(default)]
    pub balance: Balance,
    /// Extra attempts on another worker; see `docs/http.md` for when a
    /// request may be retried at all.
    #[serde(default = "d::retries")]
    pub retries: u32,
    /// Which failures those attempts are spent on (HAProxy's `retry-on`).
    #[serde(default = "d::retry_on")]
    pub retry_on: Vec<RetryOn>,
    /// Client connections served at once; further ones wait in the kernel backlog.
    #[serde(default = "d::maxconn")]
    pub maxconn: usize,
    /// Requests waiting for a worker slot (per-worker `maxconn`); more → 503.
    #[serde(default = "d::max_queue")]
    pub max_queue: usize,
    /// Largest request line + headers in bytes; larger → 431.
    #[serde(default = "d::max_header_size")]
    pub max_header_size: usize,
    /// Largest request body in bytes; larger → 413.
    #[serde(default = "d::max_body_size")]
    pub max_body_size: u64,
    /// Idle keep-alive connections kept per worker.
    #[serde(default = "d::pool_max_idle")]
    pub pool_max_idle: usize,
    /// Keep `X-Forwarded-Proto`/`-Host` a client sends (only behind a
    /// trusted TLS terminator); otherwise they are overwritten.
    #[serde(default)]
    pub trust_forwarded: bool,
    /// Clients (CIDRs, or single addresses) whose `X-Forwarded-For`,
    /// `-Proto` and `-Host` are kept (a TLS terminator or CDN in front).
    /// Any other client's `X-Forwarded-For` is replaced by its own address,
    /// so it cannot choose the IP the shop reads first.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Event loops (threads) serving clients, HAProxy's `nbthread`; each
    /// has its own listener socket and its own keep-alive pools.
    /// 0 = one per CPU.
    #[serde(default = "d::threads")]
    pub threads: usize,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// `[http.tls]`: HTTPS on `listen` (cleartext when absent).
    #[serde(default)]
    pub tls: Option<super::HttpTls>,
    #[serde(default)]
    pub health: HealthCheck,
    #[serde(default)]
    pub stats: Option<StatsConfig>,
    /// Sticky sessions by inserted cookie (HAProxy `cookie SERVERID insert`).
    #[serde(default)]
    pub sticky: Option<StickyConfig>,
    pub backends: Vec<BackendConfig>,
}

/// HAProxy's `balance`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Balance {
    /// Weighted round-robin (the seed's `balance roundrobin`).
    #[default]
    Roundrobin,
    /// Fewest requests in flight relative to weight.
    Leastconn,
    /// Power of two random choices: the less loaded of two random workers.
    Random2,
}

/// HAProxy's `retry-on` keywords: the failures a request may be moved to
/// another worker after (`src/http/retry.rs` has the whole rule).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    /// The connect failed, or the request was handed back unsent: no
    /// worker saw it. Any method, POST included.
    ConnFailure,
    /// The request was sent and the worker's connection closed without one
    /// response byte. Only for body-less GET, HEAD, OPTIONS, TRACE, PUT and
    /// DELETE; never for a POST.
    EmptyResponse,
}

/// One worker (`server wa1 10.0.0.1:80 weight 1 maxconn 100 check`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// Share of requests; 0 takes the worker out of rotation.
    #[serde(default = "d::weight")]
    pub weight: u32,
    /// Requests in flight to this worker at once; 0 = unlimited.
    #[serde(default)]
    pub maxconn: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default = "d::connect", with = "humantime_serde")]
    pub connect: Duration,
    /// Wait for the response head, and for each body chunk after it.
    #[serde(default = "d::server", with = "humantime_serde")]
    pub server: Duration,
    /// Client connection idle with nothing in flight, or a write waiting
    /// for the client to read.
    #[serde(default = "d::client", with = "humantime_serde")]
    pub client: Duration,
    /// Whole request header (HTTP/1), which cuts slowloris clients.
    #[serde(default = "d::request_header", with = "humantime_serde")]
    pub request_header: Duration,
    /// Whole request body, from the end of its header → 408 (or a cut
    /// connection once the response has started).
    #[serde(default = "d::request_body", with = "humantime_serde")]
    pub request_body: Duration,
    #[serde(default = "d::queue", with = "humantime_serde")]
    pub queue: Duration,
    /// Idle upstream connections older than this are closed, not reused.
    #[serde(default = "d::upstream_idle", with = "humantime_serde")]
    pub upstream_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: d::connect(),
            server: d::server(),
            client: d::client(),
            request_header: d::request_header(),
            request_body: d::request_body(),
            queue: d::queue(),
            upstream_idle: d::upstream_idle(),
        }
    }
}

/// HAProxy's `option httpchk` + `http-check expect status` + `inter/rise/fall`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default = "d::check_method")]
    pub method: String,
    #[serde(default = "d::check_path")]
    pub path: String,
    /// `Host` header of the check; defaults to the worker's address.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "d::check_status")]
    pub expect_status: u16,
    #[serde(default = "d::check_interval", with = "humantime_serde")]
    pub interval: Duration,
    #[serde(default = "d::check_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "d::rise")]
    pub rise: u32,
    #[serde(default = "d::fall")]
    pub fall: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            method: d::check_method(),
            path: d::check_path(),
            host: None,
            expect_status: d::check_status(),
            interval: d::check_interval(),
            timeout: d::check_timeout(),
            rise: d::rise(),
            fall: d::fall(),
        }
    }
}

/// HAProxy's `stats uri` + `stats auth user:password`.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    /// Own listener for the stats page, `/metrics` and control; absent =
    /// the stats URI is answered on the balancer's listener (as the seed did).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    #[serde(default = "d::stats_uri")]
    pub uri: String,
    /// Serve `listen` over HTTPS with `[http.tls]`'s certificates (the
    /// balancer's own listener follows `[http.tls]` anyway).
    #[serde(default)]
    pub tls: bool,
    pub user: String,
    pub password: super::Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StickyConfig {
    #[serde(default = "d::sticky_cookie")]
    pub cookie: String,
}

impl HttpConfig {
    /// The number of event loops to run: `threads`, or one per CPU.
    pub fn event_loops(&self) -> usize {
        if self.threads == AUTO_THREADS {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        }
    }

    /// Checks what serde cannot; the error names the key.
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        if self.threads > MAX_THREADS {
            return Err(invalid(
                "http.threads",
                format!("at most {MAX_THREADS} (0 = one per CPU)"),
            ));
        }
        if self.backends.is_empty() {
            return Err(invalid("http.backends", "at least one backend is required"));
        }
        if self.maxconn == 0 {
            return Err(invalid("http.maxconn", "must be at least 1"));
        }
        for (i, c) in self.trusted_proxies.iter().enumerate() {
            Cidr::parse(c)
                .map_err(|reason| invalid(format!("http.trusted_proxies[{i}]"), reason))?;
        }
        if self.max_header_size < MIN_HEADER_SIZE {
            return Err(invalid(
                "http.max_header_size",
                format!("must be at least {MIN_HEADER_SIZE}"),
            ));
        }
        if self.backends.iter().all(|b| b.weight == 0) {
            return Err(invalid("http.backends", "at least one weight must be > 0"));
        }
        for (i, b) in self.backends.iter().enumerate() {
            let key = format!("http.backends[{i}]");
            if b.name.is_empty() || !b.name.bytes().all(is_token_byte) {
                return Err(invalid(
                    format!("{key}.name"),
                    "must be non-empty letters, digits, '-', '_' or '.'",
                ));
            }
            if self.backends[..i].iter().any(|o| o.name == b.name) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("duplicate `{}`", b.name),
                ));
            }
            let port_ok = b
                .address
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !port_ok {
                return Err(invalid(format!("{key}.address"), "expected host:port"));
            }
        }
        let h = &self.health;
        if h.rise == 0 || h.fall == 0 {
            return Err(invalid("http.health.rise/fall", "must be at least 1"));
        }
        if h.interval.is_zero() || h.timeout.is_zero() {
            return Err(invalid("http.health.interval/timeout", "must be > 0"));
        }
        if http::Method::from_bytes(h.method.as_bytes()).is_err() {
            return Err(invalid("http.health.method", "not an HTTP method"));
        }
        if !h.path.starts_with('/') {
            return Err(invalid("http.health.path", "must start with '/'"));
        }
        if http::StatusCode::from_u16(h.expect_status).is_err() {
            return Err(invalid("http.health.expect_status", "not an HTTP status"));
        }
        let t = &self.timeouts;
        for (k, v) in [
            ("connect", t.connect),
            ("server", t.server),
            ("client", t.client),
            ("request_header", t.request_header),
            ("request_body", t.request_body),
            ("queue", t.queue),
        ] {
            if v.is_zero() {
                return Err(invalid(format!("http.timeouts.{k}"), "must be > 0"));
            }
        }
        if let Some(s) = &self.stats {
            if !s.uri.starts_with('/') || s.uri.len() < 2 {
                return Err(invalid(
                    "http.stats.uri",
                    "must start with '/' and name a path",
                ));
            }
            if s.tls && (s.listen.is_none() || self.tls.is_none()) {
                return Err(invalid(
                    "http.stats.tls",
                    "needs http.stats.listen and [http.tls] (whose certificates it serves)",
                ));
            }
            if s.user.is_empty() || s.user.contains(':') {
                return Err(invalid("http.stats.user", "must be non-empty without ':'"));
            }
        }
        if let Some(from) = self.tls.as_ref().and_then(|t| t.redirect_from) {
            if from == self.listen && from.port() != 0 {
                return Err(invalid(
                    "http.tls.redirect_from",
                    "must differ from http.listen",
                ));
            }
        }
        if let Some(st) = &self.sticky {
            if st.cookie.is_empty() || !st.cookie.bytes().all(is_token_byte) {
                return Err(invalid("http.sticky.cookie", "must be a cookie name token"));
            }
        }
        Ok(())
    }
}

/// hyper's smallest allowed read buffer; the header limit cannot go lower.
pub const MIN_HEADER_SIZE: usize = 8192;

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// serde default functions, each returning its named constant.
mod d {
    use super::*;
    pub fn retries() -> u32 {
        DEFAULT_RETRIES
    }
    pub fn retry_on() -> Vec<RetryOn> {
        DEFAULT_RETRY_ON.to_vec()
    }
    pub fn maxconn() -> usize {
        DEFAULT_MAXCONN
    }
    pub fn max_queue() -> usize {
        DEFAULT_MAX_QUEUE
    }
    pub fn max_header_size() -> usize {
        DEFAULT_MAX_HEADER_SIZE
    }
    pub fn max_body_size() -> u64 {
        DEFAULT_MAX_BODY_SIZE
    }
    pub fn pool_max_idle() -> usize {
        DEFAULT_POOL_MAX_IDLE
    }
    pub fn threads() -> usize {
        AUTO_THREADS
    }
    pub fn weight() -> u32 {
        DEFAULT_WEIGHT
    }
    pub fn connect() -> Duration {
        DEFAULT_CONNECT_TIMEOUT
    }
    pub fn server() -> Duration {
        DEFAULT_SERVER_TIMEOUT
    }
    pub fn client() -> Duration {
        DEFAULT_CLIENT_TIMEOUT
    }
    pub fn request_header() -> Duration {
        DEFAULT_REQUEST_HEADER_TIMEOUT
    }
    pub fn request_body() -> Duration {
        DEFAULT_REQUEST_BODY_TIMEOUT
    }
    pub fn queue() -> Duration {
        DEFAULT_QUEUE_TIMEOUT
    }
    pub fn upstream_idle() -> Duration {
        DEFAULT_UPSTREAM_IDLE_TIMEOUT
    }
    pub fn check_method() -> String {
        DEFAULT_CHECK_METHOD.into()
    }
    pub fn check_path() -> String {
        DEFAULT_CHECK_PATH.into()
    }
    pub fn check_status() -> u16 {
        DEFAULT_CHECK_STATUS
    }
    pub fn check_interval() -> Duration {
        DEFAULT_CHECK_INTERVAL
    }
    pub fn check_timeout() -> Duration {
        DEFAULT_CHECK_TIMEOUT
    }
    pub fn rise() -> u32 {
        DEFAULT_RISE
    }
    pub fn fall() -> u32 {
        DEFAULT_FALL
    }
    pub fn stats_uri() -> String {
        DEFAULT_STATS_URI.into()
    }
    pub fn sticky_cookie() -> String {
        DEFAULT_STICKY_COOKIE.into()
    }
}

/// Redacted: the password never reaches a log line.
impl std::fmt::Debug for StatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::debug_redacted("StatsConfig", self, f)
    }
}

/// An address block of `http.trusted_proxies`: `10.0.0.0/8`, `::1/128`, or
/// one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an address or a CIDR block"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { net, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
