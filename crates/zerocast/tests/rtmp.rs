//! RTMP ingest: ffmpeg publishes with `-f flv rtmp://...`; the stream is watchable as .ts and HLS,
//! decodes without errors, and carries the source's frames; keys, one publisher per stream, and
//! connections that misbehave.

mod common;

use common::{ffmpeg, require, TestServer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// A 6 s 320x240 H.264 (1 s GOP, with B-frames) + AAC MP4.
fn fixture() -> PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| make_fixture("src.mp4", "6")).clone()
}

/// The same, 40 s long.
fn long_fixture() -> PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| make_fixture("long.mp4", "40")).clone()
}

fn make_fixture(name: &str, secs: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zerocast-rtmp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(name);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        secs,
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        "25",
        "-bf",
        "2",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        out.to_str().unwrap(),
    ]);
    out
}

fn server(f: impl FnOnce(&mut server::live::LiveConfig)) -> TestServer {
    let mut c = server::Config::default();
    c.live.ring.max_age = Duration::from_secs(120);
    f(&mut c.live);
    TestServer::start_with(c, server::Library::from_static(&[], common::now()))
}

fn publish(s: &TestServer, path: &str, realtime: bool) -> std::process::Child {
    publish_with(s, path, &fixture(), if realtime { &["-re"] } else { &[] })
}

fn publish_with(
    s: &TestServer,
    path: &str,
    input: &std::path::Path,
    input_options: &[&str],
) -> std::process::Child {
    require("ffmpeg");
    let mut c = Command::new("ffmpeg");
    c.args(["-v", "error", "-nostdin"]).args(input_options);
    c.args(["-i", input.to_str().unwrap(), "-c", "copy", "-f", "flv"])
        .arg(format!("rtmp://{}{path}", s.rtmp))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn doc(s: &TestServer, name: &str) -> Option<serde_json::Value> {
    let r = s.get(&format!("/api/streams/{name}"), &[]);
    (r.status == 200).then(|| r.json())
}

fn wait(s: &TestServer, name: &str, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(d) = doc(s, name).filter(|d| ok(d)) {
            return d;
        }
        assert!(Instant::now() < deadline, "{name}: {:?}", doc(s, name));
        thread::sleep(Duration::from_millis(50));
    }
}

/// Video packets (pts, keyframe) of a file, sorted by pts, relative to the first.
fn video(path: &str) -> Vec<(f64, bool)> {
    let p = common::ffprobe_video_packets(path);
    let mut v: Vec<(f64, bool)> = p.iter().map(|x| (x.0, x.2)).collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let first = v[0].0;
    v.iter().map(|(t, k)| (t - first, *k)).collect()
}

