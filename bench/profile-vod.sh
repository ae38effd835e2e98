#!/usr/bin/env bash
# Where the CPU goes in a VOD row, for zerocast and nginx side by side: what stands between a
# row and its target (docs/benchmarks.md). For each row and server: wrk runs for DUR seconds;
# over the middle PROF seconds `perf record -e cpu-clock -g` samples the server's processes, and
# the CPU of the server and of wrk is read from /proc. Writes, per row and server, the flat
# profile (top symbols, kernel and user), and one table of who used the two cores.
#
#   bench/profile-vod.sh                      # rows 1KiB 4MiB 1MiB
#   ROWS="16KiB 256KiB" DUR=10 bench/profile-vod.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROWS=${ROWS:-"1KiB 4MiB 1MiB"}
DUR=${DUR:-10}
PROF=${PROF:-5}
ZPORT=${ZPORT:-18083}
NPORT=${NPORT:-18084}
OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-profile
mkdir -p "$OUT"
install_tools wrk ffmpeg nginx python3
command -v perf >/dev/null 2>&1 || install_tools linux-perf
make_media
cargo build --release -q -p zerocast
machine_report > "$OUT/env.txt"
BIG=$(stat -c %s bench/media/big.mp4)

STOP=()
cleanup() { for p in "${STOP[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
target/release/zerocast serve --library bench/media --listen 127.0.0.1:$ZPORT --rtmp-listen off 2> "$OUT/zerocast.log" &
ZPID=$!
STOP+=("$ZPID")
until grep -q listening "$OUT/zerocast.log"; do sleep 0.1; done
NDIR=$(mktemp -d)
sed -e "s|@MEDIA@|$PWD/bench/media|" -e "s|@PORT@|$NPORT|" -e "s|@DIR@|$NDIR|" -e "s|@WORKERS@|$(nproc)|" \
  bench/nginx.conf.in > "$NDIR/nginx.conf"
nginx -c "$NDIR/nginx.conf"
sleep 0.5
master=$(cat "$NDIR/nginx.pid")
STOP+=("$master")
cat bench/media/big.mp4 > /dev/null

size_of() { case $1 in *KiB) echo $(( ${1%KiB} * 1024 ));; *MiB) echo $(( ${1%MiB} * 1048576 ));; esac; }
echo "| row | server | server user | server sys | wrk user | wrk sys | idle | wrk Transfer/sec |" > "$OUT/cpu.md"
echo "|---|---|---|---|---|---|---|---|" >> "$OUT/cpu.md"
for row in $ROWS; do
  for srv in zerocast nginx; do
    if [ "$srv" = zerocast ]; then port=$ZPORT; pids=$ZPID; else port=$NPORT; pids="$master $(pgrep -P "$master" | xargs)"; fi
    PATH_TO_GET=/videos/big.mp4 RANGE_SIZE=$(size_of "$row") FILE_LEN=$BIG \
      wrk -t2 -c64 -d"${DUR}s" --timeout 30s -s bench/range.lua "http://127.0.0.1:$port" > "$OUT/$row.$srv.wrk.txt" 2>&1 &
    WRK=$!
    sleep $(( (DUR - PROF) / 2 ))
    # shellcheck disable=SC2086
    read -r su0 ss0 < <(cpu_ticks $pids)
    read -r wu0 ws0 < <(cpu_ticks "$WRK")
    read -r _ a0 b0 c0 d0 e0 f0 g0 _ < /proc/stat
    perf record -q -e cpu-clock -g -o "$OUT/$row.$srv.perf.data" -p "$(echo $pids | tr ' ' ',')" -- sleep "$PROF" 2>/dev/null
    read -r _ a1 b1 c1 d1 e1 f1 g1 _ < /proc/stat
    # shellcheck disable=SC2086
    read -r su1 ss1 < <(cpu_ticks $pids)
    read -r wu1 ws1 < <(cpu_ticks "$WRK")
    wait "$WRK" || true
    total=$(( (a1 + b1 + c1 + d1 + e1 + f1 + g1) - (a0 + b0 + c0 + d0 + e0 + f0 + g0) ))
    pct() { python3 -c "print(f'{100 * $1 / $total:.0f}')"; }
    echo "| $row | $srv | $(pct $((su1 - su0))) | $(pct $((ss1 - ss0))) | $(pct $((wu1 - wu0))) | $(pct $((ws1 - ws0))) | $(pct $((d1 - d0))) | $(awk '/Transfer/ {print $2}' "$OUT/$row.$srv.wrk.txt") |" >> "$OUT/cpu.md"
    perf report -i "$OUT/$row.$srv.perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
      | grep '%' | head -40 | sed 's/ \{2,\}/  /g' > "$OUT/$row.$srv.top.txt" || true
    rm -f "$OUT/$row.$srv.perf.data"
  done
done
echo "(percent of the whole machine: both cores = 100)" >> "$OUT/cpu.md"
cat "$OUT/cpu.md"
echo "profiles in $OUT"
