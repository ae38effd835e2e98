//! Live, continued: slow, stalled and fast viewers of a fast publisher, bad input, other codecs,
//! and a TS source's other outputs (the first half is live.rs; the CLI publisher is
//! cli_publish.rs).

mod common;

use common::fixtures::{audio_only_ts, hevc_opus_ts, live_ts};
use common::live::{
    ffmpeg_publish, instance_dir, raw_publish, send_raw, server, stream_doc, ts_publisher,
    wait_for, wait_for_within, Proc, Reading, Viewer, WAIT,
};
use common::ts::{assert_continuous, assert_starts_with_psi_and_keyframe, keyframes, PACKET};
use common::TestServer;
use serde_json::json;
use server::live::LiveConfig;
use std::time::{Duration, Instant};

/// One stream, `show`, that ffmpeg publishes over PUT in real time, for the tests that only watch
fn fixture_bytes() -> Vec<u8> {
    std::fs::read(live_ts()).unwrap()
}

/// The error document the server answers with.
fn error_doc(status: u16, error: &str) -> serde_json::Value {
    json!({ "status": status, "error": error })
}

// --- A publisher that sends a packet at a time --------------------------------------------------

/// A publisher that sends one TS packet per write, half a millisecond apart (two thousand reads
/// a second): its `.ts` viewer is woken about every 5 ms, not once per read (each wake a write
/// to every viewer), and gets every byte.
#[test]
fn a_publisher_sending_a_packet_at_a_time_wakes_its_viewers_in_batches() {
    use std::io::Write;
    let s = server(|_| {});
    let data = fixture_bytes();
    let k = keyframes(&data);
    let mut p = common::live::ChunkedPost::start(s.addr, "/live/drip");
    p.0.set_nodelay(true).unwrap();
    p.send(&data[..k[1]], Duration::ZERO);
    wait_for(&s, "drip", "its first keyframe", |d| {
        d["ring_units"].as_u64() >= Some(1)
    });
    let viewer = Viewer::start(s.addr, "/live/drip.ts", Reading::Fast);
    wait_for(&s, "drip", "the viewer", |d| {
        d["viewers"]["ts"].as_u64() >= Some(1)
    });
    let drip = &data[k[1]..k[1] + 1600 * PACKET];
    let started = Instant::now();
    for packet in drip.chunks(PACKET) {
        let mut chunk = format!("{:x}\r\n", packet.len()).into_bytes();
        chunk.extend_from_slice(packet);
        chunk.extend_from_slice(b"\r\n");
        p.0.write_all(&chunk).unwrap();
        std::thread::sleep(Duration::from_micros(500));
    }
    let took = started.elapsed();
    common::live::wait_until("every byte at the viewer", WAIT, || {
        viewer.body().is_some_and(|(b, _)| b.ends_with(drip))
    });
    let (r, _, _) = viewer.response();
    let (sent, _) = common::live::chunks(&r.body);
    // One a read would be 1,600; one per 5 ms of the drip, a few more for the start.
    let batched = (took.as_millis() / 5) as usize + 20;
    assert!(
        sent.len() <= batched,
        "{} writes to the viewer for 1,600 reads in {took:?}",
        sent.len()
    );
}

// --- Slow, stalled and fast viewers of a fast publisher ------------------------------------------

/// An 8 MiB ring of at most 4 s, two skips allowed, a 2 s stall timeout, a 40 Mbit/s ingest limit.
fn flood_config(c: &mut LiveConfig) {
    c.ring.max_bytes = 8 << 20;
    c.ring.max_age = Duration::from_secs(4);
    c.viewer.max_skips = 2;
    c.stall_timeout = Duration::from_secs(2);
    c.max_ingest_bitrate = 40_000_000;
}

/// ffmpeg pushes the fixture, looped, as fast as it can (no -re): several times its real rate,
/// held to the ingest limit.
fn flood(s: &TestServer) -> Proc {
    let p = ffmpeg_publish(
        &live_ts(),
        &["-stream_loop", "150"],
        "mpegts",
        &[],
        &s.url("/live/fast"),
    );
    wait_for(s, "fast", "start", |d| d["ring_units"].as_u64() > Some(3));
    p
}

