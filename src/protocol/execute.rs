//! The parts of statement commands the proxy edits: the statement id of
//! COM_STMT_EXECUTE / FETCH / RESET / CLOSE / SEND_LONG_DATA (the node's id
//! differs from the client's), and the parameter types of an execution
//! (re-sent to a connection that has not seen them, or the node would bind
//! every parameter as NULL). Pure functions over payloads.

/// The payload with its statement id (bytes 1..5) set to `id`; None for a
/// payload too short to carry one.
pub fn with_statement_id(payload: &[u8], id: u32) -> Option<Vec<u8>> {
    let mut p = payload.to_vec();
    p.get_mut(1..5)?.copy_from_slice(&id.to_le_bytes());
    Some(p)
}

/// The statement id a statement command names.
pub fn statement_id(payload: &[u8]) -> Option<u32> {
    let b = payload.get(1..5)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
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
    fn statement_ids_are_read_and_replaced() {
        let p = [0x17, 5, 0, 0, 0, 1, 1, 0, 0, 0];
        assert_eq!(statement_id(&p), Some(5));
        let q = with_statement_id(&p, 0x0102_0304).unwrap();
        assert_eq!(&q[..5], &[0x17, 4, 3, 2, 1]);
        assert_eq!(&q[5..], &p[5..]);
        assert_eq!(with_statement_id(&[0x17, 1], 9), None);
        assert_eq!(statement_id(&[0x19]), None);
    }

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
