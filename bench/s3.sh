#!/usr/bin/env bash
# A title in object storage against the same title in a local directory, served side by side by
# one zerocast, and the cold path against the S3 server's own latency.
#
#   bench/s3.sh                         # DUR=5 s per run, ROUNDS=3, CONNS=8, COLD_N=300
#   DUR=10 ROUNDS=5 bench/s3.sh
#
# Installs wrk, curl, ffmpeg and python3 when missing, and moto (the S3 server, PyPI) into
# target/moto as scripts/test does; makes bench/media/small.mp4 (20 MB) when absent; builds
# zerocast in release mode. Then:
# - warm: one zerocast with `--library DIR --library s3://bench`, the same 20 MB MP4 in both;
#   the bucket's title read once whole (its blocks cached), then wrk rows (1 MiB random ranges,
#   whole title) against each title in alternation, with the server's CPU ticks per row; the
#   S3 server must see no request during them (checked from /metrics);
# - cold: a second zerocast on the bucket with a 4 MiB block cache (4 blocks, so random ranges
#   miss), COLD_N sequential random 1 MiB ranges with curl (time to first byte), the requests
#   it made to the S3 server per range served (/metrics), and the same ranges asked of the S3
#   server directly (curl --aws-sigv4) for its own time to first byte.
# Stops everything it started by PID; prints the tables and keeps raw outputs in
# bench/results/<time>-s3/.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-8}
COLD_N=${COLD_N:-300}
MPORT=18090 WPORT=18091 CPORT=18092
OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-s3
mkdir -p "$OUT"
install_tools wrk curl ffmpeg python3
MOTO=$(command -v moto_server || echo target/moto/bin/moto_server)
if ! [ -x "$MOTO" ]; then
  python3 -m venv target/moto
  target/moto/bin/pip install --quiet --disable-pip-version-check "moto[server]==5.2.1"
fi
make_media
cargo build --release -q -p zerocast
machine_report | tee "$OUT/env.txt"
SIZE=$(stat -c %s bench/media/small.mp4)

PIDS_TO_STOP=()
cleanup() {
  for p in "${PIDS_TO_STOP[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS_TO_STOP[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "${LIB:-}"
}
trap cleanup EXIT

"$MOTO" -H 127.0.0.1 -p $MPORT > "$OUT/moto.log" 2>&1 &
PIDS_TO_STOP+=("$!")
MPID=$!
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$MPORT/" && break; kill -0 "$MPID" || exit 1; sleep 0.1; done
curl -s -f -X PUT "http://127.0.0.1:$MPORT/bench" -o /dev/null
curl -s -f -X PUT -H "Content-Type: application/octet-stream" --data-binary @bench/media/small.mp4 \
  "http://127.0.0.1:$MPORT/bench/s3/small.mp4" -o /dev/null
LIB=$(mktemp -d)
mkdir -p "$LIB/local"
cp bench/media/small.mp4 "$LIB/local/small.mp4"
export AWS_ENDPOINT_URL=http://127.0.0.1:$MPORT AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1

serve() { # serve PORT LOG ARGS... -> sets SPID
  local port=$1 log=$2
  shift 2
  target/release/zerocast serve --listen "127.0.0.1:$port" --rtmp-listen off "$@" > /dev/null 2> "$log" &
  SPID=$!
  PIDS_TO_STOP+=("$SPID")
  until grep -q listening "$log"; do kill -0 "$SPID" || { cat "$log"; exit 1; }; sleep 0.1; done
}
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v n="zerocast_$2" '$1 == n {print $2}'; }

# Warm: the same bytes from the directory (memfd, sendfile) and from the bucket (cached blocks).
serve $WPORT "$OUT/warm.log" --library "$LIB" --library s3://bench --cache-size 1GiB
WPID=$SPID
curl -s -f "http://127.0.0.1:$WPORT/videos/s3/small.mp4" -o "$OUT/whole.mp4"
cmp -s "$OUT/whole.mp4" bench/media/small.mp4 || { echo "the bucket's title differs"; exit 1; }
rm "$OUT/whole.mp4"
before=$(metric $WPORT s3_requests_total)
for round in $(seq "$ROUNDS"); do
  for row in "1MiB 1048576" "whole 0"; do
    set -- $row
    for src in local s3; do
      path=/videos/s3/small.mp4
      [ "$src" = local ] && path=/videos/local/small.mp4
      wrk_run "$OUT/warm-$1.$src.$round.txt" "$CONNS" 2 "http://127.0.0.1:$WPORT" "$path" "$2" "$SIZE" "$DUR" "$WPID"
    done
  done
