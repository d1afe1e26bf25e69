//! Fixtures for the HTTP balancer tests: [`Balancer`] runs an `HttpService`
//! on port 0 and stops it when dropped; [`Worker`] is a misbehaving test
//! worker; small clients (pooled hyper, raw TCP) and a bounded wait loop.

#![allow(dead_code)]

pub mod php;
pub mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use figment::providers::{Format, Toml};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use sqlproxy::config::HttpConfig;
use sqlproxy::http::HttpService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

#[allow(unused_imports)]
pub use worker::{Mode, Worker};

pub const STATS_AUTH: &str = "admin:s3cret";

/// TOML for a balancer over `workers` (name, weight): `top` holds top-level
/// keys, `sections` any tables (`[timeouts]`, `[health]`, ...).
pub fn config(top: &str, sections: &str, workers: &[(&Worker, u32)]) -> HttpConfig {
    let mut t = format!("listen = \"127.0.0.1:0\"\n{top}\n{sections}\n");
    if !sections.contains("[health]") {
        // Long interval: tests that need checks set their own.
        t.push_str("[health]\ninterval = \"1h\"\n");
    }
    if !sections.contains("[stats]") {
        t.push_str("[stats]\nlisten = \"127.0.0.1:0\"\nuser = \"admin\"\npassword = \"s3cret\"\n");
    }
    for (w, weight) in workers {
        t.push_str(&format!(
            "[[backends]]\nname = \"{}\"\naddress = \"{}\"\nweight = {weight}\n",
            w.name, w.addr
        ));
    }
    figment::Figment::from(Toml::string(&t))
        .extract::<HttpConfig>()
        .unwrap_or_else(|e| panic!("bad test config: {e}\n{t}"))
}

/// A running balancer; dropping it cancels it.
pub struct Balancer {
    pub addr: SocketAddr,
    pub stats: Option<SocketAddr>,
    pub token: CancellationToken,
    pub done: Option<tokio::task::JoinHandle<()>>,
}

impl Balancer {
    pub async fn start(cfg: HttpConfig) -> Balancer {
        let svc = HttpService::bind(cfg).await.expect("bind");
        let addr = svc.local_addr();
        let stats = svc.stats_addr();
        let token = CancellationToken::new();
        let t = token.clone();
        let done = tokio::spawn(async move { svc.run(t).await.expect("run") });
        Balancer {
            addr,
            stats,
            token,
            done: Some(done),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn stats_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.stats.expect("stats listener"))
    }

    /// The stats JSON document.
    pub async fn stats_json(&self) -> serde_json::Value {
        let r = send(
            &client(),
            Method::GET,
            &self.stats_url("/stats.json"),
            Some(STATS_AUTH),
            "",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).expect("stats json")
    }

    /// One worker's row from the stats JSON.
    pub async fn backend(&self, name: &str) -> serde_json::Value {
        let doc = self.stats_json().await;
        doc["backends"]
            .as_array()
            .and_then(|a| a.iter().find(|b| b["name"] == name).cloned())
            .expect("backend row")
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

/// A pooled keep-alive client, like a browser.
pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn worker(&self) -> &str {
        self.headers
            .get("x-worker")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub async fn send(
    c: &TestClient,
    method: Method,
    url: &str,
    auth: Option<&str>,
    body: &str,
) -> Resp {
    let mut b = Request::builder().method(method).uri(url);
    if let Some(a) = auth {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(a);
        b = b.header("authorization", format!("Basic {token}"));
    }
    let req = b.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let resp = c.request(req).await.expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub async fn get(c: &TestClient, url: &str) -> Resp {
    send(c, Method::GET, url, None, "").await
}

/// Writes `bytes` on a fresh connection and reads until the peer closes.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls `cond` every 50 ms, up to 20 s; panics with `what` if it never holds.
pub async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..400 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Sends `n` GETs for `/` and counts which worker answered each.
pub async fn count_workers(c: &TestClient, b: &Balancer, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let r = get(c, &b.url("/")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        *seen.entry(r.worker().to_string()).or_insert(0) += 1;
    }
    seen
}
