//! The STRP stream server: a Kafka-like broker over the `stream-log` storage engine.
//!
//! Modules: [`config`] (flags/env), [`server`] (accept loop, shutdown), [`sniff`] (which
//! protocol a connection speaks), [`conn`] (one pipelined STRP connection), [`kafka`] (the
//! Kafka protocol), [`broker`] (request handling), [`budget`] (the memory budget of
//! requests in flight and unsent answers), [`groups`] (consumer groups), [`metrics`]
//! (Prometheus). The binary's allocator, which keeps a Kafka decoder's claimed length from
//! aborting the process, is `process_limits::LazyHugeAlloc`.

#![warn(missing_docs)]

pub mod broker;
pub mod budget;
pub mod config;
pub mod conn;
pub mod groups;
pub mod kafka;
pub mod metrics;
pub mod server;
pub mod sniff;
