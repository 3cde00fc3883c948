//! Coinbase Exchange FIX (FIXT.1.1 / FIX 5.0 SP2) to stream-server topics.
//!
//! Data flow: [`gateway`] keeps one TLS FIX session per gateway (market data, and order
//! entry or drop copy), turning application messages into [`publish::Record`]s via
//! [`marketdata`] and [`executions`]; records go through a bounded buffer to one pump task
//! that publishes them with a [`publish::Publisher`] ([`stream::StreamPublisher`] over STRP,
//! or [`kafka::KafkaPublisher`] over the Kafka protocol), so a slow or absent stream server
//! never stalls the FIX sessions.

#![warn(missing_docs)]

pub mod auth;
pub mod backoff;
pub mod config;
pub mod executions;
pub mod gateway;
pub mod kafka;
pub mod marketdata;
pub mod publish;
pub mod stream;
pub mod tls;
