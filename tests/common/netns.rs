//! A private network for fault tests: one Linux network namespace per node,
//! each joined by a veth pair to a bridge in the test's own namespace, so
//! the proxy (here) reaches the nodes, and the nodes each other, over real
//! links that a test can cut, or make lose packets. Needs root and iproute2;
//! packet loss uses nftables (`nft`), delay `tc netem` where the kernel has
//! it (see [`Network::netem_available`]).
//!
//! Names carry the test process's pid. A small `sh` whose stdin is a pipe
//! from the test process deletes everything when that pipe closes, so a
//! test that dies (or a static that is never dropped) leaves nothing behind;
//! leftovers of a process that was SIGKILLed are removed at the next start.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

use super::HarnessError;

/// One node's place in the network.
#[derive(Debug, Clone)]
pub struct Place {
    /// `ip netns exec <netns> ...` runs a program there.
    pub netns: String,
    /// The node's address in it.
    pub ip: Ipv4Addr,
    /// The bridge end of its link (what a cut takes down).
    host_link: String,
}

pub struct Network {
    pub places: Vec<Place>,
    /// The bridge's own address (where the proxy's traffic comes from).
    pub gateway: Ipv4Addr,
    bridge: String,
    tag: String,
    /// Deletes the namespaces and the bridge when the test process ends.
    _janitor: Janitor,
}

struct Janitor {
    _child: Child,
    _stdin: Mutex<ChildStdin>,
}

