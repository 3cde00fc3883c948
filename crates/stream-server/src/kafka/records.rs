//! Kafka's RecordBatch v2 (magic 2), both ways: the batches of a Produce become records for
//! the log, and what a Fetch reads from the log becomes one batch.
//!
//! Hand-written rather than taken from `kafka-protocol`'s `RecordBatchDecoder`: this is the
//! produce and fetch hot path (records stay slices of the request, no `Record` struct with an
//! index map of headers per message), and that decoder reserves a batch's claimed record
//! count before reading it. Layout (big-endian, from the Kafka protocol guide), by byte
//! position in [`at`]:
//!
//! ```text
//! base_offset i64, batch_length i32 (bytes after this field), partition_leader_epoch i32,
//! magic i8 = 2, crc u32 (CRC-32C of attributes..end), attributes i16, last_offset_delta i32,
//! base_timestamp i64, max_timestamp i64, producer_id i64, producer_epoch i16,
//! base_sequence i32, record_count i32, records...
//! record: length varint, attributes i8, timestamp_delta varlong, offset_delta varint,
//!         key_length varint (-1 = null), key, value_length varint (-1 = null), value,
//!         header_count varint, headers (key_length varint, key, value_length varint, value)
//! ```

use std::ops::Range;

use bytes::{BufMut, BytesMut};
use stream_log::Record;
use stream_proto::record::{check_record, RecordCheck};

use super::idempotence::BatchSeq;

/// Named byte ranges of a RecordBatch v2 header.
pub mod at {
    use std::ops::Range;

    /// `i64 base_offset`.
    pub const BASE_OFFSET: Range<usize> = 0..8;
    /// `i32 batch_length`: the bytes after this field.
    pub const BATCH_LENGTH: Range<usize> = 8..12;
    /// `i32 partition_leader_epoch`.
    pub const LEADER_EPOCH: Range<usize> = 12..16;
    /// `i8 magic`.
    pub const MAGIC: usize = 16;
    /// `u32 crc`: CRC-32C from [`ATTRIBUTES`] to the end of the batch.
    pub const CRC: Range<usize> = 17..21;
    /// `i16 attributes`: bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control.
    pub const ATTRIBUTES: Range<usize> = 21..23;
    /// `i32 last_offset_delta`.
    pub const LAST_OFFSET_DELTA: Range<usize> = 23..27;
    /// `i64 base_timestamp`.
    pub const BASE_TIMESTAMP: Range<usize> = 27..35;
    /// `i64 max_timestamp`.
    pub const MAX_TIMESTAMP: Range<usize> = 35..43;
    /// `i64 producer_id`.
    pub const PRODUCER_ID: Range<usize> = 43..51;
    /// `i16 producer_epoch`.
    pub const PRODUCER_EPOCH: Range<usize> = 51..53;
    /// `i32 base_sequence`.
    pub const BASE_SEQUENCE: Range<usize> = 53..57;
    /// `i32 record_count`.
    pub const RECORD_COUNT: Range<usize> = 57..61;
    /// First record.
    pub const RECORDS: usize = 61;
}

/// The only batch format served.
pub const MAGIC_V2: u8 = 2;
/// Fewest bytes one record takes (seven one-byte fields: an empty key and value, no headers).
const MIN_RECORD_LEN: usize = 7;
const COMPRESSION_MASK: u16 = 0x07;
const TRANSACTIONAL: u16 = 0x10;
const CONTROL: u16 = 0x20;

