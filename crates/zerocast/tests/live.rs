//! Live: ffmpeg publishes (PUT and chunked POST), ffmpeg/ffprobe and raw sockets watch (.ts and
//! HLS), publishing rules, reconnects, slow and stalled viewers, bad input.

mod common;

use common::fixtures::{live_ts, long_live_ts, FPS, LIVE_TS_FRAMES, LONG};
use common::live::{
    ffmpeg_publish, hls_playlist, instance_dir, raw_publish, server, stream_doc, ts_publisher,
    wait_for, ChunkedPost, Reading, Shared, Viewer, WAIT,
};
use common::ts::{assert_continuous, assert_starts_with_psi_and_keyframe, keyframes, PACKET};
use common::{ffmpeg, request, Resp, TestServer};
use media::ts::Cut;
use serde_json::json;
use server::live::LiveConfig;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One stream, `show`, that ffmpeg publishes over PUT in real time, for the tests that only watch
/// its `.ts` output.
fn shared_show() -> Arc<Shared> {
    static S: Mutex<Option<Arc<Shared>>> = Mutex::new(None);
    // Fresh for half the fixture: the other half is enough for any watching test to finish.
    common::live::shared(&S, LONG / 2, || {
        let s = server(|c| c.global_key = Some("k1".into()));
        let publisher = ffmpeg_publish(
            &long_live_ts(),
            &["-re"],
            "mpegts",
            &["-method", "PUT"],
            &s.url("/live/show?key=k1"),
        );
        wait_for(&s, "show", "a few keyframes", |d| {
            d["ring_units"].as_u64() > Some(5) && d["video_codec"] == "h264"
        });
        (s, publisher)
    })
}

fn fixture_bytes() -> Vec<u8> {
    std::fs::read(live_ts()).unwrap()
}

/// The error document the server answers with.
fn error_doc(status: u16, error: &str) -> serde_json::Value {
    json!({ "status": status, "error": error })
}

/// A PUT with `headers`; `Content-Length: 0` unless they give one (two would be a 400).
fn put(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut h = headers.to_vec();
    if !h
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        h.push(("Content-Length", "0"));
    }
    request(s.addr, "PUT", path, &h)
}

// --- Publishing over PUT, watching the .ts output -------------------------------------------

#[test]
fn ffmpeg_publishes_over_put_and_ffmpeg_decodes_it_without_errors() {
    let shared = shared_show();
    let s = &shared.server;
    // ffmpeg decodes 4 s with no error at all; ffprobe sees both codecs.
    common::assert_plays_h264_aac(&s.url("/live/show.ts"), "4");
}

#[test]
fn a_late_joiner_gets_chunked_video_mp2t_starting_with_pat_pmt_and_a_keyframe() {
    let shared = shared_show();
    let s = &shared.server;
    let v = Viewer::start(s.addr, "/live/show.ts", Reading::Fast);
    // The keyframe it starts at, and the next one a GOP later: counters continue across reads.
    v.wait_body("two keyframes", |ts| keyframes(ts).len() >= 2);
    let (resp, ts, _) = v.stop();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("video/mp2t"));
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_starts_with_psi_and_keyframe(&ts);
    assert_continuous(&ts, "a late joiner");
}

#[test]
fn the_stream_document_shows_the_input_rate_and_the_viewers() {
    let s = server(|c| c.global_key = Some("k1".into()));
    let _publisher = ts_publisher(&s.url("/live/show?key=k1"), Some("PUT"));
    // The input rate is measured over whole seconds: wait for the first measurement.
    wait_for(&s, "show", "a measured input rate", |d| {
        d["input_bitrate"].as_u64() > Some(0)
    });
    let _viewers: Vec<Viewer> = (0..3)
        .map(|_| Viewer::start(s.addr, "/live/show.ts", Reading::Fast))
        .collect();
    let d = wait_for(&s, "show", "three viewers", |d| d["viewers"]["ts"] == 3);
    assert_eq!(d["state"], "live");
    assert_eq!(d["sessions"], 1);
    assert_eq!(d["video_codec"], "h264");
    assert_eq!(d["audio_codecs"], json!(["aac"]));
    assert_eq!(
        d["publisher"],
        json!(null),
        "an address for the admin alone"
    );
    assert_eq!(d["viewers"]["ts_total"], 3);
    assert_eq!(d["viewers"]["flv"], 0);
    // A bound, not a value: the rate is over the last whole second of a real-time publish, and a
    // second holds one 1 s GOP's worth of this ~700 kbit/s fixture give or take the keyframe and
    // ffmpeg's write buffering.
    let rate = d["input_bitrate"].as_u64().unwrap();
    assert!(
        (350_000..1_400_000).contains(&rate),
        "input rate {rate}: {d}"
    );
}

