//! The fault suite: one writer, whatever fails. Each node runs in its own
//! network namespace (tests/common/netns.rs); a proxy with the shipped
//! monitor and failover settings sits in front; four writers and four
//! readers run through it while a fault is injected and healed. Checked from
//! outside the proxy, for every scenario:
//!
//! - every acknowledged write is on the final master (a ledger of acks);
//! - a sampler reading `@@read_only` of both nodes directly (over their unix
//!   sockets) every 100 ms never sees two writable nodes;
//! - no node is left diverged (only unacknowledged work was ever lost);
//! - `CHECKSUM TABLE` is equal on both nodes once healed.
//!
//! Client errors are counted by code, and the time from the fault to the
//! first write acknowledged after it is measured. The table goes to
//! `target/fault-suite.md` (docs/failover.md shows a run's).

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::relay::Relay;
use common::writers::WriterProbe;
use common::{isolated_cluster, Cluster, Proxy, MONITOR_PASSWORD, MONITOR_USER};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

const WRITERS: u64 = 4;
const READERS: u64 = 4;
/// Load before the fault, so the proxy and pools are warm.
const WARM_UP: Duration = Duration::from_secs(2);
/// Load after the fault is healed (or after its effect has passed).
const SETTLE: Duration = Duration::from_secs(6);
/// How long a healed cluster may take to be whole again before a scenario fails.
const HEAL_TIMEOUT: Duration = Duration::from_secs(60);
/// What MariaDB logs when a commit's semi-sync wait times out and the master
/// goes on asynchronously.
const SEMI_SYNC_TIMEOUT: &str = "Timeout waiting for reply of binlog";

/// What a scenario found.
#[derive(Debug, Default)]
struct Report {
    name: String,
    acked: usize,
    lost: usize,
    two_writers: u64,
    samples: u64,
    errors: BTreeMap<String, u64>,
    recovery: Option<Duration>,
    /// Why a node was left diverged (the proxy's own reason), if one was.
    diverged: Option<String>,
    /// The cluster never reached the scenario's starting state: a failure.
    not_ready: bool,
    /// The master committed without a replica's acknowledgement during the
    /// scenario: its semi-sync wait timed out (MariaDB's log says so), or
    /// its Rpl_semi_sync_master_no_tx grew (no semi-sync replica connected).
    semi_sync_lapsed: bool,
    /// Rows the diverged node holds that the master lacks, and how many of
    /// them a client was told were committed (must be none).
    extra_rows: usize,
    extra_acked: usize,
    checksums_equal: bool,
    /// The master at the end is not the one at the fault.
    master_moved: bool,
    note: String,
}

/// The acknowledged writes and the errors the clients saw.
#[derive(Default)]
struct Ledger {
    /// (writer, sequence, sent at, acknowledged at).
    acked: Mutex<Vec<(u64, u64, Instant, Instant)>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Ledger {
    fn error(&self, e: &mysql_async::Error) {
        let kind = match e {
            mysql_async::Error::Server(s) => format!("{}", s.code),
            mysql_async::Error::Io(_) => "io".into(),
            mysql_async::Error::Driver(_) => "driver".into(),
            _ => "other".into(),
        };
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(kind).or_default() += 1;
        }
    }
}

/// The client's connection, opened again if it has none; `None` (after a
/// pause, the error counted) when the proxy refused.
async fn connected<'a>(
    conn: &'a mut Option<Conn>,
    url: &str,
    ledger: &Ledger,
) -> Option<&'a mut Conn> {
    if conn.is_none() {
        match Conn::from_url(url).await {
            Ok(c) => *conn = Some(c),
            Err(e) => {
                ledger.error(&e);
                tokio::time::sleep(Duration::from_millis(50)).await;
                return None;
            }
        }
    }
    conn.as_mut()
}

