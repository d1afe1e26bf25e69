//! What drivers check of a server, through the proxy and straight to a
//! node, side by side: one connection id per client session (handshake,
//! `CONNECTION_ID()`, KILL by that id, with MariaDB's errors and what the
//! killed client sees), and a command over the node's max_allowed_packet.
//! Real clients: PyMySQL (`tests/python/*.py`), mysql_async and the `mariadb`
//! CLI. The packet test changes the nodes' max_allowed_packet, so this file
//! has its own cluster.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use mysql_async::prelude::Queryable;
use sqlproxy::config::Config;

use common::{cluster, connect, Proxy, APP_PASSWORD, APP_USER};

/// A second application account, without CONNECTION ADMIN: it may not kill
/// the first one's sessions.
const OTHER_USER: &str = "fidelity_other";
const OTHER_PASSWORD: &str = "other";

/// A Python that has PyMySQL (Debian's python3-pymysql lives in /usr/bin's).
fn python() -> &'static str {
    static FOUND: OnceLock<Option<&'static str>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        ["/usr/bin/python3", "python3"].into_iter().find(|p| {
            Command::new(p)
                .args(["-c", "import pymysql"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
    });
    found.unwrap_or_else(|| panic!("no python3 with PyMySQL (apt-get install python3-pymysql)"))
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// Runs a `tests/python` script; its `key=value` lines.
fn run_python(name: &str, args: &[&str]) -> BTreeMap<String, String> {
    let out = Command::new(python())
        .arg(script(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Thread ids differ between a node and the proxy; the words around them must not.
fn without_trailing_number(v: &str) -> String {
    v.trim_end_matches(|c: char| c.is_ascii_digit()).to_string()
}

fn config_with_other_user() -> Config {
    let toml = format!(
        "{}\n[users.{OTHER_USER}]\npassword = \"{OTHER_PASSWORD}\"\n",
        cluster().config_toml()
    );
    Config::from_toml_str(&toml, []).unwrap_or_else(|e| panic!("config: {e}"))
}

fn create_other_user() {
    let c = cluster();
    let sql = format!(
        "CREATE USER IF NOT EXISTS '{OTHER_USER}'@'%' IDENTIFIED BY '{OTHER_PASSWORD}'; \
         GRANT SELECT ON *.* TO '{OTHER_USER}'@'%'"
    );
    c.nodes[0].sql(&sql).expect("create the second user");
    c.wait_replicated();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymysql_kill_by_connection_id_works_as_on_a_node() {
    let c = cluster();
    let _g = c.shared().await;
    create_other_user();
    let proxy = Proxy::start(config_with_other_user());
    let port = proxy.addr.port().to_string();
    let node_port = c.nodes[0].port.to_string();
    let args = |port: &str| -> Vec<String> {
        [
            "127.0.0.1",
            port,
            APP_USER,
            APP_PASSWORD,
            OTHER_USER,
            OTHER_PASSWORD,
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |port: &str| {
        let a = args(port);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        run_python("kill.py", &a)
    };
    let direct = run(&node_port);
    let through = run(&port);
    assert_eq!(
        direct.get("kill_query_victim").map(String::as_str),
        Some("interrupted"),
        "the node itself: {direct:?}"
    );
    let norm = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .map(|(k, v)| (k.clone(), without_trailing_number(v)))
            .collect()
    };
    assert_eq!(norm(&through), norm(&direct), "proxy vs node");
    assert_eq!(
        through
            .get("handshake_is_connection_id")
            .map(String::as_str),
        Some("True")
    );
    assert_eq!(
        through.get("unknown_id").map(String::as_str),
        Some("1094:Unknown thread id: 4000000000")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_denied_names_the_session_id() {
    let c = cluster();
    let _g = c.shared().await;
    create_other_user();
    let proxy = Proxy::start(config_with_other_user());
    let url = proxy.url(None);
    let mut victim = connect(&url).await;
    let victim_id = victim.id();
    let other_url = format!(
        "mysql://{OTHER_USER}:{OTHER_PASSWORD}@127.0.0.1:{}?prefer_socket=false",
        proxy.addr.port()
    );
    let mut intruder = connect(&other_url).await;
    for sql in [
        format!("KILL {victim_id}"),
        format!("KILL QUERY {victim_id}"),
    ] {
        match intruder.query_drop(&sql).await {
            Err(mysql_async::Error::Server(e)) => {
                assert_eq!(e.code, 1095, "{sql}: {e:?}");
                assert_eq!(e.state, "HY000", "{sql}");
                assert_eq!(
                    e.message,
                    format!("You are not owner of thread {victim_id}")
                );
            }
            other => panic!("{sql}: expected 1095, got {other:?}"),
        }
    }
    let alive: Option<u32> = victim.query_first("SELECT 5").await.expect("victim alive");
    assert_eq!(alive, Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_id_is_the_handshake_id_everywhere() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("connection_id");
    let proxy = Proxy::start(c.config());
    let mut conn = connect(&proxy.url(Some(&db))).await;
    let id = conn.id();
    // Reads go to either node; every one must say the session's id.
    for _ in 0..6 {
        let got: Option<u32> = conn
            .query_first("SELECT CONNECTION_ID()")
            .await
            .expect("select");
        assert_eq!(got, Some(id));
    }
    let row: Option<(u64, String)> = conn
        .query_first("SELECT CONNECTION_ID() + 0, 'x'")
        .await
        .expect("expression");
    assert_eq!(row, Some((u64::from(id), "x".to_string())));
    let prepared: Option<u32> = conn
        .exec_first("SELECT CONNECTION_ID() WHERE ? = 1", (1,))
        .await
        .expect("prepared");
    assert_eq!(prepared, Some(id));
    conn.query_drop("CREATE TABLE t (owner BIGINT UNSIGNED, note VARCHAR(40))")
        .await
        .expect("create");
    conn.query_drop("INSERT INTO t VALUES (CONNECTION_ID(), 'CONNECTION_ID()')")
        .await
        .expect("insert");
    let stored: Option<(u64, String)> = conn
        .query_first("SELECT owner, note FROM t")
        .await
        .expect("read back");
    assert_eq!(stored, Some((u64::from(id), "CONNECTION_ID()".to_string())));

    // Column metadata as a node sends it: names, types, flags, lengths.
    let mut direct = connect(&c.direct_url(0, Some(&db))).await;
    for sql in [
        "SELECT CONNECTION_ID()",
        "SELECT CONNECTION_ID() + 0, 'x'",
        "SELECT connection_id ( ) AS c, -CONNECTION_ID()",
    ] {
        let columns = |r: Vec<mysql_async::Row>| -> Vec<String> {
            r[0].columns_ref()
                .iter()
                .map(|c| {
                    format!(
                        "{} {:?} {:?} {}",
                        c.name_str(),
                        c.column_type(),
                        c.flags(),
                        c.column_length()
                    )
                })
                .collect()
        };
        let through: Vec<mysql_async::Row> = conn.query(sql).await.expect("through");
        let node: Vec<mysql_async::Row> = direct.query(sql).await.expect("direct");
        assert_eq!(columns(through), columns(node), "{sql}");
    }
}

#[test]
fn mariadb_cli_connection_id_is_connection_id() {
    let c = cluster();
    let proxy = Proxy::start(c.config());
    let out = Command::new("mariadb")
        .args(["--no-defaults", "--protocol=tcp", "-h127.0.0.1"])
        .arg(format!("-P{}", proxy.addr.port()))
        .arg(format!("-u{APP_USER}"))
        .arg(format!("-p{APP_PASSWORD}"))
        .args(["-e", "status; SELECT CONNECTION_ID() AS id"])
        .output()
        .expect("run the mariadb client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status_id = text
        .lines()
        .find_map(|l| l.strip_prefix("Connection id:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no Connection id in:\n{text}"));
    let selected = text
        .lines()
        .skip_while(|l| l.trim() != "id")
        .nth(1)
        .map(|v| v.trim().to_string());
    assert_eq!(selected.as_deref(), Some(status_id.as_str()), "{text}");
}

/// The nodes' max_allowed_packet for the oversized-command test; the
/// cluster's own (scripts/cluster.cnf) comes back when dropped.
struct SmallPackets;

const SMALL_PACKET: u32 = 1024 * 1024;
const CLUSTER_PACKET: u32 = 1024 * 1024 * 1024;

impl SmallPackets {
    fn set() -> SmallPackets {
        for node in &cluster().nodes {
            node.sql(&format!("SET GLOBAL max_allowed_packet = {SMALL_PACKET}"))
                .expect("small max_allowed_packet");
        }
        SmallPackets
    }
}

impl Drop for SmallPackets {
    fn drop(&mut self) {
        for node in &cluster().nodes {
            if let Err(e) = node.sql(&format!("SET GLOBAL max_allowed_packet = {CLUSTER_PACKET}")) {
                eprintln!("could not restore max_allowed_packet on {}: {e}", node.name);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_command_gets_the_nodes_error_then_the_connection_closes() {
    let c = cluster();
    let _g = c.exclusive().await;
    let _small = SmallPackets::set();
    // New connections (the proxy's too) take the small limit.
    let proxy = Proxy::start(c.config());
    // Just over the node's limit.
    let size = (SMALL_PACKET + 1024).to_string();
    let run = |port: u16| {
        run_python(
            "packet.py",
            &[
                "127.0.0.1",
                &port.to_string(),
                APP_USER,
                APP_PASSWORD,
                &size,
            ],
        )
    };
    let direct = run(c.nodes[0].port);
    let through = run(proxy.addr.port());
    let node_reset_first = direct.get("wire_end").map(String::as_str) == Some("reset_on_write")
        || direct
            .get("error")
            .is_some_and(|e| e.starts_with("2006:") || e.starts_with("2013:"));
    if node_reset_first {
        // The node's reset overtook its ERR (the client was still writing):
        // nothing to compare byte for byte. Through the proxy the client
        // must still get the node's error or a closed connection, never the
        // proxy's "lost during the query".
        let error = through.get("error").map(String::as_str).unwrap_or("");
        assert!(
            error.starts_with("1153:") || error.starts_with("2006:") || error.starts_with("2013:"),
            "{through:?}"
        );
        let then = through.get("then").map(String::as_str).unwrap_or("");
        assert!(then.starts_with("gone 20"), "{through:?}");
        return;
    }
    assert_eq!(
        direct.get("error").map(String::as_str),
        Some("1153:Got a packet bigger than 'max_allowed_packet' bytes"),
        "the node itself: {direct:?}"
    );
    // The ERR packet byte for byte (code, SQLSTATE 08S01, message, sequence id).
    assert_eq!(through.get("wire"), direct.get("wire"));
    assert_eq!(through.get("wire_end").map(String::as_str), Some("closed"));
    assert_eq!(through.get("error"), direct.get("error"));
    // Then the connection is gone (2006 or 2013, by which call notices).
    for m in [&direct, &through] {
        let then = m.get("then").map(String::as_str).unwrap_or("");
        assert!(then.starts_with("gone 20"), "{m:?}");
    }
}

/// A view, routine or column default stores `CONNECTION_ID()` as text, to
/// run in whatever session uses it later: the statement that creates it is
/// not rewritten (MariaDB's `view` test found the creator's id stored as a
/// constant through the proxy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_id_in_a_definition_is_stored_as_the_call() {
    let c = cluster();
    let _g = c.shared().await;
    let db = c.fresh_db("connection_id_ddl");
    let proxy = Proxy::start(c.config());
    let mut conn = connect(&proxy.url(Some(&db))).await;
    conn.query_drop("CREATE VIEW v AS SELECT CONNECTION_ID() AS c")
        .await
        .expect("create view");
    conn.query_drop("CREATE PROCEDURE p() SELECT CONNECTION_ID() AS c")
        .await
        .expect("create procedure");
    conn.query_drop("CREATE TABLE t (a INT, b BIGINT DEFAULT (CONNECTION_ID()))")
        .await
        .expect("create table");
    let view: Option<(String, String, String, String)> =
        conn.query_first("SHOW CREATE VIEW v").await.expect("view");
    let (_, text, _, _) = view.expect("a row");
    assert!(text.contains("connection_id()"), "{text}");
    let proc_row: Option<mysql_async::Row> = conn
        .query_first("SHOW CREATE PROCEDURE p")
        .await
        .expect("proc");
    let body: String = proc_row.and_then(|r| r.get(2)).expect("the body");
    assert!(body.contains("CONNECTION_ID()"), "{body}");
    let table: Option<(String, String)> = conn
        .query_first("SHOW CREATE TABLE t")
        .await
        .expect("table");
    let (_, text) = table.expect("a row");
    assert!(text.contains("connection_id()"), "{text}");
    // Statements that run now still see the session's id.
    let id: Option<u32> = conn
        .query_first("SELECT CONNECTION_ID()")
        .await
        .expect("select");
    assert_eq!(id, Some(conn.id()));
}
