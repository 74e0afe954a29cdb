#!/usr/bin/env bash
# run_durability.sh - what keeping the carts on disk costs a write: builds
# bench_durability (seed_build, in build/) and runs it, ADD throughput and
# latency in memory and under --fsync no, everysec and always, at 1 and 64
# writers, beside the disk's own write + fdatasync rate. The table goes to
# bench/results/durability.md as well as to the terminal. About a minute.
#
#   bash bench/run_durability.sh [bench_durability options]
#
# The data directory is made in --dir (default /tmp) and removed at the
# end: pass --dir on the disk you mean to test. build/bin/bench_durability
# --help lists the options.
set -euo pipefail
. "$(dirname "$0")/seed_lib.sh"

for arg in "$@"; do
    if [ "$arg" = --help ] || [ "$arg" = -h ]; then
        awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
        exit 0
    fi
done

seed_build bench_durability
mkdir -p "$SEED_ROOT/bench/results"
# The results file is replaced only by a run that ended well
TMP=$(mktemp /tmp/run_durability.XXXXXX)
trap 'rm -f "$TMP"' EXIT
"$SEED_ROOT/build/bin/bench_durability" "$@" | tee "$TMP"
mv "$TMP" "$SEED_ROOT/bench/results/durability.md"
echo "run_durability.sh: table saved as bench/results/durability.md" >&2
