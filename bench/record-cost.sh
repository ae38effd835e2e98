#!/usr/bin/env bash
# What recording a live stream costs (issue 14's number: recording a 20 Mbit/s stream costs at
# most 3 % of a core and adds nothing measurable to fan-out latency). One server, one run: a
# 20 Mbit/s 1080p TS published by zerocast-load (real time, with latency marks) to a stream that
# no [[record]] rule matches ("plain") and to one that a rule records ("rec"), alternately,
# ROUNDS times, DUR s each, with VIEWERS viewers of it; the server's CPU (user + system, from
# /proc) and the viewers' arrival latency (kernel receive time − publish time) for each.
#
#   bench/record-cost.sh
#   ROUNDS=3 DUR=20 VIEWERS=100 bench/record-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS=${ROUNDS:-3}
DUR=${DUR:-20}
VIEWERS=${VIEWERS:-100}
PORT=${PORT:-18491}

install_tools ffmpeg curl jq
cargo build --release -q -p zerocast -p loadgen
BIN=target/release
mkdir -p bench/media
[ -f bench/media/live20m.ts ] || ffmpeg -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t 20 -c:v libx264 -preset ultrafast -g 60 \
  -keyint_min 60 -sc_threshold 0 -b:v 19800k -minrate 19800k -maxrate 19800k -bufsize 19800k \
  -x264-params nal-hrd=cbr -c:a aac -b:a 128k -f mpegts bench/media/live20m.ts

OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-record-cost
mkdir -p "$OUT/library"
machine_report > "$OUT/machine.txt"
ulimit -n 20000 2>/dev/null || true
cfg="$OUT/zerocast.toml"
printf '[live]\ngrace_secs = 0\nlinger_secs = 1\n\n[[record]]\nstreams = "rec*"\n' > "$cfg"

SERVER_PID=
stop_server() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }
trap stop_server EXIT
$BIN/zerocast serve --listen 127.0.0.1:$PORT --rtmp-listen off --library "$OUT/library" \
  --config "$cfg" > "$OUT/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

printf '%-6s %5s %10s %12s %14s %14s %10s\n' stream round "cpu_%core" "bytes_rec" "arrival_p50ms" "arrival_p99ms" "viewers"
for r in $(seq "$ROUNDS"); do
  for name in plain rec; do
    stream="$name$r"
    read -r u0 s0 < <(cpu_ticks "$SERVER_PID")
    b0=$(curl -sf "http://127.0.0.1:$PORT/metrics" | awk '$1 == "zerocast_record_bytes_total" {print $2}')
    $BIN/zerocast-load --server http://127.0.0.1:$PORT --stream "$stream" \
      --publish bench/media/live20m.ts --viewers "$VIEWERS" --duration "$DUR" \
      > "$OUT/load-$stream.json" 2>"$OUT/load-$stream.err" || true
    read -r u1 s1 < <(cpu_ticks "$SERVER_PID")
    b1=$(curl -sf "http://127.0.0.1:$PORT/metrics" | awk '$1 == "zerocast_record_bytes_total" {print $2}')
    # Let the stream end (and its last file be finished) before the next.
    for _ in $(seq 50); do [ "$(curl -sf "http://127.0.0.1:$PORT/api/streams")" = "[]" ] && break; sleep 0.2; done
    j="$OUT/load-$stream.json"
    printf '%-6s %5s %10.1f %12s %14s %14s %10s\n' "$name" "$r" \
      "$(echo "($u1 - $u0 + $s1 - $s0) / $DUR" | bc -l)" "$((b1 - b0))" \
      "$(jq -r '.arrival_latency_ms.p50' "$j")" "$(jq -r '.arrival_latency_ms.p99' "$j")" \
      "$(jq -r '.viewers // .viewers_connected // "?"' "$j")"
  done
done | tee "$OUT/summary.txt"
du -sh "$OUT/library" | tee -a "$OUT/summary.txt"
rm -rf "$OUT/library"   # the recordings are tens of MB: not kept with the results
