//! Read-your-writes: a session never reads an older value than it
//! wrote, even while the replica's SQL thread is stopped and restarted at
//! random moments; with `consistency = "eventual"` the same loop does see
//! stale reads, which shows the test can fail. With `consistency =
//! "global"` the same holds for a second session reading what the first
//! wrote (a shop's next page is a new session), which `"session"` does not
//! promise and, in the same loop, breaks. Changes replication, so it has
//! its own cluster and holds the exclusive lock.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{cluster, connect, Proxy};
use mysql_async::prelude::Queryable;
use sqlproxy::config::Consistency;

const ITERATIONS: u32 = 10_000;
/// Enough for the SQL thread to be stopped many times under a second reader.
const OTHER_READER_ITERATIONS: u32 = 3_000;

/// Stops and starts cn2's SQL thread at pseudo-random moments until told to stop.
fn toggle_replica_sql_thread(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u32> {
    std::thread::spawn(move || {
        let node = &cluster().nodes[1];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut toggles = 0;
        while !stop.load(Ordering::Relaxed) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(Duration::from_millis(20 + seed % 180));
            let sql = if toggles % 2 == 0 {
                "STOP SLAVE SQL_THREAD"
            } else {
                "START SLAVE SQL_THREAD"
            };
            if let Err(e) = node.sql(sql) {
                panic!("{sql}: {e}");
            }
            toggles += 1;
        }
        if toggles % 2 == 1 {
            if let Err(e) = node.sql("START SLAVE SQL_THREAD") {
                panic!("START SLAVE SQL_THREAD: {e}");
            }
        }
        toggles
    })
}

/// Write-then-read `iterations` times (the read on a second session when
/// `other_reader`); returns how many reads were stale.
async fn stale_reads(
    consistency: Consistency,
    db: &str,
    other_reader: bool,
    iterations: u32,
) -> (u32, u32) {
    let c = cluster();
    let mut cfg = c.config();
    cfg.routing.consistency = consistency;
    let proxy = Proxy::start(cfg);
    let mut conn = connect(&proxy.url(Some(db))).await;
    let mut reader = connect(&proxy.url(Some(db))).await;
    conn.query_drop("CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY, v INT)")
        .await
        .unwrap();
    conn.query_drop("REPLACE INTO t VALUES (1, 0)")
        .await
        .unwrap();
    c.wait_replicated();
    // Both nodes in rotation before the loop starts.
    let topology = Arc::clone(&proxy.context.topology);
    for _ in 0..400 {
        let s = topology.snapshot();
        if s.is_up(0) && s.is_up(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let toggler = toggle_replica_sql_thread(Arc::clone(&stop));
    let mut stale = 0;
    for i in 1..=iterations {
        conn.exec_drop("UPDATE t SET v = ? WHERE id = 1", (i,))
            .await
            .unwrap();
        let read_on = if other_reader { &mut reader } else { &mut conn };
        let v: Option<u32> = read_on
            .exec_first("SELECT v FROM t WHERE id = 1", ())
            .await
            .unwrap();
        if v != Some(i) {
            stale += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let toggles = toggler.join().expect("toggler thread");
    c.wait_replicated();
    (stale, toggles)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_consistency_never_reads_stale() {
    let c = cluster();
    let _g = c.exclusive().await;
    let db = c.fresh_db("ryw_session");
    let (stale, toggles) = stale_reads(Consistency::Session, &db, false, ITERATIONS).await;
    eprintln!("session: {stale} stale reads in {ITERATIONS}, SQL thread toggled {toggles} times");
    assert!(toggles > 0, "the replica was disturbed");
    assert_eq!(
        stale, 0,
        "a read returned an older value than the session wrote"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventual_consistency_does_read_stale() {
    let c = cluster();
    let _g = c.exclusive().await;
    let db = c.fresh_db("ryw_eventual");
    let (stale, toggles) = stale_reads(Consistency::Eventual, &db, false, ITERATIONS).await;
    eprintln!("eventual: {stale} stale reads in {ITERATIONS}, SQL thread toggled {toggles} times");
    assert!(
        stale > 0,
        "eventual mode should show stale reads; the test would not catch a bug"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_consistency_shows_every_session_what_another_wrote() {
    let c = cluster();
    let _g = c.exclusive().await;
    let db = c.fresh_db("ryw_global");
    let (stale, toggles) =
        stale_reads(Consistency::Global, &db, true, OTHER_READER_ITERATIONS).await;
    eprintln!("global: {stale} stale reads in {OTHER_READER_ITERATIONS}, SQL thread toggled {toggles} times");
    assert!(toggles > 0, "the replica was disturbed");
    assert_eq!(
        stale, 0,
        "a session read an older value than another one had been told was committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_consistency_does_not_cover_another_sessions_writes() {
    let c = cluster();
    let _g = c.exclusive().await;
    let db = c.fresh_db("ryw_other");
    let (stale, _) = stale_reads(Consistency::Session, &db, true, OTHER_READER_ITERATIONS).await;
    eprintln!("session, other reader: {stale} stale reads in {OTHER_READER_ITERATIONS}");
    assert!(
        stale > 0,
        "another session's reads should go stale here; the global test would not catch a bug"
    );
}
