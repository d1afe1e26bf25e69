//! The router's view of a statement: `classify` (lexer, flags, digest, and the
//! sqlparser fallback on an unknown verdict) on arbitrary bytes, including
//! invalid UTF-8, unterminated strings and comments, and both lexing modes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sqlproxy::router::analyze::global;
use sqlproxy::router::classify::{classify, classify_with, scan, LexMode};

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
    let _ = scan(data);
    let mode = LexMode {
        no_backslash_escapes: true,
    };
    let _ = classify_with(data, mode, global());
});
