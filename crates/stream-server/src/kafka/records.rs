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
//!
//! Compressed batches (attributes bits 0-2: gzip, snappy, lz4, zstd; see [`compression`]) carry
//! the same records, compressed, after the 61-byte header; the CRC-32C covers the compressed
//! bytes. A Produce is decoded in two passes: [`inflate`] checks each compressed batch and
//! decompresses it into buffers it owns, within [`MAX_INFLATED_BYTES`] for the whole Produce and
//! charged to the memory budget; then [`decode_batches`] decodes the records, borrowing the
//! request's bytes for uncompressed batches (no copy: the hot path) and those buffers for the
//! others. The log stores the records uncompressed, as STRP's, and a Fetch serves them in one
//! uncompressed batch: compression saves the producer's bandwidth only.

use std::ops::Range;

use bytes::{BufMut, BytesMut};
use stream_log::Record;
use stream_proto::record::{check_record, RecordCheck};

use super::compression::{self, Codec, InflateError};
use super::frame::MAX_REQUEST_BYTES;
use super::idempotence::BatchSeq;
use crate::budget::{Charge, ConnBudget};

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

/// Most bytes the compressed batches of one Produce may decompress to, all together (and so
/// any one of them): the server's request limit, so that decompressed, a Produce carries no
/// more than it could have sent uncompressed. Kafka's own broker bounds a batch by its
/// compressed size only; this bound is what keeps a few KiB of gzip (which inflates 1000 to 1)
/// or of zstd (far more) from taking the server's memory, and a request of thousands of such
/// batches from taking its CPU. Past it the partition is refused with
/// [`RecordsError::TooLarge`], MESSAGE_TOO_LARGE, on which the Java producer splits its batch
/// and sends the halves again.
pub const MAX_INFLATED_BYTES: usize = MAX_REQUEST_BYTES;

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
    /// Compression bits that name no Kafka codec (5 to 7).
    #[error("record batch compression {0} is not a Kafka codec (1 gzip, 2 snappy, 3 lz4, 4 zstd)")]
    UnknownCodec(u16),
    /// Compressed records that decompress past [`MAX_INFLATED_BYTES`].
    #[error(
        "{codec}-compressed records decompress to more than {limit} bytes, the most one produce \
         request may carry decompressed (all its compressed batches together)"
    )]
    TooLarge {
        /// The batch's codec.
        codec: Codec,
        /// [`MAX_INFLATED_BYTES`].
        limit: usize,
    },
    /// A compressed payload that does not decompress.
    #[error("{codec}-compressed records do not decompress: {why}")]
    Corrupt {
        /// The batch's codec.
        codec: Codec,
        /// The codec's complaint.
        why: String,
    },
    /// The server's memory budget has no room now for the decompressed records (retriable).
    #[error(
        "no room now in the server's memory budget for {needed} bytes of decompressed records"
    )]
    Busy {
        /// Bytes the partition's decompressed records would hold.
        needed: usize,
    },
    /// Decompressed records that need more memory than the whole budget.
    #[error(
        "decompressed records need {needed} bytes of memory, more than the {budget} of the \
         server's budget (--memory-budget-bytes)"
    )]
    OverBudget {
        /// Bytes the partition's decompressed records would hold.
        needed: usize,
        /// The budget's size.
        budget: usize,
    },
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

/// What decompression may still take during one Produce: bytes under [`MAX_INFLATED_BYTES`],
/// and memory from the server's budget.
pub struct Room<'b> {
    budget: &'b ConnBudget,
    left: usize,
}

impl<'b> Room<'b> {
    /// A Produce's room: all of [`MAX_INFLATED_BYTES`], its memory charged to `budget`.
    pub fn new(budget: &'b ConnBudget) -> Room<'b> {
        Room {
            budget,
            left: MAX_INFLATED_BYTES,
        }
    }

    /// Adds `bytes` to `charge`, from the pool only ([`ConnBudget::try_acquire_pool`]): the
    /// memory is given back once the partition's records are appended, before the handler
    /// awaits anything.
    fn charge(&self, charge: &mut Charge, bytes: usize) -> Result<(), RecordsError> {
        let needed = charge.bytes().saturating_add(bytes);
        let budget = self.budget.pool_limit();
        if needed > budget {
            return Err(RecordsError::OverBudget { needed, budget });
        }
        let more = self
            .budget
            .try_acquire_pool(bytes)
            .ok_or(RecordsError::Busy { needed })?;
        charge.merge(more);
        Ok(())
    }
}

/// The decompressed bodies of one partition's compressed batches, in batch order, owned here
/// so that the records decoded from them ([`decode_batches`]) can borrow them; and the memory
/// that they and those records take, charged to the server's budget until this is dropped.
#[derive(Debug, Default)]
pub struct Inflated {
    bodies: Vec<Vec<u8>>,
    records: usize,
    _charge: Charge,
}

impl Inflated {
    /// True when the partition has no compressed batch: its records borrow the request alone,
    /// and nothing was charged.
    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }

