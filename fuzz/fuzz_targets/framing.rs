//! The packet framing `PacketIo::read_packet` does, without the socket: a
//! stream arrives in reads of fuzzer-chosen sizes, and a reader that does
//! what `read_packet` does (ask `codec::next_chunk`, read more or take the
//! chunk, join continuations) reads logical packets until the stream ends or
//! an error. Each outcome must match a whole-stream reading of the same
//! bytes, so where the reads fall never changes an answer; a refusal for
//! size must come from the header alone; a packet's chunks must be the
//! framing `write_packet` makes.
//!
//! Input: `mode limit(4) reads(4) cut` then the stream. With mode bit 0 the
//! stream is the rest of the input as is. Without it the rest is a list of
//! chunk descriptions `sel len0 len1 seq` laid out in a buffer big enough for
//! 16 MiB chunks (only the headers are written: the framing never looks at
//! a body), so split packets are reachable; `cut` shortens that stream.
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use sqlproxy::protocol::codec::{complete_packet, next_chunk, write_packet, Chunk, MAX_CHUNK};

/// Chunk descriptions read from one input; four 16 MiB chunks make a split
/// packet with two continuations and a last chunk.
const MAX_CHUNKS: usize = 5;

/// The laid-out stream, allocated once: zeroed pages cost nothing until a
/// header is written into them.
static BIG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// How reading one logical packet ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A packet of `len` bytes; its last chunk had `seq`; `end` is where the
    /// next packet starts in the stream.
    Packet {
        len: usize,
        seq: u8,
        end: usize,
    },
    TooLarge {
        size: usize,
    },
    OutOfOrder {
        expected: u8,
        got: u8,
    },
    /// The stream ended first (`read_packet` returns `Closed`).
    Closed,
}

fn u24(b: &[u8]) -> usize {
    b[0] as usize | (b[1] as usize) << 8 | (b[2] as usize) << 16
}

/// The packet starting at `at`, reading the whole stream at once.
fn whole(stream: &[u8], at: usize, limit: usize) -> Outcome {
    let mut pos = at;
    let mut len = 0usize;
    let mut next_seq: Option<u8> = None;
    loop {
        let Some(head) = stream.get(pos..pos + 4) else {
            return Outcome::Closed;
        };
        let (n, seq) = (u24(head), head[3]);
        len += n;
        if len > limit {
            return Outcome::TooLarge { size: len };
        }
        if stream.len() - pos - 4 < n {
            return Outcome::Closed;
        }
        if let Some(e) = next_seq.filter(|&e| e != seq) {
            return Outcome::OutOfOrder {
                expected: e,
                got: seq,
            };
        }
        pos += 4 + n;
        if n < MAX_CHUNK {
            return Outcome::Packet { len, seq, end: pos };
        }
        next_seq = Some(seq.wrapping_add(1));
    }
}

/// `read_packet`'s loop over a stream that arrives `reads` bytes at a time:
/// `start..filled` is the read buffer. Returns the outcome and the chunks
/// taken (start, header) for the checks.
fn incremental(
    stream: &[u8],
    start: usize,
    limit: usize,
    reads: &mut impl Iterator<Item = usize>,
    filled: &mut usize,
    chunks: &mut Vec<(usize, usize, u8)>,
) -> Outcome {
    let mut pos = start;
    let mut joined = 0usize;
    let mut expected: Option<u8> = None;
    loop {
        let buf = &stream[pos..*filled];
        let step = next_chunk(buf, joined, expected, limit);
        // `complete_packet` (what `PacketIo::physical` waits on) agrees on
        // whether a whole physical packet is here.
        match step {
            Chunk::NeedHeader | Chunk::NeedBody(_) => {
                assert!(complete_packet(buf).is_none());
                if let Chunk::NeedBody(h) = step {
                    assert!(buf.len() >= 4 && buf.len() < 4 + h.len);
                }
                if *filled == stream.len() {
                    return Outcome::Closed;
                }
                let n = reads.next().unwrap_or(1);
                *filled = (*filled + n).min(stream.len());
            }
            Chunk::TooLarge { size, .. } => {
                // Judged from the header alone, before the body is buffered.
                assert_eq!(next_chunk(&buf[..4], joined, expected, limit), step);
                assert!(size > limit);
                return Outcome::TooLarge { size };
            }
            Chunk::OutOfOrder { expected, got } => {
                assert!(complete_packet(buf).is_some());
                return Outcome::OutOfOrder { expected, got };
            }
            Chunk::Ready(h) => {
                assert_eq!(complete_packet(buf), Some(h));
                chunks.push((pos, h.len, h.seq));
                pos += 4 + h.len;
                let len = joined + h.len;
                assert!(len <= limit);
                if !h.continues() {
                    return Outcome::Packet {
                        len,
                        seq: h.seq,
                        end: pos,
                    };
                }
                joined = len;
                expected = Some(h.seq.wrapping_add(1));
            }
        }
    }
}

