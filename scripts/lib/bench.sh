# Shared by the benchmark scripts: start a broker, read its CPU time and memory, run `cauce perf`.
# Source it; it expects `set -euo pipefail` and uses $CAUCE (the cauce binary to run).

CAUCE=${CAUCE:-target/release/cauce}
CLOCK_TICKS=$(getconf CLK_TCK)

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_cauce DATA_DIR PORT [BINARY]: starts a broker in the background, sets $broker_pid, waits
# until it listens, and sets $startup_ms to how long that took.
start_cauce() {
    local data=$1 port=$2 binary=${3:-$CAUCE} started
    started=$(date +%s%N)
    "$binary" server --data-dir "$data" --listen "127.0.0.1:$port" > "$data.out" 2> "$data.log" &
    broker_pid=$!
    until grep -q "listening" "$data.out" 2>/dev/null; do
        kill -0 "$broker_pid" 2>/dev/null || { cat "$data.log" >&2; return 1; }
        sleep 0.01
    done
    startup_ms=$(( ($(date +%s%N) - started) / 1000000 ))
}

stop_broker() {
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
}

# CPU time (utime + stime) a process has used, in clock ticks; fields counted after the command
# name, which may hold spaces.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# rss_mib PID [VmRSS|VmHWM]: resident memory, or its peak, in MiB.
rss_mib() { awk -v key="${2:-VmRSS}:" '$1 == key { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# json_field FILE EXPRESSION: a value of the JSON document in FILE, e.g. '["latency_ms"]["p99"]'.
json_field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))$2)" "$1"; }

# measured PID OUT_JSON -- COMMAND...: runs a `cauce perf ... --json` command with its output in
# OUT_JSON, then prints the broker's CPU microseconds per record during it.
measured() {
    local pid=$1 out=$2 before after records
    shift 3
    before=$(cpu_ticks "$pid")
    "$@" --json > "$out"
    after=$(cpu_ticks "$pid")
    records=$(json_field "$out" '["records"]')
    python3 -c "print(f'{($after - $before) * 1e6 / $CLOCK_TICKS / $records:.2f}')"
}

# median of its arguments.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