// --- HLS from a chunked POST ------------------------------------------------------------------

fn hls_1s_window_3(c: &mut LiveConfig) {
    c.hls.min_segment = Duration::from_secs(1);
    c.hls.window = 3;
}

fn media_sequence(playlist: &str) -> u64 {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_playlist_asked_for_before_the_first_segment_waits_for_it() {
    let s = server(hls_1s_window_3);
    let _publisher = ts_publisher(&s.url("/live/h"), None);
    wait_for(&s, "h", "a publisher", |d| d["state"] == "live");
    // Asked right away: the request waits for the first segment (1 s, one GOP), then lists it.
    let p = s.get("/live/h/index.m3u8", &[]);
    assert_eq!(p.status, 200, "{}", String::from_utf8_lossy(&p.body));
    assert_eq!(
        p.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(p.header("cache-control"), Some("no-cache"));
    let body = String::from_utf8_lossy(&p.body);
    assert_eq!(
        body,
        format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXTINF:1.000,\n{}0.ts\n",
            instance_dir(&body)
        )
    );
}

#[test]
fn ffmpeg_copies_the_live_hls_of_a_chunked_post_without_a_gap() {
    let s = server(hls_1s_window_3);
    let _publisher = ts_publisher(&s.url("/live/h"), None);
    wait_for(&s, "h", "a publisher", |d| d["state"] == "live");
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
    // The copy is continuous: 6 s of 25 fps video, timestamps one frame apart.
    let frames = common::ffprobe_frames(out.to_str().unwrap());
    assert_eq!(frames.len(), 6 * FPS, "video frames in 6 s");
    assert!(
        frames
            .windows(2)
            .all(|w| (w[1].0 - w[0].0 - 1.0 / FPS as f64).abs() < 0.001),
        "no gap in the copy"
    );
}

#[test]
fn the_hls_playlist_slides_and_segments_that_slid_out_are_gone() {
    let s = server(hls_1s_window_3);
    let data = fixture_bytes();
    let k = keyframes(&data);
    // Up to the 4th keyframe: segments 0 and 1 are closed (a segment closes at the next keyframe
    // 1 s on), the third is open.
    let mut post = raw_publish(s.addr, "/live/h", &data[..k[3]]);
    wait_for(&s, "h", "two segments", |d| d["hls_segments"] == 2);
    let p1 = hls_playlist(&s, "h");
    let d = instance_dir(&p1);
    assert_eq!(media_sequence(&p1), 0);
    assert!(
        p1.ends_with(&format!(
            "#EXTINF:1.000,\n{d}0.ts\n#EXTINF:1.000,\n{d}1.ts\n"
        )),
        "{p1}"
    );
    // Five more keyframes: segments 2 to 6 close; the window lists the last 3 (4, 5, 6) and the
    // server keeps those that left it (0 to 3) for players still fetching them.
    post.send(&data[k[3]..k[8]], Duration::ZERO);
    wait_for(&s, "h", "the data up to the 9th keyframe", |d| {
        d["ring_bytes"].as_u64() == Some(k[8] as u64)
    });
    let p2 = hls_playlist(&s, "h");
    assert_eq!(media_sequence(&p2), 4, "{p2}");
    assert!(
        p2.ends_with(&format!(
            "{d}4.ts\n#EXTINF:1.000,\n{d}5.ts\n#EXTINF:1.000,\n{d}6.ts\n"
        )),
        "{p2}"
    );
    assert!(!p2.contains("#EXT-X-ENDLIST"));
    // Segment 0 left the playlist when segment 3 closed, 3 s ago: it stays for its 1 s and the
    // 3 s of the playlist that last listed it (RFC 8216 §6.2.2).
    let owed = s.get(&format!("/live/h/{d}0.ts"), &[]);
    assert_eq!(owed.status, 200, "still owed to players");
    post.send(&data[k[8]..k[9]], Duration::ZERO);
    wait_for(&s, "h", "the data up to the 10th keyframe", |d| {
        d["ring_bytes"].as_u64() == Some(k[9] as u64)
    });
    let gone = s.get(&format!("/live/h/{d}0.ts"), &[]);
    assert_eq!(gone.status, 404, "slid out");
    assert_eq!(
        gone.json(),
        error_doc(
            404,
            "no segment 0 in stream 'h' (it slid out of the window, or is not cut yet)"
        )
    );
    let spare = s.get(&format!("/live/h/{d}1.ts"), &[]);
    assert_eq!(spare.status, 200, "left 3 s ago, still owed");
}

#[test]
fn hls_segments_are_immutable_and_hold_pat_pmt_then_one_gop() {
    let s = server(hls_1s_window_3);
    let data = fixture_bytes();
    let k = keyframes(&data);
    let _post = raw_publish(s.addr, "/live/h", &data[..k[3]]);
    wait_for(&s, "h", "two segments", |d| d["hls_segments"] == 2);
    let d = instance_dir(&hls_playlist(&s, "h"));
    let r = s.get(&format!("/live/h/{d}1.ts"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("video/mp2t"));
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=600, immutable")
    );
    let etag = r.header("etag").unwrap().to_string();
    let again = s.get(&format!("/live/h/{d}1.ts"), &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_starts_with_psi_and_keyframe(&r.body);
    // After PAT and PMT: the source's second GOP, byte for byte.
    assert_eq!(r.body.len(), 2 * PACKET + k[2] - k[1]);
    assert!(r.body[2 * PACKET..] == data[k[1]..k[2]], "the GOP's bytes");
}

#[test]
fn when_ffmpeg_finishes_its_post_the_stream_ends_and_the_playlist_gets_endlist() {
    let s = server(hls_1s_window_3);
    // As fast as ffmpeg can send it (no -re): the segments follow the timestamps, not the clock.
    let publisher = ffmpeg_publish(&live_ts(), &[], "mpegts", &[], &s.url("/live/h"));
    let (ok, err) = publisher.wait(WAIT);
    assert!(ok, "ffmpeg publish: {err}");
    let d = wait_for(&s, "h", "the end", |d| d["state"] == "ended");
    assert_eq!(d["end_reason"], "publisher finished");
    // 12 one-second GOPs: 12 segments (the last closed by the end), the last 3 listed.
    let p = hls_playlist(&s, "h");
    assert_eq!(media_sequence(&p), 9, "{p}");
    assert_eq!(p.matches("#EXTINF:").count(), 3, "{p}");
    assert!(
        p.ends_with(&format!("{}11.ts\n#EXT-X-ENDLIST\n", instance_dir(&p))),
        "{p}"
    );
}

// --- Publishing rules ---------------------------------------------------------------------------

fn keyed_server() -> TestServer {
    server(|c| {
        c.keys.insert("show".into(), "s3cret".into());
    })
}

#[test]
fn a_publisher_without_a_key_gets_401_with_www_authenticate() {
    let s = keyed_server();
    let r = put(&s, "/live/show", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"zerocast publish\"")
    );
    assert_eq!(
        r.json(),
        error_doc(
            401,
            "publishing 'show' needs a stream key (?key= or Authorization: Bearer)"
        )
    );
    assert_eq!(stream_doc(&s, "show"), None, "a refusal creates no stream");
}

#[test]
fn a_publisher_with_a_wrong_key_gets_403() {
    let s = keyed_server();
    let r = put(&s, "/live/show?key=nope", &[]);
    assert_eq!(r.status, 403);
    assert_eq!(r.json(), error_doc(403, "wrong stream key for 'show'"));
    assert_eq!(stream_doc(&s, "show"), None, "a refusal creates no stream");
}

#[test]
fn a_stream_key_publishes_only_its_own_stream() {
    let s = keyed_server();
    let r = put(&s, "/live/other?key=s3cret", &[]);
    assert_eq!(r.status, 403, "a key is per stream");
    assert_eq!(r.json(), error_doc(403, "wrong stream key for 'other'"));
    assert_eq!(stream_doc(&s, "other"), None, "a refusal creates no stream");
}

#[test]
fn a_bad_stream_name_gets_400() {
    let s = keyed_server();
    let r = put(&s, "/live/bad%2Fname?key=s3cret", &[]);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        error_doc(
            400,
            "bad stream name 'bad%2Fname' (1 to 128 of A-Z a-z 0-9 _ - .)"
        )
    );
    let all = s.get("/api/streams", &[]).json();
    assert_eq!(all, json!([]), "a refusal creates no stream");
}

