#!/usr/bin/env bash
# Clips against plain ranges of the same size, and against nginx's mp4 module's clips, one
# request at a time by curl (one client that reads as a player's download does, so every kind is
# read at the same pace): ROUNDS rounds of N random 10-minute clips of bench/media/big.mp4, N
# random ranges of a clip's size, and N random nginx clips (the same starts' distribution); the
# server's CPU (user + system ticks of its processes) per GB of each. Raw output in
# bench/results/<UTC>-clips-curl/.
#   N=16 ROUNDS=3 SHMEM_THP=advise bench/clips-curl.sh
# Needs nginx, a release build and bench/media (bench/clips-vs-nginx.sh makes them); SHMEM_THP
# needs root (see bench/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${N:-16}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18204}
OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-clips-curl
mkdir -p "$OUT"
machine_report > "$OUT/machine.txt"
shmem_set
target/release/zerocast serve --library bench/media --rtmp-listen off --listen 127.0.0.1:$PORT 2> "$OUT/server.log" &
S=$!
NDIR=$(mktemp -d)
trap 'kill $S 2>/dev/null || true; [ -f "$NDIR/nginx.pid" ] && kill "$(cat "$NDIR/nginx.pid")"; shmem_restore' EXIT
until grep -q listening "$OUT/server.log"; do sleep 0.2; done
shmem_restore
NPORT=$((PORT + 1))
sed -e "s|@MEDIA@|$PWD/bench/media|" -e "s|@PORT@|$NPORT|" -e "s|@DIR@|$NDIR|" -e "s|@WORKERS@|$(nproc)|" \
  -e "s|@SSL@||" -e "s|@TLS@||" -e 's|alias \(.*\);|alias \1; mp4; mp4_max_buffer_size 64m;|' \
  bench/nginx.conf.in > "$NDIR/nginx.conf"
nginx -c "$NDIR/nginx.conf"
until [ -s "$NDIR/nginx.pid" ]; do sleep 0.1; done
NM=$(cat "$NDIR/nginx.pid")
NPIDS="$NM $(pgrep -P "$NM" | xargs)"
URL=http://127.0.0.1:$PORT/videos/big.mp4
LEN=$(stat -c %s bench/media/big.mp4)
CLIPBYTES=$(curl -s -o /dev/null -w '%{size_download}' "$URL?start=1200&end=1800")
ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{t += $1} END {print t}'; }
for round in $(seq "$ROUNDS"); do
  for kind in clip range nginx; do
    pids=$S
    [ $kind = nginx ] && pids=$NPIDS
    t0=$(ticks $pids)
    bytes=0
    for _ in $(seq "$N"); do
      if [ $kind != range ]; then
        s=$(( (RANDOM * 32768 + RANDOM) % 1980 ))
        u=$URL
        [ $kind = nginx ] && u=http://127.0.0.1:$NPORT/videos/big.mp4
        b=$(curl -s -o /dev/null -w '%{size_download}' "$u?start=$s&end=$((s + 600))")
      else
        off=$(( (RANDOM * 32768 + RANDOM) * 32 % (LEN - CLIPBYTES - 1) ))
        b=$(curl -s -o /dev/null -w '%{size_download}' -r "$off-$((off + CLIPBYTES - 1))" "$URL")
      fi
      bytes=$((bytes + b))
    done
    t1=$(ticks $pids)
    echo "$round $kind $bytes $(( (t1 - t0) * 1000 / $(getconf CLK_TCK) ))" |
      awk '{printf "round %s %-5s %.2f GB %.4f s/GB\n", $1, $2, $3 / 1e9, $4 / 1000 / ($3 / 1e9)}' | tee -a "$OUT/rounds.txt"
  done
done
