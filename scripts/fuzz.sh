#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan) into
# build/fuzz/ and runs each for SECONDS (default 20) on a scratch copy of its
# committed seed corpus, so that a run never writes into the repository.
# Prints one line per target and a final "N passed, M failed"; exits non-zero
# when any target fails to build or finds a crash, leak, timeout or OOM (the
# input is kept in build/fuzz/artifacts/<target>/, the log in build/fuzz/logs/).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Reproduce a finding: build/fuzz/<target> build/fuzz/artifacts/<target>/crash-...
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
seconds=${1:-20}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2
    exit 2
fi
out=build/fuzz

# Each target: the longest input it is given, and the project files it
# tests besides the codec that all of them use.
targets=(fuzz_route fuzz_request_decode fuzz_reply_decode fuzz_frames)
declare -A max_len=([fuzz_route]=20000 [fuzz_request_decode]=4096
                    [fuzz_reply_decode]=300000 [fuzz_frames]=65536)
declare -A extra_sources=([fuzz_route]=http_front/cart_route.c
                          [fuzz_reply_decode]=http_front/cart_render.c
                          [fuzz_frames]=proto/cart_msg.c)
codec=(proto/cart_types.c proto/cart_time.c proto/cart_wire.c proto/cart_mpack.c
       proto/cart_body.c proto/cart_control.c)

if ! command -v clang >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "fuzz: clang is missing; run as root to install it" >&2
        exit 1
    fi
    echo "[fuzz] installing clang"
    DEBIAN_FRONTEND=noninteractive apt-get install -y clang libclang-rt-14-dev >/dev/null \
        || exit 1
fi

mkdir -p "$out/logs"
cflags=(-std=gnu11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra
        "-fsanitize=fuzzer,address,undefined" -fno-sanitize-recover=all
        -Iproto -Ihttp_front -Itests/fuzz)
libs=(-lmsgpackc -ljansson -lzmq -lm)

passed=0
failed=0
for name in "${targets[@]}"; do
    log=$out/logs/$name.log
    # shellcheck disable=SC2086 # extra_sources is a list of paths
    if ! clang "${cflags[@]}" "tests/fuzz/$name.c" "${codec[@]}" \
            ${extra_sources[$name]:-} "${libs[@]}" \
            -o "$out/$name" >"$out/logs/$name.build.log" 2>&1; then
        printf '%-20s  BUILD FAILED (see %s)\n' "$name" "$out/logs/$name.build.log"
        failed=$((failed + 1))
        continue
    fi
    corpus=$out/corpus/$name
    artifacts=$out/artifacts/$name
    rm -rf "$corpus" "$artifacts"
    mkdir -p "$corpus" "$artifacts"
    cp tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null
    extra=()
    [ -f "tests/fuzz/$name.dict" ] && extra+=(-dict="tests/fuzz/$name.dict")
    # A 32 MB quarantine (256 MB by default) still holds every block one
    # input frees, and runs the allocation-heavy renderer about twice as fast.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:quarantine_size_mb=32} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$out/$name" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -max_len="${max_len[$name]}" -print_final_stats=1 -artifact_prefix="$artifacts/" \
        "${extra[@]}" "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n1)
    finding=$(find "$artifacts" -type f ! -name 'slow-unit-*' -printf '%f\n' | head -n1)
    if ((rc == 0)) && [ -z "$finding" ]; then
        result=clean
        passed=$((passed + 1))
    else
        what=$(grep -Em1 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error:|invariant failed' "$log" \
            | sed 's/^==[0-9]*==//')
        result="FAILED (exit $rc): ${what:-see $log}${finding:+; input $artifacts/$finding}"
        failed=$((failed + 1))
    fi
    printf '%-20s  %s execs (%s/s), %s, corpus %s: %s\n' "$name" "${execs:-?}" \
        "${rate:-?}" "${cov:-cov: ?}" "$(find "$corpus" -type f | wc -l)" "$result"
done
echo "$passed passed, $failed failed"
((failed == 0))
