//! The least a server on this machine can do per MySQL command, to tell
//! what a cache hit or a relayed statement costs the kernel and tokio from
//! what it costs sqlproxy's own work. `benches/cpu_per_query.sh floor|relay-floor`
//! runs it like a proxy:
//!
//!     mysql_floor answer LISTEN           # every command answered from memory
//!     mysql_floor blocking LISTEN         # the same, a blocking thread per client
//!     mysql_floor relay LISTEN NODE       # bytes copied both ways to NODE
//!     mysql_floor relay-plain LISTEN NODE # the same, MariaDB's extended
//!                                         # capabilities hidden from the client
//!
//! `answer` is a cache that hits every time with nothing to look up: one
//! event loop per CPU (`SO_REUSEPORT` listener, current-thread runtime, the
//! accept-and-serve model of the HTTP balancer), a canned login, and for
//! each command packet read the canned reply written in one `write`. It
//! speaks just enough of the protocol for sysbench's point select (text
//! and prepared). `blocking` takes tokio and epoll out too: what is left is
//! the kernel's `recv`/`send` and the wake-ups. `relay` is a byte pump per
//! client (`copy_bidirectional`, one node connection each), HAProxy's TCP
//! mode on tokio. `relay-plain` differs only in the node's greeting: its
//! MariaDB extended capabilities are zeroed, so the client cannot ask for
//! cached result metadata (what sqlproxy's node connections do without); the
//! two relays side by side measure what that capability is worth.
//!
//! Not for production: no authentication, no parsing, no limits.

use std::io::{Read, Write};
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: mysql_floor answer|blocking LISTEN | relay|relay-plain LISTEN NODE");
        std::process::exit(2);
    };
    let Some(listen) = args.get(2).and_then(|a| a.parse::<SocketAddr>().ok()) else {
        usage()
    };
    match args.get(1).map(String::as_str) {
        Some("answer") => event_loops(listen, None),
        Some(mode @ ("relay" | "relay-plain")) => match args.get(3) {
            Some(node) => event_loops(
                listen,
                Some(Relay {
                    node: node.clone(),
                    plain: mode == "relay-plain",
                }),
            ),
            None => usage(),
        },
        Some("blocking") => blocking(listen),
        _ => usage(),
    }
}

/// Where `relay` copies to, and whether it hides the extended capabilities.
#[derive(Clone)]
struct Relay {
    node: String,
    plain: bool,
}

fn event_loops(listen: SocketAddr, node: Option<Relay>) {
    let loops = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The balancer's own binding: one SO_REUSEPORT socket per loop.
    let bound = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|rt| rt.block_on(sqlproxy::http::bind_listeners(listen, loops)));
    let listeners = match bound {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mysql_floor: cannot bind {listen}: {e}");
            std::process::exit(1);
        }
    };
    let handles: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            let node = node.clone();
            std::thread::spawn(move || event_loop(l, node))
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

fn event_loop(listener: std::net::TcpListener, node: Option<Relay>) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            match &node {
                None => {
                    tokio::spawn(answer(stream));
                }
                Some(node) => {
                    tokio::spawn(relay(stream, node.clone()));
                }
            }
        }
    });
}

async fn relay(mut client: TcpStream, to: Relay) {
    let Ok(mut server) = TcpStream::connect(&to.node).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    if to.plain && plain_greeting(&mut server, &mut client).await.is_none() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// Passes the node's greeting on with its MariaDB extended capabilities (the
/// last 4 of the 10 reserved bytes after the scramble length) zeroed.
async fn plain_greeting(server: &mut TcpStream, client: &mut TcpStream) -> Option<()> {
    let mut head = [0u8; 4];
    server.read_exact(&mut head).await.ok()?;
    let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
    let mut body = vec![0u8; len];
    server.read_exact(&mut body).await.ok()?;
    // protocol version, NUL-terminated version, thread id (4), scramble (8),
    // filler, caps (2), collation, status (2), caps (2), scramble length,
    // 6 reserved bytes, then the 4 extended-capability bytes.
    let nul = body.iter().skip(1).position(|&b| b == 0)? + 1;
    let ext = nul + 1 + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 6;
    body.get_mut(ext..ext + 4)?.fill(0);
    client.write_all(&head).await.ok()?;
    client.write_all(&body).await.ok()
}

async fn answer(mut stream: TcpStream) {
    let mut conn = Conn::default();
    if stream.write_all(&conn.greeting()).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
    let mut have = 0;
    loop {
        match stream.read(&mut buf[have..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
        let (used, out, quit) = conn.serve(&buf[..have]);
        buf.copy_within(used..have, 0);
        have -= used;
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return;
        }
        if quit || have == buf.len() {
            return;
        }
    }
}

fn blocking(listen: SocketAddr) {
    let listener = match std::net::TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mysql_floor: cannot bind {listen}: {e}");
            std::process::exit(1);
        }
    };
    for stream in listener.incoming().flatten() {
        let _ = stream.set_nodelay(true);
        std::thread::spawn(move || {
            let mut stream = stream;
            let mut conn = Conn::default();
            if stream.write_all(&conn.greeting()).is_err() {
                return;
            }
            let mut buf = vec![0u8; 16 * 1024];
            let mut have = 0;
            loop {
                match stream.read(&mut buf[have..]) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => have += n,
                }
                let (used, out, quit) = conn.serve(&buf[..have]);
                buf.copy_within(used..have, 0);
                have -= used;
                if !out.is_empty() && stream.write_all(&out).is_err() {
                    return;
                }
                if quit || have == buf.len() {
                    return;
                }
            }
        });
    }
}

