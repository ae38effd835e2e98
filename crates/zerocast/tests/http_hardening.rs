//! Hardening of the HTTP surface (issue 11, findings 2 and 5): clients that stop reading, request
//! framing the fast path must refuse as strictly as hyper, chunk framing that costs more than the
//! body it carries, and request-derived strings echoed back.

mod common;

use common::{parse_response, TestServer};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// The send timeout the tests configure, and how late the close may come after it.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);
const SLACK: Duration = Duration::from_secs(4);

/// A server whose library holds one 64 MiB title, `big.bin` (more than loopback's socket buffers
/// hold), mapped from its file; `tweak` changes the config.
fn big_title_server(tweak: impl FnOnce(&mut server::Config)) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(dir.path().join("big.bin")).unwrap();
    f.set_len(64 << 20).unwrap();
    let lib = server::Library::load(dir.path(), 0, |_| {}).unwrap();
    let mut config = server::Config {
        send_timeout: SEND_TIMEOUT,
        ..server::Config::default()
    };
    tweak(&mut config);
    (TestServer::start_with(config, lib), dir)
}

/// Waits until the server closes or resets `c`, without reading from it (a read would open the
/// receive window and let the server make progress again). Returns how long that took, or `None`
/// when the connection is still open after `limit`.
fn await_close_unread(c: &TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut p = libc::pollfd {
        fd: c.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    let ms = i32::try_from(limit.as_millis()).unwrap();
    // SAFETY: `p` is one valid pollfd that outlives the call; the fd is open (`c` is borrowed).
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    (n == 1).then(|| started.elapsed())
}

/// Sends a request for the big title and never reads; meanwhile `/healthz` is answered, and the
/// server resets the connection within the send timeout and some slack.
fn assert_a_client_that_reads_nothing_is_cut_off(s: &TestServer, request: &str) {
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let asked = Instant::now();
    assert_eq!(s.get("/healthz", &[]).status, 200);
    let took = await_close_unread(&c, Duration::from_secs(30))
        .map(|_| asked.elapsed())
        .expect("the server still holds a client that read nothing for 30 s");
    assert!(
        took < SEND_TIMEOUT + SLACK,
        "closed after {took:?} (send timeout {SEND_TIMEOUT:?})"
    );
    // Reset, so the kernel drops the unsent bytes at once (or at least closed).
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = vec![0u8; 1 << 20];
    loop {
        match c.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("neither EOF nor a reset: {e}"),
        }
    }
}

#[test]
fn a_vod_client_that_reads_nothing_is_cut_off_after_the_send_timeout_sendfile() {
    let (s, _dir) = big_title_server(|_| {});
    assert_a_client_that_reads_nothing_is_cut_off(
        &s,
        "GET /videos/big.bin HTTP/1.1\r\nHost: x\r\n\r\n",
    );
}

#[test]
fn a_vod_client_that_reads_nothing_is_cut_off_after_the_send_timeout_writev() {
    let (s, _dir) = big_title_server(|c| c.policy.sendfile_min = u64::MAX);
    assert_a_client_that_reads_nothing_is_cut_off(
        &s,
        "GET /videos/big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-40000000\r\n\r\n",
    );
}

#[test]
fn a_client_of_hyper_that_reads_nothing_is_cut_off_after_the_send_timeout() {
    // HTTP/1.0 requests are hyper's (see h1/head.rs).
    let (s, _dir) = big_title_server(|_| {});
    assert_a_client_that_reads_nothing_is_cut_off(&s, "GET /videos/big.bin HTTP/1.0\r\n\r\n");
}

/// Sends `raw` on a fresh connection and reads the response until the server closes.
fn exchange(s: &TestServer, raw: &[u8]) -> common::Resp {
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(raw).unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(!got.is_empty(), "no answer within 10 s");
    parse_response(&got)
}

#[test]
fn a_publish_with_two_different_content_lengths_is_a_400() {
    let s = common::live::server(|_| {});
    let r = exchange(
        &s,
        b"PUT /live/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nContent-Length: 2000\r\n\r\n0123456789",
    );
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        common::live::stream_doc(&s, "x").is_none(),
        "nothing published"
    );
}

#[test]
fn a_publisher_sending_one_byte_chunks_is_disconnected() {
    let s = common::live::server(|_| {});
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(b"PUT /live/tiny HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    // 1-byte chunks (5 framing bytes per body byte), as fast as the server takes them, for at
    // most 20 s: the server must end the publish.
    let chunks = b"1\r\nG\r\n".repeat(10_000);
    let started = Instant::now();
    let cut_off = loop {
        if started.elapsed() > Duration::from_secs(20) {
            break false;
        }
        if c.write_all(&chunks).is_err() {
            break true;
        }
    };
    assert!(
        cut_off,
        "still publishing 1-byte chunks after {:?}",
        started.elapsed()
    );
}

#[test]
fn a_30_kb_path_gets_a_short_404() {
    let s = common::live::server(|_| {});
    let id = "a".repeat(30 * 1024);
    for path in [format!("/videos/{id}"), format!("/api/videos/{id}")] {
        let r = s.get(&path, &[]);
        assert_eq!(r.status, 404);
        assert!(
            r.body.len() < 1024,
            "{}: a {}-byte answer",
            &path[..12],
            r.body.len()
        );
    }
}

/// A head sent a byte at a time (each write its own segment) is answered as any other: the
/// fast path parses it again only when a line ends, and still sees it whole.
#[test]
fn a_head_sent_a_byte_at_a_time_is_answered() {
    let s = TestServer::demo();
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    for b in b"GET /videos/clip.ts HTTP/1.1\r\nHost: x\r\nRange: bytes=0-187\r\nConnection: close\r\n\r\n" {
        c.write_all(&[*b]).unwrap();
    }
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).unwrap();
    let r = parse_response(&raw);
    assert_eq!(r.status, 206);
    assert_eq!(r.body.len(), 188);
}

/// The answer to a HEAD that the server refuses has a head and no body (RFC 9110 §9.3.2): a
/// client or proxy reading it as a HEAD's would take the body for the next response.
#[test]
fn a_head_request_refused_for_its_framing_gets_no_body() {
    let s = common::live::server(|_| {});
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"HEAD /videos/clip.ts HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    let end = text.find("\r\n\r\n").expect("a whole head") + 4;
    assert_eq!(&text[end..], "", "no body after the head");
    assert!(
        text.to_ascii_lowercase().contains("content-length:"),
        "the length the GET's body would have: {text}"
    );
}
