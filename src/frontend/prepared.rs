//! Server-side prepared statements of one session. Clients see ids the proxy
//! hands out; each node connection has its own ids, prepared on demand, so an
//! execution routed to another node is prepared there transparently. The
//! parameter types of the last execution that sent them are kept and
//! re-sent to a connection that has not seen them (otherwise the node would
//! bind every parameter as NULL).

use std::collections::HashMap;

use crate::router::Statement;

/// On one node connection: (connection id, node statement id, types sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStmt {
    pub conn_id: u64,
    pub stmt_id: u32,
    pub types_sent: bool,
}

#[derive(Debug, Clone)]
pub struct PreparedStmt {
    /// The COM_STMT_PREPARE payload (command byte included), for re-preparing.
    pub prepare_payload: Vec<u8>,
    /// Shared: every execution routes by it without copying it.
    pub stmt: std::sync::Arc<Statement>,
    pub params: u16,
    /// Parameter types from the last execution that bound them (2 bytes each).
    pub types: Option<Vec<u8>>,
    /// Per node (NodeId index).
    pub on: Vec<Option<NodeStmt>>,
    /// SEND_LONG_DATA went to the master: the next execution must run there.
    pub long_data: bool,
    /// A cursor is open on the master (COM_STMT_FETCH goes there).
    pub cursor: bool,
}

impl PreparedStmt {
    /// The node statement id valid on connection `conn_id` of `node`.
    pub fn on_conn(&self, node: usize, conn_id: u64) -> Option<NodeStmt> {
        self.on
            .get(node)
            .copied()
            .flatten()
            .filter(|n| n.conn_id == conn_id)
    }
}

#[derive(Debug, Default)]
pub struct Prepared {
    next_id: u32,
    stmts: HashMap<u32, PreparedStmt>,
}

impl Prepared {
    /// The id the next prepared statement will get (taken by `insert`).
    pub fn peek_id(&self) -> u32 {
        self.next_id.wrapping_add(1).max(1)
    }

    pub fn insert(&mut self, stmt: PreparedStmt) -> u32 {
        let id = self.peek_id();
        self.next_id = id;
        self.stmts.insert(id, stmt);
        id
    }

    pub fn get(&self, id: u32) -> Option<&PreparedStmt> {
        self.stmts.get(&id)
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut PreparedStmt> {
        self.stmts.get_mut(&id)
    }

    pub fn remove(&mut self, id: u32) -> Option<PreparedStmt> {
        self.stmts.remove(&id)
    }

    pub fn clear(&mut self) {
        self.stmts.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.stmts.is_empty()
    }
}

/// Where the parts of a COM_STMT_EXECUTE payload are, given the parameter count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecuteLayout {
    /// Offset of the new-params-bound flag.
    pub bound_flag_at: usize,
    pub types_bound: bool,
}

/// `17 id(4) flags(1) iterations(4) null-bitmap new-params-bound types values`.
pub fn execute_layout(payload: &[u8], params: u16) -> Option<ExecuteLayout> {
    if params == 0 {
        return None;
    }
    let at = 10 + (params as usize).div_ceil(8);
    let flag = *payload.get(at)?;
    Some(ExecuteLayout {
        bound_flag_at: at,
        types_bound: flag == 1,
    })
}

/// The types bound by an execution that sent them.
pub fn bound_types(payload: &[u8], layout: ExecuteLayout, params: u16) -> Option<&[u8]> {
    let start = layout.bound_flag_at + 1;
    payload.get(start..start + 2 * params as usize)
}

/// Rewrites an execution that did not send types into one that does.
pub fn with_types(payload: &[u8], layout: ExecuteLayout, types: &[u8]) -> Vec<u8> {
    let at = layout.bound_flag_at;
    let mut out = Vec::with_capacity(payload.len() + types.len());
    out.extend_from_slice(&payload[..at]);
    out.push(1);
    out.extend_from_slice(types);
    out.extend_from_slice(&payload[at + 1..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_types_are_found_and_injected() {
        // id 1, no cursor, 1 iteration, 2 params: bitmap 1 byte, bound, 2 types, values
        let mut p = vec![0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0b00, 1, 8, 0, 253, 0];
        p.extend_from_slice(&[42, 0, 0, 0, 0, 0, 0, 0, 1, b'x']);
        let l = execute_layout(&p, 2).unwrap();
        assert!(l.types_bound);
        assert_eq!(bound_types(&p, l, 2), Some(&[8, 0, 253, 0][..]));
        let mut unbound = p[..11].to_vec();
        unbound.push(0);
        unbound.extend_from_slice(&[42, 0, 0, 0, 0, 0, 0, 0, 1, b'x']);
        let l2 = execute_layout(&unbound, 2).unwrap();
        assert!(!l2.types_bound);
        assert_eq!(with_types(&unbound, l2, &[8, 0, 253, 0]), p);
        assert!(execute_layout(&p[..5], 2).is_none());
    }
}
