#!/usr/bin/env bash
# run_http.sh - the cart service's HTTP API, as the all-in-one cartd and as
# a cluster of processes (broker, shard_workers, http_front over tcp),
# beside webdis in front of a private redis-server, in one run, under wrk
# with keep-alive: a read-heavy and a write-heavy mix over many customers.
# Prints one markdown table: requests/s, p50 / p99, server CPU, system
# calls and context switches per request (perf stat, when perf can count
# them), per side and mix, and ours / webdis.
#
#   bash bench/run_http.sh [--duration S] [--connections N] [--threads N]
#        [--customers N] [--items N] [--skus N] [--read-mix PCT] [--write-mix PCT]
#        [--shards S] [--workers N] [--http-threads N] [--webdis-threads N]
#        [--cluster-workers N] [--sides LIST] [--bin DIR]
#
# Defaults: wrk -t1 -c50 -d10s; 10,000 customers pre-loaded with 3 items
# each; read-heavy = 95% reads, 5% writes; write-heavy = 95% writes, 5%
# reads; writes draw the item from 20 SKUs. cartd: --shards 16 --workers 2
# --threads 2; the cluster: a broker, 4 shard_workers (one thread each,
# the 16 shards dealt in turn) and http_front --threads 2; webdis: 2
# threads. --sides: any of cartd,cluster,webdis (default all). --bin: take
# the programs from DIR (e.g. another build's bin/) instead of building build/.
# bench/http_mix.lua says what each request is on each side.
set -euo pipefail
. "$(dirname "$0")/seed_lib.sh"

DURATION=10
CONNECTIONS=50
THREADS=1
CUSTOMERS=10000
ITEMS=3
SKUS=20
READ_MIX=95
WRITE_MIX=95
SHARDS=16
WORKERS=2
HTTP_THREADS=2
WEBDIS_THREADS=2
CLUSTER_WORKERS=4
SIDES=cartd,cluster,webdis
BIN=''
COMMAND="$0 $*"
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --customers) CUSTOMERS=$2; shift 2 ;;
        --items) ITEMS=$2; shift 2 ;;
        --skus) SKUS=$2; shift 2 ;;
        --read-mix) READ_MIX=$2; shift 2 ;;
        --write-mix) WRITE_MIX=$2; shift 2 ;;
        --shards) SHARDS=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --http-threads) HTTP_THREADS=$2; shift 2 ;;
        --webdis-threads) WEBDIS_THREADS=$2; shift 2 ;;
        --cluster-workers) CLUSTER_WORKERS=$2; shift 2 ;;
        --sides) SIDES=$2; shift 2 ;;
        --bin) BIN=$(realpath "$2"); shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "run_http.sh: unknown option $1 (--help)" >&2; exit 2 ;;
    esac
done
for n in "$DURATION" "$CONNECTIONS" "$THREADS" "$CUSTOMERS" "$ITEMS" "$SKUS" \
    "$READ_MIX" "$WRITE_MIX" "$CLUSTER_WORKERS"; do
    [[ "$n" =~ ^[0-9]+$ ]] || { echo "run_http.sh: '$n' is not a number" >&2; exit 2; }
done
if [ "$DURATION" -lt 1 ] || [ "$DURATION" -gt 600 ]; then
    echo "run_http.sh: --duration is 1 to 600 seconds" >&2
    exit 2
fi
if [ "$CLUSTER_WORKERS" -lt 1 ] || [ "$CLUSTER_WORKERS" -gt "$SHARDS" ]; then
    echo "run_http.sh: --cluster-workers is 1 to --shards" >&2
    exit 2
fi
side() { [[ ",$SIDES," == *",$1,"* ]]; }
for s in ${SIDES//,/ }; do
    case "$s" in cartd|cluster|webdis) ;; *)
        echo "run_http.sh: --sides takes cartd, cluster, webdis" >&2; exit 2 ;;
    esac
done

seed_need wrk wrk
if side webdis; then
    seed_need redis-server redis-server
    seed_need redis-cli redis-tools
    seed_need webdis webdis
fi
seed_need curl curl
if [ -z "$BIN" ]; then
    seed_build cartd broker shard_worker http_front
    BIN=$SEED_ROOT/build/bin
fi
BENCH=$SEED_ROOT/bench

