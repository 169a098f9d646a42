#!/usr/bin/env bash
# Runs every test: installs what the tests need, builds, runs the Rust suites with nextest
# (real brokers, real librdkafka) and the Python suite (kafka-python against a real broker).
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
command -v cmake >/dev/null || need_packages+=(cmake)
dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || need_packages+=(libcurl4-openssl-dev)
command -v kcat >/dev/null || need_packages+=(kcat)
if [ ${#need_packages[@]} -gt 0 ]; then
    echo "installing ${need_packages[*]} (librdkafka's build and the kcat tests need them)"
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "${need_packages[@]}"; else sudo apt-get update -qq && sudo apt-get install -y -qq "${need_packages[@]}"; fi
fi
if ! command -v cargo-nextest >/dev/null && ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt

cargo build --workspace --all-targets
cargo nextest run --workspace --no-fail-fast
CAUCE_BIN="$PWD/target/debug/cauce" .venv/bin/python -m pytest -q tests/python
