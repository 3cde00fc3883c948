//! The STRP stream server: a Kafka-like broker over the `stream-log` storage engine.
//!
//! Modules: [`config`] (flags/env), [`server`] (accept loop, shutdown), [`conn`] (one
//! pipelined connection), [`broker`] (request handling), [`budget`] (the memory budget of
//! requests in flight and unsent answers), [`groups`] (consumer groups), [`metrics`]
//! (Prometheus).

#![warn(missing_docs)]

pub mod broker;
pub mod budget;
pub mod config;
pub mod conn;
pub mod groups;
pub mod metrics;
pub mod server;
