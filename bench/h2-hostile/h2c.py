import socket, ssl, struct, time, sys, select
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
def connect(port=18443, rcvbuf=None):
    s = socket.socket()
    if rcvbuf: s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    t = ctx.wrap_socket(s, server_hostname="localhost")
    assert t.selected_alpn_protocol() == "h2", t.selected_alpn_protocol()
    return t
def frame(typ, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([typ, flags]) + struct.pack(">I", sid) + payload
def settings(**kv):
    ids = {"HEADER_TABLE_SIZE":1,"ENABLE_PUSH":2,"MAX_CONCURRENT_STREAMS":3,"INITIAL_WINDOW_SIZE":4,"MAX_FRAME_SIZE":5}
    return frame(4, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in kv.items()))
def hstr(s):
    b = s.encode(); assert len(b) < 127
    return bytes([len(b)]) + b
def get(sid, path, auth="localhost"):
    # literal without indexing, indexed names: :method GET = 0x82, :scheme https = 0x87
    blk = b"\x82\x87" + b"\x04" + hstr(path) + b"\x01" + hstr(auth)  # :path (idx4), :authority (idx1)
    return frame(1, 0x5, sid, blk)  # END_STREAM|END_HEADERS
def window_update(sid, inc): return frame(8, 0, sid, struct.pack(">I", inc))
def read_frames(t, buf):
    out = []
    while len(buf) >= 9:
        n = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + n: break
        out.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff, bytes(buf[9:9+n])))
        del buf[:9+n]
    return out
