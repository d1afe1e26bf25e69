//! Real clients through the proxy: sysbench (server-side prepared statements
//! and text protocol), the `mariadb` command-line client, PHP PDO (emulated
//! and native prepares) and mysqli, as the shop uses them.

mod common;

use std::process::Command;

use common::{cluster, php, Proxy};

fn sysbench(proxy: &Proxy, db: &str, extra: &[&str], phase: &str) -> String {
    let port = proxy.addr.port().to_string();
    let out = Command::new("sysbench")
        .args([
            "oltp_read_write",
            "--mysql-host=127.0.0.1",
            &format!("--mysql-port={port}"),
            "--mysql-user=prestashop",
            "--mysql-password=prestashop",
            &format!("--mysql-db={db}"),
            "--tables=2",
            "--table-size=500",
            "--threads=4",
            "--events=300",
            "--time=0",
            "--rand-seed=7",
        ])
        .args(extra)
        .arg(phase)
        .output()
        .unwrap_or_else(|e| panic!("run sysbench (apt-get install sysbench): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sysbench {phase} failed:\n{text}");
    text
}

/// `errors:` line of sysbench's summary: "errors: N (x per sec.)".
fn count(text: &str, label: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` in sysbench output:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sysbench_read_write_has_no_errors() {
    let c = cluster();
    let _g = c.shared().await;
    for (name, extra) in [("ps", &[][..]), ("text", &["--db-ps-mode=disable"][..])] {
        let db = c.fresh_db(&format!("sysbench_{name}"));
        let proxy = Proxy::start(c.config());
        sysbench(&proxy, &db, extra, "prepare");
        let out = sysbench(&proxy, &db, extra, "run");
        assert_eq!(count(&out, "transactions:"), 300, "{out}");
        // Deadlocks are retried by sysbench and reported as "ignored errors";
        // anything else is fatal and already failed the run.
        assert!(!out.contains("FATAL"), "{out}");
        assert_eq!(count(&out, "reconnects:"), 0, "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_cli_works_through_the_proxy() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("cli");
    let proxy = Proxy::start(c.config());
    let port = proxy.addr.port().to_string();
    let script = "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10));\n\
                  INSERT INTO t VALUES (1,'a'),(2,'b');\n\
                  SELECT /* sqlproxy:master */ COUNT(*) AS n, GROUP_CONCAT(v ORDER BY id) AS vs FROM t;\n\
                  SHOW TABLES;\n\
                  SELECT DATABASE();\n";
    let out = Command::new("mariadb")
        .args([
            "-h127.0.0.1",
            &format!("-P{port}"),
            "-uprestashop",
            "-pprestashop",
            "--batch",
            &db,
        ])
        .arg("-e")
        .arg(script)
        .output()
        .expect("mariadb client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("n\tvs\n2\ta,b\n"), "{stdout}");
    assert!(stdout.contains("Tables_in_"), "{stdout}");
    assert!(stdout.contains(&format!("DATABASE()\n{db}\n")), "{stdout}");
    // A failing statement gives the node's message and exit status 1.
    let out = Command::new("mariadb")
        .args([
            "-h127.0.0.1",
            &format!("-P{port}"),
            "-uprestashop",
            "-pprestashop",
            &db,
        ])
        .args(["-e", "SELECT * FROM missing_table"])
        .output()
        .expect("mariadb client");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("ERROR 1146 (42S02)"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_pdo_and_mysqli_work_through_the_proxy() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("php");
    let proxy = Proxy::start(c.config());
    let port = proxy.addr.port().to_string();
    let out = php::run(
        "shop.php",
        &["127.0.0.1", &port, "prestashop", "prestashop", &db],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let kv = php::key_values(&out);
    for mode in ["emulated", "native"] {
        assert_eq!(kv[&format!("{mode}.ids_distinct")], "yes", "{out}");
        assert_eq!(
            kv[&format!("{mode}.name")],
            format!("Café ☕ {mode} 4"),
            "{out}"
        );
        assert_eq!(kv[&format!("{mode}.price")], "13.500000", "{out}");
        assert_eq!(
            kv[&format!("{mode}.last_insert_id_matches")],
            "yes",
            "{out}"
        );
        assert_eq!(kv[&format!("{mode}.price_in_tx")], "14.500000", "{out}");
        assert_eq!(kv[&format!("{mode}.dup")], "23000/1062", "{out}");
    }
    assert_eq!(kv["mysqli.insert_id_ok"], "yes", "{out}");
    assert_eq!(kv["mysqli.count_at_least"], "yes", "{out}");
    // whoami through the proxy: both drivers log in and read.
    let out = php::run(
        "whoami.php",
        &["127.0.0.1", &port, "prestashop", "prestashop", &db],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let kv = php::key_values(&out);
    assert_eq!(kv["pdo.db"], db);
    assert_eq!(kv["mysqli.db"], db);
    assert!(kv["pdo.version"].contains("MariaDB"), "{out}");
}
