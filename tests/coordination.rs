//! Several sqlproxy instances (the real binary, as processes) in front of the
//! same two nodes, agreeing on one writer through a real etcd cluster on
//! loopback: every instance writes to the node the record names; a dead
//! master is replaced exactly once and every instance follows; an instance
//! cut off from the master alone promotes nothing; a killed holder is
//! replaced; a SWITCHOVER asked on a non-holder gives the holder's result;
//! without etcd nothing is promoted and the data path keeps working.
//!
//! Every scenario runs under write load through every instance at once
//! (`common::ledger`): each acknowledged insert must be on the final writer,
//! read from the node itself, and each scenario says which instance may see
//! errors in which phase. The two-writers sampler (`never_two_writers`)
//! runs through the fault and its healing.
//!
//! The tests change the cluster (kill nodes, move the master), so they run
//! one at a time (`SERIAL`) on this binary's own cluster, and each starts
//! from whatever node is master then.

mod common;

use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::daemon::wait_until;
use common::etcd::Etcd;
use common::instance::{Instance, ADMIN_PASSWORD};
use common::ledger::{self, Load};
use common::partition::Partition;
use common::relay::Relay;
use common::writers::WriterProbe;
use common::{cluster, Cluster};

static SERIAL: Mutex<()> = Mutex::new(());

/// Names each test's keys apart (one etcd per test anyway).
fn cluster_name(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

/// An instance's config: the fixture's nodes (at `addresses` when given:
/// relays), the admin port, and `[coordination]`.
fn config(
    c: &Cluster,
    name: &str,
    etcd: &Etcd,
    cluster: &str,
    addresses: Option<[String; 2]>,
) -> String {
    let mut toml = c.config_toml();
    if let Some(addrs) = addresses {
        for (node, addr) in c.nodes.iter().zip(addrs) {
            toml = toml.replace(
                &format!("\"{}:{}\"", node.host, node.port),
                &format!("\"{addr}\""),
            );
        }
    }
    let endpoints: Vec<String> = etcd
        .endpoints()
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect();
    format!(
        "{toml}\n[admin]\nlisten = \"127.0.0.1:0\"\npassword = \"{ADMIN_PASSWORD}\"\n\n\
         [coordination]\netcd = [{}]\ncluster = \"{cluster}\"\ninstance = \"{name}\"\n\
         lease_ttl = \"2s\"\ntimeout = \"500ms\"\n",
        endpoints.join(", ")
    )
}

/// Both nodes running and replicating both ways (a failover stops the new
/// master's replication from the old one), whatever a previous test left.
fn heal(c: &Cluster) {
    for node in &c.nodes {
        if !node.is_running() {
            if let Err(e) = node.start(true) {
                panic!("start {}: {e}", node.name);
            }
        }
    }
    for node in &c.nodes {
        // Already running is fine.
        node.sql("START SLAVE").ok();
    }
    c.wait_replicated();
}

/// The test's database with its tables, `w` and the load's `ledger`,
/// created on cn1 (root bypasses read_only).
fn table(c: &Cluster, test: &str) -> String {
    let db = c.fresh_db(test);
    if let Err(e) = c.nodes[0].sql(&format!(
        "CREATE TABLE `{db}`.w (tag VARCHAR(64) PRIMARY KEY, node INT)"
    )) {
        panic!("create table: {e}");
    }
    ledger::create_table(c, &db);
    db
}

/// Write load through every instance in `instances`, each writer named
/// after its instance, with an acknowledged write from each before it
/// returns, in phase `before`. It starts once the recorded writer `master`
/// is writable (the record names a node before the node is unfenced), in
/// phase `start`: the holder may still be fencing the other node, whose
/// client connections it kills, and a session with a connection there
/// (for its reads) can lose it (1927).
fn load_through(c: &Cluster, master: usize, db: &str, instances: &[&Instance]) -> Load {
    wait_until("the recorded writer to be writable", || {
        (read_only(c, master) == "0").then_some(())
    });
    let mut load = Load::new(db);
    for i in instances {
        load.add(&i.name, i.mysql);
    }
    load.wait_all_acked();
    load.phase_with_acks("before");
    load
}

fn index_of(node: &str) -> usize {
    match node {
        "cn1" => 0,
        "cn2" => 1,
        other => panic!("unknown node {other}"),
    }
}

/// Writes a row tagged `tag` through `inst`; which node ran it.
fn write(inst: &Instance, db: &str, tag: &str) -> Result<u32, String> {
    // One session: its read sees its own write (a new session's read may
    // go to a replica that has not applied it yet).
    let rows = inst.sql(
        Some(db),
        &format!(
            "INSERT INTO w VALUES ('{tag}', @@server_id); SELECT node FROM w WHERE tag = '{tag}'"
        ),
    )?;
    rows.first()
        .and_then(|r| r.get("node"))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("row {tag} not read back"))
}

