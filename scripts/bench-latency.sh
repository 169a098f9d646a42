#!/usr/bin/env bash
# End-to-end latency at half the maximum rate (issue 4's target: p99 <= 3 ms there).
# Every run gets a fresh broker and data directory, so runs do not inherit each other's dirty
# pages. The maximum is the median of unthrottled `cauce perf end-to-end` runs; then runs at
# half of it, with the same record size, partitions, linger and duration, give the latency.
# Runs last 30 s by default: long enough that page-cache writeback happens during them, as it
# does in production (a 10 s run at 200 MB/s never reaches the kernel's flush threshold).
# Usage: scripts/bench-latency.sh   (env: DURATION=30, ROUNDS=3, LINGER_MS=0.5, RECORD_SIZE=1024,
#                                     CAUCE=binary)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
duration=${DURATION:-30}
rounds=${ROUNDS:-3}
linger=${LINGER_MS:-0.5}
record_size=${RECORD_SIZE:-1024}
[[ -n ${CAUCE_SKIP_BUILD:-} ]] || cargo build --release --quiet --bin cauce

work=$(mktemp -d /tmp/cauce-latency-XXXXXX)
trap 'stop_broker; rm -rf "$work"' EXIT

# one_run RATE OUT_JSON: a fresh broker, one end-to-end run at RATE (0: unthrottled).
one_run() {
    local rate=$1 out=$2 port
    rm -rf "$work/data"
    # Let the previous run's writeback finish first: each run starts on a quiet machine.
    sync
    sleep 2
    port=$(free_port)
    start_cauce "$work/data" "$port"
    "$CAUCE" perf end-to-end --brokers "127.0.0.1:$port" --topic latency --partitions 6 \
        --record-size "$record_size" --duration "$duration" --rate "$rate" \
        --linger-ms "$linger" --json > "$out"
    stop_broker
}

echo "# $(nproc) cores, $(date -u +%F), ${record_size} B records, 6 partitions, linger.ms $linger, ${duration} s runs"
maxima=()
for round in $(seq 2); do
    one_run 0 "$work/max.json"
    maxima+=("$(json_field "$work/max.json" '["records_per_second"]')")
done
maximum=$(median "${maxima[@]}")
half=$(python3 -c "print(int($maximum / 2))")
echo "unthrottled: ${maxima[*]} records/s; half of the median: $half records/s"
echo
echo "| run | records/s | p50 ms | p99 ms | p99.9 ms | max ms |"
echo "|---|---|---|---|---|---|"
for round in $(seq "$rounds"); do
    one_run "$half" "$work/half.json"
    latency() { json_field "$work/half.json" "[\"latency_ms\"][\"$1\"]"; }
    echo "| $round | $(json_field "$work/half.json" '["records_per_second"]') | $(latency p50) | $(latency p99) | $(latency p99_9) | $(latency max) |"
done
