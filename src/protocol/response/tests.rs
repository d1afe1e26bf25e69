//! Where a reply ends, packet by packet, for every kind of command.

use super::*;

#[test]
fn tracker_result_set_deprecate_eof() {
    let mut t = ResponseTracker::new(
        Expect::Results {
            binary: false,
            cursor: false,
        },
        true,
    );
    assert_eq!(t.on_packet(&[2], 1), PacketKind::Data);
    assert_eq!(t.on_packet(b"\x03def", 30), PacketKind::Data);
    assert_eq!(t.on_packet(b"\x03def", 30), PacketKind::Data);
    assert_eq!(t.on_packet(b"\x01a", 4), PacketKind::Data);
    assert_eq!(t.on_packet(b"\xfe\x00\x00", 7), PacketKind::Ok);
    t.status_seen(status::AUTOCOMMIT | status::MORE_RESULTS_EXISTS);
    assert!(!t.is_done());
    assert_eq!(t.on_packet(b"\x00\x00\x00", 7), PacketKind::Ok);
    t.status_seen(status::AUTOCOMMIT);
    assert!(t.is_done());
}

#[test]
fn tracker_result_set_classic_eof() {
    let mut t = ResponseTracker::new(
        Expect::Results {
            binary: false,
            cursor: false,
        },
        false,
    );
    t.on_packet(&[1], 1);
    t.on_packet(b"\x03def", 30);
    assert_eq!(t.on_packet(b"\xfe\x00\x00\x02\x00", 5), PacketKind::Eof);
    t.status_seen(2);
    assert!(!t.is_done());
    assert_eq!(t.on_packet(b"\x01a", 2), PacketKind::Data);
    assert_eq!(t.on_packet(b"\xfe\x00\x00\x02\x00", 5), PacketKind::Eof);
    t.status_seen(2);
    assert!(t.is_done());
}

#[test]
fn tracker_err_mid_rows_ends() {
    let mut t = ResponseTracker::new(
        Expect::Results {
            binary: false,
            cursor: false,
        },
        true,
    );
    t.on_packet(&[1], 1);
    t.on_packet(b"\x03def", 30);
    t.on_packet(b"\x01a", 2);
    assert_eq!(t.on_packet(b"\xff\x25\x05", 20), PacketKind::Err);
    assert!(t.is_done());
}

