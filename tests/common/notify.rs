//! A systemd notify socket of the test's own: a proxy started with
//! `NOTIFY_SOCKET` pointing at [`Notify::path`] sends it READY=1, WATCHDOG=1,
//! RELOADING=1, STOPPING=1 as systemd would receive them.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// How long to wait for a notification before giving up (a bound, not a
/// measurement).
const PATIENCE: Duration = Duration::from_secs(120);

/// What a proxy says on its notify socket, one datagram at a time.
pub struct Notify {
    socket: UnixDatagram,
    seen: Vec<String>,
    _dir: tempfile::TempDir,
    /// For `NOTIFY_SOCKET`.
    pub path: PathBuf,
}

impl Notify {
    /// A socket the `sqlproxy` user may write to.
    pub fn new() -> Notify {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Notify {
            socket,
            seen: Vec::new(),
            _dir: dir,
            path,
        }
    }

    /// Reads datagrams until one has the line `line`; panics after [`PATIENCE`].
    pub fn wait_for(&mut self, line: &str, child: &mut Child) {
        let deadline = Instant::now() + PATIENCE;
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                let hit = msg.lines().any(|l| l == line);
                self.seen.push(msg);
                if hit {
                    return;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the proxy exited ({status}) before {line}; heard {:?}",
                    self.seen
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {line} from the proxy; heard {:?}",
                self.seen
            );
        }
    }
}
