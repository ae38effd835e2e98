#!/usr/bin/env python3
"""Writes an MP4 whose tracks are not interleaved: every chunk of its first track, then every
chunk of the next, and so on (as some cameras and `MP4Box -flat` write them). The sample
tables are the input's; only the chunk offsets (`stco`/`co64`) change. The input must have
its `moov` before its `mdat` (faststart) and one `mdat`.

    scripts/make-non-interleaved.py demo/faststart.mp4 crates/media/tests/fixtures/non-interleaved.mp4
"""

import struct
import sys


def boxes(buf, start, end):
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", buf[at:at + 8])
        head = 8
        if size == 1:
            size = struct.unpack(">Q", buf[at + 8:at + 16])[0]
            head = 16
        elif size == 0:
            size = end - at
        yield kind.decode("latin-1"), at, at + head, at + size
        at += size


def child(buf, start, end, kind):
    for k, _, body, stop in boxes(buf, start, end):
        if k == kind:
            return body, stop
    raise SystemExit(f"no {kind} box")


def track_chunks(buf, stbl):
    """The track's chunks: (offset field position, width, offset, length)."""
    start, end = stbl
    s, _ = child(buf, start, end, "stsz")
    fixed, count = struct.unpack(">II", buf[s + 4:s + 12])
    sizes = [fixed] * count if fixed else list(struct.unpack(f">{count}I", buf[s + 12:s + 12 + 4 * count]))
    s, _ = child(buf, start, end, "stsc")
    n = struct.unpack(">I", buf[s + 4:s + 8])[0]
    runs = [struct.unpack(">III", buf[s + 8 + 12 * i:s + 20 + 12 * i]) for i in range(n)]
    try:
        s, _ = child(buf, start, end, "stco")
        width = 4
    except SystemExit:
        s, _ = child(buf, start, end, "co64")
        width = 8
    chunks = struct.unpack(">I", buf[s + 4:s + 8])[0]
    fmt = ">I" if width == 4 else ">Q"
    offsets = [struct.unpack(fmt, buf[s + 8 + width * i:s + 8 + width * (i + 1)])[0] for i in range(chunks)]
    per_chunk = []
    for i, (first, per, _) in enumerate(runs):
        last = runs[i + 1][0] if i + 1 < len(runs) else chunks + 1
        per_chunk += [per] * (last - first)
    out, sample = [], 0
    for i, off in enumerate(offsets):
        length = sum(sizes[sample:sample + per_chunk[i]])
        sample += per_chunk[i]
        out.append((s + 8 + width * i, width, off, length))
    return out


def main(src, dst):
    buf = bytearray(open(src, "rb").read())
    top = list(boxes(buf, 0, len(buf)))
    moov = next(b for b in top if b[0] == "moov")
    mdat = next(b for b in top if b[0] == "mdat")
    if moov[1] > mdat[1]:
        raise SystemExit("moov must come before mdat")
    tracks = []
    for k, _, body, stop in boxes(buf, moov[2], moov[3]):
        if k != "trak":
            continue
        mdia = child(buf, body, stop, "mdia")
        minf = child(buf, *mdia, "minf")
        tracks.append(track_chunks(buf, child(buf, *minf, "stbl")))
    data = bytearray()
    base = mdat[2]
    for chunks in tracks:
        for pos, width, off, length in chunks:
            new = base + len(data)
            data += buf[off:off + length]
            buf[pos:pos + width] = struct.pack(">I" if width == 4 else ">Q", new)
    if len(data) != mdat[3] - mdat[2]:
        raise SystemExit("the chunks do not fill the mdat")
    buf[mdat[2]:mdat[3]] = data
    open(dst, "wb").write(buf)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
