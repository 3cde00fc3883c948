//! The stored/fetched message layout: 34 fixed bytes + key + value, with its CRC.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::wire::Reader;

/// Fixed part of an encoded message (everything but key and value bytes).
pub const MESSAGE_FIXED_LEN: usize = 34;

/// One message as it appears inside FETCH responses:
/// `u64 offset, u64 timestamp_ms, u32 partition, u32 crc32, u8 priority, u8 codec,
/// u32 key_len, key, u32 value_len, value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Offset in its partition.
    pub offset: u64,
    /// Broker append time, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Partition it lives in.
    pub partition: u32,
    /// IEEE CRC-32 over offset, timestamp, priority, codec, key, value (see [`message_crc`]).
    pub crc32: u32,
    /// 0..=3, see [`crate::Priority`].
    pub priority: u8,
    /// Compression codec (0 = none).
    pub codec: u8,
    /// Key bytes (empty = no key).
    pub key: Bytes,
    /// Value bytes.
    pub value: Bytes,
}

/// The spec's CRC: IEEE CRC-32 over offset (8 LE), timestamp_ms (8 LE), priority, codec, key,
/// value, in that order.
pub fn message_crc(
    offset: u64,
    timestamp_ms: u64,
    priority: u8,
    codec: u8,
    key: &[u8],
    value: &[u8],
) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&offset.to_le_bytes());
    h.update(&timestamp_ms.to_le_bytes());
    h.update(&[priority, codec]);
    h.update(key);
    h.update(value);
    h.finalize()
}

impl Message {
    /// A message with its CRC computed.
    pub fn new(
        offset: u64,
        timestamp_ms: u64,
        partition: u32,
        priority: u8,
        codec: u8,
        key: Bytes,
        value: Bytes,
    ) -> Message {
        let crc32 = message_crc(offset, timestamp_ms, priority, codec, &key, &value);
        Message {
            offset,
            timestamp_ms,
            partition,
            crc32,
            priority,
            codec,
            key,
            value,
        }
    }

    /// True when the stored CRC matches the contents.
    pub fn verify(&self) -> bool {
        self.crc32
            == message_crc(
                self.offset,
                self.timestamp_ms,
                self.priority,
                self.codec,
                &self.key,
                &self.value,
            )
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        MESSAGE_FIXED_LEN + self.key.len() + self.value.len()
    }

    /// Appends the encoded message (without the `u32 len` prefix used in FETCH).
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(self.encoded_len());
        buf.put_u64_le(self.offset);
        buf.put_u64_le(self.timestamp_ms);
        buf.put_u32_le(self.partition);
        buf.put_u32_le(self.crc32);
        buf.put_u8(self.priority);
        buf.put_u8(self.codec);
        buf.put_u32_le(self.key.len() as u32);
        buf.put_slice(&self.key);
        buf.put_u32_le(self.value.len() as u32);
        buf.put_slice(&self.value);
    }

    /// Decodes exactly one message occupying all of `buf` (key/value are zero-copy slices).
    /// Does not check the CRC: call [`Message::verify`].
    pub fn decode(buf: Bytes) -> Result<Message, DecodeError> {
        let mut r = Reader::new(buf);
        let m = Message::read(&mut r)?;
        r.finish()?;
        Ok(m)
    }

    pub(crate) fn read(r: &mut Reader) -> Result<Message, DecodeError> {
        Ok(Message {
            offset: r.u64("message offset")?,
            timestamp_ms: r.u64("message timestamp_ms")?,
            partition: r.u32("message partition")?,
            crc32: r.u32("message crc32")?,
            priority: r.u8("message priority")?,
            codec: r.u8("message codec")?,
            key: r.bytes("message key")?,
            value: r.bytes("message value")?,
        })
    }
}

/// Appends `message` in FETCH record form: `u32 len, Message`.
pub fn encode_record(buf: &mut BytesMut, message: &Message) {
    buf.put_u32_le(message.encoded_len() as u32);
    message.encode(buf);
}

/// Walks `count` FETCH records (`u32 len, Message`) in `records`, checking that each length
/// matches its message and that nothing is left over. Returns the messages.
pub fn decode_records(records: &Bytes, count: u32) -> Result<Vec<Message>, DecodeError> {
    let mut r = Reader::new(records.clone());
    // Each record is at least 4 + 34 bytes: bound the allocation by what is really there.
    let cap = (count as usize).min(records.len() / (4 + MESSAGE_FIXED_LEN));
    let mut out = Vec::with_capacity(cap);
    for _ in 0..count {
        let len = r.u32("record length")? as usize;
        let body = r.raw(len, "record")?;
        out.push(Message::decode(body)?);
    }
    r.finish()?;
    Ok(out)
}

/// Checks the framing of `count` FETCH records without building messages: each `u32 len`
/// must cover exactly one well-formed message and nothing may be left over.
pub fn validate_records(records: &Bytes, count: u32) -> Result<(), DecodeError> {
    let mut r = Reader::new(records.clone());
    for _ in 0..count {
        let len = r.u32("record length")? as usize;
        let mut body = Reader::new(r.raw(len, "record")?);
        body.raw(MESSAGE_FIXED_LEN - 8, "message fixed fields")?;
        body.bytes("message key")?;
        body.bytes("message value")?;
        body.finish()?;
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_zlib_over_the_spec_fields() {
        let m = Message::new(7, 1000, 3, 2, 0, Bytes::from("k"), Bytes::from("v"));
        let mut manual = Vec::new();
        manual.extend_from_slice(&7u64.to_le_bytes());
        manual.extend_from_slice(&1000u64.to_le_bytes());
        manual.extend_from_slice(&[2, 0]);
        manual.extend_from_slice(b"kv");
        assert_eq!(m.crc32, crc32fast::hash(&manual));
        assert!(m.verify());
        let mut bad = m.clone();
        bad.value = Bytes::from("w");
        assert!(!bad.verify());
    }

    #[test]
    fn fixed_len_is_34() {
        let m = Message::new(0, 0, 0, 0, 0, Bytes::new(), Bytes::new());
        let mut b = BytesMut::new();
        m.encode(&mut b);
        assert_eq!(b.len(), MESSAGE_FIXED_LEN);
        assert_eq!(Message::decode(b.freeze()).unwrap(), m);
    }
}
