//! Live-stream harness: a server with a `LiveConfig` tweak, publishers (ffmpeg over HTTP or RTMP,
//! and a raw chunked POST), waiting on `/api/streams/{name}`, and raw `.ts`/`.flv` viewers.

use super::ts::{dechunk, PACKET};
use super::{parse_response, require, Resp, TestServer};
use server::live::LiveConfig;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How long any one wait in the live tests may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A server with an empty library and the default live settings changed by `f`.
pub fn server(f: impl FnOnce(&mut LiveConfig)) -> TestServer {
    let mut config = server::Config::default();
    f(&mut config.live);
    TestServer::start_with(config, server::Library::from_static(&[], super::now()))
}

/// The stream's document, or `None` when `/api/streams/{name}` is 404.
pub fn stream_doc(s: &TestServer, name: &str) -> Option<serde_json::Value> {
    let r = s.get(&format!("/api/streams/{name}"), &[]);
    match r.status {
        200 => Some(r.json()),
        404 => None,
        other => panic!("/api/streams/{name}: {other}"),
    }
}

/// Polls `/api/streams/{name}` until its document satisfies `ok` (at most [`WAIT`]).
#[track_caller]
pub fn wait_for(
    s: &TestServer,
    name: &str,
    what: &str,
    ok: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_for_within(s, name, what, WAIT, ok)
}

