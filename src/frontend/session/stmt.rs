//! Server-side prepared statements of a session: COM_STMT_PREPARE (always on
//! the master first), EXECUTE routed like the statement (prepared
//! transparently on another node, parameter types re-sent), SEND_LONG_DATA,
//! CLOSE, RESET and FETCH (cursors stay on the master).

use std::time::Instant;

use super::{Attempt, Session};
use crate::backend::{relay, BackendError, RelayError, Sink, StmtIds};
use crate::cache;
use crate::frontend::prepared::{self, NodeStmt, PreparedStmt};
use crate::frontend::FrontendError;
use crate::protocol::com;
use crate::protocol::err::ProxyError;
use crate::protocol::response::Expect;
use crate::router::{self, Target};

impl Session {
    pub(super) async fn prepare(
        &mut self,
        payload: &[u8],
        sql: &[u8],
        seq: u8,
    ) -> Result<(), FrontendError> {
        let stmt = router::classify(sql);
        let master = self.master()?;
        let client_id = self.prepared.peek_id();
        if let Err(e) = self.ready_conn(master).await {
            self.send_backend_error(seq, &e).await;
            return Ok(());
        }
        let out = match self
            .attempt(
                master,
                payload,
                Expect::Prepare,
                Some(StmtIds {
                    client: client_id,
                    node: None,
                }),
            )
            .await?
        {
            Attempt::Done(out) => out,
            Attempt::NodeFailed { sent, next_seq, .. } => {
                let s = if sent { next_seq } else { seq };
                self.reply_err(s, ProxyError::backend_lost("master"))
                    .await?;
                return self.after_lost_connection(master);
            }
            Attempt::Unavailable(e) => {
                self.send_backend_error(seq, &e).await;
                return Ok(());
            }
        };
        if let Some((stmt_id, _cols, params)) = out.prepared {
            let conn_id = self.conns[master].as_ref().map_or(0, |c| c.id);
            let mut on = vec![None; self.conns.len()];
            on[master] = Some(NodeStmt {
                conn_id,
                stmt_id,
                types_sent: false,
            });
            let id = self.prepared.insert(PreparedStmt {
                prepare_payload: payload.to_vec(),
                stmt: std::sync::Arc::new(stmt),
                params,
                types: None,
                on,
                long_data: false,
                cursor: false,
            });
            debug_assert_eq!(id, client_id);
        }
        Ok(())
    }

    /// The node statement id for `id` on `node`'s connection, preparing it
    /// there first if needed. None if it cannot be prepared there.
    pub(super) async fn prepared_on(
        &mut self,
        id: u32,
        node: usize,
    ) -> Result<Option<NodeStmt>, BackendError> {
        self.ready_conn(node).await?;
        let Some(conn) = self.conns[node].as_mut() else {
            return Err(BackendError::Protocol("connection vanished"));
        };
        let Some(ps) = self.prepared.get(id) else {
            return Ok(None);
        };
        if let Some(ns) = ps.on_conn(node, conn.id) {
            return Ok(Some(ns));
        }
        if let Err(e) = conn.send(&ps.prepare_payload).await {
            self.conns[node] = None;
            return Err(e.into());
        }
        let out = match relay(conn, Sink::Discard, Expect::Prepare).await {
            Ok(out) => out,
            Err(e) => {
                self.conns[node] = None;
                return Err(BackendError::Protocol(match e {
                    RelayError::Backend { .. } => "connection lost while preparing",
                    RelayError::Client(_) => "client lost while preparing",
                }));
            }
        };
        let Some((stmt_id, _, _)) = out.prepared else {
            return Ok(None);
        };
        let ns = NodeStmt {
            conn_id: conn.id,
            stmt_id,
            types_sent: false,
        };
        if let Some(ps) = self.prepared.get_mut(id) {
            if let Some(slot) = ps.on.get_mut(node) {
                *slot = Some(ns);
            }
        }
        Ok(Some(ns))
    }

