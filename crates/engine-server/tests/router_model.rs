//! Property test: for arbitrary message streams from several clients (order-id collisions,
//! cancels with/without/empty/wrong symbols, flushes, disconnects), the threaded router with
//! 1, 2 or 3 processors delivers to every client exactly the bytes a single in-thread engine does;
//! also with tiny caps on resting orders and on symbols per user, which the router enforces
//! across processors.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use engine_core::{
    CancelOrder, ClientId, Engine, EngineConfig, InputMsg, NewOrder, OutputMsg, Route, Side, Sink,
    Symbol,
};
use engine_server::hub::{Hub, TcpOut};
use engine_server::router::{Deliver, Router};
use proptest::prelude::*;
use tokio::sync::Notify;

#[derive(Clone, Debug)]
enum Step {
    Msg(ClientId, InputMsg),
    Disconnect(ClientId),
}

const SYMBOLS: [&str; 7] = ["IBM", "AAPL", "MSFT", "GOOG", "TSLA", "NVDA", ""];

fn symbol(i: usize) -> Symbol {
    Symbol::new(SYMBOLS[i].as_bytes()).unwrap()
}

fn step() -> impl Strategy<Value = Step> {
    let new = (
        1..4u32,
        0..3u32,
        0..7usize,
        0..6u32,
        0..20u32,
        any::<bool>(),
        0..12u32,
    )
        .prop_map(|(c, user, s, price, qty, buy, oid)| {
            Step::Msg(
                c,
                InputMsg::New(NewOrder {
                    user,
                    symbol: symbol(s),
                    symbol_too_long: false,
                    price: if price == 0 { 0 } else { 100 + price },
                    qty,
                    side: if buy { Side::Buy } else { Side::Sell },
                    user_order_id: oid,
                }),
            )
        });
    let cancel =
        (1..4u32, 0..3u32, 0..12u32, prop::option::of(0..7usize)).prop_map(|(c, user, oid, s)| {
            Step::Msg(
                c,
                InputMsg::Cancel(CancelOrder {
                    user,
                    user_order_id: oid,
                    symbol: s.map(symbol),
                }),
            )
        });
    prop_oneof![
        10 => new,
        4 => cancel,
        1 => (1..4u32).prop_map(|c| Step::Msg(c, InputMsg::Flush)),
        1 => (1..4u32).prop_map(Step::Disconnect),
    ]
}

struct HubSink<'a> {
    hub: &'a mut Hub,
    origin: ClientId,
}

impl Sink for HubSink<'_> {
    fn emit(&mut self, msg: &OutputMsg, route: Route) {
        self.hub.deliver(self.origin, msg, route);
    }
}

/// A hub with clients 1..=3, and their output queues.
fn hub() -> (Hub, Vec<Rc<TcpOut>>) {
    let mut hub = Hub::new(usize::MAX, engine_server::msglog::MessageLog::new(0));
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let outs: Vec<Rc<TcpOut>> = (0..3).map(|_| Rc::new(TcpOut::new())).collect();
    for (i, o) in outs.iter().enumerate() {
        assert_eq!(hub.add_tcp(peer, o.clone()), i as ClientId + 1);
    }
    (hub, outs)
}

fn taken(outs: &[Rc<TcpOut>]) -> Vec<Vec<u8>> {
    outs.iter().map(|o| o.buf.borrow().clone()).collect()
}

fn single(steps: &[Step], config: &EngineConfig) -> Vec<Vec<u8>> {
    let (mut hub, outs) = hub();
    let mut engine = Engine::new(config.clone());
    for s in steps {
        match s {
            Step::Msg(c, m) => engine.process(
                *c,
                m,
                &mut HubSink {
                    hub: &mut hub,
                    origin: *c,
                },
            ),
            Step::Disconnect(c) => engine.cancel_client_orders(
                *c,
                &mut HubSink {
                    hub: &mut hub,
                    origin: *c,
                },
            ),
        }
    }
    taken(&outs)
}

