#!/usr/bin/env python3
"""Records what ffmpeg sends when it publishes over RTMP: a proxy on 127.0.0.1:PROXY forwards to
a running zerocast RTMP listener and saves the client-to-server bytes, as the reads they arrived
in (each a 4-byte big-endian length, then the bytes), so that a replay keeps the points where
the client waited for an answer.

    zerocast serve --rtmp-listen 127.0.0.1:19400 &
    scripts/record-rtmp-publish.py 19401 19400 crates/rtmp/tests/fixtures/ffmpeg-publish.rtmp &
    ffmpeg -re -f lavfi -i testsrc2=size=160x120:rate=25 -f lavfi -i sine=sample_rate=44100 -t 1 \
      -c:v libx264 -preset ultrafast -g 25 -bf 0 -c:a aac -b:a 32k -f flv rtmp://127.0.0.1:19401/live/fixture
"""
import socket, sys, threading

listen, upstream, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen))
srv.listen(1)
client, _ = srv.accept()
up = socket.create_connection(("127.0.0.1", upstream))
recorded = bytearray()

def pump(a, b, record):
    while True:
        d = a.recv(65536)
        if not d:
            b.shutdown(socket.SHUT_WR)
            return
        if record:
            recorded.extend(len(d).to_bytes(4, "big"))
            recorded.extend(d)
        b.sendall(d)

t = threading.Thread(target=pump, args=(up, client, False), daemon=True)
t.start()
pump(client, up, True)
open(out, "wb").write(recorded)
print(f"recorded {len(recorded)} bytes to {out}")
