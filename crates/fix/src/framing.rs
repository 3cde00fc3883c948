//! Framing: cuts complete FIX messages out of a byte stream that arrives in arbitrary pieces.
//!
//! The frame length comes from the header alone (`8=<x><SOH>9=<n><SOH>` + n bytes + the
//! 7-byte `10=NNN<SOH>` trailer), so a partial message costs no re-scanning of its body.
//! Frames are returned as slices of the internal buffer (no copy); the buffer is compacted
//! lazily.

use crate::decode::parse_uint;
use crate::SOH;

/// Default limit on BodyLength; anything larger is treated as garbage, not buffered.
pub const DEFAULT_MAX_BODY_LEN: usize = 1 << 20;

/// Why the stream is not framed as FIX. After an error the decoder has skipped past the
/// bad bytes (to the next `8=FIX` or the end of what it has), so decoding may continue,
/// though a session layer will usually drop the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Bytes that do not start a message (`8=FIX...`); `skipped` bytes were discarded.
    #[error("garbage in the stream: {skipped} bytes do not start a FIX message")]
    Garbage {
        /// Bytes discarded.
        skipped: usize,
    },
    /// BodyLength is missing, not a number, or above the limit.
    #[error("invalid BodyLength in frame header: {0}")]
    BadBodyLength(String),
    /// BodyLength does not lead to a `10=NNN<SOH>` trailer.
    #[error("BodyLength {0} does not end at a CheckSum field")]
    MisplacedTrailer(usize),
}

/// Incremental FIX frame decoder.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of unconsumed data in `buf`.
    start: usize,
    /// Length of the frame handed out by the last `next_frame`, consumed on the next call.
    pending: usize,
    max_body_len: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

const BEGIN: &[u8] = b"8=FIX";

impl FrameDecoder {
    /// A decoder with the default BodyLength limit.
    pub fn new() -> Self {
        Self::with_max_body_len(DEFAULT_MAX_BODY_LEN)
    }

