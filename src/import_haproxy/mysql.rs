//! The MySQL side: the TCP proxy that runs `option mysql-check` (a `listen`,
//! or a `frontend` whose `default_backend` does) becomes `[mysql]`,
//! `[nodes.*]`, `[monitor]` and `[pool]`. The seed's weight-256/1 "hack"
//! (one server takes nearly everything so writes mostly land on one node)
//! becomes what it meant: the heaviest server is the master at start
//! (priority 1) and reads are split over every healthy node.

use std::cmp::Reverse;

use super::map::{bind, duration_at, human, number_at, server_addr, Mapper, Proxy};
use super::server::{clean_name, servers, Server};
use super::write::{Output, Table};
use super::ImportError;

/// MySQL's port, for servers written without one.
const MYSQL_PORT: u16 = 3306;

/// A weight ratio at least this large between the heaviest and the lightest
/// active server is the "one master, a standby that gets a trickle" hack,
/// not a statement about capacity: 256/1 in the seed.
const HACK_RATIO: u32 = 10;

/// Server options the MySQL mapping reads.
const MAPPED: &[&str] = &[
    "weight", "inter", "rise", "fall", "check", "no-check", "backup", "disabled", "enabled",
];

/// The listen (or frontend + backend) in TCP mode that checks MySQL.
fn find<'a>(m: &Mapper<'a>) -> Option<(Proxy<'a>, Proxy<'a>)> {
    let is_mysql =
        |p: &Proxy<'_>| p.mode() == "tcp" && p.lookup(&["option", "mysql-check"]).is_some();
    for p in m.proxies() {
        match p.section.kind {
            super::SectionKind::Listen if is_mysql(&p) => return Some((p, p)),
            super::SectionKind::Frontend if p.mode() == "tcp" => {
                let backend = p
                    .section
                    .find(&["default_backend"])
                    .and_then(|d| d.word(1))
                    .and_then(|name| m.cfg.backend(name))
                    .map(|(i, _)| Proxy::at(m.cfg, i));
                if let Some(b) = backend.filter(is_mysql) {
                    return Some((p, b));
                }
            }
            _ => {}
        }
    }
    None
}

pub fn map(m: &mut Mapper<'_>, out: &mut Output) -> Result<(), ImportError> {
    let Some((front, back)) = find(m) else {
        placeholder(out);
        return Ok(());
    };
    m.use_line(front.section.line);
    m.use_line(back.section.line);
    m.take(&front, &["mode"]);
    m.take(&back, &["mode"]);

    let mut mysql = Table::new("mysql");
    mysql.comment(format!(
        "From HAProxy `{}` (line {}), which relayed MySQL connections blindly.",
        front.section.title(),
        front.section.line
    ));
    match bind(m, &front) {
        Some((Some(addr), text, line)) => {
            mysql.set(
                "listen",
                addr.to_string(),
                format!("`{text}` (line {line})"),
            );
        }
        Some((None, text, line)) => {
            mysql.set(
                "listen",
                "0.0.0.0:3306",
                format!("`{text}` (line {line}) is not an address sqlproxy can listen on: set it"),
            );
        }
        None => {
            mysql.set(
                "listen",
                "0.0.0.0:3306",
                "HAProxy had no bind line here: set the address",
            );
        }
    }
    let maxconn = m.take(&front, &["maxconn"]).or_else(|| global_maxconn(m));
    if let Some(d) = maxconn {
        let n: u32 = number_at(d, 1)?;
        mysql.set(
            "max_connections",
            n,
            format!(
                "HAProxy `maxconn {n}` (line {}): clients beyond it get error 1040",
                d.line
            ),
        );
    }
    out.tables.push(mysql);

    let list = servers(m, &back, MAPPED)?;
    nodes(&list, out);
    users(out);
    monitor(m, &back, &list, out)?;
    pool(m, &back, out)?;

    let mut routing = Table::new("routing");
    if let Some(d) = m.take(&back, &["balance"]) {
        routing.comment(format!(
            "HAProxy `{}` (line {}) balanced whole connections, writes included;",
            d.text(),
            d.line
        ));
        routing.comment("sqlproxy routes each statement: writes to the master, reads by weight.");
    }
    routing.set("read_split", true, "").set(
        "consistency",
        "session",
        "A session reads its own writes (GTID).",
    );
    out.tables.push(routing);

    let mut failover = Table::new("failover");
    failover
        .comment("New: HAProxy only moved connections when a check failed. sqlproxy keeps")
        .comment("read_only=ON on every node but the master and promotes the most advanced")
        .comment("node when the master fails (docs/failover.md).")
        .set("manage_read_only", true, "")
        .set("auto_failover", true, "");
    out.tables.push(failover);
    Ok(())
}

