//! Shared by the integration tests: the real stream-server, started by test-support.

#![allow(unused_imports)] // each test binary uses a different subset

pub use test_support::stream_server::*;
