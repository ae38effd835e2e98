#!/usr/bin/env bash
# Three servers up at once on loopback, loaded one at a time in the order ORDER (letters), D
# seconds each, with random 10-minute clips (KIND=clip) or plain ranges of a clip's size
# (KIND=range) of bench/media/big.mp4; prints each round's GB and the server's CPU per GB
# (perf stat task-clock of its processes):
#   A  zerocast, titles in 4 KiB pages (loaded with shmem_enabled=never)
#   B  zerocast, titles in 2 MiB pages (loaded with shmem_enabled=advise)
#   N  nginx's mp4 module (KIND=clip only; nginx does not load the titles)
#   KIND=clip D=5 ORDER="A B N N B A A B N N B A" bench/clips-pages.sh
# Needs root (it sets /sys/kernel/mm/transparent_hugepage/shmem_enabled while each zerocast
# loads and puts back what it was), perf, wrk, nginx, a release build and bench/media
# (bench/clips-vs-nginx.sh makes them).
set -euo pipefail
NDIR0=$(mktemp -d)
cd "$(dirname "$0")/.."
KIND=${KIND:-clip}
D=${D:-5}
ORDER=${ORDER:-A B N N B A}
F=/sys/kernel/mm/transparent_hugepage/shmem_enabled
WAS=$(sed 's/.*\[\(.*\)\].*/\1/' "$F")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; echo "$WAS" > "$F"; }
trap cleanup EXIT
echo never > "$F"
target/release/zerocast serve --library bench/media --rtmp-listen off --listen 127.0.0.1:18201 2> "$NDIR0/a.log" &
A=$!
PIDS+=("$A")
until grep -q listening "$NDIR0/a.log"; do sleep 0.2; done
echo advise > "$F"
target/release/zerocast serve --library bench/media --rtmp-listen off --listen 127.0.0.1:18202 2> "$NDIR0/b.log" &
B=$!
PIDS+=("$B")
until grep -q listening "$NDIR0/b.log"; do sleep 0.2; done
echo "$WAS" > "$F"
NDIR=$(mktemp -d)
sed -e "s|@MEDIA@|$PWD/bench/media|" -e "s|@PORT@|18203|" -e "s|@DIR@|$NDIR|" -e "s|@WORKERS@|$(nproc)|" \
  -e "s|@SSL@||" -e "s|@TLS@||" -e 's|alias \(.*\);|alias \1; mp4; mp4_max_buffer_size 64m;|' \
  bench/nginx.conf.in > "$NDIR/nginx.conf"
nginx -c "$NDIR/nginx.conf"; sleep 0.5
NM=$(cat "$NDIR/nginx.pid"); PIDS+=("$NM"); NP="$NM $(pgrep -P "$NM" | xargs)"
LEN=$(stat -c %s bench/media/big.mp4)
CLIPBYTES=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:18201/videos/big.mp4?start=1200&end=1800")
for s in $ORDER; do
  case $s in A) P=$A; PORT=18201;; B) P=$B; PORT=18202;; N) P=$(echo $NP | tr ' ' ','); PORT=18203;; esac
  perf stat -e task-clock -p $P -o "$NDIR0/stat" -- sleep $D &
  SP=$!
  PATH_TO_GET=/videos/big.mp4 KIND=$KIND CLIP_SECS=600 TITLE_SECS=2580 SEGMENTS=1 RANGE_SIZE=$CLIPBYTES FILE_LEN=$LEN \
    wrk -t2 -c4 -d${D}s --timeout 60s -s bench/clip.lua http://127.0.0.1:$PORT > "$NDIR0/wrk" 2>&1
  wait $SP
  gb=$(grep -o "[0-9.]*GB read" "$NDIR0/wrk" | tr -d 'GB read')
  ms=$(grep task-clock "$NDIR0/stat" | awk '{print $1}' | tr -d ,)
  echo "$KIND $s $gb $ms" | awk '{printf "%s %s %s GB %.3f s/GB\n", $1, $2, $3, $4/1000/$3}'
done
