//! The multi-symbol engine: one order book per symbol, created on first use.
//!
//! The server drives it through `Engine::new`, `Engine::process`,
//! `Engine::cancel_client_orders`, `Engine::owns_order`, the `Sink` trait and the `Route` enum;
//! changing one of these means changing `engine-server` with it.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::arena::{Arena, Node, NIL};
use crate::book::{
    crosses, find_level, key_price, level_key, side_at, side_index, unlink_in_level, Book, Top,
};
use crate::index::OrderIndex;
use crate::message::{
    CancelOrder, InputMsg, NewOrder, OrderId, OutputMsg, Price, Qty, RejectReason, Side, Symbol,
    UserId,
};

/// Opaque id of the client (connection) that sent a message; resting orders remember it so
/// that trades and cancels can be routed to their owners. Single-client users pass 0.
pub type ClientId = u32;

/// Where an output message goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Route {
    /// To the client that sent the message being processed (acks, rejects, cancel acks of its
    /// own cancels).
    Origin,
    /// To one specific client: the owner of a resting order cancelled by a flush or a
    /// disconnect.
    Client(ClientId),
    /// A trade: to the buyer's and the seller's clients (once if they are the same client).
    Trade {
        /// Client of the buy order.
        buyer: ClientId,
        /// Client of the sell order.
        seller: ClientId,
    },
    /// Top of book: to the client that sent the message and to the market-data feed.
    MarketData,
}

/// Receives the engine's output, in order.
pub trait Sink {
    /// Called once per output message.
    fn emit(&mut self, msg: &OutputMsg, route: Route);
}

impl Sink for Vec<OutputMsg> {
    fn emit(&mut self, msg: &OutputMsg, _route: Route) {
        self.push(*msg);
    }
}

/// Default of [`EngineConfig::max_orders_per_user`].
pub const DEFAULT_MAX_ORDERS_PER_USER: usize = 100_000;

/// Capacity limits; hitting one is a reject, never a panic or an unbounded allocation.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Resting orders per book (reject 9 "book full" beyond).
    pub max_orders_per_book: usize,
    /// Distinct price levels per side of a book (reject 9 beyond).
    pub max_levels_per_book: usize,
    /// Number of books (reject 6 "pool exhausted" for a new symbol beyond).
    pub max_symbols: usize,
    /// Resting orders per user, across all books (reject 6 "pool exhausted" for an order that
    /// would rest beyond). An order that is filled completely needs no slot; a fill or a cancel
    /// frees one.
    pub max_orders_per_user: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_orders_per_book: 1 << 20,
            max_levels_per_book: 1 << 16,
            max_symbols: 4096,
            max_orders_per_user: DEFAULT_MAX_ORDERS_PER_USER,
        }
    }
}

/// The engine: all books of one processor.
///
/// Layout (see docs/engine.md): one arena (slab) of order nodes shared by all books, one
/// open-addressing table from (user, user order id) to arena slot (the order index: O(1) cancel,
/// duplicate check and [`Engine::owns_order`]), books in a `Vec` found through a hash map from
/// the symbol, plus a `BTreeMap` of symbols used only by flush and cancel-on-disconnect, which
/// must visit books in symbol order.
pub struct Engine {
    config: EngineConfig,
    max_price: Price,
    books: Vec<Book>,
    /// Symbol (as the u64 of its padded bytes) to index in `books`.
    by_symbol: FxHashMap<u64, u32>,
    /// Symbols in byte order, for flush and cancel-on-disconnect.
    ordered: BTreeMap<Symbol, u32>,
    arena: Arena,
    /// (user << 32 | user order id) to arena slot, for every resting order.
    index: OrderIndex,
    /// Resting orders per user (users with none have no entry), for `max_orders_per_user`.
    user_orders: FxHashMap<UserId, u32>,
}

/// Key of an order in the order index.
#[inline]
fn order_key(user: UserId, user_order_id: OrderId) -> u64 {
    (u64::from(user) << 32) | u64::from(user_order_id)
}

/// One order of `user` stopped resting.
#[inline]
fn user_order_gone(user_orders: &mut FxHashMap<UserId, u32>, user: UserId) {
    if let Some(n) = user_orders.get_mut(&user) {
        *n -= 1;
        if *n == 0 {
            user_orders.remove(&user);
        }
    }
}

