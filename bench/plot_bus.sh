#!/usr/bin/env bash
# plot_bus.sh - draws how the bus's cost grows with shard count, from
# bench_bus's table (run_bus.sh saves it as bench/results/bus.md): latency
# percentiles and requests/s against 1, 4 and 16 shards, inproc and tcp,
# as bench/bus.png; the rows also go to bench/results/bus.csv.
#
#   bash bench/plot_bus.sh [TABLE [PNG]]   (default bench/results/bus.md, bench/bus.png)
#
# Installs gnuplot-nox from Debian when gnuplot is missing (as root).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
case "${1:-}" in
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
esac
TABLE=${1:-$top/bench/results/bus.md}
PNG=${2:-$top/bench/bus.png}
CSV=$top/bench/results/bus.csv
[ -s "$TABLE" ] || { echo "plot_bus.sh: no $TABLE: run bash bench/run_bus.sh first" >&2; exit 1; }
if ! command -v gnuplot >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null
fi

# | CART 4 shards | tcp | 4 | 4 | requests | requests/s | p50 | p99 | p99.9 | max | ...
echo "transport,shards,requests_per_s,p50_us,p99_us,p999_us" > "$CSV"
awk -F'|' '$2 ~ /^ CART / {
    gsub(/[ ,]/, "", $3); gsub(/[ ,]/, "", $4); gsub(/[ ,]/, "", $7)
    gsub(/ /, "", $8); gsub(/ /, "", $9); gsub(/ /, "", $10)
    print $3 "," $4 "," $7 "," $8 "," $9 "," $10 }' "$TABLE" >> "$CSV"
[ "$(wc -l < "$CSV")" -gt 1 ] || { echo "plot_bus.sh: no CART rows in $TABLE" >&2; exit 1; }

timeout 60 gnuplot <<GNUPLOT
set terminal pngcairo size 1280,520 font "sans,10" noenhanced
set output "$PNG"
set datafile separator ","
set key outside below center horizontal
set logscale x 2
set xrange [0.7:23]
set xtics (1, 4, 16)
set grid
set multiplot layout 1,2 title "bench_bus: pipelined clients through broker and workers; $(date -r "$TABLE" -Iminutes)"
set title "latency per request"
set ylabel "µs (log)"
set logscale y
sel(t, col) = strcol(1) eq t ? column(col) : NaN
plot "$CSV" skip 1 using 2:(sel("inproc",4)) with linespoints lw 2 pt 7 title "inproc p50", \
     "" skip 1 using 2:(sel("inproc",5)) with linespoints dt 2 pt 7 title "inproc p99", \
     "" skip 1 using 2:(sel("inproc",6)) with linespoints dt 3 pt 7 title "inproc p99.9", \
     "" skip 1 using 2:(sel("tcp",4)) with linespoints lw 2 pt 5 title "tcp p50", \
     "" skip 1 using 2:(sel("tcp",5)) with linespoints dt 2 pt 5 title "tcp p99", \
     "" skip 1 using 2:(sel("tcp",6)) with linespoints dt 3 pt 5 title "tcp p99.9"
set title "throughput"
unset logscale y
set ylabel "requests/s"
set yrange [0:*]
plot "$CSV" skip 1 using 2:(sel("inproc",3)) with linespoints lw 2 pt 7 title "inproc", \
     "" skip 1 using 2:(sel("tcp",3)) with linespoints lw 2 pt 5 title "tcp"
unset multiplot
GNUPLOT
echo "plot_bus.sh: $PNG from $CSV"
