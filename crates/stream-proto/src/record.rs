//! The one statement of the STRP record layout: a FETCH record is `u32 LE len` followed by a
//! Message (`u64 offset, u64 timestamp_ms, u32 partition, u32 crc32, u8 priority, u8 codec,
//! u32 key_len, key, u32 value_len, value`), and the stream server stores records on disk in
//! exactly this form, so a fetch is a contiguous byte range of a segment.
//!
//! Byte positions are named here ([`at`]) and everything else (the [`Message`](crate::Message)
//! codec, the storage engine's append and recovery paths, the docs' examples) goes through
//! [`put_message`] and [`check_record`]. Hand-written rather than derived because this is the
//! append and read hot path.

use std::ops::Range;

use bytes::BufMut;

use crate::header::MAX_PAYLOAD;

/// Named byte ranges of a record, counted from the start of its `u32 len` prefix.
pub mod at {
    use std::ops::Range;

    /// `u32 len`: the Message's length (everything after these four bytes).
    pub const LEN: Range<usize> = 0..4;
    /// `u64 offset`: the record's offset in its partition.
    pub const OFFSET: Range<usize> = 4..12;
    /// `u64 timestamp_ms`.
    pub const TIMESTAMP: Range<usize> = 12..20;
    /// `u32 partition` (not covered by the CRC).
    pub const PARTITION: Range<usize> = 20..24;
    /// `u32 crc32`, see [`message_crc`](super::message_crc).
    pub const CRC: Range<usize> = 24..28;
    /// `u8 priority`.
    pub const PRIORITY: usize = 28;
    /// `u8 codec`.
    pub const CODEC: usize = 29;
    /// `u32 key_len`; the key follows, then `u32 value_len` and the value.
    pub const KEY_LEN: Range<usize> = 30..34;
    /// First key byte.
    pub const KEY: usize = 34;
}

/// Bytes of the `u32 len` prefix that precedes each Message in a FETCH response.
pub const RECORD_PREFIX_LEN: usize = at::LEN.end;
/// Fixed part of an encoded Message (everything but key and value bytes).
pub const MESSAGE_FIXED_LEN: usize = at::KEY - RECORD_PREFIX_LEN + 4;
/// Fixed part of a record: the `u32 len` prefix plus [`MESSAGE_FIXED_LEN`].
pub const RECORD_FIXED_LEN: usize = RECORD_PREFIX_LEN + MESSAGE_FIXED_LEN;
/// Largest record (prefix included): one record must fit a FETCH response's payload, with
/// 4 KiB left for the response's fixed fields.
pub const MAX_RECORD_LEN: usize = MAX_PAYLOAD as usize - 4096;

/// Size of a record with these key and value lengths, prefix included.
pub const fn record_len(key_len: usize, value_len: usize) -> usize {
    RECORD_FIXED_LEN + key_len + value_len
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
    // The covered fields are not contiguous in a Message. For records up to 64 KiB one copy
    // into a per-thread scratch buffer and a single hash call is much cheaper than five
    // `update`s (short inputs take the table-driven path): the CRC was a quarter of the append
    // cost otherwise.
    const SCRATCH_MAX: usize = 64 << 10;
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let n = 18 + key.len() + value.len();
    if n <= SCRATCH_MAX {
        let crc = SCRATCH.with(|s| {
            let Ok(mut buf) = s.try_borrow_mut() else {
                return None;
            };
            buf.clear();
            buf.extend_from_slice(&offset.to_le_bytes());
            buf.extend_from_slice(&timestamp_ms.to_le_bytes());
            buf.extend_from_slice(&[priority, codec]);
            buf.extend_from_slice(key);
            buf.extend_from_slice(value);
            Some(crc32fast::hash(&buf))
        });
        if let Some(crc) = crc {
            return crc;
        }
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&offset.to_le_bytes());
    h.update(&timestamp_ms.to_le_bytes());
    h.update(&[priority, codec]);
    h.update(key);
    h.update(value);
    h.finalize()
}