/// Hash key of a symbol.
#[inline]
fn symbol_key(symbol: &Symbol) -> u64 {
    u64::from_ne_bytes(symbol.padded())
}

/// Quantity for a top-of-book line; a level total beyond u32 (only possible with more than
/// one order of huge quantity) is reported saturated rather than wrapped.
#[inline]
fn wire_qty(total: u64) -> Qty {
    total.min(u64::from(Qty::MAX)) as Qty
}

/// Emits one `B` line per side whose top changed, bid side first.
#[inline]
fn emit_top_changes<S: Sink>(book: &Book, before: [Top; 2], sink: &mut S) {
    for (s, was) in before.into_iter().enumerate() {
        let now = book.top(s);
        if now != was {
            let msg = OutputMsg::TopOfBook {
                symbol: book.symbol,
                side: side_at(s),
                level: now.map(|(p, q)| (p, wire_qty(q))),
            };
            sink.emit(&msg, Route::MarketData);
        }
    }
}

impl Engine {
    /// An engine with no books yet.
    pub fn new(config: EngineConfig) -> Engine {
        Engine {
            config,
            max_price: Price::MAX,
            books: Vec::new(),
            by_symbol: FxHashMap::default(),
            ordered: BTreeMap::new(),
            arena: Arena::default(),
            index: OrderIndex::default(),
            user_orders: FxHashMap::default(),
        }
    }

    /// Preallocates room for `orders` resting orders (arena and order index), so that no
    /// allocation happens until more than that many orders rest at once.
    pub fn reserve(&mut self, orders: usize) {
        self.arena.reserve(orders);
        self.index.reserve(orders.saturating_sub(self.index.len()));
    }

    /// Sets the highest limit price accepted; a new order above it is rejected with code 3
    /// (invalid price). The default, `Price::MAX`, accepts every price.
    pub fn set_max_price(&mut self, max_price: Price) {
        self.max_price = max_price;
    }

    /// Current best price and total quantity at it on one side of a symbol's book, or `None`
    /// when that side (or the book) is empty.
    pub fn top_of_book(&self, symbol: Symbol, side: Side) -> Option<(Price, Qty)> {
        let &b = self.by_symbol.get(&symbol_key(&symbol))?;
        self.books[b as usize]
            .top(side_index(side))
            .map(|(p, q)| (p, wire_qty(q)))
    }

    /// Hints the CPU to start fetching the order-index bucket that `msg` will look up, so that
    /// a caller holding a batch of messages (e.g. a server draining its queue) can overlap that
    /// memory access with processing earlier messages. Never changes any result. Best issued
    /// two messages ahead, with [`Engine::prefetch_orders`] one message ahead.
    #[inline]
    pub fn prefetch(&self, msg: &InputMsg) {
        match msg {
            InputMsg::New(o) => self.index.prefetch(order_key(o.user, o.user_order_id)),
            InputMsg::Cancel(c) => self.index.prefetch(order_key(c.user, c.user_order_id)),
            InputMsg::Flush => {}
        }
    }

    /// Second prefetch stage: reads the index bucket of `msg` (fetched by an earlier
    /// [`Engine::prefetch`]) and hints the CPU to fetch the order it names (a cancel) or the
    /// first order a new order would trade with. Never changes any result.
    #[inline]
    pub fn prefetch_orders(&self, msg: &InputMsg) {
        match msg {
            InputMsg::Cancel(c) => {
                if let Some(slot) = self.index.get(order_key(c.user, c.user_order_id)) {
                    self.arena.prefetch(slot);
                }
            }
            InputMsg::New(o) => {
                if let Some(&b) = self.by_symbol.get(&symbol_key(&o.symbol)) {
                    let opp = 1 - side_index(o.side);
                    if let Some(level) = self.books[b as usize].sides[opp].last() {
                        self.arena.prefetch(level.head);
                    }
                }
            }
            InputMsg::Flush => {}
        }
    }

    /// Number of orders resting in all books.
    pub fn resting_orders(&self) -> usize {
        self.index.len()
    }

    /// Number of orders of `user` resting in all books of this engine.
    pub fn user_resting_orders(&self, user: UserId) -> usize {
        self.user_orders.get(&user).map_or(0, |&n| n as usize)
    }

    /// Processes one input message from `origin`, emitting its output lines in spec order.
    pub fn process<S: Sink>(&mut self, origin: ClientId, msg: &InputMsg, sink: &mut S) {
        self.process_with_elsewhere(origin, msg, 0, sink);
    }

