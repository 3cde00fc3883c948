//! CSV codec:
//!
//! - `decode_input(line) -> Result<Option<InputMsg>, CsvError>`: one line without its newline
//!   (a trailing `\r`/`\n` is tolerated); `Ok(None)` for blank lines and `#` comments.
//! - `encode_output(msg, out)`: appends one output line *without* a newline to `out`.
//! - `encode_input` / `decode_output`: the other direction, for clients, tools and tests.
//!
//! Fields are separated by commas; spaces and tabs around a field are ignored. Output uses
//! `", "` between fields (`A, IBM, 1, 1`). Symbols are raw bytes: an empty symbol field on a
//! new order decodes to the empty symbol (the engine rejects it with code 1), one longer than
//! 8 bytes sets `NewOrder::symbol_too_long`. On a cancel an empty symbol field means "no
//! symbol", and a symbol longer than 8 bytes is a decoding error (no resting order can have
//! it, and the message model cannot carry it).

use crate::message::{
    CancelOrder, InputMsg, NewOrder, OutputMsg, RejectReason, Side, Symbol, SYMBOL_LEN,
};

/// Why a CSV line could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CsvError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, CsvError> {
    Err(CsvError(msg.into()))
}

/// Strips a trailing newline (`\n`, `\r\n`, or stray `\r`s).
fn strip_eol(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b'\n'] = line {
        line = rest;
    }
    line
}

/// Trims spaces and tabs on both sides.
fn trim(mut f: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = f {
        f = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = f {
        f = rest;
    }
    f
}

/// Splits a line into at most `N` trimmed fields; returns the field count (which may exceed
/// `N`: the caller reports a wrong count).
fn split<'a, const N: usize>(line: &'a [u8], fields: &mut [&'a [u8]; N]) -> usize {
    let mut n = 0;
    for f in line.split(|&b| b == b',') {
        if n < N {
            fields[n] = trim(f);
        }
        n += 1;
    }
    n
}

/// Shows a field in an error message.
fn show(f: &[u8]) -> String {
    String::from_utf8_lossy(f).into_owned()
}

/// Parses an unsigned 32-bit decimal field (digits only).
fn parse_u32(name: &str, f: &[u8]) -> Result<u32, CsvError> {
    if f.is_empty() {
        return err(format!("{name} is empty"));
    }
    let mut v: u32 = 0;
    for &b in f {
        if !b.is_ascii_digit() {
            return err(format!("{name} {:?} is not an unsigned number", show(f)));
        }
        v = match v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u32::from(b - b'0')))
        {
            Some(v) => v,
            None => return err(format!("{name} {:?} does not fit in 32 bits", show(f))),
        };
    }
    Ok(v)
}

fn parse_side(f: &[u8]) -> Result<Side, CsvError> {
    match f {
        [b] => Side::from_byte(*b),
        _ => None,
    }
    .map_or_else(|| err(format!("side {:?} is not B or S", show(f))), Ok)
}

fn parse_symbol(f: &[u8]) -> Result<Symbol, CsvError> {
    if f.len() > SYMBOL_LEN {
        return err(format!("symbol {:?} is longer than 8 bytes", show(f)));
    }
    Symbol::new(f).map_or_else(|| err("symbol contains a NUL byte"), Ok)
}

fn count_error<T>(kind: &str, expected: &str, got: usize) -> Result<T, CsvError> {
    err(format!("{kind} needs {expected} fields, got {got}"))
}