done
after=$(metric $WPORT s3_requests_total)
[ -n "$before" ] && [ -n "$after" ] || { echo "no zerocast_s3_requests_total in /metrics"; exit 1; }
echo "requests to the S3 server during the warm rows: $((after - before))" | tee "$OUT/warm-requests.txt"

# Cold: a 4-block cache, random 1 MiB ranges one after the other.
serve $CPORT "$OUT/cold.log" --library s3://bench --cache-size 4MiB
python3 - "$SIZE" "$COLD_N" > "$OUT/ranges.txt" <<'PY'
import random, sys
size, n = int(sys.argv[1]), int(sys.argv[2])
random.seed(7)
for _ in range(n):
    a = random.randrange(0, size - (1 << 20))
    print(f"{a}-{a + (1 << 20) - 1}")
PY
before=$(metric $CPORT s3_requests_total)
while read -r r; do
  curl -s -o /dev/null -r "$r" -w '%{http_code} %{time_starttransfer} %{time_total}\n' \
    "http://127.0.0.1:$CPORT/videos/s3/small.mp4" || echo "000 0 0"
done < "$OUT/ranges.txt" > "$OUT/cold-zerocast.txt"
after=$(metric $CPORT s3_requests_total)
echo "$((after - before)) $COLD_N" > "$OUT/cold-requests.txt"
while read -r r; do
  curl -s -o /dev/null -r "$r" --aws-sigv4 "aws:amz:us-east-1:s3" --user bench:bench \
    -w '%{http_code} %{time_starttransfer} %{time_total}\n' "http://127.0.0.1:$MPORT/bench/s3/small.mp4" \
    || echo "000 0 0"
done < "$OUT/ranges.txt" > "$OUT/cold-s3.txt"

python3 - "$OUT" "$ROUNDS" "$DUR" <<'PY'
import re, statistics, sys, glob
out, rounds, dur = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def wrk(path):
    t = open(path).read()
    read = re.search(r"([\d.]+)([KMG]B) read", t)
    gb = float(read.group(1)) * {"KB": 1e-6, "MB": 1e-3, "GB": 1}[read.group(2)]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", t)
    p99 = float(p99.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[p99.group(2)]
    u, s, _ = open(path + ".cpu").read().split()
    cpu = (int(u) + int(s)) / 100
    return gb / dur, cpu / gb if gb else 0, rps, p99
print(f"\nwarm ({rounds} rounds, medians): one server, the same 20 MB MP4 from a directory and from the bucket")
print(f"{'row':<8}{'source':<8}{'GB/s':>8}{'CPU s/GB':>10}{'req/s':>10}{'p99 ms':>9}")
for row in ["1MiB", "whole"]:
    res = {}
    for src in ["local", "s3"]:
        runs = [wrk(p) for p in sorted(glob.glob(f"{out}/warm-{row}.{src}.*.txt")) if not p.endswith(".cpu")]
        med = [statistics.median(x) for x in zip(*runs)]
        res[src] = med
        print(f"{row:<8}{src:<8}{med[0]:>8.2f}{med[1]:>10.3f}{med[2]:>10.0f}{med[3]:>9.2f}")
    print(f"{row:<8}{'s3/local':<8}{res['s3'][0]/res['local'][0]:>8.2f}x{res['s3'][1]/res['local'][1]:>9.2f}x")
print(open(f"{out}/warm-requests.txt").read().strip())
def ttfb(path):
    rows = [l.split() for l in open(path)]
    bad = [r for r in rows if r[0] not in ("206", "200")]
    t = sorted(float(r[1]) * 1e3 for r in rows)
    q = lambda p: t[min(len(t) - 1, int(p * len(t)))]
    return len(rows), len(bad), q(0.5), q(0.99)
req, n = map(int, open(f"{out}/cold-requests.txt").read().split())
print(f"\ncold: random 1 MiB ranges, one at a time, 4-block cache (1 MiB blocks)")
print(f"{'':<24}{'n':>5}{'errors':>8}{'TTFB p50 ms':>13}{'p99 ms':>9}")
for name, f in [("zerocast (from S3)", "cold-zerocast.txt"), ("the S3 server itself", "cold-s3.txt")]:
    n_, bad, p50, p99 = ttfb(f"{out}/{f}")
    print(f"{name:<24}{n_:>5}{bad:>8}{p50:>13.2f}{p99:>9.2f}")
print(f"requests to the S3 server per range served: {req / n:.2f} ({req} for {n})")
PY
