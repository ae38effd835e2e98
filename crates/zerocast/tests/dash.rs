//! Low-latency DASH (issue 13, part 4): `/live/{name}/manifest.mpd` of a stream ffmpeg publishes
//! over RTMP or HTTP (TS), read by ffmpeg and by hand as a player would: per-track init segments
//! and segments, the segment being written streamed as it grows, the next one held until it
//! begins, and the server's clock.

mod common;

use common::fixtures::{long_rtmp_mp4, LONG};
use common::live::{
    instance_dir, read_head, rtmp_publisher, server, shared, streamed, ts_publisher, wait_for,
    wait_until, Shared, WAIT,
};
use common::TestServer;
use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One stream, `dash`, published over RTMP in real time (1 s GOP), with 1 s segments.
fn shared_dash() -> Arc<Shared> {
    static S: Mutex<Option<Arc<Shared>>> = Mutex::new(None);
    shared(&S, LONG / 2, || {
        let s = server(|c| {
            c.ll_hls.min_segment = Duration::from_secs(1);
            c.ll_hls.part_target = Duration::from_millis(200);
        });
        let publisher = rtmp_publisher(&s, "/live/dash", &long_rtmp_mp4(), &["-re"]);
        wait_for(&s, "dash", "a stream", |_| true);
        let s2 = &s;
        wait_until("a manifest with three segments", WAIT, || {
            let r = s2.get("/live/dash/manifest.mpd", &[]);
            r.status == 200 && String::from_utf8_lossy(&r.body).matches("<S ").count() >= 6
        });
        (s, publisher)
    })
}

fn manifest(s: &TestServer, name: &str) -> String {
    let r = s.get(&format!("/live/{name}/manifest.mpd"), &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/dash+xml"));
    String::from_utf8(r.body).unwrap()
}

fn attr<'a>(s: &'a str, name: &str) -> &'a str {
    let at = s
        .find(&format!(" {name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {s}"));
    let rest = &s[at + name.len() + 3..];
    &rest[..rest.find('"').unwrap()]
}

/// The numbers of the segments the last Period's video timeline lists, oldest first (the last
/// two: the one being written, and the next, listed before it begins).
fn listed(mpd: &str) -> Vec<u64> {
    let period = mpd.rsplit("<Period ").next().unwrap();
    let set = period.split("</AdaptationSet>").next().unwrap();
    let first: u64 = attr(set, "startNumber").parse().unwrap();
    let n = set.matches("<S ").count() as u64;
    (first..first + n).collect()
}

#[test]
fn ffmpeg_plays_the_dash_manifest_of_an_rtmp_stream() {
    let shared = shared_dash();
    let m = manifest(&shared.server, "dash");
    assert!(m.contains("type=\"dynamic\""), "{m}");
    assert!(m.contains("contentType=\"video\"") && m.contains("contentType=\"audio\""));
    assert!(m.contains("codecs=\"avc1."), "{m}");
    assert!(m.contains("codecs=\"mp4a.40.2\""), "{m}");
    common::assert_plays_h264_aac(&shared.server.url("/live/dash/manifest.mpd"), "3");
}

