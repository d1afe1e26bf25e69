//! One `mariadbd` of a test cluster: its directories, its process and root SQL
//! over its unix socket.
//!
//! The process is owned by a tiny `sh` wrapper (see [`WRAPPER`]) whose stdin
//! is a pipe from the test process. Static destructors never run, so nothing
//! in Rust can stop the node when the test binary exits; the closed pipe does.
//! Writing a line to the pipe is how [`Node::kill`] SIGKILLs the node while
//! keeping its data for a restart. Everything here is blocking `std` code: the
//! fixture is shared by every test and owns nothing tied to one test's runtime.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::HarnessError;

/// The server settings shared with `scripts/cluster.sh`.
const CLUSTER_CNF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster.cnf");

/// The accounts shared with `scripts/cluster.sh`, run on each node before replication.
pub const CLUSTER_INIT_SQL: &str = include_str!("../../scripts/cluster-init.sql");

/// How often a wait polls: short enough to add little to a test, long enough
/// not to load the two shared cores.
pub const POLL: Duration = Duration::from_millis(100);

/// How long a node may take to answer after its process starts. Generous: the
/// box has 2 cores shared by several builds, and a crashed node runs recovery.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Attempts at finding a free port before giving up: another process can take
/// the port between our probe and mariadbd's bind, but not every time.
const PORT_ATTEMPTS: usize = 5;

/// `sun_path` holds 108 bytes; longer socket paths go to the temp dir.
const MAX_SOCKET_PATH: usize = 100;

/// Runs `mariadbd` in the background, prints its pid, then waits on stdin.
/// A line on stdin (take_down) SIGKILLs the node and keeps its files; end of
/// file (the test process is gone) SIGKILLs it and removes its directory. The
/// wrapper ignores INT/HUP/TERM (set after the node is forked, so the node
/// keeps its own handling), so a Ctrl-C on `cargo test` cannot orphan a node.
const WRAPPER: &str = r#"dir=$1; sock=$2; shift 2
"$@" </dev/null >/dev/null 2>&1 &
node=$!
trap '' INT HUP TERM
echo "$node"
if read -r _line; then keep=1; else keep=0; fi
kill -9 "$node" 2>/dev/null
wait "$node"
if [ "$keep" = 0 ]; then rm -rf "$dir" "$sock"; rmdir "${dir%/*}" 2>/dev/null; fi
exit 0
"#;

/// One MariaDB server of the test cluster.
pub struct Node {
    /// `"cn1"` or `"cn2"`, as in the proxy config.
    pub name: &'static str,
    /// The address it listens on: loopback, or its own in a fault test's
    /// network namespace.
    pub host: String,
    /// TCP port; kept across restarts (the peer replicates from it).
    pub port: u16,
    /// The network namespace it runs in (fault tests), if any.
    netns: Option<String>,
    /// `server_id`, also used as `gtid_domain_id`.
    pub server_id: u32,
    pub datadir: PathBuf,
    dir: PathBuf,
    socket: PathBuf,
    process: Mutex<Option<Running>>,
}

/// A started node: the wrapper (which owns mariadbd) and the pipe that keeps it alive.
struct Running {
    wrapper: Child,
    stdin: ChildStdin,
    pid: u32,
}

