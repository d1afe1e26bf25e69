//! The live client sessions, for admin `SHOW SESSIONS` and the in-use
//! connection counts of `SHOW POOLS` / `SHOW BACKENDS`. A session registers
//! once after login and holds a [`SessionHandle`]; dropping the handle
//! unregisters it, so no exit path can leave a ghost. Per command the session
//! updates its own entry under its own (uncontended) lock; only the admin
//! reads across entries. A `KILL <session id>` finds its target here: the
//! node threads it holds and the signal that ends it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::backend::{HeldThreads, ThreadOwners};
use crate::protocol::command::Command;
use crate::tls::TlsInfo;

/// Statement text kept per session for `SHOW SESSIONS` (as `SHOW PROCESSLIST`
/// cuts `Info`): enough to recognise a statement, bounded per session.
const MAX_INFO: usize = 200;

/// What a session is doing, as `SHOW SESSIONS` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub id: u32,
    pub user: String,
    pub peer: String,
    pub schema: Option<String>,
    /// Command name (`query`, `stmt_execute`…) or `sleep` between commands.
    pub command: &'static str,
    /// The statement text (cut), while a query runs.
    pub info: Option<String>,
    /// Seconds in the current command (or idle).
    pub time_s: u64,
    /// Node ids the session holds a connection to.
    pub nodes: Vec<usize>,
    pub connected: SystemTime,
    /// TLS version and cipher; None for a cleartext client.
    pub tls: Option<TlsInfo>,
}

#[derive(Debug)]
struct Activity {
    user: String,
    schema: Option<String>,
    command: &'static str,
    info: String,
    since: Instant,
    /// Bit n set: the session holds a connection to node n (first 64 nodes).
    nodes: u64,
}

#[derive(Debug)]
struct Entry {
    id: u32,
    peer: String,
    connected: SystemTime,
    tls: Option<TlsInfo>,
    activity: Mutex<Activity>,
    /// The node threads the session holds.
    threads: Arc<HeldThreads>,
    /// Cancelled by `KILL [CONNECTION] <id>`: the session ends.
    killed: CancellationToken,
}

/// What a KILL needs of the session it names.
#[derive(Debug, Clone)]
pub struct KillTarget {
    pub user: String,
    pub threads: Arc<HeldThreads>,
    /// Cancel to end the session.
    pub killed: CancellationToken,
}

/// Every live client session.
#[derive(Debug, Default)]
pub struct SessionRegistry {
    live: Mutex<HashMap<u32, Arc<Entry>>>,
    total: AtomicU64,
}

/// A session's entry; unregisters when dropped.
#[derive(Debug)]
pub struct SessionHandle {
    entry: Arc<Entry>,
    registry: Arc<SessionRegistry>,
}