    /// The decompressed bodies, for [`decode_batches`].
    pub fn bodies(&self) -> &[Vec<u8>] {
        &self.bodies
    }

    /// Most records the partition's batches decode to: the capacity to decode them into, which
    /// the charge covers.
    pub fn records(&self) -> usize {
        self.records
    }
}

/// The first pass over one partition's `records`: each compressed batch's CRC-32C (of its
/// compressed bytes) and attributes are checked, then it is decompressed within what `room`
/// has left. Uncompressed batches are only stepped over; [`decode_batches`] checks them. All
/// or nothing: on an error nothing is kept and the memory is given back, though the bytes
/// decompressed still count against the Produce's [`MAX_INFLATED_BYTES`] (they were work).
pub fn inflate(records: &[u8], room: &mut Room<'_>) -> Result<Inflated, RecordsError> {
    let mut bodies = Vec::new();
    let mut charge = Charge::none();
    let mut bound = 0usize;
    let mut rest = records;
    while !rest.is_empty() {
        let (batch, next) = split_batch(rest)?;
        rest = next;
        let count = u32_at(batch, at::RECORD_COUNT) as usize;
        if u16_at(batch, at::ATTRIBUTES) & COMPRESSION_MASK == 0 {
            // Not checked yet: its count only bounds what it can hold.
            bound += count.min((batch.len() - at::RECORDS) / MIN_RECORD_LEN);
            continue;
        }
        let Some(codec) = check_batch(batch)? else {
            continue;
        };
        let mut body = Vec::new();
        let result = compression::inflate(
            codec,
            &batch[at::RECORDS..],
            &mut body,
            room.left,
            &mut |n| room.charge(&mut charge, n),
        );
        room.left = room.left.saturating_sub(body.len());
        result.map_err(|e| match e {
            InflateError::TooLarge => RecordsError::TooLarge {
                codec,
                limit: MAX_INFLATED_BYTES,
            },
            InflateError::Corrupt(why) => RecordsError::Corrupt { codec, why },
            InflateError::Refused(e) => e,
        })?;
        if count > body.len() / MIN_RECORD_LEN {
            return Err(RecordsError::Invalid(
                "record count larger than the batch can hold",
            ));
        }
        bound += count;
        bodies.push(body);
    }
    if !bodies.is_empty() {
        room.charge(
            &mut charge,
            bound.saturating_mul(std::mem::size_of::<Record<'static>>()),
        )?;
    }
    Ok(Inflated {
        bodies,
        records: bound,
        _charge: charge,
    })
}

/// Decodes every batch of a Produce's `records` into `out`, and each batch's idempotence
/// fields into `batches`. The records of compressed batches are read from `bodies`, what
/// [`inflate`] made of the same `records` ([`Inflated::bodies`]; empty when none is
/// compressed). A record without a timestamp (negative) gets `now_ms`. All or nothing: on an
/// error nothing of `records` is in `out` or `batches`.
pub fn decode_batches<'a>(
    records: &'a [u8],
    bodies: &'a [Vec<u8>],
    now_ms: u64,
    out: &mut Vec<Record<'a>>,
    batches: &mut Vec<BatchSeq>,
) -> Result<(), RecordsError> {
    let (start, batches_start) = (out.len(), batches.len());
    let r = decode_into(records, bodies, now_ms, out, batches);
    if r.is_err() {
        out.truncate(start);
        batches.truncate(batches_start);
    }
    r
}

/// The batch at the front of `rest` and what follows it, once its framing is checked: a whole
/// header, magic 2, a length within `rest`.
fn split_batch(rest: &[u8]) -> Result<(&[u8], &[u8]), RecordsError> {
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
    Ok(rest.split_at(total))
}

/// Checks a batch's CRC-32C and attributes; its codec.
fn check_batch(batch: &[u8]) -> Result<Option<Codec>, RecordsError> {
    let stored = u32_at(batch, at::CRC);
    let computed = crc32c::crc32c(&batch[at::ATTRIBUTES.start..]);
    if stored != computed {
        return Err(RecordsError::Crc { stored, computed });
    }
    let attributes = u16_at(batch, at::ATTRIBUTES);
    if attributes & (TRANSACTIONAL | CONTROL) != 0 {
        return Err(RecordsError::Transactional);
    }
    Codec::from_bits(attributes & COMPRESSION_MASK).map_err(RecordsError::UnknownCodec)
}