#[test]
fn ffmpeg_publishes_over_rtmp_and_it_plays_as_ts_and_hls() {
    let s = server(|c| c.global_key = Some("rk".into()));
    let mut p = publish(&s, "/live/rt?key=rk", true);
    // A second, endless stream for watching every output while it is live.
    let mut all = publish_with(&s, "/live/all?key=rk", &long_fixture(), &["-re"]);
    wait(&s, "all", |d| d["hls_segments"].as_u64() >= Some(1));
    let d = wait(&s, "rt", |d| d["hls_segments"].as_u64() >= Some(1));
    assert_eq!(d["video_codec"], "h264");
    assert_eq!(d["audio_codecs"][0], "aac");
    // Every output at once: .ts, HLS, HTTP-FLV and RTMP playback; each decodes without an error
    // and shows both codecs.
    let rtmp_url = format!("rtmp://{}/live/all", s.rtmp);
    let checks: Vec<_> = [
        s.url("/live/all.ts"),
        s.url("/live/all/index.m3u8"),
        s.url("/live/all.flv"),
        rtmp_url,
    ]
    .into_iter()
    .map(|url| thread::spawn(move || common::assert_plays_h264_aac(&url, "2")))
    .collect();
    for c in checks {
        c.join().expect("an output check failed");
    }
    // A late HTTP-FLV viewer gets the FLV header, the sequence headers, then a keyframe.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(b"GET /live/all.flv HTTP/1.0\r\n\r\n").unwrap();
    let mut raw = vec![0u8; 64 << 10];
    let mut have = 0;
    while have < 8192 {
        let n = c.read(&mut raw[have..]).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&raw[..have]));
        have += n;
    }
    let r = common::parse_response(&raw[..have]);
    assert_eq!(r.header("content-type"), Some("video/x-flv"));
    let flv = &r.body;
    assert_eq!(&flv[..13], b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
    let mut at = 13;
    let mut tags = Vec::new();
    while tags.len() < 3 {
        let size = u32::from_be_bytes([0, flv[at + 1], flv[at + 2], flv[at + 3]]) as usize;
        tags.push((flv[at], flv[at + 11], flv[at + 12]));
        at += 11 + size + 4;
    }
    assert_eq!(
        tags,
        [(9, 0x17, 0), (8, 0xaf, 0), (9, 0x17, 1)],
        "AVC header, AAC header, keyframe"
    );
    drop(c);
    let d = doc(&s, "all").unwrap();
    assert!(d["viewers"]["rtmp"].is_u64() && d["viewers"]["flv"].is_u64());
    // An HTTP-ingest stream (or none) has no FLV output: 404.
    assert_eq!(s.get("/live/none.flv", &[]).status, 404);
    all.kill().unwrap();
    all.wait().unwrap();
    let st = p.wait().unwrap();
    let mut err = String::new();
    p.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(st.success(), "ffmpeg: {err}");
    let d = wait(&s, "rt", |d| d["state"] == "ended");
    assert_eq!(d["end_reason"], "publisher finished");
    // Everything the stream carried (the ring keeps it all here): the source's frames, same
    // times, same keyframes, continuous counters, no decode error.
    let stream = s.live.get("rt").unwrap();
    let ts: Vec<u8> = stream
        .read()
        .ring
        .units()
        .flat_map(|u| u.data.iter().copied())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rt.ts");
    std::fs::write(&f, &ts).unwrap();
    let (a, b) = (
        video(fixture().to_str().unwrap()),
        video(f.to_str().unwrap()),
    );
    assert_eq!(a.len(), b.len(), "frame count");
    for (x, y) in a.iter().zip(&b) {
        assert!((x.0 - y.0).abs() < 0.002, "pts {x:?} vs {y:?}");
        assert_eq!(x.1, y.1, "keyframe flag at {x:?}");
    }
    let dec = Command::new("ffmpeg")
        .args(["-v", "error", "-i", f.to_str().unwrap(), "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        dec.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&dec.stderr)
    );
    let mut last = std::collections::HashMap::new();
    for pkt in ts.chunks_exact(188) {
        let h = media::ts::header(pkt).unwrap();
        if let Some(prev) = last.insert(h.pid, h.cc) {
            assert_eq!(h.cc, (prev + 1) & 15, "continuity on pid {}", h.pid);
        }
    }
}

#[test]
fn rtmp_keys_one_publisher_and_misbehaving_connections() {
    let s = server(|c| c.keys.insert("k".into(), "good".into()).map_or((), |_| ()));
    // Wrong key and no key: ffmpeg fails, nothing is created.
    for path in ["/live/k?key=bad", "/live/k"] {
        let out = publish(&s, path, false).wait_with_output().unwrap();
        assert!(!out.status.success(), "{path} was accepted");
    }
    assert!(doc(&s, "k").is_none());
    // Connections that do nothing, and one that sends garbage, do not stop a real publisher.
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(s.rtmp).unwrap())
        .collect();
    let mut junk = TcpStream::connect(s.rtmp).unwrap();
    junk.write_all(&[3u8; 1537]).unwrap();
    junk.write_all(b"this is not an RTMP chunk stream at all, not even close..........")
        .unwrap();
    let mut first = publish(&s, "/live/k?key=good", true);
    wait(&s, "k", |d| {
        d["state"] == "live" && d["ring_units"].as_u64() > Some(2)
    });
    // A second publisher on the same stream is refused while the first is live.
    let second = publish(&s, "/live/k?key=good", false)
        .wait_with_output()
        .unwrap();
    assert!(!second.status.success());
    assert_eq!(doc(&s, "k").unwrap()["sessions"], 1);
    // The silent connections are closed after the setup timeout (10 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    for mut c in idle {
        c.set_read_timeout(Some(
            deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(100),
        ))
        .unwrap();
        let mut b = [0u8; 4096];
        loop {
            match c.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        assert!(
            Instant::now() < deadline,
            "an idle RTMP connection was not closed"
        );
    }
    assert_eq!(s.get("/healthz", &[]).status, 200);
    first.kill().unwrap();
    first.wait().unwrap();
}

/// The reads of a recorded ffmpeg publish (see crates/server/tests/fixtures and
/// scripts/record-rtmp-publish.py).
fn recorded_publish() -> Vec<Vec<u8>> {
    let path = common::repo().join("crates/server/tests/fixtures/ffmpeg-publish.rtmp");
    let rec = std::fs::read(path).unwrap();
    let mut rest = &rec[..];
    let mut reads = Vec::new();
    while rest.len() >= 4 {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        reads.push(rest[4..4 + n].to_vec());
        rest = &rest[4 + n..];
    }
    reads
}