    /// [`Engine::process`] for a server that spreads the books over several engines (threaded
    /// mode): `user_orders_elsewhere` is how many orders the new order's user has resting in
    /// the *other* engines, counted against `max_orders_per_user` with this engine's own. Only
    /// a new order looks at it; 0 makes this exactly [`Engine::process`].
    pub fn process_with_elsewhere<S: Sink>(
        &mut self,
        origin: ClientId,
        msg: &InputMsg,
        user_orders_elsewhere: usize,
        sink: &mut S,
    ) {
        match msg {
            InputMsg::New(order) => self.new_order(origin, order, user_orders_elsewhere, sink),
            InputMsg::Cancel(cancel) => self.cancel(cancel, sink),
            InputMsg::Flush => self.flush(sink),
        }
    }

    /// Cancels every resting order that `client` placed (cancel-on-disconnect), emitting a
    /// cancel ack routed `Route::Client(client)` per order and the top-of-book changes routed
    /// `Route::MarketData`. Books in symbol order, as a flush would.
    pub fn cancel_client_orders<S: Sink>(&mut self, client: ClientId, sink: &mut S) {
        for &b in self.ordered.values() {
            let book = &mut self.books[b as usize];
            if book.orders == 0 {
                continue;
            }
            let before = book.tops();
            for s in 0..2 {
                let levels = &mut book.sides[s];
                // Best level first; removing level i only shifts the levels after it, which
                // have been visited already.
                let mut i = levels.len();
                while i > 0 {
                    i -= 1;
                    let mut slot = levels[i].head;
                    while slot != NIL {
                        let node = *self.arena.get(slot);
                        if node.client == client {
                            unlink_in_level(&mut levels[i], &mut self.arena, slot);
                            self.index.remove(order_key(node.user, node.oid));
                            user_order_gone(&mut self.user_orders, node.user);
                            self.arena.free(slot);
                            book.orders -= 1;
                            let msg = OutputMsg::CancelAck {
                                symbol: book.symbol,
                                user: node.user,
                                user_order_id: node.oid,
                            };
                            sink.emit(&msg, Route::Client(client));
                        }
                        slot = node.next;
                    }
                    if levels[i].head == NIL {
                        levels.remove(i);
                    }
                }
            }
            emit_top_changes(book, before, sink);
        }
    }

    /// True when (user, user order id) is resting in one of this engine's books (used by the
    /// threaded server to route a cancel that names no symbol).
    pub fn owns_order(&self, user: UserId, user_order_id: OrderId) -> bool {
        self.index.contains_key(order_key(user, user_order_id))
    }

    /// Index of the book for `symbol`, creating it; `None` when the symbol limit is reached.
    #[inline]
    fn book_for(&mut self, symbol: Symbol) -> Option<usize> {
        let key = symbol_key(&symbol);
        if let Some(&b) = self.by_symbol.get(&key) {
            return Some(b as usize);
        }
        if self.books.len() >= self.config.max_symbols
            || self.books.len() >= (u32::MAX >> 1) as usize
        {
            return None;
        }
        let b = self.books.len();
        self.books.push(Book::new(symbol));
        self.by_symbol.insert(key, b as u32);
        self.ordered.insert(symbol, b as u32);
        Some(b)
    }

