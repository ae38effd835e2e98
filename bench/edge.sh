#!/usr/bin/env bash
# Live edge fan-out (issue 15): one origin and two edges (`zerocast serve --origin`) on loopback, a
# 4 Mbit/s stream published to the origin by zerocast-load (with latency marks), and VIEWERS `.ts`
# viewers on each edge (one zerocast-load per edge). Each run reports the origin's CPU (its only
# viewers are the two edges' pulls, so it should not move with VIEWERS) and the viewers'
# publisher-to-viewer latency; a baseline run puts the same viewers on the origin itself, so the
# latency an edge adds is the difference, taken on the same machine in the same script. Raw JSON
# reports go to bench/results/<UTC>-edge/.
#
#   bench/edge.sh                        # 100 and 1000 viewers per edge, 20 s each
#   COUNTS="100 1000 5000" DUR=30 bench/edge.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

COUNTS=${COUNTS:-100 1000}
DUR=${DUR:-20}
PORT=${PORT:-18580}

install_tools ffmpeg
cargo build --release -q -p zerocast -p loadgen
BIN=target/release

mkdir -p bench/media
SRC="-f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000"
CBR="-c:v libx264 -preset ultrafast -g 60 -keyint_min 60 -sc_threshold 0 -b:v 3900k -minrate 3900k -maxrate 3900k -bufsize 3900k -x264-params nal-hrd=cbr -c:a aac -b:a 128k"
[ -f bench/media/live4m.ts ] || ffmpeg -v error -y $SRC -t 20 $CBR -f mpegts bench/media/live4m.ts

OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-edge
mkdir -p "$OUT"
machine_report > "$OUT/machine.txt"
ulimit -n 20000 2>/dev/null || true

PIDS=()
start() { # name port [args...]
  local name=$1 port=$2; shift 2
  $BIN/zerocast serve --listen 127.0.0.1:$port --rtmp-listen off "$@" > "$OUT/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.1; done
  echo "$name did not start" >&2; exit 1
}
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }
trap stop_all EXIT

O=http://127.0.0.1:$PORT
E1=http://127.0.0.1:$((PORT + 1))
E2=http://127.0.0.1:$((PORT + 2))
for n in $COUNTS; do
  # Baseline: the viewers on the origin itself.
  start origin-$n $PORT
  origin=${PIDS[0]}
  echo "baseline: $n viewers on the origin for ${DUR}s" >&2
  $BIN/zerocast-load --server $O --stream cam --publish bench/media/live4m.ts --viewers "$n" \
    --duration "$DUR" --server-pid "$origin" --bind 127.0.0.2,127.0.0.3 > "$OUT/origin-$n.json"
  stop_all
  # The same viewers on each of two edges.
  start origin-edges-$n $PORT
  origin=${PIDS[0]}
  start edge1-$n $((PORT + 1)) --origin $O
  start edge2-$n $((PORT + 2)) --origin $O
  echo "edges: $n viewers on each of two edges for ${DUR}s" >&2
  $BIN/zerocast-load --server $E1 --publish-to $O --stream cam --publish bench/media/live4m.ts \
    --viewers "$n" --duration "$DUR" --server-pid "$origin" --bind 127.0.0.2,127.0.0.3 > "$OUT/edge1-$n.json" &
  first=$!
  # The second edge's viewers once the stream is up at the origin.
  until curl -sf "$O/api/streams/cam" | grep -q '"state": *"live"'; do sleep 0.2; done
  $BIN/zerocast-load --server $E2 --stream cam --viewers "$n" --duration "$DUR" \
    --server-pid "${PIDS[2]}" --bind 127.0.0.4,127.0.0.5 > "$OUT/edge2-$n.json"
  wait "$first"
  curl -s "$O/api/streams/cam" > "$OUT/origin-doc-$n.json"
  stop_all
done
python3 - "$OUT" $COUNTS <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
def get(d, *keys):
    for k in keys:
        if isinstance(d, dict) and k in d:
            return d[k]
    return None
print("viewers/edge | origin CPU % (viewers on it / on edges) | edge2 CPU % | origin .ts viewers | arrival p50/p99 ms: on origin | on edge1 | on edge2 | skips, gaps, failed")
for n in sys.argv[2:]:
    base = json.loads((out / f"origin-{n}.json").read_text())
    e1 = json.loads((out / f"edge1-{n}.json").read_text())
    e2 = json.loads((out / f"edge2-{n}.json").read_text())
    doc = json.loads((out / f"origin-doc-{n}.json").read_text())
    lat = lambda r: r.get("arrival_latency_ms") or r.get("latency_ms") or {}
    fmt = lambda r: f"{lat(r).get('p50', '?')}/{lat(r).get('p99', '?')}"
    bad = lambda r: (r.get("server_skips_in_window"), r.get("gaps_in_window"), r.get("failed"))
    print(f"{n} | {base.get('server_cpu_percent'):.2f} / {e1.get('server_cpu_percent'):.2f} | {e2.get('server_cpu_percent'):.2f} | {doc['viewers']['ts']} | {fmt(base)} | {fmt(e1)} | {fmt(e2)} | {bad(base)} {bad(e1)} {bad(e2)}")
PY
