#!/usr/bin/env bash
# Installs the system packages the build needs: cmake and libcurl headers for librdkafka
# (the rdkafka crate builds it from source), and kcat, which the tests use as an older client.
set -euo pipefail
need_packages=()
command -v cmake >/dev/null || need_packages+=(cmake)
dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || need_packages+=(libcurl4-openssl-dev)
command -v kcat >/dev/null || need_packages+=(kcat)
if [ ${#need_packages[@]} -gt 0 ]; then
    echo "installing ${need_packages[*]}"
    sudo_if_needed=()
    [ "$(id -u)" = 0 ] || sudo_if_needed=(sudo)
    "${sudo_if_needed[@]}" apt-get update -qq
    "${sudo_if_needed[@]}" apt-get install -y -qq "${need_packages[@]}"
fi
