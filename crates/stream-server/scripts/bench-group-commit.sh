#!/usr/bin/env bash
# Single PRODUCEs pipelined 50 deep under group commit, against what the fsync time allows: at
# best one fsync per window of 50, so 50 / (the time one fsync of a window's records takes).
# That time is measured two ways in the same run, each giving a bound and a ratio:
#   disk:   `stream-bench fsync` appends a window's 50 records to a file and fdatasyncs, 1000
#           times, in the server's data directory, before and after the load (the mean of the
#           two p50s): what making a window durable costs a log that grows its file;
#   server: the mean of the server's own fsyncs during the load, from its metrics
#           (strp_log_fsync_seconds_total / strp_log_fsyncs_total). The server writes zeros
#           ahead of its records (docs/storage.md), so its fsyncs cost less than the disk's.
# One or two server builds, alternating, so that both see the same machine, both loaded by this
# checkout's stream-bench.
#
#   crates/stream-server/scripts/bench-group-commit.sh [ROUNDS] [BASE_BIN_DIR]
#
# BASE_BIN_DIR holds an older build's stream-server (e.g. a worktree's target/release);
# without it only this checkout's release build is measured. A build without the fsync
# metrics shows no fsync count and no server ratio.
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
printf '%-6s %-6s %9s %7s %9s %11s %10s %11s %10s\n' round build msgs/s fsyncs "per fsync" \
    "disk fsync" "disk ratio" "srv fsync" "srv ratio"
for round in $(seq 1 "$rounds"); do
    for side in "${sides[@]}"; do
        name="${side%%=*}"
        bin="${side#*=}"
        dir=$(mktemp -d)
        log="$dir/server.log"
        probe() {
            "$bench" fsync --dir "$dir" --count 1000 --records "$depth" |
                grep -o 'p50 [0-9]*' | awk '{print $2}'
        }
        probe_before=$(probe)
        "$bin/stream-server" --data-dir="$dir/data" --port=0 --bind=127.0.0.1 \
            --metrics-port=0 --io-threads=2 --durability=group-commit >"$log" 2>&1 &
        pid=$!
        for _ in $(seq 1 600); do
            grep -q "listening on" "$log" && grep -q "/metrics" "$log" && break
            sleep 0.1
        done
        addr=$(grep -o 'listening on [0-9.]*:[0-9]*' "$log" | awk '{print $3}')
        metrics=$(grep -o 'http://[0-9.]*:[0-9]*/metrics' "$log" | head -1)
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
        probe_after=$(probe)
        rate=$(grep -o '= [0-9]* msgs/s' <<<"$out" | awk '{print $2}')
        awk -v r="$round" -v b="$name" -v rate="$rate" -v m="$messages" -v d="$depth" \
            -v p1="$probe_before" -v p2="$probe_after" \
            -v n0="$n0" -v n1="$n1" -v t0="$t0" -v t1="$t1" 'BEGIN {
                p = (p1 + p2) / 2;
                f = (n1 != "") ? n1 - n0 : 0;
                s = (t1 != "" && f > 0) ? (t1 - t0) / f * 1e6 : 0;
                printf "%-6s %-6s %9d %7s %9s %8.0f µs %10.2f %8s µs %10s\n", r, b, rate,
                    (f > 0) ? f : "-", (f > 0) ? sprintf("%.1f", m / f) : "-",
                    p, d / (p / 1e6) / rate, (s > 0) ? sprintf("%.0f", s) : "-",
                    (s > 0) ? sprintf("%.2f", d / (s / 1e6) / rate) : "-" }'
        rm -rf "$dir"
    done
done