/// Polls `/api/streams/{name}` until its document satisfies `ok` (at most `limit`).
#[track_caller]
pub fn wait_for_within(
    s: &TestServer,
    name: &str,
    what: &str,
    limit: Duration,
    mut ok: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(d) = stream_doc(s, name) {
            if ok(&d) {
                return d;
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {name}: {what}; now {:?}",
            stream_doc(s, name)
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `cond` until it holds (at most `limit`).
#[track_caller]
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A child process (a publisher, usually), killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub fn spawn(c: &mut Command) -> Self {
        Proc(
            c.stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn"),
        )
    }

    /// Waits for the process to exit by itself (at most `limit`): whether it succeeded, and what
    /// it wrote to stderr.
    #[track_caller]
    pub fn wait(mut self, limit: Duration) -> (bool, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.0.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.0.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return (st.success(), err);
            }
            assert!(
                Instant::now() < deadline,
                "process still running after {limit:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `ffmpeg [input_opts] -i input -c copy -f FORMAT [output_opts] URL`, stderr kept.
pub fn ffmpeg_publish(
    input: &Path,
    input_opts: &[&str],
    format: &str,
    output_opts: &[&str],
    url: &str,
) -> Proc {
    require("ffmpeg");
    Proc::spawn(
        Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin"])
            .args(input_opts)
            .args(["-i", input.to_str().unwrap(), "-c", "copy", "-f", format])
            .args(output_opts)
            .arg(url),
    )
}

/// ffmpeg publishes [`super::fixtures::live_ts`] in real time over HTTP: a chunked POST, or a
/// PUT with `method`.
pub fn ts_publisher(url: &str, method: Option<&str>) -> Proc {
    let method: Vec<&str> = method.map(|m| vec!["-method", m]).unwrap_or_default();
    ffmpeg_publish(
        &super::fixtures::live_ts(),
        &["-re"],
        "mpegts",
        &method,
        url,
    )
}

/// ffmpeg publishes `input` over RTMP to `path` (with its `?key=`) on the server's RTMP port.
pub fn rtmp_publisher(s: &TestServer, path: &str, input: &Path, input_opts: &[&str]) -> Proc {
    let url = format!("rtmp://{}{path}", s.rtmp);
    ffmpeg_publish(input, input_opts, "flv", &[], &url)
}

/// A stream published in real time from a long fixture, shared by the tests that only watch it
/// for a few seconds (each has its own viewers, so they do not disturb one another).
pub struct Shared {
    pub server: TestServer,
    _publisher: Proc,
    started: Instant,
}

/// The shared stream in `cell`, started with `start` (a server and its real-time publisher)
/// when there is none yet, or when the current one has run for `fresh_for` and could end under
/// a test still watching it. A replaced one lives on while a test holds it.
pub fn shared(
    cell: &Mutex<Option<Arc<Shared>>>,
    fresh_for: Duration,
    start: impl FnOnce() -> (TestServer, Proc),
) -> Arc<Shared> {
    let mut current = cell.lock().unwrap_or_else(PoisonError::into_inner);
    match &*current {
        Some(s) if s.started.elapsed() < fresh_for => s.clone(),
        _ => {
            let started = Instant::now();
            let (server, publisher) = start();
            let s = Arc::new(Shared {
                server,
                _publisher: publisher,
                started,
            });
            *current = Some(s.clone());
            s
        }
    }
}

/// A publisher over a raw socket: a chunked POST sent piece by piece, ended with the last chunk
/// (`end`) or by dropping the connection (`drop`).
pub struct ChunkedPost(pub TcpStream);

impl ChunkedPost {
    pub fn start(addr: SocketAddr, path: &str) -> Self {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        ChunkedPost(s)
    }

    /// Sends `data` in chunks of 40 packets, `pace` apart.
    pub fn send(&mut self, data: &[u8], pace: Duration) {
        for c in data.chunks(PACKET * 40) {
            self.0
                .write_all(format!("{:x}\r\n", c.len()).as_bytes())
                .unwrap();
            self.0.write_all(c).unwrap();
            self.0.write_all(b"\r\n").unwrap();
            if !pace.is_zero() {
                thread::sleep(pace);
            }
        }
    }

    /// Sends the last chunk and reads the response.
    pub fn end(mut self) -> Resp {
        self.0.write_all(b"0\r\n\r\n").unwrap();
        self.0
            .set_read_timeout(Some(WAIT))
            .expect("set_read_timeout");
        let mut raw = Vec::new();
        self.0.read_to_end(&mut raw).unwrap();
        parse_response(&raw)
    }
}

/// Starts a chunked POST of `data` to `path`, sent all at once; the connection stays open.
pub fn raw_publish(addr: SocketAddr, path: &str, data: &[u8]) -> ChunkedPost {
    let mut p = ChunkedPost::start(addr, path);
    p.send(data, Duration::ZERO);
    p
}

/// Sends a whole request (head and body) on a fresh connection and reads the response to its end.
pub fn send_raw(addr: SocketAddr, head: &str, body: &[u8]) -> Resp {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(body).unwrap();
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).unwrap();
    parse_response(&raw)
}

/// How a [`Viewer`] reads.
#[derive(Debug, Clone, Copy)]
pub enum Reading {
    /// As fast as it can, 1 MiB at a time.
    Fast,
    /// `size` bytes, then a pause.
    Slow { size: usize, pause: Duration },
    /// Never: the socket's buffers fill and the server's writes block.
    Stalled,
}

/// A raw HTTP/1.1 viewer (`GET path`) on its own thread, keeping everything it reads.
pub struct Viewer {
    raw: Arc<Mutex<Vec<u8>>>,
    done: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Viewer {
    pub fn start(addr: SocketAddr, path: &str, reading: Reading) -> Self {
        let raw = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (r, d) = (raw.clone(), done.clone());
        let path = path.to_string();
        let thread = thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .unwrap();
            let (size, pause) = match reading {
                Reading::Fast => (1 << 20, Duration::ZERO),
                Reading::Slow { size, pause } => (size, pause),
                Reading::Stalled => {
                    while !d.load(Ordering::Relaxed) {
                        thread::sleep(Duration::from_millis(20));
                    }
                    return;
                }
            };
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buf = vec![0u8; size];
            while !d.load(Ordering::Relaxed) {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => r.lock().unwrap().extend_from_slice(&buf[..n]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
                if !pause.is_zero() {
                    thread::sleep(pause);
                }
            }
            d.store(true, Ordering::Relaxed);
        });
        Viewer {
            raw,
            done,
            thread: Some(thread),
        }
    }

    /// Bytes read so far, response head included.
    pub fn raw_len(&self) -> usize {
        self.raw.lock().unwrap().len()
    }

    /// The body so far, de-chunked, and whether it ended cleanly with the last chunk; `None`
    /// before the whole response head has arrived.
    pub fn body(&self) -> Option<(Vec<u8>, bool)> {
        let raw = self.raw.lock().unwrap();
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        Some(dechunk(&raw[end + 4..]))
    }

    /// The response so far: status and headers, the de-chunked body, and whether it ended cleanly.
    #[track_caller]
    pub fn response(&self) -> (Resp, Vec<u8>, bool) {
        let r = parse_response(&self.raw.lock().unwrap());
        let (body, end) = dechunk(&r.body);
        (r, body, end)
    }

    /// Waits until the de-chunked body satisfies `ok` (at most [`WAIT`]).
    #[track_caller]
    pub fn wait_body(&self, what: &str, ok: impl Fn(&[u8]) -> bool) {
        wait_until(what, WAIT, || self.body().is_some_and(|(b, _)| ok(&b)));
    }

    /// Waits until the server has closed the connection (at most [`WAIT`]).
    #[track_caller]
    pub fn wait_closed(&self) {
        wait_until("the server closes the viewer's connection", WAIT, || {
            self.finished()
        });
    }

    /// Whether the connection is over (closed by the server, or failed).
    pub fn finished(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }

    /// Stops reading and closes the connection; returns what [`Viewer::response`] returns.
    #[track_caller]
    pub fn stop(mut self) -> (Resp, Vec<u8>, bool) {
        self.join();
        self.response()
    }

    fn join(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a response head (to its blank line) from a raw connection.
pub fn read_head(c: &mut std::net::TcpStream) -> String {
    use std::io::Read as _;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

/// GETs `path` on a connection of its own and reads its body to the end: a 200 sent in chunks
/// (checked), and its chunks as they were sent (the last chunk checked too).
pub fn streamed(addr: std::net::SocketAddr, path: &str) -> Vec<Vec<u8>> {
    use std::io::{Read as _, Write as _};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let head = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).unwrap();
    let (sent, ended) = chunks(&raw);
    assert!(ended, "the last chunk came");
    sent
}

/// The chunks of a chunked body, in order (and whether the last chunk came).
pub fn chunks(mut raw: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size = std::str::from_utf8(&raw[..eol]).unwrap();
        let n = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if n == 0 {
            return (out, true);
        }
        out.push(raw[eol + 2..eol + 2 + n].to_vec());
        raw = &raw[eol + 2 + n + 2..];
    }
}

/// The directory a live playlist or manifest names its files in, `{hex}/`: the stream
/// instance's, read from its first URI (a URI line, `URI="..."` or DASH's `media="..."`).
pub fn instance_dir(listing: &str) -> String {
    let uri = listing
        .lines()
        .find_map(|l| {
            let l = l.trim();
            if !l.starts_with('#') && !l.is_empty() && !l.starts_with('<') {
                return Some(l);
            }
            let at = ["URI=\"", "media=\""]
                .iter()
                .find_map(|a| l.find(a).map(|i| i + a.len()))?;
            l[at..].split('"').next()
        })
        .unwrap_or_else(|| panic!("no URI in {listing}"));
    let (dir, _) = uri
        .split_once('/')
        .unwrap_or_else(|| panic!("{uri} has no directory"));
    assert!(
        !dir.is_empty() && dir.bytes().all(|b| b.is_ascii_hexdigit()),
        "{uri}"
    );
    format!("{dir}/")
}

/// Stream `name`'s TS HLS playlist (`/live/{name}/index.m3u8`), answered 200.
pub fn hls_playlist(s: &TestServer, name: &str) -> String {
    let r = s.get(&format!("/live/{name}/index.m3u8"), &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    String::from_utf8(r.body).unwrap()
}
