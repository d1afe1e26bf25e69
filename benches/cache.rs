//! Cost of the result cache's hot path: building a key, planning a statement (per-digest
//! shape look-up + key), and a whole hit (plan, moka look-up, generation check, replay
//! into the client's write buffer), next to the classify the session runs anyway.
//!
//! Run: `cargo bench --bench cache -- --quick`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sqlproxy::cache::{key, Captured, KeyParts, QueryCache};
use sqlproxy::config::CacheConfig;
use sqlproxy::protocol::{caps, codec};
use sqlproxy::router::classify;

const POINT_SELECT: &str = "SELECT c FROM sbtest1 WHERE id=4991";

const CONFIG_SELECT: &str = "/* ps: Configuration::get */ SELECT `value` FROM `ps_configuration` \
     WHERE `name` = 'PS_SHOP_ENABLE' AND (`id_shop_group` IS NULL OR `id_shop_group` = 0) \
     AND (`id_shop` IS NULL OR `id_shop` = 0) LIMIT 1";

fn parts() -> KeyParts<'static> {
    KeyParts {
        user: "sbtest",
        schema: Some(b"sbtest"),
        collation: 45,
        caps: caps::PROXY_SERVER,
        sets: &[],
    }
}

/// A sysbench-sized reply: one column, one 120-byte row.
fn reply() -> Vec<u8> {
    let mut b = Vec::new();
    let mut seq = codec::write_packet(&mut b, 1, &[1]);
    seq = codec::write_packet(&mut b, seq, &[0x42; 40]);
    let mut row = vec![120u8];
    row.extend_from_slice(&[b'x'; 120]);
    seq = codec::write_packet(&mut b, seq, &row);
    codec::write_packet(&mut b, seq, &[0xFE, 0, 0, 2, 0, 0, 0]);
    b
}

fn bench(c: &mut Criterion) {
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    let cfg = CacheConfig {
        enabled: true,
        ..CacheConfig::default()
    };
    let cache = match QueryCache::new(&cfg) {
        Ok(c) => c,
        Err(e) => panic!("cache: {e}"),
    };
    let p = parts();
    let mut g = c.benchmark_group("cache");
    for (name, sql) in [
        ("point_select", POINT_SELECT),
        ("config_select", CONFIG_SELECT),
    ] {
        let stmt = classify(sql.as_bytes());
        g.bench_function(format!("classify/{name}"), |b| {
            b.iter(|| classify(black_box(sql.as_bytes())))
        });
        g.bench_function(format!("key/{name}"), |b| {
            b.iter(|| key::text_key(&p, black_box(sql.as_bytes())))
        });
        g.bench_function(format!("plan/{name}"), |b| {
            b.iter(|| cache.plan(black_box(&stmt), sql.as_bytes(), &p, None))
        });
        let Some(plan) = cache.plan(&stmt, sql.as_bytes(), &p, None) else {
            panic!("{name} is not cacheable");
        };
        rt.block_on(cache.load(&plan, async {
            Some(Captured {
                bytes: reply(),
                first_seq: 1,
                overflow: false,
            })
        }));
        let mut out = Vec::with_capacity(1024);
        g.bench_function(format!("hit/{name}"), |b| {
            b.iter(|| {
                out.clear();
                let plan = cache.plan(&stmt, sql.as_bytes(), &p, None);
                let Some(plan) = plan else { return 0 };
                match rt.block_on(cache.get(&plan)) {
                    Some(e) => e.replay_into(&mut out, 1),
                    None => 0,
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