/// Why a Produce's records were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// Fewer bytes than the batch claims.
    #[error("record batch truncated: {0}")]
    Truncated(&'static str),
    /// A batch in the old message-set format (magic 0 or 1), or an unknown one.
    #[error("record batch magic {0}: only magic 2 (Kafka 0.11 and later) is accepted")]
    Magic(u8),
    /// The stored CRC-32C does not match the batch.
    #[error("record batch CRC-32C is {stored:#010x}, computed {computed:#010x}")]
    Crc {
        /// From the batch.
        stored: u32,
        /// Of its bytes.
        computed: u32,
    },
    /// Compressed records (not accepted yet).
    #[error("record batch compression {0} is not supported; produce uncompressed (compression.type=none)")]
    Compressed(u16),
    /// Transactional or control batches (transactions are not supported).
    #[error("transactional and control batches are not supported")]
    Transactional,
    /// A record carries headers, which the log has no place for.
    #[error("record headers are not stored: send records without headers")]
    Headers,
    /// A record's fields disagree with its length, or a length is out of range.
    #[error("invalid record: {0}")]
    Invalid(&'static str),
}

fn u16_at(b: &[u8], r: Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

fn u32_at(b: &[u8], r: Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[r]);
    u32::from_be_bytes(a)
}

fn i64_at(b: &[u8], r: Range<usize>) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[r]);
    i64::from_be_bytes(a)
}

/// A cursor over one record's bytes.
struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Result<u8, RecordsError> {
        let (&x, rest) = self
            .b
            .split_first()
            .ok_or(RecordsError::Invalid("record shorter than its fields"))?;
        self.b = rest;
        Ok(x)
    }

    /// A zig-zag varint of at most `max_bytes` bytes.
    fn varint(&mut self, max_bytes: u32) -> Result<i64, RecordsError> {
        let mut v: u64 = 0;
        for i in 0..max_bytes {
            let byte = self.u8()?;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
        }
        Err(RecordsError::Invalid("varint longer than allowed"))
    }

    fn varint32(&mut self) -> Result<i32, RecordsError> {
        i32::try_from(self.varint(5)?).map_err(|_| RecordsError::Invalid("varint out of range"))
    }

    /// A nullable byte string; null reads as empty.
    fn bytes(&mut self) -> Result<&'a [u8], RecordsError> {
        let len = self.varint32()?;
        if len < 0 {
            return Ok(&[]);
        }
        let len = len as usize;
        if len > self.b.len() {
            return Err(RecordsError::Invalid("key or value longer than the record"));
        }
        let (x, rest) = self.b.split_at(len);
        self.b = rest;
        Ok(x)
    }
}

/// Memory a Produce of `request_bytes` may take beyond its bytes while its records are
/// decoded: a [`Record`] for every [`MIN_RECORD_LEN`] bytes, at most.
pub const fn decode_overhead(request_bytes: usize) -> usize {
    request_bytes / MIN_RECORD_LEN * std::mem::size_of::<Record<'static>>()
}

/// Decodes every batch of a Produce's `records` into `out`, and each batch's idempotence
/// fields into `batches`. A record without a timestamp (negative) gets `now_ms`. All or
/// nothing: on an error nothing of `records` is in `out` or `batches`.
pub fn decode_batches<'a>(
    records: &'a [u8],
    now_ms: u64,
    out: &mut Vec<Record<'a>>,
    batches: &mut Vec<BatchSeq>,
) -> Result<(), RecordsError> {
    let (start, batches_start) = (out.len(), batches.len());
    let r = decode_into(records, now_ms, out, batches);
    if r.is_err() {
        out.truncate(start);
        batches.truncate(batches_start);
    }
    r
}

