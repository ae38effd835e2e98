#!/usr/bin/env bash
# Clips and VOD HLS of a 1 GiB MP4 (bench/media/big.mp4, 720p, 43 min), zerocast against nginx's
# mp4 module (Debian's nginx: `mp4;`, `?start=&end=` in seconds) on loopback, side by side:
#   1. time to first byte of a 10-minute clip (first request on a fresh server, then the median of
#      20), and of the HLS playlist (first request, which parses the movie, then the median);
#   2. server CPU per GB served, with wrk (CONNS connections, DUR s, ROUNDS rounds alternating):
#      random 10-minute clips (zerocast, nginx), random plain ranges of the same size (zerocast),
#      random HLS segments (zerocast) and plain ranges of the segments' size (zerocast).
#
#   bench/clips-vs-nginx.sh            # DUR=10 ROUNDS=3 CONNS=4
#   SHMEM_THP=advise bench/clips-vs-nginx.sh   # titles in 2 MiB pages (bench/lib.sh shmem_set)
#
# Installs nginx, wrk and ffmpeg from Debian when missing; makes bench/media/ (bench/lib.sh); builds
# zerocast in release mode; stops what it started by PID; prints a table and keeps the raw outputs
# in bench/results/<time>-clips/.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DUR=${DUR:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-4}
ZPORT=${ZPORT:-18091}
NPORT=${NPORT:-18092}
CLIP=600
OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-clips
mkdir -p "$OUT"
install_tools wrk ffmpeg nginx curl
make_media
cargo build --release -q -p zerocast
machine_report | tee "$OUT/env.txt"
LEN=$(stat -c %s bench/media/big.mp4)
SECS=$(ffprobe -v error -show_entries format=duration -of csv=p=0 bench/media/big.mp4 | cut -d. -f1)

PIDS_TO_STOP=()
cleanup() {
  for p in "${PIDS_TO_STOP[@]}"; do kill "$p" 2>/dev/null || true; done
  shmem_restore > /dev/null
}
trap cleanup EXIT

shmem_set
target/release/zerocast serve --library bench/media --rtmp-listen off --listen "127.0.0.1:$ZPORT" 2> "$OUT/zerocast.log" &
ZPID=$!
PIDS_TO_STOP+=("$ZPID")
until grep -q "listening" "$OUT/zerocast.log"; do kill -0 $ZPID || exit 1; sleep 0.1; done
shmem_restore | tee -a "$OUT/env.txt"
NDIR=$(mktemp -d)
sed -e "s|@MEDIA@|$PWD/bench/media|" -e "s|@PORT@|$NPORT|" -e "s|@DIR@|$NDIR|" -e "s|@WORKERS@|$(nproc)|" \
  -e "s|@SSL@||" -e "s|@TLS@||" -e 's|alias \(.*\);|alias \1; mp4; mp4_max_buffer_size 64m;|' \
  bench/nginx.conf.in > "$NDIR/nginx.conf"
cp "$NDIR/nginx.conf" "$OUT/nginx.conf"
nginx -c "$NDIR/nginx.conf"
sleep 0.5
NMASTER=$(cat "$NDIR/nginx.pid")
PIDS_TO_STOP+=("$NMASTER")
NPIDS="$NMASTER $(pgrep -P "$NMASTER" | xargs)"
Z=http://127.0.0.1:$ZPORT
N=http://127.0.0.1:$NPORT
P=/videos/big.mp4

ttfb() { curl -s -o /dev/null -w '%{time_starttransfer}\n' "$1"; }
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
{
  echo "# time to first byte, ms (first request; median of 20 more)"
  for s in zerocast nginx; do
    base=$Z; [ $s = nginx ] && base=$N
    first=$(ttfb "$base$P?start=1200&end=$((1200 + CLIP))")
    med=$(for i in $(seq 20); do ttfb "$base$P?start=$(( (i * 97) % (SECS - CLIP) ))&end=$(( (i * 97) % (SECS - CLIP) + CLIP ))"; done | median)
    echo "clip-10min $s $(awk -v a="$first" -v b="$med" 'BEGIN {printf "%.2f %.2f", a*1000, b*1000}')"
  done
  first=$(curl -s -o /dev/null -w '%{time_total}\n' "$Z$P/index.m3u8")
  med=$(for i in $(seq 20); do curl -s -o /dev/null -w '%{time_total}\n' "$Z$P/index.m3u8"; done | median)
  echo "hls-playlist zerocast $(awk -v a="$first" -v b="$med" 'BEGIN {printf "%.2f %.2f", a*1000, b*1000}')"
} | tee "$OUT/ttfb.txt"

SEGMENTS=$(curl -s "$Z$P/index.m3u8" | grep -c '^hls/')
CLIPBYTES=$(curl -s -o /dev/null -w '%{size_download}' "$Z$P?start=1200&end=$((1200 + CLIP))")
SEGBYTES=$(( LEN / SEGMENTS ))
# row NAME URL KIND RANGE_SIZE PIDS...
row() {
  local name=$1 url=$2 kind=$3 size=$4 r=$5; shift 5
  local out="$OUT/$name.$r"
  local u0 s0 u1 s1
  read -r u0 s0 < <(cpu_ticks "$@")
  PATH_TO_GET=$P KIND=$kind CLIP_SECS=$CLIP TITLE_SECS=$SECS SEGMENTS=$SEGMENTS RANGE_SIZE=$size FILE_LEN=$LEN \
    wrk -t2 -c"$CONNS" -d"${DUR}s" --timeout 60s -s bench/clip.lua "$url" > "$out" 2>&1 || true
  read -r u1 s1 < <(cpu_ticks "$@")
  echo "$((u1 - u0)) $((s1 - s0))" > "$out.cpu"
}
for r in $(seq "$ROUNDS"); do
  row clip-zerocast "$Z" clip 0 "$r" $ZPID
  # shellcheck disable=SC2086
  row clip-nginx "$N" clip 0 "$r" $NPIDS
  row range-clip-size "$Z" range "$CLIPBYTES" "$r" $ZPID
  row segment "$Z" segment 0 "$r" $ZPID
  row range-segment-size "$Z" range "$SEGBYTES" "$r" $ZPID
done
python3 - "$OUT" "$(getconf CLK_TCK)" <<'PY' | tee "$OUT/summary.txt"
import glob, os, re, statistics, sys
out, hz = sys.argv[1], int(sys.argv[2])
units = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
rows = {}
for f in sorted(glob.glob(os.path.join(out, "*.[0-9]"))):
    name = os.path.basename(f).rsplit(".", 1)[0]
    text = open(f).read()
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", text)
    if "Non-2xx" in text:
        print(f"{name}: errors: {text}")
    if not m:
        continue
    req, read = int(m.group(1)), float(m.group(4)) * units[m.group(5)]
    u, s = map(int, open(f + ".cpu").read().split())
    cpu = (u + s) / hz
    rows.setdefault(name, []).append((read / (1 << 30), cpu, req))
print("# row: GB served per round (median), requests, server CPU seconds per GB (median of rounds)")
for name in ["clip-zerocast", "clip-nginx", "range-clip-size", "segment", "range-segment-size"]:
    if name in rows:
        r = rows[name]
        print(f"{name:20} {statistics.median(x[0] for x in r):8.2f} GB {statistics.median(x[2] for x in r):6} req "
              f"{statistics.median(x[1] / x[0] for x in r if x[0] > 0):7.3f} CPU s/GB")
PY
