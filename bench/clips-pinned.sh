#!/usr/bin/env bash
# Clips against plain ranges of the same size with the server and wrk each pinned to a core of
# its own (server: CPU 1, wrk: CPU 0, one thread, 4 connections), N alternating rounds of 5 s;
# the server's CPU per GB (perf stat task-clock). Titles in 2 MiB pages (shmem_enabled=advise
# while it loads; THP=never for 4 KiB pages). Needs root, perf, wrk, a release build and
# bench/media (bench/clips-vs-nginx.sh makes them).
#   N=8 bench/clips-pinned.sh
set -eu
cd "$(dirname "$0")/.."
F=/sys/kernel/mm/transparent_hugepage/shmem_enabled
WAS=$(sed 's/.*\[\(.*\)\].*/\1/' "$F")
LOG=$(mktemp)
echo "${THP:-advise}" > "$F"
taskset -c 1 target/release/zerocast serve --library bench/media --rtmp-listen off --listen 127.0.0.1:18202 2> "$LOG" &
B=$!
trap 'kill $B 2>/dev/null || true; echo "$WAS" > "$F"' EXIT
until grep -q listening "$LOG"; do sleep 0.2; done
echo "$WAS" > "$F"
LEN=$(stat -c %s bench/media/big.mp4)
CLIPBYTES=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:18202/videos/big.mp4?start=1200&end=1800")
for _ in $(seq "${N:-8}"); do for KIND in clip range; do
  perf stat -e task-clock -p $B -o "$LOG.stat" -- sleep 5 &
  SP=$!
  PATH_TO_GET=/videos/big.mp4 KIND=$KIND CLIP_SECS=600 TITLE_SECS=2580 SEGMENTS=1 RANGE_SIZE=$CLIPBYTES FILE_LEN=$LEN \
    taskset -c 0 wrk -t1 -c4 -d5s --timeout 60s -s bench/clip.lua http://127.0.0.1:18202 > "$LOG.wrk" 2>&1
  wait $SP
  gb=$(grep -o "[0-9.]*GB read" "$LOG.wrk" | tr -d 'GB read')
  ms=$(grep task-clock "$LOG.stat" | awk '{print $1}' | tr -d ,)
  echo "$KIND $gb $ms" | awk '{printf "%s %s GB %.4f s/GB\n", $1, $2, $3/1000/$2}'
done; done