#[test]
fn a_second_publisher_gets_409_and_the_first_carries_on() {
    let s = keyed_server();
    let data = fixture_bytes();
    let _first = raw_publish(s.addr, "/live/show?key=s3cret", &data[..PACKET * 2000]);
    let before = wait_for(&s, "show", "data", |d| {
        d["bytes_in"].as_u64() == Some(PACKET as u64 * 2000)
    });
    // A second publisher, with the right key (Bearer), is refused while the first is live.
    let r = put(
        &s,
        "/live/show",
        &[
            ("Authorization", "Bearer s3cret"),
            ("Content-Length", "376"),
        ],
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json(),
        error_doc(409, "stream 'show' already has a publisher")
    );
    let after = stream_doc(&s, "show").unwrap();
    assert_eq!(after["state"], "live");
    assert_eq!(after["bytes_in"], before["bytes_in"]);
    assert_eq!(after["sessions"], 1);
}

// --- Reconnects and the grace period ------------------------------------------------------------

/// The first keyframe at or after the middle of `data`: a publisher cut there has finished every
/// PES (what is cut mid-frame is lost and would be a decode error).
fn half_at_a_keyframe(data: &[u8]) -> usize {
    *keyframes(data)
        .iter()
        .find(|&&k| k >= data.len() / 2)
        .unwrap()
}

