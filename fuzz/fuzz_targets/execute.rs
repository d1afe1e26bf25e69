//! A client's COM_STMT_EXECUTE as `Session::execute` takes it apart: the
//! command header (`Command::parse`), then, for a statement with N parameters
//! (N from the fuzzer), where the new-params-bound flag and the types are
//! (`execute_layout`, `bound_types`), and the rewrite that adds remembered
//! types to an execution that sent none (`with_types`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sqlproxy::protocol::command::Command;
use sqlproxy::protocol::execute::{bound_types, execute_layout, with_types};

fuzz_target!(|data: &[u8]| {
    let Some((params, payload)) = data.split_first_chunk::<2>() else {
        return;
    };
    let params = u16::from_le_bytes(*params);
    if !matches!(Command::parse(payload), Command::StmtExecute { .. }) {
        return;
    }
    let Some(layout) = execute_layout(payload, params) else {
        return;
    };
    if let Some(types) = bound_types(payload, layout, params) {
        assert_eq!(types.len(), 2 * params as usize);
    }
    let types = vec![0xfd; 2 * params as usize];
    let out = with_types(payload, layout, &types);
    assert_eq!(out.len(), payload.len() + types.len());
    let again = execute_layout(&out, params).expect("layout survives the rewrite");
    assert!(again.types_bound);
    assert_eq!(bound_types(&out, again, params), Some(&types[..]));
});
