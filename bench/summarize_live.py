#!/usr/bin/env python3
"""Prints the live benchmark reports of one run (bench/live.sh) as a Markdown table."""
import json, pathlib, sys

out = pathlib.Path(sys.argv[1])
print(f"## live benchmark {out.name}\n")
print("```")
print((out / "machine.txt").read_text().strip())
print("```\n")
print("| scenario | viewers | publishers | server CPU % | server RSS MiB | RSS/viewer KiB | per-viewer min Mbit/s | gaps (viewers) | skips | first keyframe p50/p99 ms | latency p50/p99/max ms (read by the viewer) | latency p50/p99/max ms (in the viewer's socket) | ingest lost/sent bytes |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
base = {}
if (out / "idle-baseline.json").exists():
    base = json.loads((out / "idle-baseline.json").read_text())
for name in ["fanout", "idle", "ingest"]:
    f = out / f"{name}.json"
    if not f.exists():
        continue
    r = json.loads(f.read_text())
    rss = r.get("server_rss_kib") or 0
    per = "-"
    if name == "idle" and base:
        per = f"{(rss - base['server_rss_kib_before_viewers']) / r['viewers']:.1f}"
    elif r["viewers"]:
        per = f"{rss / r['viewers']:.1f} (all RSS)"
    t, l = r["time_to_first_keyframe_ms"], r["latency_ms"]
    a = r.get("arrival_latency_ms") or {"p50": None, "p99": None, "max": None}
    fmt = lambda v: "-" if v is None else f"{v:.1f}"
    print(f"| {name} | {r['viewers']} | {r['publishers']} | {fmt(r['server_cpu_percent'])} | {rss/1024:.0f} | {per} | "
          f"{fmt(r['per_viewer_mbit_s_min'])} | "
          f"{r['gaps_in_window']} ({r['viewers_with_gaps_total']}) | {r['server_skips_in_window']} | "
          f"{fmt(t['p50'])}/{fmt(t['p99'])} | {fmt(l['p50'])}/{fmt(l['p99'])}/{fmt(l['max'])} | "
          f"{fmt(a['p50'])}/{fmt(a['p99'])}/{fmt(a['max'])} | "
          f"{r['ingest_bytes_lost']}/{r['ingest_bytes_sent']} |")
