//! The multi-symbol engine: one order book per symbol, created when an order first rests on
//! it and reclaimed for another symbol once it is empty.
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
use crate::checks;
use crate::index::OrderIndex;
use crate::message::{
    CancelOrder, ClientId, InputMsg, NewOrder, OrderId, OutputMsg, Price, Qty, RejectReason, Side,
    Symbol, UserId,
};
use crate::users::{Count, UserHoldings};

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
///
/// Besides the output messages, the engine reports which orders start and stop resting
/// ([`Sink::rested`], [`Sink::left`]): a caller that must know where orders rest (a threaded
/// server checking duplicate ids and per-user caps across engines) learns it from the engine
/// that decides it, rather than re-deriving it from acks, trade quantities and cancel acks.
/// Both default to doing nothing, which costs nothing once inlined.
pub trait Sink {
    /// Called once per output message.
    fn emit(&mut self, msg: &OutputMsg, route: Route);

    /// Order (user, user order id) now rests in `symbol`'s book (what is left of a new limit
    /// order after matching). Called after the order's ack and trades, before its top of book.
    #[inline]
    fn rested(&mut self, user: UserId, user_order_id: OrderId, symbol: Symbol) {
        let _ = (user, user_order_id, symbol);
    }

    /// Order (user, user order id), resting in `symbol`'s book, is gone: filled completely,
    /// cancelled, flushed or cancelled on disconnect. Called after the trade or cancel ack
    /// that removed it.
    #[inline]
    fn left(&mut self, user: UserId, user_order_id: OrderId, symbol: Symbol) {
        let _ = (user, user_order_id, symbol);
    }
}

impl Sink for Vec<OutputMsg> {
    fn emit(&mut self, msg: &OutputMsg, _route: Route) {
        self.push(*msg);
    }
}

/// Default of [`EngineConfig::max_orders_per_user`].
pub const DEFAULT_MAX_ORDERS_PER_USER: usize = 100_000;

/// Default of [`EngineConfig::max_symbols`].
pub const DEFAULT_MAX_SYMBOLS: usize = 4096;

/// Default of [`EngineConfig::max_symbols_per_user`]: a quarter of the symbol table, so that
/// no single user can hold every book.
pub const DEFAULT_MAX_SYMBOLS_PER_USER: usize = DEFAULT_MAX_SYMBOLS / 4;

/// Capacity limits; hitting one is a reject, never a panic or an unbounded allocation.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Resting orders per book (reject 9 "book full" beyond).
    pub max_orders_per_book: usize,
    /// Distinct price levels per side of a book (reject 9 beyond).
    pub max_levels_per_book: usize,
    /// Number of books (reject 6 "pool exhausted" for an order that would rest on a symbol
    /// without a book when every book holds orders). Only an order that rests needs a book, and
    /// an empty book is reclaimed for another symbol.
    pub max_symbols: usize,
    /// Resting orders per user, across all books (reject 6 "pool exhausted" for an order that
    /// would rest beyond). An order that is filled completely needs no slot; a fill or a cancel
    /// frees one.
    pub max_orders_per_user: usize,
    /// Books in which one user may have resting orders at once (reject 6 "pool exhausted" for
    /// an order that would rest in one more); keeps one user from holding the whole symbol
    /// table.
    pub max_symbols_per_user: usize,
    /// Highest limit price accepted (reject 3 "invalid price" above it); `Price::MAX`, the
    /// default, accepts every price. In the config, not only in the engine, so that a threaded
    /// server's router applies the same checks as its engines (`checks::validate_new`).
    pub max_price: Price,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_orders_per_book: 1 << 20,
            max_levels_per_book: 1 << 16,
            max_symbols: DEFAULT_MAX_SYMBOLS,
            max_orders_per_user: DEFAULT_MAX_ORDERS_PER_USER,
            max_symbols_per_user: DEFAULT_MAX_SYMBOLS_PER_USER,
            max_price: Price::MAX,
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
    books: Vec<Book>,
    /// Symbol (as the u64 of its padded bytes) to index in `books`.
    by_symbol: FxHashMap<u64, u32>,
    /// Symbols in byte order, for flush and cancel-on-disconnect.
    ordered: BTreeMap<Symbol, u32>,
    arena: Arena,
    /// (user << 32 | user order id) to arena slot, for every resting order.
    index: OrderIndex,
    /// Resting orders and books held per user, for the per-user caps.
    holdings: UserHoldings,
    /// Books that became empty, to reclaim for a new symbol once `max_symbols` books exist
    /// (each listed at most once, see `Book::listed`; one may have been refilled since, which
    /// reclaiming skips).
    emptied: Vec<u32>,
}

