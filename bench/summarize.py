#!/usr/bin/env python3
"""Summarises a bench/vod-vs-nginx.sh run: medians of the rounds per row and server, and ratios."""
import glob, os, re, statistics, sys

out, ceil, servers = sys.argv[1], float(sys.argv[2]), sys.argv[3].split()
ticks = os.sysconf("SC_CLK_TCK")
SIZES = {"range_1KiB": 1024, "range_16KiB": 16384, "range_64KiB": 65536, "range_256KiB": 262144,
         "range_1MiB": 1 << 20, "range_4MiB": 4 << 20, "whole_20MB": 0, "range_1MiB_c1000": 1 << 20,
         "range_1MiB_c10000": 1 << 20}
SMALL = os.path.getsize("bench/media/small.mp4")


def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    if not m:
        return float("nan")
    x, u = float(m.group(1)), m.group(2)
    return {"us": x / 1000, "ms": x, "s": x * 1000, "m": x * 60000}[u]


def wrk_bytes(t):
    """Bytes wrk read (its "N requests in Ts, X read" line; wrk's units are binary)."""
    m = re.search(r"requests in \S+, ([\d.]+)([KMGT]?B) read", t)
    if not m:
        return None
    return float(m.group(1)) * {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[m.group(2)]


def parse(path, name, size):
    dur = float(open(os.path.join(out, name + ".duration")).read())
    t = open(path).read()
    found = re.search(r"Requests/sec:\s+([\d.]+)", t)
    rps = float(found.group(1)) if found else 0.0
    p50 = re.search(r"^\s+50%\s+(\S+)", t, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", t, re.M)
    errors = re.search(r"Socket errors: (.*)", t)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    u, s, rss = map(int, open(path + ".cpu").read().split())
    # Bytes on the wire as wrk counted them: heads included, and the parts of responses still in
    # flight when the run ended (at 10,000 connections a 1 MiB response takes longer than the run,
    # so completed requests x size would count almost nothing of what was served).
    read = wrk_bytes(t)
    gb = (read if read is not None else (size or SMALL) * rps * dur) / 1e9
    return {
        "rps": rps, "gbps": gb / dur,
        "p50": ms(p50.group(1)) if p50 else float("nan"), "p99": ms(p99.group(1)) if p99 else float("nan"),
        "user": (u / ticks) / gb if gb else float("nan"), "sys": (s / ticks) / gb if gb else float("nan"),
        "rss": rss / 1024,
        "errors": (errors.group(1) if errors else "") + (f" non2xx={non2xx.group(1)}" if non2xx else ""),
    }


rows = {}
for f in sorted(glob.glob(os.path.join(out, "*.txt"))):
    m = re.match(r"(.+)\.(zerocast|nginx)\.(\d+)\.txt$", os.path.basename(f))
    if m:
        rows.setdefault(m.group(1), {}).setdefault(m.group(2), []).append(parse(f, m.group(1), SIZES[m.group(1)]))


def med(runs, k):
    return statistics.median(r[k] for r in runs)


rounds = max((len(v) for r in rows.values() for v in r.values()), default=0)
print(f"iperf3 loopback ceiling: {ceil:.2f} GB/s; medians of {rounds} rounds\n")
head = ("| row | server | req/s | GB/s | % of iperf3 | p50 ms | p99 ms | user s/GB | sys s/GB | CPU s/GB "
        "| RSS MiB | errors |")
print(head)
print("|" + "---|" * (head.count("|") - 1))
for name in SIZES:
    for srv in servers:
        runs = rows.get(name, {}).get(srv)
        if not runs:
            continue
        g = med(runs, "gbps")
        errs = "; ".join(sorted(set(r["errors"] for r in runs if r["errors"])))
        print(f"| {name} | {srv} | {med(runs, 'rps'):,.0f} | {g:.2f} | {100 * g / ceil if ceil else 0:.0f}% | "
              f"{med(runs, 'p50'):.2f} | {med(runs, 'p99'):.2f} | {med(runs, 'user'):.3f} | {med(runs, 'sys'):.3f} | "
              f"{med(runs, 'user') + med(runs, 'sys'):.3f} | {med(runs, 'rss'):.0f} | {errs} |")
if set(servers) >= {"zerocast", "nginx"}:
    print("\n| row | req/s zerocast/nginx | GB/s zerocast/nginx | CPU s/GB zerocast/nginx | p99 zerocast/nginx |")
    print("|---|---|---|---|---|")
    for name in SIZES:
        r = rows.get(name, {})
        if "zerocast" in r and "nginx" in r:
            z, n = r["zerocast"], r["nginx"]
            cz, cn = med(z, "user") + med(z, "sys"), med(n, "user") + med(n, "sys")
            print(f"| {name} | {med(z, 'rps') / med(n, 'rps'):.2f} | {med(z, 'gbps') / med(n, 'gbps'):.2f} | "
                  f"{cz / cn:.2f} | {med(z, 'p99') / med(n, 'p99'):.2f} |")
idle = os.path.join(out, "idle.txt")
if os.path.exists(idle):
    print("\n| server | idle keep-alive connections | RSS before MiB | RSS with them MiB | KiB per connection |")
    print("|---|---|---|---|---|")
    for line in open(idle):
        srv, before, after, count = line.split()
        n = int(count)
        per = (int(after) - int(before)) / n if n else 0
        print(f"| {srv} | {n} | {int(before) / 1024:.0f} | {int(after) / 1024:.0f} | {per:.2f} |")
