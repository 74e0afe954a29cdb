#!/usr/bin/env bash
# run_memory.sh - memory per cart item: the cart service (bench_memory,
# broker and workers in one process) beside a private redis-server holding
# the same carts, one hash per cart. Prints one markdown table.
#
#   bash bench/run_memory.sh [--carts N] [--items N] [--shards S] [--workers N]
#
# Redis: redis-server on a free port of 127.0.0.1, --save '' --appendonly no;
# the carts go in with redis-cli --pipe from a file that bench_memory
# writes (--emit-redis: one HSET cart:<customer> <itemId> <json> per item,
# the same data as ours); its figure is the growth of used_memory and
# its resident set (VmRSS) over the load.
set -euo pipefail
. "$(dirname "$0")/seed_lib.sh"

CARTS=100000
ITEMS=10
SHARDS=16
WORKERS=2
COMMAND="$0 $*"
while [ $# -gt 0 ]; do
    case "$1" in
        --carts) CARTS=$2; shift 2 ;;
        --items) ITEMS=$2; shift 2 ;;
        --shards) SHARDS=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "run_memory.sh: unknown option $1 (--help)" >&2; exit 2 ;;
    esac
done

seed_need redis-server redis-server
seed_need redis-cli redis-tools
seed_build bench_memory
BIN=$SEED_ROOT/build/bin

TMP=$(mktemp -d /tmp/run_memory.XXXXXX)
REDIS_PID=
cleanup() {
    seed_kill "$REDIS_PID"
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Redis first, then ours: the table comes out of bench_memory
"$BIN/bench_memory" --carts "$CARTS" --items "$ITEMS" --emit-redis "$TMP/load.resp"
PORT=$(seed_free_port)
mkfifo "$TMP/redis.out"
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$TMP" >"$TMP/redis.out" 2>&1 &
REDIS_PID=$!
exec 3<"$TMP/redis.out"
if ! seed_read_line 20 3 'Ready to accept connections' >/dev/null; then
    echo "run_memory.sh: redis-server did not start on port $PORT" >&2
    exit 1
fi
cat <&3 >"$TMP/redis.log" &   # drain the rest of its output

rcli() { timeout 60 redis-cli -p "$PORT" "$@"; }
info() { rcli INFO memory | tr -d '\r' | sed -n "s/^$1://p"; }
# RSS from /proc, as bench_memory reads its own: INFO's used_memory_rss is
# sampled by Redis's cron and may lag the load by 100 ms
rss() { echo $(($(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$REDIS_PID/status") * 1024)); }
USED0=$(info used_memory)
RSS0=$(rss)
PIPE=$(timeout 300 redis-cli -p "$PORT" --pipe <"$TMP/load.resp" | tr -d '\r')
if ! grep -q "errors: 0, replies: $((CARTS * ITEMS))" <<<"$PIPE"; then
    echo "run_memory.sh: loading Redis failed: $PIPE" >&2
    exit 1
fi
USED1=$(info used_memory)
RSS1=$(rss)
KEYS=$(rcli DBSIZE)
ENCODING=$(rcli OBJECT ENCODING cart:customer-0000000)
SAMPLE=$(rcli HGETALL cart:customer-0000000 | head -2 | paste -sd' ')
VERSION=$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')
seed_kill "$REDIS_PID"
REDIS_PID=

seed_header "$COMMAND"
echo "# bench_memory --carts $CARTS --items $ITEMS --shards $SHARDS --workers $WORKERS (broker + workers in its own process, inproc)"
echo "# Redis: one hash per cart (encoding: $ENCODING), e.g. HSET cart:customer-0000000 $SAMPLE"
"$BIN/bench_memory" --carts "$CARTS" --items "$ITEMS" --shards "$SHARDS" \
    --workers "$WORKERS" --redis-used $((USED1 - USED0)) --redis-rss $((RSS1 - RSS0)) \
    --redis-keys "$KEYS" --redis-version "$VERSION" | sed '1,/^$/d'
echo
echo "# command: $COMMAND"