/// How much of a user's holdings lie in *other* engines (threaded servers, which spread the
/// books over several engines); counted against the per-user caps with this engine's own.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Elsewhere {
    /// The user's resting orders in the other engines.
    pub orders: usize,
    /// Books of the other engines holding the user's resting orders.
    pub symbols: usize,
}

/// Key of an order in the order index.
#[inline]
fn order_key(user: UserId, user_order_id: OrderId) -> u64 {
    (u64::from(user) << 32) | u64::from(user_order_id)
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
            books: Vec::new(),
            by_symbol: FxHashMap::default(),
            ordered: BTreeMap::new(),
            arena: Arena::default(),
            index: OrderIndex::default(),
            holdings: UserHoldings::default(),
            emptied: Vec::new(),
        }
    }

    /// Preallocates room for `orders` resting orders (arena and order index), so that no
    /// allocation happens until more than that many orders rest at once.
    pub fn reserve(&mut self, orders: usize) {
        self.arena.reserve(orders);
        self.index.reserve(orders.saturating_sub(self.index.len()));
    }

    /// Sets the highest limit price accepted ([`EngineConfig::max_price`]); a new order above
    /// it is rejected with code 3 (invalid price).
    pub fn set_max_price(&mut self, max_price: Price) {
        self.config.max_price = max_price;
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

    /// Number of orders of `user` resting in all books of this engine. (Walks every resting
    /// order unless the engine is counting them for the cap: see `users.rs`.)
    pub fn user_resting_orders(&self, user: UserId) -> usize {
        if self.holdings.counting(Count::Orders) {
            return self.holdings.orders(user);
        }
        let mut n = 0;
        self.each_resting(|_, u| n += usize::from(u == user));
        n
    }

    /// Number of books of this engine in which `user` has resting orders. (Walks every
    /// resting order unless the engine is counting them for the cap.)
    pub fn user_symbols(&self, user: UserId) -> usize {
        if self.holdings.counting(Count::Books) {
            return self.holdings.books(user);
        }
        let mut books: Vec<usize> = Vec::new();
        self.each_resting(|b, u| {
            if u == user && books.last() != Some(&b) {
                books.push(b);
            }
        });
        books.dedup();
        books.len()
    }

    /// Calls `f(book, user)` for every resting order, book by book.
    fn each_resting(&self, mut f: impl FnMut(usize, UserId)) {
        for (b, book) in self.books.iter().enumerate() {
            for level in book.sides.iter().flatten() {
                let mut slot = level.head;
                while slot != NIL {
                    let node = self.arena.get(slot);
                    f(b, node.user);
                    slot = node.next;
                }
            }
        }
    }

    /// Starts counting `what` per user, with one pass over the resting orders (see `users.rs`:
    /// counting is lazy).
    #[cold]
    fn start_counting(&mut self, what: Count) {
        let mut resting = Vec::with_capacity(self.index.len());
        self.each_resting(|b, u| resting.push((b, u)));
        self.holdings.start(what);
        for (b, u) in resting {
            self.holdings.count_resting(what, u, b);
        }
    }

    /// Number of symbols that have a book (holding orders, or emptied and not reclaimed yet);
    /// at most `max_symbols`.
    pub fn books(&self) -> usize {
        self.books.len()
    }

    /// Processes one input message from `origin`, emitting its output lines in spec order.
    pub fn process<S: Sink>(&mut self, origin: ClientId, msg: &InputMsg, sink: &mut S) {
        self.process_with_elsewhere(origin, msg, Elsewhere::default(), sink);
    }

    /// [`Engine::process`] for a server that spreads the books over several engines (threaded
    /// mode): `elsewhere` is what the new order's user holds in the *other* engines, counted
    /// against `max_orders_per_user` and `max_symbols_per_user` with this engine's own. Only a
    /// new order looks at it; the default (nothing) makes this exactly [`Engine::process`].
    pub fn process_with_elsewhere<S: Sink>(
        &mut self,
        origin: ClientId,
        msg: &InputMsg,
        elsewhere: Elsewhere,
        sink: &mut S,
    ) {
        match msg {
            InputMsg::New(order) => self.new_order(origin, order, elsewhere, sink),
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
                            self.holdings.gone(node.user, b as usize);
                            self.arena.free(slot);
                            book.orders -= 1;
                            let msg = OutputMsg::CancelAck {
                                symbol: book.symbol,
                                user: node.user,
                                user_order_id: node.oid,
                            };
                            sink.emit(&msg, Route::Client(client));
                            sink.left(node.user, node.oid, book.symbol);
                        }
                        slot = node.next;
                    }
                    if levels[i].head == NIL {
                        levels.remove(i);
                    }
                }
            }
            emit_top_changes(book, before, sink);
            note_if_empty(book, b, &mut self.emptied);
        }
    }

    /// True when (user, user order id) is resting in one of this engine's books (used by the
    /// threaded server to route a cancel that names no symbol).
    pub fn owns_order(&self, user: UserId, user_order_id: OrderId) -> bool {
        self.index.contains_key(order_key(user, user_order_id))
    }

    /// True when a book can be had for a symbol that has none: the table is not full, or an
    /// emptied book is waiting to be reclaimed. Drops listed books that were refilled.
    fn book_available(&mut self) -> bool {
        if self.books.len() < self.config.max_symbols.min((u32::MAX >> 1) as usize) {
            return true;
        }
        while let Some(&b) = self.emptied.last() {
            let book = &mut self.books[b as usize];
            if book.orders == 0 {
                return true;
            }
            book.listed = false;
            self.emptied.pop();
        }
        false
    }

    /// A book for `symbol`, which has none: a new one, or an emptied one reclaimed from its old
    /// symbol (nothing rests in it, so no order node refers to it). The caller has checked
    /// [`Engine::book_available`].
    fn open_book(&mut self, symbol: Symbol) -> usize {
        let b = if self.books.len() < self.config.max_symbols.min((u32::MAX >> 1) as usize) {
            self.books.push(Book::new(symbol));
            self.books.len() - 1
        } else {
            let b = self.emptied.pop().map_or(0, |b| b as usize);
            let book = &mut self.books[b];
            debug_assert_eq!(book.orders, 0, "reclaiming a book that holds orders");
            self.by_symbol.remove(&symbol_key(&book.symbol));
            self.ordered.remove(&book.symbol);
            book.symbol = symbol;
            book.listed = false;
            b
        };
        self.by_symbol.insert(symbol_key(&symbol), b as u32);
        self.ordered.insert(symbol, b as u32);
        b
    }

    /// Checks in the documented order (docs/engine.md): symbol (1), order id (10),
    /// quantity (2), price (3), duplicate (5), then for an order that would rest the user's
    /// caps on orders and symbols (6), book capacity (9), a book for a new symbol (6) and the
    /// arena (6). An order that does not rest needs no book: a market order on a symbol
    /// without one is acknowledged and dropped.
    fn new_order<S: Sink>(
        &mut self,
        origin: ClientId,
        o: &NewOrder,
        elsewhere: Elsewhere,
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
        if let Err(reason) = checks::validate_new(o, self.config.max_price) {
            return reject(reason, sink);
        }
        let key = order_key(o.user, o.user_order_id);
        if self.index.contains_key(key) {
            return reject(RejectReason::DuplicateOrderId, sink);
        }
        // Counting per user stops once the totals answer the checks again (and the pass that
        // started it is paid for).
        self.holdings.stop_if_idle(
            Count::Orders,
            self.index.len() >= self.config.max_orders_per_user / 2,
        );
        self.holdings.stop_if_idle(
            Count::Books,
            self.books.len() >= self.config.max_symbols_per_user / 2,
        );
        let side = o.side;
        let s = side_index(side);
        let found = self
            .by_symbol
            .get(&symbol_key(&o.symbol))
            .map(|&b| b as usize);
        let Some(b) = found else {
            // No book: nothing to trade against. A market order ends here (it never rests);
            // a limit order rests in a new book.
            if o.price != 0 {
                let (user_full, symbols_full) = self.user_full(o.user, None, elsewhere);
                let no_book_room =
                    self.config.max_orders_per_book == 0 || self.config.max_levels_per_book == 0;
                if user_full || symbols_full {
                    return reject(RejectReason::PoolExhausted, sink);
                }
                if no_book_room {
                    return reject(RejectReason::BookFull, sink);
                }
                if !self.book_available() || self.arena.is_full() {
                    return reject(RejectReason::PoolExhausted, sink);
                }
            }
            sink.emit(
                &OutputMsg::Ack {
                    symbol: o.symbol,
                    user: o.user,
                    user_order_id: o.user_order_id,
                },
                Route::Origin,
            );
            if o.price != 0 {
                let b = self.open_book(o.symbol);
                self.rest(origin, o, o.qty, b);
                sink.rested(o.user, o.user_order_id, o.symbol);
                emit_top_changes(&self.books[b], [None, None], sink);
            }
            return;
        };
        if o.price != 0 {
            let (user_full, symbols_full) = self.user_full(o.user, Some(b), elsewhere);
            let book = &self.books[b];
            // Capacity is judged on the book as the order finds it; an order that would be
            // filled completely needs no room and is never rejected for lack of it.
            let no_order_room = book.orders >= self.config.max_orders_per_book;
            let no_level_room = book.sides[s].len() >= self.config.max_levels_per_book
                && find_level(&book.sides[s], level_key(side, o.price)).is_err();
            let no_slot = self.arena.is_full();
            if (user_full || symbols_full || no_order_room || no_level_room || no_slot)
                && !book.would_fill(side, o.price, o.qty)
            {
                let reason = if user_full || symbols_full || no_slot {
                    RejectReason::PoolExhausted
                } else {
                    RejectReason::BookFull
                };
                return reject(reason, sink);
            }
        }

        let book = &mut self.books[b];
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
            ..
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
                let filled = (node.qty == 0).then_some((node.user, node.oid));
                if let Some((filled_user, filled_oid)) = filled {
                    let next = node.next;
                    self.index.remove(order_key(filled_user, filled_oid));
                    self.holdings.gone(filled_user, b);
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
                if let Some((filled_user, filled_oid)) = filled {
                    sink.left(filled_user, filled_oid, *symbol);
                }
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
            self.rest(origin, o, remaining, b);
            sink.rested(o.user, o.user_order_id, o.symbol);
        }
        let book = &mut self.books[b];
        emit_top_changes(book, before, sink);
        note_if_empty(book, b as u32, &mut self.emptied);
    }

    /// Whether `user` is at its cap on resting orders, and on books holding them (only when
    /// the order would rest in a book where the user has none yet: `book` is `None` for a
    /// symbol without a book). While the engine holds fewer orders (books) than a cap, that
    /// total answers the check and nothing is counted per user.
    #[inline]
    fn user_full(
        &mut self,
        user: UserId,
        book: Option<usize>,
        elsewhere: Elsewhere,
    ) -> (bool, bool) {
        let (max_orders, max_symbols) = (
            self.config.max_orders_per_user,
            self.config.max_symbols_per_user,
        );
        let orders_full = self.index.len().saturating_add(elsewhere.orders) >= max_orders && {
            if !self.holdings.counting(Count::Orders) {
                self.start_counting(Count::Orders);
            }
            self.holdings.orders(user).saturating_add(elsewhere.orders) >= max_orders
        };
        let symbols_full = self.books.len().saturating_add(elsewhere.symbols) >= max_symbols && {
            if !self.holdings.counting(Count::Books) {
                self.start_counting(Count::Books);
            }
            self.holdings.books(user).saturating_add(elsewhere.symbols) >= max_symbols
                && !book.is_some_and(|b| self.holdings.holds(user, b))
        };
        (orders_full, symbols_full)
    }

    /// Rests `qty` of order `o` (from `origin`) in book `b`, at the tail of its price level.
    #[inline]
    fn rest(&mut self, origin: ClientId, o: &NewOrder, qty: Qty, b: usize) {
        let slot = self.arena.alloc(Node {
            user: o.user,
            oid: o.user_order_id,
            qty,
            client: origin,
            price: o.price,
            prev: NIL,
            next: NIL,
            book_side: Node::pack(b, o.side),
        });
        self.index.insert(order_key(o.user, o.user_order_id), slot);
        self.holdings.rested(o.user, b);
        self.books[b].rest(&mut self.arena, slot, o.side, o.price, qty);
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
        if !checks::valid_id(c.user, c.user_order_id) {
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
        self.holdings.gone(c.user, b);
        sink.emit(
            &OutputMsg::CancelAck {
                symbol: book.symbol,
                user: c.user,
                user_order_id: c.user_order_id,
            },
            Route::Origin,
        );
        sink.left(c.user, c.user_order_id, book.symbol);
        emit_top_changes(book, before, sink);
        note_if_empty(book, b as u32, &mut self.emptied);
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
                        sink.left(node.user, node.oid, book.symbol);
                        slot = node.next;
                    }
                }
                levels.clear();
            }
            book.orders = 0;
            emit_top_changes(book, before, sink);
            note_if_empty(book, b, &mut self.emptied);
        }
        self.holdings.clear();
    }
}

