#!/usr/bin/env bash
# LL-HLS clients against HTTP-fMP4 viewers (issue 13's CPU ratio and its "ingest to a waiting
# part request" latency) on a machine with cores to spare: prebuilt binaries (no cargo, no
# ffmpeg there), the server and the load client pinned to separate cores so that the latency
# mark is not the load client's own queueing. Rounds alternate `.mp4` and LL-HLS.
#
#   BIN=target/release MEDIA=bench/media/live4m.ts bench/llhls-pinned.sh
#   SERVER_CPUS=0-7 LOAD_CPUS=8-15 VIEWERS=1000 DUR=15 ROUNDS=2 bench/llhls-pinned.sh
#
# MEDIA is bench/live.sh's 4 Mbit/s source (it makes it with ffmpeg). Reports go to OUT_DIR
# (default bench/results/<UTC>-llhls-pinned); a one-line summary per run goes to stdout, and for
# LL-HLS a second: the server's own histogram of the time from a frame's arrival at the ingest
# to its bytes written to the part requests waiting for it (from its /metrics after the run).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
MEDIA=${MEDIA:-bench/media/live4m.ts}
VIEWERS=${VIEWERS:-1000}
DUR=${DUR:-15}
ROUNDS=${ROUNDS:-2}
PORT=${PORT:-18480}
SERVER_CPUS=${SERVER_CPUS:-0-7}
LOAD_CPUS=${LOAD_CPUS:-8-15}
OUT=${OUT_DIR:-bench/results/$(date -u +%Y%m%dT%H%M%SZ)-llhls-pinned}
mkdir -p "$OUT"
{
  echo "cpus: $(nproc), server on $SERVER_CPUS, load client on $LOAD_CPUS"
  grep -m1 'model name' /proc/cpuinfo || true
  uname -r
  echo "media: $MEDIA ($(stat -c %s "$MEDIA") bytes)"
} > "$OUT/machine.txt"
ulimit -n 20000 2>/dev/null || true
printf '[live]\n%s\n' "${LIVE_TOML:-}" > "$OUT/zerocast.toml"

SERVER_PID=
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
trap stop_server EXIT
start_server() {
  taskset -c "$SERVER_CPUS" "$BIN/zerocast" serve --config "$OUT/zerocast.toml" \
    --listen 127.0.0.1:$PORT --rtmp-listen off > "$OUT/server-$1.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then return; fi
    sleep 0.1
  done
  echo "server did not start" >&2
  exit 1
}

for round in $(seq "$ROUNDS"); do
  for output in mp4 llhls; do
    name="r$round-$output"
    start_server "$name"
    taskset -c "$LOAD_CPUS" "$BIN/zerocast-load" --server "http://127.0.0.1:$PORT" --stream fan \
      --publish "$MEDIA" --viewers "$VIEWERS" --ramp 1000 --duration "$DUR" \
      --server-pid "$SERVER_PID" --output "$output" --bind 127.0.0.2,127.0.0.3 > "$OUT/$name.json"
    # The server's own side: from a frame's arrival at the ingest to its bytes written to the
    # part requests that waited for it (the histogram zerocast_live_llhls_part_delivery_seconds).
    python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' \
      "http://127.0.0.1:$PORT/metrics" > "$OUT/$name.metrics"
    stop_server
    python3 - "$OUT/$name.json" "$name" "$OUT/$name.metrics" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
l, w = r["latency_ms"], r["waiting_request_latency_ms"]
print(f"{sys.argv[2]}: server CPU {r['server_cpu_percent']:.1f} %, ingest-to-read p50/p99/max "
      f"{l['p50']}/{l['p99']}/{l['max']} ms ({l['samples']} samples), of waiting requests "
      f"{w['p50']}/{w['p99']}/{w['max']} ms ({w['samples']} samples), gaps "
      f"{r['gaps_in_window']}, failed {r['failed']}, viewers {r['viewers']}")
# Quantiles of the server's histogram, interpolated within a bucket as Prometheus'
# histogram_quantile does.
name = "zerocast_live_llhls_part_delivery_seconds_bucket{le=\""
buckets = []
for line in open(sys.argv[3]):
    if line.startswith(name):
        le, n = line[len(name):].split('"} ')
        buckets.append((float(le), int(n)))
total = buckets[-1][1] if buckets else 0
def quantile(q):
    rank, lo, below = q * total, 0.0, 0
    for le, n in buckets:
        if n >= rank:
            if le == float("inf"):
                return lo * 1000
            return (lo + (le - lo) * (rank - below) / max(n - below, 1)) * 1000
        lo, below = le, n
if total:
    within = next(n for le, n in buckets if le == 0.005) / total * 100
    print(f"{sys.argv[2]}: server side, ingest to written to a waiting part request: p50 "
          f"{quantile(0.5):.2f} ms, p99 {quantile(0.99):.2f} ms, {within:.2f} % within 5 ms "
          f"({total} writes)")
EOF
  done
done
