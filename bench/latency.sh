#!/usr/bin/env bash
# Glass-to-glass latency of the browser outputs (issue 13): the publisher's frame number burned
# into the picture, read back off each frame headless Chromium shows (crates/zerocast/tests/
# latency.rs says how). Prints median and p95 per player and keeps the output under
# bench/results/latency-<date>.txt.
#
#   bench/latency.sh                     # 60 s per player
#   LATENCY_SECS=20 LATENCY_ONLY=dashjs,hlsjs bench/latency.sh
#   LATENCY_PART_MS=333 bench/latency.sh # another LL-HLS part target
set -euo pipefail
cd "$(dirname "$0")/.."
out="bench/results/latency-$(date +%Y-%m-%d).txt"
mkdir -p bench/results
cargo test --release -p zerocast --test latency -- --ignored --nocapture --test-threads 1 2>&1 |
    grep -E "glass to glass|^  \(|median" | sed "s/^test .* \.\.\. //" | tee "$out"
echo "kept in $out"