TMP=$(mktemp -d /tmp/run_http.XXXXXX)
CARTD_PID="" REDIS_PID="" WEBDIS_PID="" FRONT_PID="" BROKER_PID="" WORKER_PIDS=""
CART_URL="" CLUSTER_URL="" WEBDIS_URL=""
cleanup() {
    # shellcheck disable=SC2086
    seed_kill "$WEBDIS_PID" "$REDIS_PID" "$CARTD_PID" "$FRONT_PID" $WORKER_PIDS "$BROKER_PID"
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "run_http.sh: $*" >&2
    for log in "$TMP"/*.log "$TMP"/*.err; do
        [ -s "$log" ] && { echo "--- $log" >&2; tail -20 "$log" >&2; }
    done
    exit 1
}

# redis-server and webdis, each on a free port, webdis logging to a file;
# first, before our sides open the connections whose local ports a free
# port could collide with
if side webdis; then
    REDIS_PORT=$(seed_free_port)
    mkfifo "$TMP/redis.out"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$TMP" >"$TMP/redis.out" 2>&1 &
    REDIS_PID=$!
    exec 4<"$TMP/redis.out"
    seed_read_line 20 4 'Ready to accept connections' >/dev/null ||
        fail "redis-server did not start on port $REDIS_PORT"
    cat <&4 >"$TMP/redis.log" &
    WEBDIS_PORT=$(seed_free_port)
    cat >"$TMP/webdis.json" <<JSON
{
    "redis_host": "127.0.0.1",
    "redis_port": $REDIS_PORT,
    "redis_auth": null,
    "http_host": "127.0.0.1",
    "http_port": $WEBDIS_PORT,
    "threads": $WEBDIS_THREADS,
    "daemonize": false,
    "database": 0,
    "verbosity": 3,
    "logfile": "$TMP/webdis.log"
}
JSON
    webdis "$TMP/webdis.json" >"$TMP/webdis.err" 2>&1 &
    WEBDIS_PID=$!
    WEBDIS_URL=http://127.0.0.1:$WEBDIS_PORT
    webdis_up() { curl -sf -m 1 "$WEBDIS_URL/PING" | grep -q PONG; }
    seed_wait 30 webdis_up || fail "webdis did not answer on port $WEBDIS_PORT"
fi

# cartd on a port it picks itself (--listen 0), read from its first line
if side cartd; then
    mkfifo "$TMP/cartd.out"
    "$BIN/cartd" --in-memory --listen 0 --bus none --shards "$SHARDS" --workers "$WORKERS" \
        --threads "$HTTP_THREADS" >"$TMP/cartd.out" 2>"$TMP/cartd.err" &
    CARTD_PID=$!
    exec 3<"$TMP/cartd.out"
    LINE=$(seed_read_line 30 3 '^cartd: http://') || fail "cartd did not start"
    cat <&3 >"$TMP/cartd.log" &
    CART_URL=${LINE#cartd: }
    CART_URL=${CART_URL%%/ *}
fi

# The cluster over tcp on ports the broker and the front pick themselves
# (tcp://127.0.0.1:*, --listen 0), read from their first lines: the
# broker, workers dealt the shards in turn (shard s to worker s mod N),
# and http_front, up when /healthz says every shard is live
if side cluster; then
    mkfifo "$TMP/broker.out" "$TMP/front.out"
    "$BIN/broker" --frontend 'tcp://127.0.0.1:*' --backend 'tcp://127.0.0.1:*' \
        --shards "$SHARDS" >"$TMP/broker.out" 2>"$TMP/broker.err" &
    BROKER_PID=$!
    exec 5<"$TMP/broker.out"
    LINE=$(seed_read_line 30 5 '^broker: clients on ') || fail "the broker did not start"
    cat <&5 >"$TMP/broker.log" &
    FRONTEND=$(sed 's/^broker: clients on \([^,]*\),.*/\1/' <<<"$LINE")
    BACKEND=$(sed 's/.*, workers on \([^,]*\),.*/\1/' <<<"$LINE")
    for ((w = 0; w < CLUSTER_WORKERS; w++)); do
        list=$(seq -s, "$w" "$CLUSTER_WORKERS" $((SHARDS - 1)))
        "$BIN/shard_worker" --broker "$BACKEND" --shards "$SHARDS" --shard "$list" \
            >"$TMP/worker$w.log" 2>&1 &
        WORKER_PIDS="$WORKER_PIDS $!"
    done
    "$BIN/http_front" --listen 0 --broker "$FRONTEND" --threads "$HTTP_THREADS" \
        >"$TMP/front.out" 2>"$TMP/front.err" &
    FRONT_PID=$!
    exec 6<"$TMP/front.out"
    LINE=$(seed_read_line 30 6 '^http_front: listening on http://') || fail "http_front did not start"
    cat <&6 >"$TMP/front.log" &
    CLUSTER_URL=$(sed 's/^http_front: listening on \(http:[^,]*\),.*/\1/' <<<"$LINE")
    cluster_up() { curl -sf -m 1 "$CLUSTER_URL/healthz" >/dev/null; }
    seed_wait 30 cluster_up || fail "the cluster's /healthz did not say 200"
fi

# Pre-load both sides with the same carts: curl, 50 transfers in parallel
# over keep-alive connections, every answer's status checked
#   cartd:  POST /item/cust-<c>/sku-<k> {"offeredPrice": 19.99, "itemCount": 1}
#   webdis: PUT /HSET/cart:cust-<c>/sku-<k> {"p":1999,"c":1,"s":0,"e":null}
preload() {
    awk -v side="$1" -v url="$2" -v customers="$CUSTOMERS" -v items="$ITEMS" 'BEGIN {
        for (k = 0; k < items; k++)
            for (c = 0; c < customers; c++) {
                if (c + k > 0)
                    print "next"
                if (side == "cart") {
                    printf "url = \"%s/item/cust-%d/sku-%d\"\nrequest = \"POST\"\n", url, c, k
                    print "header = \"Content-Type: application/json\""
                    print "data-binary = \"{\\\"offeredPrice\\\": 19.99, \\\"itemCount\\\": 1}\""
                } else {
                    printf "url = \"%s/HSET/cart:cust-%d/sku-%d\"\nrequest = \"PUT\"\n", url, c, k
                    print "data-binary = \"{\\\"p\\\":1999,\\\"c\\\":1,\\\"s\\\":0,\\\"e\\\":null}\""
                }
                print "output = \"/dev/null\"\nsilent\nwrite-out = \"%{http_code}\\n\""
            }
    }' >"$TMP/preload-$1.cfg"
    local codes
    codes=$(timeout 300 curl -s --parallel --parallel-max 50 -K "$TMP/preload-$1.cfg" |
        sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }')
    local ok
    ok=$(grep -oE '20[01]:[0-9]+' <<<"$codes" | awk -F: '{ n += $2 } END { print n + 0 }')
    [ "$ok" = $((CUSTOMERS * ITEMS)) ] ||
        fail "pre-loading $1: not every request answered 200/201 (status:count $codes)"
}
for s in cartd cluster; do
    side $s || continue
    url=${CART_URL:-}
    [ $s = cluster ] && url=$CLUSTER_URL
    preload cart "$url"
    curl -sf "$url/items/cust-$((CUSTOMERS - 1))" | grep -q "\"sku-$((ITEMS - 1))\"" ||
        fail "$s lacks cust-$((CUSTOMERS - 1))'s items"