    /// A decoder that rejects frames whose BodyLength exceeds `max_body_len`.
    pub fn with_max_body_len(max_body_len: usize) -> Self {
        FrameDecoder {
            buf: Vec::with_capacity(16 * 1024),
            start: 0,
            pending: 0,
            max_body_len,
        }
    }

    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.consume_pending();
        // Compact when the consumed prefix dominates, so the buffer does not grow forever.
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start - self.pending
    }

    fn consume_pending(&mut self) {
        self.start += self.pending;
        self.pending = 0;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Skips to the next plausible message start after the current position.
    fn resync(&mut self) -> usize {
        let data = &self.buf[self.start..];
        let skip = match data.windows(BEGIN.len()).skip(1).position(|w| w == BEGIN) {
            Some(p) => p + 1,
            // Keep a tail that could be the beginning of "8=FIX".
            None => data
                .len()
                .saturating_sub(BEGIN.len() - 1)
                .max(1)
                .min(data.len()),
        };
        self.start += skip;
        skip
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed. The frame is not
    /// checksum-verified: pass it to [`crate::Message::parse`].
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        self.consume_pending();
        let data = &self.buf[self.start..];
        if data.is_empty() {
            return Ok(None);
        }
        let prefix = data.len().min(BEGIN.len());
        if data[..prefix] != BEGIN[..prefix] {
            let skipped = self.resync();
            return Err(FrameError::Garbage { skipped });
        }
        // BeginString value: short; a missing SOH within 32 bytes is garbage.
        let Some(soh1) = data.iter().take(32).position(|b| *b == SOH) else {
            if data.len() >= 32 {
                let skipped = self.resync();
                return Err(FrameError::Garbage { skipped });
            }
            return Ok(None);
        };
        let rest = &data[soh1 + 1..];
        if rest.len() < 2 {
            return Ok(None);
        }
        if &rest[..2] != b"9=" {
            self.resync();
            return Err(FrameError::BadBodyLength("second field is not 9=".into()));
        }
        let digits = &rest[2..];
        let Some(soh2) = digits.iter().take(9).position(|b| *b == SOH) else {
            if digits.len() >= 9 {
                self.resync();
                return Err(FrameError::BadBodyLength("more than 8 digits".into()));
            }
            return Ok(None);
        };
        let body_len = match parse_uint(&digits[..soh2]) {
            Some(n) if (n as usize) <= self.max_body_len => n as usize,
            _ => {
                let text = String::from_utf8_lossy(&digits[..soh2]).into_owned();
                self.resync();
                return Err(FrameError::BadBodyLength(text));
            }
        };
        let header_len = soh1 + 1 + 2 + soh2 + 1;
        let total = header_len + body_len + 7;
        if data.len() < total {
            return Ok(None);
        }
        let trailer = &data[total - 7..total];
        if &trailer[..3] != b"10=" || trailer[6] != SOH {
            self.resync();
            return Err(FrameError::MisplacedTrailer(body_len));
        }
        self.pending = total;
        let start = self.start;
        Ok(Some(&self.buf[start..start + total]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, MessageBuilder};
    use proptest::prelude::*;

    fn msg(seq: u64) -> Vec<u8> {
        let mut b = MessageBuilder::new("FIXT.1.1", "0");
        b.push(49, "Coinbase").push(56, "K").push_uint(34, seq);
        b.finish().unwrap()
    }

    fn drain(d: &mut FrameDecoder, out: &mut Vec<u64>, errors: &mut usize) {
        loop {
            match d.next_frame() {
                Ok(Some(f)) => match Message::parse(f) {
                    Ok(m) => out.push(m.get_uint(34).unwrap()),
                    Err(_) => *errors += 1,
                },
                Ok(None) => break,
                Err(_) => *errors += 1,
            }
        }
    }

    #[test]
    fn frames_byte_by_byte() {
        let stream: Vec<u8> = (1..=5).flat_map(msg).collect();
        let mut d = FrameDecoder::new();
        let (mut got, mut errors) = (Vec::new(), 0);
        for b in &stream {
            d.extend(std::slice::from_ref(b));
            drain(&mut d, &mut got, &mut errors);
        }
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
        assert_eq!(errors, 0);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn resyncs_after_garbage() {
        let mut stream = b"hello world".to_vec();
        stream.extend(msg(1));
        stream.extend(b"8=FIXT.1.1\x019=abc\x01");
        stream.extend(msg(2));
        let mut d = FrameDecoder::new();
        d.extend(&stream);
        let (mut got, mut errors) = (Vec::new(), 0);
        drain(&mut d, &mut got, &mut errors);
        assert_eq!(got, vec![1, 2]);
        assert_eq!(errors, 2);
    }

    #[test]
    fn oversized_body_length_is_rejected_not_buffered() {
        let mut d = FrameDecoder::with_max_body_len(100);
        d.extend(b"8=FIXT.1.1\x019=1000\x0135=0\x01");
        assert!(matches!(d.next_frame(), Err(FrameError::BadBodyLength(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_chunks_give_the_same_frames(
            cuts in proptest::collection::vec(1usize..40, 1..50),
        ) {
            let stream: Vec<u8> = (1..=8).flat_map(msg).collect();
            let mut d = FrameDecoder::new();
            let (mut got, mut errors) = (Vec::new(), 0);
            let mut pos = 0;
            for c in cuts.iter().cycle() {
                if pos >= stream.len() { break; }
                let end = (pos + c).min(stream.len());
                d.extend(&stream[pos..end]);
                pos = end;
                drain(&mut d, &mut got, &mut errors);
            }
            prop_assert_eq!(got, (1..=8).collect::<Vec<_>>());
            prop_assert_eq!(errors, 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_terminate(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..20),
        ) {
            let mut d = FrameDecoder::with_max_body_len(512);
            for c in &chunks {
                d.extend(c);
                // Each call either returns None or makes progress, so this ends.
                for _ in 0..10_000 {
                    match d.next_frame() {
                        Ok(None) => break,
                        Ok(Some(f)) => { let _ = Message::parse(f); }
                        Err(_) => {}
                    }
                }
            }
        }

        #[test]
        fn garbage_between_messages_loses_only_garbage(
            junk in proptest::collection::vec(any::<u8>(), 0..30),
        ) {
            // Junk that itself contains "8=FIX" could swallow the next message; exclude it.
            prop_assume!(!junk.windows(2).any(|w| w == b"8="));
            let mut stream = msg(1);
            stream.extend(&junk);
            stream.extend(msg(2));
            let mut d = FrameDecoder::new();
            d.extend(&stream);
            let (mut got, mut errors) = (Vec::new(), 0);
            drain(&mut d, &mut got, &mut errors);
            prop_assert_eq!(got, vec![1, 2]);
        }
    }
}
