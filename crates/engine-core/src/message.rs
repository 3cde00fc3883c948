//! The message model shared by the CSV and binary codecs and the engine.

use std::fmt;

/// User id (u32 on the wire).
pub type UserId = u32;
/// The user's own order id; an order is identified by (user, user order id).
pub type OrderId = u32;
/// Price in ticks; 0 on a new order means a market order.
pub type Price = u32;
/// Quantity.
pub type Qty = u32;

/// Opaque id of the client (connection) that sent a message; resting orders remember it so
/// that trades and cancels can be routed to their owners. Single-client users pass 0.
///
/// It lives with the messages rather than with the engine because the order nodes (`arena`)
/// store it too, and the arena must not depend on the engine that uses it.
pub type ClientId = u32;

/// Longest symbol the protocols can carry.
pub const SYMBOL_LEN: usize = 8;

/// A symbol of 0 to 8 bytes, NUL padded, compared byte-wise (so books sort in byte order).
///
/// An empty symbol is representable because rejects of cancels without a symbol carry one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Symbol {
    bytes: [u8; SYMBOL_LEN],
}

impl Symbol {
    /// The empty symbol.
    pub const EMPTY: Symbol = Symbol {
        bytes: [0; SYMBOL_LEN],
    };

    /// Builds a symbol from at most 8 bytes; `None` when longer or when it contains a NUL.
    pub fn new(s: &[u8]) -> Option<Symbol> {
        if s.len() > SYMBOL_LEN || s.contains(&0) {
            return None;
        }
        let mut bytes = [0; SYMBOL_LEN];
        bytes[..s.len()].copy_from_slice(s);
        Some(Symbol { bytes })
    }

    /// Builds a symbol from the 8-byte NUL-padded wire field (bytes after the first NUL are
    /// ignored).
    pub fn from_padded(field: [u8; SYMBOL_LEN]) -> Symbol {
        let len = field.iter().position(|&b| b == 0).unwrap_or(SYMBOL_LEN);
        let mut bytes = [0; SYMBOL_LEN];
        bytes[..len].copy_from_slice(&field[..len]);
        Symbol { bytes }
    }

    /// The 8-byte NUL-padded wire form.
    pub fn padded(&self) -> [u8; SYMBOL_LEN] {
        self.bytes
    }

    /// The symbol's bytes without padding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len()]
    }

    /// Length in bytes (0 to 8).
    pub fn len(&self) -> usize {
        self.bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(SYMBOL_LEN)
    }

    /// True for the empty symbol.
    pub fn is_empty(&self) -> bool {
        self.bytes[0] == 0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Symbol({self})")
    }
}

/// Order side.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Side {
    /// Bid (`B`).
    Buy,
    /// Ask (`S`).
    Sell,
}

impl Side {
    /// The wire character: `B` or `S`.
    pub fn as_byte(self) -> u8 {
        match self {
            Side::Buy => b'B',
            Side::Sell => b'S',
        }
    }

    /// Parses `B`/`S` (either case).
    pub fn from_byte(b: u8) -> Option<Side> {
        match b {
            b'B' | b'b' => Some(Side::Buy),
            b'S' | b's' => Some(Side::Sell),
            _ => None,
        }
    }
}

/// A new limit (price > 0) or market (price 0) order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NewOrder {
    /// Owner.
    pub user: UserId,
    /// Book it goes to. A symbol that is empty is rejected with code 1. A symbol longer than
    /// 8 bytes cannot be represented: the decoders report it via `symbol_too_long` so the engine
    /// rejects it (code 1) with the first 8 bytes as the symbol.
    pub symbol: Symbol,
    /// Set by a decoder when the symbol given was longer than 8 bytes (`symbol` then holds the
    /// first 8 bytes).
    pub symbol_too_long: bool,
    /// Limit price in ticks, 0 for a market order.
    pub price: Price,
    /// Quantity; 0 is rejected with code 2.
    pub qty: Qty,
    /// Buy or sell.
    pub side: Side,
    /// The user's order id.
    pub user_order_id: OrderId,
}

/// A cancel by (user, user order id), optionally naming the symbol.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CancelOrder {
    /// Owner.
    pub user: UserId,
    /// The user's order id.
    pub user_order_id: OrderId,
    /// The symbol, when the client gave one. A cancel whose symbol does not match the resting
    /// order's is a cancel of an unknown order.
    pub symbol: Option<Symbol>,
}

/// An input message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InputMsg {
    /// `N`.
    New(NewOrder),
    /// `C`.
    Cancel(CancelOrder),
    /// `F`: cancel every resting order in every book.
    Flush,
}

/// Reject reason codes, as on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum RejectReason {
    /// 1.
    UnknownSymbol = 1,
    /// 2.
    InvalidQuantity = 2,
    /// 3.
    InvalidPrice = 3,
    /// 4.
    OrderNotFound = 4,
    /// 5.
    DuplicateOrderId = 5,
    /// 6.
    PoolExhausted = 6,
    /// 7.
    Unauthorized = 7,
    /// 8.
    Throttled = 8,
    /// 9.
    BookFull = 9,
    /// 10.
    InvalidOrderId = 10,
}

impl RejectReason {
    /// The wire code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Parses a wire code.
    pub fn from_code(code: u8) -> Option<RejectReason> {
        use RejectReason::*;
        Some(match code {
            1 => UnknownSymbol,
            2 => InvalidQuantity,
            3 => InvalidPrice,
            4 => OrderNotFound,
            5 => DuplicateOrderId,
            6 => PoolExhausted,
            7 => Unauthorized,
            8 => Throttled,
            9 => BookFull,
            10 => InvalidOrderId,
            _ => return None,
        })
    }
}

/// An output message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OutputMsg {
    /// `A`: a new order was accepted.
    Ack {
        /// Book.
        symbol: Symbol,
        /// Owner.
        user: UserId,
        /// The user's order id.
        user_order_id: OrderId,
    },
    /// `C` (CSV) / `X` (binary): a resting order was cancelled.
    CancelAck {
        /// Book.
        symbol: Symbol,
        /// Owner.
        user: UserId,
        /// The user's order id.
        user_order_id: OrderId,
    },
    /// `T`: a trade at the resting order's price.
    Trade {
        /// Book.
        symbol: Symbol,
        /// Buyer.
        buy_user: UserId,
        /// Buyer's order id.
        buy_order_id: OrderId,
        /// Seller.
        sell_user: UserId,
        /// Seller's order id.
        sell_order_id: OrderId,
        /// Execution price.
        price: Price,
        /// Executed quantity.
        qty: Qty,
    },
    /// `B`: the best level of one side changed; `None` when that side became empty.
    TopOfBook {
        /// Book.
        symbol: Symbol,
        /// Side whose top changed.
        side: Side,
        /// (best price, total quantity at it), or `None` for an empty side.
        level: Option<(Price, Qty)>,
    },
    /// `R`: the message was rejected.
    Reject {
        /// Symbol as given (empty when none was given).
        symbol: Symbol,
        /// User as given.
        user: UserId,
        /// Order id as given.
        user_order_id: OrderId,
        /// Why.
        reason: RejectReason,
    },
}
