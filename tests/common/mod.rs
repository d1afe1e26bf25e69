//! The one harness every integration test uses (`mod common;`): a real
//! two-node MariaDB cluster (cn1, cn2) in GTID master-master replication,
//! started once per test binary by [`cluster()`].
//!
//! - Nodes run the settings of `scripts/cluster.cnf` and the accounts of
//!   `scripts/cluster-init.sql`, the same files `scripts/cluster.sh` uses, and
//!   replicate both ways as `scripts/cluster-replicate.sql` says.
//! - No fixed ports: the OS hands out free loopback ports. Data lives under
//!   `target/test-cluster/<pid>-<n>/` and goes away with the test process.
//! - Each test takes its own database: [`Cluster::fresh_db`].
//! - Faults are scoped: `let _down = cluster.take_down(1);` brings cn2 back,
//!   replicating, when the guard drops. Tests that change the cluster hold
//!   [`Cluster::exclusive`]; tests that need it intact hold [`Cluster::shared`].
//! - Everything here is blocking `std` code and may be called from sync or
//!   async tests; it never depends on a test's tokio runtime.
//!
//! The cluster starts in a few seconds (two `mariadb-install-db` and two
//! servers in parallel); `cargo test -- --nocapture` prints the time.

// Each test binary uses a different part of the fixture.
#![allow(dead_code)]

pub mod certs;
pub mod daemon;
pub mod etcd;
mod gtid;
pub mod instance;
pub mod ledger;
pub mod netns;
mod node;
pub mod notify;
pub mod partition;
pub mod php;
mod proxy;
pub mod raw;
pub mod relay;
pub mod replies;
pub mod writers;
#[allow(unused_imports)] // test binaries without a proxy
pub use proxy::Proxy;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

pub use gtid::GtidPos;
pub use node::Node;
use node::POLL;

/// How long replication may take to catch up (or a slave thread to connect)
/// before a wait panics. Generous because the box is small and shared.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Name of the CA that signed the nodes' certificates: `<dir>/nodes-ca.pem`,
/// `<dir>/nodes-cn1.pem` and `.key` (see `common::certs`).
pub const NODE_CA: &str = "nodes";

/// MariaDB's limit on a database name.
const MAX_DB_NAME: usize = 64;

/// How a node replicates from its peer; `@PEER_PORT@` is the peer's port.
const REPLICATE_SQL: &str = include_str!("../../scripts/cluster-replicate.sql");

/// The application account the nodes have (see `scripts/cluster-init.sql`).
pub const APP_USER: &str = "prestashop";
pub const APP_PASSWORD: &str = "prestashop";
/// The account sqlproxy's health checks use.
pub const MONITOR_USER: &str = "sqlproxy_monitor";
pub const MONITOR_PASSWORD: &str = "monitor";

/// Everything that can go wrong while driving the cluster.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{node} did not start on port {port}: {reason}\n--- end of its error log ---\n{log}")]
    NodeStart {
        node: &'static str,
        port: u16,
        reason: String,
        port_in_use: bool,
        log: String,
    },
    #[error("gave up waiting for {what}: {detail}")]
    Timeout { what: String, detail: String },
    #[error("replication broken on {node}: {detail}")]
    Replication { node: &'static str, detail: String },
    #[error("{0}")]
    Usage(String),
}

impl HarnessError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
        let what = what.into();
        move |source| HarnessError::Io { what, source }
    }
}

/// The cluster of this test binary, started by the first caller. If it cannot
/// start, every test that asks for it panics with the same reason.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(|| Cluster::start().map_err(|e| e.to_string())) {
        Ok(cluster) => cluster,
        Err(e) => panic!("the test cluster did not start: {e}"),
    }
}

