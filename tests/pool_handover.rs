//! Where a node connection changes hands (back to the pool, then to another
//! session), it must owe no reply and have nothing readable. These tests
//! drive the pool directly against a real node and try each way a
//! connection could arrive dirty: returned before its reply was read, with
//! a second reply still in flight, and closed by the node while idle. And
//! through the proxy: a session's own connection, closed by the node while
//! the session ran a statement elsewhere, is never written to.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cluster, connect, Proxy, APP_PASSWORD, APP_USER};
use mysql_async::prelude::Queryable;
use sqlproxy::backend::{relay, BackendConn, ConnKey, Credentials, Pools, Sink};
use sqlproxy::protocol::handshake::NativeSecret;
use sqlproxy::protocol::response::Expect;

const TEXT: Expect = Expect::Results {
    binary: false,
    cursor: false,
};

fn setup() -> (Arc<Pools>, ConnKey, Credentials) {
    let pools = Pools::new(&cluster().config(), Vec::new());
    let user: Arc<str> = Arc::from(APP_USER);
    let key = ConnKey {
        user: Arc::clone(&user),
        caps: 0,
        collation: 45,
        schema: None,
    };
    let creds = Credentials {
        user,
        secret: NativeSecret::from_password(APP_PASSWORD),
    };
    (pools, key, creds)
}

