#!/usr/bin/env bash
# Single PRODUCEs pipelined 50 deep under group commit, against what the disk's fsync time
# allows (one fsync per window of 50: 50 / fsync p50), for one or two builds in the same run,
# alternating, so that both see the same machine. The fsyncs each server really ran are
# counted with `perf stat` (syscalls:sys_enter_fdatasync).
#
#   crates/stream-server/scripts/bench-group-commit.sh [ROUNDS] [BASE_BIN_DIR]
#
# BASE_BIN_DIR holds an older build's stream-server and stream-bench (e.g. a worktree's
# target/release); without it only this checkout's release build is measured.
set -euo pipefail
cd "$(dirname "$0")/../../.."
rounds="${1:-3}"
base="${2:-}"
messages="${MESSAGES:-100000}"
cargo build --release -p stream-server --bins
sides=("now=target/release")
[ -n "$base" ] && sides=("before=$base" "${sides[@]}")
command -v perf >/dev/null || { echo "perf is needed (apt-get install linux-perf)" >&2; exit 1; }
printf '%-7s %-6s %10s %8s %12s %10s %10s %6s\n' round build msgs/s fsyncs "per fsync" \
    "fsync p50" bound ratio
for round in $(seq 1 "$rounds"); do
    for side in "${sides[@]}"; do
        name="${side%%=*}"
        bin="${side#*=}"
        dir=$(mktemp -d)
        log="$dir/server.log"
        "$bin/stream-server" --data-dir="$dir/data" --port=0 --bind=127.0.0.1 \
            --metrics-port=off --io-threads=2 --durability=group-commit >"$log" 2>&1 &
        pid=$!
        for _ in $(seq 1 600); do grep -q "listening on" "$log" && break; sleep 0.1; done
        addr=$(grep -o 'listening on [0-9.]*:[0-9]*' "$log" | awk '{print $3}')
        p50=$(target/release/stream-bench fsync --dir "$dir" --count 1000 |
            grep -o 'p50 [0-9]*' | awk '{print $2}')
        perf stat -x, -e syscalls:sys_enter_fdatasync -p "$pid" -o "$dir/perf" &
        perf_pid=$!
        sleep 0.5 # perf attaches asynchronously; its counting starts within this
        out=$("$bin/stream-bench" --addr "$addr" --topic p50 --partitions 1 \
            produce --messages "$messages" --pipeline 50)
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
        kill -TERM "$pid"
        wait "$pid" || true
        rate=$(grep -o '= [0-9]* msgs/s' <<<"$out" | awk '{print $2}')
        fsyncs=$(grep fdatasync "$dir/perf" | cut -d, -f1)
        awk -v r="$round" -v n="$name" -v rate="$rate" -v f="$fsyncs" -v m="$messages" \
            -v p="$p50" 'BEGIN {
                bound = 50 / (p / 1e6);
                printf "%-7s %-6s %10d %8d %12.1f %8d µs %10d %6.2f\n",
                    r, n, rate, f, m / f, p, bound, bound / rate }'
        rm -rf "$dir"
    done
done