    /// Checks in the documented order (docs/engine.md): symbol (1), order id (10),
    /// quantity (2), price (3), duplicate (5), symbol pool (6), then for an order that would
    /// rest the user's cap (6), book capacity (9) and the arena (6).
    fn new_order<S: Sink>(
        &mut self,
        origin: ClientId,
        o: &NewOrder,
        user_orders_elsewhere: usize,
        sink: &mut S,
    ) {
        let reject = |reason: RejectReason, sink: &mut S| {
            let msg = OutputMsg::Reject {
                symbol: o.symbol,
                user: o.user,
                user_order_id: o.user_order_id,
                reason,
            };
            sink.emit(&msg, Route::Origin);
        };
        if o.symbol_too_long || o.symbol.is_empty() {
            return reject(RejectReason::UnknownSymbol, sink);
        }
        if o.user == 0 && o.user_order_id == 0 {
            return reject(RejectReason::InvalidOrderId, sink);
        }
        if o.qty == 0 {
            return reject(RejectReason::InvalidQuantity, sink);
        }
        if o.price > self.max_price {
            return reject(RejectReason::InvalidPrice, sink);
        }
        let key = order_key(o.user, o.user_order_id);
        if self.index.contains_key(key) {
            return reject(RejectReason::DuplicateOrderId, sink);
        }
        let Some(b) = self.book_for(o.symbol) else {
            return reject(RejectReason::PoolExhausted, sink);
        };
        let side = o.side;
        let s = side_index(side);
        let book = &mut self.books[b];
        if o.price != 0 {
            // Capacity is judged on the book as the order finds it; an order that would be
            // filled completely needs no room and is never rejected for lack of it.
            let no_order_room = book.orders >= self.config.max_orders_per_book;
            let no_level_room = book.sides[s].len() >= self.config.max_levels_per_book
                && find_level(&book.sides[s], level_key(side, o.price)).is_err();
            let no_slot = self.arena.is_full();
            let user_resting = self.user_orders.get(&o.user).map_or(0, |&n| n as usize);
            let user_full = user_resting.saturating_add(user_orders_elsewhere)
                >= self.config.max_orders_per_user;
            if (user_full || no_order_room || no_level_room || no_slot)
                && !book.would_fill(side, o.price, o.qty)
            {
                let reason = if user_full || no_slot {
                    RejectReason::PoolExhausted
                } else {
                    RejectReason::BookFull
                };
                return reject(reason, sink);
            }
        }

        let before = book.tops();
        sink.emit(
            &OutputMsg::Ack {
                symbol: o.symbol,
                user: o.user,
                user_order_id: o.user_order_id,
            },
            Route::Origin,
        );

        // Match against the opposite side, best level first, FIFO within a level.
        let opp_side = side_at(1 - s);
        let mut remaining = o.qty;
        let Book {
            symbol,
            sides,
            orders,
        } = book;
        let opp = &mut sides[1 - s];
        while remaining > 0 {
            let Some(level) = opp.last_mut() else { break };
            let level_price = key_price(opp_side, level.key);
            if o.price != 0 && !crosses(side, o.price, level_price) {
                break;
            }
            loop {
                let slot = level.head;
                let node = self.arena.get_mut(slot);
                let fill = remaining.min(node.qty);
                node.qty -= fill;
                level.total -= u64::from(fill);
                remaining -= fill;
                let (trade, route) = match side {
                    Side::Buy => (
                        OutputMsg::Trade {
                            symbol: *symbol,
                            buy_user: o.user,
                            buy_order_id: o.user_order_id,
                            sell_user: node.user,
                            sell_order_id: node.oid,
                            price: level_price,
                            qty: fill,
                        },
                        Route::Trade {
                            buyer: origin,
                            seller: node.client,
                        },
                    ),
                    Side::Sell => (
                        OutputMsg::Trade {
                            symbol: *symbol,
                            buy_user: node.user,
                            buy_order_id: node.oid,
                            sell_user: o.user,
                            sell_order_id: o.user_order_id,
                            price: level_price,
                            qty: fill,
                        },
                        Route::Trade {
                            buyer: node.client,
                            seller: origin,
                        },
                    ),
                };
                if node.qty == 0 {
                    let next = node.next;
                    let filled_key = order_key(node.user, node.oid);
                    self.index.remove(filled_key);
                    user_order_gone(&mut self.user_orders, node.user);
                    self.arena.free(slot);
                    *orders -= 1;
                    level.head = next;
                    if next == NIL {
                        level.tail = NIL;
                    } else {
                        self.arena.get_mut(next).prev = NIL;
                    }
                }
                sink.emit(&trade, route);
                if remaining == 0 || level.head == NIL {
                    break;
                }
            }
            if level.head == NIL {
                opp.pop();
            }
        }

        // A limit order's remainder rests; a market order's is dropped.
        if remaining > 0 && o.price != 0 {
            let slot = self.arena.alloc(Node {
                user: o.user,
                oid: o.user_order_id,
                qty: remaining,
                client: origin,
                price: o.price,
                prev: NIL,
                next: NIL,
                book_side: Node::pack(b, side),
            });
            self.index.insert(key, slot);
            *self.user_orders.entry(o.user).or_insert(0) += 1;
            book.rest(&mut self.arena, slot, side, o.price, remaining);
        }
        emit_top_changes(book, before, sink);
    }

