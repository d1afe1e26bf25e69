//! Unit tests of the command loop with a scripted fake behind [`Nodes`]:
//! which node each command is sent to, what the client gets back, and what
//! a reply changes in the session. The client is the other end of a
//! loopback socket; no node is involved.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::backend::{Abandon, ClientSink, Credentials, Job, Ran, RelayOutcome, SessionSetup};
use crate::config::Config;
use crate::frontend::login::Login;
use crate::protocol::com;
use crate::protocol::handshake::{ClientHello, NativeSecret};
use crate::topology::{
    failover_channel, IoThread, NodeId, NodeState, ReplicationStatus, Topology, TopologySnapshot,
};

const MASTER: NodeId = 0;
const REPLICA: NodeId = 1;

/// What the fake node answers to one command.
#[derive(Debug, Clone)]
enum Answer {
    /// OK with these status flags (and a `last_gtid` if given).
    Ok(u16, Option<&'static str>),
    /// An ERR packet with this code.
    Err(u16),
    /// The connection dies after the command reached the node, before any
    /// byte of the reply reached the client.
    Lost,
    /// The node refuses the connection: the command never reached it.
    Refused,
}

/// One command as the fake saw it.
#[derive(Debug, Clone, PartialEq)]
struct Sent {
    node: NodeId,
    fallback: Option<NodeId>,
    payload: Vec<u8>,
    /// How many SETs the setup held when it ran.
    sets: usize,
}

#[derive(Default)]
struct FakeNodes {
    answers: VecDeque<Answer>,
    sent: Vec<Sent>,
    synced: Vec<(NodeId, SessionSetup)>,
    released: usize,
    /// Multiplexing hand-backs asked for.
    given_back: usize,
}

fn ok_packet(status: u16) -> Vec<u8> {
    let mut p = vec![0, 0, 0];
    p.extend_from_slice(&status.to_le_bytes());
    p.extend_from_slice(&[0, 0]);
    p
}

impl Nodes for FakeNodes {
    async fn run(
        &mut self,
        node: NodeId,
        fallback: Option<NodeId>,
        job: Job<'_>,
        setup: &SessionSetup,
        client: &mut ClientSink<'_>,
        _: Option<Abandon>,
    ) -> Result<Ran, NetError> {
        let payload = match job {
            Job::Plain { payload, .. }
            | Job::Prepare { payload }
            | Job::Execute { payload, .. }
            | Job::Fetch { payload, .. }
            | Job::Reset { payload, .. } => payload.to_vec(),
        };
        self.sent.push(Sent {
            node,
            fallback,
            payload,
            sets: setup.set_log.len(),
        });
        let answer = self
            .answers
            .pop_front()
            .unwrap_or(Answer::Ok(status::AUTOCOMMIT, None));
        let mut outcome = RelayOutcome::default();
        match answer {
            Answer::Ok(s, gtid) => {
                client.io.queue(1, &ok_packet(s));
                outcome.status = Some(s);
                outcome.last_gtid = gtid.map(str::to_string);
            }
            Answer::Err(code) => {
                let err = ProxyError {
                    code,
                    state: "HY000",
                    message: "fake".into(),
                };
                client.io.queue(1, &err.to_payload());
                outcome.error = Some(code);
            }
            Answer::Lost => {
                return Ok(Ran::Lost {
                    node,
                    delivered: true,
                    sent: false,
                    next_seq: 1,
                    error: "reset by the fake".into(),
                    torn: false,
                })
            }
            Answer::Refused => {
                let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
                return Ok(Ran::Unavailable {
                    node,
                    error: BackendError::Connect(refused),
                });
            }
        }
        client.io.flush().await?;
        Ok(Ran::Replied {
            node,
            outcome,
            took: Duration::ZERO,
            fell_back_from: None,
        })
    }

    async fn open(&mut self, _: NodeId, _: &SessionSetup) -> Result<(), BackendError> {
        Ok(())
    }

    async fn side_query(
        &mut self,
        _: NodeId,
        _: &SessionSetup,
        _: &str,
    ) -> Result<crate::backend::RelayOutcome, BackendError> {
        Err(BackendError::Protocol("no side queries in the fake"))
    }

