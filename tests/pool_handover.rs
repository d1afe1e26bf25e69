//! Where a node connection changes hands (back to the pool, then to another
//! session), it must owe no reply and have nothing readable. These tests
//! drive the pool directly against a real node and try each way a
//! connection could arrive dirty: returned before its reply was read, with
//! a second reply still in flight, and closed by the node while idle.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cluster, APP_PASSWORD, APP_USER};
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
