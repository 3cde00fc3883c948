//! Holds no code: the crate exists for its benchmark, `benches/kafka_vs_strp.rs`, which
//! drives stream-server through librdkafka and through STRP's client library in one run
//! (`scripts/bench.sh`; figures in `docs/performance.md`).
