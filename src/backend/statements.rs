//! A session's server-side prepared statements, as the wire sees them. The
//! client knows each statement by an id the proxy hands out; each node
//! connection has its own id for it, prepared there on demand, so an
//! execution placed on another node is prepared there transparently. The
//! parameter types of the last execution that sent them are kept and
//! re-sent to a connection that has not seen them.

use std::collections::HashMap;

use crate::protocol::execute::{bound_types, execute_layout, with_types};
use crate::topology::NodeId;

/// The statement on one node connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStmt {
    /// [`super::BackendConn::id`]: node statement ids are valid on it only.
    pub conn_id: u64,
    pub stmt_id: u32,
    /// The parameter types were sent on this connection.
    pub types_sent: bool,
}

#[derive(Debug, Clone)]
struct Prepared {
    /// The COM_STMT_PREPARE payload (command byte included), to prepare again.
    prepare_payload: Vec<u8>,
    /// The schema it was prepared in: its unqualified tables are that
    /// schema's wherever it is prepared again.
    schema: Option<Vec<u8>>,
    params: u16,
    /// Parameter types from the last execution that bound them (2 bytes each).
    types: Option<Vec<u8>>,
    /// Per node.
    on: HashMap<NodeId, NodeStmt>,
    /// COM_STMT_SEND_LONG_DATA went to this connection (node, connection
    /// id): the next execution must run there, or the data would be missing.
    long_data: Option<(NodeId, u64)>,
}

#[derive(Debug, Default)]
pub struct Statements {
    last_id: u32,
    stmts: HashMap<u32, Prepared>,
}

impl Statements {
    /// The id the next prepared statement gets.
    pub fn next_id(&self) -> u32 {
        self.last_id.wrapping_add(1).max(1)
    }

