//! The Debian package as an operator meets it: `cargo deb` builds it, `dpkg
//! -i` installs it on this machine (CI runs as root on a scratch Debian 12),
//! the installed unit passes `systemd-analyze verify`, the installed binary
//! runs the packaged config, as the packaged user, against the test cluster
//! (listeners and node addresses moved with `SQLPROXY_` variables) and
//! answers a query from the `mariadb` CLI, telling systemd READY, watchdog,
//! RELOADING (SIGHUP) and STOPPING over a notify socket of the test's own.
//! Then `dpkg -r` leaves only the conffile (and the unit masked, as Debian
//! does for every removed service) and `dpkg --purge` leaves nothing.
//!
//! The package is built from the binary `cargo test` already compiled
//! (`cargo deb --profile dev --no-build`): the packaging is what is under
//! test, and a second build of every dependency in another profile would
//! cost CI minutes for nothing. `cargo deb` (release) is what ships.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cluster;
use common::notify::Notify;

const PACKAGE: &str = "sqlproxy";
const CONFFILE: &str = "/etc/sqlproxy/ha.toml";
const UNIT: &str = "/usr/lib/systemd/system/sqlproxy.service";
const BIN: &str = "/usr/bin/sqlproxy";

/// The package is installed machine-wide: test runs of other worktrees on
/// the same machine take turns through this lock file.
const MACHINE_LOCK: &str = "/tmp/sqlproxy-packaging-test.lock";

/// How long to wait for dpkg's own lock (another dpkg or apt running)
/// before giving up (a bound, not a measurement).
const PATIENCE: Duration = Duration::from_secs(120);

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `dpkg ARGS`, waiting while another dpkg holds its lock.
fn dpkg(args: &[&str]) -> Output {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let out = Command::new("dpkg")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .unwrap_or_else(|e| panic!("dpkg {args:?}: {e}"));
        let locked = !out.status.success() && text(&out).contains("lock");
        if !locked || Instant::now() > deadline {
            assert!(out.status.success(), "dpkg {args:?}:\n{}", text(&out));
            return out;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", PACKAGE])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("installed"))
}

/// Purges the package when the test ends, passing or not.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("dpkg").args(["--purge", PACKAGE]).output() {
            if !out.status.success() {
                eprintln!("cleanup: dpkg --purge {PACKAGE}: {}", text(&out));
            }
        }
    }
}

/// `cargo deb` over the test binary; returns the .deb's path.
fn build_deb() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_sqlproxy"));
    let version = Command::new("cargo").args(["deb", "--version"]).output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "cargo-deb is missing: `cargo install cargo-deb --locked` (scripts/test.sh does)"
    );
    // cargo-deb finds the dev-profile binary in <target>/debug/: the one under test.
    assert_eq!(
        bin.parent().and_then(Path::file_name),
        Some("debug".as_ref())
    );
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deb");
    let out = run(Command::new("cargo")
        .args([
            "deb",
            "--profile",
            "dev",
            "--no-build",
            "--strip",
            "--fast",
            "--output",
        ])
        .arg(&out_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR")));
    let deb = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("cargo deb printed no .deb path:\n{}", text(&out)));
    let size = std::fs::metadata(&deb).map(|m| m.len()).unwrap_or(0);
    eprintln!("built {} ({size} bytes)", deb.display());
    deb
}

/// Regular files and symlinks of the package (`dpkg -L`), directories left out.
fn package_files() -> BTreeSet<String> {
    let out = dpkg(&["-L", PACKAGE]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()))
        .map(str::to_string)
        .collect()
}

fn signal(child: &Child, sig: &str) {
    run(Command::new("kill").args([sig, &child.id().to_string()]));
}

