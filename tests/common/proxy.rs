//! A sqlproxy under test: `Proxy::start(cluster().config())` runs the real
//! server on its own thread with its own multi-thread tokio runtime (the
//! fixture must not depend on the calling test's runtime, which may be a
//! current-thread one that is blocked in a sync call), bound to a free port.
//! Dropping the `Proxy` cancels the server and joins the thread.
//!
//! Written against `sqlproxy::server::Server::{bind, mysql_addr, run}`;
//! `mod.rs` compiles it only once that API exists.

use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::thread;

use sqlproxy::config::Config;
use sqlproxy::context::ProxyContext;
use sqlproxy::server::Server;
use tokio_util::sync::CancellationToken;

use super::{APP_PASSWORD, APP_USER};

/// Worker threads of the proxy's runtime: two cores on the CI box.
const WORKER_THREADS: usize = 2;

/// What the server thread reports once its listeners are bound.
struct Bound {
    addr: SocketAddr,
    context: Arc<ProxyContext>,
    http_addr: Option<SocketAddr>,
    http_redirect_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    /// The MySQL listener's address (127.0.0.1 and a port the OS chose).
    pub addr: SocketAddr,
    /// The running proxy's shared state (topology snapshot, pools), to
    /// observe what it decided.
    pub context: Arc<ProxyContext>,
    /// The HTTP balancer's address, when the config has `[http]`.
    pub http_addr: Option<SocketAddr>,
    /// The balancer's redirect-to-HTTPS listener (`[http.tls] redirect_from`).
    pub http_redirect_addr: Option<SocketAddr>,
    /// The admin SQL port, when the config enables `[admin]`.
    pub admin_addr: Option<SocketAddr>,
    /// The Prometheus endpoint, when the config enables `[metrics]`.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    thread: Option<thread::JoinHandle<Result<(), String>>>,
}

impl Proxy {
    /// Binds and starts a proxy for `config` and returns once it accepts
    /// connections. Panics with the server's error if it cannot bind.
    pub fn start(config: Config) -> Proxy {
        // SQLPROXY_TEST_LOG=debug shows the proxy's own log in test output.
        if let Ok(filter) = std::env::var("SQLPROXY_TEST_LOG") {
            // Only the first proxy of a test binary installs it.
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let (bound_tx, bound_rx) = mpsc::channel::<Result<Bound, String>>();
        let spawned = thread::Builder::new()
            .name("sqlproxy-under-test".into())
            .spawn(move || -> Result<(), String> {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(WORKER_THREADS)
                    .thread_name("sqlproxy-test-rt")
                    .enable_all()
                    .build()
                    .map_err(|e| format!("build the proxy runtime: {e}"));
                let runtime = match runtime {
                    Ok(rt) => rt,
                    Err(e) => {
                        // The receiver reports it; nothing else to do with a send error.
                        bound_tx.send(Err(e.clone())).ok();
                        return Err(e);
                    }
                };
                runtime.block_on(async move {
                    let server = match Server::bind(config).await {
                        Ok(server) => server,
                        Err(e) => {
                            let e = format!("Server::bind: {e}");
                            bound_tx.send(Err(e.clone())).ok();
                            return Err(e);
                        }
                    };
                    bound_tx
                        .send(Ok(Bound {
                            addr: server.mysql_addr(),
                            context: server.context(),
                            http_addr: server.http_addr(),
                            http_redirect_addr: server.http_redirect_addr(),
                            admin_addr: server.admin_addr(),
                            metrics_addr: server.metrics_addr(),
                        }))
                        .ok();
                    server
                        .run(token)
                        .await
                        .map_err(|e| format!("Server::run: {e}"))
                })
            });
        let thread = match spawned {
            Ok(thread) => thread,
            Err(e) => panic!("spawn the proxy thread: {e}"),
        };
        let bound = match bound_rx.recv() {
            Ok(Ok(bound)) => bound,
            Ok(Err(e)) => panic!("the proxy did not start: {e}"),
            Err(_) => match thread.join() {
                Ok(Err(e)) => panic!("the proxy did not start: {e}"),
                _ => panic!("the proxy thread ended before binding"),
            },
        };
        Proxy {
            addr: bound.addr,
            context: bound.context,
            http_addr: bound.http_addr,
            http_redirect_addr: bound.http_redirect_addr,
            admin_addr: bound.admin_addr,
            metrics_addr: bound.metrics_addr,
            shutdown,
            thread: Some(thread),
        }
    }

    /// `mysql://prestashop:prestashop@<proxy addr>[/db]?prefer_socket=false`.
    ///
    /// mysql_async reads `@@socket` after connecting and, when the server looks
    /// local, reconnects through that unix socket: straight to a node, past
    /// the proxy. `prefer_socket=false` keeps every test on the proxy.
    pub fn url(&self, db: Option<&str>) -> String {
        let base = format!("mysql://{APP_USER}:{APP_PASSWORD}@{}", self.addr);
        match db {
            Some(db) => format!("{base}/{db}?prefer_socket=false"),
            None => format!("{base}?prefer_socket=false"),
        }
    }
}

impl Drop for Proxy {
    /// Cancels the server and waits for its thread; a server that failed
    /// while running fails the test (unless the test is already failing).
    fn drop(&mut self) {
        self.shutdown.cancel();
        let Some(thread) = self.thread.take() else {
            return;
        };
        let outcome = match thread.join() {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(_) => "the proxy thread panicked".to_string(),
        };
        if thread::panicking() {
            eprintln!("proxy on {}: {outcome}", self.addr);
        } else {
            panic!("proxy on {}: {outcome}", self.addr);
        }
    }
}
