#!/usr/bin/env bash
# Reproduces the "Stream server" figures of docs/performance.md: starts a release
# stream-server per durability policy on a temp data dir, runs stream-bench against it, stops
# it. Usage: crates/stream-server/scripts/bench.sh [group-commit|never|every-write ...]
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build --release -p stream-server --bins
policies=("$@")
[ "${#policies[@]}" -eq 0 ] && policies=(group-commit never)
for policy in "${policies[@]}"; do
    dir=$(mktemp -d)
    log="$dir/server.log"
    target/release/stream-server --data-dir="$dir/data" --port=0 --bind=127.0.0.1 \
        --metrics-port=off --io-threads=2 --durability="$policy" >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do grep -q "listening on" "$log" && break; sleep 0.1; done
    addr=$(grep -o 'listening on [0-9.]*:[0-9]*' "$log" | awk '{print $3}')
    echo "=== durability=$policy server=$addr $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
    b=(target/release/stream-bench --addr "$addr")
    "${b[@]}" --topic batch --partitions 4 batch --messages 5000000 --batch 1000 --connections 2 --pipeline 8
    "${b[@]}" --topic single --partitions 4 produce --messages 1000000 --pipeline 4096
    "${b[@]}" --topic single256 --partitions 4 produce --messages 300000 --pipeline 256
    "${b[@]}" --topic batch --partitions 4 fetch --max-messages 10000
    "${b[@]}" --topic lat --partitions 1 latency --requests "${LAT_REQUESTS:-20000}" --warmup 2000
    kill -TERM "$pid"
    wait "$pid" || true
    rm -rf "$dir"
done
