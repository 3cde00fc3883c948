//! Little-endian field readers and writers shared by every payload codec.
//!
//! The reader works over a `Bytes` so that keys and values are zero-copy slices of the frame,
//! and it checks the remaining length before every field: a claimed length is never allocated
//! before the bytes are actually there.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::DecodeError;

/// Sequential reader over a payload.
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    /// Reads `buf` from its start.
    pub fn new(buf: Bytes) -> Reader {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Everything not read yet, for a decoder of its own; the reader is then at the end.
    pub fn rest(&mut self) -> Bytes {
        let rest = self.buf.slice(self.pos..);
        self.pos = self.buf.len();
        rest
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&[u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                field,
                needed: n,
                remaining: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A `u8`.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// A little-endian `i16`.
    pub fn i16(&mut self, field: &'static str) -> Result<i16, DecodeError> {
        Ok(self.u16(field)? as i16)
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// `n` raw bytes as a zero-copy slice.
    pub fn raw(&mut self, n: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                field,
                needed: n,
                remaining: self.remaining(),
            });
        }
        let b = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }

    /// A `u32 length + bytes` field as a zero-copy slice.
    pub fn bytes(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let n = self.u32(field)? as usize;
        self.raw(n, field)
    }

    /// A `u32 length + UTF-8` string.
    pub fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let b = self.bytes(field)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::InvalidUtf8 { field })
    }

    /// A `u32` element count, with a capacity hint bounded by what the remaining bytes could
    /// hold (each element is at least `min_elem` bytes), so a lying count cannot make us
    /// allocate more than the payload itself.
    pub fn count(
        &mut self,
        field: &'static str,
        min_elem: usize,
    ) -> Result<(u32, usize), DecodeError> {
        let n = self.u32(field)?;
        let max_fit = self.remaining() / min_elem.max(1);
        if n as usize > max_fit {
            return Err(DecodeError::Invalid {
                field,
                reason: format!(
                    "count {n} cannot fit in the {} bytes left",
                    self.remaining()
                ),
            });
        }
        Ok((n, n as usize))
    }

    /// Fails unless everything was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }
}

/// Writes a `u32 length + bytes` field.
pub fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_u32_le(b.len() as u32);
    buf.put_slice(b);
}

/// Writes a `u32 length + UTF-8` string.
pub fn put_str(buf: &mut BytesMut, s: &str) {
    put_bytes(buf, s.as_bytes());
}