/// The writer every instance agrees on, once they do.
fn agreed_writer(instances: &[&Instance]) -> (String, u64) {
    wait_until("every instance to follow the same writer", || {
        let first = instances.first()?.writer()?;
        instances
            .iter()
            .all(|i| i.writer().as_ref() == Some(&first))
            .then_some(first)
    })
}

fn read_only(c: &Cluster, node: usize) -> String {
    match c.nodes[node].value("SELECT @@GLOBAL.read_only") {
        Ok(v) => v,
        Err(e) => panic!("read_only of node {node}: {e}"),
    }
}

fn number(inst: &Instance, item: &str) -> u64 {
    inst.coordination_value(item)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{}: no number for {item}", inst.name))
}

/// Runs `f` while sampling `@@read_only` on both nodes (the two-writers
/// sampler); fails if both were ever writable at the same time.
fn never_two_writers<T>(c: &'static Cluster, f: impl FnOnce() -> T) -> T {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let stop = AtomicBool::new(false);
    let (samples, both) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let out = thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the sampler");
            rt.block_on(async {
                let mut probe = WriterProbe::new(c);
                while !stop.load(SeqCst) {
                    let sample = probe.sample().await;
                    if sample.two_writers {
                        both.fetch_add(1, SeqCst);
                        eprintln!("both nodes writable: {sample:?}");
                    }
                    if sample.complete() {
                        samples.fetch_add(1, SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        });
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        stop.store(true, SeqCst);
        out
    });
    let out = out.unwrap_or_else(|p| std::panic::resume_unwind(p));
    eprintln!(
        "two-writers sampler: {} complete samples, {} with both writable",
        samples.load(SeqCst),
        both.load(SeqCst)
    );
    assert!(samples.load(SeqCst) > 0, "the sampler ran");
    assert_eq!(both.load(SeqCst), 0, "both nodes were writable at once");
    out
}

#[test]
fn every_instance_writes_to_the_recorded_writer_and_a_dead_master_is_replaced_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let began = Instant::now();
    let c = cluster();
    heal(c);
    let db = table(c, "coord_failover");
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = Etcd::start(3, dir.path());
    let name = cluster_name("failover");
    let instances: Vec<Instance> = ["p1", "p2", "p3"]
        .iter()
        .map(|n| Instance::start(n, &config(c, n, &etcd, &name, None), dir.path()))
        .collect();
    let all: Vec<&Instance> = instances.iter().collect();
    let (writer, epoch) = agreed_writer(&all);
    let master = index_of(&writer);
    let holders: Vec<&str> = wait_until("one holder", || {
        let h: Vec<&str> = all
            .iter()
            .filter(|i| i.holds())
            .map(|i| i.name.as_str())
            .collect();
        (h.len() == 1).then_some(h)
    });
    eprintln!("writer {writer} epoch {epoch}, holder {holders:?}");

    // Writes through every instance run on the recorded writer.
    for i in &all {
        let ran = write(i, &db, &format!("{}-before", i.name))
            .unwrap_or_else(|e| panic!("{}: {e}", i.name));
        assert_eq!(ran, c.nodes[master].server_id, "{} wrote elsewhere", i.name);
    }

    // kill -9 of the master under write load through every instance at
    // once: exactly one promotion, everybody follows, no acknowledged write
    // lost. Writes fail through every instance between the kill and the
    // promotion (docs/failover.md), and only then.
    let other = 1 - master;
    let new_writer = c.nodes[other].name;
    let load = load_through(c, master, &db, &all);
    never_two_writers(c, || {
        load.phase("master killed");
        c.kill(master);
        wait_until("every instance to follow the new writer", || {
            all.iter()
                .all(|i| i.writer().is_some_and(|(n, _)| n == new_writer))
                .then_some(())
        });
        load.phase_with_acks("failed over");
        for i in &all {
            assert_eq!(
                i.writer(),
                Some((new_writer.to_string(), epoch + 1)),
                "{}: the epoch grows by exactly one",
                i.name
            );
        }
        let changes: u64 = all.iter().map(|i| number(i, "writer_changes")).sum();
        assert_eq!(
            changes, 2,
            "one record at discovery, one at the failover: no second promotion"
        );
        assert_eq!(read_only(c, other), "0", "the new master is writable");
        for i in &all {
            let ran = wait_until(
                &format!("a write through {} after the failover", i.name),
                || write(i, &db, &format!("{}-after", i.name)).ok(),
            );
            assert_eq!(ran, c.nodes[other].server_id, "{} wrote elsewhere", i.name);
        }

        // The old master comes back fenced: the holder alone fences it.
        load.phase("old master back");
        if let Err(e) = c.nodes[master].start(true) {
            panic!("restart the old master: {e}");
        }
        wait_until("the old master fenced", || {
            (read_only(c, master) == "1").then_some(())
        });
        load.wait_all_acked();
    });
    let ledger = load.finish();
    ledger.print("dead master");
    ledger.assert_errors_only(&[("*", "start", "*"), ("*", "master killed", "*")]);
    let landed = ledger.assert_on(c, other);
    eprintln!(
        "{} acknowledged writes through 3 instances, none lost on {new_writer}: by server_id {landed:?}",
        ledger.acked()
    );
    drop(instances);
    heal(c);
    eprintln!("dead master: {:.1?}", began.elapsed());
}