    /// A statement prepared in `schema` on `node` (connection `conn_id`) as
    /// `stmt_id`.
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &mut self,
        id: u32,
        prepare_payload: &[u8],
        schema: Option<Vec<u8>>,
        params: u16,
        node: NodeId,
        conn_id: u64,
        stmt_id: u32,
    ) {
        self.last_id = id;
        let on = HashMap::from([(
            node,
            NodeStmt {
                conn_id,
                stmt_id,
                types_sent: false,
            },
        )]);
        self.stmts.insert(
            id,
            Prepared {
                prepare_payload: prepare_payload.to_vec(),
                schema,
                params,
                types: None,
                on,
                long_data: None,
            },
        );
    }

    /// The statement's COM_STMT_PREPARE payload, to prepare it elsewhere.
    pub fn prepare_payload(&self, id: u32) -> Option<&[u8]> {
        self.stmts.get(&id).map(|p| p.prepare_payload.as_slice())
    }

    /// The schema the statement was prepared in.
    pub fn schema(&self, id: u32) -> Option<&[u8]> {
        self.stmts.get(&id).and_then(|p| p.schema.as_deref())
    }

    /// The statement's parameter count and the types last bound.
    pub fn params(&self, id: u32) -> Option<(u16, Option<&[u8]>)> {
        self.stmts.get(&id).map(|p| (p.params, p.types.as_deref()))
    }

    /// Its id on `node`'s connection `conn_id`, if prepared there.
    pub fn on_conn(&self, id: u32, node: NodeId, conn_id: u64) -> Option<NodeStmt> {
        let p = self.stmts.get(&id)?;
        p.on.get(&node).copied().filter(|n| n.conn_id == conn_id)
    }

    /// Records a preparation on another connection.
    pub fn prepared_on(&mut self, id: u32, node: NodeId, conn_id: u64, stmt_id: u32) {
        if let Some(p) = self.stmts.get_mut(&id) {
            let ns = NodeStmt {
                conn_id,
                stmt_id,
                types_sent: false,
            };
            p.on.insert(node, ns);
        }
    }

    /// Remembers the parameter types an execution bound (if it bound any).
    pub fn note_types(&mut self, id: u32, execute: &[u8]) {
        let Some(p) = self.stmts.get_mut(&id) else {
            return;
        };
        let layout = execute_layout(execute, p.params).filter(|l| l.types_bound);
        if let Some(t) = layout.and_then(|l| bound_types(execute, l, p.params)) {
            p.types = Some(t.to_vec());
        }
    }

    /// Long data for `id` was sent on `node`'s connection `conn_id`.
    pub fn long_data_sent(&mut self, id: u32, node: NodeId, conn_id: u64) {
        if let Some(p) = self.stmts.get_mut(&id) {
            p.long_data = Some((node, conn_id));
        }
    }

    /// The execution as `node`'s connection `conn_id` must get it: its own
    /// statement id, and the types if the client did not send them and this
    /// connection has not seen them. Marks the types as sent there. None if
    /// the statement is not prepared there, or its long data went to
    /// another connection (executing without it would store NULLs).
    pub fn execution_for(
        &mut self,
        id: u32,
        node: NodeId,
        conn_id: u64,
        execute: &[u8],
    ) -> Option<Vec<u8>> {
        let p = self.stmts.get_mut(&id)?;
        if p.long_data.take().is_some_and(|at| at != (node, conn_id)) {
            return None;
        }
        let ns = p.on.get_mut(&node).filter(|ns| ns.conn_id == conn_id)?;
        let mut out = crate::protocol::execute::with_statement_id(execute, ns.stmt_id)?;
        if let Some(l) = execute_layout(execute, p.params) {
            if l.types_bound {
                ns.types_sent = true;
            } else if !ns.types_sent {
                if let Some(types) = &p.types {
                    out = with_types(&out, l, types);
                    ns.types_sent = true;
                }
            }
        }
        Some(out)
    }

    /// Forgets a statement; its copies on each node, to close there.
    pub fn remove(&mut self, id: u32) -> Vec<(NodeId, NodeStmt)> {
        self.stmts
            .remove(&id)
            .map(|p| p.on.into_iter().collect())
            .unwrap_or_default()
    }

    /// Where the statement is prepared.
    pub fn copies(&self, id: u32) -> Vec<(NodeId, NodeStmt)> {
        self.stmts
            .get(&id)
            .map(|p| p.on.iter().map(|(n, s)| (*n, *s)).collect())
            .unwrap_or_default()
    }

    pub fn clear(&mut self) {
        self.stmts.clear();
    }

    /// The session gave its connection to `node` back (its reset drops the
    /// statements there): every statement is prepared anew on the next
    /// connection, even if the pool hands the same one back.
    pub fn forget_node(&mut self, node: NodeId) {
        for p in self.stmts.values_mut() {
            p.on.remove(&node);
            if p.long_data.is_some_and(|(n, _)| n == node) {
                p.long_data = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// COM_STMT_EXECUTE of `id` with one parameter, types bound or not.
    fn execute(id: u32, bound: bool) -> Vec<u8> {
        let mut p = vec![0x17];
        p.extend_from_slice(&id.to_le_bytes());
        p.extend_from_slice(&[0, 1, 0, 0, 0, 0, u8::from(bound)]);
        if bound {
            p.extend_from_slice(&[8, 0]);
        }
        p.extend_from_slice(&42u64.to_le_bytes());
        p
    }

    #[test]
    fn a_connection_given_back_holds_no_statement_of_the_session() {
        let mut s = Statements::default();
        s.insert(1, b"\x16SELECT ?", None, 1, 0, 7, 3);
        s.prepared_on(1, 1, 8, 4);
        s.forget_node(0);
        assert_eq!(s.on_conn(1, 0, 7), None, "same connection drawn again");
        assert!(s.on_conn(1, 1, 8).is_some());
        assert_eq!(s.prepare_payload(1), Some(&b"\x16SELECT ?"[..]));
    }

    #[test]
    fn an_execution_gets_the_connections_id_and_missing_types() {
        let mut s = Statements::default();
        let id = s.next_id();
        s.insert(id, b"\x16SELECT ?", None, 1, 0, 10, 77);
        s.note_types(id, &execute(id, true));
        // On the connection it was prepared on: the node's id, types as sent.
        let first = s.execution_for(id, 0, 10, &execute(id, true)).unwrap();
        assert_eq!(&first[1..5], &77u32.to_le_bytes());
        // Prepared on another node: an unbound execution gets the types.
        s.prepared_on(id, 1, 20, 5);
        let elsewhere = s.execution_for(id, 1, 20, &execute(id, false)).unwrap();
        assert_eq!(elsewhere, {
            let mut want = execute(5, true);
            want[1..5].copy_from_slice(&5u32.to_le_bytes());
            want
        });
        // Once sent there, later unbound executions go as the client sent them.
        let again = s.execution_for(id, 1, 20, &execute(id, false)).unwrap();
        assert_eq!(again.len(), execute(id, false).len());
        assert_eq!(s.on_conn(id, 1, 21), None, "another connection of node 1");
        // Long data sent on one connection: an execution elsewhere is refused.
        s.long_data_sent(id, 0, 10);
        assert!(s.execution_for(id, 1, 20, &execute(id, false)).is_none());
        s.long_data_sent(id, 0, 10);
        assert!(s.execution_for(id, 0, 10, &execute(id, false)).is_some());
        assert_eq!(s.remove(id).len(), 2);
        assert!(s.execution_for(id, 0, 10, &execute(id, false)).is_none());
    }
}
