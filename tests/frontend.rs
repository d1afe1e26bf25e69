//! The connection phase and client capabilities: auth switch for clients that
//! open with caching_sha2_password, 1040 past max_connections, 1045 on a bad
//! COM_CHANGE_USER, and CLIENT_FOUND_ROWS changing affected-row counts as on
//! the node.

mod common;

use common::raw::{self, read_packet};
use common::{cluster, connect, Proxy};
use mysql_async::prelude::Queryable;
use sqlproxy::protocol::handshake::{self, NativeSecret};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caching_sha2_clients_are_switched_to_native_password() {
    let c = cluster();
    let _g = c.shared().await;
    let p = Proxy::start(c.config());
    for (password, expect_ok) in [("prestashop", true), ("wrong", false)] {
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        let greeting = read_packet(&mut s).await.unwrap();
        handshake::parse_greeting(&greeting).unwrap();
        // A MySQL 8 client: plugin caching_sha2_password and a 32-byte scramble.
        let resp = handshake::backend_response(
            raw::CLIENT_CAPS,
            45,
            b"prestashop",
            &[7u8; 32],
            b"caching_sha2_password",
        );
        raw::send_seq(&mut s, 1, &resp).await;
        let switch = read_packet(&mut s).await.unwrap();
        let (plugin, nonce) =
            handshake::parse_auth_switch(&switch).expect("an auth switch request");
        assert_eq!(plugin, b"mysql_native_password");
        let token = NativeSecret::from_password(password)
            .scramble(nonce)
            .unwrap();
        raw::send_seq(&mut s, 3, &token).await;
        let reply = read_packet(&mut s).await.unwrap();
        if expect_ok {
            assert_eq!(reply[0], 0x00, "{reply:?}");
            raw::query(&mut s, "SELECT 1").await;
            assert_eq!(raw::read_result(&mut s).await.map(|r| r.len()), Ok(1));
        } else {
            assert_eq!(
                (reply[0], u16::from_le_bytes([reply[1], reply[2]])),
                (0xff, 1045)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_past_max_connections_get_1040() {
    let c = cluster();
    let _g = c.shared().await;
    let mut cfg = c.config();
    cfg.mysql.max_connections = 2;
    let p = Proxy::start(cfg);
    let mut a = connect(&p.url(None)).await;
    let _b = connect(&p.url(None)).await;
    match mysql_async::Conn::from_url(p.url(None)).await {
        // Sent once the client has logged in: sockets that never log in
        // cannot take the slots (bad_input.rs).
        Err(mysql_async::Error::Server(e)) => {
            assert_eq!((e.code, e.message.as_str()), (1040, "Too many connections"))
        }
        Err(other) => panic!("expected 1040, got {other:?}"),
        Ok(_) => panic!("a third client was accepted"),
    }
    // The first two are unaffected, and a slot frees when one leaves.
    let v: Option<i32> = a.query_first("SELECT 1").await.unwrap();
    assert_eq!(v, Some(1));
    drop(a);
    let mut third = None;
    for _ in 0..100 {
        if let Ok(conn) = mysql_async::Conn::from_url(p.url(None)).await {
            third = Some(conn);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(third.is_some(), "a slot freed when a client left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_user_with_a_wrong_password_is_refused() {
    let c = cluster();
    let _g = c.shared().await;
    let p = Proxy::start(c.config());
    let mut conn = connect(&p.url(None)).await;
    let opts = mysql_async::ChangeUserOpts::default()
        .with_user(Some("prestashop".into()))
        .with_pass(Some("not-the-password".into()));
    match conn.change_user(opts).await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1045),
        other => panic!("expected 1045, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn found_rows_flag_changes_affected_rows_as_on_the_node() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("found_rows_flag");
    let p = Proxy::start(c.config());
    let mut setup = connect(&p.url(Some(&db))).await;
    setup
        .query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        .await
        .unwrap();
    setup
        .query_drop("INSERT INTO t VALUES (1, 5), (2, 5), (3, 6)")
        .await
        .unwrap();
    for (flag, expected) in [(false, 2), (true, 3)] {
        let url = format!("{}&client_found_rows={flag}", p.url(Some(&db)));
        let mut conn = connect(&url).await;
        // Rows 1 and 2 change; row 3 matches but already holds 6.
        conn.query_drop("UPDATE t SET v = 6").await.unwrap();
        assert_eq!(conn.affected_rows(), expected, "client_found_rows={flag}");
        setup
            .query_drop("UPDATE t SET v = 5 WHERE id < 3")
            .await
            .unwrap();
        c.wait_replicated();
        let direct_url = format!("{}?client_found_rows={flag}", c.direct_url(0, Some(&db)));
        let mut direct = connect(&direct_url).await;
        direct.query_drop("UPDATE t SET v = 6").await.unwrap();
        assert_eq!(
            direct.affected_rows(),
            expected,
            "direct, client_found_rows={flag}"
        );
        setup
            .query_drop("UPDATE t SET v = 5 WHERE id < 3")
            .await
            .unwrap();
    }
}
