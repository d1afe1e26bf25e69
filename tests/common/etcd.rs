//! A real etcd cluster on loopback for the coordination tests: one or three
//! members (Debian's `etcd-server`, `/usr/bin/etcd`) on ports the OS handed
//! out, data under the test's temporary directory. Members can be killed
//! (kill -9) and started again on the same ports and data.

use std::path::{Path, PathBuf};

use super::daemon::{free_port, wait_until, Daemon};

const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";

struct Member {
    name: String,
    client: u16,
    peer: u16,
    running: Option<Daemon>,
}

pub struct Etcd {
    members: Vec<Member>,
    dir: PathBuf,
    initial_cluster: String,
    token: String,
}

impl Etcd {
    /// Starts `n` members and waits until the cluster answers.
    pub fn start(n: usize, dir: &Path) -> Etcd {
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("e{i}"),
                client: free_port(),
                peer: free_port(),
                running: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut etcd = Etcd {
            members,
            dir: dir.to_path_buf(),
            initial_cluster,
            token: format!("sqlproxy-test-{}-{}", std::process::id(), free_port()),
        };
        for i in 0..n {
            etcd.start_member(i);
        }
        etcd.wait_healthy();
        etcd
    }

    /// `127.0.0.1:<client port>` of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client))
            .collect()
    }

    /// (Re)starts member `i` on its ports and data.
    pub fn start_member(&mut self, i: usize) {
        let m = &self.members[i];
        let data = self.dir.join(format!("{}.etcd", m.name));
        let args: Vec<String> = [
            "--name",
            &m.name,
            "--data-dir",
            &data.display().to_string(),
            "--listen-client-urls",
            &format!("http://127.0.0.1:{}", m.client),
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{}", m.client),
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{}", m.peer),
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{}", m.peer),
            "--initial-cluster",
            &self.initial_cluster,
            "--initial-cluster-token",
            &self.token,
            "--initial-cluster-state",
            "new",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = self.dir.join(format!("{}.log", m.name));
        let daemon = Daemon::spawn(Path::new(ETCD), &args, &log);
        self.members[i].running = Some(daemon);
    }

    /// kill -9 of member `i`.
    pub fn kill_member(&mut self, i: usize) {
        if let Some(mut d) = self.members[i].running.take() {
            d.kill();
        }
    }

    /// Until a linearizable read through every running member succeeds.
    pub fn wait_healthy(&self) {
        wait_until("etcd to answer through every running member", || {
            self.members
                .iter()
                .filter(|m| m.running.is_some())
                .all(|m| {
                    std::process::Command::new(ETCDCTL)
                        .env("ETCDCTL_API", "3")
                        .args([
                            &format!("--endpoints=127.0.0.1:{}", m.client),
                            "--command-timeout=2s",
                            "endpoint",
                            "health",
                        ])
                        .output()
                        .is_ok_and(|o| o.status.success())
                })
                .then_some(())
        });
    }
}