    /// Cancels one resting order named by (user, user order id) and optionally its symbol.
    fn cancel<S: Sink>(&mut self, c: &CancelOrder, sink: &mut S) {
        // An empty symbol counts as "no symbol given" (the binary form cannot tell them apart).
        let given = c.symbol.filter(|s| !s.is_empty());
        let reject = |reason: RejectReason, sink: &mut S| {
            let msg = OutputMsg::Reject {
                symbol: given.unwrap_or(Symbol::EMPTY),
                user: c.user,
                user_order_id: c.user_order_id,
                reason,
            };
            sink.emit(&msg, Route::Origin);
        };
        if c.user == 0 && c.user_order_id == 0 {
            return reject(RejectReason::InvalidOrderId, sink);
        }
        let key = order_key(c.user, c.user_order_id);
        // Removed right away (one probe of the index); put back on the rare symbol mismatch.
        let Some(slot) = self.index.remove(key) else {
            return reject(RejectReason::OrderNotFound, sink);
        };
        let b = self.arena.get(slot).book();
        let book = &mut self.books[b];
        if given.is_some_and(|s| s != book.symbol) {
            self.index.insert(key, slot);
            return reject(RejectReason::OrderNotFound, sink);
        }
        let before = book.tops();
        book.unlink(&mut self.arena, slot);
        self.arena.free(slot);
        user_order_gone(&mut self.user_orders, c.user);
        sink.emit(
            &OutputMsg::CancelAck {
                symbol: book.symbol,
                user: c.user,
                user_order_id: c.user_order_id,
            },
            Route::Origin,
        );
        emit_top_changes(book, before, sink);
    }