    pub(super) async fn execute(
        &mut self,
        payload: &[u8],
        id: u32,
        flags: u8,
        seq: u8,
    ) -> Result<(), FrontendError> {
        let Some(cache) = self.ctx.cache.clone() else {
            return self.execute_routed(payload, id, flags, seq, false).await;
        };
        let Some(ps) = self.prepared.get_mut(id) else {
            return self.execute_routed(payload, id, flags, seq, false).await;
        };
        // A hit never reaches execute_routed: remember the types it bound here.
        let layout = prepared::execute_layout(payload, ps.params);
        if let Some(l) = layout.filter(|l| l.types_bound) {
            if let Some(t) = prepared::bound_types(payload, l, ps.params) {
                ps.types = Some(t.to_vec());
            }
        }
        let Some(ps) = self.prepared.get(id) else {
            return self.execute_routed(payload, id, flags, seq, false).await;
        };
        let sql = ps.prepare_payload.get(1..).unwrap_or_default();
        let params = (flags == 0 && !ps.long_data)
            .then(|| cache::key::execute_params(payload, ps.params, ps.types.as_deref()))
            .flatten();
        let plan = params.and_then(|p| self.cache_plan(&cache, &ps.stmt, sql, Some(&p)));
        let writes = match &plan {
            Some(_) => None,
            None => cache.writes(&ps.stmt, sql, self.state.schema.as_deref()),
        };
        if let Some(plan) = plan {
            let binary = Expect::Results {
                binary: true,
                cursor: false,
            };
            return self.cached_read(&cache, &plan, payload, seq, binary).await;
        }
        self.cache_writes_begin(&cache, writes);
        let res = self.execute_routed(payload, id, flags, seq, false).await;
        self.cache_writes_end(&cache).await?;
        res
    }

    /// `force_master`: a cache miss loads from the master (see docs/cache.md).
    pub(super) async fn execute_routed(
        &mut self,
        payload: &[u8],
        id: u32,
        flags: u8,
        seq: u8,
        force_master: bool,
    ) -> Result<(), FrontendError> {
        let Some(ps) = self.prepared.get_mut(id) else {
            return self
                .reply_err(
                    seq,
                    ProxyError::unknown_stmt_handler(id, "mysqld_stmt_execute"),
                )
                .await;
        };
        let cursor = flags != 0;
        let layout = prepared::execute_layout(payload, ps.params);
        if let Some(l) = layout.filter(|l| l.types_bound) {
            if let Some(t) = prepared::bound_types(payload, l, ps.params) {
                ps.types = Some(t.to_vec());
            }
        }
        let force_master = force_master || ps.long_data || cursor;
        let stmt = std::sync::Arc::clone(&ps.stmt);
        let route = router::route(&self.router_context(&stmt, force_master));
        let _pass = match route.target {
            Target::Master => self.write_pass().await,
            Target::Read => None,
        };
        let mut node = self.node_for(route, &stmt)?;
        let mut retry = route.target == Target::Read;
        let started = Instant::now();
        loop {
            let master = self.master()?;
            retry &= node != master;
            let ns = match self.prepared_on(id, node).await {
                Ok(Some(ns)) => ns,
                Ok(None) | Err(_) if retry => {
                    node = master;
                    retry = false;
                    continue;
                }
                Ok(None) => {
                    return self
                        .reply_err(
                            seq,
                            ProxyError::unknown_stmt_handler(id, "mysqld_stmt_execute"),
                        )
                        .await
                }
                Err(e) => {
                    self.send_backend_error(seq, &e).await;
                    return Ok(());
                }
            };
            let Some(ps) = self.prepared.get_mut(id) else {
                return Ok(());
            };
            let mut p = payload.to_vec();
            p[1..5].copy_from_slice(&ns.stmt_id.to_le_bytes());
            let mut types_sent = ns.types_sent;
            if let Some(l) = layout {
                if l.types_bound {
                    types_sent = true;
                } else if !ns.types_sent {
                    if let Some(types) = &ps.types {
                        p = prepared::with_types(&p, l, types);
                        types_sent = true;
                    }
                }
            }
            if let Some(Some(slot)) = ps.on.get_mut(node) {
                slot.types_sent = types_sent;
            }
            match self
                .attempt(
                    node,
                    &p,
                    Expect::Results {
                        binary: true,
                        cursor,
                    },
                    Some(StmtIds {
                        client: id,
                        node: Some(ns.stmt_id),
                    }),
                )
                .await?
            {
                Attempt::Done(out) => {
                    self.finish(node, &stmt.digest, route, started, &out);
                    if let Some(ps) = self.prepared.get_mut(id) {
                        ps.long_data = false;
                        ps.cursor = cursor;
                    }
                    return Ok(());
                }
                Attempt::NodeFailed { sent: false, .. } | Attempt::Unavailable(_) if retry => {
                    node = master;
                    retry = false;
                }
                Attempt::NodeFailed { sent, next_seq, .. } => {
                    let s = if sent { next_seq } else { seq };
                    let name = self.ctx.pools.node_name(node);
                    self.reply_err(s, ProxyError::backend_lost(&name)).await?;
                    return self.after_lost_connection(node);
                }
                Attempt::Unavailable(e) => {
                    self.send_backend_error(seq, &e).await;
                    return Ok(());
                }
            }
        }
    }