/// Slow viewers need a few ring turnovers to be dropped: more time than the other waits.
const DROP_WAIT: Duration = Duration::from_secs(60);

fn slow_viewer(s: &TestServer) -> Viewer {
    let slow = Reading::Slow {
        size: 4096,
        pause: Duration::from_millis(20),
    };
    Viewer::start(s.addr, "/live/fast.ts", slow)
}

#[test]
fn a_slow_viewer_skips_to_the_newest_keyframe_twice_then_is_dropped() {
    let s = server(flood_config);
    let _publisher = flood(&s);
    let slow = slow_viewer(&s);
    let d = wait_for_within(&s, "fast", "the slow viewer dropped", DROP_WAIT, |d| {
        d["slow_disconnects"] == 1 && d["viewers"]["ts"] == 0
    });
    // Two skips allowed; the third time it falls out of the ring it is dropped instead.
    assert_eq!(d["skips"], 2, "{d}");
    assert_eq!(d["stalled_disconnects"], 0, "{d}");
    let (_, ts, _) = slow.stop();
    assert_starts_with_psi_and_keyframe(&ts);
}

#[test]
fn a_stalled_viewer_is_dropped_after_the_stall_timeout() {
    let s = server(flood_config);
    let _publisher = flood(&s);
    let stalled = Viewer::start(s.addr, "/live/fast.ts", Reading::Stalled);
    let d = wait_for(&s, "fast", "the stalled viewer dropped", |d| {
        d["stalled_disconnects"] == 1 && d["viewers"]["ts"] == 0
    });
    assert_eq!(
        d["skips"], 0,
        "dropped for taking nothing, not for skipping: {d}"
    );
    assert_eq!(d["slow_disconnects"], 0, "{d}");
    drop(stalled);
}

#[test]
fn fast_viewers_get_every_byte_while_slow_and_stalled_ones_are_dropped() {
    let s = server(flood_config);
    let _publisher = flood(&s);
    let fast: Vec<Viewer> = (0..3)
        .map(|_| Viewer::start(s.addr, "/live/fast.ts", Reading::Fast))
        .collect();
    let _slow = slow_viewer(&s);
    let _stalled = Viewer::start(s.addr, "/live/fast.ts", Reading::Stalled);
    let d = wait_for_within(
        &s,
        "fast",
        "slow and stalled viewers dropped",
        DROP_WAIT,
        |d| d["slow_disconnects"] == 1 && d["stalled_disconnects"] == 1 && d["viewers"]["ts"] == 3,
    );
    // Only the slow viewer ever skipped.
    assert_eq!(d["skips"], 2, "{d}");
    for v in fast {
        assert!(!v.finished(), "fast viewers stay connected");
        let (_, ts, _) = v.stop();
        // A bound, not a value (how much a viewer holds depends on when it is stopped): more than
        // the 8 MiB ring holds, so it kept up through whole turnovers of the ring while the slow
        // viewer fell out of it three times.
        assert!(ts.len() > 8 << 20, "a fast viewer got {} bytes", ts.len());
        assert_starts_with_psi_and_keyframe(&ts);
        assert_continuous(&ts, "a fast viewer");
    }
}

#[test]
fn under_a_fast_publisher_the_ring_never_holds_more_than_its_byte_limit() {
    let s = server(flood_config);
    let _publisher = flood(&s);
    let mut max_ring = 0;
    // Twice the ring's limit through the ring.
    wait_for(&s, "fast", "16 MiB in", |d| {
        max_ring = max_ring.max(d["ring_bytes"].as_u64().unwrap());
        d["bytes_in"].as_u64() >= Some(2 * (8 << 20))
    });
    assert!(max_ring <= 8 << 20, "ring held {max_ring} bytes");
    let stream = s.live.get("fast").unwrap();
    let inner = stream.read();
    assert!(inner.ring.bytes() <= 8 << 20);
    assert!(inner.hls.bytes() <= 64 << 20);
}

