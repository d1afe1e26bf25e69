//! `SHOW SESSIONS`: the live client sessions, like `SHOW PROCESSLIST`:
//! id, user, client address, schema, current command and for how long, the
//! nodes it holds connections to, and the statement text while one runs.

use super::{cell, exact, AdminCommand, AdminContext, AdminError, Exec, Reply};
use super::{ColKind, ResultSet, Words};

pub struct ShowSessions;

impl AdminCommand for ShowSessions {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        exact(w, &["SHOW", "SESSIONS"], "SHOW SESSIONS", ShowSessions)
    }

    fn name(&self) -> &'static str {
        "show sessions"
    }

    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a> {
        use ColKind::{Int, Text};
        let proxy = &admin.proxy;
        let mut rs = ResultSet::new(&[
            ("id", Int),
            ("user", Text),
            ("client", Text),
            ("schema", Text),
            ("command", Text),
            ("time_s", Int),
            ("connected_s", Int),
            ("nodes", Text),
            ("info", Text),
        ]);
        for s in proxy.sessions.list() {
            let nodes: Vec<String> = s
                .nodes
                .iter()
                .map(|&n| proxy.pools.node_name(n).to_string())
                .collect();
            rs.push(vec![
                cell(s.id),
                cell(s.user),
                cell(s.peer),
                s.schema,
                cell(s.command),
                cell(s.time_s),
                cell(s.connected.elapsed().map_or(0, |d| d.as_secs())),
                cell(nodes.join(",")),
                s.info,
            ]);
        }
        super::ready(Ok(Reply::Rows(rs)))
    }
}
