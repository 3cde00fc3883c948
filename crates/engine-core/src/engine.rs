//! The multi-symbol engine: one order book per symbol, created on first use.
//!
//! CONTRACT (used by `engine-server`; implementation may change, signatures may not without
//! updating the server): `Engine::new`, `Engine::process`, `Engine::cancel_client_orders`,
//! `Engine::owns_order`, the `Sink` trait and the `Route` enum.

use crate::message::{InputMsg, OrderId, OutputMsg, UserId};

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

/// Capacity limits; hitting one is a reject, never a panic or an unbounded allocation.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Resting orders per book (reject 9 "book full" beyond).
    pub max_orders_per_book: usize,
    /// Distinct price levels per side of a book (reject 9 beyond).
    pub max_levels_per_book: usize,
    /// Number of books (reject 6 "pool exhausted" for a new symbol beyond).
    pub max_symbols: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_orders_per_book: 1 << 20,
            max_levels_per_book: 1 << 16,
            max_symbols: 4096,
        }
    }
}

/// The engine: all books of one processor.
pub struct Engine {
    _config: EngineConfig,
}

impl Engine {
    /// An engine with no books yet.
    pub fn new(config: EngineConfig) -> Engine {
        Engine { _config: config }
    }

    /// Processes one input message from `origin`, emitting its output lines in spec order.
    pub fn process<S: Sink>(&mut self, _origin: ClientId, _msg: &InputMsg, _sink: &mut S) {
        todo!("engine-core: matching")
    }

    /// Cancels every resting order that `client` placed (cancel-on-disconnect), emitting a
    /// cancel ack routed `Route::Client(client)` per order and the top-of-book changes routed
    /// `Route::MarketData`. Books in symbol order, as a flush would.
    pub fn cancel_client_orders<S: Sink>(&mut self, _client: ClientId, _sink: &mut S) {
        todo!("engine-core: cancel on disconnect")
    }

    /// True when (user, user order id) is resting in one of this engine's books (used by the
    /// threaded server to route a cancel that names no symbol).
    pub fn owns_order(&self, _user: UserId, _user_order_id: OrderId) -> bool {
        todo!("engine-core: order index")
    }
}
