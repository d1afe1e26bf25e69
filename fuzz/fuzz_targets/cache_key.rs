//! The result cache's keys (`cache::key`): the statement text as normalised,
//! the session facts that change a reply's bytes, and for COM_STMT_EXECUTE the
//! bound values `execute_params` takes from an arbitrary payload.
//!
//! Checks: a key is a function of its inputs; two keys are equal exactly when
//! every part is (the text compared as normalised, the capabilities only in
//! the bits that change a reply); blanks and a plain comment before the text
//! never change its key; an execution that relies on remembered parameter
//! types keys like the same execution with the types sent (the `with_types`
//! rewrite); `normalize` only shortens, keeps a text with a backslash as it
//! is, and never starts with a blank.
//!
//! Input: `flags caps(4) collation params(2)`, then length-prefixed user,
//! schema, replayed SETs (a count, then each), COM_STMT_EXECUTE payload and
//! remembered types; the rest is the statement text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sqlproxy::cache::key::{
    execute_key, execute_params, normalize_into, text_key, KeyParts, KEY_CAPS,
};
use sqlproxy::protocol::execute::{execute_layout, with_types};

fn normalize(sql: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    normalize_into(sql, &mut out);
    out
}

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }

    fn byte(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    fn piece(&mut self) -> &'a [u8] {
        let n = self.byte() as usize;
        self.take(n)
    }
}

/// A part changed for the "every part counts" check.
fn other_parts<'a>(
    p: &KeyParts<'a>,
    which: u8,
    more: &'a [Vec<u8>],
    user: &'a str,
) -> KeyParts<'a> {
    match which % 6 {
        0 => KeyParts { user, ..*p },
        1 => KeyParts {
            schema: match p.schema {
                Some(_) => None,
                None => Some(b""),
            },
            ..*p
        },
        2 => KeyParts {
            collation: p.collation ^ 1,
            ..*p
        },
        3 => KeyParts {
            // The lowest bit that changes a reply.
            caps: p.caps ^ (KEY_CAPS & KEY_CAPS.wrapping_neg()),
            ..*p
        },
        4 => KeyParts { sets: more, ..*p },
        _ => KeyParts {
            schema: Some(
                p.schema
                    .map_or(&b"x"[..], |s| &s[..s.len().saturating_sub(1)]),
            ),
            ..*p
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let flags = input.byte();
    let caps = u32::from_le_bytes([input.byte(), input.byte(), input.byte(), input.byte()]);
    let collation = input.byte();
    let params = u16::from_le_bytes([input.byte(), input.byte()]) % 64;
    let user = String::from_utf8_lossy(input.piece()).into_owned();
    let schema = input.piece();
    let sets: Vec<Vec<u8>> = (0..input.byte() % 4)
        .map(|_| input.piece().to_vec())
        .collect();
    let payload = input.piece();
    let stored = input.piece();
    let sql = input.0;

    let parts = KeyParts {
        user: &user,
        schema: (flags & 1 != 0).then_some(schema),
        collation,
        caps,
        sets: &sets,
    };

    // A function of its inputs.
    let key = text_key(&parts, sql);
    assert_eq!(key, text_key(&parts, sql));

    // `normalize`: drops and collapses separators only.
    let norm = normalize(sql);
    assert!(norm.len() <= sql.len());
    if sql.contains(&b'\\') {
        assert_eq!(norm, sql);
    } else {
        assert!(!norm.first().is_some_and(|b| b.is_ascii_whitespace()));
        let mut padded = b" \t\r\n /* sqlproxy */ -- x\n".to_vec();
        padded.extend_from_slice(sql);
        assert_eq!(normalize(&padded), norm, "leading separators count");
        assert_eq!(text_key(&parts, &padded), key);
    }

    // Keys are equal exactly when the normalised texts are.
    let (a, b) = sql.split_at(sql.len() / 2);
    let same = normalize(a) == normalize(b);
    assert_eq!(text_key(&parts, a) == text_key(&parts, b), same);

    // Every part of the session counts; capability bits outside KEY_CAPS do not.
    let mut more = sets.clone();
    more.push(payload.to_vec());
    let user2 = format!("{user}\0");
    let changed = other_parts(&parts, flags >> 1, &more, &user2);
    let differs = changed.user != parts.user
        || changed.schema != parts.schema
        || changed.collation != parts.collation
        || (changed.caps ^ parts.caps) & KEY_CAPS != 0
        || changed.sets != parts.sets;
    assert_eq!(text_key(&changed, sql) != key, differs);
    let quiet = KeyParts {
        caps: caps ^ !KEY_CAPS,
        ..parts
    };
    assert_eq!(text_key(&quiet, sql), key);

    // Executions: the bound values count, and a COM_QUERY never meets a COM_STMT_EXECUTE.
    let stored = (flags & 0x80 != 0).then_some(stored);
    let Some(values) = execute_params(payload, params, stored) else {
        return;
    };
    let xkey = execute_key(&parts, sql, &values);
    assert_ne!(xkey, key);
    let mut values2 = values.clone();
    values2.push(flags);
    assert_ne!(execute_key(&parts, sql, &values2), xkey);
    if params == 0 {
        assert!(values.is_empty());
        return;
    }
    // The types: sent with the execution, or remembered from an earlier one.
    // Keyed either way, the same execution gets the same key.
    let layout = execute_layout(payload, params).expect("execute_params read the flag");
    let n = 2 * params as usize;
    if layout.types_bound {
        assert_eq!(values.len(), payload.len() - 11);
    } else {
        let types = stored.expect("types came from somewhere");
        assert_eq!(values.len(), payload.len() - 11 + n);
        let sent = with_types(payload, layout, types);
        assert_eq!(
            execute_params(&sent, params, None).as_deref(),
            Some(&values[..])
        );
    }
});