#[test]
fn a_publisher_faster_than_the_ingest_limit_is_held_to_it() {
    let s = server(flood_config);
    let spawned = Instant::now();
    let _publisher = flood(&s);
    // The limit: 5 MB/s after a 2 s burst, counted from the session's start (after the spawn),
    // plus at most one read (a 256 KiB slab) beyond it.
    let rate = 40_000_000 / 8;
    let d = wait_for(&s, "fast", "25 MB in", |d| {
        let bytes_in = d["bytes_in"].as_u64().unwrap();
        let allowed = rate as f64 * (2.0 + spawned.elapsed().as_secs_f64()) + (256 << 10) as f64;
        assert!(
            bytes_in as f64 <= allowed,
            "{bytes_in} bytes in, {allowed} allowed"
        );
        bytes_in >= 25_000_000
    });
    // The measured rate (over the last whole second) once the burst is spent, the limit
    // binding: 40 Mbit/s.
    // (Or no faster than it all along, on a machine that cannot ingest faster.)
    let _ = d;
    // On the session's clock, which the limit runs on (it starts after the spawn).
    let bound = wait_for_within(&s, "fast", "the limit binding", DROP_WAIT, |d| {
        let bytes_in = d["bytes_in"].as_u64().unwrap() as f64;
        let Some(t) = d["session_uptime_seconds"].as_f64() else {
            return true; // all sent
        };
        bytes_in >= rate as f64 * (2.0 + t) - (512 << 10) as f64 || bytes_in <= rate as f64 * t
    });
    let since = bound["uptime_seconds"].as_f64().unwrap();
    let d = wait_for(&s, "fast", "a second more", |d| {
        d["uptime_seconds"].as_f64().unwrap() >= since + 1.1
    });
    assert!(d["input_bitrate"].as_u64().unwrap() < 48_000_000, "{d}");
}

// --- Bad input ------------------------------------------------------------------------------------

#[test]
fn random_bytes_get_400_and_publish_nothing() {
    let s = server(|_| {});
    let mut rng = fastrand::Rng::with_seed(3);
    let junk: Vec<u8> = (0..PACKET * 10).map(|_| rng.u8(..)).collect();
    let head = format!(
        "PUT /live/junk HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        junk.len()
    );
    let r = send_raw(s.addr, &head, &junk);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        error_doc(
            400,
            "bad live input: malformed mpegts: no sync byte at offset 0"
        )
    );
    let d = stream_doc(&s, "junk").unwrap();
    assert_eq!(d["state"], "ended");
    assert_eq!(d["ring_units"], 0);
    assert_eq!(s.get("/healthz", &[]).status, 200, "the server carries on");
}

#[test]
fn a_stream_cut_mid_packet_publishes_its_whole_packets() {
    let s = server(|_| {});
    let data = fixture_bytes();
    let cut = &data[..PACKET * 500 + 100];
    let head = format!(
        "PUT /live/cut HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        cut.len()
    );
    assert_eq!(send_raw(s.addr, &head, cut).status, 200);
    let d = stream_doc(&s, "cut").unwrap();
    assert_eq!(d["bytes_in"], cut.len() as u64);
    assert_eq!(
        d["ring_bytes"],
        PACKET as u64 * 500,
        "the partial packet dropped"
    );
    assert_eq!(d["end_reason"], "publisher finished");
}

#[test]
fn malformed_chunked_framing_gets_400() {
    let s = server(|_| {});
    let r = send_raw(
        s.addr,
        "POST /live/chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"",
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        error_doc(
            400,
            "bad live input: malformed chunked encoding: bad chunk size line"
        )
    );
    assert_eq!(s.get("/healthz", &[]).status, 200, "the server carries on");
}

