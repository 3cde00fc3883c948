//! Records as the log stores them. The byte layout is the STRP FETCH record's and is owned by
//! [`stream_proto::record`]; this file adds what storage needs on top of it: the borrowed
//! record to append, the append-path encoder and the recovery check (offset sequence, CRC).

use stream_proto::record::{check_record, put_record, MessageFields, RecordCheck};

pub use stream_proto::record::{
    message_crc, MAX_RECORD_LEN as MAX_MESSAGE_BYTES, MESSAGE_FIXED_LEN as MESSAGE_FIXED_BYTES,
    RECORD_FIXED_LEN as FRAME_FIXED_BYTES,
};

/// One record to append. The log assigns the offset; the partition id comes from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Producer or broker timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Key bytes (may be empty).
    pub key: &'a [u8],
    /// Value bytes.
    pub value: &'a [u8],
    /// STRP priority (0 critical .. 3 low); stored as given.
    pub priority: u8,
    /// Compression codec id; stored as given (0 = none).
    pub codec: u8,
}

impl Record<'_> {
    /// Size of this record as stored (and as sent in a FETCH response).
    pub fn frame_len(&self) -> usize {
        stream_proto::record::record_len(self.key.len(), self.value.len())
    }

    /// Its stored size, or the error an append of it fails with: the one size check, for
    /// callers that gather records into one append and want each one's own answer.
    pub fn checked_len(&self) -> crate::Result<usize> {
        let n = self.frame_len();
        if n > MAX_MESSAGE_BYTES {
            return Err(crate::LogError::RecordTooLarge {
                size: n,
                max: MAX_MESSAGE_BYTES,
            });
        }
        Ok(n)
    }
}

/// Appends the framed record to `buf`.
pub(crate) fn encode_into(buf: &mut Vec<u8>, offset: u64, partition: u32, r: &Record<'_>) {
    buf.reserve(r.frame_len());
    put_record(
        buf,
        &MessageFields {
            offset,
            timestamp_ms: r.timestamp_ms,
            partition,
            crc32: message_crc(offset, r.timestamp_ms, r.priority, r.codec, r.key, r.value),
            priority: r.priority,
            codec: r.codec,
            key: r.key,
            value: r.value,
        },
    );
}

/// Result of checking the frame at the start of a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A valid frame of this many bytes whose Message has this timestamp and partition.
    Ok {
        len: usize,
        timestamp_ms: u64,
        partition: u32,
    },
    /// The slice ends inside the frame; this many bytes would hold the whole frame.
    Incomplete { need: usize },
    /// The frame is invalid (torn or corrupt).
    Bad(&'static str),
}

/// Validates the frame at the start of `b`: lengths consistent, offset as expected, CRC matches.
/// Never panics on arbitrary bytes.
pub(crate) fn check_frame(b: &[u8], expected_offset: u64) -> Frame {
    match check_record(b) {
        RecordCheck::Incomplete { need } => Frame::Incomplete { need },
        RecordCheck::Bad(why) => Frame::Bad(why),
        RecordCheck::Ok { len, fields } => {
            if fields.offset != expected_offset {
                Frame::Bad("offset out of sequence")
            } else if !fields.crc_ok() {
                Frame::Bad("crc mismatch")
            } else {
                Frame::Ok {
                    len,
                    timestamp_ms: fields.timestamp_ms,
                    partition: fields.partition,
                }
            }
        }
    }
}

/// A decoded stored record (for tests, tools and clients of [`crate::ReadBatch`]).
pub type DecodedRecord = stream_proto::Message;

/// Decodes `n × (u32 len, Message)` bytes, verifying each CRC. Returns `None` on any malformed
/// or corrupt record. Never panics on arbitrary input. Copies `b` once: for tests and tools,
/// not the serving path.
pub fn decode_batch(b: &[u8]) -> Option<Vec<DecodedRecord>> {
    stream_proto::decode_all_records(&bytes::Bytes::copy_from_slice(b)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encoder_and_check_agree() {
        let mut buf = Vec::new();
        let r = Record {
            timestamp_ms: 7,
            key: b"k",
            value: b"vv",
            priority: 2,
            codec: 0,
        };
        encode_into(&mut buf, 5, 3, &r);
        assert_eq!(buf.len(), r.frame_len());
        assert_eq!(
            check_frame(&buf, 5),
            Frame::Ok {
                len: buf.len(),
                timestamp_ms: 7,
                partition: 3,
            }
        );
        assert_eq!(check_frame(&buf, 6), Frame::Bad("offset out of sequence"));
        let d = decode_batch(&buf).unwrap();
        assert_eq!(&d[0].key[..], b"k");
        assert_eq!(&d[0].value[..], b"vv");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200), off in any::<u64>()) {
            let _ = check_frame(&b, off);
            let _ = decode_batch(&b);
        }

        #[test]
        fn any_single_bit_flip_is_detected(
            key in proptest::collection::vec(any::<u8>(), 0..20),
            value in proptest::collection::vec(any::<u8>(), 0..50),
            bit in any::<usize>(),
        ) {
            let mut buf = Vec::new();
            let r = Record { timestamp_ms: 1, key: &key, value: &value, priority: 1, codec: 0 };
            encode_into(&mut buf, 9, 0, &r);
            let bit = bit % (buf.len() * 8);
            // The partition field is not covered by the CRC (as in the spec).
            let partition = stream_proto::record::at::PARTITION;
            prop_assume!(!(partition.start * 8..partition.end * 8).contains(&bit));
            buf[bit / 8] ^= 1 << (bit % 8);
            let ok = matches!(check_frame(&buf, 9), Frame::Ok { len, .. } if len == buf.len());
            prop_assert!(!ok, "flip of bit {} not detected", bit);
        }
    }
}
