#!/usr/bin/env bash
# Runs every test: installs what the tests need, builds, runs the Rust suites with nextest
# (real brokers, real librdkafka), the Python suite (kafka-python against a real broker), and
# every fuzz target for a bounded time (FUZZ_SECONDS per target, 60 by default; nightly Rust and
# cargo-fuzz are installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-build-deps.sh
if ! command -v cargo-nextest >/dev/null && ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
fi

if ! command -v cargo-machete >/dev/null; then
    cargo install --locked cargo-machete
fi
# A declared dependency that no code uses fails the run (the dependency rules themselves are
# the test crates/integration-tests/tests/it/architecture.rs).
cargo machete

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt

cargo build --workspace --all-targets
cargo nextest run --workspace --no-fail-fast
CAUCE_BIN="$PWD/target/debug/cauce" .venv/bin/python -m pytest -q tests/python
scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