#[test]
fn a_publisher_back_within_the_grace_period_continues_the_stream_for_its_viewers() {
    let s = server(|c| c.grace = Duration::from_secs(2));
    let data = fixture_bytes();
    let half = half_at_a_keyframe(&data);
    let quarter = half / 4 / PACKET * PACKET;
    // The first session sends a quarter of the file; a viewer joins once it is all in the ring,
    // at its last keyframe.
    let mut first = raw_publish(s.addr, "/live/r", &data[..quarter]);
    wait_for(&s, "r", "a quarter of the file", |d| {
        d["ring_bytes"].as_u64() == Some(quarter as u64)
    });
    let joined_at = *keyframes(&data).iter().rfind(|&&k| k < quarter).unwrap();
    let viewer = Viewer::start(s.addr, "/live/r.ts", Reading::Fast);
    viewer.wait_body("the viewer's first bytes", |ts| !ts.is_empty());
    // Then it sends up to the middle of the file, and its connection drops (no last chunk).
    first.send(&data[quarter..half], Duration::from_millis(2));
    drop(first);
    wait_for(&s, "r", "reconnecting", |d| d["state"] == "reconnecting");
    // It comes back and sends the whole file again from its start.
    let mut second = ChunkedPost::start(s.addr, "/live/r");
    second.send(&data, Duration::from_millis(2));
    let d = wait_for(&s, "r", "second session", |d| {
        d["sessions"] == 2 && d["state"] == "live"
    });
    assert_eq!(d["viewers"]["ts"], 1, "the viewer stayed");
    assert_eq!(second.end().status, 200);
    wait_for(&s, "r", "ended", |d| d["state"] == "ended");
    viewer.wait_closed();
    let (_, ts, clean) = viewer.stop();
    assert!(clean, "the chunked body ended with its last chunk");
    // Everything from the keyframe it joined at: PAT and PMT, the rest of the first session,
    // then all of the second.
    assert_eq!(
        ts.len(),
        2 * PACKET + (half - joined_at) + data.len(),
        "the viewer saw both sessions whole"
    );
    assert_continuous(&ts, "across the reconnect");
    // Video timestamps keep rising across the reconnect.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.ts");
    std::fs::write(&f, &ts).unwrap();
    let packets = common::ffprobe_video_packets(f.to_str().unwrap());
    let gops_before = keyframes(&data)
        .iter()
        .filter(|&&k| (joined_at..half).contains(&k))
        .count();
    assert_eq!(packets.len(), gops_before * FPS + LIVE_TS_FRAMES);
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
}

