//! TLS from the proxy to the nodes. The test cluster's nodes offer TLS
//! (`tests/common/mod.rs`): cn1's certificate names 127.0.0.1, cn2's only
//! `cn2.invalid`. So `verify-ca` accepts both, `verify-full` accepts cn1 and
//! rejects cn2, and a CA that signed neither rejects both. Checked here: the
//! data path and the monitor over TLS, a node whose certificate does not
//! verify reported down with the reason and never used in cleartext, and
//! the rule that a node connection changes hands only when nothing more is
//! readable, over TLS (where a TLS 1.3 server's session tickets arrive on
//! the socket without being data).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::TestCa;
use common::{cluster, Proxy, APP_PASSWORD, APP_USER};
use mysql_async::prelude::Queryable;
use sqlproxy::backend::{BackendError, ConnKey, Credentials, Pools};
use sqlproxy::config::Config;
use sqlproxy::protocol::handshake::NativeSecret;
use sqlproxy::topology::{CheckErrorKind, NodeState};

/// A bound on waits for the monitor: generous, never a measured threshold.
const SAFETY: Duration = Duration::from_secs(60);

/// The cluster's config with `[node_tls]` (`mode`, the nodes' CA or `ca`)
/// and `per_node` lines appended to the node sections.
fn config(mode: &str, ca: Option<&std::path::Path>, cn1: &str, cn2: &str) -> Config {
    let c = cluster();
    let ca = ca.map_or_else(|| c.node_ca(), |p| p.to_path_buf());
    let toml = c
        .config_toml()
        .replacen("priority = 1\n", &format!("priority = 1\n{cn1}\n"), 1)
        .replacen("priority = 2\n", &format!("priority = 2\n{cn2}\n"), 1);
    let toml = format!(
        "{toml}\n[node_tls]\nmode = \"{mode}\"\nca = \"{}\"\n",
        ca.display()
    );
    match Config::from_toml_str(&toml, []) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}\n{toml}"),
    }
}

