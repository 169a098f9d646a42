#!/usr/bin/env bash
# A three-node cluster on this machine (release build, every node a controller voter and a
# broker): produce throughput and end-to-end latency with replication factor 3 and acks=all
# against replication factor 1, then the time to fail over: an end-to-end run at a fixed rate
# while the leader of a partition is killed with SIGKILL (the dead broker is noticed after
# broker.session.timeout.ms) or stopped with SIGTERM (controlled shutdown); the worst
# end-to-end latency is how long records waited for a new leader.
# Usage: scripts/bench-cluster.sh   (env: RECORDS=500000, ROUNDS=2, CAUCE=binary)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
records=${RECORDS:-500000}
rounds=${ROUNDS:-2}
[[ -n ${CAUCE_SKIP_BUILD:-} ]] || cargo build --release --quiet --bin cauce

work=$(mktemp -d /tmp/cauce-cluster-XXXXXX)
declare -a pids=() kafka=() quorum=()
for node in 1 2 3; do kafka[$node]=$(free_port); quorum[$node]=$(free_port); done
voters="1@127.0.0.1:${quorum[1]},2@127.0.0.1:${quorum[2]},3@127.0.0.1:${quorum[3]}"
start_node() { # NODE
    local node=$1
    printf 'node.id = %s\nlisteners = "PLAINTEXT://127.0.0.1:%s,CONTROLLER://127.0.0.1:%s"\ncontroller.quorum.voters = "%s"\n' \
        "$node" "${kafka[$node]}" "${quorum[$node]}" "$voters" > "$work/node$node.toml"
    "$CAUCE" server --config "$work/node$node.toml" --data-dir "$work/data$node" \
        >> "$work/node$node.out" 2>> "$work/node$node.log" &
    pids[$node]=$!
}
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for node in 1 2 3; do start_node "$node"; done
brokers="127.0.0.1:${kafka[1]},127.0.0.1:${kafka[2]},127.0.0.1:${kafka[3]}"
until "$CAUCE" cluster info --brokers "$brokers" --json 2>/dev/null | grep -q '"broker_id": *3\|"id": *3'; do sleep 0.2; done
sleep 1

echo "# $(nproc) cores, $(date -u +%F), 3 nodes on one machine"
echo
echo "| replication | acks | records/s | MB/s | produce p99 ms | end-to-end p50 / p99 / p99.9 ms at 20,000/s |"
echo "|---|---|---|---|---|---|"
declare -A rps=() mbs=() p99=() e2e=()
for round in $(seq "$rounds"); do
    for rf in 1 3; do
        topic="rf$rf-$round"
        "$CAUCE" topic create "$topic" --brokers "$brokers" --partitions 6 --replication-factor "$rf" \
            --config min.insync.replicas=$(( rf == 3 ? 2 : 1 )) > /dev/null
        "$CAUCE" perf produce --brokers "$brokers" --topic "$topic" --record-size 1024 \
            --records "$records" --acks all --json > "$work/produce.json"
        rps[$rf]+="$(json_field "$work/produce.json" '["records_per_second"]') "
        mbs[$rf]+="$(json_field "$work/produce.json" '["megabytes_per_second"]') "
        p99[$rf]+="$(json_field "$work/produce.json" '["latency_ms"]["p99"]') "
        "$CAUCE" perf end-to-end --brokers "$brokers" --topic "$topic-e2e" --partitions 6 \
            --record-size 1024 --rate 20000 --duration 10 --json > "$work/e2e.json" 2> /dev/null || true
        e2e[$rf]+="$(json_field "$work/e2e.json" '["latency_ms"]["p50"]')/$(json_field "$work/e2e.json" '["latency_ms"]["p99"]')/$(json_field "$work/e2e.json" '["latency_ms"]["p99_9"]') "
    done
done
for rf in 1 3; do
    # shellcheck disable=SC2086
    printf '| %s | all | %.0f | %.1f | %.1f | %s |\n' "$rf" "$(median ${rps[$rf]})" \
        "$(median ${mbs[$rf]})" "$(median ${p99[$rf]})" "${e2e[$rf]}"
done

echo
echo "| failure | worst end-to-end latency (ms) | records |"
echo "|---|---|---|"
failover() { # SIGNAL LABEL
    local signal=$1 label=$2 topic="failover-$1"
    "$CAUCE" topic create "$topic" --brokers "$brokers" --partitions 1 --replication-factor 3 \
        --config min.insync.replicas=2 > /dev/null
    sleep 1
    local leader
    leader=$("$CAUCE" topic describe "$topic" --brokers "$brokers" --json | python3 -c \
        'import json,sys; print(json.load(sys.stdin)["partitions"][0]["leader"])')
    "$CAUCE" perf end-to-end --brokers "$brokers" --topic "$topic" --record-size 1024 --rate 2000 \
        --duration 25 --idle-timeout 60 --json > "$work/failover.json" &
    local runner=$!
    sleep 5
    kill "-$signal" "${pids[$leader]}"
    wait "${pids[$leader]}" 2> /dev/null || true
    wait "$runner"
    start_node "$leader"
    printf '| leader %s | %s | %s |\n' "$label" "$(json_field "$work/failover.json" '["latency_ms"]["max"]')" \
        "$(json_field "$work/failover.json" '["records"]')"
    sleep 10
}
failover KILL "killed (kill -9), noticed after broker.session.timeout.ms = 9 s"
failover TERM "stopped (SIGTERM): controlled shutdown"
