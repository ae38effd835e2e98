#!/usr/bin/env bash
# Where live memory goes after the streams end (issue 11, finding 4). Starts `zerocast serve`
# with a LINGER s linger (default 1), publishes PUBLISHERS streams of a 2 Mbit/s TS for DUR
# seconds, lets them end, and samples the server's RSS (and anonymous memory), the live memory it accounts
# (zerocast_live_memory_bytes) and the kernel's view, once with glibc malloc's defaults and once
# per GLIBC_TUNABLES setting in TUNABLES. Prints one table; raw samples in
# bench/results/<UTC>-live-memory/.
#
#   bench/live-memory.sh
#   PUBLISHERS=100 DUR=20 bench/live-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

PUBLISHERS=${PUBLISHERS:-100}
DUR=${DUR:-20}
PORT=${PORT:-18490}
LINGER=${LINGER:-1}
TUNABLES=${TUNABLES:-"default glibc.malloc.mmap_threshold=131072 glibc.malloc.arena_max=2"}

install_tools ffmpeg
cargo build --release -q -p zerocast -p loadgen
BIN=target/release
mkdir -p bench/media
[ -f bench/media/live2m.ts ] || ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t 20 -c:v libx264 -preset ultrafast -g 60 \
  -keyint_min 60 -sc_threshold 0 -b:v 1900k -minrate 1900k -maxrate 1900k -bufsize 1900k \
  -x264-params nal-hrd=cbr -c:a aac -b:a 128k -f mpegts bench/media/live2m.ts

OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-live-memory
mkdir -p "$OUT"
machine_report > "$OUT/machine.txt"
ulimit -n 20000 2>/dev/null || true
cfg="$OUT/zerocast.toml"
printf '[live]\n' > "$cfg"
# Streams are forgotten 1 s after they end, so their memory is given back promptly.
printf "grace_secs = 0\nlinger_secs = %s\n" "$LINGER" >> "$cfg"

SERVER_PID=
stop_server() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }
trap stop_server EXIT
kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
anon() { awk '/^Anonymous:/ {print $2}' "/proc/$1/smaps_rollup"; }
held() { curl -sf "http://127.0.0.1:$PORT/metrics" | awk '$1 == "zerocast_live_memory_bytes" {print int($2/1024)}'; }
sample() { echo "$1 $(kb "$SERVER_PID" VmRSS) $(anon "$SERVER_PID") $(held)"; }

printf '%-42s %10s %10s %10s %10s %10s %10s\n' "malloc setting" "rss_start" "rss_peak" "held_peak" "rss_linger" "rss_after" "held_after"
for t in $TUNABLES; do
  env=()
  [ "$t" != default ] && env=(env GLIBC_TUNABLES="$t")
  "${env[@]}" $BIN/zerocast serve --listen 127.0.0.1:$PORT --rtmp-listen off --config "$cfg" \
    > "$OUT/server-$t.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  log="$OUT/samples-$t.txt"
  sample start > "$log"
  $BIN/zerocast-load --server http://127.0.0.1:$PORT --stream mem --publish bench/media/live2m.ts \
    --publishers "$PUBLISHERS" --viewers 0 --duration "$DUR" > "$OUT/load-$t.json" 2>/dev/null &
  load=$!
  while kill -0 "$load" 2>/dev/null; do sample during >> "$log"; sleep 1; done
  wait "$load" || true
  # The publishers are gone: the ended streams stay listed for LINGER s, holding their rings and
  # HLS segments; wait until every one is forgotten.
  for _ in $(seq $((LINGER + 30))); do
    [ "$(curl -sf "http://127.0.0.1:$PORT/api/streams")" = "[]" ] && break
    sample ending >> "$log"; sleep 1
  done
  for _ in 1 2 3; do sample after >> "$log"; sleep 1; done
  awk -v t="$t" '
    $1 == "start" && !s { s = $2 }
    $1 == "during" || $1 == "ending" { if ($2 > p) p = $2; if ($4 > h) h = $4 }
    $1 == "ending" { e = $2 }
    $1 == "after" { a = $2; ha = $4 }
    END { printf "%-42s %9dM %9dM %9dM %9dM %9dM %9dM\n", t, s/1024, p/1024, h/1024, e/1024, a/1024, ha/1024 }' "$log"
  stop_server
done | tee "$OUT/summary.txt"