fn ip(args: &[&str]) -> Result<(), HarnessError> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> Result<(), HarnessError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(HarnessError::io(format!("run {program}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(HarnessError::Command {
        command: format!("{program} {}", args.join(" ")),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Removes namespaces and bridges of test processes that no longer run.
fn remove_stale() {
    for line in output("ip", &["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if let Some(pid) = name.strip_prefix("sqp").and_then(|r| r.split('n').next()) {
            if !alive(pid) {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    for line in output("ip", &["-o", "link", "show", "type", "bridge"]).lines() {
        let Some(name) = line.split(':').nth(1).map(str::trim) else {
            continue;
        };
        if let Some(pid) = name.strip_prefix("sqb") {
            if !alive(pid) {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

fn alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Network {
    /// A bridge and `nodes` namespaces linked to it, on 10.<n>.0.0/24.
    pub fn create(nodes: usize) -> Result<Network, HarnessError> {
        if output("id", &["-u"]).trim() != "0" {
            return Err(HarnessError::Usage(
                "the fault tests need root (network namespaces); CI runs them as root".into(),
            ));
        }
        remove_stale();
        let pid = std::process::id();
        let tag = format!("{pid}");
        // Distinct subnets for parallel test processes (pid-based, rarely equal).
        let net = 10 + (pid % 200) as u8;
        let bridge = format!("sqb{tag}");
        let gateway = Ipv4Addr::new(10, net, 0, 1);
        let mut cleanup = vec![format!("ip link del {bridge}")];
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{gateway}/24"), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        let mut places = Vec::new();
        for i in 0..nodes {
            let netns = format!("sqp{tag}n{i}");
            let host_link = format!("sqv{}h{i}", pid % 100_000);
            let ns_link = format!("sqv{}n{i}", pid % 100_000);
            let node_ip = Ipv4Addr::new(10, net, 0, 10 + i as u8);
            cleanup.push(format!("ip netns del {netns}"));
            ip(&["netns", "add", &netns])?;
            ip(&[
                "link", "add", &host_link, "type", "veth", "peer", "name", &ns_link,
            ])?;
            ip(&["link", "set", &ns_link, "netns", &netns])?;
            ip(&["link", "set", &host_link, "master", &bridge, "up"])?;
            let inside = |args: &[&str]| {
                let mut all = vec!["netns", "exec", &netns, "ip"];
                all.extend_from_slice(args);
                ip(&all)
            };
            inside(&["addr", "add", &format!("{node_ip}/24"), "dev", &ns_link])?;
            inside(&["link", "set", &ns_link, "up"])?;
            inside(&["link", "set", "lo", "up"])?;
            places.push(Place {
                netns,
                ip: node_ip,
                host_link,
            });
        }
        cleanup.push(format!("nft delete table netdev sqf{tag}"));
        let janitor = Janitor::start(&cleanup)?;
        Ok(Network {
            places,
            gateway,
            bridge,
            tag,
            _janitor: janitor,
        })
    }

    /// Cuts node `i`'s link (both ways) until the guard drops.
    pub fn cut(&self, i: usize) -> Result<LinkCut<'_>, HarnessError> {
        let link = &self.places[i].host_link;
        ip(&["link", "set", link, "down"])?;
        Ok(LinkCut { net: self, i })
    }

    /// Drops `percent` % of node `i`'s packets, both ways, until the guard drops.
    pub fn lossy(&self, i: usize, percent: u32) -> Result<Lossy, HarnessError> {
        let table = format!("sqf{}", self.tag);
        let link = &self.places[i].host_link;
        let _ = run("nft", &["delete", "table", "netdev", &table]);
        run("nft", &["add", "table", "netdev", &table])?;
        for (chain, hook) in [("in", "ingress"), ("out", "egress")] {
            let spec = format!("{{ type filter hook {hook} device {link} priority 0; }}");
            run("nft", &["add", "chain", "netdev", &table, chain, &spec])?;
            let rule = format!("numgen random mod 100 < {percent} drop");
            let mut args = vec!["add", "rule", "netdev", &table, chain];
            args.extend(rule.split(' '));
            run("nft", &args)?;
        }
        Ok(Lossy { table })
    }

    /// Whether this kernel has `tc netem` (for delay); some do not.
    pub fn netem_available(&self) -> bool {
        let link = &self.places[0].host_link;
        let ok = run(
            "tc",
            &["qdisc", "add", "dev", link, "root", "netem", "delay", "1ms"],
        )
        .is_ok();
        if ok {
            let _ = run("tc", &["qdisc", "del", "dev", link, "root"]);
        }
        ok
    }

    /// Delays every packet to node `i` by `ms` with `tc netem`.
    pub fn delay(&self, i: usize, ms: u32) -> Result<Delay<'_>, HarnessError> {
        let link = &self.places[i].host_link;
        run(
            "tc",
            &[
                "qdisc",
                "add",
                "dev",
                link,
                "root",
                "netem",
                "delay",
                &format!("{ms}ms"),
            ],
        )?;
        Ok(Delay { net: self, i })
    }

    pub fn bridge(&self) -> &str {
        &self.bridge
    }
}

pub struct LinkCut<'a> {
    net: &'a Network,
    i: usize,
}

impl Drop for LinkCut<'_> {
    fn drop(&mut self) {
        let link = &self.net.places[self.i].host_link;
        if let Err(e) = ip(&["link", "set", link, "master", &self.net.bridge, "up"]) {
            eprintln!("could not restore {link}: {e}");
        }
    }
}

pub struct Lossy {
    table: String,
}

impl Drop for Lossy {
    fn drop(&mut self) {
        if let Err(e) = run("nft", &["delete", "table", "netdev", &self.table]) {
            eprintln!("could not remove the loss rules: {e}");
        }
    }
}

pub struct Delay<'a> {
    net: &'a Network,
    i: usize,
}

impl Drop for Delay<'_> {
    fn drop(&mut self) {
        let link = &self.net.places[self.i].host_link;
        if let Err(e) = run("tc", &["qdisc", "del", "dev", link, "root"]) {
            eprintln!("could not remove the delay: {e}");
        }
    }
}

impl Janitor {
    /// `sh` that waits for end of input, then runs `commands`.
    fn start(commands: &[String]) -> Result<Janitor, HarnessError> {
        let script = format!(
            "trap '' INT HUP TERM; cat >/dev/null; {}",
            commands
                .iter()
                .map(|c| format!("{c} 2>/dev/null"))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(HarnessError::io("spawn the network janitor"))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| HarnessError::Usage("janitor without stdin".into()))?;
        stdin.flush().map_err(HarnessError::io("janitor pipe"))?;
        Ok(Janitor {
            _child: child,
            _stdin: Mutex::new(stdin),
        })
    }
}
