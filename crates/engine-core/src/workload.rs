//! The benchmark workload shared by `benches/engine.rs` (criterion, throughput),
//! `benches/latency.rs` (hdrhistogram, per-message percentiles) and the server's `engine-bench
//! --workload large` (the same stream over TCP). Behind the `workload` feature, so that only
//! those tools build it and pull in `rand`; one module rather than a file included by path, so
//! it is compiled, linted and documented once.
//!
//! 100 symbols, each primed with a book of thousands of resting orders spread over ~50 levels
//! per side, then a stream of: ~60% new limit orders near the touch (0 to ~8 ticks behind the
//! best, never crossing), ~30% cancels of orders that are resting (or were, a few have been
//! filled meanwhile: those cancels are rejected, as in real flow; see `uniform_cancels` for which
//! orders), ~10% aggressive orders that
//! cross the spread and trade (a fifth of them market orders). The stream is generated against
//! a shadow engine so that cancels name live orders and "near the touch" is the real touch; the
//! measured run replays the same messages on a freshly primed engine, so it sees the same
//! states.

use crate::{
    CancelOrder, Engine, EngineConfig, InputMsg, NewOrder, OutputMsg, Route, Side, Sink, Symbol,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Number of symbols.
pub const SYMBOLS: usize = 100;
/// Resting orders primed per symbol, unless `ENGINE_BENCH_RESTING` says otherwise.
pub const RESTING_PER_SYMBOL: usize = 2_000;

/// Resting orders primed per symbol for this run.
pub fn resting_per_symbol() -> usize {
    std::env::var("ENGINE_BENCH_RESTING")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RESTING_PER_SYMBOL)
}
/// Price around which every book starts.
const MID: u32 = 100_000;

/// Which resting order a cancel names: by default one of the ~200 most recently placed orders
/// of the symbol still listed (real cancel flow is dominated by quotes being replaced near the
/// touch, i.e. young orders); with `ENGINE_BENCH_CANCELS=uniform`, any live order, uniformly
/// (the cache-hostile worst case: every cancel touches cold memory).
pub fn uniform_cancels() -> bool {
    std::env::var("ENGINE_BENCH_CANCELS").is_ok_and(|v| v == "uniform")
}

fn cancel_index(rng: &mut SmallRng, len: usize, uniform: bool) -> usize {
    if uniform {
        rng.gen_range(0..len)
    } else {
        len - 1 - rng.gen_range(0..len.min(200))
    }
}

/// Primed books and the message stream to measure.
pub struct Workload {
    /// Messages that build the initial books (not measured).
    pub prime: Vec<InputMsg>,
    /// The measured stream.
    pub stream: Vec<InputMsg>,
}

struct Discard;

impl Sink for Discard {
    fn emit(&mut self, _msg: &OutputMsg, _route: Route) {}
}

/// A fresh engine with the workload's books primed.
pub fn primed_engine(w: &Workload) -> Engine {
    let mut engine = Engine::new(EngineConfig::default());
    engine.reserve(SYMBOLS * resting_per_symbol() * 2);
    for m in &w.prime {
        engine.process(0, m, &mut Discard);
    }
    engine
}

/// Builds the workload: `n` measured messages.
pub fn build(n: usize) -> Workload {
    let mut rng = SmallRng::seed_from_u64(42);
    let symbols: Vec<Symbol> = (0..SYMBOLS)
        .map(|i| Symbol::new(format!("S{i:03}").as_bytes()).unwrap())
        .collect();
    let mut shadow = Engine::new(EngineConfig::default());
    let mut live: Vec<Vec<(u32, u32)>> = vec![Vec::new(); SYMBOLS];
    let mut next_id: u64 = 0;
    let mut new_id = || {
        next_id += 1;
        ((next_id % 1000) as u32 + 1, (next_id / 1000) as u32)
    };

    let mut prime = Vec::new();
    for (s, &symbol) in symbols.iter().enumerate() {
        for i in 0..resting_per_symbol() {
            let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
            let depth = rng.gen_range(0..50u32);
            let price = match side {
                Side::Buy => MID - 1 - depth,
                Side::Sell => MID + 1 + depth,
            };
            let (user, user_order_id) = new_id();
            let m = InputMsg::New(NewOrder {
                user,
                symbol,
                symbol_too_long: false,
                price,
                qty: rng.gen_range(1..=100),
                side,
                user_order_id,
            });
            shadow.process(0, &m, &mut Discard);
            live[s].push((user, user_order_id));
            prime.push(m);
        }
    }

    let uniform = uniform_cancels();
    let mut stream = Vec::with_capacity(n);
    while stream.len() < n {
        let s = rng.gen_range(0..SYMBOLS);
        let symbol = symbols[s];
        let side = if rng.gen_bool(0.5) {
            Side::Buy
        } else {
            Side::Sell
        };
        let bid = shadow.top_of_book(symbol, Side::Buy).map(|t| t.0);
        let ask = shadow.top_of_book(symbol, Side::Sell).map(|t| t.0);
        let roll = rng.gen_range(0..100);
        let m = if roll < 60 {
            // Passive: at or a few ticks behind the best of its own side, never crossing.
            let behind = rng.gen_range(0..4u32) * rng.gen_range(0..3u32);
            let price = match side {
                Side::Buy => {
                    let best = bid.unwrap_or(MID - 1);
                    let p = best.saturating_sub(behind).max(1);
                    ask.map_or(p, |a| p.min(a - 1))
                }
                Side::Sell => {
                    let best = ask.unwrap_or(MID + 1);
                    let p = best + behind;
                    bid.map_or(p, |b| p.max(b + 1))
                }
            };
            let (user, user_order_id) = new_id();
            live[s].push((user, user_order_id));
            InputMsg::New(NewOrder {
                user,
                symbol,
                symbol_too_long: false,
                price,
                qty: rng.gen_range(1..=100),
                side,
                user_order_id,
            })
        } else if roll < 90 {
            let list = &mut live[s];
            if list.is_empty() {
                continue;
            }
            // Prefer orders still resting (a filled one is occasionally named: rejected 4).
            let mut pick = list.swap_remove(cancel_index(&mut rng, list.len(), uniform));
            for _ in 0..3 {
                if shadow.owns_order(pick.0, pick.1) || list.is_empty() {
                    break;
                }
                pick = list.swap_remove(cancel_index(&mut rng, list.len(), uniform));
            }
            InputMsg::Cancel(CancelOrder {
                user: pick.0,
                user_order_id: pick.1,
                symbol: rng.gen_bool(0.5).then_some(symbol),
            })
        } else {
            // Aggressive: through the opposite best by 0-2 ticks, or a market order.
            let through = rng.gen_range(0..3u32);
            let price = if rng.gen_range(0..5) == 0 {
                0
            } else {
                match side {
                    Side::Buy => ask.unwrap_or(MID) + through,
                    Side::Sell => bid.unwrap_or(MID).saturating_sub(through).max(1),
                }
            };
            let (user, user_order_id) = new_id();
            if price != 0 {
                live[s].push((user, user_order_id));
            }
            InputMsg::New(NewOrder {
                user,
                symbol,
                symbol_too_long: false,
                price,
                qty: rng.gen_range(1..=150),
                side,
                user_order_id,
            })
        };
        shadow.process(0, &m, &mut Discard);
        stream.push(m);
    }
    Workload { prime, stream }
}