/// Decodes one CSV input line.
pub fn decode_input(line: &[u8]) -> Result<Option<InputMsg>, CsvError> {
    let line = trim(strip_eol(line));
    if line.is_empty() || line[0] == b'#' {
        return Ok(None);
    }
    let mut f: [&[u8]; 7] = [&[]; 7];
    let n = split(line, &mut f);
    match f[0] {
        b"N" => {
            if n != 7 {
                return count_error("new order", "7", n);
            }
            let user = parse_u32("user", f[1])?;
            let sym = f[2];
            let too_long = sym.len() > SYMBOL_LEN;
            let symbol = parse_symbol(&sym[..sym.len().min(SYMBOL_LEN)])?;
            Ok(Some(InputMsg::New(NewOrder {
                user,
                symbol,
                symbol_too_long: too_long,
                price: parse_u32("price", f[3])?,
                qty: parse_u32("quantity", f[4])?,
                side: parse_side(f[5])?,
                user_order_id: parse_u32("user order id", f[6])?,
            })))
        }
        b"C" => {
            if !(n == 3 || n == 4) {
                return count_error("cancel", "3 or 4", n);
            }
            let user = parse_u32("user", f[1])?;
            let user_order_id = parse_u32("user order id", f[2])?;
            let symbol = if n == 4 && !f[3].is_empty() {
                Some(parse_symbol(f[3])?)
            } else {
                None
            };
            Ok(Some(InputMsg::Cancel(CancelOrder {
                user,
                user_order_id,
                symbol,
            })))
        }
        b"F" => {
            if n != 1 {
                return count_error("flush", "1", n);
            }
            Ok(Some(InputMsg::Flush))
        }
        other => err(format!("unknown message type {:?}", show(other))),
    }
}

/// "00" to "99": two digits per division when formatting numbers.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Longest line the encoders write: `T, ` + 8-byte symbol + 6 × (`, ` + 10 digits) = 83.
const MAX_LINE: usize = 96;

/// One line assembled on the stack and appended to the output in one go (output encoding is
/// on the hot path: one bounds-checked `Vec` append per field costs more than the matching).
struct Line {
    buf: [u8; MAX_LINE],
    len: usize,
}

impl Line {
    #[inline]
    fn new(kind: u8) -> Line {
        let mut buf = [0u8; MAX_LINE];
        buf[0] = kind;
        Line { buf, len: 1 }
    }

    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    #[inline]
    fn sep(&mut self) {
        self.bytes(b", ");
    }

    #[inline]
    fn sym(&mut self, s: &Symbol) {
        self.sep();
        self.bytes(s.as_bytes());
    }

    #[inline]
    fn byte(&mut self, b: u8) {
        self.sep();
        self.bytes(&[b]);
    }

    /// `, ` and the decimal form of `v`.
    #[inline]
    fn num(&mut self, mut v: u32) {
        self.sep();
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        while v >= 100 {
            let pair = (v % 100) as usize * 2;
            v /= 100;
            i -= 2;
            digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        }
        if v >= 10 {
            let pair = v as usize * 2;
            i -= 2;
            digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        } else {
            i -= 1;
            digits[i] = b'0' + v as u8;
        }
        self.bytes(&digits[i..]);
    }

    #[inline]
    fn append_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.buf[..self.len]);
    }
}

/// Appends the CSV form of an output message (no newline).
#[inline]
pub fn encode_output(msg: &OutputMsg, out: &mut Vec<u8>) {
    let line = match *msg {
        OutputMsg::Ack {
            symbol,
            user,
            user_order_id,
        } => {
            let mut l = Line::new(b'A');
            l.sym(&symbol);
            l.num(user);
            l.num(user_order_id);
            l
        }
        OutputMsg::CancelAck {
            symbol,
            user,
            user_order_id,
        } => {
            let mut l = Line::new(b'C');
            l.sym(&symbol);
            l.num(user);
            l.num(user_order_id);
            l
        }
        OutputMsg::Trade {
            symbol,
            buy_user,
            buy_order_id,
            sell_user,
            sell_order_id,
            price,
            qty,
        } => {
            let mut l = Line::new(b'T');
            l.sym(&symbol);
            for v in [buy_user, buy_order_id, sell_user, sell_order_id, price, qty] {
                l.num(v);
            }
            l
        }
        OutputMsg::TopOfBook {
            symbol,
            side,
            level,
        } => {
            let mut l = Line::new(b'B');
            l.sym(&symbol);
            l.byte(side.as_byte());
            match level {
                Some((price, qty)) => {
                    l.num(price);
                    l.num(qty);
                }
                None => l.bytes(b", -, -"),
            }
            l
        }
        OutputMsg::Reject {
            symbol,
            user,
            user_order_id,
            reason,
        } => {
            let mut l = Line::new(b'R');
            l.sym(&symbol);
            l.num(user);
            l.num(user_order_id);
            l.num(u32::from(reason.code()));
            l
        }
    };
    line.append_to(out);
}