fn threaded(steps: &[Step], n: usize, config: &EngineConfig) -> Vec<Vec<u8>> {
    let (mut hub, outs) = hub();
    route(steps, n, config, &mut hub);
    taken(&outs)
}

/// Feeds `steps` through a router of `n` processors, delivering into `out` until done.
fn route<D: Deliver>(steps: &[Step], n: usize, config: &EngineConfig, out: &mut D) {
    let mut router = Router::start(
        n,
        8,
        Duration::from_micros(5),
        Arc::new(Notify::new()),
        config.clone(),
    )
    .unwrap();
    for s in steps {
        match s {
            Step::Msg(c, m) => router.submit(*c, *m, out),
            Step::Disconnect(c) => router.disconnect(*c, out),
        }
    }
    while !router.idle() {
        router.drain(out);
        std::thread::yield_now();
    }
    router.shutdown();
}

/// The output sequence as a `Deliver` sees it: (origin, message, route).
type Delivered = Vec<(ClientId, OutputMsg, Route)>;

/// Records what a single engine emits as the router's `Deliver` would see it.
struct Recorded<'a>(&'a mut Delivered, ClientId);

impl Sink for Recorded<'_> {
    fn emit(&mut self, msg: &OutputMsg, route: Route) {
        self.0.push((self.1, *msg, route));
    }
}

/// The whole output sequence, with origins and routes (not only each client's bytes): one
/// engine's, and the router's through a `Vec` as its `Deliver`.
fn sequences(steps: &[Step], n: usize, config: &EngineConfig) -> (Delivered, Delivered) {
    let mut want = Vec::new();
    let mut engine = Engine::new(config.clone());
    for s in steps {
        match s {
            Step::Msg(c, m) => engine.process(*c, m, &mut Recorded(&mut want, *c)),
            Step::Disconnect(c) => engine.cancel_client_orders(*c, &mut Recorded(&mut want, *c)),
        }
    }
    let mut got: Delivered = Vec::new();
    route(steps, n, config, &mut got);
    (want, got)
}

fn compare(steps: &[Step], config: &EngineConfig) -> Result<(), TestCaseError> {
    let want = single(steps, config);
    for n in [1, 2, 3] {
        let got = threaded(steps, n, config);
        for c in 0..3 {
            prop_assert_eq!(
                String::from_utf8_lossy(&got[c]),
                String::from_utf8_lossy(&want[c]),
                "client {} with {} processors, {:?}",
                c + 1,
                n,
                config
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn threaded_router_matches_single_engine(steps in prop::collection::vec(step(), 1..300)) {
        compare(&steps, &EngineConfig::default())?;
    }

    #[test]
    fn threaded_router_matches_single_engine_with_a_per_user_cap(
        steps in prop::collection::vec(step(), 1..300),
        cap in 1usize..5,
    ) {
        let config = EngineConfig { max_orders_per_user: cap, ..EngineConfig::default() };
        compare(&steps, &config)?;
    }

    #[test]
    fn threaded_router_matches_single_engine_with_a_per_user_symbol_cap(
        steps in prop::collection::vec(step(), 1..300),
        symbols in 1usize..4,
        orders in prop_oneof![Just(usize::MAX), 2usize..6],
    ) {
        let config = EngineConfig {
            max_symbols_per_user: symbols,
            max_orders_per_user: orders,
            ..EngineConfig::default()
        };
        compare(&steps, &config)?;
    }

    // The router's own first checks are the engine's (`checks::validate_new`): with a price
    // cap an order above it is rejected with 3 by its engine, never with 5 by the router
    // (an id resting on another processor), and the full sequence of (origin, message, route)
    // is a single engine's.
    #[test]
    fn threaded_router_emits_a_single_engines_sequence_with_routes(
        steps in prop::collection::vec(step(), 1..300),
        max_price in prop_oneof![Just(u32::MAX), 101u32..106],
        n in 2usize..4,
    ) {
        let config = EngineConfig { max_price, ..EngineConfig::default() };
        let (want, got) = sequences(&steps, n, &config);
        prop_assert_eq!(got, want, "{} processors, {:?}", n, config);
    }
}