fn global_maxconn<'a>(m: &mut Mapper<'a>) -> Option<&'a super::Directive> {
    let d = m.cfg.global()?.find(&["maxconn"])?;
    m.use_line(d.line);
    Some(d)
}

/// `[nodes.*]`: priority from the HAProxy weight order, read weights split.
fn nodes(list: &[Server], out: &mut Output) {
    let active: Vec<u32> = list
        .iter()
        .filter(|s| !s.backup && !s.disabled)
        .map(|s| s.weight.unwrap_or(1))
        .collect();
    let max = active.iter().copied().max().unwrap_or(1);
    let min = active.iter().copied().filter(|&w| w > 0).min().unwrap_or(1);
    let hack = active.len() >= 2 && max >= HACK_RATIO.saturating_mul(min);
    let mut order: Vec<usize> = (0..list.len()).collect();
    order.sort_by_key(|&i| {
        (
            list[i].backup || list[i].disabled,
            Reverse(list[i].weight.unwrap_or(1)),
        )
    });
    let mut names: Vec<String> = Vec::new();
    for (rank, &i) in order.iter().enumerate() {
        let s = &list[i];
        let mut name = clean_name(&s.name, &format!("node{}", rank + 1));
        if names.contains(&name) {
            name = format!("{name}-{}", rank + 1);
        }
        names.push(name.clone());
        let w = s.weight.unwrap_or(1);
        let priority = rank as u32 + 1;
        let mut t = Table::new(format!("nodes.{name}"));
        t.comment(format!(
            "HAProxy `server {} {} weight {w}` (line {}).",
            s.name, s.addr, s.line
        ));
        if name != s.name {
            t.comment(format!(
                "Renamed from `{}`: node names are lower-case letters, digits, - and _.",
                s.name
            ));
        }
        match server_addr(&s.addr, MYSQL_PORT) {
            Some(a) => t.set("address", a, ""),
            None => t.set(
                "address",
                format!("{name}.invalid:{MYSQL_PORT}"),
                format!(
                    "`{}` is not a host:port sqlproxy can use: set the node's address",
                    s.addr
                ),
            ),
        };
        let (read, why) = if s.backup || s.disabled {
            (
                0,
                "a backup/disabled server: no reads unless it becomes the master".to_string(),
            )
        } else if hack {
            let share = u32::from(w > 0);
            let role = if rank == 0 {
                "the heaviest server was the de-facto master"
            } else {
                "the light server was the standby that got a trickle"
            };
            (
                share,
                format!("{role}; reads are now split evenly over healthy nodes"),
            )
        } else {
            (
                w,
                "HAProxy's weight, now the node's share of reads".to_string(),
            )
        };
        t.set("weight", read, why);
        let role = if rank == 0 {
            "the master at start (lower wins; the nodes' own read_only says first)"
        } else {
            "promoted on failover or SWITCHOVER TO"
        };
        t.set(
            "priority",
            priority,
            format!("Priority {priority}: {role}."),
        );
        out.tables.push(t);
    }
}

/// `[users.*]`: HAProxy never saw the logins; sqlproxy needs them.
fn users(out: &mut Output) {
    let mut t = Table::new("users.shop");
    t.comment("HAProxy relayed logins without reading them; sqlproxy logs clients in itself.")
        .comment("List the shop's database user (PrestaShop: app/config/parameters.php,")
        .comment("database_user / database_password), with the same password as on the nodes.")
        .set(
            "password",
            crate::config::EXAMPLE_PASSWORD,
            "Or password_hash = \"*...\" from mysql.user.",
        );
    out.tables.push(t);
}

