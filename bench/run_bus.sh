#!/usr/bin/env bash
# The bus benchmark with Redis for scale: builds bench_bus, installs
# redis-server when it is missing (as root, from Debian), runs
# redis-benchmark against a private redis-server on 127.0.0.1 (a free
# port, no persistence, stopped at the end), then bench_bus with Redis's
# figure for the ratio (inproc, tcp and tcp with CURVE, by default).
# Extra arguments go to bench_bus (try --help).
#
#   bash bench/run_bus.sh [bench_bus options]
#
# Run it after the README's set-up (scripts/run.sh or scripts/test.sh),
# which installs the build's dependencies and czmq. About a minute.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

log() { printf '[run_bus] %s\n' "$*"; }
log "command: bash bench/run_bus.sh $*"

# 1. bench_bus, built as the README builds everything.
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target bench_bus >/dev/null

# 2. Redis, from Debian's packages when missing.
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        log "redis-server is missing and we are not root: running bench_bus alone"
        exec build/bin/bench_bus "$@"
    fi
    log "installing redis-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends redis-server >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
              redis-server >/dev/null; }
fi

# 3. A private redis-server on a free port of 127.0.0.1, read until it says
#    it is ready (a deadline of 10 s, no sleeping), stopped on any exit.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
exec {redis_out}< <(exec redis-server --bind 127.0.0.1 --port "$port" --save '' \
                         --appendonly no --daemonize no --protected-mode yes 2>&1)
redis_pid=$!
stop_redis() {
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
}
trap stop_redis EXIT
ready=0
for _ in $(seq 1 200); do
    IFS= read -r -t 10 -u "$redis_out" line || break
    if [[ $line == *"Ready to accept connections"* ]]; then
        ready=1
        break
    fi
done
if [ "$ready" != 1 ]; then
    log "redis-server did not start on port $port: running bench_bus alone"
    stop_redis
    trap - EXIT
    exec build/bin/bench_bus "$@"
fi
cat <&"$redis_out" >/dev/null & # keep its log pipe drained

# 4. redis-benchmark, then bench_bus with its figure.
redis_cmd=(redis-benchmark -h 127.0.0.1 -p "$port" -P 16 -t set -n 1000000 -q)
log "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$port"
log "${redis_cmd[*]}"
redis_line=$("${redis_cmd[@]}" 2>&1 | tr '\r' '\n' | grep 'requests per second' | tail -n1)
echo "$redis_line"
stop_redis
trap - EXIT
redis_rps=$(sed -n 's/^SET: \([0-9.]*\) requests per second.*/\1/p' <<<"$redis_line")
echo
mkdir -p bench/results
if [ -n "$redis_rps" ]; then
    build/bin/bench_bus --redis-rps "$redis_rps" "$@" | tee bench/results/bus.md
else
    log "no figure from redis-benchmark: running bench_bus alone"
    build/bin/bench_bus "$@" | tee bench/results/bus.md
fi
log "table saved as bench/results/bus.md; bash bench/plot_bus.sh draws bench/bus.png"
