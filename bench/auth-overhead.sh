#!/usr/bin/env bash
# What signed links cost: the 1 KiB range row of the VOD benchmark against two zerocast servers on
# the same library, one plain and one with [signed_urls] on /videos/ where every request carries a
# valid signed link (checked once per request: an HMAC-SHA256 and a constant-time compare).
# Alternating runs (A B A B ...), medians; raw outputs in bench/results/<time>-auth/.
#
#   bench/auth-overhead.sh          # DUR=5 s per run, ROUNDS=5
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-5}
OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-auth
LIB=$(mktemp -d)
mkdir -p "$OUT"
install_tools wrk ffmpeg python3
make_media
cargo build --release -q -p zerocast
cp bench/media/small.mp4 "$LIB/small.mp4"
LEN=$(stat -c %s "$LIB/small.mp4")
machine_report | tee "$OUT/env.txt"
SECRET=bench-secret-0123456789abcdef
printf '[signed_urls]\nsecret = "%s"\nprefixes = ["/videos/"]\n' "$SECRET" > "$OUT/signed.toml"
EXPIRES=$(( $(date +%s) + 86400 ))
SIG=$(printf '/videos/small.mp4\n%s' "$EXPIRES" | openssl dgst -sha256 -hmac "$SECRET" | awk '{print $NF}')
SIGNED_PATH="/videos/small.mp4?expires=$EXPIRES&sig=$SIG"

PIDS_TO_STOP=()
cleanup() { for p in "${PIDS_TO_STOP[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$LIB"; }
trap cleanup EXIT
declare -A PID PORT PATHS
start() { # name port extra...
  local name=$1 port=$2
  shift 2
  target/release/zerocast serve --library "$LIB" --listen "127.0.0.1:$port" --rtmp-listen off "$@" \
    2> "$OUT/$name.log" &
  PID[$name]=$!
  PIDS_TO_STOP+=("$!")
  PORT[$name]=$port
  until grep -q listening "$OUT/$name.log"; do sleep 0.1; done
}
start plain 18091
start signed 18092 --config "$OUT/signed.toml"
PATHS[plain]=/videos/small.mp4
PATHS[signed]=$SIGNED_PATH
curl -sf -o /dev/null "http://127.0.0.1:18092$SIGNED_PATH" || { echo "the signed link is refused"; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18092/videos/small.mp4)" = 403 ] \
  || { echo "the signed server serves unsigned links"; exit 1; }

for round in $(seq 1 "$ROUNDS"); do
  for srv in plain signed; do
    echo "round $round $srv" >&2
    wrk_run "$OUT/range_1KiB.$srv.$round.txt" 64 2 "http://127.0.0.1:${PORT[$srv]}" "${PATHS[$srv]}" 1024 "$LEN" "$DUR" "${PID[$srv]}"
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY' | tee "$OUT/table.md"
import re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rps = {}
for srv in ("plain", "signed"):
    v = []
    for r in range(1, rounds + 1):
        t = open(f"{out}/range_1KiB.{srv}.{r}.txt").read()
        v.append(float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)))
    rps[srv] = v
print("| server | req/s per round | median |")
print("|---|---|---|")
for srv, v in rps.items():
    print(f"| {srv} | {', '.join(f'{x:,.0f}' for x in v)} | {statistics.median(v):,.0f} |")
print(f"\nsigned / plain: {statistics.median(rps['signed']) / statistics.median(rps['plain']):.3f}")
PY
echo "raw outputs in $OUT"