/// Clients through the proxy until `stop`.
async fn load(url: String, ledger: Arc<Ledger>, stop: Arc<AtomicBool>) {
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (url, ledger, stop) = (url.clone(), Arc::clone(&ledger), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut conn: Option<Conn> = None;
            while !stop.load(Ordering::Relaxed) {
                let Some(c) = connected(&mut conn, &url, &ledger).await else {
                    continue;
                };
                n += 1;
                let sent = Instant::now();
                // Half the writers run with autocommit off, committing each row.
                let explicit = w % 2 == 1;
                let written = if explicit {
                    async {
                        c.query_drop("SET autocommit = 0").await?;
                        c.exec_drop("INSERT INTO ledger (w, n) VALUES (?, ?)", (w, n))
                            .await?;
                        c.query_drop("COMMIT").await
                    }
                    .await
                } else {
                    c.exec_drop("INSERT INTO ledger (w, n) VALUES (?, ?)", (w, n))
                        .await
                };
                match written {
                    Ok(()) => {
                        if let Ok(mut a) = ledger.acked.lock() {
                            a.push((w, n, sent, Instant::now()));
                        }
                    }
                    Err(e) => {
                        ledger.error(&e);
                        // A new connection: whatever transaction was open is gone.
                        conn = None;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    for r in 0..READERS {
        let (url, ledger, stop) = (url.clone(), Arc::clone(&ledger), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut conn: Option<Conn> = None;
            while !stop.load(Ordering::Relaxed) {
                let Some(c) = connected(&mut conn, &url, &ledger).await else {
                    continue;
                };
                let read: Result<Option<u64>, _> = c
                    .exec_first("SELECT COUNT(*) FROM ledger WHERE w = ?", (r % WRITERS,))
                    .await;
                if let Err(e) = read {
                    ledger.error(&e);
                    if !matches!(e, mysql_async::Error::Server(_)) {
                        conn = None;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.ok();
    }
}

/// Samples both nodes' `@@read_only` every 100 ms (`common::writers`).
async fn sampler(
    c: &'static Cluster,
    stop: Arc<AtomicBool>,
    two: Arc<AtomicU64>,
    n: Arc<AtomicU64>,
    unacked: Arc<[AtomicBool; 2]>,
) {
    let mut probe = WriterProbe::new(c);
    // Rpl_semi_sync_master_no_tx per node, as last read.
    let mut no_tx: [Option<u64>; 2] = [None, None];
    while !stop.load(Ordering::Relaxed) {
        let sample = probe.sample().await;
        for (i, reading) in sample.readings.iter().enumerate() {
            let count = reading.and_then(|r| r.unacked_commits);
            if let (Some(before), Some(now)) = (no_tx[i], count) {
                if now > before {
                    unacked[i].store(true, Ordering::Relaxed);
                }
            }
            // A lost connection may mean a restart, which resets the count.
            no_tx[i] = count;
        }
        if sample.complete() {
            n.fetch_add(1, Ordering::Relaxed);
        }
        if sample.two_writers {
            two.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The proxy with the shipped monitor and failover settings (config/ha.toml),
/// reaching node `i` through `relays[i]` when there are relays.
fn proxy(c: &Cluster, relays: &[Arc<Relay>]) -> Proxy {
    let mut config = c.config();
    for (n, relay) in c.nodes.iter().zip(relays) {
        if let Some(node) = config.nodes.get_mut(n.name) {
            node.address = relay.addr.to_string();
        }
    }
    let shipped = sqlproxy::config::MonitorConfig::default();
    config.monitor.interval = shipped.interval;
    config.monitor.timeout = shipped.timeout;
    config.monitor.rise = shipped.rise;
    config.monitor.fall = shipped.fall;
    Proxy::start(config)
}

fn master_of(p: &Proxy) -> Option<usize> {
    p.context.topology.snapshot().master
}

async fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let began = Instant::now();
    while !ok() {
        if began.elapsed() > limit {
            eprintln!("gave up waiting for {what}");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// Both nodes running and replicating both ways (a scenario may have left a
/// node stopped, a link cut, or replication stopped by a failover).
fn make_whole(c: &Cluster) {
    for n in &c.nodes {
        if !n.is_running() {
            n.start(true).ok();
        }
    }
    for n in &c.nodes {
        n.sql("START SLAVE").ok();
    }
}

/// What a fault does once injected; it is healed when the guard drops.
type Heal = Box<dyn FnOnce() + Send>;

/// What a fault acts on besides the cluster and the master's index.
struct Scene<'a> {
    proxy: &'a Proxy,
    /// The proxy's paths to the nodes, by node, when it goes through relays.
    relays: &'a [Arc<Relay>],
}

/// A fault: given the cluster, the master's index and the scene.
type Fault = fn(&'static Cluster, usize, &Scene) -> Heal;

/// How the proxy reaches the nodes in a scenario.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Straight to the nodes' addresses (in their namespaces).
    Direct,
    /// Through a userspace relay per node (`common::relay`): for latency
    /// where the kernel has no `tc netem`. Not for faults that make a node
    /// refuse connections: the relay itself still accepts them.
    Relayed,
}

/// Runs one scenario: load, inject `fault` on the master at T0, keep it for
/// `hold`, heal, let things settle, check.
async fn scenario(name: &str, hold: Duration, fault: Fault) -> Report {
    scenario_on(name, hold, fault, Path::Direct).await
}

async fn scenario_on(name: &str, hold: Duration, fault: Fault, path: Path) -> Report {
    // SQLPROXY_FAULTS=<words> runs only the scenarios whose name holds them.
    if let Ok(only) = std::env::var("SQLPROXY_FAULTS") {
        if !name.contains(only.as_str()) {
            return Report {
                name: name.into(),
                note: "skipped (SQLPROXY_FAULTS)".into(),
                ..Report::default()
            };
        }
    }
    let c = isolated_cluster();
    make_whole(c);
    c.wait_replicated();
    let relays: Vec<Arc<Relay>> = match path {
        Path::Direct => Vec::new(),
        Path::Relayed => c
            .nodes
            .iter()
            .map(|n| {
                let addr = format!("{}:{}", n.host, n.port)
                    .parse()
                    .expect("a node address");
                Arc::new(Relay::start(addr))
            })
            .collect(),
    };
    let p = proxy(c, &relays);
    let mut report = Report {
        name: name.into(),
        ..Report::default()
    };
    // From a protected cluster: both up and the master's commits waiting for
    // the replica's ack again (after the previous scenario's failover the
    // proxy switches semi-sync back on once the replica acknowledges).
    let ready = wait_until("a master with semi-sync on", HEAL_TIMEOUT, || {
        let s = p.context.topology.snapshot();
        s.master
            .is_some_and(|m| s.nodes[m].semisync.master == Some(true))
            && s.nodes
                .iter()
                .all(|n| n.state == sqlproxy::topology::NodeState::Up)
    })
    .await;
    if !ready {
        report.note = "no master with semi-sync on".into();
        report.not_ready = true;
        return report;
    }
    let db = c.fresh_db(&format!("fault_{name}"));
    c.nodes[0]
        .sql(&format!(
            "CREATE TABLE `{db}`.ledger (w INT, n BIGINT, PRIMARY KEY (w, n))"
        ))
        .ok();
    c.wait_replicated();
    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (two, samples) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = tokio::spawn(load(
        p.url(Some(&db)),
        Arc::clone(&ledger),
        Arc::clone(&stop),
    ));
    let unacked = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let sampling = tokio::spawn(sampler(
        c,
        Arc::clone(&stop),
        Arc::clone(&two),
        Arc::clone(&samples),
        Arc::clone(&unacked),
    ));
    tokio::time::sleep(WARM_UP).await;
    let master = master_of(&p).unwrap_or(0);
    let lapses = || -> usize {
        c.nodes
            .iter()
            .map(|n| n.log_lines_with(SEMI_SYNC_TIMEOUT))
            .sum()
    };
    let lapses_before = lapses();
    let heal = fault(
        c,
        master,
        &Scene {
            proxy: &p,
            relays: &relays,
        },
    );
    // From when the fault is in place (cutting a link takes a moment).
    let t0 = Instant::now();
    tokio::time::sleep(hold).await;
    heal();
    tokio::time::sleep(SETTLE).await;
    // Recovered: both nodes up in the proxy's view, the old master back.
    wait_until("both nodes up", HEAL_TIMEOUT, || {
        let s = p.context.topology.snapshot();
        s.master.is_some()
            && s.nodes
                .iter()
                .all(|n| n.state == sqlproxy::topology::NodeState::Up)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await.ok();
    sampling.await.ok();
    let snap = p.context.topology.snapshot();
    report.diverged = snap.nodes.iter().find_map(|n| n.diverged.clone());
    // The master at the fault committed without an ack at some point.
    report.semi_sync_lapsed = lapses() > lapses_before || unacked[master].load(Ordering::Relaxed);
    let final_master = snap.master.unwrap_or(0);
    report.master_moved = snap.master != Some(master);
    drop(p);
    // Every acknowledged write is on the final master.
    let acked = ledger.acked.lock().map(|a| a.clone()).unwrap_or_default();
    report.acked = acked.len();
    let rows_of = |i: usize| -> std::collections::HashSet<(u64, u64)> {
        c.nodes[i]
            .sql(&format!("SELECT w, n FROM `{db}`.ledger"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut it = l.split('\t');
                Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
            })
            .collect()
    };
    let present = rows_of(final_master);
    report.lost = acked
        .iter()
        .filter(|(w, n, _, _)| !present.contains(&(*w, *n)))
        .count();
    if report.diverged.is_some() {
        let acked_set: std::collections::HashSet<(u64, u64)> =
            acked.iter().map(|(w, n, _, _)| (*w, *n)).collect();
        let extra: Vec<(u64, u64)> = rows_of(1 - final_master)
            .difference(&present)
            .copied()
            .collect();
        report.extra_rows = extra.len();
        report.extra_acked = extra.iter().filter(|r| acked_set.contains(r)).count();
    }
    // The first write sent after the fault that was acknowledged.
    report.recovery = acked
        .iter()
        .filter(|(_, _, sent, _)| *sent >= t0)
        .map(|(_, _, _, at)| at.duration_since(t0))
        .min();
    report.two_writers = two.load(Ordering::Relaxed);
    report.samples = samples.load(Ordering::Relaxed);
    report.errors = ledger.errors.lock().map(|e| e.clone()).unwrap_or_default();
    make_whole(c);
    if report.diverged.is_none() && c.try_wait_replicated().is_ok() {
        let sum = |i: usize| {
            c.nodes[i]
                .sql(&format!("CHECKSUM TABLE `{db}`.ledger"))
                .unwrap_or_default()
        };
        report.checksums_equal = sum(0) == sum(1);
    }
    report
}

fn kill_master(c: &'static Cluster, m: usize, _: &Scene) -> Heal {
    c.nodes[m].kill().ok();
    Box::new(move || {
        c.nodes[m].start(true).ok();
    })
}

fn stop_master(c: &'static Cluster, m: usize, _: &Scene) -> Heal {
    c.nodes[m].signal("STOP").ok();
    Box::new(move || {
        c.nodes[m].signal("CONT").ok();
    })
}

fn cut_master(c: &'static Cluster, m: usize, _: &Scene) -> Heal {
    let cut = c.network.as_ref().and_then(|n| n.cut(m).ok());
    Box::new(move || drop(cut))
}

fn lossy_master(c: &'static Cluster, m: usize, _: &Scene) -> Heal {
    let lossy = c.network.as_ref().and_then(|n| n.lossy(m, 30).ok());
    Box::new(move || drop(lossy))
}

fn delay_master(c: &'static Cluster, m: usize, _: &Scene) -> Heal {
    let delay = c.network.as_ref().and_then(|n| n.delay(m, 200).ok());
    Box::new(move || drop(delay))
}

/// 200 ms each way on the proxy's path to the master, by its relay (the
/// replication link between the nodes is not delayed).
fn delay_master_path(_: &'static Cluster, m: usize, scene: &Scene) -> Heal {
    let relay = scene.relays.get(m).cloned();
    if let Some(r) = &relay {
        r.set_delay(Duration::from_millis(200));
    }
    Box::new(move || {
        if let Some(r) = relay {
            r.set_delay(Duration::ZERO);
        }
    })
}

fn refuse_monitor(c: &'static Cluster, m: usize, _: &Scene) -> Heal {
    let node = &c.nodes[m];
    node.sql(&format!(
        "SET sql_log_bin = 0; ALTER USER '{MONITOR_USER}'@'%' IDENTIFIED BY 'rotated'; \
         SELECT GROUP_CONCAT(CONCAT('KILL ', ID) SEPARATOR ';') FROM information_schema.PROCESSLIST \
         WHERE USER = '{MONITOR_USER}' INTO @k; EXECUTE IMMEDIATE IF(@k IS NULL, 'DO 0', @k)"
    ))
    .ok();
    Box::new(move || {
        c.nodes[m]
            .sql(&format!(
                "SET sql_log_bin = 0; ALTER USER '{MONITOR_USER}'@'%' IDENTIFIED BY '{MONITOR_PASSWORD}'"
            ))
            .ok();
    })
}

fn saturate_master(c: &'static Cluster, m: usize, _: &Scene) -> Heal {
    let before = c.nodes[m]
        .value("SELECT @@max_connections")
        .unwrap_or_else(|_| "151".into());
    let open = c.nodes[m]
        .value("SELECT COUNT(*) FROM information_schema.PROCESSLIST")
        .unwrap_or_else(|_| "10".into());
    c.nodes[m]
        .sql(&format!("SET GLOBAL max_connections = {open}"))
        .ok();
    Box::new(move || {
        c.nodes[m]
            .sql(&format!("SET GLOBAL max_connections = {before}"))
            .ok();
    })
}

fn kill_replica(c: &'static Cluster, m: usize, scene: &Scene) -> Heal {
    kill_master(c, 1 - m, scene)
}

/// A planned switchover to the other node while the writers run (half of
/// them with autocommit off).
fn switch_over(c: &'static Cluster, m: usize, scene: &Scene) -> Heal {
    let failover = scene.proxy.context.failover.clone();
    let target = c.nodes[1 - m].name;
    let done = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(failover.switchover(target, false))
    });
    if let Err(e) = done {
        eprintln!("SWITCHOVER TO {target}: {e}");
    }
    Box::new(|| {})
}

fn table(reports: &[Report]) -> String {
    let mut out = String::from(
        "| scenario | acked writes | lost | two-writer samples (of) | recovery s | master moved | client errors by code | diverged (rows beyond the master, acked) | checksums equal |\n\
         |---|---:|---:|---:|---:|---|---|---|---|\n",
    );
    for r in reports {
        let errors: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k}×{v}")).collect();
        let _ = writeln!(
            out,
            "| {}{} | {} | {} | {} ({}) | {} | {} | {} | {} | {} |",
            r.name,
            if r.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.note)
            },
            r.acked,
            r.lost,
            r.two_writers,
            r.samples,
            r.recovery
                .map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64())),
            if r.master_moved { "yes" } else { "no" },
            if errors.is_empty() {
                "none".into()
            } else {
                errors.join(", ")
            },
            if let Some(why) = &r.diverged {
                let lapsed = if r.semi_sync_lapsed {
                    "; unacknowledged commits"
                } else {
                    ""
                };
                format!(
                    "yes ({}, {} acked{lapsed}): {why}",
                    r.extra_rows, r.extra_acked
                )
            } else {
                "no".into()
            },
            if r.checksums_equal { "yes" } else { "no" },
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_whatever_fails() {
    let c = isolated_cluster();
    let _g = c.exclusive().await;
    let s = |secs| Duration::from_secs(secs);
    let mut reports = vec![
        scenario("kill -9 of the master", s(5), kill_master).await,
        scenario("SIGSTOP of the master, 3 s", s(3), stop_master).await,
        scenario("SIGSTOP of the master, 20 s", s(20), stop_master).await,
        scenario("master's link cut, 3 s", s(3), cut_master).await,
        scenario("master's link cut, 20 s", s(20), cut_master).await,
        scenario("30 % packet loss to the master", s(10), lossy_master).await,
        scenario(
            "monitor account refused on the master",
            s(10),
            refuse_monitor,
        )
        .await,
        scenario("master at max_connections", s(10), saturate_master).await,
        scenario("replica killed and restarted", s(5), kill_replica).await,
        scenario(
            "SWITCHOVER under load, autocommit on and off",
            s(2),
            switch_over,
        )
        .await,
    ];
    if c.network.as_ref().is_some_and(|n| n.netem_available()) {
        reports.push(scenario("200 ms delay to the master", s(10), delay_master).await);
    } else {
        reports.push(
            scenario_on(
                "200 ms delay on the proxy's path to the master (relay: no tc netem here)",
                s(10),
                delay_master_path,
                Path::Relayed,
            )
            .await,
        );
    }
    for cycle in 0..10 {
        reports.push(
            scenario(
                &format!("kill/restart cycle {}", cycle + 1),
                s(3),
                kill_master,
            )
            .await,
        );
    }
    let out = table(&reports);
    eprintln!("{out}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/fault-suite.md");
    std::fs::write(path, &out).ok();
    // A master cut off longer than rpl_semi_sync_master_timeout, or seen
    // committing without an acknowledgement before it was killed, comes
    // back with a tail no client was told about; the proxy rewinds it
    // (failover.rewind_unacknowledged), so no scenario may end diverged.
    // Only a master that is gone (killed, or cut off past the fence lease)
    // or an operator's switchover moves the master; anything else that
    // moves it is a false failover.
    let may_move = |r: &Report| {
        [
            "kill -9",
            "master's link cut, 20 s",
            "kill/restart",
            "SWITCHOVER",
        ]
        .iter()
        .any(|p| r.name.starts_with(p))
    };
    let bad: Vec<&Report> = reports
        .iter()
        .filter(|r| {
            r.not_ready
                || r.note.is_empty()
                    && (r.lost > 0
                        || r.two_writers > 0
                        || (r.master_moved && !may_move(r))
                        || r.extra_acked > 0
                        || r.diverged.is_some()
                        || !r.checksums_equal)
        })
        .collect();
    assert!(
        bad.is_empty(),
        "scenarios that broke the guarantees:\n{out}"
    );
}