    async fn send_long_data(
        &mut self,
        _: NodeId,
        _: u32,
        _: &[u8],
        _: &SessionSetup,
    ) -> Result<(), BackendError> {
        Ok(())
    }

    async fn close_statement(&mut self, _: u32) {}

    async fn reset_other_copies(&mut self, _: u32, _: NodeId, _: &[u8]) {}

    fn next_statement_id(&self) -> u32 {
        1
    }

    fn statement_text(&self, _: u32) -> Option<&[u8]> {
        None
    }

    fn statement_params(&self, _: u32) -> Option<(u16, Option<&[u8]>)> {
        None
    }

    fn note_types(&mut self, _: u32, _: &[u8]) {}

    fn mark_synced(&mut self, node: NodeId, setup: &SessionSetup) {
        self.synced.push((node, setup.clone()));
    }

    fn release_all(&mut self) {
        self.released += 1;
    }

    fn keep_from_other_sessions(&mut self) {}

    fn release_untied(&mut self) -> usize {
        self.given_back += 1;
        0
    }

    fn slot_wanted(&self) -> bool {
        false
    }

    fn change_user(&mut self, _: Credentials, _: u8) {}

    fn held(&self) -> impl Iterator<Item = bool> + '_ {
        [false, false].into_iter()
    }

    fn node_name(&self, node: NodeId) -> Arc<str> {
        Arc::from(format!("cn{}", node + 1).as_str())
    }
}

const CONFIG: &str = r#"
[mysql]
listen = "127.0.0.1:0"
[nodes.cn1]
address = "127.0.0.1:3301"
priority = 1
[nodes.cn2]
address = "127.0.0.1:3302"
priority = 2
[users.app]
password = "app"
[monitor]
user = "monitor"
password = "monitor"
[failover]
hold = "300ms"
"#;

/// A session whose nodes are `fake`, its client the returned socket; cn1
/// is the master and cn2 a healthy replica.
async fn session(fake: FakeNodes) -> (Session<FakeNodes>, TcpStream) {
    let config = Arc::new(Config::from_toml_str(CONFIG, []).expect("config"));
    let topology = Topology::new(&config);
    let mut snap = TopologySnapshot::clone(&topology.snapshot());
    snap.master = Some(MASTER);
    for n in &mut snap.nodes {
        n.state = NodeState::Up;
    }
    snap.nodes[REPLICA].replication = Some(ReplicationStatus {
        io_thread: IoThread::Running,
        sql_running: true,
        seconds_behind_master: Some(0),
        gtid_io_pos: None,
        last_io_error: None,
        last_sql_error: None,
        master_host: Some("127.0.0.1".into()),
        master_port: Some(3301),
    });
    snap.nodes[REPLICA].gtid_current = "0-1-10".parse().ok();
    topology.replace(snap);
    let pools = crate::backend::Pools::new(&config, Vec::new());
    let ctx = ProxyContext::new(config, topology, pools, failover_channel().0);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    let activity = ctx
        .sessions
        .register(1, "app", None, None, Arc::default(), None);
    let login = Login {
        hello: ClientHello {
            capabilities: caps::PROTOCOL_41 | caps::DEPRECATE_EOF,
            collation: 45,
            user: b"app".to_vec(),
            auth: Vec::new(),
            db: None,
            plugin: None,
        },
        creds: Credentials {
            user: Arc::from("app"),
            secret: NativeSecret::from_password("pw"),
        },
        caps: caps::PROTOCOL_41 | caps::DEPRECATE_EOF,
        next_seq: 2,
        tls: None,
    };
    let session = Session::new(ctx, PacketIo::new(server), login, [0; 20], activity, fake);
    (session, client)
}

fn query(sql: &str) -> Vec<u8> {
    let mut p = vec![0x03];
    p.extend_from_slice(sql.as_bytes());
    p
}

