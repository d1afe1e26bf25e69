//! Automatic failover: the master is SIGKILLed under a running write load.
//! Writes resume on the other node, no write that got an OK is missing
//! there, and the old master comes back fenced (read_only) and only serves
//! reads once it replicates from the new master. Changes the cluster, so it
//! has its own cluster and the exclusive lock.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{cluster, connect, server_id, Proxy};
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_killed_under_write_load_fails_over_without_losing_acknowledged_writes() {
    let c = cluster();
    let _g = c.exclusive().await;
    let db = c.fresh_db("failover");
    let cfg = c.config();
    let (interval, fall) = (cfg.monitor.interval, cfg.monitor.fall);
    let proxy = Proxy::start(cfg);
    let topology = Arc::clone(&proxy.context.topology);
    let url = proxy.url(Some(&db));
    let mut setup = connect(&url).await;
    setup
        .query_drop("CREATE TABLE w (id INT PRIMARY KEY, node INT)")
        .await
        .unwrap();
    // Discovery: cn1 (priority 1) is master and cn2 fenced.
    for _ in 0..400 {
        let s = topology.snapshot();
        if s.master == Some(0) && s.nodes[1].read_only == Some(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(topology.snapshot().master, Some(0));
    assert_eq!(
        topology.snapshot().nodes[1].read_only,
        Some(true),
        "cn2 fenced at start"
    );

    // Write load: each acknowledged id is remembered.
    let acked = Arc::new(Mutex::new(Vec::<(i32, Instant)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, url) = (Arc::clone(&acked), Arc::clone(&stop), url.clone());
        tokio::spawn(async move {
            let mut conn: Option<mysql_async::Conn> = None;
            let mut id = 0;
            let mut errors = 0u32;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                if conn.is_none() {
                    conn = mysql_async::Conn::from_url(url.as_str()).await.ok();
                }
                let Some(c) = conn.as_mut() else {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                match c
                    .exec_drop("INSERT INTO w VALUES (?, @@server_id)", (id,))
                    .await
                {
                    Ok(()) => acked.lock().unwrap().push((id, Instant::now())),
                    Err(_) => {
                        errors += 1;
                        conn = None; // a driver reconnects after an error
                    }
                }
            }
            errors
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.kill(0);
    let killed = Instant::now();
    let mut new_master = None;
    for _ in 0..2000 {
        let s = topology.snapshot();
        if s.master == Some(1) {
            new_master = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let promoted = new_master.expect("cn2 was promoted");
    // Let writes run on the new master for a while.
    let mut first_write_after = None;
    for _ in 0..2000 {
        if let Some((_, at)) = acked
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(_, at)| *at > killed)
        {
            first_write_after = Some(at.duration_since(killed));
        }
        if first_write_after.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first_write_after = first_write_after.expect("writes resumed after the failover");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let errors = writer.await.unwrap();
    eprintln!(
        "promoted after {promoted:?}, first acknowledged write {first_write_after:?} after the kill \
         (2 x fall x interval = {:?}); {errors} failed writes during the switch",
        interval * fall * 2
    );

    // Every acknowledged write is on the new master.
    let acked_ids: Vec<i32> = acked.lock().unwrap().iter().map(|(id, _)| *id).collect();
    assert!(acked_ids.len() > 10, "the load ran");
    let mut direct2 = connect(&c.direct_url(1, Some(&db))).await;
    let on_cn2: Vec<i32> = direct2.query("SELECT id FROM w ORDER BY id").await.unwrap();
    let missing: Vec<&i32> = acked_ids
        .iter()
        .filter(|id| on_cn2.binary_search(id).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but missing on the new master: {missing:?}"
    );
    let late_nodes: Vec<u32> = direct2
        .query("SELECT DISTINCT node FROM w WHERE node <> 1")
        .await
        .unwrap();
    assert_eq!(late_nodes, vec![2], "writes after the failover ran on cn2");

    // The old master comes back fenced, and is not a master again by itself.
    if let Err(e) = c.nodes[0].start(true) {
        panic!("restart cn1: {e}");
    }
    let mut fenced = false;
    for _ in 0..2000 {
        let s = topology.snapshot();
        if s.is_up(0) && s.nodes[0].read_only == Some(true) {
            fenced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(fenced, "cn1 came back fenced");
    let ro = c.nodes[0].value("SELECT @@GLOBAL.read_only").unwrap();
    assert_eq!(ro, "1", "read_only on the returned node itself");
    assert_eq!(
        topology.snapshot().master,
        Some(1),
        "no flapping back to cn1"
    );
    let mut reader = connect(&url).await;
    if topology.snapshot().nodes[0].diverged.is_some() {
        // It had committed a transaction the new master never received: it
        // must stay out and be reported, never rejoined silently.
        for _ in 0..50 {
            assert_eq!(
                server_id(&mut reader).await,
                2,
                "a diverged node serves no reads"
            );
        }
        eprintln!("cn1 diverged (a commit it made was never received by cn2): kept out");
    } else {
        let mut served = false;
        for _ in 0..4000 {
            if server_id(&mut reader).await == 1 {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(served, "cn1 serves reads again once it replicates from cn2");
    }
    // Writes still go to cn2.
    reader
        .query_drop("INSERT INTO w VALUES (-1, @@server_id)")
        .await
        .unwrap();
    let node: Option<u32> = direct2
        .query_first("SELECT node FROM w WHERE id = -1")
        .await
        .unwrap();
    assert_eq!(node, Some(2));
}
