//! The Message type inside FETCH responses, over the layout owned by [`crate::record`].

use bytes::{Bytes, BytesMut};

use crate::error::DecodeError;
use crate::record::{
    check_message, check_record, message_crc, put_message, put_record, MessageFields, RecordCheck,
    MESSAGE_FIXED_LEN, RECORD_PREFIX_LEN,
};

/// One message as it appears inside FETCH responses (layout: [`crate::record`]).
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

    fn fields(&self) -> MessageFields<'_> {
        MessageFields {
            offset: self.offset,
            timestamp_ms: self.timestamp_ms,
            partition: self.partition,
            crc32: self.crc32,
            priority: self.priority,
            codec: self.codec,
            key: &self.key,
            value: &self.value,
        }
    }

    /// True when the stored CRC matches the contents.
    pub fn verify(&self) -> bool {
        self.fields().crc_ok()
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        MESSAGE_FIXED_LEN + self.key.len() + self.value.len()
    }

    /// Appends the encoded message (without the `u32 len` prefix used in FETCH).
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(self.encoded_len());
        put_message(buf, &self.fields());
    }

    /// The message whose fields are these, with key and value as zero-copy slices of
    /// `owner`, the buffer `fields` borrows from.
    fn from_fields(owner: &Bytes, fields: &MessageFields<'_>) -> Message {
        let slice = |part: &[u8]| owner.slice_ref(part);
        Message {
            offset: fields.offset,
            timestamp_ms: fields.timestamp_ms,
            partition: fields.partition,
            crc32: fields.crc32,
            priority: fields.priority,
            codec: fields.codec,
            key: slice(fields.key),
            value: slice(fields.value),
        }
    }

    /// Decodes exactly one message occupying all of `buf` (key/value are zero-copy slices).
    /// Does not check the CRC: call [`Message::verify`].
    pub fn decode(buf: Bytes) -> Result<Message, DecodeError> {
        let fields = check_message(&buf).map_err(|why| DecodeError::Invalid {
            field: "message",
            reason: why.into(),
        })?;
        Ok(Message::from_fields(&buf, &fields))
    }

    /// The message whose record starts `b` (its key and value zero-copy slices of `b`) and
    /// the record's length, or why it is not one.
    fn from_record(b: &Bytes) -> Result<(Message, usize), DecodeError> {
        match check_record(b) {
            RecordCheck::Ok { len, fields } => Ok((Message::from_fields(b, &fields), len)),
            RecordCheck::Incomplete { need } => Err(DecodeError::Truncated {
                field: "record",
                needed: need,
                remaining: b.len(),
            }),
            RecordCheck::Bad(why) => Err(DecodeError::Invalid {
                field: "record",
                reason: why.into(),
            }),
        }
    }
}

/// Appends `message` in FETCH record form: `u32 len, Message`.
pub fn encode_record(buf: &mut BytesMut, message: &Message) {
    buf.reserve(RECORD_PREFIX_LEN + message.encoded_len());
    put_record(buf, &message.fields());
}

/// Walks `count` FETCH records (`u32 len, Message`) in `records`, checking that each length
/// matches its message and that nothing is left over. Returns the messages.
pub fn decode_records(records: &Bytes, count: u32) -> Result<Vec<Message>, DecodeError> {
    // Each record is at least 4 + 34 bytes: bound the allocation by what is really there.
    let cap = (count as usize).min(records.len() / (RECORD_PREFIX_LEN + MESSAGE_FIXED_LEN));
    let mut out = Vec::with_capacity(cap);
    let mut rest = records.clone();
    for _ in 0..count {
        let (m, len) = Message::from_record(&rest)?;
        out.push(m);
        rest = rest.slice(len..);
    }
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { count: rest.len() });
    }
    Ok(out)
}

/// Checks the framing of `count` FETCH records without building messages: each `u32 len`
/// must cover exactly one well-formed message and nothing may be left over.
pub fn validate_records(records: &Bytes, count: u32) -> Result<(), DecodeError> {
    let mut rest: &[u8] = records;
    for _ in 0..count {
        match check_record(rest) {
            RecordCheck::Ok { len, .. } => rest = &rest[len..],
            RecordCheck::Incomplete { need } => {
                return Err(DecodeError::Truncated {
                    field: "record",
                    needed: need,
                    remaining: rest.len(),
                })
            }
            RecordCheck::Bad(why) => {
                return Err(DecodeError::Invalid {
                    field: "record",
                    reason: why.into(),
                })
            }
        }
    }
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { count: rest.len() });
    }
    Ok(())
}

/// Decodes every record in `records` (no count given: until the bytes end), verifying each
/// CRC. For tools and tests that read a log's bytes directly.
pub fn decode_all_records(records: &Bytes) -> Result<Vec<Message>, DecodeError> {
    let mut out = Vec::new();
    let mut rest = records.clone();
    while !rest.is_empty() {
        let (m, len) = Message::from_record(&rest)?;
        if !m.verify() {
            return Err(DecodeError::Invalid {
                field: "record crc32",
                reason: format!("mismatch in the record at offset {}", m.offset),
            });
        }
        out.push(m);
        rest = rest.slice(len..);
    }
    Ok(out)
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
