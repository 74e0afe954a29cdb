#!/usr/bin/env bash
# run_http.sh - the cart service's HTTP API (build/bin/cartd) beside webdis
# in front of a private redis-server, under wrk with keep-alive: a
# read-heavy and a write-heavy mix over many customers. Prints one markdown
# table: requests/s, p50 / p99 per side and mix, and ours / webdis.
#
#   bash bench/run_http.sh [--duration S] [--connections N] [--threads N]
#        [--customers N] [--items N] [--skus N] [--read-mix PCT] [--write-mix PCT]
#        [--shards S] [--workers N] [--http-threads N] [--webdis-threads N]
#
# Defaults: wrk -t1 -c50 -d10s; 10,000 customers pre-loaded with 3 items
# each; read-heavy = 95% reads, 5% writes; write-heavy = 95% writes, 5%
# reads; writes draw the item from 20 SKUs. cartd: --shards 16 --workers 2
# --threads 2; webdis: 2 threads. bench/http_mix.lua says what each
# request is on each side.
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
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "run_http.sh: unknown option $1 (--help)" >&2; exit 2 ;;
    esac
done
for n in "$DURATION" "$CONNECTIONS" "$THREADS" "$CUSTOMERS" "$ITEMS" "$SKUS" \
    "$READ_MIX" "$WRITE_MIX"; do
    [[ "$n" =~ ^[0-9]+$ ]] || { echo "run_http.sh: '$n' is not a number" >&2; exit 2; }
done
if [ "$DURATION" -lt 1 ] || [ "$DURATION" -gt 600 ]; then
    echo "run_http.sh: --duration is 1 to 600 seconds" >&2
    exit 2
fi

seed_need wrk wrk
seed_need redis-server redis-server
seed_need redis-cli redis-tools
seed_need webdis webdis
seed_need curl curl
seed_build cartd
BENCH=$SEED_ROOT/bench
CARTD=$SEED_ROOT/build/bin/cartd

TMP=$(mktemp -d /tmp/run_http.XXXXXX)
CARTD_PID='' REDIS_PID='' WEBDIS_PID=''
cleanup() {
    seed_kill "$WEBDIS_PID" "$REDIS_PID" "$CARTD_PID"
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

# cartd on a port it picks itself (--listen 0), read from its first line
mkfifo "$TMP/cartd.out"
"$CARTD" --in-memory --listen 0 --bus none --shards "$SHARDS" --workers "$WORKERS" \
    --threads "$HTTP_THREADS" >"$TMP/cartd.out" 2>"$TMP/cartd.err" &
CARTD_PID=$!
exec 3<"$TMP/cartd.out"
LINE=$(seed_read_line 30 3 '^cartd: http://') || fail "cartd did not start"
cat <&3 >"$TMP/cartd.log" &
CART_URL=${LINE#cartd: }
CART_URL=${CART_URL%%/ *}

# redis-server and webdis, each on a free port, webdis logging to a file
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
preload cart "$CART_URL"
preload webdis "$WEBDIS_URL"
curl -sf "$CART_URL/items/cust-$((CUSTOMERS - 1))" | grep -q "\"sku-$((ITEMS - 1))\"" ||
    fail "cartd lacks cust-$((CUSTOMERS - 1))'s items"
[ "$(timeout 10 redis-cli -p "$REDIS_PORT" HLEN "cart:cust-$((CUSTOMERS - 1))")" = "$ITEMS" ] ||
    fail "redis lacks cust-$((CUSTOMERS - 1))'s items"
[ "$(timeout 10 redis-cli -p "$REDIS_PORT" DBSIZE)" = "$CUSTOMERS" ] ||
    fail "redis does not hold $CUSTOMERS carts"

# CPU time (user + system, clock ticks) of the given processes so far
TICK=$(getconf CLK_TCK)
cpu_ticks() {
    local pid total=0
    for pid in "$@"; do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
    done
    echo "$total"
}

# One measurement: prints "rps p50 p99 errors cpu_us_per_request" (errors:
# non-2xx + socket; CPU: the server side's processes, per request)
measure() {
    local out result pids cpu0 cpu1
    pids=$CARTD_PID
    [ "$1" = webdis ] && pids="$WEBDIS_PID $REDIS_PID"
    # shellcheck disable=SC2086
    cpu0=$(cpu_ticks $pids)
    out=$(timeout $((DURATION + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
        --timeout 5s -s "$BENCH/http_mix.lua" "$2" -- "$1" "$CUSTOMERS" "$SKUS" "$3")
    # shellcheck disable=SC2086
    cpu1=$(cpu_ticks $pids)
    result=$(grep '^RESULT ' <<<"$out") || fail "wrk gave no result: $out"
    read -r _ requests duration p50 p99 connect rd wr status timeout <<<"$result"
    awk -v n="$requests" -v d="$duration" -v p50="$p50" -v p99="$p99" \
        -v e=$((connect + rd + wr + status + timeout)) -v cpu=$((cpu1 - cpu0)) -v tick="$TICK" \
        'BEGIN { printf "%.0f %d %d %d %.1f\n", n / (d / 1e6), p50, p99, e, cpu * 1e6 / tick / n }'
}

declare -A RESULT
for mix in read write; do
    pct=$READ_MIX
    [ "$mix" = write ] && pct=$((100 - WRITE_MIX))
    RESULT[$mix,cart]=$(measure cart "$CART_URL" "$pct")
    RESULT[$mix,webdis]=$(measure webdis "$WEBDIS_URL" "$pct")
done
kill -0 "$CARTD_PID" 2>/dev/null || fail "cartd died during the run"
kill -0 "$WEBDIS_PID" 2>/dev/null || fail "webdis died during the run"

seed_header "$COMMAND"
echo "# wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, keep-alive; $CUSTOMERS customers pre-loaded with $ITEMS items each; writes over $SKUS SKUs"
echo "# ours: cartd --shards $SHARDS --workers $WORKERS --threads $HTTP_THREADS ($CART_URL); webdis $(dpkg-query -W -f='${Version}' webdis 2>/dev/null || echo '?') ($WEBDIS_THREADS threads) + redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
echo "# read-heavy: $READ_MIX% GET /items/{c} vs GET /HGETALL/cart:{c}, the rest writes; write-heavy: $WRITE_MIX% POST /item/{c}/{sku} (JSON body) vs PUT /HSET/cart:{c}/{sku} (JSON body), the rest reads"
echo
echo "| mix | server | requests/s | p50 µs | p99 µs | errors | server CPU per request µs | ours / webdis (requests/s) |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for mix in read write; do
    read -r c_rps c_p50 c_p99 c_err c_cpu <<<"${RESULT[$mix,cart]}"
    read -r w_rps w_p50 w_p99 w_err w_cpu <<<"${RESULT[$mix,webdis]}"
    ratio=$(awk -v a="$c_rps" -v b="$w_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    echo "| $mix-heavy | cartd (ours) | $c_rps | $c_p50 | $c_p99 | $c_err | $c_cpu | **${ratio}×** |"
    echo "| $mix-heavy | webdis + redis | $w_rps | $w_p50 | $w_p99 | $w_err | $w_cpu | |"
done
echo
echo "# target: ours / webdis ≥ 1.0× on each mix (reported, not asserted)"
echo "# errors: non-2xx answers plus socket errors and timeouts, as wrk counts them"
echo "# server CPU: user + system time of cartd, or of webdis + redis-server, over the run (/proc/PID/stat), per request; wrk's own CPU is not in it"
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# command: $COMMAND"
