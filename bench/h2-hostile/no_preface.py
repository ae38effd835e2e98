# (1) TLS+ALPN h2, then no preface at all (or half a preface with arg "half"); time until the server closes
import sys, time; from h2c import *
t = connect(); start = time.time()
if len(sys.argv) > 1 and sys.argv[1] == "half": t.sendall(b"PRI * HTTP/2.0\r\n")
t.settimeout(1); got = b""
while True:
    try:
        d = t.recv(65536)
        if not d: print("closed (EOF) after %.2f s, got %d bytes: %r" % (time.time()-start, len(got), got[:60])); break
        got += d
    except (TimeoutError, socket.timeout):
        if time.time() - start > 120: print("STILL OPEN at 120 s"); break
    except Exception as e: print("closed (%r) after %.2f s, got %d bytes" % (e, time.time()-start, len(got))); break
