//! Property test: random order flow through the engine and through a small, obviously correct
//! reference model (flat vectors, linear scans, no cleverness); the output streams (messages
//! and their routes) must be identical, and so must `owns_order`, the resting orders that the
//! engine's `Sink::rested` / `Sink::left` events describe, and the top of book.
//!
//! The flow uses a few users, order ids, symbols and clients and a narrow price band, so that
//! duplicates, trades, sweeps, cancels of filled orders and capacity limits happen often.

use std::collections::BTreeMap;

use engine_core::{
    CancelOrder, ClientId, Engine, EngineConfig, InputMsg, NewOrder, OrderId, OutputMsg, Price,
    Qty, RejectReason, Route, Side, Sink, Symbol, UserId,
};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
struct Order {
    user: UserId,
    oid: OrderId,
    price: Price,
    qty: Qty,
    client: ClientId,
    seq: u64,
}

#[derive(Default, Debug)]
struct ModelBook {
    bids: Vec<Order>,
    asks: Vec<Order>,
}

type Top = Option<(Price, Qty)>;

impl ModelBook {
    fn side(&self, side: Side) -> &Vec<Order> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut Vec<Order> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// Orders of a side in priority order: best price first, then oldest first.
    fn sorted(&self, side: Side) -> Vec<Order> {
        let mut v = self.side(side).clone();
        v.sort_by_key(|o| match side {
            Side::Buy => (u64::from(u32::MAX - o.price), o.seq),
            Side::Sell => (u64::from(o.price), o.seq),
        });
        v
    }

    fn top(&self, side: Side) -> Top {
        let best = self.sorted(side).first()?.price;
        let total: u64 = self
            .side(side)
            .iter()
            .filter(|o| o.price == best)
            .map(|o| u64::from(o.qty))
            .sum();
        Some((best, total.min(u64::from(u32::MAX)) as Qty))
    }

    fn tops(&self) -> [Top; 2] {
        [self.top(Side::Buy), self.top(Side::Sell)]
    }
}

fn opposite(side: Side) -> Side {
    match side {
        Side::Buy => Side::Sell,
        Side::Sell => Side::Buy,
    }
}

fn crosses(side: Side, limit: Price, resting: Price) -> bool {
    limit == 0
        || match side {
            Side::Buy => resting <= limit,
            Side::Sell => resting >= limit,
        }
}

struct Model {
    config: EngineConfig,
    books: BTreeMap<Symbol, ModelBook>,
    seq: u64,
}

type Out = Vec<(OutputMsg, Route)>;

impl Model {
    fn find(&self, user: UserId, oid: OrderId) -> Option<Symbol> {
        self.books.iter().find_map(|(s, b)| {
            b.bids
                .iter()
                .chain(&b.asks)
                .any(|o| o.user == user && o.oid == oid)
                .then_some(*s)
        })
    }

    /// Books holding orders (an empty one holds no symbol slot: the engine reclaims it).
    fn books_in_use(&self) -> usize {
        self.books
            .values()
            .filter(|b| !b.bids.is_empty() || !b.asks.is_empty())
            .count()
    }

    /// Books in which `user` has resting orders.
    fn user_symbols(&self, user: UserId) -> usize {
        self.books
            .values()
            .filter(|b| b.bids.iter().chain(&b.asks).any(|o| o.user == user))
            .count()
    }

    /// Orders of `user` resting in any book.
    fn user_orders(&self, user: UserId) -> usize {
        self.books
            .values()
            .flat_map(|b| b.bids.iter().chain(&b.asks))
            .filter(|o| o.user == user)
            .count()
    }

    fn emit_tops(sym: Symbol, book: &ModelBook, before: [Top; 2], out: &mut Out) {
        for (side, was) in [Side::Buy, Side::Sell].into_iter().zip(before) {
            let now = book.top(side);
            if now != was {
                out.push((
                    OutputMsg::TopOfBook {
                        symbol: sym,
                        side,
                        level: now,
                    },
                    Route::MarketData,
                ));
            }
        }
    }

