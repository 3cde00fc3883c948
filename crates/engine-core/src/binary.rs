//! Binary codec (big-endian, packed, magic 0x4D):
//!
//! - `MAGIC`, `decode_input(bytes) -> Result<InputMsg, BinaryError>` for exactly one message,
//! - `encode_output(msg, out)` appends one message,
//! - `encode_input` / `decode_output`: the other direction, for clients, tools and tests.
//!
//! Layouts (after the magic byte and the type byte), from the spec:
//! `N` user u32, symbol `[u8; 8]`, price u32, qty u32, side u8, userOrderId u32 (27 bytes);
//! `C` user u32, symbol `[u8; 8]`, userOrderId u32 (18, the guide's Zig engine), or the short
//! cancel of the C engine (and later Zig versions) user u32, userOrderId u32 (10, no symbol),
//! told apart by length; `F` nothing (2);
//! `A`/`X` symbol `[u8; 8]`, user u32, userOrderId u32 (18);
//! `T` symbol `[u8; 8]`, buyUser, buyOid, sellUser, sellOid, price, qty, all u32 (34);
//! `B` symbol `[u8; 8]`, side u8, price u32, qty u32, one zero pad byte (20; empty side: 0, 0);
//! `R` symbol `[u8; 8]`, user u32, userOrderId u32, reason u8 (19).
//! A cancel's all-NUL symbol field means "no symbol given".

use crate::message::{
    CancelOrder, InputMsg, NewOrder, OutputMsg, RejectReason, Side, Symbol, SYMBOL_LEN,
};

/// First byte of every binary message.
pub const MAGIC: u8 = 0x4D;

/// Total length of a new order.
pub const NEW_ORDER_LEN: usize = 27;
/// Total length of a cancel that carries a symbol (the guide's Zig engine).
pub const CANCEL_LEN: usize = 18;
/// Total length of a cancel without a symbol (the C engine, later Zig versions): magic, `C`,
/// u32 user, u32 userOrderId.
pub const CANCEL_SHORT_LEN: usize = 10;
/// Total length of a flush.
pub const FLUSH_LEN: usize = 2;
/// Total length of an ack or a cancel ack.
pub const ACK_LEN: usize = 18;
/// Total length of a trade.
pub const TRADE_LEN: usize = 34;
/// Total length of a top-of-book message.
pub const TOP_OF_BOOK_LEN: usize = 20;
/// Total length of a reject.
pub const REJECT_LEN: usize = 19;

/// Why a binary message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BinaryError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, BinaryError> {
    Err(BinaryError(msg.into()))
}

/// Reads fields in order from a message whose length has been checked.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> u8 {
        let v = self.bytes[self.pos];
        self.pos += 1;
        v
    }

    fn u32(&mut self) -> u32 {
        let mut b = [0; 4];
        b.copy_from_slice(&self.bytes[self.pos..self.pos + 4]);
        self.pos += 4;
        u32::from_be_bytes(b)
    }

    fn symbol(&mut self) -> Symbol {
        let mut b = [0; SYMBOL_LEN];
        b.copy_from_slice(&self.bytes[self.pos..self.pos + SYMBOL_LEN]);
        self.pos += SYMBOL_LEN;
        Symbol::from_padded(b)
    }

    fn side(&mut self) -> Result<Side, BinaryError> {
        let b = self.u8();
        Side::from_byte(b).map_or_else(|| err(format!("bad side byte 0x{b:02x}")), Ok)
    }
}

/// Checks magic and length; returns the type byte and a reader positioned after it.
/// `expected_len(ty)` gives the message's name and its accepted total lengths.
fn open<'a>(
    bytes: &'a [u8],
    expected_len: impl Fn(u8) -> Option<(&'static str, &'static [usize])>,
) -> Result<(u8, Reader<'a>), BinaryError> {
    if bytes.len() < 2 {
        return err(format!(
            "message too short: {} byte(s), need at least 2",
            bytes.len()
        ));
    }
    if bytes[0] != MAGIC {
        return err(format!("bad magic 0x{:02x}, expected 0x4d", bytes[0]));
    }
    let ty = bytes[1];
    let Some((name, lens)) = expected_len(ty) else {
        return err(format!("unknown message type 0x{ty:02x}"));
    };
    if !lens.contains(&bytes.len()) {
        return err(format!(
            "wrong length for {name}: {} bytes, expected {}",
            bytes.len(),
            describe_lens(lens)
        ));
    }
    Ok((ty, Reader { bytes, pos: 2 }))
}