/// Appends the CSV form of an input message (no newline). A cancel whose symbol is `Some` but
/// empty is written without a symbol, which is what it means to the engine.
pub fn encode_input(msg: &InputMsg, out: &mut Vec<u8>) {
    let line = match msg {
        InputMsg::New(o) => {
            let mut l = Line::new(b'N');
            l.num(o.user);
            l.sym(&o.symbol);
            l.num(o.price);
            l.num(o.qty);
            l.byte(o.side.as_byte());
            l.num(o.user_order_id);
            l
        }
        InputMsg::Cancel(c) => {
            let mut l = Line::new(b'C');
            l.num(c.user);
            l.num(c.user_order_id);
            if let Some(s) = c.symbol.filter(|s| !s.is_empty()) {
                l.sym(&s);
            }
            l
        }
        InputMsg::Flush => Line::new(b'F'),
    };
    line.append_to(out);
}

/// Decodes one CSV output line.
pub fn decode_output(line: &[u8]) -> Result<OutputMsg, CsvError> {
    let line = trim(strip_eol(line));
    let mut f: [&[u8]; 8] = [&[]; 8];
    let n = split(line, &mut f);
    let expect = |kind: &str, want: usize| {
        if n == want {
            Ok(())
        } else {
            count_error(kind, &want.to_string(), n)
        }
    };
    match f[0] {
        b"A" | b"C" => {
            expect(if f[0] == b"A" { "ack" } else { "cancel ack" }, 4)?;
            let symbol = parse_symbol(f[1])?;
            let user = parse_u32("user", f[2])?;
            let user_order_id = parse_u32("user order id", f[3])?;
            Ok(if f[0] == b"A" {
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
            })
        }
        b"T" => {
            expect("trade", 8)?;
            Ok(OutputMsg::Trade {
                symbol: parse_symbol(f[1])?,
                buy_user: parse_u32("buy user", f[2])?,
                buy_order_id: parse_u32("buy order id", f[3])?,
                sell_user: parse_u32("sell user", f[4])?,
                sell_order_id: parse_u32("sell order id", f[5])?,
                price: parse_u32("price", f[6])?,
                qty: parse_u32("quantity", f[7])?,
            })
        }
        b"B" => {
            expect("top of book", 5)?;
            let symbol = parse_symbol(f[1])?;
            let side = parse_side(f[2])?;
            let level = if f[3] == b"-" && f[4] == b"-" {
                None
            } else {
                Some((parse_u32("price", f[3])?, parse_u32("quantity", f[4])?))
            };
            Ok(OutputMsg::TopOfBook {
                symbol,
                side,
                level,
            })
        }
        b"R" => {
            expect("reject", 5)?;
            let code = parse_u32("reason code", f[4])?;
            let reason = u8::try_from(code)
                .ok()
                .and_then(RejectReason::from_code)
                .map_or_else(|| err(format!("unknown reason code {code}")), Ok)?;
            Ok(OutputMsg::Reject {
                symbol: parse_symbol(f[1])?,
                user: parse_u32("user", f[2])?,
                user_order_id: parse_u32("user order id", f[3])?,
                reason,
            })
        }
        other => err(format!("unknown message type {:?}", show(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::new(s.as_bytes()).unwrap()
    }

    fn out(msg: &OutputMsg) -> String {
        let mut v = Vec::new();
        encode_output(msg, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn decodes_new_order_with_spaces_lower_case_side_and_crlf() {
        let m = decode_input(b"  N ,1,IBM , 10000,\t100, b, 7 \r\n").unwrap();
        assert_eq!(
            m,
            Some(InputMsg::New(NewOrder {
                user: 1,
                symbol: sym("IBM"),
                symbol_too_long: false,
                price: 10000,
                qty: 100,
                side: Side::Buy,
                user_order_id: 7,
            }))
        );
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        for l in [&b""[..], b"   ", b"\r\n", b"# N, 1, IBM", b"  #x"] {
            assert_eq!(decode_input(l), Ok(None), "{l:?}");
        }
    }

    #[test]
    fn cancel_with_and_without_symbol() {
        let c = |s| {
            Some(InputMsg::Cancel(CancelOrder {
                user: 1,
                user_order_id: 2,
                symbol: s,
            }))
        };
        assert_eq!(decode_input(b"C, 1, 2"), Ok(c(None)));
        assert_eq!(decode_input(b"C, 1, 2, "), Ok(c(None)));
        assert_eq!(decode_input(b"C, 1, 2, IBM"), Ok(c(Some(sym("IBM")))));
        assert_eq!(decode_input(b"F"), Ok(Some(InputMsg::Flush)));
    }

    #[test]
    fn long_and_empty_symbols_reach_the_engine_on_new_orders() {
        let Ok(Some(InputMsg::New(o))) = decode_input(b"N, 1, ABCDEFGHIJ, 1, 1, S, 1") else {
            panic!()
        };
        assert!(o.symbol_too_long);
        assert_eq!(o.symbol, sym("ABCDEFGH"));
        let Ok(Some(InputMsg::New(o))) = decode_input(b"N, 1, , 1, 1, S, 1") else {
            panic!()
        };
        assert!(o.symbol.is_empty() && !o.symbol_too_long);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = |l: &[u8]| decode_input(l).unwrap_err().0;
        assert!(e(b"N, 1, IBM, 10, 100, B").contains("7 fields, got 6"));
        assert!(e(b"N, x, IBM, 10, 100, B, 1").contains("user \"x\""));
        assert!(e(b"N, 1, IBM, -10, 100, B, 1").contains("price"));
        assert!(e(b"N, 1, IBM, 10, 4294967296, B, 1").contains("32 bits"));
        assert!(e(b"N, 1, IBM, 10, 100, X, 1").contains("side"));
        assert!(e(b"N, 1, IBM, 10, 100, B, ").contains("user order id is empty"));
        assert!(e(b"C, 1").contains("3 or 4"));
        assert!(e(b"C, 1, 2, ABCDEFGHIJ").contains("longer than 8"));
        assert!(e(b"F, 1").contains("flush"));
        assert!(e(b"Q, 1").contains("unknown message type"));
    }

    #[test]
    fn numbers_are_formatted_exactly() {
        for v in [
            0u32,
            7,
            9,
            10,
            42,
            99,
            100,
            101,
            999,
            1000,
            65535,
            1 << 31,
            u32::MAX,
        ] {
            let mut l = Line::new(b'X');
            l.num(v);
            let mut out = Vec::new();
            l.append_to(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), format!("X, {v}"));
        }
    }

    #[test]
    fn output_lines_match_the_spec() {
        let s = sym("IBM");
        assert_eq!(
            out(&OutputMsg::Ack {
                symbol: s,
                user: 1,
                user_order_id: 1
            }),
            "A, IBM, 1, 1"
        );
        assert_eq!(
            out(&OutputMsg::Trade {
                symbol: s,
                buy_user: 1,
                buy_order_id: 3,
                sell_user: 2,
                sell_order_id: 102,
                price: 11,
                qty: 100
            }),
            "T, IBM, 1, 3, 2, 102, 11, 100"
        );
        assert_eq!(
            out(&OutputMsg::TopOfBook {
                symbol: s,
                side: Side::Sell,
                level: None
            }),
            "B, IBM, S, -, -"
        );
        assert_eq!(
            out(&OutputMsg::TopOfBook {
                symbol: s,
                side: Side::Buy,
                level: Some((4294967295, 0))
            }),
            "B, IBM, B, 4294967295, 0"
        );
        assert_eq!(
            out(&OutputMsg::Reject {
                symbol: Symbol::EMPTY,
                user: 1,
                user_order_id: 9,
                reason: RejectReason::OrderNotFound
            }),
            "R, , 1, 9, 4"
        );
        assert_eq!(
            out(&OutputMsg::CancelAck {
                symbol: s,
                user: 2,
                user_order_id: 101
            }),
            "C, IBM, 2, 101"
        );
    }
}