/// The fields of one Message, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageFields<'a> {
    /// Offset in its partition.
    pub offset: u64,
    /// Timestamp, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Partition it lives in.
    pub partition: u32,
    /// Stored CRC.
    pub crc32: u32,
    /// 0..=3.
    pub priority: u8,
    /// Compression codec (0 = none).
    pub codec: u8,
    /// Key bytes.
    pub key: &'a [u8],
    /// Value bytes.
    pub value: &'a [u8],
}

impl MessageFields<'_> {
    /// Encoded Message size (without the `u32 len` prefix).
    pub fn message_len(&self) -> usize {
        MESSAGE_FIXED_LEN + self.key.len() + self.value.len()
    }

    /// True when the stored CRC matches the contents.
    pub fn crc_ok(&self) -> bool {
        self.crc32
            == message_crc(
                self.offset,
                self.timestamp_ms,
                self.priority,
                self.codec,
                self.key,
                self.value,
            )
    }
}

/// Appends the Message (without the `u32 len` prefix) in the layout of [`at`].
pub fn put_message<B: BufMut>(buf: &mut B, m: &MessageFields<'_>) {
    buf.put_u64_le(m.offset);
    buf.put_u64_le(m.timestamp_ms);
    buf.put_u32_le(m.partition);
    buf.put_u32_le(m.crc32);
    buf.put_u8(m.priority);
    buf.put_u8(m.codec);
    buf.put_u32_le(m.key.len() as u32);
    buf.put_slice(m.key);
    buf.put_u32_le(m.value.len() as u32);
    buf.put_slice(m.value);
}

/// Appends the whole record: `u32 len` then the Message.
pub fn put_record<B: BufMut>(buf: &mut B, m: &MessageFields<'_>) {
    buf.put_u32_le(m.message_len() as u32);
    put_message(buf, m);
}

/// What [`check_record`] found at the start of a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordCheck<'a> {
    /// A well-formed record of `len` bytes (prefix included) with these fields.
    Ok {
        /// Record length, prefix included.
        len: usize,
        /// Its fields.
        fields: MessageFields<'a>,
    },
    /// The slice ends inside the record; this many bytes would hold all of it.
    Incomplete {
        /// Bytes needed from the record's start.
        need: usize,
    },
    /// The lengths are inconsistent.
    Bad(&'static str),
}

fn u32_at(b: &[u8], r: Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[r]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], r: Range<usize>) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[r]);
    u64::from_le_bytes(a)
}

/// Parses the record at the start of `b`, checking that its lengths agree and that it is no
/// larger than [`MAX_RECORD_LEN`]. The CRC is not checked (see [`MessageFields::crc_ok`]).
/// Never panics on arbitrary bytes.
pub fn check_record(b: &[u8]) -> RecordCheck<'_> {
    if b.len() < RECORD_PREFIX_LEN {
        return RecordCheck::Incomplete {
            need: RECORD_FIXED_LEN,
        };
    }
    let message_len = u32_at(b, at::LEN) as usize;
    if message_len < MESSAGE_FIXED_LEN {
        return RecordCheck::Bad("length below the fixed message size");
    }
    let len = RECORD_PREFIX_LEN + message_len;
    if len > MAX_RECORD_LEN {
        return RecordCheck::Bad("length above the maximum record size");
    }
    if b.len() < len {
        return RecordCheck::Incomplete { need: len };
    }
    match check_message(&b[RECORD_PREFIX_LEN..len]) {
        Ok(fields) => RecordCheck::Ok { len, fields },
        Err(why) => RecordCheck::Bad(why),
    }
}

