#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (seconds per target, default 60), starting from the
# seeds in fuzz/seeds/<target> (requests captured from real clients, see
# scripts/capture-fuzz-seeds.py) plus what earlier runs on this machine found. A crash, an
# allocation above -malloc_limit_mb or a leak fails the run; libFuzzer leaves the input in
# fuzz/artifacts/<target>/, and it becomes a regression test.
#
#   scripts/fuzz.sh            # 60 s per target
#   scripts/fuzz.sh 600 record_batch
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(request_frame request_body record_batch decompress quorum_frame metadata_records group_records txn_records segment_recovery)
fi

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

cargo +nightly fuzz build --release --debug-assertions
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus" "fuzz/seeds/$target"
    # No single allocation may exceed 64 MiB: inputs are small, so anything larger was sized by
    # a length the input made up.
    log="$(mktemp)"
    if ! cargo +nightly fuzz run --release --debug-assertions "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -malloc_limit_mb=64 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    coverage="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || echo 'cov: ?')"
    echo "fuzz $target: $runs executions in ${seconds}s, $coverage, corpus $(ls "$corpus" | wc -l) inputs"
    rm -f "$log"
done
