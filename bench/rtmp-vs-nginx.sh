#!/usr/bin/env bash
# RTMP fan-out, zerocast vs nginx-rtmp (issue 4), one command: VIEWERS RTMP players of one
# 2 Mbit/s stream on each server, in alternation (A B A B ...), plus zerocast's HTTP-FLV output
# for reference. Publisher: ffmpeg -re over RTMP. Reports server CPU, RSS and skips per run;
# raw JSON in bench/results/<UTC>-rtmp/.
#
#   bench/rtmp-vs-nginx.sh            # VIEWERS=1000 DUR=30 ROUNDS=2
set -euo pipefail
# Scenarios: ONLY="fanout ingest" (both by default).
cd "$(dirname "$0")/.."
source bench/lib.sh

VIEWERS=${VIEWERS:-1000}
DUR=${DUR:-30}
ROUNDS=${ROUNDS:-2}
ZHTTP=18680; ZRTMP=19350; NRTMP=19351

install_tools ffmpeg nginx
[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || install_tools libnginx-mod-rtmp
cargo build --release -q -p zerocast -p loadgen
BIN=target/release
mkdir -p bench/media
[ -f bench/media/live2m.ts ] || ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t 20 -c:v libx264 -preset ultrafast -g 60 \
  -keyint_min 60 -sc_threshold 0 -b:v 1900k -minrate 1900k -maxrate 1900k -bufsize 1900k \
  -x264-params nal-hrd=cbr -c:a aac -b:a 128k -f mpegts bench/media/live2m.ts

OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-rtmp
mkdir -p "$OUT/nginx"
machine_report > "$OUT/machine.txt"
nginx -V 2>> "$OUT/machine.txt" || true
ulimit -n 20000 2>/dev/null || true
sed -e "s|@PREFIX@|$PWD/$OUT/nginx|g" -e "s|@PORT@|$NRTMP|g" bench/nginx-rtmp.conf.in > "$OUT/nginx/nginx.conf"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# run NAME SERVER OUTPUT [FILE [VIEWERS]]: a fresh server for each run, so that RSS is that run's
# alone.
run() {
  local name=$1 server=$2 output=$3 file=${4:-bench/media/live2m.ts} viewers=${5:-$VIEWERS} port pids sp
  if [ "$server" = zerocast ]; then
    port=$ZRTMP
    $BIN/zerocast serve --listen 127.0.0.1:$ZHTTP --rtmp-listen 127.0.0.1:$ZRTMP > "$OUT/$name-server.log" 2>&1 &
    sp=$!; pids=$sp
    sleep 0.5
  else
    port=$NRTMP
    nginx -c "$PWD/$OUT/nginx/nginx.conf" -p "$PWD/$OUT/nginx" > "$OUT/$name-server.log" 2>&1 &
    sp=$!
    sleep 1
    pids="$(cat "$OUT/nginx/nginx.pid"),$(pgrep -P "$(cat "$OUT/nginx/nginx.pid")" | paste -sd, -)"
  fi
  PIDS+=("$sp")
  local rss0; rss0=$(rss_kib ${pids//,/ })
  ffmpeg -v error -nostdin -re -stream_loop -1 -i "$file" -c copy -f flv \
    "rtmp://127.0.0.1:$port/live/bench" > "$OUT/$name-ffmpeg.log" 2>&1 &
  local fp=$!
  sleep 3
  echo "$name: $viewers $output viewers for ${DUR}s (server RSS before viewers: $rss0 KiB)" >&2
  echo "{\"server_rss_kib_before_viewers\": $rss0}" > "$OUT/$name.baseline"
  $BIN/zerocast-load --server http://127.0.0.1:$ZHTTP --rtmp 127.0.0.1:$port --stream bench \
    --output "$output" --viewers "$viewers" --ramp 500 --duration "$DUR" --server-pid "$pids" \
    --bind 127.0.0.2,127.0.0.3 > "$OUT/$name.json" || true
  kill "$fp" 2>/dev/null || true; wait "$fp" 2>/dev/null || true
  kill "$sp" 2>/dev/null || true; wait "$sp" 2>/dev/null || true
  sleep 1
}

ONLY=${ONLY:-fanout ingest}
if [[ " $ONLY " == *" fanout "* ]]; then
for r in $(seq "$ROUNDS"); do
  run "zerocast-rtmp-$r" zerocast rtmp
  run "nginx-rtmp-$r" nginx rtmp
done
run "zerocast-flv-1" zerocast flv
fi
if [[ " $ONLY " == *" ingest "* ]]; then
# Ingest alone: one 20 Mbit/s RTMP publisher, no viewers.
[ -f bench/media/live20m.ts ] || ffmpeg -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t 20 -c:v libx264 -preset ultrafast -g 60 \
  -b:v 19500k -minrate 19500k -maxrate 19500k -bufsize 19500k -x264-params nal-hrd=cbr \
  -c:a aac -b:a 128k -f mpegts bench/media/live20m.ts
run "zerocast-ingest20" zerocast rtmp bench/media/live20m.ts 0
run "nginx-ingest20" nginx rtmp bench/media/live20m.ts 0
fi
python3 bench/summarize_rtmp.py "$OUT" | tee "$OUT/summary.md"