/// The cluster of a fault-test binary: each node in its own network
/// namespace behind a link the test can cut ([`Cluster::network`]), and the
/// nodes fencing themselves when no proxy checks them, as in production.
pub fn isolated_cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    let started = CLUSTER.get_or_init(|| {
        let network = netns::Network::create(2).map_err(|e| e.to_string())?;
        Cluster::start_on(Some(network)).map_err(|e| e.to_string())
    });
    match started {
        Ok(cluster) => cluster,
        Err(e) => panic!("the isolated test cluster did not start: {e}"),
    }
}

/// Two MariaDB nodes replicating both ways; `nodes[0]` is cn1, `nodes[1]` cn2.
pub struct Cluster {
    pub nodes: [Node; 2],
    /// The nodes' private network, for an isolated cluster.
    pub network: Option<netns::Network>,
    /// `target/test-cluster/<pid>-<n>`.
    pub dir: PathBuf,
    /// How long [`Cluster::start`] took.
    pub started_in: Duration,
    next_db: AtomicUsize,
    lock: tokio::sync::RwLock<()>,
}

impl Cluster {
    /// Installs and starts both nodes in parallel, creates the accounts,
    /// starts replication both ways and waits until both slave threads run.
    fn start() -> Result<Cluster, HarnessError> {
        Cluster::start_on(None)
    }

