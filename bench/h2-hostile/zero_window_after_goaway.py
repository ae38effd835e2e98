# (1b) INITIAL_WINDOW_SIZE=0; wait for the idle GOAWAY; then open N GET streams of the 64 MiB title; never grant credit.
# argv[1]: "noping" = don't answer the GOAWAY's PING (answer other PINGs), "ping" = answer all PINGs
import sys, time; from h2c import *
mode = sys.argv[1]; N = int(sys.argv[2]) if len(sys.argv) > 2 else 20
SHUT = bytes([0x0b,0x7b,0xa2,0xf0,0x8b,0x9b,0xfe,0x54])
t = connect(); t0 = time.time()
t.sendall(PREFACE + settings(INITIAL_WINDOW_SIZE=0, ENABLE_PUSH=0))
buf = bytearray(); opened = None; heads = set(); data = 0
t.settimeout(0.5)
def log(m): print("%7.2f %s" % (time.time()-t0, m), flush=True)
while True:
    try: d = t.recv(65536)
    except (TimeoutError, socket.timeout): d = None
    except Exception as e: log("closed: %r; %d response HEADERS, %d DATA bytes; %.2f s after opening streams" % (e, len(heads), data, time.time()-opened if opened else -1)); break
    if d == b"": log("EOF; %d response HEADERS, %d DATA bytes; %.2f s after opening streams" % (len(heads), data, time.time()-opened if opened else -1)); break
    if d: buf += d
    for typ, fl, sid, p in read_frames(t, buf):
        if typ == 4 and not fl & 1: t.sendall(frame(4, 1, 0)); log("server SETTINGS %s" % p.hex())
        elif typ == 6 and not fl & 1:
            if p == SHUT and mode == "noping": log("GOAWAY PING not answered")
            else: t.sendall(frame(6, 1, 0, p)); log("PING answered %s" % p.hex())
        elif typ == 7:
            log("GOAWAY last=%d err=%d" % (int.from_bytes(p[:4],"big"), int.from_bytes(p[4:8],"big")))
            if opened is None:
                t.sendall(b"".join(get(1+2*i, "/videos/big.mp4") for i in range(N))); opened = time.time()
                log("opened %d streams" % N)
        elif typ == 1: heads.add(sid)
        elif typ == 0: data += len(p)
        elif typ == 3: log("RST_STREAM %d err=%d" % (sid, int.from_bytes(p,"big")))
    if time.time() - t0 > 150: log("STILL OPEN at 150 s; %d HEADERS" % len(heads)); break
