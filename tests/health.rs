//! Health checks take a dead node out of read rotation and bring it back,
//! and nobody who was not using it notices. This file stops a node, so it has
//! its own cluster and holds the fixture's exclusive lock.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, connect, server_id, Proxy};
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_leaves_rotation_and_returns() {
    let c = cluster();
    let _g = c.exclusive().await;
    let db = c.fresh_db("health");
    let cfg = c.config();
    let (interval, rise, fall) = (cfg.monitor.interval, cfg.monitor.rise, cfg.monitor.fall);
    let proxy = Proxy::start(cfg);
    let mut reader = connect(&proxy.url(Some(&db))).await;
    let mut writer = connect(&proxy.url(Some(&db))).await;
    writer
        .query_drop("CREATE TABLE w (id INT AUTO_INCREMENT PRIMARY KEY)")
        .await
        .unwrap();
    // Both nodes in rotation, and the reader holds a connection to each.
    let mut seen = [false; 2];
    for _ in 0..400 {
        seen[(server_id(&mut reader).await as usize - 1).min(1)] = true;
        if seen == [true, true] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, [true, true], "both nodes serve reads before the kill");

    let topology = std::sync::Arc::clone(&proxy.context.topology);
    let down = c.take_down(1);
    let killed = Instant::now();
    // Reads never fail: one that lands on the dead node before the monitor
    // notices is retried on the master before any byte reached the client.
    let mut left = None;
    for _ in 0..4000 {
        assert_eq!(
            server_id(&mut reader).await,
            1,
            "only the master serves now"
        );
        writer.query_drop("INSERT INTO w VALUES ()").await.unwrap();
        if !topology.snapshot().is_up(1) {
            left = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let left = left.expect("the monitor marked cn2 down");
    for _ in 0..50 {
        assert_eq!(server_id(&mut reader).await, 1, "cn2 is out of rotation");
    }
    eprintln!(
        "cn2 out of rotation {left:?} after SIGKILL (fall {fall} x interval {interval:?} = {:?})",
        interval * fall
    );

    drop(down); // restarts cn2 and waits until it replicates again
    let restarted = Instant::now();
    let mut back = None;
    for _ in 0..4000 {
        if topology.snapshot().is_up(1) {
            back = Some(restarted.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let back = back.expect("the monitor marked cn2 up again");
    let mut served = false;
    for _ in 0..400 {
        if server_id(&mut reader).await == 2 {
            served = true;
            break;
        }
    }
    assert!(served, "cn2 serves reads again");
    eprintln!(
        "cn2 back in rotation {back:?} after the fixture saw it replicate (rise {rise} x interval {interval:?} = {:?})",
        interval * rise
    );
    // The writer, which only used the master, saw no error at all (every
    // INSERT above succeeded), and all its rows are there.
    let n: Option<u64> = writer
        .query_first("SELECT /* sqlproxy:master */ COUNT(*) FROM w")
        .await
        .unwrap();
    assert!(n.unwrap_or(0) > 0);
}
