//! Write load through several sqlproxy instances at once, with a ledger of
//! what the clients were told. One writer thread per instance inserts
//! `(writer, seq, @@server_id)` rows in autocommit mode through that
//! instance, on a connection it keeps (and opens again after an error). It
//! records every acknowledged insert, and counts every error by MySQL error
//! code and by phase: an acknowledgement in the phase its insert started
//! in, an error in the phase it came in.
//!
//! A scenario names its phases (`before`, `fault`, `healed`, `after`…) as it
//! goes, then says which writer may have seen errors in which phase
//! ([`Ledger::assert_errors_only`]) and reads the table straight from the
//! final writer node to find every acknowledged row there
//! ([`Ledger::assert_on`]). A writer is named after its instance; an instance
//! started again gets a new writer (`p1`, then `p1b`), because it listens
//! on a new port.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::daemon::PATIENCE;
use super::{Cluster, APP_PASSWORD, APP_USER};

/// A client's own bound on one connect or insert. A write the proxy cannot
/// place waits `failover.hold` (5 s by default) and then fails; one sent on
/// a connection whose packets are being dropped would otherwise wait for
/// the proxy's `read_timeout` (an hour). Counted as `timeout`.
const CLIENT_BOUND: Duration = Duration::from_secs(12);

/// Pause after an error, so a refused connection does not spin.
const BACKOFF: Duration = Duration::from_millis(50);

/// Pause between inserts: a steady trickle from each instance is what the
/// scenarios need, and the box (two cores) also runs the nodes, etcd and
/// the instances.
const PACE: Duration = Duration::from_millis(10);

/// One insert's fate, as the client saw it.
#[derive(Default)]
struct Books {
    /// (writer, seq) of every acknowledged insert.
    acked: Vec<(String, u64)>,
    /// (writer, phase) → acknowledged inserts started in that phase.
    acks: BTreeMap<(String, String), u64>,
    /// (writer, phase, error code) → count.
    errors: BTreeMap<(String, String, String), u64>,
    /// (writer, phase, error code) → the first such error's text.
    messages: BTreeMap<(String, String, String), String>,
}

struct Shared {
    db: String,
    phases: Mutex<Vec<String>>,
    phase: AtomicUsize,
    books: Mutex<Books>,
}

