//! Processes the coordination tests run beside the nodes: etcd members and
//! sqlproxy instances (the real binary, so "kill -9" is a real one).
//!
//! Each runs under a small `sh` wrapper whose stdin is a pipe from the test
//! process, as the MariaDB nodes do (`node.rs`): static destructors never
//! run, so the closed pipe is what stops a daemon when the test process
//! ends, however it ends. Output goes to a log file the test can read.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Runs the program in the background with output appended to `$1`, prints
/// its pid, and SIGKILLs it when stdin says so or closes.
const WRAPPER: &str = r#"log=$1; shift
"$@" </dev/null >>"$log" 2>&1 &
child=$!
trap '' INT HUP TERM
echo "$child"
read -r _line
kill -9 "$child" 2>/dev/null
wait "$child"
exit 0
"#;

/// How long a daemon may take to show what a test waits for. A bound, not a
/// measurement: the box is small and shared.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// A running program; SIGKILLed when dropped or [`Daemon::kill`]ed.
pub struct Daemon {
    pub pid: u32,
    pub log: PathBuf,
    wrapper: Child,
    stdin: Option<ChildStdin>,
}

impl Daemon {
    pub fn spawn(program: &Path, args: &[String], log: &Path) -> Daemon {
        let mut wrapper = match Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("sh")
            .arg(log)
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!("spawn {}: {e}", program.display()),
        };
        let stdin = wrapper.stdin.take();
        let pid = wrapper.stdout.take().and_then(|out| {
            let mut line = String::new();
            BufReader::new(out).read_line(&mut line).ok()?;
            line.trim().parse::<u32>().ok()
        });
        let Some(pid) = pid else {
            panic!("the wrapper of {} reported no pid", program.display());
        };
        Daemon {
            pid,
            log: log.to_path_buf(),
            wrapper,
            stdin,
        }
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            // A wrapper already gone has nothing left to kill.
            writeln!(stdin, "kill").ok();
        }
        // The wrapper exits once its child is reaped.
        self.wrapper.wait().ok();
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line containing `needle`; returns the line.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.log_text();
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with `{needle}` in {}:\n{text}",
                self.log.display()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nobody listens on right now (the OS picks it).
pub fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("probe a free port: {e}"),
    }
}

/// Polls `f` until it returns `Some`, at most [`PATIENCE`]; panics with `what`.
pub fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}