    /// Long data goes to the master; the execution that follows runs there.
    pub(super) async fn send_long_data(&mut self, payload: &[u8], id: u32) {
        let Ok(master) = self.master() else { return };
        let Ok(Some(ns)) = self.prepared_on(id, master).await else {
            return;
        };
        if let Some(ps) = self.prepared.get_mut(id) {
            ps.long_data = true;
        }
        if let Some(conn) = self.conns[master].as_mut() {
            let mut p = payload.to_vec();
            p[1..5].copy_from_slice(&ns.stmt_id.to_le_bytes());
            if conn.send_unanswered(&p).await.is_err() {
                self.conns[master] = None;
            }
        }
    }

    pub(super) async fn stmt_close(&mut self, id: u32) {
        let Some(ps) = self.prepared.remove(id) else {
            return;
        };
        for (node, slot) in ps.on.iter().enumerate() {
            let Some(ns) = slot else { continue };
            let Some(conn) = self.conns.get_mut(node).and_then(Option::as_mut) else {
                continue;
            };
            if conn.id != ns.conn_id {
                continue;
            }
            let mut p = vec![com::STMT_CLOSE];
            p.extend_from_slice(&ns.stmt_id.to_le_bytes());
            if conn.send_unanswered(&p).await.is_err() {
                self.conns[node] = None;
            }
        }
    }

    pub(super) async fn stmt_reset(
        &mut self,
        payload: &[u8],
        id: u32,
        seq: u8,
    ) -> Result<(), FrontendError> {
        let Some(ps) = self.prepared.get_mut(id) else {
            return self
                .reply_err(
                    seq,
                    ProxyError::unknown_stmt_handler(id, "mysqld_stmt_reset"),
                )
                .await;
        };
        ps.long_data = false;
        ps.cursor = false;
        let on = ps.on.clone();
        let master = self.master()?;
        // The master's copy answers the client; other copies are reset quietly.
        for (node, slot) in on.iter().enumerate() {
            let Some(ns) = slot else { continue };
            if node == master {
                continue;
            }
            if let Some(conn) = self.conns.get_mut(node).and_then(Option::as_mut) {
                if conn.id == ns.conn_id {
                    let mut p = payload.to_vec();
                    p[1..5].copy_from_slice(&ns.stmt_id.to_le_bytes());
                    if conn.simple(&p).await.is_err() {
                        self.conns[node] = None;
                    }
                }
            }
        }
        match self.prepared_on(id, master).await {
            Ok(Some(ns)) => {
                let mut p = payload.to_vec();
                p[1..5].copy_from_slice(&ns.stmt_id.to_le_bytes());
                let ids = StmtIds {
                    client: id,
                    node: Some(ns.stmt_id),
                };
                self.exec(master, &p, Expect::Single, seq, false, Some(ids))
                    .await?;
                Ok(())
            }
            _ => self.reply_ok(seq).await,
        }
    }

    pub(super) async fn fetch(
        &mut self,
        payload: &[u8],
        id: u32,
        seq: u8,
    ) -> Result<(), FrontendError> {
        let master = self.master()?;
        let ns = match self.prepared.get(id) {
            Some(ps) => ps.on.get(master).copied().flatten(),
            None => None,
        };
        let live = ns.filter(|ns| {
            self.conns[master]
                .as_ref()
                .is_some_and(|c| c.id == ns.conn_id)
        });
        let Some(ns) = live else {
            return self
                .reply_err(
                    seq,
                    ProxyError::unknown_stmt_handler(id, "mysqld_stmt_fetch"),
                )
                .await;
        };
        let mut p = payload.to_vec();
        p[1..5].copy_from_slice(&ns.stmt_id.to_le_bytes());
        let ids = StmtIds {
            client: id,
            node: Some(ns.stmt_id),
        };
        if let Some((node, out)) = self
            .exec(master, &p, Expect::Fetch, seq, false, Some(ids))
            .await?
        {
            self.after(node, &out);
        }
        Ok(())
    }
}