done
if side webdis; then
    preload webdis "$WEBDIS_URL"
    [ "$(timeout 10 redis-cli -p "$REDIS_PORT" HLEN "cart:cust-$((CUSTOMERS - 1))")" = "$ITEMS" ] ||
        fail "redis lacks cust-$((CUSTOMERS - 1))'s items"
    [ "$(timeout 10 redis-cli -p "$REDIS_PORT" DBSIZE)" = "$CUSTOMERS" ] ||
        fail "redis does not hold $CUSTOMERS carts"
fi

# CPU time (user + system, clock ticks) of the given processes so far
TICK=$(getconf CLK_TCK)
cpu_ticks() {
    local pid total=0
    for pid in "$@"; do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
    done
    echo "$total"
}

# System calls and context switches of the given processes (every thread)
# over the DURATION seconds that wrk runs: perf stat -p ... -- sleep,
# started beside wrk. Without perf, or where the kernel does not let it
# count, the columns say "-".
PERF_OK=0
perf stat -e raw_syscalls:sys_enter,context-switches -- true >/dev/null 2>&1 && PERF_OK=1
perf_start() {
    PERF_PID=''
    [ "$PERF_OK" = 1 ] || return 0
    perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "${1// /,}" \
        -o "$TMP/perf.txt" -- sleep "$DURATION" >/dev/null 2>&1 &
    PERF_PID=$!
}
# sets COUNTS to "syscalls context_switches" in all (not in a $(...): the
# wait must be in the shell that started perf)
perf_stop() {
    COUNTS="- -"
    [ -n "$PERF_PID" ] || return 0
    wait "$PERF_PID" 2>/dev/null || true
    COUNTS=$(awk -F, '$3 ~ /sys_enter/ { s = $1 } $3 ~ /context-switches/ { c = $1 }
        END { if (s == "" || c == "") print "- -"; else print s, c }' "$TMP/perf.txt")
}

# One measurement: prints "rps p50 p99 errors cpu_us_per_request
# syscalls_per_request switches_per_request" (errors: non-2xx + socket;
# CPU and counts: the server side's processes, per request)
measure() {
    local out result pids cpu0 cpu1
    case "$1" in
        cartd) pids=$CARTD_PID ;;
        cluster) pids="$FRONT_PID $BROKER_PID$WORKER_PIDS" ;;
        webdis) pids="$WEBDIS_PID $REDIS_PID" ;;
    esac
    local kind=cart
    [ "$1" = webdis ] && kind=webdis
    perf_start "$pids"
    # shellcheck disable=SC2086
    cpu0=$(cpu_ticks $pids)
    out=$(timeout $((DURATION + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
        --timeout 5s -s "$BENCH/http_mix.lua" "$2" -- "$kind" "$CUSTOMERS" "$SKUS" "$3")
    # shellcheck disable=SC2086
    cpu1=$(cpu_ticks $pids)
    perf_stop
    result=$(grep '^RESULT ' <<<"$out") || fail "wrk gave no result: $out"
    read -r _ requests duration p50 p99 connect rd wr status timeout <<<"$result"
    read -r syscalls switches <<<"$COUNTS"
    awk -v n="$requests" -v d="$duration" -v p50="$p50" -v p99="$p99" \
        -v e=$((connect + rd + wr + status + timeout)) -v cpu=$((cpu1 - cpu0)) -v tick="$TICK" \
        -v sc="$syscalls" -v cs="$switches" \
        'BEGIN { printf "%.0f %d %d %d %.1f %s %s\n", n / (d / 1e6), p50, p99, e,
                 cpu * 1e6 / tick / n, sc == "-" ? "-" : sprintf ("%.1f", sc / n),
                 cs == "-" ? "-" : sprintf ("%.2f", cs / n) }'
}