    fn process(&mut self, origin: ClientId, msg: &InputMsg, out: &mut Out) {
        match *msg {
            InputMsg::New(o) => self.new_order(origin, o, out),
            InputMsg::Cancel(c) => self.cancel(c, out),
            InputMsg::Flush => self.cancel_where(out, |_| true),
        }
    }

    fn new_order(&mut self, origin: ClientId, o: NewOrder, out: &mut Out) {
        let reject = |reason, out: &mut Out| {
            out.push((
                OutputMsg::Reject {
                    symbol: o.symbol,
                    user: o.user,
                    user_order_id: o.user_order_id,
                    reason,
                },
                Route::Origin,
            ))
        };
        if o.symbol_too_long || o.symbol.is_empty() {
            return reject(RejectReason::UnknownSymbol, out);
        }
        if o.user == 0 && o.user_order_id == 0 {
            return reject(RejectReason::InvalidOrderId, out);
        }
        if o.qty == 0 {
            return reject(RejectReason::InvalidQuantity, out);
        }
        if self.find(o.user, o.user_order_id).is_some() {
            return reject(RejectReason::DuplicateOrderId, out);
        }
        let config = self.config.clone();
        let user_full = self.user_orders(o.user) >= config.max_orders_per_user;
        let holds_here = self
            .books
            .get(&o.symbol)
            .is_some_and(|b| b.bids.iter().chain(&b.asks).any(|r| r.user == o.user));
        let symbols_full = self.user_symbols(o.user) >= config.max_symbols_per_user && !holds_here;
        // A symbol needs a book (a slot of `max_symbols`) only while orders rest in it.
        let in_use = self.books_in_use();
        let book = self.books.entry(o.symbol).or_default();
        let needs_slot = book.bids.is_empty() && book.asks.is_empty();
        if o.price != 0 {
            let orders = book.bids.len() + book.asks.len();
            let own = book.side(o.side);
            let mut levels: Vec<Price> = own.iter().map(|r| r.price).collect();
            levels.sort();
            levels.dedup();
            let full = orders >= config.max_orders_per_book
                || (levels.len() >= config.max_levels_per_book && !levels.contains(&o.price));
            let fillable: u64 = book
                .side(opposite(o.side))
                .iter()
                .filter(|r| crosses(o.side, o.price, r.price))
                .map(|r| u64::from(r.qty))
                .sum();
            let would_rest = fillable < u64::from(o.qty);
            if would_rest && (user_full || symbols_full) {
                return reject(RejectReason::PoolExhausted, out);
            }
            if would_rest && full {
                return reject(RejectReason::BookFull, out);
            }
            if would_rest && needs_slot && in_use >= config.max_symbols {
                return reject(RejectReason::PoolExhausted, out);
            }
        }
        let before = book.tops();
        out.push((
            OutputMsg::Ack {
                symbol: o.symbol,
                user: o.user,
                user_order_id: o.user_order_id,
            },
            Route::Origin,
        ));
        let mut left = o.qty;
        while left > 0 {
            let Some(best) = book
                .sorted(opposite(o.side))
                .into_iter()
                .find(|r| crosses(o.side, o.price, r.price))
            else {
                break;
            };
            let fill = left.min(best.qty);
            left -= fill;
            let (buy, sell, buyer, seller) = match o.side {
                Side::Buy => (
                    (o.user, o.user_order_id),
                    (best.user, best.oid),
                    origin,
                    best.client,
                ),
                Side::Sell => (
                    (best.user, best.oid),
                    (o.user, o.user_order_id),
                    best.client,
                    origin,
                ),
            };
            out.push((
                OutputMsg::Trade {
                    symbol: o.symbol,
                    buy_user: buy.0,
                    buy_order_id: buy.1,
                    sell_user: sell.0,
                    sell_order_id: sell.1,
                    price: best.price,
                    qty: fill,
                },
                Route::Trade { buyer, seller },
            ));
            let resting = book.side_mut(opposite(o.side));
            let i = resting.iter().position(|r| r.seq == best.seq).unwrap();
            resting[i].qty -= fill;
            if resting[i].qty == 0 {
                resting.remove(i);
            }
        }
        if left > 0 && o.price != 0 {
            self.seq += 1;
            book.side_mut(o.side).push(Order {
                user: o.user,
                oid: o.user_order_id,
                price: o.price,
                qty: left,
                client: origin,
                seq: self.seq,
            });
        }
        Self::emit_tops(o.symbol, book, before, out);
    }