/// A radio stream (audio alone: no video keyframe ever): viewers start at an audio frame after
/// the PAT and PMT, the HLS playlist lists segments of it, and its ring stays within its byte
/// limit (audio only, four times the limit over).
#[test]
fn an_audio_only_stream_is_cut_at_its_audio_and_its_ring_stays_bounded() {
    let s = server(|c| c.ring.max_bytes = 256 << 10);
    let audio = std::fs::read(audio_only_ts()).unwrap();
    let big = audio.repeat(4);
    assert!(big.len() > 256 << 10);
    let post = raw_publish(s.addr, "/live/radio", &big);
    let d = wait_for(&s, "radio", "all data", |d| {
        d["bytes_in"].as_u64() == Some(big.len() as u64)
    });
    assert!(d["ring_bytes"].as_u64().unwrap() <= 256 << 10, "{d}");
    let v = Viewer::start(s.addr, "/live/radio.ts", Reading::Fast);
    v.wait_body("an audio frame after the PAT and PMT", |b| {
        b.len() >= 3 * PACKET
    });
    let (resp, ts, _) = v.stop();
    assert_eq!(resp.status, 200);
    assert_starts_with_psi_and_keyframe(&ts);
    let playlist = String::from_utf8(s.get("/live/radio/index.m3u8", &[]).body).unwrap();
    assert!(playlist.contains("#EXTINF:"), "{playlist}");
    assert_eq!(post.end().status, 200);
}

#[test]
fn timestamps_that_start_over_within_an_upload_give_segments_of_their_real_length() {
    let s = server(|c| c.hls.window = 20);
    let data = fixture_bytes().repeat(2);
    let post = raw_publish(s.addr, "/live/again", &data);
    wait_for(&s, "again", "all data", |d| {
        d["bytes_in"].as_u64() == Some(data.len() as u64)
    });
    assert_eq!(post.end().status, 200);
    let playlist = String::from_utf8(s.get("/live/again/index.m3u8", &[]).body).unwrap();
    let durations: Vec<f64> = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| l.trim_end_matches(',').parse().unwrap())
        .collect();
    // 2 s segments of 1 s GOPs, all of the 24 s listed (the one across the join up to 1 s
    // longer: the second copy follows the first's latest timestamp, as after a reconnect); the
    // last one, which the end of the upload closed, lasts as long as its frames took to arrive.
    let (last, before) = durations.split_last().unwrap();
    assert_eq!(before.len(), 11, "{playlist}");
    assert!(before.iter().all(|&d| d > 1.5 && d < 3.0), "{playlist}");
    assert!(*last < 2.5, "{playlist}");
    assert!(playlist.contains("#EXT-X-TARGETDURATION:3\n"), "{playlist}");
    assert!(!playlist.contains("#EXT-X-DISCONTINUITY\n"), "{playlist}");
}

#[test]
fn unknown_streams_and_segments_are_404() {
    let s = server(|_| {});
    let data = fixture_bytes();
    let post = raw_publish(s.addr, "/live/cut", &data[..PACKET * 500]);
    assert_eq!(post.end().status, 200);
    let p = s.get("/live/cut/index.m3u8", &[]);
    let d = instance_dir(&String::from_utf8_lossy(&p.body));
    for (path, error) in [
        ("/live/nope.ts".to_string(), "no live stream 'nope'"),
        ("/live/nope/index.m3u8".to_string(), "no live stream 'nope'"),
        (
            format!("/live/cut/{d}99999.ts"),
            "no segment 99999 in stream 'cut' (it slid out of the window, or is not cut yet)",
        ),
        (
            format!("/live/cut/{d}x.ts"),
            "no segment x in stream 'cut' (it slid out of the window, or is not cut yet)",
        ),
        // Segments are in the directory the playlist names.
        ("/live/cut/0.ts".to_string(), "not found"),
    ] {
        let r = s.get(&path, &[]);
        assert_eq!((r.status, r.json()), (404, error_doc(404, error)), "{path}");
    }
}

// --- Other codecs, the CLI, other outputs ---------------------------------------------------------

