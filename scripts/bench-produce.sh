#!/usr/bin/env bash
# Produce throughput through librdkafka: one producer, 6 partitions, 100 B and 1 KiB values,
# acks=1 and acks=all; then the same after 2 GiB more have been appended to the same
# partitions, to show that throughput does not fall as the log grows.
# Usage: scripts/bench-produce.sh [records-per-run]   (release build; results on stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
cargo build --release --quiet --bin cauce --bin cauce-produce-bench
data=$(mktemp -d /tmp/cauce-bench-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/cauce server --data-dir "$data" --listen "127.0.0.1:$port" > "$data.out" 2> "$data.log" &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$data" "$data.out" "$data.log"' EXIT
until grep -q "listening" "$data.out" 2>/dev/null; do sleep 0.05; done

bench() { target/release/cauce-produce-bench --bootstrap "127.0.0.1:$port" --partitions 6 "$@"; }
run_matrix() {
    for size in 100 1024; do
        for acks in 1 all; do
            bench --topic "bench-$size" --value-size "$size" --acks "$acks" --records "$records"
        done
    done
}
echo "# empty log"
run_matrix
echo "# appending 2 GiB"
bench --topic bench-1024 --value-size 1024 --acks 1 --records 2097152 > /dev/null
bench --topic bench-100 --value-size 100 --acks 1 --records 1000000 > /dev/null
du -sh "$data"
echo "# after 2 GiB"
run_matrix
