#!/usr/bin/env bash
# The 30-minute soak (issue 11): the soak scenario of crates/zerocast/tests/soak.rs (500 fast
# viewers checking every continuity counter, 50 uploading, 50 never-reading, 50 connect-and-drop
# viewers, VOD range clients, a publisher cut off every 10 s), run for SOAK_SECS (default 1800)
# against a release build, then its per-second RSS, live memory and latency plotted to
# docs/soak.png (matplotlib, installed from PyPI if missing). Raw CSV in bench/results/.
#
#   bench/soak.sh                # 30 minutes
#   SOAK_SECS=300 bench/soak.sh  # 5 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SECS=${SOAK_SECS:-1800}
OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-soak
mkdir -p "$OUT"
source bench/lib.sh
machine_report > "$OUT/machine.txt"
python3 -c 'import matplotlib' 2>/dev/null || pip install -q matplotlib
ulimit -n 20000 2>/dev/null || true
SOAK_SECS=$SOAK_SECS SOAK_CSV="$PWD/$OUT/soak.csv" \
  cargo test --release -q -p zerocast --test soak -- --ignored --nocapture a_long_soak_stays_flat \
  2>&1 | tee "$OUT/test.log"
python3 - "$OUT/soak.csv" docs/soak.png "$SOAK_SECS" <<'PY'
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = list(csv.DictReader(open(sys.argv[1])))
t = [int(r["second"]) / 60 for r in rows]
f = lambda k: [float(r[k]) for r in rows]
fig, (a, b) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
a.plot(t, [v / 1024 for v in f("rss_kib")], label="server RSS (MiB)")
a.plot(t, [v / 2**20 for v in f("live_held_bytes")], label="live memory held by the stream (MiB)")
a.set_ylabel("MiB"); a.set_ylim(bottom=0); a.legend(loc="lower right"); a.grid(alpha=.3)
a.set_title(f"zerocast soak, {int(sys.argv[3]) // 60} min: 500 fast viewers, 150 misbehaving, VOD ranges, publisher cut every 10 s")
b.plot(t, f("vod_p99_ms"), label="VOD 64 KiB range p99 per second (ms)", lw=.8)
b.plot(t, f("vod_p50_ms"), label="VOD p50 (ms)", lw=.8)
b.plot(t, f("healthz_max_ms"), label="/healthz slowest per second (ms)", lw=.8, alpha=.7)
b.set_yscale("log"); b.set_ylabel("ms"); b.set_xlabel("minutes"); b.legend(loc="upper right"); b.grid(alpha=.3)
fig.tight_layout(); fig.savefig(sys.argv[2], dpi=90)
PY
echo "plot: docs/soak.png; data: $OUT/soak.csv"