/// Runs one command through the session's dispatcher.
async fn send(s: &mut Session<FakeNodes>, payload: &[u8]) -> Result<Flow, FrontendError> {
    s.dispatch(Command::parse(payload), payload, 1).await
}

/// The next packet the client got: its payload.
async fn reply(client: &mut TcpStream) -> Vec<u8> {
    let mut h = [0u8; 4];
    client.read_exact(&mut h).await.expect("header");
    let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
    let mut p = vec![0u8; len];
    client.read_exact(&mut p).await.expect("payload");
    p
}

fn fake(answers: &[Answer]) -> FakeNodes {
    FakeNodes {
        answers: answers.iter().cloned().collect(),
        ..FakeNodes::default()
    }
}

#[tokio::test]
async fn a_transaction_keeps_every_statement_on_the_master() {
    let in_tx = status::AUTOCOMMIT | status::IN_TRANS;
    let (mut s, mut client) = session(fake(&[
        Answer::Ok(in_tx, None),
        Answer::Ok(in_tx, None),
        Answer::Ok(status::AUTOCOMMIT, None),
    ]))
    .await;
    for sql in ["BEGIN", "SELECT 1", "COMMIT"] {
        assert!(send(&mut s, &query(sql)).await.is_ok());
        assert_eq!(reply(&mut client).await[0], 0x00, "{sql}");
    }
    let nodes: Vec<NodeId> = s.nodes.sent.iter().map(|c| c.node).collect();
    assert_eq!(nodes, [MASTER, MASTER, MASTER]);
    assert!(
        !s.tx_counted,
        "COMMIT closed the transaction in the gate's count"
    );
    assert!(!s.state.in_transaction());
}

#[tokio::test]
async fn a_transaction_is_counted_before_its_first_statement_leaves_the_gate() {
    let in_tx = status::AUTOCOMMIT | status::IN_TRANS;
    let (mut s, mut client) = session(fake(&[Answer::Ok(in_tx, None)])).await;
    assert!(send(&mut s, &query("BEGIN")).await.is_ok());
    assert_eq!(reply(&mut client).await[0], 0x00);
    // The command is handled and its effects applied: the transaction is
    // counted in the gate while the statement's pass is still held (the
    // command loop drops it next), so a switchover never sees the count at
    // zero in between and fences the master under the open transaction.
    assert!(s.tx_counted);
    assert!(
        s.write_pass.is_some(),
        "the pass outlives the reply's effects"
    );
}

#[tokio::test]
async fn after_a_write_reads_wait_for_the_replica_to_apply_it() {
    // The replica is at 0-1-10; the write commits 0-1-11.
    let (mut s, mut client) =
        session(fake(&[Answer::Ok(status::AUTOCOMMIT, Some("0-1-11"))])).await;
    send(&mut s, &query("INSERT INTO t VALUES (1)")).await.ok();
    reply(&mut client).await;
    assert_eq!(s.state.last_gtid, "0-1-11".parse().ok());
    for _ in 0..20 {
        send(&mut s, &query("SELECT * FROM t")).await.ok();
        reply(&mut client).await;
    }
    assert!(
        s.nodes.sent[1..].iter().all(|c| c.node == MASTER),
        "a read went to a replica that lacks the session's write"
    );
}

#[tokio::test]
async fn reads_split_and_may_fall_back_to_the_master() {
    let (mut s, mut client) = session(FakeNodes::default()).await;
    for _ in 0..40 {
        send(&mut s, &query("SELECT 1")).await.ok();
        reply(&mut client).await;
    }
    let on_replica: Vec<&Sent> = s.nodes.sent.iter().filter(|c| c.node == REPLICA).collect();
    assert!(!on_replica.is_empty(), "reads are split");
    assert!(on_replica.iter().all(|c| c.fallback == Some(MASTER)));
}