#[test]
fn after_a_reconnect_the_hls_playlist_marks_the_discontinuity() {
    let s = server(|c| {
        c.grace = Duration::from_secs(2);
        c.hls.min_segment = Duration::from_secs(2);
        // Every segment stays listed, the one after the reconnect included.
        c.hls.window = 20;
    });
    let data = fixture_bytes();
    let half = half_at_a_keyframe(&data);
    let first = raw_publish(s.addr, "/live/r", &data[..half]);
    wait_for(&s, "r", "half the file", |d| {
        d["ring_bytes"].as_u64() == Some(half as u64)
    });
    drop(first);
    wait_for(&s, "r", "reconnecting", |d| d["state"] == "reconnecting");
    let second = raw_publish(s.addr, "/live/r", &data);
    assert_eq!(second.end().status, 200);
    wait_for(&s, "r", "ended", |d| d["state"] == "ended");
    let hls = hls_playlist(&s, "r");
    assert_eq!(hls.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{hls}");
    assert!(hls.contains("#EXT-X-DISCONTINUITY-SEQUENCE:0\n"), "{hls}");
    // The first session's segments (one per 2 s from its keyframes, a second apart, the last
    // closed by the drop), then the mark on the second session's first segment.
    let gops_before = keyframes(&data).iter().filter(|&&k| k < half).count();
    let before = gops_before.div_ceil(2);
    assert!(
        hls.contains(&format!(
            "\n{}{}.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:",
            instance_dir(&hls),
            before - 1
        )),
        "{hls}"
    );
}

/// A first session of 3000 packets whose connection then drops, and the grace period (500 ms)
/// running out.
fn publisher_gone_past_the_grace(s: &TestServer, viewer: bool) -> Option<Viewer> {
    let data = fixture_bytes();
    let sent = PACKET * 3000;
    let first = raw_publish(s.addr, "/live/g", &data[..sent]);
    wait_for(s, "g", "data", |d| {
        d["ring_bytes"].as_u64() == Some(sent as u64)
    });
    let v = viewer.then(|| {
        let v = Viewer::start(s.addr, "/live/g.ts", Reading::Fast);
        let joined_at = *keyframes(&data).iter().rfind(|&&k| k < sent).unwrap();
        // It gets PAT, PMT and everything from the last keyframe.
        v.wait_body("the ring from the last keyframe", |ts| {
            ts.len() == 2 * PACKET + sent - joined_at
        });
        v
    });
    drop(first);
    let d = wait_for(s, "g", "ended", |d| d["state"] == "ended");
    assert_eq!(
        d["end_reason"],
        "publisher gone (the body ended early: no last chunk) and did not come back within 500ms"
    );
    v
}

#[test]
fn a_publisher_gone_past_the_grace_period_ends_the_stream_and_its_viewers_cleanly() {
    let s = server(|c| c.grace = Duration::from_millis(500));
    let viewer = publisher_gone_past_the_grace(&s, true).unwrap();
    viewer.wait_closed();
    let (_, _, clean) = viewer.stop();
    assert!(clean, "a clean end for the viewer");
}

#[test]
fn an_ended_stream_takes_no_new_viewers() {
    let s = server(|c| c.grace = Duration::from_millis(500));
    publisher_gone_past_the_grace(&s, false);
    let r = s.get("/live/g.ts", &[]);
    assert_eq!(r.status, 404, "an ended stream has no new viewers");
    assert_eq!(r.json(), error_doc(404, "no live stream 'g'"));
}

#[test]
fn a_publisher_after_the_end_starts_a_new_stream() {
    let s = server(|c| c.grace = Duration::from_millis(500));
    publisher_gone_past_the_grace(&s, false);
    let data = fixture_bytes();
    let _again = raw_publish(s.addr, "/live/g", &data[..PACKET * 100]);
    let d = wait_for(&s, "g", "a new stream", |d| {
        d["state"] == "live" && d["bytes_in"].as_u64() == Some(PACKET as u64 * 100)
    });
    assert_eq!(d["sessions"], 1);
}

#[test]
fn a_source_whose_pmt_runs_over_packets_is_followed_and_plays() {
    let s = server(|_| {});
    // 30 audio streams with a language each, then the video: ffmpeg writes the PMT over two
    // packets, and declares the video in the second.
    let mut out = vec!["-metadata:s:a", "language=eng"];
    for _ in 0..30 {
        out.extend(["-map", "0:a"]);
    }
    out.extend(["-map", "0:v"]);
    let _p = ffmpeg_publish(&live_ts(), &["-re"], "mpegts", &out, &s.url("/live/long"));
    let doc = wait_for(&s, "long", "the video and a keyframe", |d| {
        d["video_codec"] == "h264" && d["ring_units"].as_u64() > Some(1)
    });
    assert_eq!(doc["audio_codecs"].as_array().map(Vec::len), Some(30));
    // A late viewer gets the PAT, the whole PMT (both its packets), then a keyframe.
    let v = Viewer::start(s.addr, "/live/long.ts", Reading::Fast);
    v.wait_body("a GOP", |b| b.len() >= 5 * PACKET);
    let cuts = common::ts::cuts(&v.body().unwrap().0);
    assert!(
        matches!(
            cuts[..],
            [
                Cut::Pat(0),
                Cut::Pmt(188),
                Cut::PmtMore(376),
                Cut::PmtWhole(376),
                Cut::Keyframe { at: 564, .. },
                ..
            ]
        ),
        "{:?}",
        &cuts[..cuts.len().min(6)]
    );
    common::assert_plays_h264_aac(&s.url("/live/long.ts"), "2");
}
