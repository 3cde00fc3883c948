#!/usr/bin/env bash
# Reproduces the "Matching engine server" figures of docs/performance.md: builds release, runs
# the kernel-loopback baselines (blocking and busy-polling), then latency (with a blocking and a
# busy-polling client) and throughput against a fresh server in each mode.
# Usage: crates/engine-server/scripts/bench.sh [extra server flags...]
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build --release -p engine-server >/dev/null
R=target/release
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "== $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
$R/engine-bench --mode echo-baseline --orders 50000
$R/engine-bench --mode echo-baseline --orders 50000 --spin
for mode in "--threaded=false" "--threaded" "--busy-poll"; do
    $R/matching_engine --bind 127.0.0.1 --tcp-port 0 --udp-enabled=false "$mode" "$@" 2>"$log" &
    pid=$!
    until grep -q "matching_engine ready" "$log"; do sleep 0.1; done
    addr=$(grep -o "TCP listening on [0-9.:]*" "$log" | awk '{print $4}')
    echo "== $(grep -o 'ready: .*' "$log")"
    $R/engine-bench --addr "$addr" --mode latency --orders 50000
    $R/engine-bench --addr "$addr" --mode latency --orders 50000 --spin
    $R/engine-bench --addr "$addr" --mode latency --orders 50000 --wire csv --spin
    $R/engine-bench --addr "$addr" --mode throughput --orders 2000000
    $R/engine-bench --addr "$addr" --mode throughput --orders 2000000 --wire csv
    $R/engine-bench --addr "$addr" --mode throughput --orders 1000000 --clients 2
    kill "$pid"
    wait "$pid"
done
