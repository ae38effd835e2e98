#!/usr/bin/env bash
# Small ranges of a title held in memory, timed while other clients download a title mapped from
# disk whose pages are not in the page cache, for two builds in turn (each on a fresh page cache,
# ROUNDS rounds): whether the cold reads hold up the workers that also serve the small ranges.
#   OLD=/tmp/oldbin/zerocast NEW=/tmp/newbin/zerocast ROUNDS=3 bench/cold-pages.sh
# Needs root (it drops the page cache: /proc/sys/vm/drop_caches) and bench/media (big.mp4 mapped,
# small.mp4 in memory with a 64 MiB budget). Raw output in bench/results/<UTC>-cold-pages/.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18301}
OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-cold-pages
mkdir -p "$OUT"
machine_report > "$OUT/machine.txt"
BIG=$(stat -c %s bench/media/big.mp4)
run() {
  local name=$1 bin=$2 round=$3 log="$OUT/$1.$3.server.log"
  "$bin" serve --library bench/media --listen 127.0.0.1:$PORT --rtmp-listen off --cache-size 64MiB 2> "$log" &
  local pid=$!
  until grep -q listening "$log"; do sleep 0.2; done
  sync
  echo 3 > /proc/sys/vm/drop_caches
  # Four downloads of the cold title, from four places in it, while wrk asks for 1 KiB ranges.
  local dl=()
  for i in 0 1 2 3; do
    local from=$(( BIG / 4 * i ))
    curl -s -o /dev/null -r "$from-$(( from + BIG / 4 - 1 ))" "http://127.0.0.1:$PORT/videos/big.mp4" &
    dl+=($!)
  done
  wrk -t1 -c8 -d8s --latency -H "Range: bytes=0-1023" "http://127.0.0.1:$PORT/videos/small.mp4" > "$OUT/$name.$round.wrk.txt"
  kill "${dl[@]}" 2> /dev/null || true
  wait "${dl[@]}" 2> /dev/null || true
  curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^zerocast_vod_read_in_bytes_total' > "$OUT/$name.$round.metrics.txt" || true
  kill "$pid"
  wait "$pid" 2> /dev/null || true
}
for r in $(seq 1 "$ROUNDS"); do
  run old "${OLD:?OLD=path to the old zerocast binary}" "$r"
  run new "${NEW:?NEW=path to the new zerocast binary}" "$r"
done
python3 - "$OUT" "$ROUNDS" <<'PY' | tee "$OUT/table.md"
import re, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1, "s": 1e3}[unit]
print("| build | round | requests/s | p50 ms | p90 ms | p99 ms | max ms | read in off the workers |")
print("|---|---|---|---|---|---|---|---|")
for r in range(1, rounds + 1):
    for v in ("old", "new"):
        t = open(f"{out}/{v}.{r}.wrk.txt").read()
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
        pct = {p: ms(a, u) for p, a, u in re.findall(r"\s(50|90|99)%\s+([\d.]+)(us|ms|s)\b", t)}
        mx = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", t)
        read = open(f"{out}/{v}.{r}.metrics.txt").read().split()
        read = f"{int(read[-1]) / 1e6:.0f} MB" if read else "-"
        print(f"| {v} | {r} | {rps:,.0f} | {pct['50']:.2f} | {pct['90']:.2f} | {pct['99']:.2f} | {ms(*mx.groups()):.1f} | {read} |")
PY
