//! The proxy's memory stays bounded whatever many clients send at once:
//! a hundred clients each sending the largest statement allowed, and one
//! client preparing 100,000 statements. The proxy runs as its own process
//! (the real binary) so its peak resident set (`VmHWM`) is its own.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::instance::Instance;
use common::{cluster, raw};
use sqlproxy::protocol::codec;
use tokio::io::AsyncWriteExt;

/// The proxy's peak resident set so far, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => s,
        Err(e) => panic!("read /proc/{pid}/status: {e}"),
    };
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or_else(|| panic!("no VmHWM in {status}"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("VmHWM: {line}"));
    kib * 1024
}

/// The cluster's proxy config with `extra` lines in `[mysql]` and an admin port.
fn start(dir: &Path, name: &str, extra: &str) -> Instance {
    let toml = cluster().config_toml().replacen(
        "listen = \"127.0.0.1:0\"\n",
        &format!("listen = \"127.0.0.1:0\"\n{extra}\n"),
        1,
    );
    let toml = format!(
        "{toml}\n[admin]\nlisten = \"127.0.0.1:0\"\npassword = \"{}\"\n",
        common::instance::ADMIN_PASSWORD
    );
    Instance::start(name, &toml, dir)
}

/// The first column of the first row of a text result set, as a number.
fn first_value(rows: &[Vec<u8>]) -> u64 {
    let row = rows.first().expect("a row");
    let (len, rest) = (row[0] as usize, &row[1..]);
    std::str::from_utf8(&rest[..len])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {row:?}"))
}

const CLIENTS: usize = 100;
const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_clients_sending_the_largest_statement_at_once_stay_within_the_command_budget() {
    let c = cluster();
    let _g = c.shared().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Statements of 4 MiB (16 MiB, the default, would only make the test
    // four times longer: a debug build reads a statement at about 20 MB/s)
    // and a budget of two such statements' copies. No client may give up
    // waiting: client_read_timeout is far longer than the test.
    let packet = 4 * MIB as usize;
    let budget = 16 * MIB;
    let proxy = start(
        dir.path(),
        "big",
        &format!(
            "max_allowed_packet = {packet}\nmax_command_memory = {budget}\nclient_read_timeout = \"10m\""
        ),
    );
    // The largest statement the proxy takes: `SELECT LENGTH('xx…x')` of
    // exactly max_allowed_packet bytes with its command byte, framed once
    // and written by every client.
    let head = b"SELECT LENGTH('";
    let tail = b"')";
    let filler = packet - 1 - head.len() - tail.len();
    let mut payload = Vec::with_capacity(packet);
    payload.push(0x03);
    payload.extend_from_slice(head);
    payload.resize(payload.len() + filler, b'x');
    payload.extend_from_slice(tail);
    let mut framed = Vec::with_capacity(packet + 16);
    codec::write_packet(&mut framed, 0, &payload);
    let framed = Arc::new(framed);
    drop(payload);

    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(raw::login(proxy.mysql, None).await);
    }
    let before = peak_rss(proxy.daemon.pid);
    let runs = clients.into_iter().map(|mut s| {
        let framed = framed.clone();
        tokio::spawn(async move {
            s.write_all(&framed).await.expect("send the statement");
            let rows = raw::read_result(&mut s).await;
            (rows.map(|r| first_value(&r)), s)
        })
    });
    let mut ok = 0;
    let mut kept = Vec::new();
    for run in runs.collect::<Vec<_>>() {
        let (length, s) = run.await.expect("client task");
        match length {
            Ok(n) => {
                assert_eq!(n, filler as u64, "the node saw the whole statement");
                ok += 1;
            }
            Err(code) => panic!("a client got error {code} instead of waiting its turn"),
        }
        kept.push(s);
    }
    assert_eq!(ok, CLIENTS);
    let grew = peak_rss(proxy.daemon.pid).saturating_sub(before);
    eprintln!(
        "{CLIENTS} clients x {} MiB: peak RSS grew {} MiB (budget {} MiB)",
        packet as u64 / MIB,
        grew / MIB,
        budget / MIB
    );
    // Two copies per command are counted; allow the allocator as much again
    // and the rest of the proxy 32 MiB. Without the budget (16 GiB instead)
    // the same run grew 479 MiB; with it, 38 MiB.
    assert!(
        grew <= 2 * budget + 32 * MIB,
        "peak RSS grew {} MiB with a budget of {} MiB",
        grew / MIB,
        budget / MIB
    );
    // Every session goes on.
    for s in &mut kept {
        raw::query(s, "SELECT 1").await;
        assert_eq!(raw::read_result(s).await.map(|r| first_value(&r)), Ok(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_prepares_in_one_session_stay_within_its_statement_cap() {
    let c = cluster();
    let _g = c.shared().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = 1000;
    let proxy = start(
        dir.path(),
        "prep",
        &format!("max_prepared_statements = {cap}"),
    );
    let mut s = raw::login(proxy.mysql, None).await;
    let before = peak_rss(proxy.daemon.pid);
    let mut prepared = 0;
    let mut refused = 0;
    for i in 0..100_000u32 {
        // Each text differs, so nothing could be shared between them.
        match raw::prepare(&mut s, &format!("SELECT ? + {i} /* {i:0>200} */")).await {
            Ok(_) => prepared += 1,
            Err(1461) => refused += 1,
            Err(code) => panic!("prepare {i}: error {code}"),
        }
    }
    assert_eq!((prepared, refused), (cap, 100_000 - cap));
    let grew = peak_rss(proxy.daemon.pid).saturating_sub(before);
    eprintln!("100,000 prepares: peak RSS grew {} MiB", grew / MIB);
    assert!(grew <= 32 * MIB, "peak RSS grew {} MiB", grew / MIB);
    raw::query(&mut s, "SELECT 1").await;
    assert_eq!(
        raw::read_result(&mut s).await.map(|r| first_value(&r)),
        Ok(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_command_that_finds_no_room_in_time_gets_1041_and_others_go_on() {
    let c = cluster();
    let _g = c.shared().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // The smallest budget, and a second's patience for a command's bytes.
    let proxy = start(
        dir.path(),
        "full",
        &format!("max_command_memory = {MIB}\nclient_read_timeout = \"1s\""),
    );
    // A statement of 600 KiB takes the whole budget while it sleeps on its node.
    let mut holder = raw::login(proxy.mysql, None).await;
    let filler = "x".repeat(600 * 1024);
    raw::query(&mut holder, &format!("SELECT SLEEP(5), LENGTH('{filler}')")).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // A second large command waits a second, then gets 1041 and the close.
    let mut second = raw::login(proxy.mysql, None).await;
    let filler = "y".repeat(100 * 1024);
    raw::query(&mut second, &format!("SELECT LENGTH('{filler}')")).await;
    let err = raw::read_packet(&mut second)
        .await
        .expect("an error, not a reset");
    assert_eq!(err[0], 0xff, "{err:?}");
    assert_eq!(u16::from_le_bytes([err[1], err[2]]), 1041);
    assert_eq!(&err[3..9], b"#HY000");
    assert_eq!(raw::read_packet(&mut second).await, None, "then the close");
    // A small command never waits, even now.
    let mut small = raw::login(proxy.mysql, None).await;
    raw::query(&mut small, "SELECT 1").await;
    assert_eq!(
        raw::read_result(&mut small).await.map(|r| first_value(&r)),
        Ok(1)
    );
    // The holder gets its own result.
    let rows = raw::read_result(&mut holder)
        .await
        .expect("the holder's rows");
    assert_eq!(rows.len(), 1);
}