/// The recorded reads, up to the middle of the last one (inside a media chunk).
fn cut_in_last_chunk(reads: &[Vec<u8>]) -> Vec<u8> {
    let last = reads.len() - 1;
    let mut all: Vec<u8> = reads[..last].concat();
    all.extend_from_slice(&reads[last][..reads[last].len() / 2]);
    all
}

#[test]
fn a_publisher_that_stops_mid_chunk_is_cleaned_up_and_the_stream_ends_after_the_grace() {
    let s = server(|c| c.grace = Duration::from_millis(500));
    let reads = recorded_publish();
    // Everything up to the middle of the last read (inside a media chunk), all at once: the
    // client does not wait for any answer (commands pipelined after `connect`).
    let all = cut_in_last_chunk(&reads);
    let mut c = TcpStream::connect(s.rtmp).unwrap();
    c.write_all(&all).unwrap();
    let d = wait(&s, "fixture", |d| {
        d["state"] == "live" && d["ring_units"].as_u64() > Some(0)
    });
    assert_eq!(d["video_codec"], "h264");
    drop(c);
    let d = wait(&s, "fixture", |d| d["state"] == "ended");
    assert!(
        d["end_reason"]
            .as_str()
            .unwrap()
            .contains("did not come back"),
        "{d}"
    );
    // The server carries on: a new publisher of the same name gets a new stream.
    let mut p = publish(&s, "/live/fixture", false);
    assert!(p.wait().unwrap().success());
    assert_eq!(s.get("/healthz", &[]).status, 200);
}

/// Video tag timestamps of an FLV byte stream (after its 13-byte header), as far as it is whole.
fn flv_video_times(flv: &[u8]) -> Vec<u32> {
    let mut at = 13;
    let mut out = Vec::new();
    while at + 11 <= flv.len() {
        let size = u32::from_be_bytes([0, flv[at + 1], flv[at + 2], flv[at + 3]]) as usize;
        if at + 11 + size + 4 > flv.len() {
            break;
        }
        let ts = u32::from_be_bytes([flv[at + 7], flv[at + 4], flv[at + 5], flv[at + 6]]);
        if flv[at] == 9 && flv[at + 12] == 1 {
            out.push(ts);
        }
        at += 11 + size + 4;
    }
    out
}

#[test]
fn an_rtmp_publisher_that_comes_back_within_the_grace_continues_every_output() {
    let s = server(|c| c.grace = Duration::from_secs(5));
    let reads = recorded_publish();
    // The first session: the recorded publish, cut in its last read (the connection drops).
    let all = cut_in_last_chunk(&reads);
    let mut c = TcpStream::connect(s.rtmp).unwrap();
    c.write_all(&all).unwrap();
    wait(&s, "fixture", |d| d["ring_units"].as_u64() > Some(0));
    // An HTTP-FLV viewer joins.
    let mut v = TcpStream::connect(s.addr).unwrap();
    v.write_all(b"GET /live/fixture.flv HTTP/1.0\r\n\r\n")
        .unwrap();
    v.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        let _ = v.read_to_end(&mut got);
        got
    });
    wait(&s, "fixture", |d| d["viewers"]["flv"] == 1);
    drop(c);
    wait(&s, "fixture", |d| d["state"] == "reconnecting");
    // ffmpeg comes back on the same stream and publishes to the end.
    let mut p = publish(&s, "/live/fixture", true);
    let d = wait(&s, "fixture", |d| {
        d["sessions"] == 2 && d["state"] == "live"
    });
    assert_eq!(d["viewers"]["flv"], 1, "the viewer stayed");
    assert!(p.wait().unwrap().success());
    wait(&s, "fixture", |d| d["state"] == "ended");
    let raw = reader.join().unwrap();
    let r = common::parse_response(&raw);
    let times = flv_video_times(&r.body);
    assert!(times.len() > 100, "{} video frames seen", times.len());
    assert!(
        times.windows(2).all(|w| w[1] >= w[0]),
        "FLV timestamps keep rising across the reconnect: {times:?}"
    );
    // The TS output continues too: counters and timestamps across both sessions.
    let stream = s.live.get("fixture").unwrap();
    let ts: Vec<u8> = stream
        .read()
        .ring
        .units()
        .flat_map(|u| u.data.iter().copied())
        .collect();
    let mut last_cc = std::collections::HashMap::new();
    for pkt in ts.chunks_exact(188) {
        let h = media::ts::header(pkt).unwrap();
        if let Some(prev) = last_cc.insert(h.pid, h.cc) {
            assert_eq!(h.cc, (prev + 1) & 15, "continuity on pid {}", h.pid);
        }
    }
    let hls = String::from_utf8_lossy(&s.get("/live/fixture/index.m3u8", &[]).body).into_owned();
    assert!(hls.contains("#EXT-X-DISCONTINUITY"), "{hls}");
}
