#!/usr/bin/env bash
# Live benchmarks (issue 3): one command. Builds release binaries, makes the media with ffmpeg if
# absent, starts `zerocast serve` on loopback, runs `zerocast-load` scenarios against it, stops
# the server by PID, and keeps every raw JSON report in bench/results/<UTC>-live/.
#
#   bench/live.sh                       # all scenarios
#   ONLY=fanout bench/live.sh           # one of: fanout idle ingest
#   VIEWERS=2000 IDLE_VIEWERS=10000 PUBLISHERS=200 DUR=30 bench/live.sh
#   LIVE_TOML='fanout_threads = 0' bench/live.sh   # [live] settings for the server (to compare)
#   OUTPUT=mp4 ONLY=fanout bench/live.sh           # the fan-out viewers watch .mp4 (or flv)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

VIEWERS=${VIEWERS:-2000}
IDLE_VIEWERS=${IDLE_VIEWERS:-10000}
PUBLISHERS=${PUBLISHERS:-200}
DUR=${DUR:-30}
ONLY=${ONLY:-fanout idle ingest}
PORT=${PORT:-18480}

install_tools ffmpeg
cargo build --release -q -p zerocast -p loadgen
BIN=target/release

mkdir -p bench/media
SRC="-f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000"
cbr() { echo "-c:v libx264 -preset ultrafast -g 60 -keyint_min 60 -sc_threshold 0 -b:v $1 -minrate $1 -maxrate $1 -bufsize $1 -x264-params nal-hrd=cbr -c:a aac -b:a 128k"; }
[ -f bench/media/live4m.ts ] || ffmpeg -v error -y $SRC -t 20 $(cbr 3900k) -f mpegts bench/media/live4m.ts
[ -f bench/media/live2m.ts ] || ffmpeg -v error -y $SRC -t 20 $(cbr 1900k) -f mpegts bench/media/live2m.ts
[ -f bench/media/live-low.ts ] || ffmpeg -v error -y -f lavfi -i testsrc2=size=160x120:rate=5 -t 20 \
  -c:v libx264 -preset ultrafast -g 10 -b:v 30k -an -f mpegts bench/media/live-low.ts

OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-live
mkdir -p "$OUT"
machine_report > "$OUT/machine.txt"
for f in bench/media/live4m.ts bench/media/live2m.ts bench/media/live-low.ts; do
  echo "$f: $(ffprobe -v error -show_entries format=bit_rate,duration -of csv=p=0 "$f")" >> "$OUT/machine.txt"
done
ulimit -n 20000 2>/dev/null || true

SERVER_PID=
printf '[live]\n%s\n' "${LIVE_TOML:-}" > "$OUT/zerocast.toml"
start_server() {
  $BIN/zerocast serve --config "$OUT/zerocast.toml" --listen 127.0.0.1:$PORT --rtmp-listen off \
    > "$OUT/server-$1.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.1; done
  echo "server did not start" >&2; exit 1
}
stop_server() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }
trap stop_server EXIT
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

for scenario in $ONLY; do
  case $scenario in
  fanout)
    # One 4 Mbit/s stream, VIEWERS viewers reading as fast as they can, latency marks.
    start_server fanout
    echo "fanout: $VIEWERS viewers of a 4 Mbit/s stream for ${DUR}s" >&2
    $BIN/zerocast-load --server http://127.0.0.1:$PORT --stream fan --publish bench/media/live4m.ts \
      --viewers "$VIEWERS" --ramp 1000 --duration "$DUR" --server-pid "$SERVER_PID" --output "${OUTPUT:-ts}" \
      --bind 127.0.0.2,127.0.0.3 > "$OUT/fanout.json"
    stop_server ;;
  idle)
    # IDLE_VIEWERS viewers connected to a ~30 kbit/s stream: memory per connected viewer.
    start_server idle
    rss0=$(rss "$SERVER_PID")
    echo "idle: $IDLE_VIEWERS viewers of a low-rate stream for ${DUR}s (RSS before: ${rss0} KiB)" >&2
    $BIN/zerocast-load --server http://127.0.0.1:$PORT --stream idle --publish bench/media/live-low.ts \
      --viewers "$IDLE_VIEWERS" --ramp 2000 --duration "$DUR" --server-pid "$SERVER_PID" --read-size 4096 \
      --bind 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5 > "$OUT/idle.json"
    echo "{\"server_rss_kib_before_viewers\": $rss0}" > "$OUT/idle-baseline.json"
    stop_server ;;
  ingest)
    # PUBLISHERS publishers at 2 Mbit/s each, one viewer per stream; every byte sent must arrive.
    start_server ingest
    echo "ingest: $PUBLISHERS publishers at 2 Mbit/s for ${DUR}s" >&2
    $BIN/zerocast-load --server http://127.0.0.1:$PORT --stream in --publish bench/media/live2m.ts \
      --publishers "$PUBLISHERS" --viewers "$PUBLISHERS" --duration "$DUR" --server-pid "$SERVER_PID" > "$OUT/ingest.json"
    stop_server ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
done
python3 bench/summarize_live.py "$OUT" | tee "$OUT/summary.md"
