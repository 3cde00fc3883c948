//! Encoding: [`MessageBuilder`] writes `tag=value<SOH>` fields and frames them with
//! BeginString (8), BodyLength (9) and CheckSum (10).

use crate::{checksum, SOH};
use std::io::Write as _;

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A non-data field's value contained SOH or was empty, which would corrupt the framing.
    #[error("tag {tag}: value is empty or contains SOH (use push_data for binary data)")]
    InvalidValue {
        /// The offending tag.
        tag: u32,
    },
}

/// Builds one FIX message. Fields are appended in call order after `35=<MsgType>`;
/// [`MessageBuilder::finish`] prepends `8=` and `9=` and appends `10=`.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    begin_string: String,
    body: Vec<u8>,
    error: Option<EncodeError>,
}

impl MessageBuilder {
    /// Starts a message of type `msg_type` (tag 35) for `begin_string` (e.g. `FIXT.1.1`).
    pub fn new(begin_string: &str, msg_type: &str) -> Self {
        let mut b = MessageBuilder {
            begin_string: begin_string.to_owned(),
            body: Vec::with_capacity(256),
            error: None,
        };
        b.push(crate::tags::MSG_TYPE, msg_type);
        b
    }

    /// Appends `tag=value`. An empty value or one containing SOH is recorded as an error
    /// that [`MessageBuilder::finish`] reports.
    pub fn push(&mut self, tag: u32, value: impl AsRef<[u8]>) -> &mut Self {
        let value = value.as_ref();
        if value.is_empty() || value.contains(&SOH) {
            self.error.get_or_insert(EncodeError::InvalidValue { tag });
            return self;
        }
        self.push_raw(tag, value);
        self
    }

    /// Appends `tag=<decimal integer>`.
    pub fn push_uint(&mut self, tag: u32, value: u64) -> &mut Self {
        // Writing into a Vec cannot fail.
        let _ = write!(self.body, "{tag}={value}");
        self.body.push(SOH);
        self
    }

    /// Appends a length-prefixed data field pair (e.g. 95/96): `len_tag=<len>` then
    /// `data_tag=<bytes>`. The data may contain SOH.
    pub fn push_data(&mut self, len_tag: u32, data_tag: u32, data: &[u8]) -> &mut Self {
        self.push_uint(len_tag, data.len() as u64);
        self.push_raw(data_tag, data);
        self
    }

    fn push_raw(&mut self, tag: u32, value: &[u8]) {
        let _ = write!(self.body, "{tag}=");
        self.body.extend_from_slice(value);
        self.body.push(SOH);
    }

    /// Frames the message: `8=..|9=<body length>|<body>10=<checksum>|`.
    pub fn finish(&self) -> Result<Vec<u8>, EncodeError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let mut out = Vec::with_capacity(self.body.len() + self.begin_string.len() + 24);
        let _ = write!(out, "8={}\x019={}\x01", self.begin_string, self.body.len());
        out.extend_from_slice(&self.body);
        let sum = checksum(&out);
        let _ = write!(out, "10={sum:03}\x01");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_length_and_checksum_match_a_hand_computed_message() {
        let mut b = MessageBuilder::new("FIXT.1.1", "0");
        b.push(49, "K").push(56, "Coinbase").push_uint(34, 2);
        let out = b.finish().unwrap();
        // Body "35=0|49=K|56=Coinbase|34=2|" is 5 + 5 + 12 + 5 = 27 bytes.
        let head = b"8=FIXT.1.1\x019=27\x01";
        assert!(out.starts_with(head));
        let body_and_trailer = &out[head.len()..];
        assert_eq!(
            &body_and_trailer[..27],
            b"35=0\x0149=K\x0156=Coinbase\x0134=2\x01"
        );
        let sum = out[..out.len() - 7]
            .iter()
            .map(|b| u32::from(*b))
            .sum::<u32>()
            % 256;
        assert_eq!(&out[out.len() - 7..], format!("10={sum:03}\x01").as_bytes());
    }

    #[test]
    fn rejects_soh_and_empty_values() {
        let mut b = MessageBuilder::new("FIXT.1.1", "0");
        b.push(58, "a\x01b");
        assert_eq!(b.finish(), Err(EncodeError::InvalidValue { tag: 58 }));
        let mut b = MessageBuilder::new("FIXT.1.1", "0");
        b.push(58, "");
        assert!(b.finish().is_err());
    }

    #[test]
    fn data_fields_may_contain_soh() {
        let mut b = MessageBuilder::new("FIXT.1.1", "A");
        b.push_data(95, 96, b"x\x01y");
        let out = b.finish().unwrap();
        let s = String::from_utf8_lossy(&out);
        assert!(s.contains("95=3\x0196=x\x01y\x01"), "{s:?}");
    }
}
