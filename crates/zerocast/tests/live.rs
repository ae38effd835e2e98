//! Live: ffmpeg publishes (PUT and chunked POST), ffmpeg/ffprobe and raw sockets watch (.ts and
//! HLS), publishing rules, reconnects, slow and stalled viewers, bad input.

mod common;

use common::{ffmpeg, request, require, Resp, TestServer};
use server::live::LiveConfig;
use server::Config;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

const PACKET: usize = 188;

/// A 12 s 320x240 H.264 (1 s GOP) + AAC MPEG-TS, made once per test run.
fn fixture() -> PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("zerocast-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("live.ts");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "12",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-b:v",
            "600k",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "mpegts",
            out.to_str().unwrap(),
        ]);
        out
    })
    .clone()
}

fn live_server(f: impl FnOnce(&mut LiveConfig)) -> TestServer {
    let mut config = Config::default();
    f(&mut config.live);
    TestServer::start_with(config, server::Library::from_static(&[], common::now()))
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn wait(mut self, limit: Duration) -> (bool, String) {
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

/// `ffmpeg -re -i fixture -c copy -f mpegts [-method PUT] URL`.
fn ffmpeg_publish(url: &str, method: Option<&str>, extra: &[&str]) -> Proc {
    require("ffmpeg");
    let f = fixture();
    let mut c = Command::new("ffmpeg");
    c.args(["-v", "error", "-nostdin"]).args(extra);
    c.args([
        "-re",
        "-i",
        f.to_str().unwrap(),
        "-c",
        "copy",
        "-f",
        "mpegts",
    ]);
    if let Some(m) = method {
        c.args(["-method", m]);
    }
    c.arg(url).stdout(Stdio::null()).stderr(Stdio::piped());
    Proc(c.spawn().expect("ffmpeg"))
}

fn stream_doc(s: &TestServer, name: &str) -> Option<serde_json::Value> {
    let r = s.get(&format!("/api/streams/{name}"), &[]);
    (r.status == 200).then(|| r.json())
}

/// Waits until the stream's document satisfies `ok`.
fn wait_for(
    s: &TestServer,
    name: &str,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(d) = stream_doc(s, name) {
            if ok(&d) {
                return d;
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name}: {what}; now {:?}",
            stream_doc(s, name)
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Decodes a chunked body; stops at an incomplete chunk. Returns the data and whether the last
/// chunk (the clean end) was seen.
fn dechunk(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let n =
            usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return (out, true);
        }
        if raw.len() < eol + 2 + n + 2 {
            return (out, false);
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + n]);
        raw = &raw[eol + 2 + n + 2..];
    }
}

/// A raw `.ts` viewer on its own thread: `read_pause` between reads makes it slow; `None` for
/// `read_size` makes it read nothing at all (stalled).
struct RawViewer {
    raw: Arc<Mutex<Vec<u8>>>,
    done: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl RawViewer {
    fn start(addr: SocketAddr, path: &str, read_size: Option<usize>, read_pause: Duration) -> Self {
        let raw = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (r, d) = (raw.clone(), done.clone());
        let path = path.to_string();
        let thread = thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .unwrap();
            let Some(size) = read_size else {
                while !d.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(20));
                }
                return;
            };
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buf = vec![0u8; size];
            while !d.load(Ordering::Relaxed) {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        r.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
                if !read_pause.is_zero() {
                    thread::sleep(read_pause);
                }
            }
            d.store(true, Ordering::Relaxed);
        });
        RawViewer {
            raw,
            done,
            thread: Some(thread),
        }
    }

    /// The response so far: status, and the decoded TS.
    fn response(&self) -> (Resp, Vec<u8>, bool) {
        let raw = self.raw.lock().unwrap().clone();
        let r = common::parse_response(&raw);
        let (ts, end) = dechunk(&r.body);
        (r, ts, end)
    }

    fn finished(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }

    fn stop(mut self) -> (Resp, Vec<u8>, bool) {
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

/// Continuity-counter gaps per PID over whole packets (the first packet of each PID excepted).
fn cc_gaps(ts: &[u8]) -> usize {
    let mut last: std::collections::HashMap<u16, u8> = Default::default();
    let mut gaps = 0;
    for p in ts.chunks_exact(PACKET) {
        let h = media::ts::header(p).expect("every packet has the sync byte");
        if !h.has_payload || h.pid == 0x1fff {
            continue;
        }
        let disc = p[3] & 0x20 != 0 && p[4] > 0 && p[5] & 0x80 != 0;
        if let Some(prev) = last.insert(h.pid, h.cc) {
            if !disc && h.cc != (prev + 1) & 0x0f {
                gaps += 1;
            }
        }
    }
    gaps
}

/// The first three things a viewer gets must be PAT, PMT, then a keyframe's first packet.
fn assert_starts_with_psi_and_keyframe(ts: &[u8]) {
    assert!(ts.len() >= 3 * PACKET, "only {} bytes", ts.len());
    let mut cuts = Vec::new();
    let whole = ts.len() / PACKET * PACKET;
    media::ts::Splitter::default()
        .feed(&ts[..whole], &mut cuts)
        .unwrap();
    assert!(
        matches!(
            cuts[..3],
            [
                media::ts::Cut::Pat(0),
                media::ts::Cut::Pmt(188),
                media::ts::Cut::Keyframe { at: 376, .. }
            ]
        ),
        "first cuts: {:?}",
        &cuts[..cuts.len().min(4)]
    );
}

#[test]
fn ffmpeg_publishes_over_put_and_viewers_decode_without_errors() {
    let s = live_server(|c| c.global_key = Some("k1".into()));
    let publisher = ffmpeg_publish(&s.url("/live/show?key=k1"), Some("PUT"), &[]);
    wait_for(&s, "show", "a keyframe", |d| {
        d["ring_units"].as_u64() > Some(5) && d["video_codec"] == "h264"
    });
    // ffmpeg decodes 4 s with no error at all; ffprobe sees both codecs.
    common::assert_plays_h264_aac(&s.url("/live/show.ts"), "4");
    // A late joiner's first bytes: PAT, PMT, then a keyframe.
    let v = RawViewer::start(s.addr, "/live/show.ts", Some(64 << 10), Duration::ZERO);
    thread::sleep(Duration::from_millis(1500));
    let (resp, ts, _) = v.stop();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("video/mp2t"));
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_starts_with_psi_and_keyframe(&ts);
    assert_eq!(cc_gaps(&ts), 0, "a continuous stream");
    let d = stream_doc(&s, "show").unwrap();
    assert_eq!(d["state"], "live");
    assert!(d["publisher"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(d["input_bitrate"].as_u64().unwrap() > 100_000, "{d}");
    assert!(d["viewers"]["ts_total"].as_u64().unwrap() >= 3);
    drop(publisher);
}

#[test]
fn chunked_post_feeds_hls_that_slides_and_ends() {
    let s = live_server(|c| {
        c.hls.min_segment = Duration::from_secs(1);
        c.hls.window = 3;
    });
    let publisher = ffmpeg_publish(&s.url("/live/h"), None, &[]);
    wait_for(&s, "h", "a publisher", |d| d["state"] == "live");
    // Asked right away: the playlist request waits for the first segment.
    let p1 = s.get("/live/h/index.m3u8", &[]);
    assert_eq!(p1.status, 200, "{}", String::from_utf8_lossy(&p1.body));
    assert_eq!(
        p1.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(p1.header("cache-control"), Some("no-cache"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hls.ts");
    ffmpeg(&[
        "-i",
        &s.url("/live/h/index.m3u8"),
        "-t",
        "6",
        "-c",
        "copy",
        out.to_str().unwrap(),
    ]);
    // The copy is continuous: video timestamps rise by one frame at a time.
    let packets = common::ffprobe_video_packets(out.to_str().unwrap());
    assert!(
        packets.len() >= 140,
        "{} video packets in 6 s",
        packets.len()
    );
    let mut pts: Vec<f64> = packets.iter().map(|p| p.0).collect();
    pts.sort_by(f64::total_cmp);
    assert!(
        pts.windows(2).all(|w| w[1] - w[0] < 0.05),
        "no gap in the copy"
    );
    // The playlist slides, and segments are immutable entities.
    let seq = |p: &Resp| -> u64 {
        let t = String::from_utf8_lossy(&p.body).into_owned();
        t.lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
            .unwrap()
            .parse()
            .unwrap()
    };
    let p2 = s.get("/live/h/index.m3u8", &[]);
    assert!(seq(&p2) > seq(&p1), "the window moved");
    let body = String::from_utf8_lossy(&p2.body).into_owned();
    let seg = body
        .lines()
        .rfind(|l| l.ends_with(".ts"))
        .unwrap()
        .to_string();
    let r = s.get(&format!("/live/h/{seg}"), &[]);
    assert_eq!(r.status, 200);
    assert!(r.header("cache-control").unwrap().contains("immutable"));
    let etag = r.header("etag").unwrap().to_string();
    assert_eq!(
        s.get(&format!("/live/h/{seg}"), &[("If-None-Match", &etag)])
            .status,
        304
    );
    assert_starts_with_psi_and_keyframe(&r.body);
    assert_eq!(s.get("/live/h/0.ts", &[]).status, 404, "slid out");
    assert!(!body.contains("#EXT-X-ENDLIST"));
    let (ok, err) = publisher.wait(Duration::from_secs(30));
    assert!(ok, "ffmpeg publish: {err}");
    wait_for(&s, "h", "the end", |d| d["state"] == "ended");
    let end = s.get("/live/h/index.m3u8", &[]);
    assert!(String::from_utf8_lossy(&end.body).ends_with("#EXT-X-ENDLIST\n"));
}

/// Sends `data` as a chunked POST over a raw socket, in pieces; returns the socket (not closed).
fn raw_publish(addr: SocketAddr, path: &str, data: &[u8], pace: Duration) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes(),
    )
    .unwrap();
    for c in data.chunks(PACKET * 40) {
        s.write_all(format!("{:x}\r\n", c.len()).as_bytes())
            .unwrap();
        s.write_all(c).unwrap();
        s.write_all(b"\r\n").unwrap();
        thread::sleep(pace);
    }
    s
}

#[test]
fn publishing_rules_keys_and_one_publisher() {
    let s = live_server(|c| {
        c.keys.insert("show".into(), "s3cret".into());
    });
    let status = |path: &str, headers: &[(&str, &str)]| request(s.addr, "PUT", path, headers);
    let r = status("/live/show", &[("Content-Length", "0")]);
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert_eq!(
        status("/live/show?key=nope", &[("Content-Length", "0")]).status,
        403
    );
    assert_eq!(
        status("/live/other?key=s3cret", &[("Content-Length", "0")]).status,
        403,
        "a key is per stream"
    );
    assert_eq!(
        status("/live/bad%2Fname?key=s3cret", &[("Content-Length", "0")]).status,
        400
    );
    assert!(stream_doc(&s, "show").is_none(), "refusals touch nothing");
    let data = std::fs::read(fixture()).unwrap();
    let first = raw_publish(
        s.addr,
        "/live/show?key=s3cret",
        &data[..PACKET * 2000],
        Duration::ZERO,
    );
    let before = wait_for(&s, "show", "data", |d| {
        d["bytes_in"].as_u64() == Some(PACKET as u64 * 2000)
    });
    // A second publisher, with the right key (Bearer), is refused while the first is live.
    let r = status(
        "/live/show",
        &[
            ("Authorization", "Bearer s3cret"),
            ("Content-Length", "376"),
        ],
    );
    assert_eq!(r.status, 409);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("already has a publisher"));
    let after = stream_doc(&s, "show").unwrap();
    assert_eq!(after["bytes_in"], before["bytes_in"]);
    assert_eq!(after["sessions"], 1);
    assert_eq!(after["publisher"], before["publisher"]);
    drop(first);
}

#[test]
fn a_publisher_that_comes_back_within_the_grace_period_continues_the_stream() {
    let s = live_server(|c| c.grace = Duration::from_secs(2));
    let data = std::fs::read(fixture()).unwrap();
    // The first session sends about half the file, up to a keyframe (where ffmpeg's muxer has
    // finished every PES: what is cut mid-frame is lost and would be a decode error), then its
    // connection drops (no last chunk).
    let mut cuts = Vec::new();
    media::ts::Splitter::default()
        .feed(&data[..data.len() / PACKET * PACKET], &mut cuts)
        .unwrap();
    let half = cuts
        .iter()
        .filter_map(|c| match c {
            media::ts::Cut::Keyframe { at, .. } if *at >= data.len() / 2 => Some(*at),
            _ => None,
        })
        .next()
        .unwrap();
    let quarter = half / 4 / PACKET * PACKET;
    let first = raw_publish(s.addr, "/live/r", &data[..quarter], Duration::ZERO);
    wait_for(&s, "r", "keyframes", |d| d["ring_units"].as_u64() > Some(3));
    let viewer = RawViewer::start(s.addr, "/live/r.ts", Some(1 << 16), Duration::ZERO);
    thread::sleep(Duration::from_millis(300));
    let mut first = first;
    for c in data[quarter..half].chunks(PACKET * 40) {
        first
            .write_all(format!("{:x}\r\n", c.len()).as_bytes())
            .unwrap();
        first.write_all(c).unwrap();
        first.write_all(b"\r\n").unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    drop(first);
    wait_for(&s, "r", "reconnecting", |d| d["state"] == "reconnecting");
    // It comes back and sends the whole file again from its start.
    let second = raw_publish(s.addr, "/live/r", &data, Duration::from_millis(2));
    let d = wait_for(&s, "r", "second session", |d| {
        d["sessions"] == 2 && d["state"] == "live"
    });
    assert_eq!(d["viewers"]["ts"], 1, "the viewer stayed");
    thread::sleep(Duration::from_millis(500));
    let mut second = second;
    second.write_all(b"0\r\n\r\n").unwrap();
    wait_for(&s, "r", "ended", |d| d["state"] == "ended");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !viewer.finished() {
        assert!(Instant::now() < deadline, "the viewer got a clean end");
        thread::sleep(Duration::from_millis(20));
    }
    let (_, ts, clean) = viewer.stop();
    assert!(clean, "the chunked body ended with its last chunk");
    assert!(
        ts.len() > half,
        "the viewer saw both sessions ({} bytes)",
        ts.len()
    );
    assert_eq!(cc_gaps(&ts), 0, "counters continue across the reconnect");
    // Video timestamps keep rising across the reconnect.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.ts");
    std::fs::write(&f, &ts).unwrap();
    let packets = common::ffprobe_video_packets(f.to_str().unwrap());
    let dts_like: Vec<f64> = packets.iter().map(|p| p.0).collect();
    let max_before_drop = dts_like
        .iter()
        .take(dts_like.len() / 3)
        .fold(0f64, |a, b| a.max(*b));
    assert!(dts_like
        .iter()
        .skip(dts_like.len() * 2 / 3)
        .all(|t| *t > max_before_drop));
    // Decodes across the reconnect with no error at all.
    common::assert_plays_h264_aac(f.to_str().unwrap(), "60");
    let hls = String::from_utf8_lossy(&s.get("/live/r/index.m3u8", &[]).body).into_owned();
    assert!(
        hls.contains("#EXT-X-DISCONTINUITY\n") || hls.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1"),
        "{hls}"
    );
}

#[test]
fn after_the_grace_period_the_stream_ends_and_a_new_one_starts() {
    let s = live_server(|c| c.grace = Duration::from_millis(500));
    let data = std::fs::read(fixture()).unwrap();
    let first = raw_publish(s.addr, "/live/g", &data[..PACKET * 3000], Duration::ZERO);
    wait_for(&s, "g", "data", |d| d["ring_units"].as_u64() > Some(3));
    let viewer = RawViewer::start(s.addr, "/live/g.ts", Some(1 << 16), Duration::ZERO);
    wait_for(&s, "g", "viewer", |d| d["viewers"]["ts"] == 1);
    drop(first);
    let d = wait_for(&s, "g", "ended", |d| d["state"] == "ended");
    assert!(
        d["end_reason"]
            .as_str()
            .unwrap()
            .contains("did not come back"),
        "{d}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !viewer.finished() {
        assert!(Instant::now() < deadline, "viewer not ended");
        thread::sleep(Duration::from_millis(20));
    }
    assert!(viewer.stop().2, "a clean end for the viewer");
    assert_eq!(
        s.get("/live/g.ts", &[]).status,
        404,
        "an ended stream has no new viewers"
    );
    let again = raw_publish(s.addr, "/live/g", &data[..PACKET * 100], Duration::ZERO);
    let d = wait_for(&s, "g", "a new stream", |d| d["state"] == "live");
    assert_eq!(d["sessions"], 1);
    drop(again);
}

#[test]
fn slow_and_stalled_viewers_skip_or_go_and_never_hold_back_the_others() {
    let s = live_server(|c| {
        c.ring.max_bytes = 8 << 20;
        c.ring.max_age = Duration::from_secs(4);
        c.viewer.max_skips = 2;
        c.stall_timeout = Duration::from_secs(2);
        c.max_ingest_bitrate = 40_000_000;
    });
    // ffmpeg pushes as fast as it can (no -re): several times the stream's real rate.
    let f = fixture();
    let publisher = Proc(
        Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-nostdin",
                "-stream_loop",
                "150",
                "-i",
                f.to_str().unwrap(),
            ])
            .args(["-c", "copy", "-f", "mpegts", &s.url("/live/fast")])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for(&s, "fast", "start", |d| d["ring_units"].as_u64() > Some(3));
    let fast: Vec<RawViewer> = (0..3)
        .map(|_| RawViewer::start(s.addr, "/live/fast.ts", Some(1 << 20), Duration::ZERO))
        .collect();
    let slow = RawViewer::start(
        s.addr,
        "/live/fast.ts",
        Some(4096),
        Duration::from_millis(20),
    );
    let stalled = RawViewer::start(s.addr, "/live/fast.ts", None, Duration::ZERO);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut max_ring = 0;
    loop {
        let d = stream_doc(&s, "fast").unwrap();
        max_ring = max_ring.max(d["ring_bytes"].as_u64().unwrap());
        if d["slow_disconnects"].as_u64() >= Some(1) && d["stalled_disconnects"].as_u64() >= Some(1)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slow and stalled viewers not dropped: {d}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let d = stream_doc(&s, "fast").unwrap();
    assert!(
        d["skips"].as_u64().unwrap() >= 2,
        "the slow viewer skipped before it was dropped: {d}"
    );
    // Memory: the ring never held more than its limit.
    assert!(max_ring <= 8 << 20, "ring held {max_ring} bytes");
    {
        let stream = s.live.get("fast").unwrap();
        let inner = stream.read();
        assert!(inner.ring.bytes() <= 8 << 20);
        assert!(inner.hls.bytes() <= 64 << 20);
    }
    // The ingest was held to its rate limit (40 Mbit/s, with a short burst).
    assert!(d["input_bitrate"].as_u64().unwrap() < 48_000_000, "{d}");
    // The fast viewers: still connected, continuous, never skipped.
    assert_eq!(d["viewers"]["ts"], 3, "only the fast viewers are left: {d}");
    for v in fast {
        assert!(!v.finished(), "fast viewers stay connected");
        let (_, ts, _) = v.stop();
        assert!(ts.len() > 4 << 20, "a fast viewer got {} bytes", ts.len());
        assert_starts_with_psi_and_keyframe(&ts);
        assert_eq!(cc_gaps(&ts), 0, "a fast viewer saw a gap");
    }
    let (_, slow_ts, _) = slow.stop();
    assert_starts_with_psi_and_keyframe(&slow_ts);
    let mut stalled = stalled;
    stalled.join();
    drop(publisher);
}

#[test]
fn bad_input_ends_the_session_and_the_server_carries_on() {
    let s = live_server(|c| c.ring.max_bytes = 256 << 10);
    // Random bytes: 400, nothing published.
    let mut rng = fastrand::Rng::with_seed(3);
    let junk: Vec<u8> = (0..PACKET * 10).map(|_| rng.u8(..)).collect();
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(
        format!(
            "PUT /live/junk HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            junk.len()
        )
        .as_bytes(),
    )
    .unwrap();
    c.write_all(&junk).unwrap();
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).unwrap();
    let r = common::parse_response(&raw);
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"].as_str().unwrap().contains("sync"),
        "{}",
        r.json()
    );
    let d = stream_doc(&s, "junk").unwrap();
    assert_eq!(d["state"], "ended");
    assert_eq!(d["ring_units"], 0);
    // A stream cut mid-packet: the whole packets are published, the partial one dropped.
    let data = std::fs::read(fixture()).unwrap();
    let cut = &data[..PACKET * 500 + 100];
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(
        format!(
            "PUT /live/cut HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            cut.len()
        )
        .as_bytes(),
    )
    .unwrap();
    c.write_all(cut).unwrap();
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).unwrap();
    assert_eq!(common::parse_response(&raw).status, 200);
    let d = stream_doc(&s, "cut").unwrap();
    assert_eq!(d["bytes_in"].as_u64().unwrap(), cut.len() as u64);
    // Malformed chunked framing: 400.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(
        b"POST /live/chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    )
    .unwrap();
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).unwrap();
    assert_eq!(common::parse_response(&raw).status, 400);
    // No keyframe for a long time (audio only): viewers wait, the ring stays bounded.
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("audio.ts");
    ffmpeg(&[
        "-i",
        fixture().to_str().unwrap(),
        "-vn",
        "-c",
        "copy",
        "-f",
        "mpegts",
        audio.to_str().unwrap(),
    ]);
    let audio = std::fs::read(&audio).unwrap();
    let mut big = Vec::new();
    for _ in 0..4 {
        big.extend_from_slice(&audio);
    }
    let pubr = raw_publish(s.addr, "/live/nokey", &big, Duration::ZERO);
    let d = wait_for(&s, "nokey", "all data", |d| {
        d["bytes_in"].as_u64() == Some(big.len() as u64)
    });
    assert!(
        big.len() > 256 << 10 && d["ring_bytes"].as_u64().unwrap() <= 256 << 10,
        "{d}"
    );
    let v = RawViewer::start(s.addr, "/live/nokey.ts", Some(4096), Duration::ZERO);
    thread::sleep(Duration::from_millis(500));
    let (resp, ts, _) = v.stop();
    assert_eq!(resp.status, 200);
    assert!(ts.is_empty(), "no keyframe, nothing to start a viewer at");
    drop(pubr);
    // Unknown streams and segments.
    assert_eq!(s.get("/live/nope.ts", &[]).status, 404);
    assert_eq!(s.get("/live/nope/index.m3u8", &[]).status, 404);
    assert_eq!(s.get("/live/cut/99999.ts", &[]).status, 404);
    assert_eq!(s.get("/live/cut/x.ts", &[]).status, 404);
    assert_eq!(s.get("/healthz", &[]).status, 200, "the server carries on");
}