#[tokio::test]
async fn a_session_set_is_recorded_and_the_connection_marked_in_sync() {
    let (mut s, mut client) = session(FakeNodes::default()).await;
    send(&mut s, &query("SET SESSION sql_mode = ''")).await.ok();
    reply(&mut client).await;
    assert_eq!(s.state.setup.set_log, [query("SET SESSION sql_mode = ''")]);
    assert_eq!(s.nodes.synced.len(), 1);
    assert_eq!(s.nodes.synced[0].0, MASTER);
    send(&mut s, &query("SELECT 1")).await.ok();
    reply(&mut client).await;
    assert_eq!(
        s.nodes.sent[1].sets, 1,
        "the next command's node gets the SET"
    );
    assert!(s.state.pinned.is_none());
}

#[tokio::test]
async fn a_failed_set_changes_nothing() {
    let (mut s, mut client) = session(fake(&[Answer::Err(1193)])).await;
    send(&mut s, &query("SET SESSION no_such_var = 1"))
        .await
        .ok();
    let err = reply(&mut client).await;
    assert_eq!((err[0], u16::from_le_bytes([err[1], err[2]])), (0xff, 1193));
    assert!(s.state.setup.set_log.is_empty());
    assert!(s.nodes.synced.is_empty());
}

#[tokio::test]
async fn a_user_variable_pins_the_session_to_the_master() {
    let (mut s, mut client) = session(FakeNodes::default()).await;
    send(&mut s, &query("SET @cart = 7")).await.ok();
    reply(&mut client).await;
    assert_eq!(s.state.pinned, Some(Why::UserVariable));
    for _ in 0..20 {
        send(&mut s, &query("SELECT 1")).await.ok();
        reply(&mut client).await;
    }
    assert!(s.nodes.sent.iter().all(|c| c.node == MASTER));
}

#[tokio::test]
async fn losing_the_master_inside_a_transaction_ends_the_session() {
    let in_tx = status::AUTOCOMMIT | status::IN_TRANS;
    let (mut s, mut client) = session(fake(&[Answer::Ok(in_tx, None), Answer::Lost])).await;
    send(&mut s, &query("BEGIN")).await.ok();
    reply(&mut client).await;
    let flow = send(&mut s, &query("UPDATE t SET a = 1")).await;
    assert!(
        matches!(flow, Err(FrontendError::Closed)),
        "{:?}",
        flow.err()
    );
    let err = reply(&mut client).await;
    assert_eq!(
        u16::from_le_bytes([err[1], err[2]]),
        1927,
        "ER_CONNECTION_KILLED"
    );
}

#[tokio::test]
async fn losing_a_connection_outside_a_transaction_is_one_error() {
    let (mut s, mut client) = session(fake(&[Answer::Lost])).await;
    let flow = send(&mut s, &query("UPDATE t SET a = 1")).await;
    assert!(matches!(flow, Ok(Flow::Continue)));
    let err = reply(&mut client).await;
    assert_eq!(u16::from_le_bytes([err[1], err[2]]), 1927);
    send(&mut s, &query("SELECT 1")).await.ok();
    assert_eq!(reply(&mut client).await[0], 0x00, "the session carries on");
}

#[tokio::test]
async fn without_a_master_a_write_waits_then_fails_and_the_session_goes_on() {
    let (mut s, mut client) = session(FakeNodes::default()).await;
    let mut snap = TopologySnapshot::clone(&s.ctx.topology.snapshot());
    snap.master = None;
    s.ctx.topology.replace(snap);
    let flow = send(&mut s, &query("INSERT INTO t VALUES (1)")).await;
    assert!(matches!(flow, Ok(Flow::Continue)), "{:?}", flow.err());
    let err = reply(&mut client).await;
    let code = u16::from_le_bytes([err[1], err[2]]);
    assert_eq!(code, ProxyError::no_node("x").code);
    assert!(s.nodes.sent.is_empty(), "nothing reached a node");
}

#[tokio::test]
async fn a_write_held_while_no_master_runs_once_one_is_named() {
    let (mut s, mut client) = session(FakeNodes::default()).await;
    let topology = Arc::clone(&s.ctx.topology);
    let mut headless = TopologySnapshot::clone(&topology.snapshot());
    headless.master = None;
    topology.replace(headless.clone());
    let promote = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        headless.master = Some(REPLICA);
        topology.replace(headless);
    });
    send(&mut s, &query("INSERT INTO t VALUES (1)")).await.ok();
    assert_eq!(reply(&mut client).await[0], 0x00, "the client got the OK");
    assert_eq!(s.nodes.sent.len(), 1);
    assert_eq!(
        s.nodes.sent[0].node, REPLICA,
        "on the master named meanwhile"
    );
    promote.await.ok();
}

