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
    fn split_larger_payload() {
        let payload = vec![1u8; MAX_CHUNK + 10];
        let mut out = Vec::new();
        assert_eq!(write_packet(&mut out, 255, &payload), 1);
        let h2 = Header::parse(&out[4 + MAX_CHUNK..]).unwrap();
        assert_eq!(h2, Header { len: 10, seq: 0 });
    }
}
