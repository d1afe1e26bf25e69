//! Cost of the relay's per-packet work without sockets: framing
//! (`complete_packet`, `write_packet`), OK decoding (`parse_ok`), the OK
//! rewrite for clients without session tracking (`strip_session_track`), and
//! `ResponseTracker` following a whole result set the way `backend::relay`
//! walks it (frame, classify, copy into the client's write buffer).
//!
//! Run: `cargo bench --bench codec -- --quick`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sqlproxy::protocol::codec::{complete_packet, write_packet, MAX_CHUNK};
use sqlproxy::protocol::lenenc;
use sqlproxy::protocol::response::{
    eof_status, parse_ok, strip_session_track, Expect, PacketKind, ResponseTracker,
};

/// An INSERT's OK as MariaDB 10.11 sends it to a session-tracking connection:
/// affected 1, insert id 2, SESSION_STATE_CHANGED, and `last_gtid`.
const OK_GTID: &[u8] = b"\x00\x01\x02\x02\x40\x00\x00\x00\x13\x00\x11\x09last_gtid\x060-91-6";
/// A SELECT's final OK (0xFE header, DEPRECATE_EOF): no session state.
const OK_EOF: &[u8] = b"\xfe\x00\x00\x02\x00\x00\x00";

/// A column definition (protocol 4.1) for `sbtest1.c CHAR(120)`.
fn column_def(name: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    for s in [&b"def"[..], b"sbtest", b"sbtest1", b"sbtest1", name, name] {
        lenenc::write_str(&mut p, s);
    }
    p.push(0x0c);
    p.extend_from_slice(&45u16.to_le_bytes()); // utf8mb4_general_ci
    p.extend_from_slice(&480u32.to_le_bytes());
    p.push(0xfe); // MYSQL_TYPE_STRING
    p.extend_from_slice(&0x1001u16.to_le_bytes()); // NOT NULL, NO_DEFAULT_VALUE
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p
}

/// A text-protocol reply with DEPRECATE_EOF: column count, `cols` definitions,
/// `rows` rows of `cols` 120-byte values, and the final 0xFE OK.
fn result_set(cols: usize, rows: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut seq = 1;
    let mut count = Vec::new();
    lenenc::write_int(&mut count, cols as u64);
    seq = write_packet(&mut out, seq, &count);
    for i in 0..cols {
        seq = write_packet(&mut out, seq, &column_def(format!("c{i}").as_bytes()));
    }
    let value = b"83868641912-28773972837-60736120486-75162659906-27563526494-20381887404-41576422241-93426793964-56405065102-33518432330";
    let mut row = Vec::new();
    for _ in 0..cols {
        lenenc::write_str(&mut row, value);
    }
    for _ in 0..rows {
        seq = write_packet(&mut out, seq, &row);
    }
    write_packet(&mut out, seq, OK_EOF);
    out
}

/// What `backend::relay` does with one reply, minus the I/O: walk the
/// physical packets, classify each, read the final OK's status, and copy the
/// bytes into the client's write buffer. Returns the number of packets.
fn relay_reply(reply: &[u8], out: &mut Vec<u8>) -> usize {
    let mut tracker = ResponseTracker::new(
        Expect::Results {
            binary: false,
            cursor: false,
        },
        true,
    );
    let mut rest = reply;
    let mut packets = 0;
    while let Some(h) = complete_packet(rest) {
        let total = 4 + h.len;
        let payload = &rest[4..total];
        let len = if h.continues() { MAX_CHUNK } else { h.len };
        match tracker.on_packet(payload, len) {
            PacketKind::Ok => {
                tracker.status_seen(parse_ok(payload, true).map_or(0, |ok| ok.status))
            }
            PacketKind::Eof => tracker.status_seen(eof_status(payload)),
            _ => {}
        }
        out.extend_from_slice(&rest[..total]);
        rest = &rest[total..];
        packets += 1;
        if tracker.is_done() {
            break;
        }
    }
    packets
}

fn bench(c: &mut Criterion) {
    // The fixtures must be what the names claim.
    let point = result_set(1, 1);
    let mut sink = Vec::new();
    assert_eq!(relay_reply(&point, &mut sink), 4);
    assert_eq!(sink, point);
    let ok = parse_ok(OK_GTID, true).expect("OK_GTID parses");
    assert_eq!(ok.last_gtid, Some(&b"0-91-6"[..]));

    c.bench_function("codec/write_packet_query", |b| {
        let query = b"\x03SELECT c FROM sbtest1 WHERE id=4991";
        let mut out = Vec::with_capacity(64);
        b.iter(|| {
            out.clear();
            write_packet(&mut out, 0, black_box(query))
        })
    });
    c.bench_function("codec/parse_ok_gtid", |b| {
        b.iter(|| parse_ok(black_box(OK_GTID), true))
    });
    c.bench_function("codec/strip_session_track", |b| {
        let mut out = Vec::with_capacity(64);
        b.iter(|| {
            out.clear();
            strip_session_track(black_box(OK_GTID), &mut out)
        })
    });

    let mut group = c.benchmark_group("relay");
    for (name, cols, rows) in [
        ("point_select_1x1", 1, 1),
        ("range_1x100", 1, 100),
        ("wide_4x1000", 4, 1000),
    ] {
        let reply = result_set(cols, rows);
        group.throughput(Throughput::Bytes(reply.len() as u64));
        group.bench_with_input(BenchmarkId::new("frames", name), &reply, |b, reply| {
            b.iter(|| {
                let mut rest = &reply[..];
                let mut n = 0;
                while let Some(h) = complete_packet(black_box(rest)) {
                    rest = &rest[4 + h.len..];
                    n += 1;
                }
                n
            })
        });
        group.bench_with_input(
            BenchmarkId::new("tracker_and_copy", name),
            &reply,
            |b, reply| {
                let mut out = Vec::with_capacity(reply.len());
                b.iter(|| {
                    out.clear();
                    relay_reply(black_box(reply), &mut out)
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