    /// Cancels every resting order: books in symbol order; bids best to worst then asks best
    /// to worst, FIFO within a level; each book's `C` lines, then its `B` lines.
    fn flush<S: Sink>(&mut self, sink: &mut S) {
        for &b in self.ordered.values() {
            let book = &mut self.books[b as usize];
            if book.orders == 0 {
                continue;
            }
            let before = book.tops();
            for levels in book.sides.iter_mut() {
                for level in levels.iter().rev() {
                    let mut slot = level.head;
                    while slot != NIL {
                        let node = *self.arena.get(slot);
                        self.index.remove(order_key(node.user, node.oid));
                        self.arena.free(slot);
                        let msg = OutputMsg::CancelAck {
                            symbol: book.symbol,
                            user: node.user,
                            user_order_id: node.oid,
                        };
                        sink.emit(&msg, Route::Client(node.client));
                        slot = node.next;
                    }
                }
                levels.clear();
            }
            book.orders = 0;
            emit_top_changes(book, before, sink);
        }
        self.user_orders.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Routed(Vec<(OutputMsg, Route)>);

    impl Sink for Routed {
        fn emit(&mut self, msg: &OutputMsg, route: Route) {
            self.0.push((*msg, route));
        }
    }

    fn sym(s: &str) -> Symbol {
        Symbol::new(s.as_bytes()).unwrap()
    }

    fn new(user: u32, s: &str, price: u32, qty: u32, side: Side, oid: u32) -> InputMsg {
        InputMsg::New(NewOrder {
            user,
            symbol: sym(s),
            symbol_too_long: false,
            price,
            qty,
            side,
            user_order_id: oid,
        })
    }

    fn routes(out: &Routed) -> Vec<Route> {
        out.0.iter().map(|(_, r)| *r).collect()
    }

    #[test]
    fn trades_go_to_both_owners_and_tops_to_market_data() {
        let mut e = Engine::new(EngineConfig::default());
        let mut out = Routed::default();
        e.process(7, &new(1, "IBM", 10, 5, Side::Sell, 1), &mut out);
        assert_eq!(routes(&out), [Route::Origin, Route::MarketData]);
        out.0.clear();
        e.process(9, &new(2, "IBM", 10, 5, Side::Buy, 1), &mut out);
        assert_eq!(
            routes(&out),
            [
                Route::Origin,
                Route::Trade {
                    buyer: 9,
                    seller: 7
                },
                Route::MarketData
            ]
        );
    }

    #[test]
    fn flush_acks_go_to_each_owner_and_disconnect_cancels_only_that_clients_orders() {
        let mut e = Engine::new(EngineConfig::default());
        let mut out = Routed::default();
        e.process(1, &new(1, "IBM", 10, 5, Side::Buy, 1), &mut out);
        e.process(2, &new(2, "IBM", 10, 5, Side::Buy, 2), &mut out);
        e.process(2, &new(2, "AAPL", 11, 5, Side::Sell, 3), &mut out);
        out.0.clear();
        e.cancel_client_orders(2, &mut out);
        assert_eq!(
            out.0,
            [
                (
                    OutputMsg::CancelAck {
                        symbol: sym("AAPL"),
                        user: 2,
                        user_order_id: 3
                    },
                    Route::Client(2)
                ),
                (
                    OutputMsg::TopOfBook {
                        symbol: sym("AAPL"),
                        side: Side::Sell,
                        level: None
                    },
                    Route::MarketData
                ),
                (
                    OutputMsg::CancelAck {
                        symbol: sym("IBM"),
                        user: 2,
                        user_order_id: 2
                    },
                    Route::Client(2)
                ),
                (
                    OutputMsg::TopOfBook {
                        symbol: sym("IBM"),
                        side: Side::Buy,
                        level: Some((10, 5))
                    },
                    Route::MarketData
                ),
            ]
        );
        assert!(e.owns_order(1, 1) && !e.owns_order(2, 2));
        out.0.clear();
        e.process(5, &InputMsg::Flush, &mut out);
        assert_eq!(routes(&out), [Route::Client(1), Route::MarketData]);
        assert_eq!(e.resting_orders(), 0);
    }

    #[test]
    fn capacity_limits_reject_only_orders_that_would_rest() {
        let config = EngineConfig {
            max_orders_per_book: 2,
            max_levels_per_book: 1,
            max_symbols: 1,
            ..EngineConfig::default()
        };
        let mut e = Engine::new(config);
        let mut out = Vec::new();
        e.process(0, &new(1, "IBM", 10, 5, Side::Buy, 1), &mut out);
        // A second bid level: no room (levels per side).
        e.process(0, &new(1, "IBM", 9, 5, Side::Buy, 2), &mut out);
        // Same level: fine; now the book is full (2 orders).
        e.process(0, &new(1, "IBM", 10, 5, Side::Buy, 3), &mut out);
        // A sell that would rest: book full. One that is filled completely: accepted.
        e.process(0, &new(2, "IBM", 11, 1, Side::Sell, 1), &mut out);
        e.process(0, &new(2, "IBM", 10, 7, Side::Sell, 2), &mut out);
        // A second symbol: pool exhausted.
        e.process(0, &new(2, "AAPL", 10, 7, Side::Sell, 3), &mut out);
        let rejects: Vec<(u32, RejectReason)> = out
            .iter()
            .filter_map(|m| match m {
                OutputMsg::Reject {
                    user_order_id,
                    reason,
                    ..
                } => Some((*user_order_id, *reason)),
                _ => None,
            })
            .collect();
        assert_eq!(
            rejects,
            [
                (2, RejectReason::BookFull),
                (1, RejectReason::BookFull),
                (3, RejectReason::PoolExhausted)
            ]
        );
        assert_eq!(e.top_of_book(sym("IBM"), Side::Buy), Some((10, 3)));
    }

    fn reject_reasons(out: &[OutputMsg]) -> Vec<(u32, u32, RejectReason)> {
        out.iter()
            .filter_map(|m| match *m {
                OutputMsg::Reject {
                    user,
                    user_order_id,
                    reason,
                    ..
                } => Some((user, user_order_id, reason)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn resting_orders_per_user_are_capped_and_fills_and_cancels_free_slots() {
        let config = EngineConfig {
            max_orders_per_user: 2,
            ..EngineConfig::default()
        };
        let mut e = Engine::new(config);
        let mut out = Vec::new();
        // Two resting orders of user 1, in two books: the cap is per user, across books.
        e.process(0, &new(1, "IBM", 10, 5, Side::Buy, 1), &mut out);
        e.process(0, &new(1, "AAPL", 10, 5, Side::Buy, 2), &mut out);
        assert_eq!(e.user_resting_orders(1), 2);
        // A third that would rest: pool exhausted (6); nothing changes.
        out.clear();
        e.process(0, &new(1, "MSFT", 10, 5, Side::Buy, 3), &mut out);
        assert_eq!(reject_reasons(&out), [(1, 3, RejectReason::PoolExhausted)]);
        assert_eq!(out.len(), 1);
        assert_eq!(e.top_of_book(sym("MSFT"), Side::Buy), None);
        // Another user is not affected.
        e.process(0, &new(2, "IBM", 20, 3, Side::Sell, 1), &mut out);
        // Orders that need no slot are accepted: a market order, and a limit order filled
        // completely (together they take user 2's ask of 3).
        out.clear();
        e.process(0, &new(1, "IBM", 0, 1, Side::Buy, 4), &mut out);
        e.process(0, &new(1, "IBM", 20, 2, Side::Buy, 5), &mut out);
        assert_eq!(reject_reasons(&out), []);
        assert_eq!(e.user_resting_orders(1), 2);
        // One that would only partly fill still needs a slot.
        e.process(0, &new(2, "IBM", 20, 3, Side::Sell, 2), &mut out);
        out.clear();
        e.process(0, &new(1, "IBM", 20, 4, Side::Buy, 6), &mut out);
        assert_eq!(reject_reasons(&out), [(1, 6, RejectReason::PoolExhausted)]);
        // A cancel frees a slot.
        e.process(
            0,
            &InputMsg::Cancel(CancelOrder {
                user: 1,
                symbol: None,
                user_order_id: 2,
            }),
            &mut out,
        );
        assert_eq!(e.user_resting_orders(1), 1);
        out.clear();
        e.process(0, &new(1, "MSFT", 10, 5, Side::Buy, 3), &mut out);
        assert_eq!(reject_reasons(&out), []);
        assert_eq!(e.user_resting_orders(1), 2);
        // A fill frees a slot: user 2 sells into user 1's IBM bid (10 x 5) completely.
        e.process(0, &new(2, "IBM", 10, 5, Side::Sell, 3), &mut out);
        assert_eq!(e.user_resting_orders(1), 1);
        out.clear();
        e.process(0, &new(1, "AAPL", 9, 5, Side::Buy, 7), &mut out);
        assert_eq!(reject_reasons(&out), []);
        // Orders resting in other engines count too (threaded servers).
        out.clear();
        e.process(0, &new(3, "IBM", 5, 1, Side::Buy, 1), &mut out);
        let msg = new(3, "IBM", 5, 1, Side::Buy, 2);
        e.process_with_elsewhere(0, &msg, 1, &mut out);
        assert_eq!(reject_reasons(&out), [(3, 2, RejectReason::PoolExhausted)]);
        // Disconnect and flush free every slot.
        e.cancel_client_orders(0, &mut out);
        assert_eq!(e.user_resting_orders(1), 0);
        e.process(0, &new(1, "IBM", 5, 1, Side::Buy, 8), &mut out);
        e.process(0, &InputMsg::Flush, &mut out);
        assert_eq!(e.user_resting_orders(1), 0);
        assert_eq!(e.resting_orders(), 0);
    }

    #[test]
    fn prices_above_the_configured_maximum_are_rejected_with_code_3() {
        let mut e = Engine::new(EngineConfig::default());
        e.set_max_price(1000);
        let mut out = Vec::new();
        e.process(0, &new(1, "IBM", 1001, 5, Side::Buy, 1), &mut out);
        e.process(0, &new(1, "IBM", 1000, 5, Side::Buy, 2), &mut out);
        assert!(matches!(
            out[0],
            OutputMsg::Reject {
                reason: RejectReason::InvalidPrice,
                ..
            }
        ));
        assert!(matches!(out[1], OutputMsg::Ack { .. }));
    }

    #[test]
    fn level_totals_beyond_u32_are_reported_saturated() {
        let mut e = Engine::new(EngineConfig::default());
        let mut out = Vec::new();
        e.process(0, &new(1, "IBM", 10, u32::MAX, Side::Buy, 1), &mut out);
        e.process(0, &new(1, "IBM", 10, 5, Side::Buy, 2), &mut out);
        assert_eq!(e.top_of_book(sym("IBM"), Side::Buy), Some((10, u32::MAX)));
        out.clear();
        e.process(0, &new(2, "IBM", 10, 6, Side::Sell, 1), &mut out);
        // 4294967295 + 5 - 6 = 4294967294: back in range, and a change.
        assert_eq!(
            e.top_of_book(sym("IBM"), Side::Buy),
            Some((10, u32::MAX - 1))
        );
    }
}
