#!/usr/bin/env bash
# Pipelined binary throughput with small and with large books, back to back against the same
# release build (a fresh single-threaded server for each run: the large workload's ids are
# fixed), ROUNDS times; the "Large books" figures of docs/performance.md.
# Usage: crates/engine-server/scripts/bench-books.sh [ROUNDS] [extra server flags...]
set -euo pipefail
cd "$(dirname "$0")/../../.."
rounds=${1:-3}
shift || true
cargo build --release -p engine-server >/dev/null
R=${CARGO_TARGET_DIR:-target}/release
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "== $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
run() {
    $R/matching_engine --bind 127.0.0.1 --tcp-port 0 --udp-enabled=false --quiet "$@" 2>"$log" &
    pid=$!
    until grep -q "matching_engine ready" "$log"; do sleep 0.05; done
    addr=$(grep -o "TCP listening on [0-9.:]*" "$log" | awk '{print $4}')
}
for r in $(seq "$rounds"); do
    run "$@"
    echo "round $r small: $($R/engine-bench --addr "$addr" --mode throughput --orders 2000000)"
    kill "$pid"; wait "$pid" || true
    run "$@"
    echo "round $r large: $($R/engine-bench --addr "$addr" --mode throughput --workload large --orders 1000000)"
    kill "$pid"; wait "$pid" || true
done
