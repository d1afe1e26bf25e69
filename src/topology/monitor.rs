//! The health monitor: one task per node checks it every `monitor.interval`
//! under `monitor.timeout`, feeds the result to that node's rise/fall machine
//! and publishes the outcome as a new snapshot. The only code that writes
//! node health. A slow node delays only its own checks.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinSet;
use tokio::time::{self, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::check::{CheckError, CheckErrorKind, MysqlProbe, Probe, ProbeFailure};
use super::gtid::GtidPos;
use super::health::{Health, Transition};
use super::node_ssl::NodeSsl;
use super::snapshot::{CheckRecord, Topology};
use super::{NodeId, NodeState, Role};
use crate::config::{Config, MonitorConfig};

/// How soon a node that was up is checked again after a check that says it
/// may be down (or after a session saw it fail): a kill -9'd master is judged
/// in `fall` × this, not `fall` × `interval`.
const BURST_INTERVAL: Duration = Duration::from_millis(100);

/// Checks every node of `topology` over its own mysql_async connection as
/// `config.monitor.user` until `shutdown` is cancelled.
pub async fn run_monitor(topology: Arc<Topology>, config: Config, shutdown: CancellationToken) {
    let probes = topology
        .snapshot()
        .nodes
        .iter()
        .zip(NodeSsl::for_nodes(&config))
        .map(|(n, ssl)| (n.id, MysqlProbe::new(&n.address, &config.monitor, ssl)))
        .collect();
    run_probes(topology, probes, &config.monitor, shutdown).await;
}

/// [`run_monitor`] with the probes given: one per node id. Returns once
/// every node's task has seen `shutdown`.
pub async fn run_probes<P: Probe>(
    topology: Arc<Topology>,
    probes: Vec<(NodeId, P)>,
    monitor: &MonitorConfig,
    shutdown: CancellationToken,
) {
    let mut tasks = JoinSet::new();
    for (id, probe) in probes {
        let name = topology.snapshot().node(id).map(|n| n.name.clone());
        let span = tracing::info_span!("monitor", node = name.as_deref().unwrap_or("?"));
        let watch = watch_node(
            topology.clone(),
            id,
            probe,
            monitor.clone(),
            shutdown.clone(),
        );
        tasks.spawn(watch.instrument(span));
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            tracing::error!(error = %e, "node monitor task ended abnormally");
        }
    }
}

