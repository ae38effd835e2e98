//! Live HLS segments as a client receives them: under a URL that names the publish (a stream
//! published again under the same name lists new URLs, never the last broadcast's), and sent
//! whole within the send limit (a client that reads too slowly is cut off, so slow readers
//! cannot keep old segments in memory).

mod common;

use common::fixtures::live_ts;
use common::live::{
    hls_playlist, instance_dir, raw_publish, read_head, server, wait_for, ChunkedPost, WAIT,
};
use common::tls::{h2_frames, h2_get};
use common::ts::keyframes;
use common::TestServer;
use server::live::LiveConfig;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn fixture_bytes() -> Vec<u8> {
    std::fs::read(live_ts()).unwrap()
}

fn hls_1s_window_3(c: &mut LiveConfig) {
    c.hls.min_segment = Duration::from_secs(1);
    c.hls.window = 3;
}

#[test]
fn a_stream_published_again_lists_its_segments_under_new_urls() {
    let s = server(hls_1s_window_3);
    let data = fixture_bytes();
    let k = keyframes(&data);
    // The first broadcast: three GOPs, then the publisher finishes (the stream ends at once).
    assert_eq!(
        raw_publish(s.addr, "/live/h", &data[..k[3]]).end().status,
        200
    );
    wait_for(&s, "h", "the end", |d| d["state"] == "ended");
    let first = hls_playlist(&s, "h");
    let old = format!("/live/h/{}0.ts", instance_dir(&first));
    let before = s.get(&old, &[]);
    assert_eq!(before.status, 200);
    assert_eq!(
        before.header("cache-control"),
        Some("public, max-age=600, immutable")
    );
    // The second, under the same name (the same source again: its segment 0 has the same
    // bytes, under another URL and ETag).
    let _post = raw_publish(s.addr, "/live/h", &data[..k[3]]);
    wait_for(&s, "h", "two segments of the second", |d| {
        d["state"] == "live" && d["hls_segments"] == 2
    });
    let second = hls_playlist(&s, "h");
    let new = format!("/live/h/{}0.ts", instance_dir(&second));
    assert_ne!(
        new, old,
        "a cache that holds the first's segment 0 never answers for this one"
    );
    let after = s.get(&new, &[]);
    assert_eq!(after.status, 200);
    assert_ne!(after.header("etag"), before.header("etag"));
    // The first broadcast's URLs are not answered with the second's bytes.
    let gone = s.get(&old, &[]);
    assert_eq!(gone.status, 404);
    let msg = gone.json()["error"].as_str().unwrap().to_string();
    assert!(msg.contains("earlier publish"), "{msg}");
    // So are its LL-HLS part and DASH segment URLs, at once: a request for a part or segment
    // still to come is held, but not one of another publish.
    let dir = instance_dir(&first);
    for file in ["1.0.m4s", "dash/v1.m4s", "init0.mp4"] {
        let asked = Instant::now();
        let r = s.get(&format!("/live/h/{dir}{file}"), &[]);
        assert_eq!(r.status, 404, "{file}");
        // (Held, it would wait for the part: three target durations, 6 s.)
        assert!(asked.elapsed() < Duration::from_secs(3), "{file}: not held");
    }
}

#[test]
fn a_live_segment_read_too_slowly_is_cut_off_at_the_send_limit() {
    slow_reader_is_cut_off("");
}

#[test]
fn a_live_segment_read_too_slowly_after_a_preflight_is_cut_off_too() {
    // A CORS preflight first: the connection is then served by hyper (the fast path does not
    // take OPTIONS), the segment too.
    slow_reader_is_cut_off(
        "OPTIONS /live/slow/index.m3u8 HTTP/1.1\r\nHost: x\r\nOrigin: http://player.example\r\n\
         Access-Control-Request-Method: GET\r\n\r\n",
    );
}

