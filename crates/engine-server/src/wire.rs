//! Wire helpers shared by the transports: protocol detection, splitting a TCP frame payload or a
//! UDP datagram into input messages, encoding output messages, and TCP framing.

use engine_core::{binary, csv, InputMsg, OutputMsg};

/// Largest TCP frame payload the spec allows.
pub const MAX_FRAME: usize = 65_536;

/// Size of the TCP frame header (u32 big-endian payload length).
pub const FRAME_HEADER: usize = 4;

/// The protocol a client speaks (and is answered in).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Proto {
    /// Text lines.
    Csv,
    /// Packed big-endian messages starting with [`binary::MAGIC`].
    Binary,
}

impl Proto {
    /// Binary when the first byte is the magic 0x4D, else CSV (the spec's detection rule).
    pub fn detect(payload: &[u8]) -> Proto {
        match payload.first() {
            Some(&binary::MAGIC) => Proto::Binary,
            _ => Proto::Csv,
        }
    }
}

/// Decodes every input message in one payload (a TCP frame or a UDP datagram).
///
/// CSV payloads may hold several lines (a trailing newline, as `nc` sends, is fine); blank lines
/// and `#` comments are skipped. Binary payloads may hold several messages back to back; each
/// one's length comes from [`binary::input_len`], which tells the two cancel forms apart by what
/// is left of the payload (the short cancel, [`binary::CANCEL_SHORT_LEN`], is the one that ends
/// it, usually the only message). Every message that cannot be decoded is reported to `on_err`
/// with the reason and skipped; a binary payload whose framing is lost (bad magic, unknown
/// type, truncated) is abandoned from that point, since the next message boundary is unknown.
pub fn decode_payload(
    payload: &[u8],
    mut on_msg: impl FnMut(InputMsg),
    mut on_err: impl FnMut(String),
) {
    match Proto::detect(payload) {
        Proto::Csv => {
            for line in payload.split(|&b| b == b'\n') {
                match csv::decode_input(line) {
                    Ok(Some(msg)) => on_msg(msg),
                    Ok(None) => {}
                    Err(e) => on_err(format!(
                        "bad CSV line {:?}: {e}",
                        String::from_utf8_lossy(&line[..line.len().min(80)])
                    )),
                }
            }
        }
        Proto::Binary => {
            let mut rest = payload;
            while !rest.is_empty() {
                if rest[0] != binary::MAGIC {
                    on_err(format!(
                        "binary payload lost framing: byte 0x{:02x}",
                        rest[0]
                    ));
                    return;
                }
                let Some(kind) = rest.get(1).copied() else {
                    on_err("truncated binary message (1 byte)".to_string());
                    return;
                };
                let (Some(len), Some(lens)) = (
                    binary::input_len(kind, rest.len()),
                    binary::input_lens(kind),
                ) else {
                    on_err(format!("unknown binary message type 0x{kind:02x}"));
                    return;
                };
                if rest.len() < len {
                    let expected: Vec<String> = lens.iter().map(|l| l.to_string()).collect();
                    on_err(format!(
                        "truncated binary message: type {:?}, {} of {} bytes",
                        kind as char,
                        rest.len(),
                        expected.join(" or ")
                    ));
                    return;
                }
                match binary::decode_input(&rest[..len]) {
                    Ok(msg) => on_msg(msg),
                    Err(e) => on_err(format!("bad binary message: {e}")),
                }
                rest = &rest[len..];
            }
        }
    }
}

/// Appends one output message in `proto` (CSV lines end with `\n`).
pub fn encode(proto: Proto, msg: &OutputMsg, out: &mut Vec<u8>) {
    match proto {
        Proto::Csv => {
            csv::encode_output(msg, out);
            out.push(b'\n');
        }
        Proto::Binary => binary::encode_output(msg, out),
    }
}

/// Decodes one output message as [`encode`] wrote it, in either protocol ([`Proto::detect`]):
/// one binary message, or one CSV line (its trailing `\n` optional). For subscribers and tools;
/// the error says why the payload is not such a message.
pub fn decode_output(payload: &[u8]) -> Result<OutputMsg, String> {
    match Proto::detect(payload) {
        Proto::Binary => {
            binary::decode_output(payload).map_err(|e| format!("bad binary message: {e}"))
        }
        Proto::Csv => {
            let line = payload.strip_suffix(b"\n").unwrap_or(payload);
            if line.contains(&b'\n') {
                return Err("more than one CSV line".to_string());
            }
            csv::decode_output(line).map_err(|e| {
                format!(
                    "bad CSV line {:?}: {e}",
                    String::from_utf8_lossy(&line[..line.len().min(80)])
                )
            })
        }
    }
}

