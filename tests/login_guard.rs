//! Failed logins are counted by the proxy, which runs the handshake and
//! checks passwords itself: an address past `mysql.max_connect_errors`
//! malformed handshakes is refused with MariaDB's 1129 before the greeting,
//! other addresses are not, a successful login clears the count, and wrong
//! passwords, however many, never lock the right one out.

mod common;

use common::raw::{read_packet, send_seq};
use common::{cluster, server_id, Proxy, APP_PASSWORD, APP_USER};

/// A login as the application user with `password`; the server error code
/// if it is refused.
async fn login(proxy: &Proxy, password: &str) -> Result<mysql_async::Conn, u16> {
    let url = format!(
        "mysql://{APP_USER}:{password}@{}?prefer_socket=false",
        proxy.addr
    );
    match mysql_async::Conn::from_url(url.as_str()).await {
        Ok(conn) => Ok(conn),
        Err(mysql_async::Error::Server(e)) => Err(e.code),
        Err(e) => panic!("login with {password:?}: not a server error: {e}"),
    }
}

/// A connection from `from` and the first packet the proxy sends it.
async fn connect_from(proxy: &Proxy, from: [u8; 4]) -> (tokio::net::TcpStream, Vec<u8>) {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind((std::net::Ipv4Addr::from(from), 0).into())
        .expect("bind a loopback source address");
    let mut s = sock.connect(proxy.addr).await.expect("connect");
    let first = read_packet(&mut s).await.expect("first packet");
    (s, first)
}

/// A connection phase that breaks the protocol: a one-byte HandshakeResponse.
/// The proxy answers 1835 (malformed packet) and closes.
async fn malformed_handshake(proxy: &Proxy) {
    let (mut s, greeting) = connect_from(proxy, [127, 0, 0, 1]).await;
    assert_eq!(greeting.first(), Some(&0x0a), "a greeting");
    send_seq(&mut s, 1, &[0x00]).await;
    let reply = read_packet(&mut s).await.expect("an error");
    assert_eq!(reply[..3], [0xff, 0x2b, 0x07], "1835 malformed packet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_past_max_connect_errors_gets_1129_and_others_do_not() {
    let c = cluster();
    let mut config = c.config();
    config.mysql.max_connect_errors = 4;
    let proxy = Proxy::start(config);
    for _ in 0..4 {
        malformed_handshake(&proxy).await;
    }
    // Even the right password: the address is blocked before the greeting.
    assert_eq!(login(&proxy, APP_PASSWORD).await.err(), Some(1129));
    let (_, refused) = connect_from(&proxy, [127, 0, 0, 1]).await;
    assert_eq!(refused[..3], [0xff, 0x69, 0x04], "1129 before any greeting");
    let text = String::from_utf8_lossy(&refused[3..]).into_owned();
    assert!(text.contains("Host '127.0.0.1' is blocked"), "{text}");
    // Another address is greeted as usual.
    let (_, greeting) = connect_from(&proxy, [127, 0, 0, 2]).await;
    assert_eq!(greeting.first(), Some(&0x0a), "a greeting for 127.0.0.2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_login_clears_the_address_count() {
    let c = cluster();
    let mut config = c.config();
    config.mysql.max_connect_errors = 3;
    let proxy = Proxy::start(config);
    for _ in 0..3 {
        for _ in 0..2 {
            malformed_handshake(&proxy).await;
        }
        let mut conn = login(&proxy, APP_PASSWORD).await.expect("right password");
        server_id(&mut conn).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_never_lock_the_right_one_out() {
    let c = cluster();
    let mut config = c.config();
    config.mysql.max_connect_errors = 2;
    let proxy = Proxy::start(config);
    // Later denials are held back (up to 2 s each), never turned into a
    // block: far past max_connect_errors, the owner still logs in.
    for _ in 0..9 {
        assert_eq!(login(&proxy, "guess").await.err(), Some(1045));
    }
    let mut conn = login(&proxy, APP_PASSWORD)
        .await
        .expect("the owner logs in");
    let id = server_id(&mut conn).await;
    assert!(id > 0);
    // Unknown users are denied the same way, with the same code.
    let url = format!(
        "mysql://nobody:{APP_PASSWORD}@{}?prefer_socket=false",
        proxy.addr
    );
    match mysql_async::Conn::from_url(url.as_str()).await {
        Err(mysql_async::Error::Server(e)) => {
            assert_eq!((e.code, e.state.as_str()), (1045, "28000"))
        }
        other => panic!("unknown user: {:?}", other.map(|_| ())),
    }
}