#[test]
fn hevc_and_opus_pass_through_with_keyframes_found() {
    let data = std::fs::read(hevc_opus_ts()).unwrap();
    let s = server(|_| {});
    let half = data.len() / 2 / PACKET * PACKET;
    let _p = raw_publish(s.addr, "/live/hevc", &data[..half]);
    let d = wait_for(&s, "hevc", "all of it", |d| {
        d["ring_bytes"].as_u64() == Some(half as u64)
    });
    assert_eq!(d["video_codec"], "hevc");
    assert_eq!(d["audio_codecs"], json!(["opus"]));
    // A viewer gets PAT, PMT, then everything from the last H.265 keyframe.
    let joined_at = *keyframes(&data).iter().rfind(|&&k| k < half).unwrap();
    let v = Viewer::start(s.addr, "/live/hevc.ts", Reading::Fast);
    v.wait_body("the ring from the last keyframe", |ts| {
        ts.len() == 2 * PACKET + half - joined_at
    });
    let (_, ts, _) = v.stop();
    assert_starts_with_psi_and_keyframe(&ts);
    assert!(ts[2 * PACKET..] == data[joined_at..half]);
}

/// A stream that ffmpeg publishes over a chunked POST in real time, live for a few keyframes.
fn live_stream(name: &str) -> (TestServer, Proc) {
    let s = server(|_| {});
    let publisher = ts_publisher(&s.url(&format!("/live/{name}")), None);
    wait_for(&s, name, "live", |d| d["ring_units"].as_u64() > Some(5));
    (s, publisher)
}

// The FLV and RTMP outputs of a TS source start when their first viewer comes (see
// `Stream::want_media`): each of these tests has a stream of its own, that viewer included.

#[test]
fn a_ts_source_is_also_watchable_as_http_flv() {
    let (s, _publisher) = live_stream("both");
    common::assert_plays_h264_aac(&s.url("/live/both.flv"), "3");
}

#[test]
fn a_ts_source_is_also_watchable_as_fragmented_mp4() {
    let (s, _publisher) = live_stream("both");
    common::assert_plays_h264_aac(&s.url("/live/both.mp4"), "3");
}

#[test]
fn a_ts_source_is_also_watchable_over_rtmp() {
    let (s, _publisher) = live_stream("both");
    common::assert_plays_h264_aac(&format!("rtmp://{}/live/both", s.rtmp), "3");
}

/// A browser's page load goes to hyper (the fast path serves only bytes and live routes), and the
/// same keep-alive connection then asks for a live stream: it gets the stream, not an empty 200.
#[test]
fn a_live_viewer_on_a_connection_that_first_loaded_the_page_gets_the_stream() {
    use std::io::{Read, Write};
    let s = server(|_| {});
    let _publisher = ts_publisher(&s.url("/live/kept"), None);
    wait_for(&s, "kept", "a first HLS segment", |d| {
        d["hls_segments"].as_u64() >= Some(1)
    });
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // The page's head and its Content-Length body.
    let mut raw = Vec::new();
    let mut b = [0u8; 8192];
    let body_start = loop {
        let n = c.read(&mut b).unwrap();
        assert!(n > 0, "closed before the page came");
        raw.extend_from_slice(&b[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let page = common::parse_response(&raw[..body_start]);
    assert_eq!(page.status, 200);
    let len: usize = page.header("content-length").unwrap().parse().unwrap();
    while raw.len() < body_start + len {
        let n = c.read(&mut b).unwrap();
        assert!(n > 0);
        raw.extend_from_slice(&b[..n]);
    }
    c.write_all(b"GET /live/kept.ts HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = raw.split_off(body_start + len);
    while got.len() < 64 * 1024 {
        let n = c.read(&mut b).unwrap();
        assert!(
            n > 0,
            "the viewer's response ended after {} bytes",
            got.len()
        );
        got.extend_from_slice(&b[..n]);
    }
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: video/mp2t"), "{head}");
    assert!(got.len() - head_end > 32 * 1024, "TS bytes follow the head");
}
