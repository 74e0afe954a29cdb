#!/usr/bin/env bash
# Makes the CURVE keys of a cluster whose WORKERS shard workers own one
# shard each, in the layout docker-compose.yml reads, keeping any pair
# already there (cartctl keygen --keep): a second run changes nothing.
#
#   scripts/cluster-keys.sh DIR [WORKERS]      (default: 4 workers)
#
#   DIR/broker.key            the broker's (--cert; --broker-key of the rest)
#   DIR/workers/worker-K.key  worker K's, allowed shard K only (K < WORKERS)
#   DIR/clients/http.key      the HTTP front's
#   DIR/clients/ops.key       cartctl's, for health checks and operators
#
# Each NAME.key is public and has its secret beside it, NAME.key_secret
# (mode 0600). The broker lets in the keys of DIR/workers and DIR/clients.
# cartctl is found on PATH, else in this tree's build/bin.
set -euo pipefail

usage() { echo "usage: $(basename "$0") DIR [WORKERS]"; }
case "${1:-}" in
    -h | --help) usage; sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    "" | -*) usage >&2; exit 2 ;;
esac
dir=$1
workers=${2:-4}
if ! [[ $workers =~ ^[1-9][0-9]*$ ]] || (($# > 2)); then
    usage >&2
    exit 2
fi
PATH=$PATH:$(cd "$(dirname "$0")/.." && pwd)/build/bin

cartctl keygen --keep --dir "$dir" broker
cartctl keygen --keep --dir "$dir/clients" http ops
for ((k = 0; k < workers; k++)); do
    cartctl keygen --keep --dir "$dir/workers" --shards "$k" "worker-$k"
done
echo "cluster-keys: the keys of a broker, $workers workers and 2 clients are in $dir"