/// `[monitor]` from `option mysql-check`, the servers' check timing and `timeout check`.
fn monitor<'a>(
    m: &mut Mapper<'a>,
    back: &Proxy<'a>,
    list: &[Server],
    out: &mut Output,
) -> Result<(), ImportError> {
    let mut t = Table::new("monitor");
    if let Some(d) = m.take(back, &["option", "mysql-check"]) {
        t.comment(format!(
            "HAProxy `{}` (line {}) only logged in.",
            d.text(),
            d.line
        ));
    }
    t.comment("sqlproxy's monitor also reads read_only, GTID and replication state, and fences")
        .comment("with read_only: its own user, with the grants of scripts/cluster-init.sql")
        .comment("(never a password-less check user).")
        .set("user", "sqlproxy_monitor", "")
        .set(
            "password",
            "",
            "Set it, better from the environment: SQLPROXY_MONITOR__PASSWORD=...",
        );
    let checked = list.iter().find(|s| s.check).or_else(|| list.first());
    if let Some(s) = checked {
        let from = format!("server {} (line {})", s.name, s.line);
        if let Some(i) = s.inter {
            t.set("interval", human(i), format!("`inter` of {from}"));
        }
        if let Some(r) = s.rise {
            t.set("rise", r, format!("`rise` of {from}"));
        }
        if let Some(f) = s.fall {
            t.set("fall", f, format!("`fall` of {from}"));
        }
        let differ = list
            .iter()
            .any(|o| (o.inter, o.rise, o.fall) != (s.inter, s.rise, s.fall));
        if differ {
            t.comment(
                "The servers had different check timings; the first checked server's are used.",
            );
        }
    }
    if let Some(d) = m.take(back, &["timeout", "check"]) {
        t.set(
            "timeout",
            human(duration_at(d, 2)?),
            format!("`{}` (line {})", d.text(), d.line),
        );
    }
    out.tables.push(t);
    Ok(())
}

/// `[pool]` from the backend's `timeout connect` and `timeout server`.
fn pool<'a>(m: &mut Mapper<'a>, back: &Proxy<'a>, out: &mut Output) -> Result<(), ImportError> {
    let mut t = Table::new("pool");
    if let Some(d) = m.take(back, &["timeout", "connect"]) {
        t.set(
            "connect_timeout",
            human(duration_at(d, 2)?),
            format!("`{}` (line {})", d.text(), d.line),
        );
    }
    if let Some(d) = m.take(back, &["timeout", "server"]) {
        t.set(
            "read_timeout",
            human(duration_at(d, 2)?),
            format!(
                "`{}` (line {}): a node silent this long in the middle of a reply is given up",
                d.text(),
                d.line
            ),
        );
    }
    if !t.entries.is_empty() {
        out.tables.push(t);
    }
    Ok(())
}

/// No MySQL proxy in the file: placeholders that validate, said loudly.
fn placeholder(out: &mut Output) {
    out.notes
        .push("No TCP proxy with `option mysql-check` was found in the HAProxy file:".into());
    out.notes
        .push("[mysql], [nodes.*] and [users.*] below are placeholders to fill in.".into());
    let mut mysql = Table::new("mysql");
    mysql.set(
        "listen",
        "127.0.0.1:3307",
        "Placeholder: where the shop's PHP connects.",
    );
    out.tables.push(mysql);
    for (name, port, priority) in [("cn1", 3306, 1), ("cn2", 3308, 2)] {
        let mut t = Table::new(format!("nodes.{name}"));
        t.set(
            "address",
            format!("127.0.0.1:{port}"),
            "Placeholder: a MariaDB node.",
        )
        .set("weight", 1, "")
        .set("priority", priority, "");
        out.tables.push(t);
    }
    users(out);
}
