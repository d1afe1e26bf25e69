//! Packet framing: a 3-byte little-endian payload length and a sequence id.
//! A payload of 0xFFFFFF bytes or more is split into 0xFFFFFF-byte chunks and
//! a final shorter (possibly empty) one. Check first, then parse: callers ask
//! whether a whole physical packet is buffered before touching its payload.

/// Largest payload of one physical packet; a chunk of exactly this length
/// means "more chunks follow".
pub const MAX_CHUNK: usize = 0xff_ffff;

/// Header of a physical packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub len: usize,
    pub seq: u8,
}

impl Header {
    pub fn parse(buf: &[u8]) -> Option<Header> {
        let h = buf.get(..4)?;
        Some(Header {
            len: h[0] as usize | (h[1] as usize) << 8 | (h[2] as usize) << 16,
            seq: h[3],
        })
    }

    /// True when another chunk of the same logical packet follows.
    pub fn continues(&self) -> bool {
        self.len == MAX_CHUNK
    }
}

/// If `buf` starts with a complete physical packet, its header.
pub fn complete_packet(buf: &[u8]) -> Option<Header> {
    let h = Header::parse(buf)?;
    (buf.len() >= 4 + h.len).then_some(h)
}

/// Where reading one logical packet stands, from the bytes buffered so far:
/// what [`next_chunk`] tells the reader to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Fewer than 4 bytes: read until the header is here.
    NeedHeader,
    /// The header is here and within the limit, the body is not: read more.
    NeedBody(Header),
    /// The packet would pass the limit with this chunk: `size` is the earlier
    /// chunks' bytes plus the length this header announces. Decided from the
    /// header alone, so an oversized body is never buffered.
    TooLarge { size: usize, seq: u8 },
    /// A continuation chunk whose sequence id is not the one that follows
    /// the previous chunk's.
    OutOfOrder { expected: u8, got: u8 },
    /// A whole physical packet (header and `len` bytes) is buffered; the
    /// logical packet ends with it unless [`Header::continues`].
    Ready(Header),
}

/// The next step of reading a logical packet of at most `limit` bytes from
/// `buf`, after `joined` bytes of earlier chunks. `expected` is the sequence
/// id the chunk must carry (`None` for a packet's first chunk). Checks come in
/// this order: header, size limit, body, sequence.
pub fn next_chunk(buf: &[u8], joined: usize, expected: Option<u8>, limit: usize) -> Chunk {
    let Some(h) = Header::parse(buf) else {
        return Chunk::NeedHeader;
    };
    if joined + h.len > limit {
        return Chunk::TooLarge {
            size: joined + h.len,
            seq: h.seq,
        };
    }
    if buf.len() < 4 + h.len {
        return Chunk::NeedBody(h);
    }
    match expected {
        Some(e) if h.seq != e => Chunk::OutOfOrder {
            expected: e,
            got: h.seq,
        },
        _ => Chunk::Ready(h),
    }
}

/// Appends `payload` framed as packets starting at `seq`; returns the next seq.
/// Splits at 0xFFFFFF and adds the empty trailer when the payload is an exact
/// multiple of it, as the protocol requires.
pub fn write_packet(out: &mut Vec<u8>, mut seq: u8, payload: &[u8]) -> u8 {
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_CHUNK);
        out.extend_from_slice(&[n as u8, (n >> 8) as u8, (n >> 16) as u8, seq]);
        out.extend_from_slice(&rest[..n]);
        seq = seq.wrapping_add(1);
        rest = &rest[n..];
        if n < MAX_CHUNK {
            return seq;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_completeness() {
        let mut out = Vec::new();
        assert_eq!(write_packet(&mut out, 3, b"abc"), 4);
        assert_eq!(out, [3, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(complete_packet(&out), Some(Header { len: 3, seq: 3 }));
        assert_eq!(complete_packet(&out[..6]), None);
        assert_eq!(complete_packet(&out[..2]), None);
    }

    #[test]
    fn split_exact_multiple_gets_empty_trailer() {
        let payload = vec![7u8; MAX_CHUNK];
        let mut out = Vec::new();
        assert_eq!(write_packet(&mut out, 0, &payload), 2);
        assert_eq!(out.len(), 4 + MAX_CHUNK + 4);
        let h = Header::parse(&out).unwrap();
        assert!(h.continues());
        assert_eq!(
            Header::parse(&out[4 + MAX_CHUNK..]).unwrap(),
            Header { len: 0, seq: 1 }
        );
    }

    #[test]
    fn next_chunk_checks_header_then_size_then_body_then_sequence() {
        let mut out = Vec::new();
        write_packet(&mut out, 5, b"hello");
        let h = Header { len: 5, seq: 5 };
        assert_eq!(next_chunk(&[], 0, None, 100), Chunk::NeedHeader);
        assert_eq!(next_chunk(&out[..3], 0, None, 100), Chunk::NeedHeader);
        assert_eq!(next_chunk(&out[..4], 0, None, 100), Chunk::NeedBody(h));
        assert_eq!(next_chunk(&out[..8], 0, None, 5), Chunk::NeedBody(h));
        assert_eq!(next_chunk(&out, 0, None, 5), Chunk::Ready(h));
        // The limit is checked from the header alone, counting earlier chunks.
        assert_eq!(
            next_chunk(&out[..4], 0, None, 4),
            Chunk::TooLarge { size: 5, seq: 5 }
        );
        assert_eq!(
            next_chunk(&out[..4], 96, None, 100),
            Chunk::TooLarge { size: 101, seq: 5 }
        );
        // A continuation's sequence id is checked once its body is here.
        assert_eq!(next_chunk(&out, 1, Some(5), 100), Chunk::Ready(h));
        assert_eq!(next_chunk(&out[..6], 1, Some(9), 100), Chunk::NeedBody(h));
        assert_eq!(
            next_chunk(&out, 1, Some(9), 100),
            Chunk::OutOfOrder {
                expected: 9,
                got: 5
            }
        );
    }

    #[test]
    fn next_chunk_walks_a_split_packet() {
        let payload = vec![3u8; MAX_CHUNK + 10];
        let mut out = Vec::new();
        write_packet(&mut out, 254, &payload);
        let first = Header {
            len: MAX_CHUNK,
            seq: 254,
        };
        assert_eq!(
            next_chunk(&out, 0, None, usize::MAX / 2),
            Chunk::Ready(first)
        );
        assert!(first.continues());
        let rest = &out[4 + MAX_CHUNK..];
        assert_eq!(
            next_chunk(rest, MAX_CHUNK, Some(255), usize::MAX / 2),
            Chunk::Ready(Header { len: 10, seq: 255 })
        );
        assert_eq!(
            next_chunk(rest, MAX_CHUNK, Some(255), MAX_CHUNK + 9),
            Chunk::TooLarge {
                size: MAX_CHUNK + 10,
                seq: 255
            }
        );
    }

    #[test]
    fn split_larger_payload() {
        let payload = vec![1u8; MAX_CHUNK + 10];
        let mut out = Vec::new();
        assert_eq!(write_packet(&mut out, 255, &payload), 1);
        let h2 = Header::parse(&out[4 + MAX_CHUNK..]).unwrap();
        assert_eq!(h2, Header { len: 10, seq: 0 });
    }
}
