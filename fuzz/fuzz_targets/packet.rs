//! A node's reply as the relay sees it: the input is a stream of physical
//! packets (after a first byte choosing the command kind and EOF style). Each
//! logical packet goes through `ResponseTracker::on_packet`; OK/EOF/ERR
//! packets are decoded as `backend::relay` does, and every OK is also run
//! through `strip_session_track`, whose output must decode to the same fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sqlproxy::protocol::codec::{complete_packet, MAX_CHUNK};
use sqlproxy::protocol::response::{
    eof_status, parse_err, parse_ok, strip_session_track, Expect, PacketKind, ResponseTracker,
};
use sqlproxy::protocol::status;

fn expect_of(b: u8) -> Expect {
    match b % 7 {
        0 => Expect::Results {
            binary: false,
            cursor: false,
        },
        1 => Expect::Results {
            binary: true,
            cursor: false,
        },
        2 => Expect::Results {
            binary: true,
            cursor: true,
        },
        3 => Expect::Prepare,
        4 => Expect::Fetch,
        5 => Expect::FieldList,
        _ => Expect::Single,
    }
}

fn check_ok(payload: &[u8]) {
    let Some(ok) = parse_ok(payload, true) else {
        return;
    };
    let mut out = Vec::new();
    if strip_session_track(payload, &mut out).is_some() {
        let again = parse_ok(&out, false).expect("stripped OK must parse");
        assert_eq!(again.affected_rows, ok.affected_rows);
        assert_eq!(again.last_insert_id, ok.last_insert_id);
        assert_eq!(again.status, ok.status & !status::SESSION_STATE_CHANGED);
        assert_eq!(again.warnings, ok.warnings);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut tracker = ResponseTracker::new(expect_of(mode), mode & 0x80 != 0);
    while let Some(h) = complete_packet(rest) {
        let payload = &rest[4..4 + h.len];
        let len = if h.continues() { MAX_CHUNK } else { h.len };
        match tracker.on_packet(payload, len) {
            PacketKind::Ok => {
                check_ok(payload);
                let status = parse_ok(payload, true).map_or(0, |ok| ok.status);
                tracker.status_seen(status);
            }
            PacketKind::Eof => tracker.status_seen(eof_status(payload)),
            PacketKind::Err => {
                let _ = parse_err(payload);
            }
            _ => {
                check_ok(payload);
            }
        }
        rest = &rest[4 + h.len..];
        if tracker.is_done() {
            tracker = ResponseTracker::new(expect_of(mode.wrapping_add(1)), mode & 0x40 != 0);
        }
    }
});