#[tokio::test]
async fn a_command_that_never_reached_a_node_runs_again() {
    let (mut s, mut client) = session(fake(&[
        Answer::Refused,
        Answer::Ok(status::AUTOCOMMIT, None),
    ]))
    .await;
    send(&mut s, &query("UPDATE t SET a = 1")).await.ok();
    assert_eq!(
        reply(&mut client).await[0],
        0x00,
        "the client never saw the refusal"
    );
    assert_eq!(s.nodes.sent.len(), 2);
}

#[tokio::test]
async fn a_write_that_may_have_run_is_never_run_twice() {
    let (mut s, mut client) = session(fake(&[Answer::Lost])).await;
    send(&mut s, &query("UPDATE t SET a = a + 1")).await.ok();
    let err = reply(&mut client).await;
    assert_eq!(u16::from_le_bytes([err[1], err[2]]), 1927);
    assert_eq!(
        s.nodes.sent.len(),
        1,
        "the write may have committed: not re-run"
    );
}

#[tokio::test]
async fn a_read_whose_node_died_before_answering_runs_again() {
    let (mut s, mut client) = session(fake(&[Answer::Lost])).await;
    send(&mut s, &query("SELECT 1")).await.ok();
    assert_eq!(reply(&mut client).await[0], 0x00);
    assert_eq!(s.nodes.sent.len(), 2);
}

#[tokio::test]
async fn inside_a_transaction_a_failed_node_is_an_error_at_once() {
    let in_tx = status::AUTOCOMMIT | status::IN_TRANS;
    let (mut s, mut client) = session(fake(&[Answer::Ok(in_tx, None), Answer::Refused])).await;
    send(&mut s, &query("BEGIN")).await.ok();
    reply(&mut client).await;
    send(&mut s, &query("UPDATE t SET a = 1")).await.ok();
    assert_eq!(reply(&mut client).await[0], 0xff);
    assert_eq!(s.nodes.sent.len(), 2, "no second try inside a transaction");
}

#[tokio::test]
async fn reset_connection_drops_every_piece_of_session_state() {
    let (mut s, mut client) = session(FakeNodes::default()).await;
    for sql in ["SET SESSION sql_mode = ''", "SET @a = 1"] {
        send(&mut s, &query(sql)).await.ok();
        reply(&mut client).await;
    }
    send(&mut s, &[com::RESET_CONNECTION]).await.ok();
    assert_eq!(reply(&mut client).await[0], 0x00);
    assert!(s.state.setup.set_log.is_empty() && s.state.pinned.is_none());
    assert_eq!(
        s.nodes.released, 1,
        "node connections went back to be reset"
    );
}

#[tokio::test]
async fn an_unknown_statement_id_gets_1243() {
    let (mut s, mut client) = session(FakeNodes::default()).await;
    let execute = [0x17, 9, 0, 0, 0, 0, 1, 0, 0, 0];
    send(&mut s, &execute).await.ok();
    let err = reply(&mut client).await;
    assert_eq!(u16::from_le_bytes([err[1], err[2]]), 1243);
    assert!(s.nodes.sent.is_empty());
}

/// Every command runs in a future boxed for it, so that an idle session is
/// small; the box is as large as the largest path a command can take, and
/// each command pays the copy into it. A rare path with a large future (the
/// result cache's single-flight load) must be boxed on its own.
#[tokio::test]
async fn a_commands_future_stays_small() {
    let (mut s, _client) = session(fake(&[])).await;
    let payload = query("SELECT 1");
    let f = s.dispatch(Command::parse(&payload), &payload, 1);
    let size = std::mem::size_of_val(&f);
    drop(f);
    assert!(size <= 8 * 1024, "a command's future takes {size} bytes");
}