/// `27`, `10 or 18`.
fn describe_lens(lens: &[usize]) -> String {
    let all: Vec<String> = lens.iter().map(|l| l.to_string()).collect();
    all.join(" or ")
}

/// The accepted total lengths of a binary input message of type `kind` (`N`, `C`, `F`),
/// shortest first; `None` for a type that is not an input message. A cancel has two: with a
/// symbol ([`CANCEL_LEN`]) and without ([`CANCEL_SHORT_LEN`]).
pub fn input_lens(kind: u8) -> Option<&'static [usize]> {
    match kind {
        b'N' => Some(&[NEW_ORDER_LEN]),
        b'C' => Some(&[CANCEL_SHORT_LEN, CANCEL_LEN]),
        b'F' => Some(&[FLUSH_LEN]),
        _ => None,
    }
}

/// Length of the binary input message of type `kind` that starts a buffer of which `available`
/// bytes remain (up to the end of the TCP frame or UDP datagram), or `None` for a type that is
/// not an input message. A frame or datagram tells the two cancels apart by its length: the
/// short cancel is recognised when exactly [`CANCEL_SHORT_LEN`] bytes remain (a lone cancel, as
/// the C engine's clients send, or the last message of a payload); otherwise a cancel is the
/// [`CANCEL_LEN`] form. The result may exceed `available` (the message is truncated).
pub fn input_len(kind: u8, available: usize) -> Option<usize> {
    match kind {
        b'C' if available == CANCEL_SHORT_LEN => Some(CANCEL_SHORT_LEN),
        b'C' => Some(CANCEL_LEN),
        _ => input_lens(kind).map(|l| l[0]),
    }
}

/// Decodes exactly one binary input message.
pub fn decode_input(bytes: &[u8]) -> Result<InputMsg, BinaryError> {
    let (ty, mut r) = open(bytes, |ty| {
        let name = match ty {
            b'N' => "new order",
            b'C' => "cancel",
            _ => "flush",
        };
        input_lens(ty).map(|lens| (name, lens))
    })?;
    Ok(match ty {
        b'N' => InputMsg::New(NewOrder {
            user: r.u32(),
            symbol: r.symbol(),
            symbol_too_long: false,
            price: r.u32(),
            qty: r.u32(),
            side: r.side()?,
            user_order_id: r.u32(),
        }),
        b'C' if bytes.len() == CANCEL_SHORT_LEN => InputMsg::Cancel(CancelOrder {
            user: r.u32(),
            symbol: None,
            user_order_id: r.u32(),
        }),
        b'C' => {
            let user = r.u32();
            let symbol = r.symbol();
            InputMsg::Cancel(CancelOrder {
                user,
                symbol: (!symbol.is_empty()).then_some(symbol),
                user_order_id: r.u32(),
            })
        }
        _ => InputMsg::Flush,
    })
}

#[inline]
fn put_header(out: &mut Vec<u8>, ty: u8) {
    out.extend_from_slice(&[MAGIC, ty]);
}

#[inline]
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

#[inline]
fn put_symbol(out: &mut Vec<u8>, s: &Symbol) {
    out.extend_from_slice(&s.padded());
}

/// Fills a fixed-size output record: header, symbol, then big-endian u32 fields from byte 10.
/// Building the whole record on the stack and appending it once is markedly cheaper on the hot
/// path than one bounds-checked append per field.
#[inline]
fn record<const N: usize>(ty: u8, symbol: &Symbol, fields: &[u32]) -> [u8; N] {
    let mut b = [0u8; N];
    b[0] = MAGIC;
    b[1] = ty;
    b[2..10].copy_from_slice(&symbol.padded());
    for (i, v) in fields.iter().enumerate() {
        b[10 + 4 * i..14 + 4 * i].copy_from_slice(&v.to_be_bytes());
    }
    b
}

/// Appends the binary form of an output message.
#[inline]
pub fn encode_output(msg: &OutputMsg, out: &mut Vec<u8>) {
    match *msg {
        OutputMsg::Ack {
            symbol,
            user,
            user_order_id,
        } => out.extend_from_slice(&record::<ACK_LEN>(b'A', &symbol, &[user, user_order_id])),
        OutputMsg::CancelAck {
            symbol,
            user,
            user_order_id,
        } => out.extend_from_slice(&record::<ACK_LEN>(b'X', &symbol, &[user, user_order_id])),
        OutputMsg::Trade {
            symbol,
            buy_user,
            buy_order_id,
            sell_user,
            sell_order_id,
            price,
            qty,
        } => out.extend_from_slice(&record::<TRADE_LEN>(
            b'T',
            &symbol,
            &[buy_user, buy_order_id, sell_user, sell_order_id, price, qty],
        )),
        OutputMsg::TopOfBook {
            symbol,
            side,
            level,
        } => {
            let (price, qty) = level.unwrap_or((0, 0));
            let mut b = record::<TOP_OF_BOOK_LEN>(b'B', &symbol, &[]);
            b[10] = side.as_byte();
            b[11..15].copy_from_slice(&price.to_be_bytes());
            b[15..19].copy_from_slice(&qty.to_be_bytes());
            out.extend_from_slice(&b);
        }
        OutputMsg::Reject {
            symbol,
            user,
            user_order_id,
            reason,
        } => {
            let mut b = record::<REJECT_LEN>(b'R', &symbol, &[user, user_order_id]);
            b[18] = reason.code();
            out.extend_from_slice(&b);
        }
    }
}