/// The loop for one node: tick, check, judge, publish.
async fn watch_node<P: Probe>(
    topology: Arc<Topology>,
    id: NodeId,
    mut probe: P,
    monitor: MonitorConfig,
    shutdown: CancellationToken,
) {
    let Some(name) = topology.snapshot().node(id).map(|n| n.name.clone()) else {
        tracing::error!(
            node_id = id,
            "monitor started for a node not in the topology"
        );
        return;
    };
    let mut health = Health::new(monitor.rise, monitor.fall);
    let mut read_only_seen: Option<bool> = None;
    let mut denied_logged = false;
    // Whether this process has seen the node's positions yet.
    let mut watched = false;
    // Checks come every `interval`, or every BURST_INTERVAL while a node that
    // was up shows signs of failing, so it is judged in a fraction of a second.
    let mut next = Instant::now();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = time::sleep_until(next) => {}
            () = topology.suspected(id) => {
                tracing::debug!(node = %name, "a session saw the node fail: checking now");
            }
        }
        let started = Instant::now();
        let checked = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            r = time::timeout(monitor.timeout, probe.check()) => r,
        };
        let result = match checked {
            Ok(Ok(seen)) => Ok(seen),
            Ok(Err(e)) if !e.needs_probe() => Err(e),
            // The check failed: a fresh connection tells a dead process
            // (refused), a node cut off or gone (no answer) and a live one.
            failed => match probe.accepts_connections(monitor.timeout).await {
                Ok(()) => Err(match failed {
                    Ok(Err(e)) => e,
                    _ => CheckError::Stalled {
                        after: monitor.timeout,
                    },
                }),
                Err(ProbeFailure::Refused(detail)) => Err(CheckError::Refused { detail }),
                Err(ProbeFailure::NoAnswer(detail)) => Err(CheckError::Unreachable { detail }),
            },
        };
        let latency = started.elapsed();
        let transition = match &result {
            Ok(_) => {
                denied_logged = false;
                health.observe_success()
            }
            Err(e) if e.is_down_evidence() => {
                let error = e.to_string();
                let transition = health.observe_failure(&error);
                tracing::debug!(node = %name, error = %error, failures = health.failures(), "check failed");
                transition
            }
            Err(e) => {
                if e.kind() == CheckErrorKind::Denied && !denied_logged {
                    tracing::error!(node = %name, error = %e,
                        "the node refuses the monitor (it is not failed over for that): check the monitor user's password and grants (scripts/cluster-init.sql) and the node's max_connections");
                    denied_logged = true;
                } else {
                    tracing::debug!(node = %name, error = %e, "check inconclusive: the node is not judged down for it");
                }
                None
            }
        };
        if let Some(t) = &transition {
            log_transition(&name, t);
        }
        let mut gtid_current = None;
        if let Ok(seen) = &result {
            if read_only_seen != Some(seen.read_only) {
                let role = topology.snapshot().node(id).map(|n| n.role);
                log_read_only(&name, role, seen.read_only);
                read_only_seen = Some(seen.read_only);
            }
            gtid_current = match seen.gtid_current_pos.parse::<GtidPos>() {
                Ok(pos) => Some(pos),
                Err(e) => {
                    tracing::warn!(node = %name, error = %e, "cannot parse @@gtid_current_pos");
                    None
                }
            };
            if !watched {
                // What the node held before this process saw it may have been
                // acknowledged by another: the mark covers only what follows.
                // Unreadable, it is tried again (a later floor is only safer).
                let binlog = seen.gtid_binlog_pos.parse::<GtidPos>();
                if let (Ok(binlog), Some(current)) = (binlog, &gtid_current) {
                    topology.watch_from(&binlog);
                    topology.watch_from(current);
                    watched = true;
                }
            }
        }
        let failing = health.state() == NodeState::Up && health.failures() > 0;
        let check = CheckRecord {
            result,
            gtid_current,
            state: health.state(),
            reason: transition.map(|t| t.reason),
            at: SystemTime::now(),
            latency,
        };
        topology.update_node(id, |node| node.record(&check));
        let wait = if failing {
            BURST_INTERVAL.min(monitor.interval)
        } else {
            monitor.interval
        };
        next = started + wait;
    }
}

fn log_transition(name: &str, t: &Transition) {
    match t.to {
        NodeState::Up => {
            tracing::info!(node = %name, from = %t.from, to = %t.to, reason = %t.reason, "node state changed")
        }
        NodeState::Down => {
            tracing::warn!(node = %name, from = %t.from, to = %t.to, reason = %t.reason, "node state changed")
        }
    }
}

