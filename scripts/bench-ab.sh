#!/usr/bin/env bash
# Before/after for a change on the request path: alternates two broker binaries, each round on a
# fresh broker and data dir, producing 1,000,000 records of 1 KiB (acks=1, 6 partitions) and
# 2,000,000 of 100 B, then consuming the 1 KiB ones back, with the same client (B's `cauce perf`);
# the consumer group's coordinator topic is created before the consume is measured.
# Prints the broker's CPU per record (utime+stime from /proc/PID/stat) and the rates per run.
#   scripts/bench-ab.sh BEFORE_BIN AFTER_BIN [rounds]
set -euo pipefail
before=$1 after=$2 rounds=${3:-3}
client=$after
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run_one() {
    local binary=$1 label=$2
    local data port broker
    data=$(mktemp -d /tmp/cauce-ab-XXXXXX)
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$binary" server --data-dir "$data" --listen "127.0.0.1:$port" > "$data.out" 2> /dev/null &
    broker=$!
    until grep -q "listening" "$data.out" 2>/dev/null; do sleep 0.05; done
    local line="$label"
    for spec in "1024 1000000 produce" "100 2000000 produce" "1024 1000000 consume"; do
        set -- $spec
        local start end rate
        if [ "$3" = consume ]; then
            # The first group makes the broker create __consumer_offsets (50 partitions): a
            # one-off cost that depends on the filesystem, kept out of the measured window.
            "$client" perf consume --brokers "127.0.0.1:$port" --topic t100 --records 1 --json > /dev/null
        fi
        start=$(cpu_ticks $broker)
        if [ "$3" = produce ]; then
            rate=$("$client" perf produce --brokers "127.0.0.1:$port" --topic "t$1" --record-size "$1" \
                --records "$2" --acks 1 --json | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["records_per_second"]))')
        else
            rate=$("$client" perf consume --brokers "127.0.0.1:$port" --topic "t$1" --records "$2" --json \
                | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["records_per_second"]))')
        fi
        end=$(cpu_ticks $broker)
        local micros
        micros=$(python3 -c "print(f'{($end - $start) / $ticks * 1e6 / $2:.3f}')")
        line="$line | $3 $1 B: ${rate}/s ${micros} µs/rec"
    done
    kill $broker; wait $broker 2>/dev/null || true
    rm -rf "$data" "$data.out"
    echo "$line"
}
sync
for round in $(seq "$rounds"); do
    run_one "$before" "before"
    run_one "$after" "after "
done