/// How one instance loses its path to the master.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// The relay in front of the master closes: connecting is refused, as
    /// for a node that is gone.
    Refused,
    /// Packets to and from the relay are dropped (`common::partition`):
    /// nothing answers, as behind a dead switch; healed afterwards.
    Dropped,
}

#[test]
fn an_instance_refused_by_the_master_alone_never_causes_a_promotion() {
    cut_off_alone(Cut::Refused);
}

#[test]
fn an_instance_partitioned_from_the_master_alone_never_causes_a_promotion() {
    cut_off_alone(Cut::Dropped);
}

/// The holder loses its path to the master while the other instance still
/// reaches it: a veto, no promotion; the holder's writes wait or fail
/// clearly, the other's go on without a single error.
fn cut_off_alone(how: Cut) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let began = Instant::now();
    let c = cluster();
    heal(c);
    let db = table(c, "coord_cut");
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = Etcd::start(1, dir.path());
    let name = cluster_name("cut");
    // p1 reaches the nodes through relays and starts first: it holds the
    // election, so the instance that loses sight of the master is the one
    // that would promote.
    let mut relays: Vec<Relay> = c
        .nodes
        .iter()
        .map(|n| {
            Relay::start(
                format!("{}:{}", n.host, n.port)
                    .parse()
                    .expect("node address"),
            )
        })
        .collect();
    let via = [relays[0].addr.to_string(), relays[1].addr.to_string()];
    let p1 = Instance::start("p1", &config(c, "p1", &etcd, &name, Some(via)), dir.path());
    wait_until("p1 to hold the election", || p1.holds().then_some(()));
    let p2 = Instance::start("p2", &config(c, "p2", &etcd, &name, None), dir.path());
    let (writer, epoch) = agreed_writer(&[&p1, &p2]);
    let master = index_of(&writer);
    assert!(p1.holds(), "p1 still holds");
    assert_eq!(write(&p1, &db, "p1-before"), Ok(c.nodes[master].server_id));
    let mut load = load_through(c, master, &db, &[&p1, &p2]);

    never_two_writers(c, || {
        load.phase("cut");
        let mut partition = match how {
            Cut::Refused => {
                relays[master].cut();
                None
            }
            Cut::Dropped => match Partition::drop_port(relays[master].addr.port()) {
                Ok(p) => Some(p),
                Err(e) => panic!("partition p1 from {writer}: {e}"),
            },
        };
        // p1 sees the master down; p2 still sees it up, so p1 refuses.
        wait_until("p1 to refuse a failover (a veto)", || {
            let now = p1.writer();
            assert_eq!(now, Some((writer.clone(), epoch)), "p1 promoted a node");
            (number(&p1, "vetoes") > 0).then_some(())
        });
        assert_eq!(
            p1.writer(),
            Some((writer.clone(), epoch)),
            "p1 promoted nothing"
        );
        assert_eq!(
            p2.writer(),
            Some((writer.clone(), epoch)),
            "p2 follows the same writer"
        );
        assert_eq!(read_only(c, master), "0", "the master keeps its role");
        assert_eq!(read_only(c, 1 - master), "1", "the other node stays fenced");
        // The others carry on; the cut-off instance's writes fail, never land elsewhere.
        load.wait_acked("p2");
        assert_eq!(write(&p2, &db, "p2-during"), Ok(c.nodes[master].server_id));
        let cut_write = match how {
            Cut::Refused => write(&p1, &db, "p1-during").map(|_| ()),
            // Once p1 sees the master down, a write waits `failover.hold`
            // and fails (9002). Bounded all the same: a statement already
            // sent on a connection whose packets are dropped waits for the
            // node's answer up to `[mysql] read_timeout` (an hour).
            Cut::Dropped => ledger::write_once(
                p1.mysql,
                &db,
                "INSERT INTO w VALUES ('p1-during', @@server_id)",
            ),
        };
        eprintln!("{how:?}: a write through the cut-off p1 gave {cut_write:?}");
        assert!(
            cut_write.is_err(),
            "a write through the cut-off instance: {cut_write:?}"
        );
        assert_eq!(
            p1.writer(),
            Some((writer.clone(), epoch)),
            "still no promotion"
        );
        match partition.as_mut() {
            // A closed relay stays closed: p1 stays cut off, its writer stops.
            None => load.stop("p1"),
            // Healed: p1 writes again.
            Some(partition) => {
                partition.heal();
                load.phase_with_acks("healing");
            }
        }
        load.phase_with_acks("after");
        assert_eq!(
            p1.writer(),
            Some((writer.clone(), epoch)),
            "no promotion after the heal"
        );
        assert_eq!(read_only(c, 1 - master), "1", "the other node stays fenced");
    });
    let ledger = load.finish();
    ledger.print(&format!("holder cut off ({how:?})"));
    ledger.assert_errors_only(&[
        ("*", "start", "*"),
        ("p1", "cut", "*"),
        ("p1", "healing", "*"),
    ]);
    let landed = ledger.assert_on(c, master);
    let ids: Vec<u32> = landed.keys().copied().collect();
    assert_eq!(
        ids,
        vec![c.nodes[master].server_id],
        "every acknowledged write ran on the master"
    );
    assert!(ledger.acks("p2", "cut") > 0, "p2 carried on");
    drop(p1);
    drop(p2);
    heal(c);
    eprintln!("holder cut off ({how:?}): {:.1?}", began.elapsed());
}