impl Shared {
    fn phase_name(&self, i: usize) -> String {
        self.phases
            .lock()
            .map(|p| p.get(i).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    fn acked(&self, writer: &str, seq: u64, phase: usize) {
        let phase = self.phase_name(phase);
        if let Ok(mut b) = self.books.lock() {
            b.acked.push((writer.to_string(), seq));
            *b.acks.entry((writer.to_string(), phase)).or_default() += 1;
        }
    }

    fn failed(&self, writer: &str, phase: usize, (code, message): (String, String)) {
        let key = (writer.to_string(), self.phase_name(phase), code);
        if let Ok(mut b) = self.books.lock() {
            b.messages.entry(key.clone()).or_insert(message);
            *b.errors.entry(key).or_default() += 1;
        }
    }

    /// Errors of `writer` so far, for a message.
    fn errors_of(&self, writer: &str) -> Vec<String> {
        self.books
            .lock()
            .map(|b| {
                b.messages
                    .iter()
                    .filter(|((w, _, _), _)| w == writer)
                    .map(|((_, p, code), m)| format!("{p}: {code} {m}"))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn acks_in(&self, writer: &str, phase: &str) -> u64 {
        self.books
            .lock()
            .ok()
            .and_then(|b| b.acks.get(&(writer.into(), phase.into())).copied())
            .unwrap_or(0)
    }
}

struct Writer {
    name: String,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

/// The running load. Stops its writers when dropped.
pub struct Load {
    shared: Arc<Shared>,
    writers: Vec<Writer>,
}

/// What the clients were told, once the load stopped.
pub struct Ledger {
    db: String,
    phases: Vec<String>,
    books: Books,
}

/// Creates `<db>.ledger` on cn1 (root is not bound by read_only) and waits
/// until both nodes have it.
pub fn create_table(c: &Cluster, db: &str) {
    let create = format!(
        "CREATE TABLE `{db}`.ledger (writer VARCHAR(32), seq BIGINT, node INT, \
         PRIMARY KEY (writer, seq))"
    );
    if let Err(e) = c.nodes[0].sql(&create) {
        panic!("create the ledger table: {e}");
    }
    c.wait_replicated();
}

impl Load {
    /// No writers yet; the first phase is `start`.
    pub fn new(db: &str) -> Load {
        Load {
            shared: Arc::new(Shared {
                db: db.to_string(),
                phases: Mutex::new(vec!["start".to_string()]),
                phase: AtomicUsize::new(0),
                books: Mutex::default(),
            }),
            writers: Vec::new(),
        }
    }

    /// Starts writer `name` through the proxy at `addr`.
    pub fn add(&mut self, name: &str, addr: SocketAddr) {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop, name) = (
                Arc::clone(&self.shared),
                Arc::clone(&stop),
                name.to_string(),
            );
            let url = url(addr, &shared.db);
            thread::spawn(move || write_until(&shared, &name, &url, &stop))
        };
        self.writers.push(Writer {
            name: name.to_string(),
            stop,
            thread: Some(thread),
        });
    }

    /// Stops writer `name` (its instance is gone for good).
    pub fn stop(&mut self, name: &str) {
        for w in self.writers.iter_mut().filter(|w| w.name == name) {
            w.halt();
        }
    }

    /// Attempts started from now on count in phase `name`.
    pub fn phase(&self, name: &str) {
        if let Ok(mut phases) = self.shared.phases.lock() {
            phases.push(name.to_string());
            self.shared.phase.store(phases.len() - 1, SeqCst);
        }
    }

    /// Starts phase `name`, then waits until every running writer has had an
    /// insert acknowledged that it started in this phase: each of them is
    /// writing again (or still).
    pub fn phase_with_acks(&self, name: &str) {
        self.phase(name);
        self.wait_all_acked();
    }

    /// Until every running writer has had an insert acknowledged that it
    /// started in the current phase.
    pub fn wait_all_acked(&self) {
        for w in self.writers.iter().filter(|w| w.thread.is_some()) {
            self.wait_acked(&w.name);
        }
    }

    /// Until writer `name` has an insert acknowledged in the current phase.
    pub fn wait_acked(&self, name: &str) {
        let phase = self.shared.phase_name(self.shared.phase.load(SeqCst));
        let deadline = Instant::now() + PATIENCE;
        while self.shared.acks_in(name, &phase) == 0 {
            assert!(
                Instant::now() < deadline,
                "gave up waiting for an acknowledged write by {name} in {phase}; its errors: {:?}",
                self.shared.errors_of(name)
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops every writer; what they were told.
    pub fn finish(mut self) -> Ledger {
        for w in &mut self.writers {
            w.halt();
        }
        let books = self
            .shared
            .books
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default();
        let phases = self
            .shared
            .phases
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default();
        Ledger {
            db: self.shared.db.clone(),
            phases,
            books,
        }
    }
}

impl Writer {
    fn halt(&mut self) {
        self.stop.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            if let Err(panic) = t.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for w in &mut self.writers {
            w.stop.store(true, SeqCst);
        }
    }
}

/// The proxy at `addr` as the application user. mysql_async would otherwise
/// ask the server for its unix socket and go there directly, past the
/// proxy (`prefer_socket`).
fn url(addr: SocketAddr, db: &str) -> String {
    format!(
        "mysql://{APP_USER}:{APP_PASSWORD}@{}:{}/{db}?prefer_socket=false",
        addr.ip(),
        addr.port()
    )
}

/// One writer's loop, on its own single-threaded runtime.
fn write_until(shared: &Shared, name: &str, url: &str, stop: &AtomicBool) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("a runtime for writer {name}: {e}"),
    };
    rt.block_on(async {
        let mut conn: Option<Conn> = None;
        let mut seq = 0u64;
        while !stop.load(SeqCst) {
            seq += 1;
            let phase = shared.phase.load(SeqCst);
            let sql = format!(
                "INSERT INTO ledger (writer, seq, node) VALUES ('{name}', {seq}, @@server_id)"
            );
            match insert(&mut conn, url, &sql).await {
                Ok(()) => {
                    shared.acked(name, seq, phase);
                    tokio::time::sleep(PACE).await;
                }
                // An error counts in the phase it came in: a write in flight
                // when a fault starts fails in the fault's phase.
                Err(code) => {
                    shared.failed(name, shared.phase.load(SeqCst), code);
                    conn = None;
                    tokio::time::sleep(BACKOFF).await;
                }
            }
        }
    });
}

/// Connects if needed and runs one insert; the error's code and text on failure.
async fn insert(conn: &mut Option<Conn>, url: &str, sql: &str) -> Result<(), (String, String)> {
    if conn.is_none() {
        let connect = tokio::time::timeout(CLIENT_BOUND, Conn::from_url(url)).await;
        *conn = Some(connect.map_err(|_| timed_out())?.map_err(|e| code(&e))?);
    }
    let Some(c) = conn.as_mut() else {
        return Err(("none".into(), "no connection".into()));
    };
    let run = tokio::time::timeout(CLIENT_BOUND, c.query_drop(sql)).await;
    run.map_err(|_| timed_out())?.map_err(|e| code(&e))
}

/// A MySQL error by its code (anything else by its kind), and its text.
fn code(e: &mysql_async::Error) -> (String, String) {
    let code = match e {
        mysql_async::Error::Server(s) => s.code.to_string(),
        mysql_async::Error::Io(_) => "io".into(),
        mysql_async::Error::Driver(_) => "driver".into(),
        _ => "other".into(),
    };
    (code, e.to_string())
}

fn timed_out() -> (String, String) {
    (
        "timeout".into(),
        format!("no answer within {CLIENT_BOUND:?}"),
    )
}

impl Ledger {
    /// Acknowledged inserts in all.
    pub fn acked(&self) -> usize {
        self.books.acked.len()
    }

    /// Acknowledged inserts by `writer` started in `phase`.
    pub fn acks(&self, writer: &str, phase: &str) -> u64 {
        self.books
            .acks
            .get(&(writer.into(), phase.into()))
            .copied()
            .unwrap_or(0)
    }

    /// Prints, per phase and writer, acknowledged inserts and errors by code.
    pub fn print(&self, scenario: &str) {
        eprintln!(
            "ledger {scenario}: {} acknowledged inserts",
            self.books.acked.len()
        );
        let mut writers: Vec<&String> = self.books.acked.iter().map(|(w, _)| w).collect();
        writers.extend(self.books.errors.keys().map(|(w, _, _)| w));
        writers.sort();
        writers.dedup();
        for phase in &self.phases {
            let mut line = format!("  {phase}:");
            for w in &writers {
                let errors: Vec<String> = self
                    .books
                    .errors
                    .iter()
                    .filter(|((ew, ep, _), _)| ew == *w && ep == phase)
                    .map(|((_, _, code), n)| format!("{code}×{n}"))
                    .collect();
                let errors = if errors.is_empty() {
                    "0 errors".to_string()
                } else {
                    format!("errors {}", errors.join(" "))
                };
                line.push_str(&format!(" {w} {} acked, {errors};", self.acks(w, phase)));
            }
            eprintln!("{line}");
        }
        for ((w, p, code), m) in &self.books.messages {
            eprintln!("  first {code} of {w} in {p}: {m}");
        }
    }

    /// Panics if a writer saw an error that `allowed` does not list as
    /// (writer, phase, code); `"*"` stands for any writer, phase or code.
    pub fn assert_errors_only(&self, allowed: &[(&str, &str, &str)]) {
        let unexpected: Vec<String> = self
            .books
            .errors
            .iter()
            .filter(|((w, p, code), _)| {
                !allowed.iter().any(|(aw, ap, ac)| {
                    (*aw == "*" || aw == w) && (*ap == "*" || ap == p) && (*ac == "*" || ac == code)
                })
            })
            .map(|((w, p, code), n)| format!("{w} in {p}: {code}×{n}"))
            .collect();
        assert!(unexpected.is_empty(), "unexpected errors: {unexpected:?}");
    }

    /// Panics unless every acknowledged insert is in the ledger table of
    /// node `node`, read directly; returns how many acknowledged inserts
    /// ran on each server_id.
    pub fn assert_on(&self, c: &Cluster, node: usize) -> BTreeMap<u32, usize> {
        let sql = format!("SELECT writer, seq, node FROM `{}`.ledger", self.db);
        let text = match c.nodes[node].sql(&sql) {
            Ok(t) => t,
            Err(e) => panic!("read the ledger on {}: {e}", c.nodes[node].name),
        };
        let mut rows: BTreeMap<(String, u64), u32> = BTreeMap::new();
        for line in text.lines() {
            let mut cols = line.split('\t');
            let (Some(w), Some(seq), Some(id)) = (cols.next(), cols.next(), cols.next()) else {
                panic!("a ledger row with fewer than three columns: {line:?}");
            };
            let (Ok(seq), Ok(id)) = (seq.parse(), id.parse()) else {
                panic!("a ledger row that does not parse: {line:?}");
            };
            rows.insert((w.to_string(), seq), id);
        }
        let mut lost = Vec::new();
        let mut by_node: BTreeMap<u32, usize> = BTreeMap::new();
        let mut seen = HashSet::new();
        for key in &self.books.acked {
            if !seen.insert(key) {
                continue;
            }
            match rows.get(key) {
                Some(id) => *by_node.entry(*id).or_default() += 1,
                None => lost.push(format!("{}#{}", key.0, key.1)),
            }
        }
        assert!(
            lost.is_empty(),
            "{} acknowledged inserts missing on {}: {lost:?}",
            lost.len(),
            c.nodes[node].name
        );
        by_node
    }
}

/// One statement through the proxy at `addr` as the application user, on a
/// new connection, bounded by [`CLIENT_BOUND`]: `Err("timeout")` when it
/// neither succeeded nor failed by then.
pub fn write_once(addr: SocketAddr, db: &str, sql: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("a runtime: {e}"))?;
    let url = url(addr, db);
    rt.block_on(async {
        let mut conn = None;
        insert(&mut conn, &url, sql).await
    })
    .map_err(|(code, message)| format!("{code}: {message}"))
}
