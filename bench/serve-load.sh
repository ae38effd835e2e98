#!/usr/bin/env bash
# Load benchmark of zerocast's VOD path on loopback: random byte ranges of several sizes over a
# ~1 GiB MP4, and whole-file GETs of a 20 MiB one, with wrk. Reports requests/s, GB/s, latency, and
# the server's CPU seconds per GB served (user and system, from /proc/PID/stat) and RSS.
#
#   bench/serve-load.sh [DURATION_SECONDS]      (default 10 s per row)
#
# Installs wrk and ffmpeg from Debian packages when missing, makes the media in bench/media/ when
# absent, builds the release binary, and stops the server it started by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
PORT=${PORT:-18081}
OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/media "$OUT"
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -f bench/media/big.mp4 ]; then
  SRC="-f lavfi -i testsrc2=size=1280x720:rate=24 -f lavfi -i sine=frequency=440:sample_rate=48000"
  H264="-c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -g 48 -keyint_min 48 -sc_threshold 0 -b:v 3M -maxrate 3M -bufsize 6M -c:a aac -b:a 128k -ac 2"
  ffmpeg -v error -y $SRC -t 60 $H264 -movflags +faststart bench/media/clip60.mp4
  ffmpeg -v error -y -stream_loop 42 -i bench/media/clip60.mp4 -c copy -movflags +faststart bench/media/big.mp4
  ffmpeg -v error -y -stream_loop 0 -i bench/media/clip60.mp4 -c copy -fs 20M -movflags +faststart bench/media/small.mp4
  rm bench/media/clip60.mp4
fi
cargo build --release -q -p zerocast
BIG=$(stat -c %s bench/media/big.mp4); SMALL=$(stat -c %s bench/media/small.mp4)

{
  echo "# $(date -u)  $(uname -srm)"
  echo "# CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores"
  echo "# tcp_wmem: $(cat /proc/sys/net/ipv4/tcp_wmem)  tcp_rmem: $(cat /proc/sys/net/ipv4/tcp_rmem)"
  echo "# big.mp4: $BIG bytes, small.mp4: $SMALL bytes"
} | tee "$OUT/env.txt"

start=$(date +%s.%N)
target/release/zerocast serve --library bench/media --listen 127.0.0.1:$PORT --cache-size 4GiB \
  2> "$OUT/server.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
until grep -q listening "$OUT/server.log"; do sleep 0.1; done
echo "# library loaded and indexed: $(grep -o '"library loaded".*' "$OUT/server.log" || grep 'library loaded' "$OUT/server.log")" | tee -a "$OUT/env.txt"

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14, $15}' /proc/$PID/stat; }
rss() { awk '/VmRSS/ {print $2}' /proc/$PID/status; }

printf "%-22s %10s %8s %9s %9s %10s %10s %9s\n" row req/s GB/s p50 p99 user_s/GB sys_s/GB rss_MiB | tee "$OUT/table.txt"
row() { # name conns threads path size len
  local name=$1 conns=$2 threads=$3 path=$4 size=$5 len=$6
  read -r u0 s0 < <(cpu)
  PATH_TO_GET=$path RANGE_SIZE=$size FILE_LEN=$len wrk -t"$threads" -c"$conns" -d"${DUR}s" --latency \
    -s bench/range.lua "http://127.0.0.1:$PORT" > "$OUT/$name.txt" 2>&1
  read -r u1 s1 < <(cpu)
  local rps bytes p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/$name.txt")
  bytes=$(awk -v s="$size" -v l="$len" -v r="$rps" -v d="$DUR" 'BEGIN { n = (s == 0 ? l : s); printf "%.0f", n * r * d }')
  p50=$(awk '$1=="50%" {print $2}' "$OUT/$name.txt")
  p99=$(awk '$1=="99%" {print $2}' "$OUT/$name.txt")
  awk -v n="$name" -v r="$rps" -v b="$bytes" -v d="$DUR" -v u=$((u1-u0)) -v s=$((s1-s0)) -v t="$ticks" \
      -v p50="$p50" -v p99="$p99" -v rss="$(rss)" \
    'BEGIN { gb = b / 1e9; printf "%-22s %10.0f %8.2f %9s %9s %10.3f %10.3f %9.0f\n", n, r, gb / d, p50, p99, (u/t)/gb, (s/t)/gb, rss/1024 }' \
    | tee -a "$OUT/table.txt"
}
for size in 1024 16384 65536 262144 1048576 4194304; do
  row "range_${size}B_c64" 64 2 /videos/big.mp4 $size "$BIG"
done
row "whole_20MiB_c64" 64 2 /videos/small.mp4 0 "$SMALL"
echo "raw outputs in $OUT"