fn decode_into<'a>(
    mut rest: &'a [u8],
    now_ms: u64,
    out: &mut Vec<Record<'a>>,
    batches: &mut Vec<BatchSeq>,
) -> Result<(), RecordsError> {
    while !rest.is_empty() {
        if rest.len() < at::RECORDS {
            return Err(RecordsError::Truncated("shorter than a batch header"));
        }
        let magic = rest[at::MAGIC];
        if magic != MAGIC_V2 {
            return Err(RecordsError::Magic(magic));
        }
        let length = u32_at(rest, at::BATCH_LENGTH) as usize;
        let total = at::LEADER_EPOCH.start.saturating_add(length);
        if total < at::RECORDS {
            return Err(RecordsError::Invalid("batch length below its header"));
        }
        if total > rest.len() {
            return Err(RecordsError::Truncated("batch length beyond the request"));
        }
        let (batch, next) = rest.split_at(total);
        rest = next;
        let stored = u32_at(batch, at::CRC);
        let computed = crc32c::crc32c(&batch[at::ATTRIBUTES.start..]);
        if stored != computed {
            return Err(RecordsError::Crc { stored, computed });
        }
        let attributes = u16_at(batch, at::ATTRIBUTES);
        if attributes & COMPRESSION_MASK != 0 {
            return Err(RecordsError::Compressed(attributes & COMPRESSION_MASK));
        }
        if attributes & (TRANSACTIONAL | CONTROL) != 0 {
            return Err(RecordsError::Transactional);
        }
        let base_ts = i64_at(batch, at::BASE_TIMESTAMP);
        let count = u32_at(batch, at::RECORD_COUNT) as usize;
        let mut body = &batch[at::RECORDS..];
        // Checked before reserving: a claimed count costs nothing until its bytes are here.
        if count > body.len() / MIN_RECORD_LEN {
            return Err(RecordsError::Invalid(
                "record count larger than the batch can hold",
            ));
        }
        out.reserve(count);
        for _ in 0..count {
            let mut c = Cursor { b: body };
            let len = c.varint32()?;
            if len < 0 || len as usize > c.b.len() {
                return Err(RecordsError::Truncated("record length beyond the batch"));
            }
            let (rec, after) = c.b.split_at(len as usize);
            body = after;
            let mut c = Cursor { b: rec };
            let _attributes = c.u8()?;
            let ts_delta = c.varint(10)?;
            let _offset_delta = c.varint32()?;
            let key = c.bytes()?;
            let value = c.bytes()?;
            let headers = c.varint32()?;
            if headers != 0 {
                return Err(RecordsError::Headers);
            }
            if !c.b.is_empty() {
                return Err(RecordsError::Invalid("bytes after the record's fields"));
            }
            let ts = base_ts.saturating_add(ts_delta);
            out.push(Record {
                timestamp_ms: if ts < 0 { now_ms } else { ts as u64 },
                key,
                value,
                priority: 0,
                codec: 0,
            });
        }
        if !body.is_empty() {
            return Err(RecordsError::Invalid("bytes after the batch's last record"));
        }
        batches.push(BatchSeq {
            producer_id: i64_at(batch, at::PRODUCER_ID),
            epoch: u16_at(batch, at::PRODUCER_EPOCH) as i16,
            base_sequence: u32_at(batch, at::BASE_SEQUENCE) as i32,
            count: count as i32,
        });
    }
    Ok(())
}

fn put_varint(buf: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    buf.put_u8(z as u8);
}

fn varint_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - z.leading_zeros() as usize).max(1).div_ceil(7)
}