    fn cancel(&mut self, c: CancelOrder, out: &mut Out) {
        let given = c.symbol.filter(|s| !s.is_empty());
        let reject = |reason, out: &mut Out| {
            out.push((
                OutputMsg::Reject {
                    symbol: given.unwrap_or(Symbol::EMPTY),
                    user: c.user,
                    user_order_id: c.user_order_id,
                    reason,
                },
                Route::Origin,
            ))
        };
        if c.user == 0 && c.user_order_id == 0 {
            return reject(RejectReason::InvalidOrderId, out);
        }
        let Some(sym) = self.find(c.user, c.user_order_id) else {
            return reject(RejectReason::OrderNotFound, out);
        };
        if given.is_some_and(|g| g != sym) {
            return reject(RejectReason::OrderNotFound, out);
        }
        let book = self.books.get_mut(&sym).unwrap();
        let before = book.tops();
        book.bids
            .retain(|o| !(o.user == c.user && o.oid == c.user_order_id));
        book.asks
            .retain(|o| !(o.user == c.user && o.oid == c.user_order_id));
        out.push((
            OutputMsg::CancelAck {
                symbol: sym,
                user: c.user,
                user_order_id: c.user_order_id,
            },
            Route::Origin,
        ));
        Self::emit_tops(sym, book, before, out);
    }

    /// Flush (`pred` always true) or cancel-on-disconnect: books in symbol order, bids then
    /// asks in priority order.
    fn cancel_where(&mut self, out: &mut Out, pred: impl Fn(&Order) -> bool) {
        for (sym, book) in self.books.iter_mut() {
            let before = book.tops();
            for side in [Side::Buy, Side::Sell] {
                for o in book.sorted(side) {
                    if pred(&o) {
                        out.push((
                            OutputMsg::CancelAck {
                                symbol: *sym,
                                user: o.user,
                                user_order_id: o.oid,
                            },
                            Route::Client(o.client),
                        ));
                    }
                }
                book.side_mut(side).retain(|o| !pred(o));
            }
            Self::emit_tops(*sym, book, before, out);
        }
    }
}

/// The output of one step, and the resting orders as the engine's `rested` / `left` events
/// tell them (kept across steps).
struct Collect<'a>(Out, &'a mut BTreeMap<(UserId, OrderId), Symbol>);

impl Sink for Collect<'_> {
    fn emit(&mut self, msg: &OutputMsg, route: Route) {
        self.0.push((*msg, route));
    }

    fn rested(&mut self, user: UserId, user_order_id: OrderId, symbol: Symbol) {
        let old = self.1.insert((user, user_order_id), symbol);
        assert_eq!(old, None, "rested twice: {user}, {user_order_id}");
    }

    fn left(&mut self, user: UserId, user_order_id: OrderId, symbol: Symbol) {
        let old = self.1.remove(&(user, user_order_id));
        assert_eq!(
            old,
            Some(symbol),
            "left but not resting: {user}, {user_order_id}"
        );
    }
}

#[derive(Clone, Debug)]
enum Op {
    Msg(ClientId, InputMsg),
    Disconnect(ClientId),
}

