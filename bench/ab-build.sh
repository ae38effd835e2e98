#!/usr/bin/env bash
# A/B of two zerocast builds on the same library, alternating wrk runs (1 KiB and 1 MiB ranges,
# five rounds of 5 s each), for a regression check: OLD=path/to/old/zerocast bench/ab-build.sh
# (build the old one with: git worktree add /tmp/old REV && (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target cargo build --release -p zerocast)).
# NEW: the new binary (default: this tree's release build); CACHE: both servers' --cache-size
# (e.g. 1MiB: every title mapped from its file); SIZES: the rows, NAME:BYTES each.
#   OLD=/tmp/oldbin NEW=/tmp/newbin CACHE=1MiB SIZES="1MiB:1048576 32MiB:33554432" bench/ab-build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
if [ -z "${NEW:-}" ]; then
  cargo build --release -q -p zerocast
  NEW=target/release/zerocast
fi
NEWBIN=$NEW
CACHE_ARGS=()
[ -n "${CACHE:-}" ] && CACHE_ARGS=(--cache-size "$CACHE")
SIZES=${SIZES:-"1KiB:1024 1MiB:1048576"}
OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-ab-${CACHE:+mapped-}plain
mkdir -p "$OUT"
machine_report > "$OUT/env.txt"
BIG=$(stat -c %s bench/media/big.mp4)
"${OLD:?OLD=path to the old zerocast binary}" serve --library bench/media --listen 127.0.0.1:18101 --rtmp-listen off "${CACHE_ARGS[@]}" 2> "$OUT/old.log" &
OLD=$!
"$NEWBIN" serve --library bench/media --listen 127.0.0.1:18102 --rtmp-listen off "${CACHE_ARGS[@]}" 2> "$OUT/new.log" &
NEW=$!
trap 'kill $OLD $NEW' EXIT
until grep -q listening "$OUT/old.log" && grep -q listening "$OUT/new.log"; do sleep 0.2; done
for row in $SIZES; do
  name=${row%%:*} size=${row##*:}
  for r in 1 2 3 4 5; do
    wrk_run "$OUT/$name.old.$r.txt" 64 2 http://127.0.0.1:18101 /videos/big.mp4 "$size" "$BIG" 5 $OLD
    wrk_run "$OUT/$name.new.$r.txt" 64 2 http://127.0.0.1:18102 /videos/big.mp4 "$size" "$BIG" 5 $NEW
  done
done
python3 - "$OUT" $SIZES <<'PY' | tee "$OUT/table.md"
import re, statistics, sys
out = sys.argv[1]
for name in (row.split(":")[0] for row in sys.argv[2:]):
    for v in ("old", "new"):
        rps, cpu = [], []
        for r in range(1, 6):
            t = open(f"{out}/{name}.{v}.{r}.txt").read()
            rps.append(float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)))
            u, s_, _ = open(f"{out}/{name}.{v}.{r}.txt.cpu").read().split()
            m = re.search(r"([\d.]+)(GB|MB|KB)\s+read", t)
            gb = float(m.group(1)) * {"GB": 1, "MB": 1e-3, "KB": 1e-6}[m.group(2)]
            cpu.append((int(u) + int(s_)) / 100 / gb)
        print(f"| {name} | {v} | {', '.join(f'{x:,.0f}' for x in rps)} | {statistics.median(rps):,.0f} | {statistics.median(cpu):.3f} |")
PY