/// Reads every packet of `stream` both ways and checks them.
fn run(stream: &[u8], limit: usize, reads: [u8; 4], scale: u32, raw: bool) {
    let mut reads = reads.iter().map(|&r| (r as usize + 1) << scale).cycle();
    let mut filled = 0usize;
    let mut at = 0usize;
    loop {
        let mut chunks = Vec::new();
        let got = incremental(stream, at, limit, &mut reads, &mut filled, &mut chunks);
        assert_eq!(got, whole(stream, at, limit), "at {at}, limit {limit}");
        let Outcome::Packet { len, seq, end } = got else {
            return;
        };
        // The chunks are what `write_packet` makes of the joined payload:
        // full chunks, then a shorter last one, numbered in a row.
        let first_seq = chunks[0].2;
        for (i, &(_, n, s)) in chunks.iter().enumerate() {
            assert_eq!(s, first_seq.wrapping_add(i as u8));
            assert_eq!(n == MAX_CHUNK, i + 1 < chunks.len());
        }
        assert_eq!(chunks.iter().map(|c| c.1).sum::<usize>(), len);
        assert_eq!(chunks.last().map(|c| c.2), Some(seq));
        if raw {
            let mut payload = Vec::with_capacity(len);
            for &(p, n, _) in &chunks {
                payload.extend_from_slice(&stream[p + 4..p + 4 + n]);
            }
            let mut out = Vec::new();
            let next = write_packet(&mut out, first_seq, &payload);
            assert_eq!(out, &stream[at..end]);
            assert_eq!(next, seq.wrapping_add(1));
        }
        at = end;
    }
}

/// Lays the chunk descriptions out in `big` and returns the stream's length.
fn lay_out(big: &mut Vec<u8>, descs: &[u8], cut: u8) -> usize {
    let mut at = 0usize;
    let mut seq = 0u8;
    for (i, d) in descs.chunks_exact(4).take(MAX_CHUNKS).enumerate() {
        let (sel, l0, l1, s) = (d[0], d[1], d[2], d[3]);
        let len = match sel & 3 {
            0 => MAX_CHUNK,
            1 => l0 as usize,
            2 => MAX_CHUNK - 1 - l0 as usize,
            _ => l0 as usize | (l1 as usize) << 8 | ((sel >> 2) as usize) << 16,
        };
        // Usually the next sequence id, so long packets are reachable.
        seq = if i == 0 || sel & 0x80 != 0 {
            s
        } else {
            seq.wrapping_add(1)
        };
        if big.len() < at + 4 + len {
            big.resize(at + 4 + len, 0);
        }
        big[at..at + 4].copy_from_slice(&[len as u8, (len >> 8) as u8, (len >> 16) as u8, seq]);
        at += 4 + len;
    }
    if cut == 0 {
        at
    } else {
        at - at * cut as usize / 256
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<10>() else {
        return;
    };
    let mode = head[0];
    let limit = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let reads = [head[5], head[6], head[7], head[8]];
    let cut = head[9];
    if mode & 1 != 0 {
        run(rest, limit, reads, 0, true);
    } else {
        let mut big = BIG.lock().unwrap_or_else(|e| e.into_inner());
        let len = lay_out(&mut big, rest, cut);
        // Reads of 64 KiB and up, so a 16 MiB chunk takes a few hundred steps.
        run(&big[..len], limit, reads, 16, false);
    }
});