/// Waits until the monitor has judged node `id` as `state`.
async fn wait_state(proxy: &Proxy, id: usize, state: NodeState) {
    let began = Instant::now();
    loop {
        let snap = proxy.context.topology.snapshot();
        if snap.nodes[id].state == state && snap.nodes[id].last_check.is_some() {
            return;
        }
        assert!(
            began.elapsed() < SAFETY,
            "node {id} never became {state}: {:?}",
            snap.nodes[id]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The node that answered and the TLS version of the proxy's connection to it.
async fn ssl_of(conn: &mut mysql_async::Conn, hint: &str) -> (u32, String) {
    let sql = format!(
        "SELECT /* sqlproxy:{hint} */ @@server_id, VARIABLE_VALUE FROM information_schema.SESSION_STATUS \
         WHERE VARIABLE_NAME = 'Ssl_version'"
    );
    match conn.query_first::<(u32, String), _>(sql).await {
        Ok(Some(row)) => row,
        other => panic!("{hint}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_path_and_the_monitor_run_over_tls() {
    let c = cluster();
    let _g = c.shared().await;
    // cn1 checked by name, cn2 by chain only (its certificate names another host).
    let proxy = Proxy::start(config("verify-ca", None, "tls = \"verify-full\"", ""));
    wait_state(&proxy, 0, NodeState::Up).await;
    // cn2's certificate names another host: verify-ca takes it (the
    // monitor reads the name it holds and has the chain checked for that
    // name, topology/node_ssl.rs), and reads reach it over TLS.
    wait_state(&proxy, 1, NodeState::Up).await;
    let mut conn = mysql_async::Conn::from_url(proxy.url(None))
        .await
        .expect("connect through the proxy");
    let began = Instant::now();
    let replica_tls = loop {
        let (id, tls) = ssl_of(&mut conn, "replica").await;
        if id == 2 {
            break tls;
        }
        assert!(
            began.elapsed() < SAFETY,
            "cn2 (verify-ca) never took a read"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(replica_tls.starts_with("TLSv1."), "{replica_tls:?}");
    let snap = proxy.context.topology.snapshot();
    assert!(
        snap.nodes.iter().all(|n| n.last_error_kind.is_none()),
        "{snap:?}"
    );
    drop(conn);
    drop(proxy);
    // The data path and the monitor with cn1 over TLS, cn2 in cleartext.
    let proxy = Proxy::start(config("off", None, "tls = \"verify-full\"", ""));
    wait_state(&proxy, 0, NodeState::Up).await;
    wait_state(&proxy, 1, NodeState::Up).await;
    let mut conn = mysql_async::Conn::from_url(proxy.url(None))
        .await
        .expect("connect through the proxy");
    let (master, master_tls) = ssl_of(&mut conn, "master").await;
    // cn2 takes reads once the monitor has seen its replication.
    let began = Instant::now();
    let (replica, replica_tls) = loop {
        let seen = ssl_of(&mut conn, "replica").await;
        if seen.0 == 2 {
            break seen;
        }
        assert!(began.elapsed() < SAFETY, "cn2 never took a read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((master, replica), (1, 2));
    // cn1 over TLS (verify-full), cn2 in cleartext as configured (off).
    assert!(master_tls.starts_with("TLSv1."), "{master_tls:?}");
    assert_eq!(replica_tls, "");
    // Writes, a transaction and a prepared statement over TLS.
    let db = c.fresh_db("node_tls");
    conn.query_drop(format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)"))
        .await
        .expect("create");
    conn.query_drop("BEGIN").await.expect("begin");
    conn.exec_drop(format!("INSERT INTO {db}.t VALUES (?)"), (7,))
        .await
        .expect("insert");
    conn.query_drop("COMMIT").await.expect("commit");
    let n: Option<u32> = conn
        .query_first(format!("SELECT /* sqlproxy:master */ COUNT(*) FROM {db}.t"))
        .await
        .expect("count");
    assert_eq!(n, Some(1));
    let snap = proxy.context.topology.snapshot();
    assert!(
        snap.nodes.iter().all(|n| n.last_error_kind.is_none()),
        "{snap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_certificate_does_not_verify_is_down_with_the_reason() {
    let c = cluster();
    let _g = c.shared().await;
    // verify-full everywhere: cn2's certificate does not name 127.0.0.1.
    let config = config("verify-full", None, "", "");
    let proxy = Proxy::start(config.clone());
    wait_state(&proxy, 0, NodeState::Up).await;
    wait_state(&proxy, 1, NodeState::Down).await;
    let cn2 = proxy.context.topology.snapshot().nodes[1].clone();
    assert_eq!(cn2.last_error_kind, Some(CheckErrorKind::Tls), "{cn2:?}");
    let reason = cn2.last_error.unwrap_or_default();
    assert!(reason.contains("certificate"), "{reason}");
    // Reads go to the node that verifies, whatever the hint.
    let mut conn = mysql_async::Conn::from_url(proxy.url(None))
        .await
        .expect("connect");
    let (id, tls) = ssl_of(&mut conn, "replica").await;
    assert_eq!(id, 1);
    assert!(tls.starts_with("TLSv1."), "{tls:?}");

    // The data path refuses the node too: no cleartext fallback.
    let pools = Pools::new(
        &config,
        sqlproxy::tls::node_targets(&config).expect("targets"),
    );
    let (key, creds) = login();
    match pools.checkout(1, &key, &creds).await {
        Err(BackendError::Tls(reason)) => assert!(reason.contains("certificate"), "{reason}"),
        other => panic!("cn2 with a certificate for another name: {:?}", other.err()),
    }
    assert!(pools.checkout(0, &key, &creds).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_signed_no_node_leaves_every_node_down() {
    let c = cluster();
    let _g = c.shared().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let stranger = TestCa::new(dir.path(), "stranger");
    let proxy = Proxy::start(config("verify-ca", Some(&stranger.ca), "", ""));
    wait_state(&proxy, 0, NodeState::Down).await;
    wait_state(&proxy, 1, NodeState::Down).await;
    for n in &proxy.context.topology.snapshot().nodes {
        assert_eq!(n.last_error_kind, Some(CheckErrorKind::Tls), "{n:?}");
    }
    // A client gets an error, never a node reached in cleartext.
    let res = async {
        let mut conn = mysql_async::Conn::from_url(proxy.url(None)).await?;
        conn.query_first::<u32, _>("SELECT 1").await
    }
    .await;
    assert!(res.is_err(), "{res:?}");
}

fn login() -> (ConnKey, Credentials) {
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
    (key, creds)
}

async fn idle_on_cn1(pools: &Pools, want: usize) {
    let began = Instant::now();
    while pools.idle_counts()[0].1 != want {
        assert!(
            began.elapsed() < SAFETY,
            "the pool never reached {want} idle connection(s)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn do_one() -> Vec<u8> {
    b"\x03DO 1".to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_node_connection_changes_hands_only_when_quiet() {
    let c = cluster();
    let _g = c.shared().await;
    let config = config("verify-full", None, "", "tls = \"verify-ca\"");
    let pools = Pools::new(
        &config,
        sqlproxy::tls::node_targets(&config).expect("targets"),
    );
    let (key, creds) = login();
    // A clean connection goes back to the pool: what TLS itself sends
    // after the handshake (session tickets) is not taken for data.
    let mut conn = pools.checkout(0, &key, &creds).await.expect("checkout");
    assert!(conn.io.tls_info().is_some(), "not a TLS connection");
    assert!(matches!(
        conn.simple(&do_one()).await,
        Ok(sqlproxy::backend::SimpleReply::Ok { .. })
    ));
    pools.checkin(conn);
    idle_on_cn1(&pools, 1).await;
    // cn2 with verify-ca: its certificate names another host, the chain verifies.
    let cn2 = pools
        .checkout(1, &key, &creds)
        .await
        .expect("cn2 with verify-ca");
    assert!(cn2.io.tls_info().is_some(), "not a TLS connection");

    // A command whose reply the proxy does not account for: the reply
    // arrives, decrypted or still on the socket, and the connection must
    // not change hands.
    let mut conn = pools.checkout(0, &key, &creds).await.expect("checkout");
    assert_eq!(pools.idle_counts()[0].1, 0);
    conn.send_unanswered(&do_one()).await.expect("send");
    let began = Instant::now();
    while conn.can_change_hands() {
        assert!(began.elapsed() < SAFETY, "the unread reply never showed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pools.checkin(conn);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        pools.idle_counts()[0].1,
        0,
        "a connection with an unread reply was pooled"
    );
}
