#!/usr/bin/env bash
# The BENCHMARKS.md matrix, measured with `cauce perf` (librdkafka) against one release broker on
# this machine, client and broker sharing it:
#   - produce: 100 B and 1 KiB values, acks=1 and all, 1 and 4 producers, 6 and 100 partitions;
#     records/s, MB/s, p99 send-to-ack latency, broker CPU µs per record;
#   - consume: 1 KiB records from the page cache, and a 2 GiB backlog read after dropping the
#     page cache (needs root; said in the output when it could not be dropped);
#   - end-to-end p50/p99/p99.9 at half the maximum rate of that same end-to-end workload;
#   - broker RSS idle and its peak under that load;
#   - startup time with 1,000 partitions on disk, after a clean stop and after kill -9.
# Each produce cell is run ROUNDS times (default 3), rounds alternating over the whole matrix,
# and the median is shown. Broker CPU is utime+stime from /proc/PID/stat around each run.
# Usage: scripts/bench-matrix.sh   (env: ROUNDS, RECORDS_100B, RECORDS_1K, CAUCE=binary)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
rounds=${ROUNDS:-3}
records_100b=${RECORDS_100B:-2000000}
records_1k=${RECORDS_1K:-1000000}
[[ -n ${CAUCE_SKIP_BUILD:-} ]] || cargo build --release --quiet --bin cauce

data=$(mktemp -d /tmp/cauce-matrix-XXXXXX)
port=$(free_port)
brokers="127.0.0.1:$port"
results=$data.results
trap 'stop_broker; rm -rf "$data" "$data.out" "$data.log" "$results"' EXIT
mkdir -p "$results"
start_cauce "$data/broker" "$port"
sleep 1
idle_rss=$(rss_mib "$broker_pid")

echo "# $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -r), $(date -u +%F)"
echo
echo "## Produce (median of $rounds)"
echo
echo "| value | acks | producers | partitions | records/s | MB/s | p99 ms | broker µs/record |"
echo "|---|---|---|---|---|---|---|---|"
cells=()
for size in 100 1024; do
    for acks in 1 all; do
        for producers in 1 4; do
            for partitions in 6 100; do
                cells+=("$size $acks $producers $partitions")
            done
        done
    done
done
for round in $(seq "$rounds"); do
    for cell in "${cells[@]}"; do
        read -r size acks producers partitions <<< "$cell"
        records=$records_1k
        [[ $size == 100 ]] && records=$records_100b
        key="$size-$acks-$producers-$partitions"
        out="$results/$key.$round.json"
        cpu=$(measured "$broker_pid" "$out" -- "$CAUCE" perf produce --brokers "$brokers" \
            --topic "produce-$key-$round" --partitions "$partitions" --record-size "$size" \
            --records "$records" --acks "$acks" --producers "$producers")
        echo "$cpu" > "$results/$key.$round.cpu"
        # Keep the disk from filling (and writeback from throttling later cells); one topic
        # stays for the page-cache consume runs.
        [[ $key == 1024-1-1-6 ]] || "$CAUCE" topic delete --brokers "$brokers" \
            "produce-$key-$round" > /dev/null
    done
done
field_median() { # KEY FIELD
    local values=()
    for round in $(seq "$rounds"); do values+=("$(json_field "$results/$1.$round.json" "$2")"); done
    median "${values[@]}"
}
for cell in "${cells[@]}"; do
    read -r size acks producers partitions <<< "$cell"
    key="$size-$acks-$producers-$partitions"
    cpus=()
    for round in $(seq "$rounds"); do cpus+=("$(cat "$results/$key.$round.cpu")"); done
    printf '| %s B | %s | %s | %s | %.0f | %.1f | %.1f | %s |\n' "$size" "$acks" "$producers" \
        "$partitions" "$(field_median "$key" '["records_per_second"]')" \
        "$(field_median "$key" '["megabytes_per_second"]')" \
        "$(field_median "$key" '["latency_ms"]["p99"]')" "$(median "${cpus[@]}")"
done

echo
echo "## Consume, 1 KiB records, 6 partitions, one consumer"
echo
echo "| source | records | records/s | MB/s | broker µs/record |"
echo "|---|---|---|---|---|"
consume() { # TOPIC RECORDS LABEL
    local cpu
    cpu=$(measured "$broker_pid" "$results/consume.json" -- "$CAUCE" perf consume \
        --brokers "$brokers" --topic "$1" --records "$2")
    printf '| %s | %s | %.0f | %.1f | %s |\n' "$3" "$2" \
        "$(json_field "$results/consume.json" '["records_per_second"]')" \
        "$(json_field "$results/consume.json" '["megabytes_per_second"]')" "$cpu"
}
for round in $(seq "$rounds"); do
    consume "produce-1024-1-1-6-$round" "$records_1k" "page cache (run $round)"
done
backlog=2097152
"$CAUCE" perf produce --brokers "$brokers" --topic backlog --partitions 6 --record-size 1024 \
    --records "$backlog" --acks 1 --json > /dev/null
sync
if { echo 1 > /proc/sys/vm/drop_caches; } 2> /dev/null; then
    consume backlog "$backlog" "2 GiB backlog, page cache dropped"
else
    consume backlog "$backlog" "2 GiB backlog (page cache could not be dropped)"
fi

e2e() { # RATE DURATION OUT
    "$CAUCE" perf end-to-end --brokers "$brokers" --topic "e2e-$1" --record-size 1024 \
        --rate "$1" --duration "$2" --json > "$3"
    "$CAUCE" topic delete --brokers "$brokers" "e2e-$1" > /dev/null
}
e2e 0 10 "$results/e2e-max.json"
max_rate=$(json_field "$results/e2e-max.json" '["records_per_second"]')
rate=$(python3 -c "print(int($max_rate / 2))")
e2e "$rate" 20 "$results/e2e.json"
echo
echo "## End to end, 1 KiB records, 6 partitions, acks=all"
echo
echo "One process produces and consumes; its unthrottled rate was $(printf '%.0f' "$max_rate") records/s."
echo
echo "| rate | p50 ms | p99 ms | p99.9 ms | max ms |"
echo "|---|---|---|---|---|"
printf '| %s | %s | %s | %s | %s |\n' "$rate" \
    "$(json_field "$results/e2e.json" '["latency_ms"]["p50"]')" \
    "$(json_field "$results/e2e.json" '["latency_ms"]["p99"]')" \
    "$(json_field "$results/e2e.json" '["latency_ms"]["p99_9"]')" \
    "$(json_field "$results/e2e.json" '["latency_ms"]["max"]')"
load_peak_rss=$(rss_mib "$broker_pid" VmHWM)

echo
echo "## Memory"
echo
echo "Broker RSS idle after start: $idle_rss MiB; peak during the runs above: $load_peak_rss MiB; now: $(rss_mib "$broker_pid") MiB; data written: $(du -sh "$data/broker" | cut -f1)."
stop_broker
rm -rf "$data/broker"

echo
echo "## Startup with 1,000 partitions on disk (10 topics of 100, 1,000 records each)"
echo
start_cauce "$data/startup" "$port"
for topic in $(seq 10); do
    "$CAUCE" perf produce --brokers "$brokers" --topic "startup-$topic" --partitions 100 \
        --record-size 100 --records 1000 --keyed --json > /dev/null
done
stop_broker
start_cauce "$data/startup" "$port"
clean=$startup_ms
kill -9 "$broker_pid"; wait "$broker_pid" 2> /dev/null || true
start_cauce "$data/startup" "$port"
crashed=$startup_ms
echo "After a clean stop: $clean ms to listening; after kill -9 (recovery of every active segment): $crashed ms."