/// Appends to `out` one batch of the log records in `stored` (STRP FETCH wire form, as the
/// log returns them; consecutive offsets). Returns how many records it holds. An empty key
/// is sent as a null key (STRP has no null key), an empty value as an empty value.
pub fn encode_batch(stored: &[u8], out: &mut BytesMut) -> usize {
    let mut fields = Vec::new();
    let mut rest = stored;
    while let RecordCheck::Ok { len, fields: f } = check_record(rest) {
        fields.push(f);
        rest = &rest[len..];
    }
    let Some(first) = fields.first() else {
        return 0;
    };
    let base_offset = first.offset as i64;
    let base_ts = first.timestamp_ms as i64;
    let max_ts = fields
        .iter()
        .map(|f| f.timestamp_ms as i64)
        .max()
        .unwrap_or(base_ts);
    let start = out.len();
    out.put_i64(base_offset);
    out.put_i32(0); // batch_length, filled in below
    out.put_i32(-1); // partition_leader_epoch
    out.put_u8(MAGIC_V2);
    out.put_u32(0); // crc, filled in below
    out.put_i16(0); // attributes: no compression, create time
    out.put_i32((fields.len() - 1) as i32);
    out.put_i64(base_ts);
    out.put_i64(max_ts);
    out.put_i64(-1); // producer_id
    out.put_i16(-1); // producer_epoch
    out.put_i32(-1); // base_sequence
    out.put_i32(fields.len() as i32);
    for f in &fields {
        let ts_delta = f.timestamp_ms as i64 - base_ts;
        let offset_delta = (f.offset as i64) - base_offset;
        let key_len: i64 = if f.key.is_empty() {
            -1
        } else {
            f.key.len() as i64
        };
        let body = 1
            + varint_len(ts_delta)
            + varint_len(offset_delta)
            + varint_len(key_len)
            + f.key.len()
            + varint_len(f.value.len() as i64)
            + f.value.len()
            + 1;
        put_varint(out, body as i64);
        out.put_u8(0);
        put_varint(out, ts_delta);
        put_varint(out, offset_delta);
        put_varint(out, key_len);
        out.put_slice(f.key);
        put_varint(out, f.value.len() as i64);
        out.put_slice(f.value);
        put_varint(out, 0); // no headers
    }
    let batch = &mut out[start..];
    let length = (batch.len() - at::LEADER_EPOCH.start) as u32;
    batch[at::BATCH_LENGTH].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&batch[at::ATTRIBUTES.start..]);
    batch[at::CRC].copy_from_slice(&crc.to_be_bytes());
    fields.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn stored(records: &[(u64, u64, &[u8], &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        for &(offset, ts, key, value) in records {
            let m = stream_proto::record::MessageFields {
                offset,
                timestamp_ms: ts,
                partition: 0,
                crc32: 0,
                priority: 0,
                codec: 0,
                key,
                value,
            };
            stream_proto::record::put_record(&mut b, &m);
        }
        b
    }

    #[test]
    fn a_fetched_batch_decodes_back_to_its_records() {
        let s = stored(&[
            (7, 1000, b"k", b"v1"),
            (8, 999, b"", b""),
            (9, 1500, b"key", b"x"),
        ]);
        let mut out = BytesMut::new();
        assert_eq!(encode_batch(&s, &mut out), 3);
        let bytes = Bytes::from(out);
        let (mut recs, mut batches) = (Vec::new(), Vec::new());
        decode_batches(&bytes, 5, &mut recs, &mut batches).unwrap();
        assert_eq!(batches.len(), 1);
        assert_eq!((batches[0].producer_id, batches[0].count), (-1, 3));
        let got: Vec<_> = recs
            .iter()
            .map(|r| (r.timestamp_ms, r.key, r.value))
            .collect();
        assert_eq!(
            got,
            vec![
                (1000, &b"k"[..], &b"v1"[..]),
                (999, &b""[..], &b""[..]),
                (1500, &b"key"[..], &b"x"[..])
            ]
        );
        assert_eq!(i64_at(&bytes, at::BASE_OFFSET), 7);
    }

    #[test]
    fn a_flipped_byte_fails_the_crc_and_nothing_is_decoded() {
        let s = stored(&[(0, 1, b"k", b"value")]);
        let mut out = BytesMut::new();
        encode_batch(&s, &mut out);
        let last = out.len() - 2;
        out[last] ^= 1;
        let mut recs = Vec::new();
        assert!(matches!(
            decode_batches(&out, 0, &mut recs, &mut Vec::new()),
            Err(RecordsError::Crc { .. })
        ));
        assert!(recs.is_empty());
    }

    #[test]
    fn a_huge_claimed_count_is_refused_before_reserving() {
        let s = stored(&[(0, 1, b"k", b"v")]);
        let mut out = BytesMut::new();
        encode_batch(&s, &mut out);
        out[at::RECORD_COUNT].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&out[at::ATTRIBUTES.start..]);
        out[at::CRC].copy_from_slice(&crc.to_be_bytes());
        let mut recs = Vec::new();
        assert!(matches!(
            decode_batches(&out, 0, &mut recs, &mut Vec::new()),
            Err(RecordsError::Invalid(_))
        ));
    }

    #[test]
    fn varint_lengths_match_their_encoding() {
        for v in [
            0i64,
            1,
            -1,
            63,
            64,
            -65,
            300,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut b = BytesMut::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
            let mut c = Cursor { b: &b };
            assert_eq!(c.varint(10).unwrap(), v);
        }
    }
}
