#!/usr/bin/env python3
"""Opens N keep-alive connections to HOST:PORT, sends one HEAD PATH on each, reads each response
head, then keeps them all open and idle, prints 'ready' and waits for a line on stdin (or HOLD
seconds) before closing. Used to measure a server's memory per idle keep-alive connection.
With IDLE_TLS=1 in the environment each connection is TLS (no certificate check: loopback)."""
import os, selectors, socket, ssl, sys, time

host, port, n, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
hold = float(sys.argv[5]) if len(sys.argv) > 5 else 30.0
sources = [f"127.0.0.{i}" for i in range(2, 10)]
sel = selectors.DefaultSelector()
socks = []
req = f"HEAD {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
tls = os.environ.get("IDLE_TLS") == "1"
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for i in range(n):
    s = socket.socket()
    s.bind((sources[i % len(sources)], 0))
    s.connect((host, port))
    if tls:
        s = ctx.wrap_socket(s)
    s.sendall(req)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, b"")
    socks.append(s)
pending = n
deadline = time.time() + 60
while pending and time.time() < deadline:
    for key, _ in sel.select(timeout=1):
        try:
            buf = key.data + key.fileobj.recv(65536)
        except ssl.SSLWantReadError:
            continue
        if b"\r\n\r\n" in buf:
            sel.unregister(key.fileobj)
            pending -= 1
        else:
            sel.modify(key.fileobj, selectors.EVENT_READ, buf)
print(f"ready {n - pending}", flush=True)
import select
select.select([sys.stdin], [], [], hold)
for s in socks:
    s.close()