/// Appends the binary form of an input message. The binary form cannot carry a symbol longer
/// than 8 bytes: `symbol_too_long` is not encoded (the 8 bytes held are sent). A cancel is
/// written in the 18-byte form (all-NUL symbol when it has none); see [`encode_short_cancel`].
pub fn encode_input(msg: &InputMsg, out: &mut Vec<u8>) {
    match msg {
        InputMsg::New(o) => {
            put_header(out, b'N');
            put_u32(out, o.user);
            put_symbol(out, &o.symbol);
            put_u32(out, o.price);
            put_u32(out, o.qty);
            out.push(o.side.as_byte());
            put_u32(out, o.user_order_id);
        }
        InputMsg::Cancel(c) => {
            put_header(out, b'C');
            put_u32(out, c.user);
            put_symbol(out, &c.symbol.unwrap_or(Symbol::EMPTY));
            put_u32(out, c.user_order_id);
        }
        InputMsg::Flush => put_header(out, b'F'),
    }
}

/// Appends the 10-byte cancel without a symbol (the C engine's form): magic, `C`, u32 user,
/// u32 userOrderId.
pub fn encode_short_cancel(user: u32, user_order_id: u32, out: &mut Vec<u8>) {
    put_header(out, b'C');
    put_u32(out, user);
    put_u32(out, user_order_id);
}

