//! A `php -S` worker serving `scripts/http-worker.php`, killed on drop.
//! PHP cannot report a port it chose, so the port comes from binding
//! 127.0.0.1:0 first; if PHP loses the race for it, another is tried.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct PhpWorker {
    pub name: String,
    pub addr: SocketAddr,
    child: Child,
}

impl PhpWorker {
    pub async fn start(name: &str) -> PhpWorker {
        Self::start_with(name, &[]).await
    }

    /// Same, with extra environment (e.g. `SQLPROXY_DSN` to read a row).
    pub async fn start_with(name: &str, env: &[(&str, &str)]) -> PhpWorker {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/http-worker.php");
        for _ in 0..5 {
            let addr = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let mut child = Command::new("php")
                .arg("-S")
                .arg(addr.to_string())
                .arg(&script)
                .env("WORKER_NAME", name)
                .env_remove("SQLPROXY_DSN")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("php-cli is installed");
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    return PhpWorker {
                        name: name.to_string(),
                        addr,
                        child,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken: try another
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("php -S did not start");
    }
}

impl Drop for PhpWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
