//! `SHOW SESSIONS`: the live client sessions, like `SHOW PROCESSLIST`:
//! id, user, client address, schema, current command and for how long, the
//! nodes it holds connections to, the statement text while one runs, and
//! the TLS version and cipher of a client that uses TLS (NULL in cleartext).

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
            ("tls_version", Text),
            ("tls_cipher", Text),
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
                s.tls.as_ref().map(|t| t.version.clone()),
                s.tls.map(|t| t.cipher),
            ]);
        }
        super::ready(Ok(Reply::Rows(rs)))
    }
}
