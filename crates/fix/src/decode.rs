//! Decoding: [`Message::parse`] verifies one complete frame (BeginString first, BodyLength,
//! MsgType, CheckSum) and indexes its fields as slices of the input buffer (zero copy).
//!
//! Parsing is lenient where Coinbase needs it: unknown tags are kept as raw fields, field
//! order beyond the standard header and trailer is not enforced, and values are not
//! interpreted until asked for. It is strict about framing, because a frame whose length or
//! checksum is wrong cannot be trusted at all.

use crate::tags::{self, data_field_for_length};
use crate::{checksum, SOH};

/// Why a frame is not a valid FIX message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame does not start with `8=`.
    #[error("message does not start with BeginString (8=)")]
    MissingBeginString,
    /// The second field is not BodyLength (9) or its value is not a number.
    #[error("second field must be BodyLength (9=<digits>)")]
    BadBodyLength,
    /// The third field is not MsgType (35).
    #[error("third field must be MsgType (35)")]
    MissingMsgType,
    /// BodyLength does not match the bytes between it and the CheckSum field.
    #[error("BodyLength says {declared} bytes but the body has {actual}")]
    BodyLengthMismatch {
        /// Value of tag 9.
        declared: usize,
        /// Bytes actually found between 9=..| and 10=.
        actual: usize,
    },
    /// The last field is not `10=NNN<SOH>`.
    #[error("message does not end with CheckSum (10=NNN)")]
    BadCheckSumField,
    /// CheckSum does not match the bytes.
    #[error("CheckSum is {declared:03} but the bytes sum to {computed:03}")]
    CheckSumMismatch {
        /// Value of tag 10.
        declared: u8,
        /// Sum of the bytes modulo 256.
        computed: u8,
    },
    /// A field is not `digits=value<SOH>`.
    #[error("malformed field at byte {offset}: {reason}")]
    MalformedField {
        /// Byte offset of the field in the frame.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
}

/// Why a field could not be read from a parsed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The field is absent.
    #[error("required tag {0} is missing")]
    Missing(u32),
    /// The field is present but its value has the wrong form.
    #[error("tag {tag} has invalid value {value:?}")]
    Invalid {
        /// The tag.
        tag: u32,
        /// Its value (lossy UTF-8).
        value: String,
    },
    /// A repeating group does not have the declared number of entries.
    #[error("group {count_tag} declares {declared} entries but {found} were found")]
    GroupCount {
        /// The NoXxx count tag.
        count_tag: u32,
        /// Declared count.
        declared: usize,
        /// Entries found.
        found: usize,
    },
}

/// A parsed FIX message: every field, in order, as slices of the frame.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    frame: &'a [u8],
    fields: Vec<(u32, &'a [u8])>,
}

/// Describes a repeating group for [`Message::group`] (no dictionary needed).
#[derive(Debug, Clone, Copy)]
pub struct GroupSpec {
    /// The NoXxx tag carrying the number of entries (e.g. 268 NoMDEntries).
    pub count_tag: u32,
    /// The first tag of every entry, which separates entries (e.g. 269 or 279).
    pub delimiter: u32,
    /// Tags allowed inside an entry. `None`: an entry runs to the next delimiter or the end
    /// of the body (lenient: unknown tags stay in the entry), which is right for groups that
    /// end the message, like Coinbase's market data entries.
    pub members: Option<&'static [u32]>,
}

/// One entry of a repeating group.
#[derive(Debug, Clone, Copy)]
pub struct GroupEntry<'m, 'a> {
    fields: &'m [(u32, &'a [u8])],
}

impl<'m, 'a> GroupEntry<'m, 'a> {
    /// First value of `tag` in this entry.
    pub fn get(&self, tag: u32) -> Option<&'a [u8]> {
        find(self.fields, tag)
    }

    /// First value of `tag` as UTF-8 text (`None` when absent or not UTF-8).
    pub fn get_str(&self, tag: u32) -> Option<&'a str> {
        self.get(tag).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The entry's fields in order.
    pub fn fields(&self) -> &'m [(u32, &'a [u8])] {
        self.fields
    }
}

fn find<'a>(fields: &[(u32, &'a [u8])], tag: u32) -> Option<&'a [u8]> {
    fields.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v)
}

