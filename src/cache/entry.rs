//! A stored result: the reply's packets exactly as the client received them, and the
//! generations of its tables when the SELECT started. Replayed with fresh sequence ids.

use std::sync::Arc;
use std::time::Duration;

use super::invalidation::GenSnapshot;
use super::shape::ReadShape;
use crate::protocol::codec;

/// One cached reply.
#[derive(Debug)]
pub struct Entry {
    /// Framed packets (header + payload) as relayed to the first client.
    pub bytes: Box<[u8]>,
    /// Sequence id of the first packet in `bytes`.
    pub first_seq: u8,
    /// Number of packets in `bytes`.
    pub packets: usize,
    /// The generations the result was read under.
    pub snapshot: GenSnapshot,
    pub ttl: Duration,
    pub shape: Arc<ReadShape>,
}

impl Entry {
    /// Appends the reply to `out`, its packets numbered from `seq`; returns the id the next
    /// packet would carry.
    pub fn replay_into(&self, out: &mut Vec<u8>, seq: u8) -> u8 {
        if self.first_seq == seq {
            out.extend_from_slice(&self.bytes);
            return seq.wrapping_add(self.packets as u8);
        }
        resequence_into(&self.bytes, self.first_seq, out, seq)
    }
}

/// Number of complete packets in `bytes`.
pub fn count_packets(bytes: &[u8]) -> usize {
    let mut n = 0;
    let mut at = 0;
    while let Some(h) = codec::complete_packet(&bytes[at..]) {
        n += 1;
        at += 4 + h.len;
    }
    n
}

/// Copies framed packets to `out`, renumbering them from `seq` (a plain copy when the
/// numbering already matches, as it does for every command sent with id 0).
pub fn resequence_into(bytes: &[u8], first_seq: u8, out: &mut Vec<u8>, seq: u8) -> u8 {
    let start = out.len();
    out.extend_from_slice(bytes);
    let mut next = seq;
    let mut at = 0;
    while let Some(h) = codec::complete_packet(&bytes[at..]) {
        if first_seq != seq {
            out[start + at + 3] = next;
        }
        next = next.wrapping_add(1);
        at += 4 + h.len;
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_renumbered() {
        let mut b = Vec::new();
        codec::write_packet(&mut b, 1, b"abc");
        codec::write_packet(&mut b, 2, b"");
        codec::write_packet(&mut b, 3, b"xy");
        let mut out = Vec::new();
        assert_eq!(resequence_into(&b, 1, &mut out, 1), 4);
        assert_eq!(out, b);
        out.clear();
        assert_eq!(resequence_into(&b, 1, &mut out, 255), 2);
        let seqs: Vec<u8> = [3usize, 3 + 7, 3 + 11].iter().map(|&i| out[i]).collect();
        assert_eq!(seqs, [255, 0, 1]);
    }
}