#[test]
fn a_killed_holder_is_replaced_and_switchover_on_a_non_holder_runs_on_the_holder() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let began = Instant::now();
    let c = cluster();
    heal(c);
    let db = table(c, "coord_holder");
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = Etcd::start(1, dir.path());
    let name = cluster_name("holder");
    let mut p1 = Instance::start("p1", &config(c, "p1", &etcd, &name, None), dir.path());
    wait_until("p1 to hold the election", || p1.holds().then_some(()));
    let p2 = Instance::start("p2", &config(c, "p2", &etcd, &name, None), dir.path());
    let (writer, epoch) = agreed_writer(&[&p1, &p2]);
    let mut load = load_through(c, index_of(&writer), &db, &[&p1, &p2]);
    let target = if writer == "cn1" { "cn2" } else { "cn1" };

    let (p3, p4) = never_two_writers(c, || {
        load.phase("holder killed");
        p1.kill();
        load.stop("p1");
        wait_until("p2 to take the election over", || p2.holds().then_some(()));
        assert_eq!(
            p2.writer(),
            Some((writer.clone(), epoch)),
            "a new holder changes no writer"
        );
        load.wait_acked("p2");

        // A SWITCHOVER on a follower is run by the holder.
        let p3 = Instance::start("p3", &config(c, "p3", &etcd, &name, None), dir.path());
        agreed_writer(&[&p2, &p3]);
        assert!(!p3.holds(), "p3 follows");
        load.add("p3", p3.mysql);
        load.phase_with_acks("p3 started");
        load.phase("switchover on a follower");
        let on_follower = p3.admin(&format!("SWITCHOVER TO '{target}'"));
        let result = |rows: &[common::instance::Row]| {
            rows.first()
                .and_then(|r| r.get("result"))
                .cloned()
                .unwrap_or_default()
        };
        assert!(
            result(&on_follower).starts_with(&format!("switched over from {writer} to {target}")),
            "{on_follower:?}"
        );
        assert_eq!(agreed_writer(&[&p2, &p3]), (target.to_string(), epoch + 1));
        for i in [&p2, &p3] {
            let ran = wait_until("a write after the switchover", || {
                write(i, &db, &format!("{}-a", i.name)).ok()
            });
            assert_eq!(ran, c.nodes[index_of(target)].server_id, "{}", i.name);
        }
        load.phase_with_acks("switched over");
        // The same command on the holder gives the same kind of answer.
        load.phase("switchover on the holder");
        let on_holder = p2.admin(&format!("SWITCHOVER TO '{writer}'"));
        assert!(
            result(&on_holder).starts_with(&format!("switched over from {target} to {writer}")),
            "{on_holder:?}"
        );
        assert_eq!(agreed_writer(&[&p2, &p3]), (writer.clone(), epoch + 2));
        load.phase_with_acks("switched back");
        // Refusals name the same thing whichever instance was asked.
        let refused = |i: &Instance| {
            i.try_admin(&format!("SWITCHOVER TO '{writer}'"))
                .unwrap_err()
        };
        let (f, h) = (refused(&p3), refused(&p2));
        assert!(
            f.contains("already the master") && h.contains("already the master"),
            "{f} / {h}"
        );

        // Operator states live in etcd: set on one instance, seen on the others
        // and by an instance started afterwards.
        load.phase("operator states");
        let replica = target;
        p3.admin(&format!("SET BACKEND '{replica}' DRAIN"));
        let admin_state = |i: &Instance| {
            i.admin("SHOW BACKENDS")
                .into_iter()
                .find(|r| r.get("name").map(String::as_str) == Some(replica))
                .and_then(|r| r.get("admin").cloned())
        };
        wait_until("p2 to apply the operator state", || {
            (admin_state(&p2).as_deref() == Some("drain")).then_some(())
        });
        let p4 = Instance::start("p4", &config(c, "p4", &etcd, &name, None), dir.path());
        wait_until("a new instance to get the operator state", || {
            (admin_state(&p4).as_deref() == Some("drain")).then_some(())
        });
        load.add("p4", p4.mysql);
        p2.admin(&format!("SET BACKEND '{replica}' ONLINE"));
        wait_until("p3 and p4 to put it back online", || {
            [&p3, &p4]
                .iter()
                .all(|i| admin_state(i).as_deref() == Some("online"))
                .then_some(())
        });
        load.phase_with_acks("after");
        (p3, p4)
    });
    let ledger = load.finish();
    ledger.print("holder killed, switchovers");
    // A switchover holds writes at the holder's gate; on the other
    // instances, writes to the old master may fail while it changes
    // (docs/coordination.md, *What remains possible*).
    ledger.assert_errors_only(&[
        ("*", "start", "*"),
        ("p1", "holder killed", "*"),
        ("p3", "switchover on a follower", "*"),
        ("p3", "switchover on the holder", "*"),
        // The holder's own clients (p2) are held at its gate and released
        // to the new master: no error for them.
    ]);
    ledger.assert_on(c, index_of(&writer));
    drop(p2);
    drop(p3);
    drop(p4);
    heal(c);
    eprintln!("holder killed, switchovers: {:.1?}", began.elapsed());
}