#[test]
fn package_builds_installs_runs_and_purges_cleanly() {
    let deb = build_deb();
    let uid = run(Command::new("id").arg("-u"));
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "installing the package needs root (CI runs the suite as root)"
    );
    let lock = std::fs::File::create(MACHINE_LOCK).unwrap();
    lock.lock().unwrap();
    let _purge = Purge;
    if installed() {
        eprintln!("{PACKAGE} was installed (an earlier run?): reinstalling over it");
    }
    dpkg(&["-i", deb.to_str().unwrap()]);

    // What was installed, and how.
    let files = package_files();
    for want in [
        BIN,
        CONFFILE,
        UNIT,
        "/usr/share/man/man1/sqlproxy.1.gz",
        "/usr/share/doc/sqlproxy/README.md",
        "/usr/share/doc/sqlproxy/migration.md",
        "/usr/share/sqlproxy/grafana/sqlproxy.json",
        "/usr/share/sqlproxy/prometheus/alerts.yml",
    ] {
        assert!(files.contains(want), "{want} not in the package: {files:?}");
    }
    let conffiles = run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE]));
    assert!(text(&conffiles).contains(CONFFILE), "{}", text(&conffiles));
    let user = run(Command::new("getent").args(["passwd", "sqlproxy"]));
    let user = text(&user);
    let fields: Vec<&str> = user.trim().split(':').collect();
    let uid: u32 = fields
        .get(2)
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX);
    assert!(uid < 1000, "sqlproxy is a system user: {user}");
    assert!(
        fields.get(6).is_some_and(|s| s.ends_with("nologin")),
        "{user}"
    );
    let owner = run(Command::new("stat").args(["-c", "%U:%G %a", CONFFILE]));
    assert_eq!(text(&owner).trim(), "sqlproxy:sqlproxy 640");

    // The binary and the unit.
    let version = text(&run(Command::new(BIN).arg("--version")));
    assert!(
        version.contains(env!("CARGO_PKG_VERSION")) && version.contains("commit"),
        "{version}"
    );
    run(Command::new(BIN).args(["--check", "--config", CONFFILE]));
    // Verified as installed: ExecStart and ExecStartPre name /usr/bin/sqlproxy,
    // which exists only now (systemd-analyze checks the executables exist).
    let verify = run(Command::new("systemd-analyze").args(["verify", UNIT]));
    let complaints: Vec<String> = text(&verify)
        .lines()
        .filter(|l| l.contains("sqlproxy"))
        .map(str::to_string)
        .collect();
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify: {complaints:?}"
    );

    // The installed binary, as the packaged user, on the packaged config.
    let c = cluster();
    let mut notify = Notify::new();
    let mut child = Command::new("setpriv")
        .args([
            "--reuid=sqlproxy",
            "--regid=sqlproxy",
            "--init-groups",
            "--",
        ])
        .args([BIN, "--config", CONFFILE])
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "200000")
        .env("SQLPROXY_LOG", "info")
        .env("SQLPROXY_MYSQL__LISTEN", "127.0.0.1:0")
        .env("SQLPROXY_ADMIN__LISTEN", "127.0.0.1:0")
        .env("SQLPROXY_METRICS__LISTEN", "127.0.0.1:0")
        .env("SQLPROXY_HTTP__LISTEN", "127.0.0.1:0")
        .env("SQLPROXY_HTTP__STATS__LISTEN", "127.0.0.1:0")
        .env("SQLPROXY_HTTP__THREADS", "1")
        .env(
            "SQLPROXY_NODES__CN1__ADDRESS",
            format!("127.0.0.1:{}", c.nodes[0].port),
        )
        .env(
            "SQLPROXY_NODES__CN2__ADDRESS",
            format!("127.0.0.1:{}", c.nodes[1].port),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the installed binary");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!(
                "the installed proxy printed no MySQL address: {:?}",
                child.wait()
            );
        };
        if let Some(addr) = line.strip_prefix("sqlproxy: MySQL clients connect to ") {
            break addr.rsplit(':').next().unwrap_or_default().to_string();
        }
    };
    // Keep reading its log so a full pipe never blocks it.
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    notify.wait_for("READY=1", &mut child);
    notify.wait_for("WATCHDOG=1", &mut child);
    let out = run(Command::new("mariadb").args([
        "-h127.0.0.1",
        &format!("-P{port}"),
        "-uprestashop",
        "-pprestashop",
        "--batch",
        "--skip-column-names",
        "-e",
        "SELECT @@server_id",
    ]));
    let id = text(&out);
    assert!(id.trim() == "1" || id.trim() == "2", "{id}");
    signal(&child, "-HUP");
    notify.wait_for("RELOADING=1", &mut child);
    notify.wait_for("READY=1", &mut child);
    signal(&child, "-TERM");
    notify.wait_for("STOPPING=1", &mut child);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let log = log.join().unwrap_or_default();
    assert!(
        log.iter().any(|l| l.contains("SIGHUP: config reloaded")),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("change-me")),
        "a password in the log: {log:#?}"
    );

    // Removal keeps only the conffile; purge removes everything. (dpkg -r
    // also leaves /etc/systemd/system/sqlproxy.service -> /dev/null: the
    // deb-systemd-helper snippet masks the unit of a removed, unpurged
    // package, as for every Debian service; purge unmasks it.)
    dpkg(&["-r", PACKAGE]);
    let left: Vec<&String> = files
        .iter()
        .filter(|f| std::fs::symlink_metadata(f).is_ok())
        .collect();
    assert_eq!(left, [&CONFFILE.to_string()], "left after dpkg -r");
    dpkg(&["--purge", PACKAGE]);
    let left: Vec<&String> = files
        .iter()
        .filter(|f| std::fs::symlink_metadata(f).is_ok())
        .collect();
    assert!(left.is_empty(), "left after dpkg --purge: {left:?}");
    for dir in [
        "/etc/sqlproxy",
        "/usr/share/sqlproxy",
        "/usr/share/doc/sqlproxy",
    ] {
        assert!(!Path::new(dir).exists(), "{dir} left after purge");
    }
    assert!(!Path::new("/etc/systemd/system/sqlproxy.service").exists());
    let overrides = Command::new("dpkg-statoverride")
        .args(["--list", CONFFILE])
        .output()
        .unwrap();
    assert!(overrides.stdout.is_empty(), "{}", text(&overrides));
    assert!(!installed());
}