/// Lists book `b` for reclaiming when nothing rests in it any more (once: a listed book that is
/// refilled and emptied again stays listed). Its last top-of-book lines have been emitted; a
/// reclaimed book starts empty, exactly as this one is, so reclaiming is invisible on the wire.
#[inline]
fn note_if_empty(book: &mut Book, b: u32, emptied: &mut Vec<u32>) {
    if book.orders == 0 && !book.listed {
        book.listed = true;
        emptied.push(b);
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
        e.process_with_elsewhere(
            0,
            &msg,
            Elsewhere {
                orders: 1,
                symbols: 0,
            },
            &mut out,
        );
        assert_eq!(reject_reasons(&out), [(3, 2, RejectReason::PoolExhausted)]);
        // Disconnect and flush free every slot.
        e.cancel_client_orders(0, &mut out);
        assert_eq!(e.user_resting_orders(1), 0);
        e.process(0, &new(1, "IBM", 5, 1, Side::Buy, 8), &mut out);
        e.process(0, &InputMsg::Flush, &mut out);
        assert_eq!(e.user_resting_orders(1), 0);
        assert_eq!(e.resting_orders(), 0);
    }

    fn cancel(user: u32, oid: u32) -> InputMsg {
        InputMsg::Cancel(CancelOrder {
            user,
            symbol: None,
            user_order_id: oid,
        })
    }

    #[test]
    fn orders_that_do_not_rest_take_no_symbol_slot() {
        // Issue 14: 4,096 market orders on made-up symbols filled the table for good.
        let mut e = Engine::new(EngineConfig::default());
        let mut out = Vec::new();
        for i in 0..DEFAULT_MAX_SYMBOLS as u32 {
            let msg = new(666, &format!("S{i:05}"), 0, 1, Side::Buy, 1);
            e.process(0, &msg, &mut out);
        }
        assert_eq!(e.books(), 0);
        assert!(out.iter().all(|m| matches!(m, OutputMsg::Ack { .. })));
        assert_eq!(out.len(), DEFAULT_MAX_SYMBOLS);
        out.clear();
        e.process(0, &new(1, "NEW", 10, 5, Side::Buy, 1), &mut out);
        assert_eq!(reject_reasons(&out), []);
        assert_eq!(e.top_of_book(sym("NEW"), Side::Buy), Some((10, 5)));
        // A limit order filled completely on an existing book takes no slot either.
        let config = EngineConfig {
            max_symbols: 1,
            ..EngineConfig::default()
        };
        let mut e = Engine::new(config);
        e.process(0, &new(1, "IBM", 10, 5, Side::Buy, 1), &mut out);
        out.clear();
        e.process(0, &new(2, "AAPL", 0, 5, Side::Sell, 1), &mut out);
        e.process(0, &new(2, "IBM", 10, 5, Side::Sell, 2), &mut out);
        assert_eq!(reject_reasons(&out), []);
        assert_eq!(e.books(), 1);
    }

    #[test]
    fn an_emptied_book_is_reclaimed_for_a_new_symbol_after_its_last_top_of_book() {
        let config = EngineConfig {
            max_symbols: 2,
            ..EngineConfig::default()
        };
        let mut e = Engine::new(config);
        let mut out = Vec::new();
        e.process(0, &new(1, "IBM", 10, 5, Side::Buy, 1), &mut out);
        e.process(0, &new(1, "AAPL", 20, 5, Side::Sell, 2), &mut out);
        out.clear();
        // Both books hold orders: no slot for a third symbol (a market order needs none).
        e.process(0, &new(2, "MSFT", 30, 1, Side::Buy, 1), &mut out);
        e.process(0, &new(2, "MSFT", 0, 1, Side::Buy, 2), &mut out);
        assert_eq!(reject_reasons(&out), [(2, 1, RejectReason::PoolExhausted)]);
        assert_eq!(out.len(), 2);
        // IBM empties by a trade: its last top of book says so; the slot is then free.
        out.clear();
        e.process(0, &new(2, "IBM", 10, 5, Side::Sell, 3), &mut out);
        assert_eq!(
            out.last(),
            Some(&OutputMsg::TopOfBook {
                symbol: sym("IBM"),
                side: Side::Buy,
                level: None
            })
        );
        out.clear();
        e.process(0, &new(2, "MSFT", 30, 1, Side::Buy, 4), &mut out);
        assert_eq!(
            out,
            [
                OutputMsg::Ack {
                    symbol: sym("MSFT"),
                    user: 2,
                    user_order_id: 4
                },
                OutputMsg::TopOfBook {
                    symbol: sym("MSFT"),
                    side: Side::Buy,
                    level: Some((30, 1))
                }
            ]
        );
        assert_eq!(e.books(), 2);
        assert_eq!(e.top_of_book(sym("IBM"), Side::Buy), None);
        // IBM comes back once MSFT empties (by a cancel this time), as a fresh book.
        e.process(0, &cancel(2, 4), &mut out);
        out.clear();
        e.process(0, &new(3, "IBM", 9, 2, Side::Buy, 1), &mut out);
        assert_eq!(reject_reasons(&out), []);
        assert_eq!(e.top_of_book(sym("IBM"), Side::Buy), Some((9, 2)));
        assert_eq!(e.top_of_book(sym("MSFT"), Side::Buy), None);
        // A flush empties every book; flushing again prints nothing.
        out.clear();
        e.process(0, &InputMsg::Flush, &mut out);
        assert_eq!(out.len(), 4, "{out:?}");
        out.clear();
        e.process(0, &InputMsg::Flush, &mut out);
        assert_eq!(out, []);
        e.process(0, &new(3, "GOOG", 9, 2, Side::Buy, 2), &mut out);
        e.process(0, &new(3, "TSLA", 9, 2, Side::Buy, 3), &mut out);
        assert_eq!(reject_reasons(&out), []);
    }

    #[test]
    fn books_holding_one_users_orders_are_capped() {
        let config = EngineConfig {
            max_symbols_per_user: 2,
            ..EngineConfig::default()
        };
        let mut e = Engine::new(config);
        let mut out = Vec::new();
        e.process(0, &new(1, "IBM", 10, 5, Side::Buy, 1), &mut out);
        e.process(0, &new(1, "AAPL", 10, 5, Side::Buy, 2), &mut out);
        out.clear();
        // A third symbol: 6. More orders in a book it holds already: fine.
        e.process(0, &new(1, "MSFT", 10, 5, Side::Buy, 3), &mut out);
        e.process(0, &new(1, "IBM", 9, 5, Side::Buy, 4), &mut out);
        assert_eq!(reject_reasons(&out), [(1, 3, RejectReason::PoolExhausted)]);
        assert_eq!((e.user_symbols(1), e.user_resting_orders(1)), (2, 3));
        // Others are not affected, and an order that does not rest needs no book.
        e.process(0, &new(2, "MSFT", 10, 5, Side::Sell, 1), &mut out);
        out.clear();
        e.process(0, &new(1, "MSFT", 10, 5, Side::Buy, 5), &mut out);
        e.process(0, &new(1, "TSLA", 0, 5, Side::Buy, 6), &mut out);
        assert_eq!(reject_reasons(&out), []);
        // Leaving a book (cancelling the only order there) frees it.
        e.process(0, &cancel(1, 2), &mut out);
        out.clear();
        e.process(0, &new(1, "GOOG", 10, 5, Side::Buy, 7), &mut out);
        assert_eq!(reject_reasons(&out), []);
        // Books held in other engines count too (threaded servers).
        out.clear();
        let msg = new(3, "IBM", 5, 1, Side::Buy, 1);
        e.process(0, &msg, &mut out);
        let elsewhere = Elsewhere {
            orders: 0,
            symbols: 2,
        };
        e.process_with_elsewhere(0, &new(3, "AAPL", 5, 1, Side::Buy, 2), elsewhere, &mut out);
        e.process_with_elsewhere(0, &new(3, "IBM", 4, 1, Side::Buy, 3), elsewhere, &mut out);
        assert_eq!(reject_reasons(&out), [(3, 2, RejectReason::PoolExhausted)]);
    }

    #[test]
    fn per_user_counting_starts_only_near_a_cap_and_stops_when_paid_for() {
        let config = EngineConfig {
            max_orders_per_user: 4,
            ..EngineConfig::default()
        };
        let mut e = Engine::new(config);
        let mut out = Vec::new();
        // Fewer resting orders in all than the cap: nothing is counted.
        for u in 1..=4 {
            e.process(0, &new(u, "IBM", 10, 1, Side::Buy, 1), &mut out);
        }
        assert!(!e.holdings.counting(Count::Orders));
        // Now the total reaches the cap: counting starts, with what rests already.
        e.process(0, &new(1, "IBM", 10, 1, Side::Buy, 2), &mut out);
        assert!(e.holdings.counting(Count::Orders));
        assert_eq!(e.user_resting_orders(1), 2);
        for oid in 3..5 {
            e.process(0, &new(1, "IBM", 10, 1, Side::Buy, oid), &mut out);
        }
        out.clear();
        e.process(0, &new(1, "IBM", 10, 1, Side::Buy, 9), &mut out);
        assert_eq!(reject_reasons(&out), [(1, 9, RejectReason::PoolExhausted)]);
        // Far below the cap again, counting stops once it has paid for its starting pass.
        e.process(0, &InputMsg::Flush, &mut out);
        let mut oid = 100;
        while e.holdings.counting(Count::Orders) {
            oid += 1;
            assert!(oid < 1000, "counting never stopped");
            e.process(0, &new(7, "IBM", 10, 1, Side::Buy, oid), &mut out);
            e.process(0, &cancel(7, oid), &mut out);
        }
        assert_eq!(e.user_resting_orders(7), 0);
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