    /// [`Cluster::start`], on `network` when given (each node in its place).
    fn start_on(network: Option<netns::Network>) -> Result<Cluster, HarnessError> {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let began = Instant::now();
        let root = clusters_root();
        remove_stale(&root);
        let dir = root.join(format!(
            "{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let (p1, p2) = match &network {
            Some(n) => (n.places.first(), n.places.get(1)),
            None => (None, None),
        };
        // Every node offers TLS (clients that do not ask keep cleartext):
        // cn1's certificate names 127.0.0.1 and localhost, cn2's names only
        // `cn2.invalid`, so `verify-full` fails on cn2 and `verify-ca` passes.
        std::fs::create_dir_all(&dir)
            .map_err(HarnessError::io(format!("create {}", dir.display())))?;
        let ca = certs::TestCa::new(&dir, NODE_CA);
        ca.server("cn1");
        ca.server_named("cn2", "cn2.invalid");
        let (cn1, cn2) = thread::scope(|s| {
            let cn1 = s.spawn(|| Node::boot("cn1", 1, &dir, p1));
            let cn2 = s.spawn(|| Node::boot("cn2", 2, &dir, p2));
            (joined(cn1.join()), joined(cn2.join()))
        });
        let nodes = [cn1?, cn2?];
        for (i, node) in nodes.iter().enumerate() {
            let peer = &nodes[1 - i];
            let sql = REPLICATE_SQL
                .replace("@PEER_HOST@", &peer.host)
                .replace("@PEER_PORT@", &peer.port.to_string());
            node.sql(&sql)?;
        }
        let self_fencing = network.is_some();
        let mut cluster = Cluster {
            nodes,
            network,
            dir,
            started_in: Duration::ZERO,
            next_db: AtomicUsize::new(0),
            lock: tokio::sync::RwLock::new(()),
        };
        cluster.wait_slaves_running()?;
        // Nodes start fenced (scripts/cluster.cnf); cn1 is the master the
        // tests write to directly, as a proxy would leave it. They also fence
        // themselves when no proxy checks them (scripts/cluster-init.sql),
        // which tests that write to cn1 with no proxy running cannot have:
        // only the fault suite keeps it (Cluster::self_fencing).
        if !self_fencing {
            for node in &cluster.nodes {
                node.sql("ALTER EVENT sqlproxy.self_fence DISABLE")?;
            }
        }
        cluster.nodes[0].sql("SET GLOBAL read_only = OFF")?;
        cluster.started_in = began.elapsed();
        eprintln!(
            "test cluster up in {:.1?}: cn1 {}:{}, cn2 {}:{}, files in {}",
            cluster.started_in,
            cluster.nodes[0].host,
            cluster.nodes[0].port,
            cluster.nodes[1].host,
            cluster.nodes[1].port,
            cluster.dir.display()
        );
        Ok(cluster)
    }

    /// Creates `t_<test>_<pid>_<n>` (at most 64 characters of `[a-z0-9_]`) on
    /// cn1 and waits until it has replicated to cn2. Each test uses its own.
    pub fn fresh_db(&self, test: &str) -> String {
        let suffix = format!(
            "_{}_{}",
            std::process::id(),
            self.next_db.fetch_add(1, Ordering::Relaxed)
        );
        let room = MAX_DB_NAME - "t_".len() - suffix.len();
        let test: String = test
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(room)
            .collect();
        let name = format!("t_{test}{suffix}");
        let create = format!("CREATE DATABASE `{name}`");
        if let Err(e) = self.nodes[0].sql(&create) {
            panic!("fresh_db({name}): {e}");
        }
        let exists = format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}'"
        );
        let replicated = self.wait_for(&format!("database {name} on cn2"), || {
            Ok(self.nodes[1].value(&exists)? == "1")
        });
        if let Err(e) = replicated {
            panic!("fresh_db({name}): {e}");
        }
        name
    }

    /// Waits until everything either node had committed when this was called
    /// has been applied on both: each node's `gtid_current_pos` reaches the
    /// union of both. When nothing else writes, that is "both positions
    /// equal". Panics with both positions and slave states if it takes too long.
    pub fn wait_replicated(&self) {
        if let Err(e) = self.try_wait_replicated() {
            panic!("wait_replicated: {e}");
        }
    }

    /// SIGKILLs node `node` (0 = cn1, 1 = cn2); the guard restarts it on the
    /// same port and data and waits until replication runs again.
    #[must_use = "the node comes back when the guard drops; keep it in a `let _down`"]
    pub fn take_down(&self, node: usize) -> NodeDown<'_> {
        self.kill(node);
        NodeDown {
            cluster: self,
            node,
        }
    }

    /// SIGKILLs node `node`. Prefer [`Cluster::take_down`], which cannot forget the restart.
    pub fn kill(&self, node: usize) {
        if let Err(e) = self.nodes[node].kill() {
            panic!("kill({node}): {e}");
        }
    }

    /// Restarts a killed node and waits until it answers and, when its peer
    /// is up, both slave threads run and both nodes have caught up.
    pub fn restart(&self, node: usize) {
        if let Err(e) = self.try_restart(node) {
            panic!("restart({node}): {e}");
        }
    }

    /// `mysql://prestashop:prestashop@127.0.0.1:<port>[/db]`, straight to a node.
    pub fn direct_url(&self, node: usize, db: Option<&str>) -> String {
        let base = format!(
            "mysql://{APP_USER}:{APP_PASSWORD}@{}:{}",
            self.nodes[node].host, self.nodes[node].port
        );
        match db {
            Some(db) => format!("{base}/{db}"),
            None => base,
        }
    }

    /// A sqlproxy configuration for this cluster: listener on port 0, cn1
    /// (priority 1) and cn2 (priority 2) with weight 1, the application user,
    /// and a fast monitor (200ms, rise 2, fall 2) so failover tests are quick.
    /// `SQLPROXY_TEST_MULTIPLEX_IDLE` (e.g. "0s") sets `pool.multiplex_idle`
    /// for a run of the suite in which connections change hands after every
    /// command.
    pub fn config_toml(&self) -> String {
        let [cn1, cn2] = &self.nodes;
        let pool = match std::env::var("SQLPROXY_TEST_MULTIPLEX_IDLE") {
            Ok(idle) => format!("\n[pool]\nmultiplex_idle = \"{idle}\"\n"),
            Err(_) => String::new(),
        };
        format!(
            r#"[mysql]
listen = "127.0.0.1:0"

[nodes.cn1]
address = "{h1}:{p1}"
weight = 1
priority = 1

[nodes.cn2]
address = "{h2}:{p2}"
weight = 1
priority = 2

[users.{APP_USER}]
password = "{APP_PASSWORD}"

[monitor]
user = "{MONITOR_USER}"
password = "{MONITOR_PASSWORD}"
interval = "200ms"
rise = 2
fall = 2
{pool}"#,
            h1 = cn1.host,
            p1 = cn1.port,
            h2 = cn2.host,
            p2 = cn2.port,
        )
    }

    /// [`Cluster::config_toml`] parsed and validated by sqlproxy's own loader.
    pub fn config(&self) -> sqlproxy::config::Config {
        match sqlproxy::config::Config::from_toml_str(&self.config_toml(), []) {
            Ok(config) => config,
            Err(e) => panic!("the fixture's config_toml does not load: {e}"),
        }
    }

    /// The CA certificate that signed the nodes' TLS certificates.
    pub fn node_ca(&self) -> PathBuf {
        self.dir.join(format!("{NODE_CA}-ca.pem"))
    }

    /// For tests that need the cluster intact: many may hold it at once.
    pub async fn shared(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.lock.read().await
    }

    /// For tests that change the cluster (stop a node, `SET GLOBAL`, switch
    /// the master): no other `shared`/`exclusive` holder runs meanwhile.
    pub async fn exclusive(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.lock.write().await
    }

    /// `gtid_current_pos` of a node.
    pub fn gtid_pos(&self, node: usize) -> GtidPos {
        match self.nodes[node].value("SELECT @@GLOBAL.gtid_current_pos") {
            Ok(pos) => GtidPos::parse(&pos),
            Err(e) => panic!("gtid_pos({node}): {e}"),
        }
    }

    fn try_restart(&self, node: usize) -> Result<(), HarnessError> {
        self.nodes[node].start(true)?;
        if self.nodes.iter().all(Node::is_running) {
            self.wait_slaves_running()?;
            self.try_wait_replicated()?;
        }
        Ok(())
    }

    pub fn try_wait_replicated(&self) -> Result<(), HarnessError> {
        for node in &self.nodes {
            if !node.is_running() {
                return Err(HarnessError::Usage(format!("{} is down", node.name)));
            }
        }
        let read = |i: usize| -> Result<GtidPos, HarnessError> {
            Ok(GtidPos::parse(
                &self.nodes[i].value("SELECT @@GLOBAL.gtid_current_pos")?,
            ))
        };
        let target = read(0)?.union(&read(1)?);
        let caught_up = self.wait_for("both nodes to apply every committed transaction", || {
            self.check_slaves()?;
            Ok(read(0)?.covers(&target) && read(1)?.covers(&target))
        });
        caught_up.map_err(|e| match e {
            HarnessError::Timeout { what, detail } => HarnessError::Timeout {
                what,
                detail: format!(
                    "{detail}; target {target}, cn1 at {}, cn2 at {}; {}",
                    read(0)
                        .map(|p| p.to_string())
                        .unwrap_or_else(|e| e.to_string()),
                    read(1)
                        .map(|p| p.to_string())
                        .unwrap_or_else(|e| e.to_string()),
                    self.slave_summary()
                ),
            },
            other => other,
        })
    }

    /// Until both nodes' IO and SQL slave threads say `Yes`.
    fn wait_slaves_running(&self) -> Result<(), HarnessError> {
        let running = self.wait_for("both slave threads on both nodes", || {
            self.check_slaves()?;
            let mut all = true;
            for node in &self.nodes {
                let status = node.row("SHOW SLAVE STATUS")?;
                all &= status.get("Slave_IO_Running").is_some_and(|v| v == "Yes")
                    && status.get("Slave_SQL_Running").is_some_and(|v| v == "Yes");
            }
            Ok(all)
        });
        running.map_err(|e| match e {
            HarnessError::Timeout { what, detail } => HarnessError::Timeout {
                what,
                detail: format!("{detail}; {}", self.slave_summary()),
            },
            other => other,
        })
    }

    /// Fails at once when a node's SQL thread stopped on an error: that never
    /// heals by waiting (typically a test wrote conflicting rows on both nodes).
    fn check_slaves(&self) -> Result<(), HarnessError> {
        for node in &self.nodes {
            let status = node.row("SHOW SLAVE STATUS")?;
            let errno = status
                .get("Last_SQL_Errno")
                .map(String::as_str)
                .unwrap_or("0");
            if errno != "0" {
                return Err(HarnessError::Replication {
                    node: node.name,
                    detail: format!(
                        "SQL thread error {errno}: {}",
                        status
                            .get("Last_SQL_Error")
                            .map(String::as_str)
                            .unwrap_or("")
                    ),
                });
            }
        }
        Ok(())
    }

    /// One line per node: IO/SQL thread state and last errors, for panics.
    fn slave_summary(&self) -> String {
        let mut out = Vec::new();
        for node in &self.nodes {
            let line = match node.row("SHOW SLAVE STATUS") {
                Ok(s) => {
                    let get = |k: &str| s.get(k).map(String::as_str).unwrap_or("?").to_string();
                    format!(
                        "{}: io={} sql={} io_error='{}' sql_error='{}'",
                        node.name,
                        get("Slave_IO_Running"),
                        get("Slave_SQL_Running"),
                        get("Last_IO_Error"),
                        get("Last_SQL_Error")
                    )
                }
                Err(e) => format!("{}: {e}", node.name),
            };
            out.push(line);
        }
        out.join("; ")
    }

    /// Polls `done` until it says true, for at most [`REPLICATION_TIMEOUT`].
    fn wait_for(
        &self,
        what: &str,
        mut done: impl FnMut() -> Result<bool, HarnessError>,
    ) -> Result<(), HarnessError> {
        let deadline = Instant::now() + REPLICATION_TIMEOUT;
        let mut last = String::new();
        loop {
            match done() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e @ HarnessError::Replication { .. }) => return Err(e),
                Err(e) => last = e.to_string(),
            }
            if Instant::now() > deadline {
                return Err(HarnessError::Timeout {
                    what: what.to_string(),
                    detail: format!("not done after {REPLICATION_TIMEOUT:?} {last}"),
                });
            }
            thread::sleep(POLL);
        }
    }
}

