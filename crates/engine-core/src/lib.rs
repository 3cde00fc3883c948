//! The matching engine's core: order books, price-time priority matching, and the CSV and
//! binary codecs, all sharing one message model. Nothing here touches a socket or a file;
//! `engine-server` wraps it with transports.

mod arena;
pub mod binary;
mod book;
pub mod checks;
pub mod csv;
pub mod engine;
mod index;
pub mod message;
pub mod replay;
mod users;
#[cfg(feature = "workload")]
pub mod workload;

pub use engine::{
    Elsewhere, Engine, EngineConfig, Route, Sink, DEFAULT_MAX_ORDERS_PER_USER, DEFAULT_MAX_SYMBOLS,
    DEFAULT_MAX_SYMBOLS_PER_USER,
};
pub use message::{
    CancelOrder, ClientId, InputMsg, NewOrder, OrderId, OutputMsg, Price, Qty, RejectReason, Side,
    Symbol, UserId,
};