#[test]
fn a_handed_over_connection_serves_on_after_a_segments_limit_has_passed() {
    let s = server(|c| {
        c.hls.min_segment = Duration::from_secs(4);
        c.segment_send_limit = Duration::from_secs(1);
    });
    let (_post, path, whole) = slow_segment(&s);
    // A preflight first (the connection goes to hyper), then the segment, read at once.
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        c,
        "OPTIONS {path} HTTP/1.1\r\nHost: x\r\nOrigin: http://player.example\r\n\
         Access-Control-Request-Method: GET\r\n\r\nGET {path} HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    assert!(read_head(&mut c).starts_with("HTTP/1.1 204"));
    let head = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = vec![0u8; whole];
    c.read_exact(&mut body).unwrap();
    // The player comes back after the segment's limit has passed, with a request that is held
    // (the LL-HLS playlist waits for a first segment that the idle publisher never sends): the
    // connection is its own while it waits, and the answer comes when the wait ends.
    std::thread::sleep(Duration::from_millis(1500));
    write!(c, "GET /live/slow/ll.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let head = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[test]
fn a_live_segment_read_too_slowly_over_http2_is_reset_at_the_send_limit() {
    let (s, _post, path, whole, tls) = over_h2(|c| {
        c.live.segment_send_limit = Duration::from_secs(1);
    });
    // A window of 1 KiB, each DATA frame's credit given back 20 ms after it came (50 KiB/s).
    let mut tls = h2_get(tls, &path, 1024, 0);
    let asked = Instant::now();
    let read = read_stream_1(&mut tls, |_| Some(Duration::from_millis(20)));
    assert!(read.reset, "RST_STREAM for the segment: {read:?}");
    assert!(read.data < whole, "cut off: {} of {whole} bytes", read.data);
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    drop(s);
}

#[test]
fn an_http2_client_that_gives_no_credit_for_a_segments_last_byte_is_dropped_after_the_send_timeout()
{
    // The send limit far off: the stall of the last byte decides.
    let (s, _post, path, whole, tls) = over_h2(|c| {
        c.send_timeout = Duration::from_secs(1);
        c.header_read_timeout = Duration::from_secs(60);
    });
    // Credit for all but the segment's last byte, at once, then none: its last frame waits for
    // the client as any frame does (before, the body ended with it queued, and nothing watched
    // the stream: its bytes stayed held for as long as the client answered PINGs).
    let window = whole as u32 - 1;
    let mut tls = h2_get(tls, &path, window, window);
    let asked = Instant::now();
    let read = read_stream_1(&mut tls, |_| None);
    assert!(!read.ended, "{read:?}");
    assert_eq!(read.data, whole - 1, "{read:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "closed after {:?}",
        asked.elapsed()
    );
    drop(s);
}

/// An HTTPS server (`tweak` changes its config) with `slow` published, the path and length of
/// its first segment, and a TLS connection to it whose ALPN chose `h2`.
fn over_h2(
    tweak: impl FnOnce(&mut server::Config),
) -> (TestServer, ChunkedPost, String, usize, impl Read + Write) {
    use common::tls::{connect, TestCa};
    let mut ca = TestCa::new();
    let (cert, key) = ca.issue();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut config = server::Config {
        tls: Some(server::tls::TlsConfig::new(vec![any], cert, key)),
        ..server::Config::default()
    };
    config.live.hls.min_segment = Duration::from_secs(4);
    tweak(&mut config);
    let empty = server::Library::from_static(&[], std::time::SystemTime::now());
    let s = TestServer::start_with(config, empty);
    let (post, path, whole) = slow_segment(&s);
    let tls = connect(s.https[0], &ca.ca, &[b"h2"]);
    // A read that waits longer ends the test's reading (and fails what it checks).
    tls.sock.set_read_timeout(Some(WAIT)).unwrap();
    (s, post, path, whole, tls)
}

/// What an HTTP/2 client read of stream 1.
#[derive(Debug)]
struct H2Read {
    data: usize,
    reset: bool,
    ended: bool,
}

/// Reads as a client does until stream 1 ends or is reset, or the connection closes; after each
/// DATA frame of stream 1 gives its credit back (stream and connection) after the time `back`
/// says, or never (`None`).
fn read_stream_1<T: Read + Write>(
    tls: &mut T,
    mut back: impl FnMut(usize) -> Option<Duration>,
) -> H2Read {
    let mut r = H2Read {
        data: 0,
        reset: false,
        ended: false,
    };
    h2_frames(tls, |tls, kind, flags, stream, payload| {
        match kind {
            0 if stream == 1 => {
                r.data += payload.len();
                r.ended |= flags & 1 == 1;
                if let Some(after) = back(payload.len()) {
                    std::thread::sleep(after);
                    for id in [0u32, 1] {
                        let mut update = vec![0, 0, 4, 8, 0];
                        update.extend_from_slice(&id.to_be_bytes());
                        update.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                        tls.write_all(&update).unwrap();
                    }
                }
            }
            1 if stream == 1 => r.ended |= flags & 1 == 1,
            3 if stream == 1 => r.reset = true,
            _ => {}
        }
        !r.reset && !r.ended
    });
    r
}

/// Publishes `slow` (segments of four 1 s GOPs, over 200 KiB: more than socket buffers hold for
/// a slow reader); returns the publisher (the stream is live while it is kept), the first
/// segment's path and its length.
fn slow_segment(s: &TestServer) -> (ChunkedPost, String, usize) {
    let data = fixture_bytes();
    let k = keyframes(&data);
    let post = raw_publish(s.addr, "/live/slow", &data[..k[9]]);
    wait_for(s, "slow", "a segment", |d| {
        d["hls_segments"].as_u64() >= Some(1)
    });
    let p = String::from_utf8(s.get("/live/slow/index.m3u8", &[]).body).unwrap();
    let path = format!(
        "/live/slow/{}",
        p.lines().find(|l| l.ends_with(".ts")).unwrap()
    );
    let whole = s.get(&path, &[]).body.len();
    assert!(whole > 200 << 10, "a segment of {whole} bytes");
    (post, path, whole)
}

/// A client that asks for a live segment of over 200 KiB after `preface` (requests on the same
/// connection), then reads on slowly, so that it never stalls: it gets less than the segment,
/// and the connection ends within the send limit (1 s) and what was in the buffers.
fn slow_reader_is_cut_off(preface: &str) {
    let s = server(|c| {
        // Segments of four 1 s GOPs: more than the socket buffers hold for a slow reader.
        c.hls.min_segment = Duration::from_secs(4);
        c.segment_send_limit = Duration::from_secs(1);
    });
    let (_post, path, whole) = slow_segment(&s);
    // 1 KiB every 20 ms: 50 KiB/s.
    let mut c = slow_client(s.addr);
    c.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        c,
        "{preface}GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let asked = Instant::now();
    let mut got = 0;
    let mut buf = [0u8; 1024];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(got < whole, "cut off: {got} of {whole} bytes");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    // The segment is whole for whoever reads it in time.
    assert_eq!(s.get(&path, &[]).body.len(), whole);
}

/// A connection to `addr` from a socket with a receive buffer of 4 KiB and a segment size of
/// 536 bytes (the Internet's least), set before it connects: the server's send buffer then
/// grows as it would for a slow client on the Internet, not to the megabytes loopback's 64 KiB
/// segments let it take (which would hold a whole segment in the kernel).
fn slow_client(addr: std::net::SocketAddr) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    let std::net::SocketAddr::V4(v4) = addr else {
        panic!("{addr}: IPv4 only")
    };
    // SAFETY: creates a descriptor; touches no memory of ours.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: `fd` is a new socket that nothing else owns.
    let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    for (level, name, value) in [
        (libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 10),
        (libc::IPPROTO_TCP, libc::TCP_MAXSEG, 536),
    ] {
        let value: libc::c_int = value;
        // SAFETY: a valid socket descriptor, and a c_int option value of the size given.
        let r = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `sin` is a valid IPv4 address of the size given, read during the call only.
    let r = unsafe {
        libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    stream
}
