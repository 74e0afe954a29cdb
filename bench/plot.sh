#!/usr/bin/env bash
# plot.sh - draws bench_seed's CSV as bench/seed.png: time against shard
# count (log x, log y), like the earlier service's runtimes_vs_n.png. One
# panel per placement in the CSV; solid lines are medians, dashed the p99
# of the same series, grey the earlier Python service's figures.
#
#   bash bench/plot.sh [CSV [PNG]]     (default bench/results/seed.csv, bench/seed.png)
#
# Installs gnuplot-nox from Debian when gnuplot is missing (as root).
set -euo pipefail
. "$(dirname "$0")/seed_lib.sh"

case "${1:-}" in
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
esac
CSV=${1:-$SEED_ROOT/bench/results/seed.csv}
PNG=${2:-$SEED_ROOT/bench/seed.png}
[ -s "$CSV" ] || { echo "plot.sh: no $CSV: run build/bin/bench_seed first" >&2; exit 1; }
seed_need gnuplot gnuplot-nox

PLACES=$(tail -n +2 "$CSV" | cut -d, -f1 | awk '!seen[$0]++' | paste -sd' ')
COUNT=$(wc -w <<<"$PLACES")
TITLE="bench_seed: $(tail -n +2 "$CSV" | head -1 | cut -d, -f4) runs per point; $(date -r "$CSV" -Iminutes)"

timeout 60 gnuplot <<GNUPLOT
set terminal pngcairo size $((COUNT * 640)),600 font "sans,10" noenhanced
set output "$PNG"
set datafile separator ","
set key outside below center horizontal maxrows 3 font ",9"
set logscale xy
set xrange [0.5:20000]
set yrange [10:300000]
set xlabel "shards (log)"
set ylabel "µs per operation (log)"
set grid
set multiplot layout 1,$COUNT title "$TITLE"
do for [place in "$PLACES"] {
    set title sprintf("placement: %s", place)
    sel(col) = strcol(1) eq place ? column(col) : NaN
    plot "$CSV" skip 1 using 2:(sel(5)) with linespoints lw 2 lc 1 pt 7 title "add 100, one at a time", \
         "" skip 1 using 2:(sel(6)) with lines dt 2 lc 1 title "(dashed: p99)", \
         "" skip 1 using 2:(sel(8)) with linespoints lw 2 lc 2 pt 5 title "add 100, pipelined", \
         "" skip 1 using 2:(sel(9)) with lines dt 2 lc 2 notitle, \
         "" skip 1 using 2:(sel(11)) with linespoints lw 2 lc 3 pt 9 title "checkout", \
         "" skip 1 using 2:(sel(12)) with lines dt 2 lc 3 notitle, \
         "" skip 1 using 2:(sel(14)) with linespoints lw 2 lc 4 pt 13 title "add + checkout", \
         "" skip 1 using 2:(sel(18)) with linespoints lw 1 lc rgb "#888888" pt 6 title "earlier: add 100", \
         "" skip 1 using 2:(sel(19)) with linespoints lw 1 lc rgb "#888888" pt 4 dt 3 title "earlier: checkout"
}
unset multiplot
GNUPLOT
echo "plot.sh: $PNG from $CSV (placements: $PLACES)"
