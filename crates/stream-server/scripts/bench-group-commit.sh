#!/usr/bin/env bash
# Single PRODUCEs pipelined 50 deep under group commit, against what the fsync time allows: at
# best one fsync per window of 50, so 50 / (the time one fsync of a window's appends takes).
# That time is measured twice, in the same run: by the server itself (the mean of its own
# fsyncs, from its metrics strp_log_fsync_seconds_total / strp_log_fsyncs_total), which the
# ratio uses, and by `stream-bench fsync`, appending a window's 50 records per fdatasync in the
# server's data directory. One or two server builds, alternating, so that both see the same
# machine, both loaded by this checkout's stream-bench.
#
#   crates/stream-server/scripts/bench-group-commit.sh [ROUNDS] [BASE_BIN_DIR]
#
# BASE_BIN_DIR holds an older build's stream-server (e.g. a worktree's target/release);
# without it only this checkout's release build is measured. A build without the fsync
# metrics shows no fsync count and gets its bound from the probe.
#
# Nothing traces the server while it is measured: `perf stat -e syscalls:...` would put every
# syscall of its threads on the slow tracing path and cost it a fifth of its throughput.
set -euo pipefail
cd "$(dirname "$0")/../../.."
rounds="${1:-3}"
base="${2:-}"
messages="${MESSAGES:-200000}"
depth=50
cargo build --release -p stream-server --bins
bench=target/release/stream-bench
sides=("now=target/release")
[ -n "$base" ] && sides=("before=$base" "${sides[@]}")
gauge() { # gauge NAME METRICS_URL: the value, or nothing when the server has no such series
    curl -fsS "$2" | awk -v n="$1" '$1 == n { print $2 }'
}
printf '%-6s %-6s %9s %7s %10s %13s %12s %9s %6s\n' round build msgs/s fsyncs "per fsync" \
    "server fsync" "probe fsync" bound ratio
for round in $(seq 1 "$rounds"); do
    for side in "${sides[@]}"; do
        name="${side%%=*}"
        bin="${side#*=}"
        dir=$(mktemp -d)
        log="$dir/server.log"
        "$bin/stream-server" --data-dir="$dir/data" --port=0 --bind=127.0.0.1 \
            --metrics-port=0 --io-threads=2 --durability=group-commit >"$log" 2>&1 &
        pid=$!
        for _ in $(seq 1 600); do
            grep -q "listening on" "$log" && grep -q "/metrics" "$log" && break
            sleep 0.1
        done
        addr=$(grep -o 'listening on [0-9.]*:[0-9]*' "$log" | awk '{print $3}')
        metrics=$(grep -o 'http://[0-9.]*:[0-9]*/metrics' "$log" | head -1)
        probe=$("$bench" fsync --dir "$dir" --count 1000 --records "$depth" |
            grep -o 'p50 [0-9]*' | awk '{print $2}')
        "$bench" --addr "$addr" --topic p50 --partitions 1 produce --messages 100 \
            --pipeline 1 >/dev/null # creates the topic
        sleep 1.2 # the gauges are refreshed every second
        n0=$(gauge strp_log_fsyncs_total "$metrics")
        t0=$(gauge strp_log_fsync_seconds_total "$metrics")
        out=$("$bench" --addr "$addr" --topic p50 --partitions 1 \
            produce --messages "$messages" --pipeline "$depth")
        sleep 1.2
        n1=$(gauge strp_log_fsyncs_total "$metrics")
        t1=$(gauge strp_log_fsync_seconds_total "$metrics")
        kill -TERM "$pid"
        wait "$pid" || true
        rate=$(grep -o '= [0-9]* msgs/s' <<<"$out" | awk '{print $2}')
        awk -v r="$round" -v b="$name" -v rate="$rate" -v m="$messages" -v p="$probe" \
            -v n0="$n0" -v n1="$n1" -v t0="$t0" -v t1="$t1" -v d="$depth" 'BEGIN {
                f = (n1 != "") ? n1 - n0 : 0;
                s = (t1 != "" && f > 0) ? (t1 - t0) / f * 1e6 : 0;
                t = (s > 0) ? s : p;
                bound = d / (t / 1e6);
                printf "%-6s %-6s %9d %7s %10s %10s µs %9d µs %9d %6.2f\n", r, b, rate,
                    (f > 0) ? f : "-", (f > 0) ? sprintf("%.1f", m / f) : "-",
                    (s > 0) ? sprintf("%.0f", s) : "-", p, bound, bound / rate }'
        rm -rf "$dir"
    done
done
