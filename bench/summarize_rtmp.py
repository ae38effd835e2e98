#!/usr/bin/env python3
"""Table of one bench/rtmp-vs-nginx.sh run."""
import json, pathlib, sys

out = pathlib.Path(sys.argv[1])
print(f"## RTMP fan-out, zerocast vs nginx-rtmp ({out.name})\n")
print("```\n" + (out / "machine.txt").read_text().strip() + "\n```\n")
print("| run | viewers | failed | server CPU % | server RSS MiB | RSS/viewer KiB (RSS − RSS before viewers) / viewers | per-viewer min/median Mbit/s | first keyframe p50/p99 ms | zerocast skips | load client CPU % |")
print("|---|---|---|---|---|---|---|---|---|---|")
for f in sorted(out.glob("*.json")):
    r = json.loads(f.read_text())
    fmt = lambda v: "-" if v is None else f"{v:.1f}"
    rss = r.get("server_rss_kib") or 0
    base = json.loads(f.with_suffix(".baseline").read_text())["server_rss_kib_before_viewers"] if f.with_suffix(".baseline").exists() else 0
    t = r["time_to_first_keyframe_ms"]
    per = "-" if not r["viewers"] else f"{(rss - base) / r['viewers']:.1f}"
    skips = r["server_skips_in_window"] if f.name.startswith("zerocast") else "n/a"
    print(f"| {f.stem} | {r['viewers']} | {r['failed']} | {fmt(r['server_cpu_percent'])} | {rss/1024:.0f} | {per} | "
          f"{fmt(r['per_viewer_mbit_s_min'])}/{fmt(r['per_viewer_mbit_s_median'])} | {fmt(t['p50'])}/{fmt(t['p99'])} | {skips} | {fmt(r['load_client_cpu_percent'])} |")