/// Waits until the pool holds an idle connection to cn1 (a used connection
/// is reset in the background before it goes back).
async fn settled(pools: &Pools, idle: usize) {
    let began = Instant::now();
    while pools.idle_counts()[0].1 != idle {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the pool never reached {idle} idle connection(s)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn query(sql: &str) -> Vec<u8> {
    let mut p = vec![0x03];
    p.extend_from_slice(sql.as_bytes());
    p
}

async fn take(pools: &Pools, key: &ConnKey, creds: &Credentials) -> BackendConn {
    pools.checkout(0, key, creds).await.expect("checkout")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_reply_was_read_is_reused() {
    let _g = cluster().shared().await;
    let (pools, key, creds) = setup();
    let mut conn = take(&pools, &key, &creds).await;
    let first = conn.id;
    conn.send(&query("SELECT 'mine'")).await.expect("send");
    relay(&mut conn, Sink::Discard, TEXT).await.expect("relay");
    assert!(conn.can_change_hands());
    pools.checkin(conn);
    settled(&pools, 1).await;
    assert_eq!(take(&pools, &key, &creds).await.id, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_returned_mid_reply_is_closed() {
    let _g = cluster().shared().await;
    let (pools, key, creds) = setup();
    let mut conn = take(&pools, &key, &creds).await;
    let first = conn.id;
    // An OK-only reply: a reset that took it for its own would leave its
    // own replies unread for the next session.
    conn.send(&query("DO SLEEP(0.2)")).await.expect("send");
    assert!(!conn.can_change_hands(), "a reply is owed");
    pools.checkin(conn);
    tokio::time::sleep(Duration::from_millis(300)).await;
    settled(&pools, 0).await;
    let mut next = take(&pools, &key, &creds).await;
    assert_ne!(
        next.id, first,
        "the connection with an unread reply was handed out"
    );
    next.send(&query("SELECT 'mine'")).await.expect("send");
    relay(&mut next, Sink::Discard, TEXT).await.expect("relay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_with_bytes_beyond_its_reply_is_closed() {
    let _g = cluster().shared().await;
    let (pools, key, creds) = setup();
    let mut conn = take(&pools, &key, &creds).await;
    let first = conn.id;
    // Two commands, one reply read: the second arrives after the first
    // reply ended, whether it is already buffered or still on the socket.
    conn.send(&query("SELECT 1")).await.expect("send");
    conn.send(&query("SELECT 2")).await.expect("send");
    relay(&mut conn, Sink::Discard, TEXT).await.expect("relay");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!conn.can_change_hands(), "the second reply is readable");
    pools.checkin(conn);
    settled(&pools, 0).await;
    assert_ne!(take(&pools, &key, &creds).await.id, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_the_node_closed_is_not_handed_out() {
    let c = cluster();
    let _g = c.shared().await;
    let (pools, key, creds) = setup();
    let conn = take(&pools, &key, &creds).await;
    let (first, thread) = (conn.id, conn.thread_id);
    pools.checkin(conn);
    settled(&pools, 1).await;
    c.nodes[0].sql(&format!("KILL {thread}")).expect("kill");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_ne!(take(&pools, &key, &creds).await.id, first);
}

/// A switchover's fence kills the client connections of the master it
/// demotes, and that node can be master again moments later: a session
/// coming back to it must not send a write down the connection it still
/// holds there, where it would be lost (1927) with no way to know whether
/// it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_connection_the_node_closed_while_the_session_was_away_is_not_written_to() {
    let c = cluster();
    // Kills every application connection on cn1: no other test may run.
    let _g = c.exclusive().await;
    let db = c.fresh_db("held_conn_killed");
    let proxy = Proxy::start(c.config());
    let mut conn = connect(&proxy.url(Some(&db))).await;
    conn.query_drop("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, node INT)")
        .await
        .expect("create");
    conn.query_drop("INSERT INTO t (node) VALUES (@@server_id)")
        .await
        .expect("first write");
    // The session moves to the replica (once it has the write: reads
    // follow the session's writes)...
    let began = Instant::now();
    while server_id_of(&mut conn, "SELECT /* sqlproxy:replica */ @@server_id").await != 2 {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "cn2 never took a read"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ...and meanwhile cn1 closes the connection the session holds there,
    // as a switchover's fence does.
    let mut direct = connect(&c.direct_url(0, None)).await;
    let ids: Vec<u64> = direct
        .query(
            "SELECT ID FROM information_schema.PROCESSLIST \
             WHERE USER = 'prestashop' AND ID <> CONNECTION_ID()",
        )
        .await
        .expect("processlist");
    assert!(!ids.is_empty(), "the session holds a connection to cn1");
    for id in ids {
        // Gone meanwhile (1094) is fine.
        let _ = direct.query_drop(format!("KILL CONNECTION {id}")).await;
    }
    conn.query_drop("INSERT INTO t (node) VALUES (@@server_id)")
        .await
        .expect("the write after coming back to cn1");
    let rows: Vec<u32> = direct
        .query(format!("SELECT node FROM {db}.t ORDER BY id"))
        .await
        .expect("rows on cn1");
    assert_eq!(rows, [1, 1], "both writes on cn1");
}

async fn server_id_of(conn: &mut mysql_async::Conn, sql: &str) -> u32 {
    match conn.query_first::<u32, _>(sql).await {
        Ok(Some(id)) => id,
        other => panic!("{sql}: {other:?}"),
    }
}

/// An account made for the privilege test, and one that may grant.
const PROBE_USER: &str = "pool_probe";
const GRANTOR_USER: &str = "pool_grantor";
const TEST_PASSWORD: &str = "pool-test";

/// `SHOW ENGINE INNODB STATUS` (needs PROCESS) as the probe, through the
/// proxy in a new session: Ok, or the error code.
async fn probe_process(url: &str) -> Result<(), u16> {
    let mut conn = connect(url).await;
    let r = conn
        .query_drop("SHOW ENGINE INNODB STATUS")
        .await
        .map_err(|e| match e {
            mysql_async::Error::Server(e) => e.code,
            e => panic!("expected a server error, got {e}"),
        });
    conn.disconnect().await.expect("disconnect");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_through_the_proxy_reaches_the_next_session_as_a_new_node_login_would() {
    let c = cluster();
    let _g = c.shared().await;
    c.nodes[0]
        .sql(&format!(
            "CREATE USER IF NOT EXISTS '{PROBE_USER}'@'%' IDENTIFIED BY '{TEST_PASSWORD}'; \
             REVOKE ALL PRIVILEGES, GRANT OPTION FROM '{PROBE_USER}'@'%'; \
             CREATE USER IF NOT EXISTS '{GRANTOR_USER}'@'%' IDENTIFIED BY '{TEST_PASSWORD}'; \
             GRANT ALL ON *.* TO '{GRANTOR_USER}'@'%' WITH GRANT OPTION"
        ))
        .expect("accounts");
    c.wait_replicated();
    let toml = format!(
        "{}\n[users.{PROBE_USER}]\npassword = \"{TEST_PASSWORD}\"\n\
         [users.{GRANTOR_USER}]\npassword = \"{TEST_PASSWORD}\"\n",
        c.config_toml()
    );
    let config = sqlproxy::config::Config::from_toml_str(&toml, [])
        .unwrap_or_else(|e| panic!("config: {e}"));
    let proxy = Proxy::start(config);
    let url_of = |user: &str| {
        format!(
            "mysql://{user}:{TEST_PASSWORD}@{}?prefer_socket=false",
            proxy.addr
        )
    };
    let probe = url_of(PROBE_USER);
    // The probe's sessions leave their node connections in the pool.
    for _ in 0..3 {
        assert_eq!(probe_process(&probe).await, Err(1227), "no PROCESS yet");
    }
    let mut grantor = connect(&url_of(GRANTOR_USER)).await;
    grantor
        .query_drop(format!("GRANT PROCESS ON *.* TO '{PROBE_USER}'@'%'"))
        .await
        .expect("grant");
    // A new session logs in after the grant: it has it, as on the node.
    assert_eq!(probe_process(&probe).await, Ok(()));
    grantor
        .query_drop(format!("REVOKE PROCESS ON *.* FROM '{PROBE_USER}'@'%'"))
        .await
        .expect("revoke");
    assert_eq!(probe_process(&probe).await, Err(1227), "revoked again");
    // Granted on the node itself, then reloaded through the proxy: the
    // pooled connection from before the grant must not serve the next
    // session either.
    c.nodes[0]
        .sql(&format!("GRANT PROCESS ON *.* TO '{PROBE_USER}'@'%'"))
        .expect("direct grant");
    c.wait_replicated();
    grantor
        .query_drop("FLUSH PRIVILEGES")
        .await
        .expect("flush privileges");
    assert_eq!(
        probe_process(&probe).await,
        Ok(()),
        "after FLUSH PRIVILEGES"
    );
    grantor.disconnect().await.expect("disconnect");
}

/// MariaDB keeps the current role through COM_RESET_CONNECTION: a session
/// that ran `SET ROLE` must not hand its connection, role and all, to the
/// next session, which must start with the role a new login gets (none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_one_session_set_does_not_reach_the_next_and_its_reads_see_it() {
    let c = cluster();
    let _g = c.shared().await;
    c.nodes[0]
        .sql(&format!(
            "CREATE ROLE IF NOT EXISTS {TEST_ROLE};              CREATE USER IF NOT EXISTS '{ROLE_USER}'@'%' IDENTIFIED BY '{TEST_PASSWORD}';              GRANT {TEST_ROLE} TO '{ROLE_USER}'@'%';              SET DEFAULT ROLE NONE FOR '{ROLE_USER}'@'%'"
        ))
        .expect("role and account");
    c.wait_replicated();
    let toml = format!(
        "{}\n[users.{ROLE_USER}]\npassword = \"{TEST_PASSWORD}\"\n",
        c.config_toml()
    );
    let mut config = sqlproxy::config::Config::from_toml_str(&toml, [])
        .unwrap_or_else(|e| panic!("config: {e}"));
    config.pool.max_idle = 4;
    config.routing.read_split = false;
    let proxy = Proxy::start(config);
    let url = format!(
        "mysql://{ROLE_USER}:{TEST_PASSWORD}@{}?prefer_socket=false",
        proxy.addr
    );
    let role_of = |sql: &'static str| {
        let url = url.clone();
        async move {
            let mut conn = connect(&url).await;
            if !sql.is_empty() {
                conn.query_drop(sql).await.expect("SET ROLE");
            }
            let role: Option<Option<String>> = conn
                .query_first("SELECT CURRENT_ROLE()")
                .await
                .expect("CURRENT_ROLE()");
            conn.disconnect().await.expect("disconnect");
            role.flatten()
        }
    };
    // A new login on the node has no role, as the account says.
    assert_eq!(role_of("").await, None);
    // Set plainly, and through a text the proxy does not read.
    for (round, set_role) in [
        SET_TEST_ROLE,
        EXECUTE_SET_TEST_ROLE,
        SET_TEST_ROLE,
        EXECUTE_SET_TEST_ROLE,
    ]
    .into_iter()
    .enumerate()
    {
        let set = role_of(set_role).await;
        assert_eq!(set.as_deref(), Some(TEST_ROLE), "round {round}: {set_role}");
        let began = Instant::now();
        while proxy.context.pools.idle_counts()[0].1 == 0
            && began.elapsed() < Duration::from_secs(2)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            role_of("").await,
            None,
            "round {round}: the role set by {set_role} reached the next session"
        );
    }
    drop(proxy);

    // With reads split, the session's reads see its role, as on the node.
    let mut config = sqlproxy::config::Config::from_toml_str(&toml, [])
        .unwrap_or_else(|e| panic!("config: {e}"));
    config.routing.read_split = true;
    let proxy = Proxy::start(config);
    let url = format!(
        "mysql://{ROLE_USER}:{TEST_PASSWORD}@{}?prefer_socket=false",
        proxy.addr
    );
    let mut conn = connect(&url).await;
    conn.query_drop(SET_TEST_ROLE).await.expect("SET ROLE");
    for i in 0..8 {
        let role: Option<Option<String>> = conn
            .query_first("SELECT CURRENT_ROLE()")
            .await
            .expect("CURRENT_ROLE()");
        assert_eq!(role.flatten().as_deref(), Some(TEST_ROLE), "read {i}");
    }
    conn.disconnect().await.expect("disconnect");
}

/// MariaDB keeps a connection's profiling history (`SHOW PROFILES`: the
/// statements' texts) through COM_RESET_CONNECTION: a session that switched
/// profiling on must not leave its statements to the next session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiling_one_session_switched_on_does_not_reach_the_next() {
    let c = cluster();
    let _g = c.shared().await;
    let mut config = c.config();
    config.pool.max_idle = 4;
    config.routing.read_split = false;
    let proxy = Proxy::start(config);
    let url = format!(
        "mysql://{APP_USER}:{APP_PASSWORD}@{}?prefer_socket=false",
        proxy.addr
    );
    for round in 0..3 {
        let mut first = connect(&url).await;
        first
            .query_drop("SET profiling = 1")
            .await
            .expect("profiling on");
        first
            .query_drop("SELECT 'profiled by the first session'")
            .await
            .expect("select");
        let own: Vec<mysql_async::Row> = first.query("SHOW PROFILES").await.expect("profiles");
        assert!(!own.is_empty(), "round {round}: the node profiles it");
        first.disconnect().await.expect("disconnect");
        let began = Instant::now();
        while proxy.context.pools.idle_counts()[0].1 == 0
            && began.elapsed() < Duration::from_secs(2)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut next = connect(&url).await;
        let theirs: Vec<mysql_async::Row> = next.query("SHOW PROFILES").await.expect("profiles");
        assert!(
            theirs.is_empty(),
            "round {round}: a new session sees another's statements in SHOW PROFILES"
        );
        next.disconnect().await.expect("disconnect");
    }
}

const TEST_ROLE: &str = "pool_role";
const SET_TEST_ROLE: &str = "SET ROLE pool_role";
const EXECUTE_SET_TEST_ROLE: &str = "EXECUTE IMMEDIATE 'SET ROLE pool_role'";
const ROLE_USER: &str = "pool_role_user";

/// Multi-statements switched on by one session with COM_SET_OPTION (as
/// mysqli's `multi_query` does) survive the node's COM_RESET_CONNECTION;
/// the next session that draws that connection must still be refused a
/// multi-statement it never asked for (a guard against stacked SQL
/// injection), as on a new node connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_statements_one_session_switched_on_do_not_reach_the_next() {
    let c = cluster();
    let _g = c.shared().await;
    let mut config = c.config();
    config.pool.max_idle = 1;
    config.routing.read_split = false;
    // The second session must still hold the connection it drew when the
    // pool is counted.
    config.pool.multiplex = false;
    let proxy = Proxy::start(config);
    let node = common::raw::login(
        format!("{}:{}", c.nodes[0].host, c.nodes[0].port)
            .parse()
            .expect("node address"),
        None,
    )
    .await;
    let mut node = node;
    common::raw::query(&mut node, "DO 1; DO 2").await;
    let on_node = common::raw::read_result(&mut node).await;
    assert_eq!(on_node, Err(1064), "a new node connection refuses it");

    let mut first = common::raw::login(proxy.addr, None).await;
    common::raw::send(&mut first, &[0x1b, 0, 0]).await;
    // MariaDB answers COM_SET_OPTION with an EOF packet.
    let ok = common::raw::read_packet(&mut first).await.expect("reply");
    assert_eq!(ok[0], 0xfe, "{ok:?}");
    common::raw::query(&mut first, "DO 1; DO 2").await;
    assert_eq!(common::raw::read_result(&mut first).await, Ok(Vec::new()));
    drop(first);
    let began = Instant::now();
    while proxy.context.pools.idle_counts()[0].1 != 1 {
        assert!(began.elapsed() < Duration::from_secs(30), "pooled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut second = common::raw::login(proxy.addr, None).await;
    common::raw::query(&mut second, "DO 3; DO 4").await;
    assert_eq!(common::raw::read_result(&mut second).await, on_node);
    assert_eq!(
        proxy.context.pools.idle_counts()[0].1,
        0,
        "it drew that connection"
    );
}