fn decode_into<'a>(
    mut rest: &'a [u8],
    bodies: &'a [Vec<u8>],
    now_ms: u64,
    out: &mut Vec<Record<'a>>,
    batches: &mut Vec<BatchSeq>,
) -> Result<(), RecordsError> {
    let mut bodies = bodies.iter();
    while !rest.is_empty() {
        let (batch, next) = split_batch(rest)?;
        rest = next;
        // Every batch is checked again here, compressed or not: one rule for what is decoded,
        // and a CRC of compressed bytes costs little next to their decompression.
        let mut body = match check_batch(batch)? {
            None => &batch[at::RECORDS..],
            Some(_) => bodies
                .next()
                .map(Vec::as_slice)
                .ok_or(RecordsError::Invalid(
                    "a compressed batch that was not decompressed (records::inflate) first",
                ))?,
        };
        let base_ts = i64_at(batch, at::BASE_TIMESTAMP);
        let count = u32_at(batch, at::RECORD_COUNT) as usize;
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
    use crate::budget::MemoryBudget;
    use crate::kafka::errors::records_code;
    use bytes::Bytes;
    use kafka_protocol::records::{
        Compression, Record as KafkaRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use std::io::Write;

    const MIB: usize = 1 << 20;

    /// Records as (key, value, timestamp); an empty key stands for a null one.
    type Model = Vec<(Vec<u8>, Vec<u8>, u64)>;

    /// `n` records of assorted sizes, some without a key.
    fn model(n: usize) -> Model {
        (0..n)
            .map(|i| {
                let key = if i % 3 == 0 {
                    Vec::new()
                } else {
                    format!("key-{i}").into_bytes()
                };
                let value = format!("value {i}; ").repeat(i % 40 + 1).into_bytes();
                (key, value, 1_700_000_000_000 + 7 * i as u64)
            })
            .collect()
    }

    /// One batch of `model` made by the kafka-protocol crate's encoder, an implementation
    /// independent of ours, in `compression`.
    fn encoded(model: &[(Vec<u8>, Vec<u8>, u64)], compression: Compression) -> BytesMut {
        let records: Vec<KafkaRecord> = model
            .iter()
            .enumerate()
            .map(|(i, (k, v, ts))| KafkaRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // Offset minus sequence constant: the encoder keeps the records in one batch.
                sequence: (i as i32).wrapping_sub(1),
                timestamp: *ts as i64,
                key: (!k.is_empty()).then(|| Bytes::copy_from_slice(k)),
                value: Some(Bytes::copy_from_slice(v)),
                headers: Default::default(),
            })
            .collect();
        let mut out = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
        out
    }

    fn budget() -> ConnBudget {
        MemoryBudget::new(1 << 30).connection()
    }

    /// Both passes over `wire` within a fresh Produce's room.
    fn decoded(wire: &[u8], budget: &ConnBudget) -> Result<Model, RecordsError> {
        let inflated = inflate(wire, &mut Room::new(budget))?;
        let mut out = Vec::new();
        decode_batches(wire, inflated.bodies(), 0, &mut out, &mut Vec::new())?;
        Ok(out
            .iter()
            .map(|r| (r.key.to_vec(), r.value.to_vec(), r.timestamp_ms))
            .collect())
    }

    /// Fixes a batch's CRC-32C after an edit.
    fn reseal(b: &mut [u8]) {
        let crc = crc32c::crc32c(&b[at::ATTRIBUTES.start..]);
        b[at::CRC].copy_from_slice(&crc.to_be_bytes());
    }

    /// `batch` with `payload` after its header, under compression `bits`, its length and
    /// CRC-32C made right.
    fn with_payload(batch: &[u8], bits: u16, payload: &[u8]) -> BytesMut {
        let mut b = BytesMut::from(&batch[..at::RECORDS]);
        b.extend_from_slice(payload);
        let attributes = (u16_at(&b, at::ATTRIBUTES) & !COMPRESSION_MASK) | bits;
        b[at::ATTRIBUTES].copy_from_slice(&attributes.to_be_bytes());
        let length = (b.len() - at::LEADER_EPOCH.start) as u32;
        b[at::BATCH_LENGTH].copy_from_slice(&length.to_be_bytes());
        reseal(&mut b);
        b
    }

    fn xerial(records: &[u8], chunk: usize) -> Vec<u8> {
        let mut x = b"\x82SNAPPY\x00".to_vec();
        x.extend_from_slice(&1i32.to_be_bytes());
        x.extend_from_slice(&1i32.to_be_bytes());
        for c in records.chunks(chunk) {
            let block = snap::raw::Encoder::new().compress_vec(c).unwrap();
            x.extend_from_slice(&(block.len() as i32).to_be_bytes());
            x.extend_from_slice(&block);
        }
        x
    }

    const CODECS: [(Compression, u16, Codec); 4] = [
        (Compression::Gzip, 1, Codec::Gzip),
        (Compression::Snappy, 2, Codec::Snappy),
        (Compression::Lz4, 3, Codec::Lz4),
        (Compression::Zstd, 4, Codec::Zstd),
    ];

    #[test]
    fn a_batch_of_each_codec_decodes_to_the_records_it_was_made_of() {
        // About 60 KB of records: two chunks of the encoder's xerial snappy.
        let m = model(300);
        let plain = encoded(&m, Compression::None);
        for (compression, bits, _) in CODECS {
            let wire = encoded(&m, compression);
            assert_eq!(u16_at(&wire, at::ATTRIBUTES) & COMPRESSION_MASK, bits);
            assert!(wire.len() < plain.len() / 2, "{compression:?} compressed");
            assert_eq!(decoded(&wire, &budget()).unwrap(), m, "{compression:?}");
            // After an uncompressed batch of the same partition: both, in order.
            let mixed = [&plain[..], &wire[..]].concat();
            let twice: Model = m.iter().chain(&m).cloned().collect();
            assert_eq!(
                decoded(&mixed, &budget()).unwrap(),
                twice,
                "{compression:?}"
            );
        }
        let snappy = encoded(&m, Compression::Snappy);
        assert!(
            snappy[at::RECORDS..].starts_with(b"\x82SNAPPY\x00"),
            "the encoder frames"
        );
    }

    #[test]
    fn raw_snappy_and_hand_framed_xerial_batches_decode() {
        let m = model(200);
        let plain = encoded(&m, Compression::None);
        let records = &plain[at::RECORDS..];
        let raw = snap::raw::Encoder::new().compress_vec(records).unwrap();
        assert_eq!(
            decoded(&with_payload(&plain, 2, &raw), &budget()).unwrap(),
            m
        );
        let framed = xerial(records, 10_000);
        assert_eq!(
            decoded(&with_payload(&plain, 2, &framed), &budget()).unwrap(),
            m
        );
    }

    /// A batch of one record whose value is `len` zeros, compressed by `w` as it is written:
    /// the record is never whole in memory.
    fn bomb<W: Write>(mut w: W, len: usize) -> W {
        let mut head = BytesMut::new();
        let body = 4 + varint_len(len as i64) + len + 1;
        put_varint(&mut head, body as i64);
        head.put_slice(&[0, 0, 0]); // attributes, timestamp delta, offset delta
        put_varint(&mut head, -1); // null key
        put_varint(&mut head, len as i64);
        w.write_all(&head).unwrap();
        let zeros = vec![0u8; MIB];
        for _ in 0..len / MIB {
            w.write_all(&zeros).unwrap();
        }
        w.write_all(&[0]).unwrap(); // no headers
        w
    }

    #[test]
    fn a_gzip_or_zstd_bomb_is_refused_at_the_limit_within_a_smaller_budget() {
        let len = 200 * MIB;
        let gzip = bomb(
            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()),
            len,
        )
        .finish()
        .unwrap();
        let zstd = bomb(
            zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap(),
            len,
        )
        .finish()
        .unwrap();
        let header = encoded(&[(Vec::new(), Vec::new(), 1)], Compression::None);
        // Every growth of a decompression buffer is charged first: had one grown past this
        // pool, the error would be OverBudget, not TooLarge.
        let pool = MemoryBudget::new(MAX_INFLATED_BYTES + 8 * MIB);
        for (codec, bits, payload) in [(Codec::Gzip, 1, gzip), (Codec::Zstd, 4, zstd)] {
            assert!(
                payload.len() < MIB,
                "{codec}: a {} byte bomb",
                payload.len()
            );
            let wire = with_payload(&header, bits, &payload);
            let e = inflate(&wire, &mut Room::new(&pool.connection())).unwrap_err();
            assert_eq!(
                e,
                RecordsError::TooLarge {
                    codec,
                    limit: MAX_INFLATED_BYTES
                }
            );
            assert_eq!(records_code(&e), 10, "MESSAGE_TOO_LARGE");
            let m = e.to_string();
            assert!(m.contains(codec.name()) && m.contains("16777216"), "{m}");
            assert_eq!(pool.in_use(), 0, "the charge went back with the buffer");
        }
    }

    #[test]
    fn the_bound_spans_every_compressed_batch_of_a_produce() {
        let big = encoded(&[(Vec::new(), vec![b'a'; 10 * MIB], 1)], Compression::Zstd);
        let budget = budget();
        let mut room = Room::new(&budget);
        let first = inflate(&big, &mut room).expect("10 MiB fits");
        assert_eq!(first.bodies().len(), 1);
        // Another partition of the same Produce: 20 MiB together.
        assert!(matches!(
            inflate(&big, &mut room),
            Err(RecordsError::TooLarge {
                codec: Codec::Zstd,
                ..
            })
        ));
        // A Produce of its own has room again.
        assert!(inflate(&big, &mut Room::new(&budget)).is_ok());
    }

    #[test]
    fn decompressed_memory_is_charged_until_dropped_and_refused_when_not_free() {
        let m = model(300);
        let wire = encoded(&m, Compression::Gzip);
        let pool = MemoryBudget::new(8 * MIB);
        let conn = pool.connection();
        let inflated = inflate(&wire, &mut Room::new(&conn)).unwrap();
        let body = inflated.bodies()[0].len();
        let records = m.len() * std::mem::size_of::<Record<'static>>();
        assert_eq!(inflated.records(), m.len());
        assert!(pool.in_use() >= body + records, "{} charged", pool.in_use());
        drop(inflated);
        assert_eq!(pool.in_use(), 0);
        // Not free now: retriable, and nothing is held.
        let hog = conn.try_acquire(8 * MIB - 1000).unwrap();
        let e = inflate(&wire, &mut Room::new(&conn)).unwrap_err();
        assert!(matches!(e, RecordsError::Busy { .. }), "{e}");
        assert_eq!(records_code(&e), 7, "REQUEST_TIMED_OUT");
        drop(hog);
        assert_eq!(pool.in_use(), 0);
        // Never free: more than the whole budget.
        let big = encoded(&[(Vec::new(), vec![b'a'; 9 * MIB], 1)], Compression::Lz4);
        let e = inflate(&big, &mut Room::new(&conn)).unwrap_err();
        assert!(matches!(e, RecordsError::OverBudget { .. }), "{e}");
        assert_eq!(records_code(&e), 10, "MESSAGE_TOO_LARGE");
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn a_corrupt_payload_under_a_valid_crc_is_corrupt_message() {
        let m = model(50);
        for (compression, bits, codec) in CODECS {
            let wire = encoded(&m, compression);
            let payload = &wire[at::RECORDS..];
            for bad in [&payload[..payload.len() / 2], &b"not compressed at all"[..]] {
                let e = decoded(&with_payload(&wire, bits, bad), &budget()).unwrap_err();
                assert!(
                    matches!(&e, RecordsError::Corrupt { codec: c, .. } if *c == codec),
                    "{codec}: {e}"
                );
                assert_eq!(records_code(&e), 2, "{codec}: CORRUPT_MESSAGE");
            }
        }
    }

    #[test]
    fn what_decompresses_is_checked_like_an_uncompressed_batch() {
        let plain = encoded(&model(5), Compression::None);
        let mut records = plain[at::RECORDS..].to_vec();
        records.push(0);
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&records).unwrap();
            e.finish().unwrap()
        };
        let wire = with_payload(&plain, 1, &gz);
        let inflated = inflate(&wire, &mut Room::new(&budget())).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            decode_batches(&wire, inflated.bodies(), 0, &mut out, &mut Vec::new()),
            Err(RecordsError::Invalid("bytes after the batch's last record"))
        );
        assert!(out.is_empty());
        // Without its decompressed body: an error, not a panic.
        assert!(matches!(
            decode_batches(&wire, &[], 0, &mut out, &mut Vec::new()),
            Err(RecordsError::Invalid(_))
        ));
        // Bits that name no codec.
        let e = inflate(
            &with_payload(&plain, 5, &plain[at::RECORDS..]),
            &mut Room::new(&budget()),
        );
        assert_eq!(e.unwrap_err(), RecordsError::UnknownCodec(5));
        assert_eq!(records_code(&RecordsError::UnknownCodec(5)), 76);
    }

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
        decode_batches(&bytes, &[], 5, &mut recs, &mut batches).unwrap();
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
            decode_batches(&out, &[], 0, &mut recs, &mut Vec::new()),
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
            decode_batches(&out, &[], 0, &mut recs, &mut Vec::new()),
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