#[test]
fn each_track_is_its_own_init_segment_and_segments_that_decode() {
    let shared = shared_dash();
    let s = &shared.server;
    let m = manifest(s, "dash");
    let done = listed(&m)[0];
    let d = instance_dir(&m);
    let dir = std::env::temp_dir().join(format!("zerocast-dash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (t, codec) in [("v", "h264"), ("a", "aac")] {
        let init = s.get(&format!("/live/dash/{d}dash/init-{t}0.mp4"), &[]);
        assert_eq!(init.status, 200, "{t}");
        let seg = s.get(&format!("/live/dash/{d}dash/{t}{done}.m4s"), &[]);
        assert_eq!(seg.status, 200, "{t}{done}");
        assert!(seg.header("etag").is_some());
        let path = dir.join(format!("{t}.mp4"));
        std::fs::write(&path, [init.body, seg.body].concat()).unwrap();
        let file = path.to_str().unwrap();
        assert_eq!(
            common::codecs(file),
            [codec],
            "one track per representation"
        );
        common::assert_decodes_without_errors(file, None);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn raw_get(s: &TestServer, path: &str) -> TcpStream {
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    c
}

#[test]
fn the_segment_being_written_is_streamed_frame_by_frame() {
    let shared = shared_dash();
    let s = &shared.server;
    let m = manifest(s, "dash");
    // The next segment, listed before it begins: the request is held until it does, then it
    // is streamed from its first frame to its last (the one being written when the manifest
    // was read could be complete, or all but complete, by the time it is asked for).
    let (open, d) = (*listed(&m).last().unwrap(), instance_dir(&m));
    let sent = streamed(s.addr, &format!("/live/dash/{d}dash/v{open}.m4s"));
    assert!(sent.len() >= 2, "{} chunks", sent.len());
    let whole = s.get(&format!("/live/dash/{d}dash/v{open}.m4s"), &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(
        sent.concat(),
        whole.body,
        "streamed and complete segment are the same bytes"
    );
    assert_eq!(&whole.body[4..8], b"moof", "a CMAF chunk per frame");
}

#[test]
fn the_next_segment_is_held_until_it_begins_and_one_further_is_not_found() {
    let shared = shared_dash();
    let s = &shared.server;
    let m = manifest(s, "dash");
    let (next, d) = (*listed(&m).last().unwrap(), instance_dir(&m));
    let far = s.get(&format!("/live/dash/{d}dash/a{}.m4s", next + 1), &[]);
    assert_eq!(
        far.status, 404,
        "only the next segment is listed before it begins"
    );
    // The next one begins within a segment's length (1 s): its first chunk comes then.
    let asked = Instant::now();
    let mut c = raw_get(s, &format!("/live/dash/{d}dash/a{next}.m4s"));
    let head = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(head.contains("content-type: audio/mp4"), "{head}");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    let m = manifest(s, "dash");
    let l = listed(&m);
    assert!(
        l[l.len() - 2] >= next,
        "it is being written now, or done: {m}"
    );
}

#[test]
fn the_server_clock_answers_in_iso_8601_and_the_manifest_names_it() {
    let shared = shared_dash();
    let s = &shared.server;
    let m = manifest(s, "dash");
    let clock = format!("http://{}/api/time", s.addr);
    assert!(
        m.contains(&format!(
            "schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"{clock}\""
        )),
        "{m}"
    );
    let r = s.get("/api/time", &[("Origin", "https://player.example")]);
    assert_eq!(r.status, 200);
    assert!(
        r.header("access-control-allow-origin").is_some(),
        "a player on another origin reads it"
    );
    let body = String::from_utf8(r.body).unwrap();
    // 2026-11-26T08:00:00.123Z: the seconds of the day agree with this machine's clock.
    assert_eq!(body.len(), 24, "{body}");
    let (h, m_, sec): (u64, u64, f64) = (
        body[11..13].parse().unwrap(),
        body[14..16].parse().unwrap(),
        body[17..23].parse().unwrap(),
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        % 86_400.0;
    let theirs = (h * 3600 + m_ * 60) as f64 + sec;
    assert!((now - theirs).abs() < 2.0, "{body}");
}

#[test]
fn players_share_one_manifest_until_it_changes() {
    let shared = shared_dash();
    let s = &shared.server;
    let start = Instant::now();
    // Players that reached the server by two names: each manifest's clock is at its own.
    let bodies: Vec<String> = (0..300)
        .map(|i| {
            let host = ["a.example", "b.example"][i % 2];
            let r = s.get(&format!("http://{host}/live/dash/manifest.mpd"), &[]);
            let m = String::from_utf8(r.body).unwrap();
            let clock = format!("value=\"http://{host}/api/time\"/>\n</MPD>\n");
            m.strip_suffix(&clock)
                .map(str::to_string)
                .unwrap_or_else(|| panic!("{m}"))
        })
        .collect();
    let elapsed = start.elapsed();
    // It changes when a part completes or begins, or a segment does (200 ms parts, 1 s
    // segments): at most three times per part, whatever the pace of the requests.
    let changes = 3 * elapsed.as_millis() / 200 + 4;
    let mut distinct = bodies.clone();
    distinct.dedup();
    assert!(
        (distinct.len() as u128) <= changes && changes < 300,
        "{} different manifests in {elapsed:?}",
        distinct.len()
    );
    // Each one says when it was made: a later one, a later publishTime.
    let published: Vec<&str> = distinct.iter().map(|m| attr(m, "publishTime")).collect();
    assert!(published.windows(2).all(|w| w[0] < w[1]), "{published:?}");
}

#[test]
fn a_ts_source_gets_dash_from_the_first_request_on() {
    let s = server(|_| {});
    let _publisher = ts_publisher(&s.url("/live/tsdash"), None);
    wait_for(&s, "tsdash", "a first HLS segment", |d| {
        d["hls_segments"].as_u64() >= Some(1)
    });
    let m = manifest(&s, "tsdash");
    assert!(m.contains("<S "), "{m}");
    common::assert_plays_h264_aac(&s.url("/live/tsdash/manifest.mpd"), "2");
}