#[test]
fn hevc_and_opus_pass_through_with_keyframes_found() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("hevc.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=sample_rate=48000",
        "-t",
        "4",
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "keyint=25:min-keyint=25:log-level=error",
        "-c:a",
        "libopus",
        "-f",
        "mpegts",
        f.to_str().unwrap(),
    ]);
    let s = live_server(|_| {});
    let data = std::fs::read(&f).unwrap();
    let p = raw_publish(
        s.addr,
        "/live/hevc",
        &data[..data.len() / 2 / PACKET * PACKET],
        Duration::ZERO,
    );
    let d = wait_for(&s, "hevc", "codecs", |d| {
        d["video_codec"] == "hevc" && d["ring_units"].as_u64() > Some(1)
    });
    assert_eq!(d["audio_codecs"][0], "opus");
    let v = RawViewer::start(s.addr, "/live/hevc.ts", Some(1 << 16), Duration::ZERO);
    thread::sleep(Duration::from_millis(500));
    let (_, ts, _) = v.stop();
    assert_starts_with_psi_and_keyframe(&ts);
    drop(p);
}

#[test]
fn the_cli_publishes_a_file_in_real_time_and_watches_it() {
    let s = live_server(|c| c.global_key = Some("cli".into()));
    let bin = env!("CARGO_BIN_EXE_zerocast");
    let f = fixture();
    let publisher = Proc(
        Command::new(bin)
            .args([
                "publish",
                f.to_str().unwrap(),
                &s.url("/live/cli"),
                "--key",
                "cli",
                "--loop",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for(&s, "cli", "live", |d| d["ring_units"].as_u64() > Some(3));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.ts");
    let w = Command::new(bin)
        .args([
            "watch",
            &s.url("/live/cli.ts"),
            "-o",
            out.to_str().unwrap(),
            "--duration",
            "3",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&w.stdout);
    assert!(
        w.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&w.stderr)
    );
    assert!(text.matches("keyframe\n").count() >= 2, "{text}");
    assert!(text.contains("Mbit/s"), "{text}");
    let saved = std::fs::read(&out).unwrap();
    assert_starts_with_psi_and_keyframe(&saved);
    // Real-time pacing: about 3 s of a 660 kbit/s stream, not the whole file at once.
    let d = stream_doc(&s, "cli").unwrap();
    let rate = d["input_bitrate"].as_u64().unwrap();
    assert!(
        (300_000..2_000_000).contains(&rate),
        "publish rate {rate} bit/s"
    );
    // An MP4 is remuxed to MPEG-TS and published the same way.
    let mp4 = common::demo_dir().join("faststart.mp4");
    let mp4_publisher = Proc(
        Command::new(bin)
            .args([
                "publish",
                mp4.to_str().unwrap(),
                &s.url("/live/mp4"),
                "--key",
                "cli",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let d = wait_for(&s, "mp4", "an MP4 publisher", |d| {
        d["ring_units"].as_u64() > Some(3) && d["video_codec"] == "h264"
    });
    assert_eq!(d["audio_codecs"][0], "aac");
    let v = RawViewer::start(s.addr, "/live/mp4.ts", Some(1 << 16), Duration::ZERO);
    thread::sleep(Duration::from_millis(500));
    let (_, ts, _) = v.stop();
    assert_starts_with_psi_and_keyframe(&ts);
    assert_eq!(cc_gaps(&ts), 0);
    drop(mp4_publisher);
    // Wrong key: a clear error and a failing exit status.
    let bad = Command::new(bin)
        .args([
            "publish",
            f.to_str().unwrap(),
            &s.url("/live/x"),
            "--key",
            "no",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    drop(publisher);
}

#[test]
fn a_ts_source_is_also_watchable_as_http_flv_and_over_rtmp() {
    let s = live_server(|_| {});
    let publisher = ffmpeg_publish(&s.url("/live/both"), None, &[]);
    wait_for(&s, "both", "live", |d| d["ring_units"].as_u64() > Some(5));
    let rtmp_url = format!("rtmp://{}/live/both", s.rtmp);
    let checks: Vec<_> = [s.url("/live/both.flv"), rtmp_url]
        .into_iter()
        .map(|url| thread::spawn(move || common::assert_plays_h264_aac(&url, "3")))
        .collect();
    for c in checks {
        c.join().expect("an output check failed");
    }
    drop(publisher);
}
