#!/usr/bin/env bash
# Starts a single-node broker on 127.0.0.1:9092 with data under ./cauce-data, building it first
# (and installing the build's system packages if they are missing). Extra arguments go to
# `cauce server`, e.g. --listen 127.0.0.1:19092 or --config config/cauce.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-build-deps.sh
exec cargo run --release --bin cauce -- server "$@"