#[test]
fn without_etcd_quorum_nothing_is_promoted_and_the_data_path_keeps_working() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let began = Instant::now();
    let c = cluster();
    heal(c);
    let db = table(c, "coord_noquorum");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut etcd = Etcd::start(3, dir.path());
    let name = cluster_name("noquorum");
    let p1 = Instance::start("p1", &config(c, "p1", &etcd, &name, None), dir.path());
    let p2 = Instance::start("p2", &config(c, "p2", &etcd, &name, None), dir.path());
    let (writer, epoch) = agreed_writer(&[&p1, &p2]);
    let master = index_of(&writer);
    let other = 1 - master;
    let load = load_through(c, master, &db, &[&p1, &p2]);

    never_two_writers(c, || {
        load.phase("etcd without quorum");
        etcd.kill_member(1);
        etcd.kill_member(2);
        for i in [&p1, &p2] {
            wait_until(&format!("{} to see etcd unreachable", i.name), || {
                (i.coordination_value("etcd").as_deref() == Some("unreachable")).then_some(())
            });
        }
        // The data path does not need etcd.
        load.wait_all_acked();
        for i in [&p1, &p2] {
            assert_eq!(
                write(i, &db, &format!("{}-noquorum", i.name)),
                Ok(c.nodes[master].server_id)
            );
        }
        // Writes fail through both instances from here until quorum is back
        // and the failover done (docs/coordination.md).
        load.phase("master killed");
        c.kill(master);
        for i in [&p1, &p2] {
            wait_until(&format!("{} to see the master down", i.name), || {
                i.admin("SHOW BACKENDS")
                    .iter()
                    .any(|r| {
                        r.get("name").map(String::as_str) == Some(writer.as_str())
                            && r.get("state").map(String::as_str) == Some("down")
                    })
                    .then_some(())
            });
        }
        // Many monitor intervals and controller ticks: an observation window,
        // not a measured bound.
        thread::sleep(Duration::from_secs(3));
        assert_eq!(
            read_only(c, other),
            "1",
            "nothing was promoted without etcd"
        );
        for i in [&p1, &p2] {
            assert_eq!(i.writer(), Some((writer.clone(), epoch)), "{}", i.name);
        }
        // Reads still work through both instances (served by the live node).
        for i in [&p1, &p2] {
            // (No default schema: `USE` goes to the master, which is down.)
            let read = i.sql(None, &format!("SELECT COUNT(*) FROM `{db}`.w"));
            assert!(read.is_ok(), "{} reads: {read:?}", i.name);
        }

        // Quorum back, master still dead: now the failover happens, once.
        load.phase("quorum back");
        etcd.start_member(1);
        etcd.start_member(2);
        etcd.wait_healthy();
        let new_writer = c.nodes[other].name.to_string();
        wait_until("the failover once etcd answers", || {
            [&p1, &p2]
                .iter()
                .all(|i| i.writer() == Some((new_writer.clone(), epoch + 1)))
                .then_some(())
        });
        for i in [&p1, &p2] {
            let ran = wait_until("writes resume", || {
                write(i, &db, &format!("{}-after", i.name)).ok()
            });
            assert_eq!(ran, c.nodes[other].server_id, "{}", i.name);
        }
        load.phase_with_acks("after");
    });
    let ledger = load.finish();
    ledger.print("no etcd quorum");
    ledger.assert_errors_only(&[
        ("*", "start", "*"),
        ("*", "master killed", "*"),
        ("*", "quorum back", "*"),
    ]);
    ledger.assert_on(c, other);
    drop(p1);
    drop(p2);
    heal(c);
    eprintln!("no etcd quorum: {:.1?}", began.elapsed());
}