/// Parses a Message that occupies all of `m` (no `u32 len` prefix), checking that its key and
/// value lengths account for exactly its bytes. The CRC is not checked.
pub fn check_message(m: &[u8]) -> Result<MessageFields<'_>, &'static str> {
    // Positions in `m` are the named record positions less the prefix.
    let field = |r: Range<usize>| r.start - RECORD_PREFIX_LEN..r.end - RECORD_PREFIX_LEN;
    if m.len() < MESSAGE_FIXED_LEN {
        return Err("shorter than the fixed message size");
    }
    let key_len = u32_at(m, field(at::KEY_LEN)) as usize;
    if key_len > m.len() - MESSAGE_FIXED_LEN {
        return Err("key length beyond the message");
    }
    let key_at = at::KEY - RECORD_PREFIX_LEN;
    let key_end = key_at + key_len;
    let value_len = u32_at(m, key_end..key_end + 4) as usize;
    if MESSAGE_FIXED_LEN + key_len + value_len != m.len() {
        return Err("key and value lengths disagree with the message length");
    }
    Ok(MessageFields {
        offset: u64_at(m, field(at::OFFSET)),
        timestamp_ms: u64_at(m, field(at::TIMESTAMP)),
        partition: u32_at(m, field(at::PARTITION)),
        crc32: u32_at(m, field(at::CRC)),
        priority: m[at::PRIORITY - RECORD_PREFIX_LEN],
        codec: m[at::CODEC - RECORD_PREFIX_LEN],
        key: &m[key_at..key_end],
        value: &m[key_end + 4..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields<'a>(key: &'a [u8], value: &'a [u8]) -> MessageFields<'a> {
        MessageFields {
            offset: 5,
            timestamp_ms: 7,
            partition: 3,
            crc32: message_crc(5, 7, 2, 0, key, value),
            priority: 2,
            codec: 0,
            key,
            value,
        }
    }

    #[test]
    fn named_ranges_are_where_the_encoder_writes() {
        let mut buf = Vec::new();
        let m = fields(b"k", b"vv");
        put_record(&mut buf, &m);
        assert_eq!(buf.len(), record_len(1, 2));
        assert_eq!(u32_at(&buf, at::LEN) as usize, MESSAGE_FIXED_LEN + 3);
        assert_eq!(u64_at(&buf, at::OFFSET), 5);
        assert_eq!(u64_at(&buf, at::TIMESTAMP), 7);
        assert_eq!(u32_at(&buf, at::PARTITION), 3);
        let mut plain = Vec::new();
        plain.extend_from_slice(&5u64.to_le_bytes());
        plain.extend_from_slice(&7u64.to_le_bytes());
        plain.extend_from_slice(&[2, 0]);
        plain.extend_from_slice(b"kvv");
        assert_eq!(u32_at(&buf, at::CRC), crc32fast::hash(&plain));
        assert_eq!(buf[at::PRIORITY], 2);
        assert_eq!(buf[at::CODEC], 0);
        assert_eq!(u32_at(&buf, at::KEY_LEN), 1);
        assert_eq!(&buf[at::KEY..at::KEY + 1], b"k");
        assert_eq!(
            check_record(&buf),
            RecordCheck::Ok {
                len: buf.len(),
                fields: m
            }
        );
        assert_eq!(MESSAGE_FIXED_LEN, 34);
        assert_eq!(RECORD_FIXED_LEN, 38);
    }

    #[test]
    fn truncated_records_ask_for_the_rest() {
        let mut buf = Vec::new();
        put_record(&mut buf, &fields(b"key", b"value"));
        for cut in 0..buf.len() {
            assert!(
                matches!(check_record(&buf[..cut]), RecordCheck::Incomplete { need } if need <= buf.len()),
                "cut at {cut}"
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let RecordCheck::Ok { len, fields } = check_record(&b) {
                prop_assert!(len <= b.len());
                prop_assert_eq!(fields.message_len() + RECORD_PREFIX_LEN, len);
            }
        }

        #[test]
        fn crc_paths_agree(
            key in proptest::collection::vec(any::<u8>(), 0..600),
            value in proptest::collection::vec(any::<u8>(), 0..600),
            off in any::<u64>(), ts in any::<u64>(), p in any::<u8>(), c in any::<u8>(),
        ) {
            let mut plain = Vec::new();
            plain.extend_from_slice(&off.to_le_bytes());
            plain.extend_from_slice(&ts.to_le_bytes());
            plain.extend_from_slice(&[p, c]);
            plain.extend_from_slice(&key);
            plain.extend_from_slice(&value);
            prop_assert_eq!(message_crc(off, ts, p, c, &key, &value), crc32fast::hash(&plain));
        }
    }
}