/// A master that refuses writes or a writable replica is worth a line (not
/// an action: roles change only through failover).
fn log_read_only(name: &str, role: Option<Role>, read_only: bool) {
    let Some(role) = role else { return };
    if read_only == (role == Role::Replica) {
        tracing::info!(node = %name, role = %role, read_only, "read_only as expected for the role");
    } else {
        tracing::warn!(node = %name, role = %role, read_only, "read_only does not match the node's role");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::topology::check::Observation;
    use crate::topology::health::ChangeReason;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Step {
        Pass,
        /// Refused: evidence that the node is down.
        Fail,
        /// An answer the monitor cannot use: no evidence either way.
        Unreadable,
        /// Never answers, and no new connection is accepted either.
        Hang,
        /// Never answers, but new connections are accepted (a stopped process).
        Stall,
    }

    /// A probe that follows a script (then passes) and records when it ran.
    struct Scripted {
        steps: VecDeque<Step>,
        calls: Arc<Mutex<Vec<Duration>>>,
        start: Instant,
        server_id: u32,
        last: Step,
    }

    impl Probe for Scripted {
        async fn accepts_connections(&mut self, _: Duration) -> Result<(), ProbeFailure> {
            match self.last {
                Step::Stall | Step::Unreadable => Ok(()),
                Step::Hang => Err(ProbeFailure::NoAnswer("scripted: no answer".into())),
                _ => Err(ProbeFailure::Refused("scripted: refused".into())),
            }
        }

        async fn check(&mut self) -> Result<Observation, CheckError> {
            if let Ok(mut calls) = self.calls.lock() {
                calls.push(self.start.elapsed());
            }
            self.last = self.steps.pop_front().unwrap_or(Step::Pass);
            match self.last {
                Step::Pass => Ok(Observation {
                    read_only: false,
                    server_id: self.server_id,
                    version: "10.11.19-MariaDB".into(),
                    gtid_current_pos: "0-1-1".into(),
                    gtid_binlog_pos: "0-1-1".into(),
                    replication: None,
                    semisync: Default::default(),
                }),
                Step::Fail => Err(CheckError::NoRow { what: "scripted" }),
                Step::Unreadable => Err(CheckError::NoRow { what: "scripted" }),
                Step::Hang | Step::Stall => {
                    time::sleep(Duration::from_secs(3600)).await;
                    Err(CheckError::NoRow { what: "hung" })
                }
            }
        }
    }

    struct Run {
        topology: Arc<Topology>,
        calls: Vec<Arc<Mutex<Vec<Duration>>>>,
        start: Instant,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    impl Run {
        /// One scripted probe per node (nodes a, b, …), monitor started at t=0.
        fn start(scripts: &[&[Step]], interval: u64, timeout: u64, rise: u32, fall: u32) -> Run {
            let names: Vec<String> = (0..scripts.len())
                .map(|i| char::from(b'a' + i as u8).to_string())
                .collect();
            let mut toml =
                String::from("[mysql]\nlisten = \"127.0.0.1:0\"\n[users.app]\npassword = \"x\"\n");
            for (i, name) in names.iter().enumerate() {
                toml.push_str(&format!(
                    "[nodes.{name}]\naddress = \"127.0.0.1:{}\"\npriority = {i}\n",
                    4000 + i
                ));
            }
            let mut config = Config::from_toml_str(&toml, Vec::new()).unwrap();
            config.monitor.interval = ms(interval);
            config.monitor.timeout = ms(timeout);
            config.monitor.rise = rise;
            config.monitor.fall = fall;
            let topology = Topology::new(&config);
            let start = Instant::now();
            let mut calls = Vec::new();
            let probes = scripts
                .iter()
                .enumerate()
                .map(|(id, script)| {
                    let log = Arc::new(Mutex::new(Vec::new()));
                    calls.push(log.clone());
                    let probe = Scripted {
                        steps: script.iter().copied().collect(),
                        calls: log,
                        start,
                        server_id: 100 + id as u32,
                        last: Step::Pass,
                    };
                    (id, probe)
                })
                .collect();
            let shutdown = CancellationToken::new();
            let task = tokio::spawn({
                let (topology, shutdown) = (topology.clone(), shutdown.clone());
                async move { run_probes(topology, probes, &config.monitor, shutdown).await }
            });
            Run {
                topology,
                calls,
                start,
                shutdown,
                task,
            }
        }

        /// The snapshot at `t` ms after the start (paused clock: exact).
        async fn at(&self, t: u64) -> Arc<crate::topology::TopologySnapshot> {
            time::sleep_until(self.start + ms(t)).await;
            self.topology.snapshot()
        }

        fn calls(&self, node: usize) -> Vec<Duration> {
            self.calls[node]
                .lock()
                .map(|c| c.clone())
                .unwrap_or_default()
        }

        async fn stop(self) {
            self.shutdown.cancel();
            self.task.await.unwrap();
        }
    }

    use Step::{Fail, Hang, Pass, Stall, Unreadable};

    #[tokio::test(start_paused = true)]
    async fn checks_every_interval_and_flips_after_rise_and_fall() {
        let run = Run::start(&[&[Pass, Fail, Fail, Pass, Pass]], 100, 50, 2, 2);
        let s = run.at(50).await;
        assert!(s.is_up(0), "first successful check brings the node up");
        assert_eq!(
            s.nodes[0].state_reason,
            Some(ChangeReason::FirstCheckPassed)
        );
        assert_eq!(s.nodes[0].server_id, Some(100));
        assert!(s.nodes[0].last_check.is_some());
        let s = run.at(150).await;
        assert!(s.is_up(0), "one failure is below fall=2");
        assert_eq!(
            s.nodes[0].last_error.as_deref(),
            Some("connection refused: scripted: refused")
        );
        let s = run.at(250).await;
        assert!(!s.is_up(0), "second consecutive failure: down");
        assert!(matches!(
            s.nodes[0].state_reason,
            Some(ChangeReason::Fall { failures: 2, .. })
        ));
        let s = run.at(350).await;
        assert!(!s.is_up(0), "one success is below rise=2");
        assert_eq!(s.nodes[0].last_error, None);
        let s = run.at(450).await;
        assert!(s.is_up(0), "second consecutive success: up");
        assert_eq!(
            s.nodes[0].state_reason,
            Some(ChangeReason::Rise { successes: 2 })
        );
        assert_eq!(s.generation, 5, "one snapshot per check");
        assert_eq!(run.calls(0), [0, 100, 200, 300, 400].map(ms));
        run.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_check_times_out_and_counts_as_a_failure() {
        let run = Run::start(&[&[Pass, Hang, Hang]], 100, 30, 2, 2);
        let s = run.at(180).await;
        assert!(s.is_up(0));
        assert_eq!(
            s.nodes[0].last_error.as_deref(),
            Some("unreachable: scripted: no answer")
        );
        assert_eq!(s.nodes[0].check_latency, Some(ms(30)));
        let s = run.at(229).await;
        assert!(s.is_up(0), "the second hang has not timed out yet");
        let s = run.at(231).await;
        assert!(!s.is_up(0));
        // The timeouts did not shift the schedule.
        assert_eq!(run.calls(0)[..3], [0, 100, 200].map(ms));
        run.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_that_stalls_or_answers_oddly_is_not_judged_down() {
        let run = Run::start(
            &[&[Pass, Stall, Stall, Unreadable, Unreadable]],
            100,
            30,
            2,
            2,
        );
        let s = run.at(180).await;
        assert_eq!(
            s.nodes[0].last_error.as_deref(),
            Some("no answer within 30ms (the node still accepts connections)")
        );
        assert_eq!(s.nodes[0].last_error_kind, Some(CheckErrorKind::Timeout));
        let s = run.at(450).await;
        assert!(s.is_up(0), "no check said the node cannot serve");
        assert_eq!(s.nodes[0].last_error.as_deref(), Some("scripted: no row"));
        run.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_node_is_checked_again_within_the_burst_interval() {
        let run = Run::start(&[&[Pass, Fail, Fail]], 1_000, 50, 2, 2);
        let s = run.at(1_150).await;
        assert!(!s.is_up(0), "down 100 ms after its first failed check");
        assert_eq!(run.calls(0)[..3], [0, 1_000, 1_100].map(ms));
        run.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_that_saw_the_node_fail_brings_its_check_forward() {
        let run = Run::start(&[&[Pass, Fail, Fail]], 1_000, 50, 2, 2);
        run.at(300).await;
        run.topology.suspect(0);
        let s = run.at(450).await;
        assert!(!s.is_up(0), "checked at 300 and 400, not at 1000");
        assert_eq!(run.calls(0)[..3], [0, 300, 400].map(ms));
        run.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_longer_than_the_interval_delays_the_next_without_a_burst() {
        let run = Run::start(&[&[Pass, Hang]], 100, 250, 1, 1);
        run.at(480).await;
        // Check at 100 hangs until its timeout at 350; the next starts then,
        // and the schedule continues one interval apart.
        assert_eq!(run.calls(0), [0, 100, 350, 450].map(ms));
        run.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_node_does_not_delay_the_others() {
        let run = Run::start(&[&[Hang, Hang, Hang], &[]], 100, 1_000, 2, 2);
        let s = run.at(350).await;
        assert_eq!(run.calls(1), [0, 100, 200, 300].map(ms));
        assert_eq!(run.calls(0), [0].map(ms));
        assert!(s.is_up(1) && !s.is_up(0));
        assert_eq!(s.nodes[1].server_id, Some(101));
        assert_eq!(s.nodes[0].last_check, None, "still in its first check");
        run.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_every_node_even_mid_check() {
        let run = Run::start(&[&[Pass], &[Hang]], 100, 10_000, 2, 2);
        run.at(150).await;
        let (a, b) = (run.calls.first().cloned(), run.calls.get(1).cloned());
        run.stop().await;
        let count = |c: &Option<Arc<Mutex<Vec<Duration>>>>| {
            c.as_ref()
                .and_then(|c| c.lock().ok().map(|v| v.len()))
                .unwrap_or(0)
        };
        let before = (count(&a), count(&b));
        time::sleep(Duration::from_secs(10)).await;
        assert_eq!((count(&a), count(&b)), before, "no check after shutdown");
        assert_eq!(before, (2, 1));
    }
}