#[test]
fn etcd_member_and_instance_restarts_keep_the_writer_and_the_other_instances_serving() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let began = Instant::now();
    let c = cluster();
    heal(c);
    let db = table(c, "coord_rolling");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut etcd = Etcd::start(3, dir.path());
    let name = cluster_name("rolling");
    let configs = [
        config(c, "p1", &etcd, &name, None),
        config(c, "p2", &etcd, &name, None),
    ];
    let start = |n: &str| {
        let cfg = if n == "p1" { &configs[0] } else { &configs[1] };
        Instance::start(n, cfg, dir.path())
    };
    let mut p1 = start("p1");
    wait_until("p1 to hold the election", || p1.holds().then_some(()));
    let mut p2 = start("p2");
    let (writer, epoch) = agreed_writer(&[&p1, &p2]);
    let master = index_of(&writer);
    let master_id = c.nodes[master].server_id;
    let mut load = load_through(c, master, &db, &[&p1, &p2]);
    let mut n = 0;
    // Every write through `inst` succeeds on the writer.
    let mut writes = |inst: &Instance, what: &str| {
        for _ in 0..5 {
            n += 1;
            let ran = write(inst, &db, &format!("{}-{n}", inst.name));
            assert_eq!(ran, Ok(master_id), "{} during {what}", inst.name);
        }
    };

    let (p1, p2) = never_two_writers(c, || {
        // An etcd member restarts: nobody notices.
        load.phase("etcd member down");
        etcd.kill_member(0);
        writes(&p1, "an etcd member down");
        writes(&p2, "an etcd member down");
        load.wait_all_acked();
        load.phase("etcd member back");
        etcd.start_member(0);
        etcd.wait_healthy();
        writes(&p1, "an etcd member back");
        load.wait_all_acked();

        // Rolling restart: the holder first (kill -9), then the other. Only
        // the restarted instance's own clients see errors.
        load.phase("p1 restarts");
        p1.kill();
        load.stop("p1");
        writes(&p2, "the holder's restart");
        wait_until("p2 to take the election", || p2.holds().then_some(()));
        load.wait_acked("p2");
        drop(p1);
        let p1 = start("p1");
        agreed_writer(&[&p1, &p2]);
        writes(&p1, "after its restart");
        load.add("p1b", p1.mysql);
        load.phase_with_acks("p1 back");
        load.phase("p2 restarts");
        p2.kill();
        load.stop("p2");
        writes(&p1, "p2's restart");
        load.wait_acked("p1b");
        drop(p2);
        let p2 = start("p2");
        assert_eq!(
            agreed_writer(&[&p1, &p2]),
            (writer.clone(), epoch),
            "the writer never changed"
        );
        writes(&p2, "after its restart");
        load.add("p2b", p2.mysql);
        load.phase_with_acks("after");
        (p1, p2)
    });
    let changes: u64 = [&p1, &p2].iter().map(|i| number(i, "writer_changes")).sum();
    assert_eq!(changes, 0, "the restarted instances recorded nothing");
    let ledger = load.finish();
    ledger.print("rolling restarts");
    ledger.assert_errors_only(&[
        ("*", "start", "*"),
        ("p1", "p1 restarts", "*"),
        ("p2", "p2 restarts", "*"),
    ]);
    let landed = ledger.assert_on(c, master);
    let ids: Vec<u32> = landed.keys().copied().collect();
    assert_eq!(
        ids,
        vec![master_id],
        "every acknowledged write ran on the writer"
    );
    drop(p1);
    drop(p2);
    heal(c);
    eprintln!("rolling restarts: {:.1?}", began.elapsed());
}