/// A node taken down by [`Cluster::take_down`]; dropping it restarts the node.
pub struct NodeDown<'a> {
    cluster: &'a Cluster,
    node: usize,
}

impl Drop for NodeDown<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.cluster.try_restart(self.node) {
            // A second panic while unwinding would abort and hide the first.
            if thread::panicking() {
                eprintln!("NodeDown: could not bring node {} back: {e}", self.node);
            } else {
                panic!("NodeDown: could not bring node {} back: {e}", self.node);
            }
        }
    }
}

/// `SELECT @@server_id` on a connection: which node answered.
pub async fn server_id(conn: &mut mysql_async::Conn) -> u32 {
    use mysql_async::prelude::Queryable;
    match conn.query_first::<u32, _>("SELECT @@server_id").await {
        Ok(Some(id)) => id,
        Ok(None) => panic!("SELECT @@server_id returned no row"),
        Err(e) => panic!("SELECT @@server_id: {e}"),
    }
}

/// Connects with mysql_async, panicking with the URL on failure.
pub async fn connect(url: &str) -> mysql_async::Conn {
    match mysql_async::Conn::from_url(url).await {
        Ok(conn) => conn,
        Err(e) => panic!("connect {url}: {e}"),
    }
}

/// `<target>/test-cluster`: next to cargo's own scratch dir, in whatever target dir is in use.
fn clusters_root() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("test-cluster")
}

/// Removes cluster directories of test processes that are gone (killed too
/// hard for their wrappers to clean up). Never touches a live process's.
fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            // Best effort: a directory we cannot remove only costs disk.
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                eprintln!("could not remove stale {}: {e}", entry.path().display());
            }
        }
    }
}

fn joined<T>(r: thread::Result<Result<T, HarnessError>>) -> Result<T, HarnessError> {
    r.unwrap_or_else(|_| Err(HarnessError::Usage("a node start thread panicked".into())))
}
