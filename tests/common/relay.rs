//! A TCP relay on a loopback port the OS chose, in front of one node, so one
//! sqlproxy instance can be cut off from that node while the others still
//! reach it: the instance is configured with the relay's address; [`Relay::cut`]
//! closes the listener and every relayed connection, after which connecting
//! to the port is refused, as for a node that is gone — but only for that
//! instance.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub struct Relay {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<thread::JoinHandle<()>>,
}

impl Relay {
    pub fn start(target: SocketAddr) -> Relay {
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("bind a relay: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("relay address: {e}"),
        };
        if let Err(e) = listener.set_nonblocking(true) {
            panic!("relay nonblocking: {e}");
        }
        let cut = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let accept = {
            let (cut, streams) = (Arc::clone(&cut), Arc::clone(&streams));
            thread::spawn(move || {
                while !cut.load(Ordering::SeqCst) {
                    let client = match listener.accept() {
                        Ok((c, _)) => c,
                        Err(_) => {
                            thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    };
                    let Ok(server) = TcpStream::connect(target) else {
                        continue;
                    };
                    if client.set_nonblocking(false).is_err() {
                        continue;
                    }
                    let pair = (client.try_clone(), server.try_clone());
                    let (Ok(c2), Ok(s2)) = pair else { continue };
                    if let Ok(mut held) = streams.lock() {
                        held.push(c2.try_clone().unwrap_or(c2));
                        held.push(s2.try_clone().unwrap_or(s2));
                    }
                    pipe(client.try_clone(), server.try_clone());
                    pipe(server.try_clone(), client.try_clone());
                }
                // Dropping the listener here: the port now refuses.
            })
        };
        Relay {
            addr,
            cut,
            streams,
            accept: Some(accept),
        }
    }

    /// From now on the node is unreachable through this relay.
    pub fn cut(&mut self) {
        self.cut.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            t.join().ok();
        }
        if let Ok(held) = self.streams.lock() {
            for s in held.iter() {
                s.shutdown(Shutdown::Both).ok();
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

fn pipe(from: std::io::Result<TcpStream>, to: std::io::Result<TcpStream>) {
    let (Ok(mut from), Ok(mut to)) = (from, to) else {
        return;
    };
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        to.shutdown(Shutdown::Write).ok();
    });
}
