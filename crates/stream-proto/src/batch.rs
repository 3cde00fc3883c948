//! BATCH_PRODUCE's payload read in place: `str topic, u32 partition, u32 n,
//! n × (str key, str value, u8 priority)`. The one statement of that layout's decoding:
//! [`crate::Request::decode`] builds its owned request from this view, and the server
//! appends straight from it (a batch at the 16 MiB cap holds over a million messages, so a
//! vector of owned records would cost more than the payload itself), and reads the message
//! count from the first bytes, before the rest has arrived ([`BatchPrefix`]).

use crate::error::DecodeError;
use crate::types::Priority;

/// Smallest message of a BATCH_PRODUCE on the wire: empty key and value, priority.
pub const MIN_BATCH_RECORD_LEN: usize = 4 + 4 + 1;

/// A BATCH_PRODUCE payload, validated, whose messages are read in place.
#[derive(Debug, Clone, Copy)]
pub struct BatchView<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Explicit partition, or [`crate::PARTITION_ANY`].
    pub partition: u32,
    /// Messages.
    pub count: usize,
    /// The messages' bytes.
    records: &'a [u8],
}

/// One message of a batch, borrowed from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRecord<'a> {
    /// Key bytes (empty: no key).
    pub key: &'a [u8],
    /// Value bytes.
    pub value: &'a [u8],
    /// 0..=3, checked.
    pub priority: u8,
}

/// Field reader over a borrowed payload, with [`crate::wire::Reader`]'s errors.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated {
                field,
                needed: n,
                remaining: self.0.len(),
            });
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.u32(field)? as usize;
        self.take(n, field)
    }

    fn record(&mut self) -> Result<BatchRecord<'a>, DecodeError> {
        let key = self.bytes("record key")?;
        let value = self.bytes("record value")?;
        let priority = self.take(1, "record priority")?[0];
        if Priority::from_u8(priority).is_none() {
            return Err(DecodeError::Invalid {
                field: "record priority",
                reason: format!("{priority} is not 0..=3 (CRITICAL, HIGH, NORMAL, LOW)"),
            });
        }
        Ok(BatchRecord {
            key,
            value,
            priority,
        })
    }
}

impl<'a> BatchView<'a> {
    /// Validates the whole payload (one pass, no allocation).
    pub fn parse(payload: &'a [u8]) -> Result<BatchView<'a>, DecodeError> {
        let mut c = Cursor(payload);
        let topic = std::str::from_utf8(c.bytes("topic")?)
            .map_err(|_| DecodeError::InvalidUtf8 { field: "topic" })?;
        let partition = c.u32("partition")?;
        let count = c.u32("record count")?;
        if count as usize > c.0.len() / MIN_BATCH_RECORD_LEN {
            return Err(DecodeError::Invalid {
                field: "record count",
                reason: format!("count {count} cannot fit in the {} bytes left", c.0.len()),
            });
        }
        let records = c.0;
        for _ in 0..count {
            c.record()?;
        }
        if !c.0.is_empty() {
            return Err(DecodeError::TrailingBytes { count: c.0.len() });
        }
        Ok(BatchView {
            topic,
            partition,
            count: count as usize,
            records,
        })
    }

    /// The messages, in request order.
    pub fn records(&self) -> impl Iterator<Item = BatchRecord<'a>> + '_ {
        let mut c = Cursor(self.records);
        // `parse` validated every message, so reading them again cannot fail.
        (0..self.count).map_while(move |_| c.record().ok())
    }
}

/// What the first bytes of a BATCH_PRODUCE payload (`str topic, u32 partition, u32 n`) say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchPrefix {
    /// Not enough bytes yet.
    Needs,
    /// The message count, and the prefix's length.
    Count {
        /// Messages the batch claims.
        count: u32,
        /// Bytes before the first message.
        prefix_len: usize,
    },
    /// The payload cannot hold the prefix it announces: decoding will refuse it.
    Malformed,
}

impl BatchPrefix {
    /// Reads the prefix of a BATCH_PRODUCE payload of `len` bytes from its first bytes `head`.
    pub fn read(head: &[u8], len: usize) -> BatchPrefix {
        let mut c = Cursor(head);
        let Ok(topic_len) = c.u32("topic") else {
            return BatchPrefix::Needs;
        };
        let prefix_len = 4 + topic_len as usize + 8;
        if prefix_len > len {
            return BatchPrefix::Malformed;
        }
        match head.get(prefix_len - 4..prefix_len) {
            Some(b) => BatchPrefix::Count {
                count: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                prefix_len,
            },
            None => BatchPrefix::Needs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProduceRecord, Request, PARTITION_ANY};
    use bytes::{Bytes, BytesMut};
    use proptest::prelude::*;

    #[test]
    fn prefix_is_read_before_the_messages_arrive() {
        let mut buf = BytesMut::new();
        Request::BatchProduce {
            topic: "t".into(),
            partition: 0,
            records: vec![],
        }
        .encode_payload(&mut buf);
        let len = 1000;
        assert_eq!(BatchPrefix::read(&buf[..3], len), BatchPrefix::Needs);
        assert_eq!(BatchPrefix::read(&buf[..12], len), BatchPrefix::Needs);
        assert_eq!(
            BatchPrefix::read(&buf, len),
            BatchPrefix::Count {
                count: 0,
                prefix_len: 13
            }
        );
        assert_eq!(BatchPrefix::read(&buf, 12), BatchPrefix::Malformed);
    }

    proptest! {
        /// The view of an encoded batch gives back its messages; any prefix of one or any
        /// corruption is refused or read without a panic, and what the prefix reader says
        /// agrees with the view.
        #[test]
        fn view_reads_what_was_encoded(
            partition in prop_oneof![Just(PARTITION_ANY), 0u32..8],
            records in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..5),
                 proptest::collection::vec(any::<u8>(), 0..9), 0u8..4), 0..6),
            cut in any::<prop::sample::Index>(),
            flip in any::<(prop::sample::Index, u8)>(),
        ) {
            let req = Request::BatchProduce {
                topic: "tópico".into(),
                partition,
                records: records.iter().map(|(k, v, p)| ProduceRecord {
                    key: Bytes::from(k.clone()), value: Bytes::from(v.clone()), priority: *p,
                }).collect(),
            };
            let mut buf = BytesMut::new();
            req.encode_payload(&mut buf);
            let view = BatchView::parse(&buf).unwrap();
            prop_assert_eq!(view.partition, partition);
            let got: Vec<(Vec<u8>, Vec<u8>, u8)> =
                view.records().map(|r| (r.key.to_vec(), r.value.to_vec(), r.priority)).collect();
            prop_assert_eq!(&got, &records);
            prop_assert_eq!(
                BatchPrefix::read(&buf, buf.len()),
                BatchPrefix::Count { count: records.len() as u32, prefix_len: 4 + "tópico".len() + 8 }
            );
            let cut = cut.index(buf.len());
            prop_assert!(BatchView::parse(&buf[..cut]).is_err());
            let mut bad = buf.to_vec();
            let at = flip.0.index(bad.len());
            bad[at] ^= flip.1 | 1;
            let _ = BatchView::parse(&bad);
        }
    }
}
