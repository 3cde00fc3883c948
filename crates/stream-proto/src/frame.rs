//! Incremental frame decoder over a byte buffer (usable from a tokio read loop or a codec).

use bytes::{Buf, Bytes, BytesMut};

use crate::header::{Header, HeaderError, HEADER_LEN, MAX_PAYLOAD};

/// One complete frame: header plus its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The (valid) header.
    pub header: Header,
    /// Exactly `header.length` bytes.
    pub payload: Bytes,
}

/// A header that must be answered with PROTOCOL_ERROR, after which the connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bad frame header (type {}): {error}", header.type_id)]
pub struct FrameError {
    /// The header as read (its `type_id` is echoed in the error response).
    pub header: Header,
    /// What was wrong.
    pub error: HeaderError,
}

/// Splits frames off the front of a buffer as soon as they are complete.
///
/// It never reserves the claimed payload length: the buffer grows only as bytes arrive, so a
/// header claiming 16 MiB costs nothing until 16 MiB are actually sent.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_payload: u32,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder {
            max_payload: MAX_PAYLOAD,
        }
    }
}

impl FrameDecoder {
    /// A decoder with the protocol's 16 MiB limit.
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// A decoder with a lower payload limit (clamped to 16 MiB).
    pub fn with_max_payload(max_payload: u32) -> FrameDecoder {
        FrameDecoder {
            max_payload: max_payload.min(MAX_PAYLOAD),
        }
    }

    /// Parses the header at the front of `buf` if 16 bytes are there, validating it.
    pub fn peek_header(&self, buf: &[u8]) -> Result<Option<Header>, FrameError> {
        let Some(hb) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let mut a = [0u8; HEADER_LEN];
        a.copy_from_slice(hb);
        let header = Header::parse(&a);
        header
            .validate()
            .map_err(|error| FrameError { header, error })?;
        if header.length > self.max_payload {
            return Err(FrameError {
                header,
                error: HeaderError::TooLarge(header.length),
            });
        }
        Ok(Some(header))
    }

    /// Removes and returns the first complete frame of `buf`; `Ok(None)` when more bytes are
    /// needed. On error nothing is consumed (the connection is expected to close).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(header) = self.peek_header(buf)? else {
            return Ok(None);
        };
        let total = HEADER_LEN + header.length as usize;
        if buf.len() < total {
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let payload = buf.split_to(header.length as usize).freeze();
        Ok(Some(Frame { header, payload }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::MAGIC;

    #[test]
    fn byte_at_a_time() {
        let mut wire = BytesMut::new();
        Header::new(20, 3).encode(&mut wire);
        wire.extend_from_slice(b"abc");
        Header::new(12, 0).encode(&mut wire);
        let mut d = FrameDecoder::new();
        let mut buf = BytesMut::new();
        let mut frames = vec![];
        for b in wire.iter() {
            buf.extend_from_slice(&[*b]);
            while let Some(f) = d.decode(&mut buf).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(&frames[0].payload[..], b"abc");
        assert_eq!(frames[1].header.type_id, 12);
        assert!(buf.is_empty());
    }

    #[test]
    fn huge_length_is_rejected_before_payload() {
        let mut buf = BytesMut::new();
        Header::new(20, u32::MAX).encode(&mut buf);
        let e = FrameDecoder::new().decode(&mut buf).unwrap_err();
        assert_eq!(e.error, HeaderError::TooLarge(u32::MAX));
        assert_eq!(e.header.type_id, 20);
        let mut buf = BytesMut::new();
        Header::new(20, 100).encode(&mut buf);
        assert!(FrameDecoder::with_max_payload(10).decode(&mut buf).is_err());
        let mut h = Header::new(1, 0);
        h.magic = MAGIC.swap_bytes();
        let mut buf = BytesMut::from(&h.to_bytes()[..]);
        assert!(matches!(
            FrameDecoder::new().decode(&mut buf),
            Err(FrameError {
                error: HeaderError::BadMagic(_),
                ..
            })
        ));
    }
}