#[test]
fn tracker_prepare() {
    // 2 params, 1 column, classic EOF
    let mut t = ResponseTracker::new(Expect::Prepare, false);
    let ok = [0u8, 1, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0];
    assert_eq!(t.on_packet(&ok, 12), PacketKind::PrepareOk);
    t.on_packet(b"\x03def", 20);
    t.on_packet(b"\x03def", 20);
    assert_eq!(t.on_packet(b"\xfe\0\0\x02\0", 5), PacketKind::Eof);
    t.on_packet(b"\x03def", 20);
    assert!(!t.is_done());
    assert_eq!(t.on_packet(b"\xfe\0\0\x02\0", 5), PacketKind::Eof);
    assert!(t.is_done());
    // no params, no columns
    let mut t = ResponseTracker::new(Expect::Prepare, true);
    t.on_packet(&[0u8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 12);
    assert!(t.is_done());
}

#[test]
fn tracker_local_infile() {
    let mut t = ResponseTracker::new(
        Expect::Results {
            binary: false,
            cursor: false,
        },
        true,
    );
    assert_eq!(t.on_packet(b"\xfbfile.csv", 9), PacketKind::LocalInfile);
    assert!(!t.is_done());
    assert_eq!(t.on_packet(b"\x00\x03\x00", 7), PacketKind::Ok);
    t.status_seen(2);
    assert!(t.is_done());
}

/// Feeds packets as the relay does; returns how many were read when the
/// tracker said the reply ended (None: it still waits).
fn ends_after(t: &mut ResponseTracker, packets: &[&[u8]]) -> Option<usize> {
    for (i, p) in packets.iter().enumerate() {
        match t.on_packet(p, p.len()) {
            PacketKind::Ok => t.status_seen(parse_ok(p, true).map_or(0, |o| o.status)),
            PacketKind::Eof => t.status_seen(eof_status(p)),
            _ => {}
        }
        if t.is_done() {
            return Some(i + 1);
        }
    }
    None
}

// Replies of MariaDB 10.11 to `CALL p1(1)`, a procedure that loops over a
// cursor and SELECTs each value: the node leaves CURSOR_EXISTS (0x40) in
// the status of every EOF inside the call (0x006a, with MORE_RESULTS).
const COLDEF: &[u8] =
    b"\x03def\x00\x00\x00\x03v_a\x03v_a\x0c?\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00\x00";
const EOF_IN_CALL: &[u8] = b"\xfe\x00\x00\x6a\x00";
const TERM_IN_CALL: &[u8] = b"\xfe\x00\x00\x6a\x00\x00\x00";
const CALL_OK: &[u8] = b"\x00\x00\x00\x22\x00\x00\x00";
const TEXT: Expect = Expect::Results {
    binary: false,
    cursor: false,
};
const CURSOR: Expect = Expect::Results {
    binary: true,
    cursor: true,
};

#[test]
fn text_reply_of_a_procedure_with_a_cursor_is_read_to_its_end() {
    let classic: &[&[u8]] = &[b"\x01", COLDEF, EOF_IN_CALL, b"\x011", EOF_IN_CALL, CALL_OK];
    let mut t = ResponseTracker::new(TEXT, false);
    assert_eq!(ends_after(&mut t, classic), Some(classic.len()));
    let modern: &[&[u8]] = &[b"\x01", COLDEF, b"\x011", TERM_IN_CALL, CALL_OK];
    let mut t = ResponseTracker::new(TEXT, true);
    assert_eq!(ends_after(&mut t, modern), Some(modern.len()));
}

#[test]
fn cursor_requested_on_a_call_streams_every_result() {
    // The node opens no cursor for CALL: rows follow the metadata.
    let row: &[u8] = b"\x00\x00\x01\x00\x00\x00";
    let classic: &[&[u8]] = &[b"\x01", COLDEF, EOF_IN_CALL, row, EOF_IN_CALL, CALL_OK];
    let mut t = ResponseTracker::new(CURSOR, false);
    assert_eq!(ends_after(&mut t, classic), Some(classic.len()));
    let modern: &[&[u8]] = &[b"\x01", COLDEF, row, TERM_IN_CALL, CALL_OK];
    let mut t = ResponseTracker::new(CURSOR, true);
    assert_eq!(ends_after(&mut t, modern), Some(modern.len()));
}

#[test]
fn a_cursor_asked_for_but_not_opened_on_an_empty_result_ends_at_its_terminator() {
    // SHOW WARNINGS (nothing to show) executed with CURSOR_TYPE_READ_ONLY:
    // the node streams instead, and under DEPRECATE_EOF the terminator is
    // the only packet after the metadata.
    let empty: &[&[u8]] = &[b"\x01", COLDEF, b"\xfe\x00\x00\x02\x00\x00\x00"];
    let mut t = ResponseTracker::new(CURSOR, true);
    assert_eq!(ends_after(&mut t, empty), Some(3));
    // A CALL whose first result is empty: the terminator says more follow.
    let call: &[&[u8]] = &[b"\x01", COLDEF, TERM_IN_CALL, CALL_OK];
    let mut t = ResponseTracker::new(CURSOR, true);
    assert_eq!(ends_after(&mut t, call), Some(4));
    // Classic EOFs: the EOF ends the metadata, the second one the rows.
    let classic: &[&[u8]] = &[
        b"\x01",
        COLDEF,
        b"\xfe\x00\x00\x02\x00",
        b"\xfe\x00\x00\x02\x00",
    ];
    let mut t = ResponseTracker::new(CURSOR, false);
    assert_eq!(ends_after(&mut t, classic), Some(4));
}

#[test]
fn an_opened_cursor_ends_the_reply_after_its_metadata() {
    // SELECT with CURSOR_TYPE_READ_ONLY: metadata, then one classic EOF
    // with CURSOR_EXISTS (0x0062), in both EOF styles; rows come by FETCH.
    let opened: &[&[u8]] = &[b"\x01", COLDEF, b"\xfe\x00\x00\x62\x00"];
    for deprecate_eof in [false, true] {
        let mut t = ResponseTracker::new(CURSOR, deprecate_eof);
        assert_eq!(
            ends_after(&mut t, opened),
            Some(3),
            "deprecate_eof={deprecate_eof}"
        );
    }
    // Without a cursor asked for, the same flag means nothing.
    let mut t = ResponseTracker::new(
        Expect::Results {
            binary: true,
            cursor: false,
        },
        false,
    );
    assert_eq!(ends_after(&mut t, opened), None);
    // FETCH: rows, then an EOF with LAST_ROW_SENT.
    let fetched: &[&[u8]] = &[b"\x00\x00\x01\x00\x00\x00", b"\xfe\x00\x00\x82\x00"];
    let mut t = ResponseTracker::new(Expect::Fetch, false);
    assert_eq!(ends_after(&mut t, fetched), Some(2));
}

#[test]
fn tracker_never_panics_on_garbage() {
    for expect in [
        Expect::Results {
            binary: true,
            cursor: true,
        },
        Expect::Prepare,
        Expect::Fetch,
        Expect::FieldList,
        Expect::Single,
    ] {
        for eof in [true, false] {
            let mut t = ResponseTracker::new(expect, eof);
            for b in 0..=255u8 {
                let k = t.on_packet(&[b, b, b], b as usize);
                if matches!(k, PacketKind::Ok | PacketKind::Eof) {
                    t.status_seen(b as u16);
                }
                t.on_packet(&[], 0);
            }
        }
    }
}
