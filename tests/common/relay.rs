//! A TCP relay on a loopback port the OS chose, in front of one node, so one
//! sqlproxy instance can be cut off from that node while the others still
//! reach it: the instance is configured with the relay's address; [`Relay::cut`]
//! closes the listener and every relayed connection, after which connecting
//! to the port is refused, as for a node that is gone — but only for that
//! instance. [`Relay::set_delay`] holds every chunk it relays, both ways, for
//! a while: latency on that instance's path where the kernel has no
//! `tc netem`.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub struct Relay {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<thread::JoinHandle<()>>,
    /// Added to every chunk's delivery, in microseconds.
    delay: Arc<AtomicU64>,
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
        let delay = Arc::new(AtomicU64::new(0));
        let accept = {
            let (cut, streams, delay) =
                (Arc::clone(&cut), Arc::clone(&streams), Arc::clone(&delay));
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
                    pipe(client.try_clone(), server.try_clone(), &delay);
                    pipe(server.try_clone(), client.try_clone(), &delay);
                }
                // Dropping the listener here: the port now refuses.
            })
        };
        Relay {
            addr,
            cut,
            streams,
            accept: Some(accept),
            delay,
        }
    }

    /// Every chunk relayed from now on, either way, is delivered `delay`
    /// after it was read (zero: at once again).
    pub fn set_delay(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.delay.store(micros, Ordering::SeqCst);
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

/// Copies `from` to `to`: a reader thread stamps each chunk, a writer thread
/// delivers it once the relay's delay has passed since the stamp, so the
/// delay adds latency without limiting throughput, and order is kept.
fn pipe(from: std::io::Result<TcpStream>, to: std::io::Result<TcpStream>, delay: &Arc<AtomicU64>) {
    let (Ok(mut from), Ok(mut to)) = (from, to) else {
        return;
    };
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let delay = Arc::clone(delay);
    thread::spawn(move || {
        for (read_at, chunk) in rx {
            let hold = Duration::from_micros(delay.load(Ordering::SeqCst));
            if let Some(wait) = (read_at + hold).checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        to.shutdown(Shutdown::Write).ok();
    });
}