fn symbol() -> impl Strategy<Value = Symbol> {
    prop_oneof![
        Just(Symbol::new(b"A").unwrap()),
        Just(Symbol::new(b"B").unwrap()),
        Just(Symbol::new(b"ZZ").unwrap()),
        Just(Symbol::new(b"AB").unwrap()),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let new = (
        0u32..4,
        0u32..8,
        prop_oneof![20 => symbol().prop_map(|s| (s, false)), 1 => Just((Symbol::EMPTY, false)),
                    1 => Just((Symbol::new(b"LONGSYMB").unwrap(), true))],
        prop_oneof![1 => Just(0u32), 9 => 95u32..106],
        prop_oneof![1 => Just(0u32), 19 => 1u32..40],
        any::<bool>(),
    )
        .prop_map(|(user, oid, (symbol, too_long), price, qty, buy)| {
            InputMsg::New(NewOrder {
                user,
                symbol,
                symbol_too_long: too_long,
                price,
                qty,
                side: if buy { Side::Buy } else { Side::Sell },
                user_order_id: oid,
            })
        });
    let cancel = (0u32..4, 0u32..8, proptest::option::of(symbol())).prop_map(
        |(user, user_order_id, symbol)| {
            InputMsg::Cancel(CancelOrder {
                user,
                user_order_id,
                symbol,
            })
        },
    );
    let msg = prop_oneof![12 => new, 5 => cancel, 1 => Just(InputMsg::Flush)];
    prop_oneof![
        30 => (0u32..3, msg).prop_map(|(c, m)| Op::Msg(c, m)),
        1 => (0u32..3).prop_map(Op::Disconnect),
    ]
}

fn run(config: EngineConfig, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut engine = Engine::new(config.clone());
    let mut model = Model {
        config,
        books: BTreeMap::new(),
        seq: 0,
    };
    let mut resting = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        let mut got = Collect(Vec::new(), &mut resting);
        let mut want = Vec::new();
        match op {
            Op::Msg(client, msg) => {
                // Prefetch hints must never change anything.
                engine.prefetch(msg);
                engine.prefetch_orders(msg);
                engine.process(*client, msg, &mut got);
                model.process(*client, msg, &mut want);
            }
            Op::Disconnect(client) => {
                engine.cancel_client_orders(*client, &mut got);
                model.cancel_where(&mut want, |o| o.client == *client);
            }
        }
        prop_assert_eq!(&got.0, &want, "step {}: {:?}", i, op);
        for user in 0..4 {
            for oid in 0..8 {
                prop_assert_eq!(
                    engine.owns_order(user, oid),
                    model.find(user, oid).is_some(),
                    "owns_order({}, {}) after step {}",
                    user,
                    oid,
                    i
                );
                prop_assert_eq!(
                    resting.get(&(user, oid)).copied(),
                    model.find(user, oid),
                    "rested/left events for ({}, {}) after step {}",
                    user,
                    oid,
                    i
                );
            }
        }
        for user in 0..4 {
            prop_assert_eq!(
                engine.user_resting_orders(user),
                model.user_orders(user),
                "user_resting_orders({}) after step {}",
                user,
                i
            );
            prop_assert_eq!(
                engine.user_symbols(user),
                model.user_symbols(user),
                "user_symbols({}) after step {}",
                user,
                i
            );
        }
        prop_assert!(engine.books() <= model.config.max_symbols);
        for (sym, book) in &model.books {
            for side in [Side::Buy, Side::Sell] {
                prop_assert_eq!(engine.top_of_book(*sym, side), book.top(side));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn engine_matches_the_reference_model(ops in proptest::collection::vec(op(), 1..200)) {
        run(EngineConfig::default(), &ops)?;
    }

    #[test]
    fn engine_matches_the_reference_model_at_capacity_limits(
        ops in proptest::collection::vec(op(), 1..200),
        max_orders in 1usize..6,
        max_levels in 1usize..4,
        max_symbols in 1usize..4,
        max_per_user in 1usize..5,
        max_symbols_per_user in 1usize..4,
    ) {
        let config = EngineConfig {
            max_orders_per_book: max_orders,
            max_levels_per_book: max_levels,
            max_symbols,
            max_orders_per_user: max_per_user,
            max_symbols_per_user,
            max_price: Price::MAX,
        };
        run(config, &ops)?;
    }
}
