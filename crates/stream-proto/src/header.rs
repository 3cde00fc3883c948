//! The 16-byte frame header that starts every request and response.

use bytes::{BufMut, BytesMut};

/// "STRP" as a little-endian u32 (on the wire: 50 52 54 53).
pub const MAGIC: u32 = 0x5354_5250;
/// The only protocol version.
pub const VERSION: u32 = 1;
/// Header size in bytes.
pub const HEADER_LEN: usize = 16;
/// Largest payload a frame may carry (16 MiB).
pub const MAX_PAYLOAD: u32 = 16 * 1024 * 1024;

/// A frame header as read from the wire (not yet validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Must be [`MAGIC`].
    pub magic: u32,
    /// Must be [`VERSION`].
    pub version: u32,
    /// Request type id (responses echo it).
    pub type_id: u32,
    /// Payload bytes that follow.
    pub length: u32,
}

/// Why a header is not acceptable. Each is a PROTOCOL_ERROR that closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Wrong magic.
    #[error("bad magic 0x{0:08x} (expected 0x53545250 \"STRP\")")]
    BadMagic(u32),
    /// Unsupported version.
    #[error("unsupported protocol version {0} (expected 1)")]
    BadVersion(u32),
    /// Payload length above [`MAX_PAYLOAD`].
    #[error("payload length {0} exceeds the 16 MiB limit")]
    TooLarge(u32),
}

impl Header {
    /// A valid header for `type_id` with `length` payload bytes.
    pub fn new(type_id: u32, length: u32) -> Header {
        Header {
            magic: MAGIC,
            version: VERSION,
            type_id,
            length,
        }
    }

    /// Reads the four fields; no validation (see [`Header::validate`]).
    pub fn parse(b: &[u8; HEADER_LEN]) -> Header {
        let f = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Header {
            magic: f(0),
            version: f(4),
            type_id: f(8),
            length: f(12),
        }
    }

    /// Checks magic, version and length limit.
    pub fn validate(&self) -> Result<(), HeaderError> {
        if self.magic != MAGIC {
            return Err(HeaderError::BadMagic(self.magic));
        }
        if self.version != VERSION {
            return Err(HeaderError::BadVersion(self.version));
        }
        if self.length > MAX_PAYLOAD {
            return Err(HeaderError::TooLarge(self.length));
        }
        Ok(())
    }

    /// The 16 wire bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.magic.to_le_bytes());
        out[4..8].copy_from_slice(&self.version.to_le_bytes());
        out[8..12].copy_from_slice(&self.type_id.to_le_bytes());
        out[12..16].copy_from_slice(&self.length.to_le_bytes());
        out
    }

    /// Appends the 16 wire bytes.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_slice(&self.to_bytes());
    }
}

/// Starts a frame in `buf`: writes a header with a zero length and returns its position, for
/// [`finish_frame`] to patch once the payload is written (saves encoding the payload twice).
pub fn begin_frame(buf: &mut BytesMut, type_id: u32) -> usize {
    let start = buf.len();
    Header::new(type_id, 0).encode(buf);
    start
}

/// Patches the length of the frame begun at `start` to cover everything written since.
pub fn finish_frame(buf: &mut BytesMut, start: usize) {
    let len = (buf.len() - start - HEADER_LEN) as u32;
    buf[start + 12..start + 16].copy_from_slice(&len.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bytes_of_magic() {
        let h = Header::new(12, 0).to_bytes();
        assert_eq!(&h[0..4], &[0x50, 0x52, 0x54, 0x53]);
        assert_eq!(Header::parse(&h), Header::new(12, 0));
    }

    #[test]
    fn validation() {
        assert!(Header::new(1, MAX_PAYLOAD).validate().is_ok());
        assert_eq!(
            Header::new(1, MAX_PAYLOAD + 1).validate(),
            Err(HeaderError::TooLarge(MAX_PAYLOAD + 1))
        );
        let mut h = Header::new(1, 0);
        h.magic = 0;
        assert_eq!(h.validate(), Err(HeaderError::BadMagic(0)));
        let mut h = Header::new(1, 0);
        h.version = 2;
        assert_eq!(h.validate(), Err(HeaderError::BadVersion(2)));
    }
}
