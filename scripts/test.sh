#!/usr/bin/env bash
# Builds everything and runs every test, twice: a normal build (build/) and
# one under AddressSanitizer + UndefinedBehaviorSanitizer (build/asan/).
# Installs what is missing first (scripts/deps.sh). Run as root on Debian 12.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc)

echo "== build"
bash scripts/build.sh

echo "== build under ASan + UBSan"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DCART_SANITIZE=ON \
    -DCART_DEPS_DIR="$top/build/deps" >/dev/null
cmake --build build/asan -j"$jobs"

echo "== tests"
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build/asan --output-on-failure -j"$jobs"

echo "== fuzzing (libFuzzer, bounded time per target)"
bash scripts/fuzz.sh "${CART_FUZZ_SECONDS:-20}"