/// Appends one output message as a TCP frame (u32 big-endian length, then the message).
pub fn encode_framed(proto: Proto, msg: &OutputMsg, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    encode(proto, msg, out);
    let len = (out.len() - start - FRAME_HEADER) as u32;
    out[start..start + FRAME_HEADER].copy_from_slice(&len.to_be_bytes());
}

/// Result of looking for one complete frame at the start of a receive buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete frame: the payload is `buf[FRAME_HEADER..FRAME_HEADER + len]`.
    Complete(usize),
    /// More bytes are needed.
    Partial,
    /// The header announces more than [`MAX_FRAME`] bytes: the stream cannot be trusted.
    TooLarge(u32),
}

/// Looks for one complete frame at the start of `buf`.
pub fn next_frame(buf: &[u8]) -> Frame {
    if buf.len() < FRAME_HEADER {
        return Frame::Partial;
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len as usize > MAX_FRAME {
        return Frame::TooLarge(len);
    }
    if buf.len() < FRAME_HEADER + len as usize {
        Frame::Partial
    } else {
        Frame::Complete(len as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames() {
        assert_eq!(next_frame(&[0, 0]), Frame::Partial);
        assert_eq!(next_frame(&[0, 0, 0, 2, b'F']), Frame::Partial);
        assert_eq!(next_frame(&[0, 0, 0, 2, b'F', b'\n']), Frame::Complete(2));
        assert_eq!(next_frame(&[0, 1, 0, 1]), Frame::TooLarge(65_537));
        assert_eq!(next_frame(&[0, 1, 0, 0]), Frame::Partial);
    }

    #[test]
    fn detection() {
        assert_eq!(Proto::detect(b"N, 1"), Proto::Csv);
        assert_eq!(Proto::detect(&[binary::MAGIC, b'F']), Proto::Binary);
        assert_eq!(Proto::detect(b""), Proto::Csv);
    }

    fn decode_all(payload: &[u8]) -> (Vec<InputMsg>, Vec<String>) {
        let (mut msgs, mut errs) = (Vec::new(), Vec::new());
        decode_payload(payload, |m| msgs.push(m), |e| errs.push(e));
        (msgs, errs)
    }

    #[test]
    fn both_cancel_forms_split_by_the_payload_length() {
        use engine_core::{CancelOrder, NewOrder, Side, Symbol};
        let short = CancelOrder {
            user: 1,
            symbol: None,
            user_order_id: 9,
        };
        let mut c10 = Vec::new();
        binary::encode_short_cancel(1, 9, &mut c10);
        assert_eq!(decode_all(&c10), (vec![InputMsg::Cancel(short)], vec![]));
        let long = CancelOrder {
            symbol: Some(Symbol::new(b"IBM").unwrap()),
            ..short
        };
        let mut c18 = Vec::new();
        binary::encode_input(&InputMsg::Cancel(long), &mut c18);
        assert_eq!(decode_all(&c18), (vec![InputMsg::Cancel(long)], vec![]));
        // Several messages back to back: a short cancel at the end, a long one inside.
        let order = InputMsg::New(NewOrder {
            user: 1,
            symbol: Symbol::new(b"IBM").unwrap(),
            symbol_too_long: false,
            price: 10,
            qty: 5,
            side: Side::Buy,
            user_order_id: 9,
        });
        let mut several = Vec::new();
        binary::encode_input(&order, &mut several);
        several.extend_from_slice(&c18);
        several.extend_from_slice(&c10);
        assert_eq!(
            decode_all(&several),
            (
                vec![order, InputMsg::Cancel(long), InputMsg::Cancel(short)],
                vec![]
            )
        );
        // Truncated: one byte short of either form, and one beyond the short form.
        for n in [binary::CANCEL_SHORT_LEN - 1, binary::CANCEL_SHORT_LEN + 1] {
            let (msgs, errs) = decode_all(&c18[..n]);
            assert!(msgs.is_empty());
            assert_eq!(
                errs,
                [format!(
                    "truncated binary message: type 'C', {n} of {} or {} bytes",
                    binary::CANCEL_SHORT_LEN,
                    binary::CANCEL_LEN
                )]
            );
        }
        assert_eq!(c10.len(), binary::CANCEL_SHORT_LEN);
        assert_eq!(c18.len(), binary::CANCEL_LEN);
    }

    proptest! {
        // Arbitrary bytes, framed or not, never panic the decoders.
        #[test]
        fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = next_frame(&bytes);
            decode_payload(&bytes, |_| {}, |_| {});
            let mut with_magic = vec![binary::MAGIC];
            with_magic.extend_from_slice(&bytes);
            decode_payload(&with_magic, |_| {}, |_| {});
        }
    }
}