declare -A RESULT URL=([cartd]="${CART_URL:-}" [cluster]="${CLUSTER_URL:-}" [webdis]="${WEBDIS_URL:-}")
for mix in read write; do
    pct=$READ_MIX
    [ "$mix" = write ] && pct=$((100 - WRITE_MIX))
    for s in cartd cluster webdis; do
        side $s && RESULT[$mix,$s]=$(measure $s "${URL[$s]}" "$pct")
    done
done
for s in cartd cluster webdis; do
    side $s || continue
    case $s in
        cartd) pids=$CARTD_PID ;;
        cluster) pids="$FRONT_PID $BROKER_PID$WORKER_PIDS" ;;
        webdis) pids=$WEBDIS_PID ;;
    esac
    for pid in $pids; do
        kill -0 "$pid" 2>/dev/null || fail "$s: process $pid died during the run"
    done
done

seed_header "$COMMAND"
echo "# wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, keep-alive; $CUSTOMERS customers pre-loaded with $ITEMS items each; writes over $SKUS SKUs"
echo "# programs: $BIN"
echo "# ours: cartd --shards $SHARDS --workers $WORKERS --threads $HTTP_THREADS; cluster: broker --shards $SHARDS, $CLUSTER_WORKERS shard_worker, http_front --threads $HTTP_THREADS, over tcp on 127.0.0.1"
if side webdis; then
    echo "# webdis $(dpkg-query -W -f='${Version}' webdis 2>/dev/null || echo '?') ($WEBDIS_THREADS threads) + redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
fi
echo "# read-heavy: $READ_MIX% GET /items/{c} vs GET /HGETALL/cart:{c}, the rest writes; write-heavy: $WRITE_MIX% POST /item/{c}/{sku} (JSON body) vs PUT /HSET/cart:{c}/{sku} (JSON body), the rest reads"
echo
echo "| mix | server | requests/s | p50 µs | p99 µs | errors | server CPU per request µs | system calls per request | context switches per request | ours / webdis (requests/s) |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
declare -A NAME=([cartd]="cartd (ours)" [cluster]="cluster (ours)" [webdis]="webdis + redis")
for mix in read write; do
    w_rps=0
    side webdis && read -r w_rps _ <<<"${RESULT[$mix,webdis]}"
    for s in cartd cluster webdis; do
        side $s || continue
        read -r rps p50 p99 err cpu sc cs <<<"${RESULT[$mix,$s]}"
        ratio=''
        if [ $s != webdis ] && side webdis; then
            ratio="**$(awk -v a="$rps" -v b="$w_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')×**"
        fi
        echo "| $mix-heavy | ${NAME[$s]} | $rps | $p50 | $p99 | $err | $cpu | $sc | $cs | $ratio |"
    done
done
echo
echo "# target: ours / webdis ≥ 1.0× on each mix (reported, not asserted)"
echo "# errors: non-2xx answers plus socket errors and timeouts, as wrk counts them"
echo "# server CPU: user + system time of cartd, of the cluster's processes, or of webdis + redis-server, over the run (/proc/PID/stat), per request; wrk's own CPU is not in it"
echo "# system calls and context switches: perf stat -e raw_syscalls:sys_enter,context-switches over the same processes (every thread) while wrk runs, per request"
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# command: $COMMAND"