/// Decodes exactly one binary output message.
pub fn decode_output(bytes: &[u8]) -> Result<OutputMsg, BinaryError> {
    let (ty, mut r) = open(bytes, |ty| match ty {
        b'A' => Some(("ack", &[ACK_LEN])),
        b'X' => Some(("cancel ack", &[ACK_LEN])),
        b'T' => Some(("trade", &[TRADE_LEN])),
        b'B' => Some(("top of book", &[TOP_OF_BOOK_LEN])),
        b'R' => Some(("reject", &[REJECT_LEN])),
        _ => None,
    })?;
    Ok(match ty {
        b'A' | b'X' => {
            let symbol = r.symbol();
            let user = r.u32();
            let user_order_id = r.u32();
            if ty == b'A' {
                OutputMsg::Ack {
                    symbol,
                    user,
                    user_order_id,
                }
            } else {
                OutputMsg::CancelAck {
                    symbol,
                    user,
                    user_order_id,
                }
            }
        }
        b'T' => OutputMsg::Trade {
            symbol: r.symbol(),
            buy_user: r.u32(),
            buy_order_id: r.u32(),
            sell_user: r.u32(),
            sell_order_id: r.u32(),
            price: r.u32(),
            qty: r.u32(),
        },
        b'B' => {
            let symbol = r.symbol();
            let side = r.side()?;
            let price = r.u32();
            let qty = r.u32();
            let pad = r.u8();
            if pad != 0 {
                return err(format!("top of book pad byte is 0x{pad:02x}, expected 0"));
            }
            OutputMsg::TopOfBook {
                symbol,
                side,
                // Price 0 never rests (it means "market"), so (0, 0) is unambiguous.
                level: (price != 0 || qty != 0).then_some((price, qty)),
            }
        }
        _ => {
            let symbol = r.symbol();
            let user = r.u32();
            let user_order_id = r.u32();
            let code = r.u8();
            let Some(reason) = RejectReason::from_code(code) else {
                return err(format!("unknown reject reason code {code}"));
            };
            OutputMsg::Reject {
                symbol,
                user,
                user_order_id,
                reason,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_order_layout_is_exact() {
        let msg = InputMsg::New(NewOrder {
            user: 1,
            symbol: Symbol::new(b"IBM").unwrap(),
            symbol_too_long: false,
            price: 10000,
            qty: 100,
            side: Side::Buy,
            user_order_id: 7,
        });
        let mut v = Vec::new();
        encode_input(&msg, &mut v);
        let expected: Vec<u8> = [
            &[0x4D, b'N'][..],
            &[0, 0, 0, 1],
            b"IBM\0\0\0\0\0",
            &10000u32.to_be_bytes(),
            &[0, 0, 0, 100],
            b"B",
            &[0, 0, 0, 7],
        ]
        .concat();
        assert_eq!(v, expected);
        assert_eq!(decode_input(&v), Ok(msg));
    }

    #[test]
    fn both_cancel_forms_decode() {
        // The C engine's 10-byte cancel: no symbol.
        let short = [0x4D, b'C', 0, 0, 0, 7, 0, 0, 1, 2];
        let want = InputMsg::Cancel(CancelOrder {
            user: 7,
            symbol: None,
            user_order_id: 258,
        });
        assert_eq!(decode_input(&short), Ok(want));
        let mut v = Vec::new();
        encode_short_cancel(7, 258, &mut v);
        assert_eq!(v, short);
        assert_eq!(v.len(), CANCEL_SHORT_LEN);
        // The guide's Zig engine's 18-byte cancel, with and without a symbol.
        let long: Vec<u8> = [
            &[0x4D, b'C', 0, 0, 0, 7][..],
            b"IBM\0\0\0\0\0",
            &[0, 0, 1, 2],
        ]
        .concat();
        assert_eq!(long.len(), CANCEL_LEN);
        assert_eq!(
            decode_input(&long),
            Ok(InputMsg::Cancel(CancelOrder {
                user: 7,
                symbol: Some(Symbol::new(b"IBM").unwrap()),
                user_order_id: 258,
            }))
        );
        let mut no_symbol = long.clone();
        no_symbol[6..14].fill(0);
        assert_eq!(decode_input(&no_symbol), Ok(want));
        // Splitting: the short form only when exactly 10 bytes remain.
        assert_eq!(input_len(b'C', 10), Some(CANCEL_SHORT_LEN));
        assert_eq!(input_len(b'C', 18), Some(CANCEL_LEN));
        assert_eq!(input_len(b'C', 9), Some(CANCEL_LEN));
        assert_eq!(input_len(b'C', 40), Some(CANCEL_LEN));
        assert_eq!(input_len(b'N', 10), Some(NEW_ORDER_LEN));
        assert_eq!(input_len(b'F', 10), Some(FLUSH_LEN));
        assert_eq!(input_len(b'Z', 10), None);
    }

    #[test]
    fn output_lengths_match_the_spec() {
        let s = Symbol::new(b"IBM").unwrap();
        let cases = [
            (
                OutputMsg::Ack {
                    symbol: s,
                    user: 1,
                    user_order_id: 2,
                },
                ACK_LEN,
            ),
            (
                OutputMsg::TopOfBook {
                    symbol: s,
                    side: Side::Sell,
                    level: None,
                },
                TOP_OF_BOOK_LEN,
            ),
            (
                OutputMsg::Reject {
                    symbol: s,
                    user: 1,
                    user_order_id: 2,
                    reason: RejectReason::BookFull,
                },
                REJECT_LEN,
            ),
        ];
        for (msg, len) in cases {
            let mut v = Vec::new();
            encode_output(&msg, &mut v);
            assert_eq!(v.len(), len, "{msg:?}");
            assert_eq!(decode_output(&v), Ok(msg));
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let e = |b: &[u8]| decode_input(b).unwrap_err().0;
        assert!(e(b"").contains("too short"));
        assert!(e(b"XN").contains("bad magic"));
        assert!(e(b"MZ").contains("unknown message type 0x5a"));
        assert!(e(b"MN\0").contains("wrong length for new order: 3 bytes, expected 27"));
        assert!(e(b"MF\0").contains("wrong length for flush"));
        assert!(e(b"MC\0\0\0\x01\0\0\0")
            .contains("wrong length for cancel: 9 bytes, expected 10 or 18"));
        assert!(e(b"MC\0\0\0\x01\0\0\0\x02\0")
            .contains("wrong length for cancel: 11 bytes, expected 10 or 18"));
        let mut bad_side = vec![0u8; NEW_ORDER_LEN];
        bad_side[0] = MAGIC;
        bad_side[1] = b'N';
        bad_side[22] = b'Q';
        assert!(e(&bad_side).contains("bad side byte 0x51"));
        let mut r = vec![0u8; REJECT_LEN];
        r[0] = MAGIC;
        r[1] = b'R';
        r[18] = 42;
        assert!(decode_output(&r).unwrap_err().0.contains("reason code 42"));
    }
}
