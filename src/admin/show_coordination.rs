//! `SHOW COORDINATION`: this instance's part in the etcd coordination: the
//! etcd endpoints and whether they answer, the election's holder, the
//! writer record (node, epoch, GTID at promotion), and every live
//! instance's view of every node. One row per fact, so the `mariadb` CLI
//! shows it as a table.

use super::{cell, exact, AdminCommand, AdminContext, AdminError, Exec, Reply};
use super::{ColKind, ResultSet, Words};

pub struct ShowCoordination;

impl AdminCommand for ShowCoordination {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        exact(
            w,
            &["SHOW", "COORDINATION"],
            "SHOW COORDINATION",
            ShowCoordination,
        )
    }

    fn name(&self) -> &'static str {
        "show coordination"
    }

    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a> {
        super::ready(Ok(Reply::Rows(rows(admin))))
    }
}

fn rows(admin: &AdminContext) -> ResultSet {
    let mut rs = ResultSet::new(&[
        ("item", ColKind::Text),
        ("name", ColKind::Text),
        ("value", ColKind::Text),
        ("detail", ColKind::Text),
    ]);
    let Some(co) = &admin.proxy.coordination else {
        rs.push(vec![
            cell("coordination"),
            None,
            cell("off"),
            cell("no [coordination] section: this instance decides alone"),
        ]);
        return rs;
    };
    let v = co.view();
    rs.push(vec![
        cell("instance"),
        cell(&v.instance),
        cell(if v.holds { "holder" } else { "follower" }),
        cell(format!("cluster {}", v.cluster)),
    ]);
    rs.push(vec![
        cell("etcd"),
        cell(v.endpoints.join(",")),
        cell(if v.etcd_up { "up" } else { "unreachable" }),
        (!v.etcd_up).then(|| {
            format!(
                "{}; nothing is promoted, writes go to the last recorded writer",
                v.last_error.as_deref().unwrap_or("no session yet")
            )
        }),
    ]);
    rs.push(vec![
        cell("holder"),
        v.holder.clone(),
        cell(if v.holder.is_some() { "held" } else { "none" }),
        None,
    ]);
    match &v.writer {
        Some(w) => rs.push(vec![
            cell("writer"),
            cell(&w.node),
            cell(format!("epoch {}", w.epoch)),
            cell(format!(
                "gtid {} recorded by {}{}",
                w.gtid,
                w.by,
                w.previous
                    .as_ref()
                    .map(|p| format!(", replaced {p}"))
                    .unwrap_or_default()
            )),
        ]),
        None => rs.push(vec![cell("writer"), None, cell("none"), None]),
    }
    for (name, view) in &v.instances {
        let nodes: Vec<String> = view.nodes.iter().map(|(n, s)| format!("{n}={s}")).collect();
        rs.push(vec![
            cell("view"),
            cell(name),
            cell(nodes.join(" ")),
            view.epoch.map(|e| format!("epoch {e}")),
        ]);
    }
    rs.push(vec![
        cell("writer_changes"),
        None,
        cell(v.recorded),
        cell("writer records this instance wrote to etcd"),
    ]);
    rs.push(vec![
        cell("vetoes"),
        None,
        cell(v.vetoes),
        cell("failovers refused here because another instance still reached the master"),
    ]);
    rs
}