const CAPABILITIES: u32 = 0x0000_0001 // LONG_PASSWORD
    | 0x0000_0004 // LONG_FLAG
    | 0x0000_0008 // CONNECT_WITH_DB
    | 0x0000_0200 // PROTOCOL_41
    | 0x0000_2000 // TRANSACTIONS
    | 0x0000_8000 // SECURE_CONNECTION
    | 0x0001_0000 // MULTI_STATEMENTS
    | 0x0002_0000 // MULTI_RESULTS
    | 0x0004_0000 // PS_MULTI_RESULTS
    | 0x0008_0000; // PLUGIN_AUTH

/// sysbench's `c` column: 119 characters.
const C_VALUE: &[u8] = b"83868641912-28773972837-60736120486-75162659906-27563526494-20381887404-41576422241-93426793964-56405065102-33518432330";

#[derive(Default)]
struct Conn {
    logged_in: bool,
    next_stmt: u32,
}

impl Conn {
    fn greeting(&mut self) -> Vec<u8> {
        let mut p = vec![10u8];
        p.extend_from_slice(b"10.11.0-floor\0");
        p.extend_from_slice(&1u32.to_le_bytes());
        p.extend_from_slice(b"abcdefgh\0");
        p.extend_from_slice(&(CAPABILITIES as u16).to_le_bytes());
        p.push(33);
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&((CAPABILITIES >> 16) as u16).to_le_bytes());
        p.push(21);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(b"ijklmnopqrst\0");
        p.extend_from_slice(b"mysql_native_password\0");
        let mut out = Vec::new();
        packet(&mut out, 0, &p);
        out
    }

    /// Answers every whole packet in `input`: bytes used, replies, quit.
    fn serve(&mut self, input: &[u8]) -> (usize, Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut at = 0;
        while input.len() - at >= 4 {
            let len = u32::from_le_bytes([input[at], input[at + 1], input[at + 2], 0]) as usize;
            if input.len() - at - 4 < len {
                break;
            }
            let seq = input[at + 3];
            let body = &input[at + 4..at + 4 + len];
            at += 4 + len;
            if !self.logged_in {
                self.logged_in = true;
                ok(&mut out, seq.wrapping_add(1));
                continue;
            }
            match body.first() {
                Some(0x01) => return (at, out, true),
                Some(0x03) if starts_with_select(&body[1..]) => text_result(&mut out),
                Some(0x16) => {
                    self.next_stmt += 1;
                    let params = body[1..].iter().filter(|&&b| b == b'?').count();
                    prepared(&mut out, self.next_stmt, params as u16);
                }
                Some(0x17) => binary_result(&mut out),
                Some(0x19) => {} // COM_STMT_CLOSE: no reply
                _ => ok(&mut out, 1),
            }
        }
        (at, out, false)
    }
}

fn starts_with_select(sql: &[u8]) -> bool {
    let sql = sql.trim_ascii_start();
    sql.len() >= 6 && sql[..6].eq_ignore_ascii_case(b"select")
}

fn packet(out: &mut Vec<u8>, seq: u8, body: &[u8]) {
    let len = body.len() as u32;
    out.extend_from_slice(&len.to_le_bytes()[..3]);
    out.push(seq);
    out.extend_from_slice(body);
}

fn ok(out: &mut Vec<u8>, seq: u8) {
    packet(out, seq, &[0, 0, 0, 2, 0, 0, 0]);
}

fn eof(out: &mut Vec<u8>, seq: u8) {
    packet(out, seq, &[0xfe, 0, 0, 2, 0]);
}

fn lenenc_str(p: &mut Vec<u8>, s: &[u8]) {
    p.push(s.len() as u8);
    p.extend_from_slice(s);
}

fn column(out: &mut Vec<u8>, seq: u8, name: &[u8], kind: u8) {
    let mut p = Vec::new();
    for s in [&b"def"[..], b"sbtest", b"sbtest1", b"sbtest1", name, name] {
        lenenc_str(&mut p, s);
    }
    p.push(0x0c);
    p.extend_from_slice(&33u16.to_le_bytes());
    p.extend_from_slice(&480u32.to_le_bytes());
    p.push(kind);
    p.extend_from_slice(&0u16.to_le_bytes());
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    packet(out, seq, &p);
}

const STRING: u8 = 0xfe;
const LONG: u8 = 0x03;

fn text_result(out: &mut Vec<u8>) {
    packet(out, 1, &[1]);
    column(out, 2, b"c", STRING);
    eof(out, 3);
    let mut row = Vec::new();
    lenenc_str(&mut row, C_VALUE);
    packet(out, 4, &row);
    eof(out, 5);
}

fn binary_result(out: &mut Vec<u8>) {
    packet(out, 1, &[1]);
    column(out, 2, b"c", STRING);
    eof(out, 3);
    let mut row = vec![0u8, 0u8];
    lenenc_str(&mut row, C_VALUE);
    packet(out, 4, &row);
    eof(out, 5);
}

fn prepared(out: &mut Vec<u8>, id: u32, params: u16) {
    let mut p = vec![0u8];
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&1u16.to_le_bytes());
    p.extend_from_slice(&params.to_le_bytes());
    p.extend_from_slice(&[0, 0, 0]);
    packet(out, 1, &p);
    let mut seq = 2;
    if params > 0 {
        for _ in 0..params {
            column(out, seq, b"?", LONG);
            seq += 1;
        }
        eof(out, seq);
        seq += 1;
    }
    column(out, seq, b"c", STRING);
    eof(out, seq + 1);
}