/// Parses an unsigned decimal without sign or leading `+` (FIX int/SeqNum/Length form).
pub fn parse_uint(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 {
        return None;
    }
    value.iter().try_fold(0u64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

impl<'a> Message<'a> {
    /// Parses and verifies one complete frame. Every byte must belong to the message.
    pub fn parse(frame: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        if !frame.starts_with(b"8=") {
            return Err(DecodeError::MissingBeginString);
        }
        let mut fields = Vec::with_capacity(32);
        let mut pos = 0usize;
        let mut data_len: Option<(u32, usize)> = None;
        let mut body_start = None;
        while pos < frame.len() {
            let offset = pos;
            let eq = frame[pos..].iter().position(|b| *b == b'=').ok_or(
                DecodeError::MalformedField {
                    offset,
                    reason: "no '=' after tag",
                },
            )?;
            let tag = parse_uint(&frame[pos..pos + eq])
                .filter(|t| *t > 0 && *t <= u64::from(u32::MAX))
                .ok_or(DecodeError::MalformedField {
                    offset,
                    reason: "tag is not a positive integer",
                })? as u32;
            let vstart = pos + eq + 1;
            let vend = match data_len.take() {
                // A data field announced by its length field: trust the length, not SOH.
                Some((data_tag, len)) if data_tag == tag => {
                    let end = vstart.checked_add(len).filter(|e| *e < frame.len()).ok_or(
                        DecodeError::MalformedField {
                            offset,
                            reason: "data field longer than the message",
                        },
                    )?;
                    if frame[end] != SOH {
                        return Err(DecodeError::MalformedField {
                            offset,
                            reason: "data field not followed by SOH at its declared length",
                        });
                    }
                    end
                }
                _ => {
                    vstart
                        + frame[vstart..].iter().position(|b| *b == SOH).ok_or(
                            DecodeError::MalformedField {
                                offset,
                                reason: "field not terminated by SOH",
                            },
                        )?
                }
            };
            let value = &frame[vstart..vend];
            if let Some(data_tag) = data_field_for_length(tag) {
                if let Some(len) = parse_uint(value) {
                    data_len = Some((data_tag, len as usize));
                }
            }
            match fields.len() {
                0 if tag != tags::BEGIN_STRING => return Err(DecodeError::MissingBeginString),
                1 => {
                    if tag != tags::BODY_LENGTH || parse_uint(value).is_none() {
                        return Err(DecodeError::BadBodyLength);
                    }
                    body_start = Some(vend + 1);
                }
                2 if tag != tags::MSG_TYPE || value.is_empty() => {
                    return Err(DecodeError::MissingMsgType)
                }
                _ => {}
            }
            fields.push((tag, value));
            pos = vend + 1;
            if tag == tags::CHECK_SUM {
                break;
            }
        }
        // The loop ends at CheckSum or at the end of the frame; either way it must be the
        // last field and the last byte.
        let Some(&(tags::CHECK_SUM, sum_value)) = fields.last() else {
            return Err(DecodeError::BadCheckSumField);
        };
        if pos != frame.len() || sum_value.len() != 3 || fields.len() < 4 {
            return Err(DecodeError::BadCheckSumField);
        }
        let declared_sum = parse_uint(sum_value)
            .filter(|s| *s < 256)
            .ok_or(DecodeError::BadCheckSumField)? as u8;
        let trailer_start = frame.len() - 7; // "10=NNN<SOH>"
        let body_start = body_start.ok_or(DecodeError::BadBodyLength)?;
        let declared_len = parse_uint(fields[1].1).ok_or(DecodeError::BadBodyLength)? as usize;
        let actual_len = trailer_start.saturating_sub(body_start);
        if declared_len != actual_len {
            return Err(DecodeError::BodyLengthMismatch {
                declared: declared_len,
                actual: actual_len,
            });
        }
        let computed = checksum(&frame[..trailer_start]);
        if computed != declared_sum {
            return Err(DecodeError::CheckSumMismatch {
                declared: declared_sum,
                computed,
            });
        }
        Ok(Message { frame, fields })
    }

    /// The whole frame as received.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.frame
    }

    /// MsgType (35).
    pub fn msg_type(&self) -> &'a [u8] {
        // parse() guarantees field 2 is a non-empty 35.
        self.fields[2].1
    }

    /// BeginString (8).
    pub fn begin_string(&self) -> &'a [u8] {
        self.fields[0].1
    }

    /// Every field in order, header and trailer included.
    pub fn fields(&self) -> &[(u32, &'a [u8])] {
        &self.fields
    }

    /// First value of `tag`.
    pub fn get(&self, tag: u32) -> Option<&'a [u8]> {
        find(&self.fields, tag)
    }

    /// First value of `tag` as UTF-8 text (`None` when absent or not UTF-8).
    pub fn get_str(&self, tag: u32) -> Option<&'a str> {
        self.get(tag).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// First value of `tag` as an unsigned integer; errors say which tag and why.
    pub fn get_uint(&self, tag: u32) -> Result<u64, FieldError> {
        let v = self.get(tag).ok_or(FieldError::Missing(tag))?;
        parse_uint(v).ok_or_else(|| FieldError::Invalid {
            tag,
            value: String::from_utf8_lossy(v).into_owned(),
        })
    }

    /// `true` when `tag` is present with value `Y`.
    pub fn flag(&self, tag: u32) -> bool {
        self.get(tag) == Some(b"Y")
    }

    /// The entries of the repeating group described by `spec` (empty when the count tag is
    /// absent or zero).
    pub fn group(&self, spec: GroupSpec) -> Result<Vec<GroupEntry<'_, 'a>>, FieldError> {
        // Exclude the trailer from group scanning.
        let body = &self.fields[..self.fields.len() - 1];
        let Some(count_idx) = body.iter().position(|(t, _)| *t == spec.count_tag) else {
            return Ok(Vec::new());
        };
        let declared = parse_uint(body[count_idx].1).ok_or_else(|| FieldError::Invalid {
            tag: spec.count_tag,
            value: String::from_utf8_lossy(body[count_idx].1).into_owned(),
        })? as usize;
        let mut entries = Vec::with_capacity(declared.min(64));
        let mut i = count_idx + 1;
        while entries.len() < declared && i < body.len() && body[i].0 == spec.delimiter {
            let start = i;
            i += 1;
            while i < body.len() {
                let tag = body[i].0;
                let member = match spec.members {
                    Some(m) => m.contains(&tag),
                    None => true,
                };
                if tag == spec.delimiter || !member {
                    break;
                }
                i += 1;
            }
            entries.push(GroupEntry {
                fields: &body[start..i],
            });
        }
        if entries.len() != declared {
            return Err(FieldError::GroupCount {
                count_tag: spec.count_tag,
                declared,
                found: entries.len(),
            });
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MessageBuilder;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        let mut b = MessageBuilder::new("FIXT.1.1", "W");
        b.push(49, "Coinbase")
            .push(56, "KEY")
            .push_uint(34, 7)
            .push(52, "20250114-09:00:00.123456")
            .push(262, "md1")
            .push_uint(83, 10)
            .push(55, "BTC-USD")
            .push_uint(268, 2)
            .push(269, "0")
            .push(278, "o1")
            .push(270, "45230.50")
            .push(271, "1.5")
            .push(9999, "unknown")
            .push(269, "1")
            .push(278, "o2")
            .push(270, "45231.00")
            .push(271, "0.25");
        b.finish().unwrap()
    }

    #[test]
    fn round_trip_and_field_access() {
        let bytes = sample();
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(m.msg_type(), b"W");
        assert_eq!(m.begin_string(), b"FIXT.1.1");
        assert_eq!(m.get_uint(34).unwrap(), 7);
        assert_eq!(m.get_str(55), Some("BTC-USD"));
        assert_eq!(m.get_uint(1), Err(FieldError::Missing(1)));
        assert!(matches!(
            m.get_uint(55),
            Err(FieldError::Invalid { tag: 55, .. })
        ));
        assert_eq!(m.as_bytes(), &bytes[..]);
    }

    #[test]
    fn groups_split_on_the_delimiter_and_keep_unknown_tags() {
        let bytes = sample();
        let m = Message::parse(&bytes).unwrap();
        let spec = GroupSpec {
            count_tag: 268,
            delimiter: 269,
            members: None,
        };
        let g = m.group(spec).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].get_str(278), Some("o1"));
        assert_eq!(g[0].get_str(9999), Some("unknown"));
        assert_eq!(g[1].get_str(270), Some("45231.00"));
        assert_eq!(g[1].get(9999), None);
        // With a member list, an unknown tag ends the entry; the group then has too few.
        let strict = GroupSpec {
            members: Some(&[269, 278, 270, 271]),
            ..spec
        };
        assert!(matches!(
            m.group(strict),
            Err(FieldError::GroupCount {
                declared: 2,
                found: 1,
                ..
            })
        ));
        // Absent group: empty.
        let none = GroupSpec {
            count_tag: 146,
            delimiter: 55,
            members: None,
        };
        assert!(m.group(none).unwrap().is_empty());
    }

    #[test]
    fn detects_bad_checksum_and_body_length() {
        let mut bytes = sample();
        let n = bytes.len();
        // Corrupt one body byte: checksum no longer matches.
        let i = bytes.iter().position(|b| *b == b'B').unwrap();
        bytes[i] = b'C';
        assert!(matches!(
            Message::parse(&bytes),
            Err(DecodeError::CheckSumMismatch { .. })
        ));
        // Wrong body length.
        let mut b = MessageBuilder::new("FIXT.1.1", "0");
        b.push(49, "X");
        let good = b.finish().unwrap();
        let s = String::from_utf8(good)
            .unwrap()
            .replace("9=10\x01", "9=11\x01");
        assert!(matches!(
            Message::parse(s.as_bytes()),
            Err(DecodeError::BodyLengthMismatch {
                declared: 11,
                actual: 10
            })
        ));
        // Truncated.
        assert!(Message::parse(&sample()[..n - 3]).is_err());
    }

    #[test]
    fn raw_data_may_contain_soh() {
        let mut b = MessageBuilder::new("FIXT.1.1", "A");
        b.push_data(95, 96, b"ab\x01cd").push(553, "user");
        let bytes = b.finish().unwrap();
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(m.get(96), Some(&b"ab\x01cd"[..]));
        assert_eq!(m.get_str(553), Some("user"));
    }

    #[test]
    fn rejects_wrong_header_order() {
        let body = "35=0\x019=5\x01";
        let s = format!("8=FIXT.1.1\x01{body}");
        let sum = crate::checksum(s.as_bytes());
        let s = format!("{s}10={sum:03}\x01");
        assert_eq!(
            Message::parse(s.as_bytes()).unwrap_err(),
            DecodeError::BadBodyLength
        );
    }

    fn arb_value() -> impl Strategy<Value = String> {
        "[ -~&&[^=]]{1,12}"
    }

    proptest! {
        #[test]
        fn encode_then_parse_round_trips(
            msg_type in "[0-9A-Za-z]{1,2}",
            fields in proptest::collection::vec((11u32..100_000, arb_value()), 0..20),
        ) {
            let fields: Vec<_> = fields
                .into_iter()
                .filter(|(t, _)| data_field_for_length(*t).is_none() && *t != 10)
                .collect();
            let mut b = MessageBuilder::new("FIXT.1.1", &msg_type);
            for (t, v) in &fields {
                b.push(*t, v);
            }
            let bytes = b.finish().unwrap();
            let m = Message::parse(&bytes).unwrap();
            prop_assert_eq!(m.msg_type(), msg_type.as_bytes());
            let body: Vec<_> = m.fields()[3..m.fields().len() - 1]
                .iter()
                .map(|(t, v)| (*t, String::from_utf8(v.to_vec()).unwrap()))
                .collect();
            prop_assert_eq!(body, fields);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(m) = Message::parse(&bytes) {
                let _ = m.group(GroupSpec { count_tag: 268, delimiter: 269, members: None });
            }
        }

        #[test]
        fn mutated_messages_never_panic(idx in 0usize..200, byte in any::<u8>()) {
            let mut bytes = sample();
            let i = idx % bytes.len();
            bytes[i] = byte;
            if let Ok(m) = Message::parse(&bytes) {
                let _ = m.group(GroupSpec { count_tag: 268, delimiter: 269, members: None });
                let _ = m.get_uint(34);
            }
        }
    }
}
