//! The seed in miniature, end to end: two `php -S` workers behind the HTTP
//! balancer, each page reading a row from MariaDB through the SQL proxy with
//! PDO; one sqlproxy process serves both halves.

mod common;
mod http_common;

use std::collections::HashMap;

use common::{cluster, Proxy};
use http_common::php::PhpWorker;
use http_common::{client, get};
use sqlproxy::config::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_read_mariadb_rows_through_both_workers() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("http_e2e");
    // First the SQL half, to learn its address for the workers' DSN.
    let sql = Proxy::start(c.config());
    let dsn = format!("mysql:host=127.0.0.1;port={};dbname={db}", sql.addr.port());
    let env = [
        ("SQLPROXY_DSN", dsn.as_str()),
        ("SQLPROXY_USER", "prestashop"),
        ("SQLPROXY_PASSWORD", "prestashop"),
        (
            "SQLPROXY_QUERY",
            "SELECT @@server_id AS server_id, DATABASE() AS db",
        ),
    ];
    let wa1 = PhpWorker::start_with("wa1", &env).await;
    let wa2 = PhpWorker::start_with("wa2", &env).await;
    // One process with both halves: the SQL proxy and the balancer.
    let toml = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\nuser = \"admin\"\npassword = \"pw\"\n[http]\nlisten = \"127.0.0.1:0\"\n[http.health]\npath = \"/health\"\ninterval = \"200ms\"\nrise = 1\nfall = 2\n\
         [[http.backends]]\nname = \"wa1\"\naddress = \"{}\"\n[[http.backends]]\nname = \"wa2\"\naddress = \"{}\"\n",
        c.config_toml(),
        wa1.addr,
        wa2.addr
    );
    let cfg = Config::from_toml_str(&toml, []).unwrap_or_else(|e| panic!("{e}"));
    let both = Proxy::start(cfg);
    let http = both.http_addr.expect("the balancer is bound");
    let cl = client();
    let mut workers: HashMap<String, usize> = HashMap::new();
    let mut nodes: HashMap<String, usize> = HashMap::new();
    for _ in 0..100 {
        let r = get(&cl, &format!("http://{http}/")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.body.contains(&format!("<td class=\"db\">{db}</td>")),
            "{}",
            r.body
        );
        *workers.entry(r.worker().to_string()).or_default() += 1;
        let sid = r
            .body
            .split("<td class=\"server_id\">")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .unwrap_or("?")
            .to_string();
        *nodes.entry(sid).or_default() += 1;
    }
    assert_eq!(workers.get("wa1"), Some(&50), "{workers:?}");
    assert_eq!(workers.get("wa2"), Some(&50), "{workers:?}");
    assert!(
        nodes.keys().all(|k| k == "1" || k == "2"),
        "rows came from the nodes: {nodes:?}"
    );
    // The admin SQL port drives the workers: drain wa1, then every page is wa2's.
    let admin_url = format!(
        "mysql://admin:pw@{}?prefer_socket=false",
        both.admin_addr.expect("admin port")
    );
    let mut admin = mysql_async::Conn::from_url(admin_url.as_str())
        .await
        .unwrap();
    use mysql_async::prelude::Queryable;
    let states: Vec<(String, String)> = admin
        .query_map("SHOW HTTP BACKENDS", |row: mysql_async::Row| {
            (
                row.get::<String, _>("name").unwrap(),
                row.get::<String, _>("state").unwrap(),
            )
        })
        .await
        .unwrap();
    assert_eq!(
        states,
        vec![("wa1".into(), "UP".into()), ("wa2".into(), "UP".into())]
    );
    admin
        .query_drop("SET HTTP BACKEND 'wa1' DRAIN")
        .await
        .unwrap();
    for _ in 0..10 {
        let r = get(&cl, &format!("http://{http}/")).await;
        assert_eq!(r.worker(), "wa2", "a drained worker takes no new requests");
    }
    admin
        .query_drop("SET HTTP BACKEND 'wa1' READY")
        .await
        .unwrap();
    drop(sql);
}
