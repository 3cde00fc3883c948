#!/usr/bin/env bash
# Reproduces the "Kafka clients" figures of docs/performance.md: starts a release stream-server
# (group commit, the default) on a temp data dir and runs the kafka_vs_strp benchmark against
# it: librdkafka (Debian's, through the rdkafka crate) and STRP's client library in one run.
# Usage: crates/kafka-bench/scripts/bench.sh [runs] [-- extra benchmark flags]
# Needs librdkafka-dev and pkg-config (scripts/install-test-deps installs them).
set -euo pipefail
cd "$(dirname "$0")/../../.."
runs=${1:-1}
shift || true
[ "${1:-}" = "--" ] && shift
cargo build --release -p stream-server --bins
cargo bench -p kafka-bench --bench kafka_vs_strp --no-run
for run in $(seq 1 "$runs"); do
    dir=$(mktemp -d)
    log="$dir/server.log"
    "${CARGO_TARGET_DIR:-target}/release/stream-server" --data-dir="$dir/data" --port=0 --bind=127.0.0.1 \
        --metrics-port=off --io-threads=2 >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do grep -q "listening on" "$log" && break; sleep 0.1; done
    addr=$(grep -o 'listening on [0-9.]*:[0-9]*' "$log" | awk '{print $3}')
    echo "=== run $run, durability=group-commit server=$addr $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
    cargo bench -q -p kafka-bench --bench kafka_vs_strp -- --addr "$addr" "$@" || status=$?
    kill -TERM "$pid"
    wait "$pid" || true
    rm -rf "$dir"
    [ "${status:-0}" -eq 0 ] || exit "$status"
done