impl Node {
    /// Creates the data directory, starts the node on a free port and creates
    /// the accounts of `scripts/cluster-init.sql`.
    pub fn boot(
        name: &'static str,
        server_id: u32,
        cluster_dir: &Path,
        place: Option<&super::netns::Place>,
    ) -> Result<Node, HarnessError> {
        let dir = cluster_dir.join(name);
        let datadir = dir.join("data");
        std::fs::create_dir_all(&dir)
            .map_err(HarnessError::io(format!("create {}", dir.display())))?;
        let mut socket = dir.join("sock");
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            let unique = cluster_dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("x");
            socket = std::env::temp_dir().join(format!("sqlproxy-{unique}-{name}.sock"));
        }
        install_db(&datadir, &dir)?;
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let node = Node {
                name,
                host: place.map_or_else(|| "127.0.0.1".to_string(), |p| p.ip.to_string()),
                netns: place.map(|p| p.netns.clone()),
                port,
                server_id,
                datadir: datadir.clone(),
                dir: dir.clone(),
                socket: socket.clone(),
                process: Mutex::new(None),
            };
            match node.start(false) {
                Ok(()) => {
                    node.sql(CLUSTER_INIT_SQL)?;
                    return Ok(node);
                }
                Err(
                    e @ HarnessError::NodeStart {
                        port_in_use: true, ..
                    },
                ) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(HarnessError::Timeout {
            what: format!("a free port for {name}"),
            detail: String::new(),
        }))
    }

    /// Starts mariadbd on this node's port and datadir and waits until it
    /// answers root on its socket. `reuse_port` lets it wait for the port
    /// (`--port-open-timeout`), for restarts where the port cannot change.
    pub fn start(&self, reuse_port: bool) -> Result<(), HarnessError> {
        let mut process = self.lock();
        if process.is_some() {
            return Err(HarnessError::Usage(format!(
                "{} is already running",
                self.name
            )));
        }
        let mut cmd = match &self.netns {
            Some(netns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns, "sh"]);
                c
            }
            None => Command::new("sh"),
        };
        cmd.arg("-c")
            .arg(WRAPPER)
            .arg("sh")
            .arg(&self.dir)
            .arg(&self.socket)
            .arg(program("mariadbd"))
            .arg(format!("--defaults-file={CLUSTER_CNF}"))
            .arg(format!("--user={}", os_user()))
            .arg(format!("--datadir={}", self.datadir.display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--socket={}", self.socket.display()))
            .arg(format!(
                "--pid-file={}",
                self.dir.join("mariadbd.pid").display()
            ))
            .arg(format!("--log-error={}", self.log_path().display()))
            .arg(format!("--tmpdir={}", self.dir.display()))
            .arg(format!("--server-id={}", self.server_id))
            .arg(format!("--gtid-domain-id={}", self.server_id))
            .arg(format!("--bind-address={}", self.host));
        // The certificate the cluster made for this node (tests/common/mod.rs).
        if let Some(cluster_dir) = self.dir.parent() {
            let base = cluster_dir.join(format!("{}-{}", super::NODE_CA, self.name));
            let (cert, key) = (base.with_extension("pem"), base.with_extension("key"));
            if cert.exists() {
                cmd.arg(format!("--ssl-cert={}", cert.display()))
                    .arg(format!("--ssl-key={}", key.display()))
                    .arg(format!(
                        "--ssl-ca={}",
                        cluster_dir
                            .join(format!("{}-ca.pem", super::NODE_CA))
                            .display()
                    ));
            }
        }
        if reuse_port {
            cmd.arg("--port-open-timeout=30");
        }
        let mut wrapper = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(HarnessError::io("spawn sh (the mariadbd wrapper)"))?;
        let stdin = wrapper.stdin.take();
        let pid = wrapper.stdout.take().and_then(|out| {
            let mut line = String::new();
            BufReader::new(out).read_line(&mut line).ok()?;
            line.trim().parse::<u32>().ok()
        });
        let (Some(stdin), Some(pid)) = (stdin, pid) else {
            return Err(self.start_error("the wrapper did not report the mariadbd pid"));
        };
        let mut running = Running {
            wrapper,
            stdin,
            pid,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !pid_alive(running.pid) {
                let err = self.start_error("mariadbd exited");
                running.stop(self.name)?;
                return Err(err);
            }
            if self.sql("SELECT 1").is_ok() {
                *process = Some(running);
                return Ok(());
            }
            if Instant::now() > deadline {
                running.stop(self.name)?;
                return Err(self.start_error(&format!("no answer within {START_TIMEOUT:?}")));
            }
            thread::sleep(POLL);
        }
    }

    /// SIGKILLs mariadbd (through the wrapper) and waits until it is gone, so
    /// its port no longer accepts connections. Data stays for [`Node::start`].
    pub fn kill(&self) -> Result<(), HarnessError> {
        let mut process = self.lock();
        let Some(mut running) = process.take() else {
            return Err(HarnessError::Usage(format!(
                "{} is already down",
                self.name
            )));
        };
        running.stop(self.name)
    }

    pub fn is_running(&self) -> bool {
        self.lock().is_some()
    }

    /// Sends `signal` (`"STOP"`, `"CONT"`) to mariadbd itself.
    pub fn signal(&self, signal: &str) -> Result<(), HarnessError> {
        let Some(pid) = self.lock().as_ref().map(|r| r.pid) else {
            return Err(HarnessError::Usage(format!("{} is down", self.name)));
        };
        let out = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .output()
            .map_err(HarnessError::io("run kill"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(HarnessError::Command {
                command: format!("kill -{signal} {pid}"),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }

    /// The unix socket root administers it through.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Runs `sql` as the socket admin (root) over the unix socket with the `mariadb` client and
    /// returns its batch output (tab-separated, no header).
    pub fn sql(&self, sql: &str) -> Result<String, HarnessError> {
        self.client(sql, false)
    }

    /// The first row of `sql` as column → value (empty when there is no row).
    pub fn row(&self, sql: &str) -> Result<BTreeMap<String, String>, HarnessError> {
        let out = self.client(sql, true)?;
        let mut lines = out.lines();
        let (Some(head), Some(values)) = (lines.next(), lines.next()) else {
            return Ok(BTreeMap::new());
        };
        Ok(head
            .split('\t')
            .zip(values.split('\t'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// One value (first column of the first row), trimmed.
    pub fn value(&self, sql: &str) -> Result<String, HarnessError> {
        let out = self.sql(sql)?;
        Ok(out
            .lines()
            .next()
            .unwrap_or("")
            .split('\t')
            .next()
            .unwrap_or("")
            .to_string())
    }

    fn client(&self, sql: &str, with_header: bool) -> Result<String, HarnessError> {
        let mut cmd = Command::new(program("mariadb"));
        cmd.arg("--no-defaults")
            .arg("--protocol=socket")
            .arg(format!("--socket={}", self.socket.display()))
            .arg(format!("--user={}", os_user()))
            .arg("--connect-timeout=5")
            .arg("--batch");
        if !with_header {
            cmd.arg("--skip-column-names");
        }
        let out = cmd
            .arg(format!("--execute={sql}"))
            .stdin(Stdio::null())
            .output()
            .map_err(HarnessError::io("run the mariadb client"))?;
        if !out.status.success() {
            return Err(HarnessError::Command {
                command: format!("{}: {}", self.name, first_line(sql)),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// How many lines of the node's error log hold `needle`.
    pub fn log_lines_with(&self, needle: &str) -> usize {
        std::fs::read_to_string(self.log_path())
            .map(|log| log.lines().filter(|l| l.contains(needle)).count())
            .unwrap_or(0)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("error.log")
    }

    fn start_error(&self, reason: &str) -> HarnessError {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let port_in_use =
            log.contains("Address already in use") || log.contains("Can't start server: Bind");
        let tail: Vec<&str> = log.lines().rev().take(25).collect();
        HarnessError::NodeStart {
            node: self.name,
            port: self.port,
            reason: reason.to_string(),
            port_in_use,
            log: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Running>> {
        self.process.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Running {
    /// SIGKILLs the node, keeping its files, and reaps the wrapper (which
    /// reaps the node first), so the port is closed when this returns.
    fn stop(&mut self, name: &str) -> Result<(), HarnessError> {
        self.stdin
            .write_all(b"kill\n")
            .and_then(|()| self.stdin.flush())
            .map_err(HarnessError::io(format!("tell the {name} wrapper to kill")))?;
        self.wrapper
            .wait()
            .map_err(HarnessError::io(format!("wait for the {name} wrapper")))?;
        Ok(())
    }
}

/// `mariadb-install-db` into `datadir` with the cluster settings; root (and
/// the OS user running the tests, when that is not root) gets unix-socket
/// authentication only. Takes under a second.
fn install_db(datadir: &Path, dir: &Path) -> Result<(), HarnessError> {
    let out = Command::new(program("mariadb-install-db"))
        .arg(format!("--defaults-file={CLUSTER_CNF}"))
        .arg(format!("--datadir={}", datadir.display()))
        .arg(format!("--user={}", os_user()))
        .arg("--auth-root-authentication-method=socket")
        .arg(format!("--auth-root-socket-user={}", os_user()))
        .arg("--skip-test-db")
        // Bootstraps of other builds on this box share /tmp; keep ours apart.
        .arg(format!("--tmpdir={}", dir.display()))
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(HarnessError::io(
            "run mariadb-install-db (apt-get install mariadb-server)",
        ))?;
    if !out.status.success() {
        return Err(HarnessError::Command {
            command: format!("mariadb-install-db --datadir={}", datadir.display()),
            status: out.status.to_string(),
            stderr: format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// A loopback port that was free a moment ago (the OS picks it; we release it).
fn free_port() -> Result<u16, HarnessError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(HarnessError::io("bind 127.0.0.1:0"))?;
    let port = listener
        .local_addr()
        .map_err(HarnessError::io("read the probe port"))?
        .port();
    Ok(port)
}

/// True while `pid` exists and is not a zombie (the wrapper reaps the node
/// only after it was told to kill it, so the pid cannot be reused before).
fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The OS account that runs the nodes and is their unix-socket admin: root
/// in CI (so `--user=root`), a developer's own account elsewhere.
fn os_user() -> &'static str {
    static USER: OnceLock<String> = OnceLock::new();
    USER.get_or_init(|| {
        Command::new("id")
            .arg("-un")
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|user| !user.is_empty())
            .unwrap_or_else(|| "root".to_string())
    })
}

/// MariaDB's programs, found in `PATH` or in /usr/sbin (mariadbd is there and
/// a non-login `PATH` may lack it).
pub fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn first_line(sql: &str) -> &str {
    sql.trim().lines().next().unwrap_or("")
}