impl SessionRegistry {
    /// Adds a logged-in session.
    pub fn register(
        self: &Arc<Self>,
        id: u32,
        user: &str,
        peer: Option<SocketAddr>,
        schema: Option<&[u8]>,
        threads: Arc<HeldThreads>,
        tls: Option<TlsInfo>,
    ) -> SessionHandle {
        let entry = Arc::new(Entry {
            id,
            tls,
            peer: peer.map(|p| p.to_string()).unwrap_or_default(),
            connected: SystemTime::now(),
            threads,
            killed: CancellationToken::new(),
            activity: Mutex::new(Activity {
                user: user.to_string(),
                schema: schema.map(|s| String::from_utf8_lossy(s).into_owned()),
                command: "sleep",
                info: String::new(),
                since: Instant::now(),
                nodes: 0,
            }),
        });
        self.total.fetch_add(1, Relaxed);
        self.lock().insert(id, Arc::clone(&entry));
        SessionHandle {
            entry,
            registry: Arc::clone(self),
        }
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions that ever logged in.
    pub fn total(&self) -> u64 {
        self.total.load(Relaxed)
    }

    /// Every live session, by id.
    pub fn list(&self) -> Vec<SessionView> {
        let entries: Vec<Arc<Entry>> = self.lock().values().cloned().collect();
        let mut out: Vec<SessionView> = entries.iter().map(|e| e.view()).collect();
        out.sort_by_key(|v| v.id);
        out
    }

    /// The live session `id`, for a KILL naming it.
    pub fn kill_target(&self, id: u32) -> Option<KillTarget> {
        let entry = self.lock().get(&id).cloned()?;
        let user = entry.lock().user.clone();
        Some(KillTarget {
            user,
            threads: Arc::clone(&entry.threads),
            killed: entry.killed.clone(),
        })
    }

    /// Which session holds each node thread now (for a process list).
    pub fn thread_owners(&self) -> ThreadOwners {
        let entries: Vec<Arc<Entry>> = self.lock().values().cloned().collect();
        entries
            .iter()
            .flat_map(|e| e.threads.held().into_iter().map(move |t| (t, e.id)))
            .collect()
    }

    /// Connections sessions hold to each node (index = node id), `nodes` long.
    pub fn in_use(&self, nodes: usize) -> Vec<usize> {
        let mut counts = vec![0; nodes];
        let entries: Vec<Arc<Entry>> = self.lock().values().cloned().collect();
        for e in entries {
            let held = e.lock().nodes;
            for (i, c) in counts.iter_mut().enumerate().take(64) {
                if held & (1 << i) != 0 {
                    *c += 1;
                }
            }
        }
        counts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<Entry>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Entry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn view(&self) -> SessionView {
        let a = self.lock();
        SessionView {
            id: self.id,
            user: a.user.clone(),
            peer: self.peer.clone(),
            schema: a.schema.clone(),
            command: a.command,
            info: (!a.info.is_empty()).then(|| a.info.clone()),
            time_s: a.since.elapsed().as_secs(),
            nodes: (0..64).filter(|i| a.nodes & (1u64 << i) != 0).collect(),
            connected: self.connected,
            tls: self.tls.clone(),
        }
    }
}

impl SessionHandle {
    /// The session's id: its connection id, as the client sees it.
    pub fn id(&self) -> u32 {
        self.entry.id
    }

    /// Cancelled once a KILL ended this session.
    pub fn killed(&self) -> &CancellationToken {
        &self.entry.killed
    }

    /// A command starts: its name and, for text statements, the text (cut).
    pub fn begin(&self, cmd: &Command<'_>) {
        let mut a = self.entry.lock();
        a.command = cmd.name();
        a.since = Instant::now();
        a.info.clear();
        if let Command::Query(sql) | Command::StmtPrepare(sql) = cmd {
            let sql = &sql[..sql.len().min(MAX_INFO)];
            a.info.push_str(&crate::router::redact::redact_secrets(sql));
        }
    }

    /// The command ended: the session's schema and the nodes it holds
    /// connections to (`held[n]` for node n).
    pub fn end(&self, schema: Option<&[u8]>, held: impl Iterator<Item = bool>) {
        let nodes = node_mask(held);
        let mut a = self.entry.lock();
        a.command = "sleep";
        a.since = Instant::now();
        a.info.clear();
        a.nodes = nodes;
        if a.schema.as_deref().map(str::as_bytes) != schema {
            a.schema = schema.map(|s| String::from_utf8_lossy(s).into_owned());
        }
    }

    /// The session gave back node connections while idle.
    pub fn set_held(&self, held: impl Iterator<Item = bool>) {
        self.entry.lock().nodes = node_mask(held);
    }

    /// COM_CHANGE_USER succeeded.
    pub fn set_user(&self, user: &str) {
        self.entry.lock().user = user.to_string();
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.entry.id);
    }
}

/// Which nodes a session holds a connection to, as a bit mask.
fn node_mask(held: impl Iterator<Item = bool>) -> u64 {
    held.take(64)
        .enumerate()
        .fold(0u64, |m, (i, h)| if h { m | (1 << i) } else { m })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_update_and_drop() {
        let r = Arc::new(SessionRegistry::default());
        let a = r.register(
            7,
            "shop",
            "127.0.0.1:5000".parse().ok(),
            Some(b"db1"),
            Arc::default(),
            None,
        );
        let b = r.register(9, "other", None, None, Arc::default(), None);
        assert_eq!((r.len(), r.total()), (2, 2));
        a.begin(&Command::Query(b"SELECT 1"));
        let v = r.list();
        assert_eq!(v[0].id, 7);
        assert_eq!(v[0].command, "query");
        assert_eq!(v[0].info.as_deref(), Some("SELECT 1"));
        assert_eq!(v[0].schema.as_deref(), Some("db1"));
        assert_eq!(v[0].peer, "127.0.0.1:5000");
        a.end(Some(b"db2"), [false, true, true].into_iter());
        b.end(None, [false, true].into_iter());
        let v = r.list();
        assert_eq!(v[0].command, "sleep");
        assert_eq!(v[0].info, None);
        assert_eq!(v[0].schema.as_deref(), Some("db2"));
        assert_eq!(v[0].nodes, vec![1, 2]);
        assert_eq!(r.in_use(3), vec![0, 2, 1]);
        let target = r.kill_target(7).map(|t| t.user);
        assert_eq!(target.as_deref(), Some("shop"));
        assert!(r.kill_target(8).is_none());
        drop(a);
        assert!(r.kill_target(7).is_none());
        assert_eq!((r.len(), r.total()), (1, 2));
        assert_eq!(r.list()[0].id, 9);
        drop(b);
        assert!(r.is_empty());
    }

    #[test]
    fn long_statements_are_cut() {
        let r = Arc::new(SessionRegistry::default());
        let h = r.register(1, "u", None, None, Arc::default(), None);
        let sql = "x".repeat(5000);
        h.begin(&Command::Query(sql.as_bytes()));
        assert_eq!(r.list()[0].info.as_ref().map(String::len), Some(MAX_INFO));
    }
}