#[test]
fn a_holder_killed_in_the_middle_of_a_forwarded_switchover_leaves_one_writer() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let began = Instant::now();
    let c = cluster();
    heal(c);
    let db = table(c, "coord_midswitch");
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = Etcd::start(1, dir.path());
    let name = cluster_name("midswitch");
    // A short switchover bound, so the forwarded request gives up soon.
    let conf = |n: &str| {
        format!(
            "{}\n[failover]\nswitchover_timeout = \"3s\"\n",
            config(c, n, &etcd, &name, None)
        )
    };
    let mut p1 = Instance::start("p1", &conf("p1"), dir.path());
    wait_until("p1 to hold the election", || p1.holds().then_some(()));
    let p2 = Instance::start("p2", &conf("p2"), dir.path());
    let (writer, epoch) = agreed_writer(&[&p1, &p2]);
    let master = index_of(&writer);
    let target = c.nodes[1 - master].name;
    let mut load = load_through(c, master, &db, &[&p1, &p2]);

    // A transaction open through the holder keeps its switchover waiting
    // at the write gate.
    let mut tx = std::process::Command::new("mariadb")
        .args([
            "--protocol=tcp",
            &format!("-h{}", p1.mysql.ip()),
            &format!("-P{}", p1.mysql.port()),
            &format!("-u{}", common::APP_USER),
            &format!("-p{}", common::APP_PASSWORD),
            &db,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn mariadb");
    {
        use std::io::Write;
        let stdin = tx.stdin.as_mut().expect("stdin");
        writeln!(
            stdin,
            "BEGIN; INSERT INTO w VALUES ('open-tx', @@server_id);"
        )
        .expect("write to mariadb");
        stdin.flush().ok();
    }
    wait_until("the open transaction on the master", || {
        let n = c.nodes[master]
            .value("SELECT COUNT(*) FROM information_schema.INNODB_TRX")
            .ok()?;
        (n != "0").then_some(())
    });
    // Asked on the follower, run by the holder, which dies meanwhile.
    never_two_writers(c, || {
        load.phase("switchover, holder killed");
        let asked = thread::scope(|s| {
            let p2 = &p2;
            let request = s.spawn(move || p2.try_admin(&format!("SWITCHOVER TO '{target}'")));
            thread::sleep(Duration::from_millis(800));
            p1.kill();
            load.stop("p1");
            request
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e))
        });
        tx.kill().ok();
        tx.wait().ok();
        let err = asked.expect_err("the holder died before answering");
        assert!(err.contains("'p1'"), "the error names the holder: {err}");

        wait_until("p2 to take the election", || p2.holds().then_some(()));
        // Rolled back, not half-done: the record, the roles on the nodes and
        // the writes all agree on one writer.
        assert_eq!(p2.writer(), Some((writer.clone(), epoch)));
        wait_until("exactly the recorded writer writable", || {
            (read_only(c, master) == "0" && read_only(c, 1 - master) == "1").then_some(())
        });
        let ran = wait_until("a write through p2", || write(&p2, &db, "p2-after").ok());
        assert_eq!(ran, c.nodes[master].server_id);
        load.phase_with_acks("rolled back");
        // And the new holder can finish the change; it holds its own
        // clients' writes at its gate meanwhile.
        load.phase("switchover by the new holder");
        let done = p2.admin(&format!("SWITCHOVER TO '{target}'"));
        assert!(
            done.first()
                .and_then(|r| r.get("result"))
                .is_some_and(|r| r.starts_with("switched over")),
            "{done:?}"
        );
        assert_eq!(p2.writer(), Some((target.to_string(), epoch + 1)));
        load.phase_with_acks("switched");
        load.phase_with_acks("after");
    });
    let ledger = load.finish();
    ledger.print("holder killed mid-switchover");
    // p2 forwarded the switchover: while the holder changed the roles, p2's
    // writes to the old master could fail (docs/coordination.md).
    ledger.assert_errors_only(&[
        ("*", "start", "*"),
        ("p1", "switchover, holder killed", "*"),
        ("p2", "switchover, holder killed", "*"),
        // p2, now the holder, holds its own clients at its gate during the
        // switchover it runs: no error for them.
    ]);
    ledger.assert_on(c, 1 - master);
    drop(p2);
    heal(c);
    eprintln!("holder killed mid-switchover: {:.1?}", began.elapsed());
}
