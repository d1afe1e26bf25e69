//! The admin port's statement parser, as the listener calls it: the bytes of
//! a COM_QUERY, refused unless UTF-8, then `admin::parse`. Every statement
//! must become a command or an `AdminError` (and that error an ERR packet),
//! never a panic. Keywords match without regard to ASCII case, so upper- and
//! lower-casing a statement must not change which command it is or which
//! usage a syntax error names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sqlproxy::admin::words::Words;
use sqlproxy::admin::{parse, AdminError};

/// What a parse decided, without the texts that change with case.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Command(&'static str),
    Unknown,
    Syntax(&'static str),
    Other,
}

fn verdict(sql: &str) -> Verdict {
    match parse(sql) {
        Ok(cmd) => Verdict::Command(cmd.name()),
        Err(e) => {
            let packet = e.to_proxy_error();
            assert!(!packet.message.is_empty());
            match e {
                AdminError::Unknown(_) => Verdict::Unknown,
                AdminError::Syntax { usage } => Verdict::Syntax(usage),
                _ => Verdict::Other,
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let v = verdict(sql);
    if let Ok(words) = Words::split(sql) {
        let _ = words.text();
    }
    assert_eq!(verdict(&sql.to_ascii_uppercase()), v, "upper-cased");
    assert_eq!(verdict(&sql.to_ascii_lowercase()), v, "lower-cased");
});
