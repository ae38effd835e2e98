//! Low-latency HLS (issue 13, part 3): `/live/{name}/ll.m3u8` of a stream ffmpeg publishes over
//! RTMP, read by ffmpeg and by hand as a player would: parts, the preload hint, blocking reloads,
//! delta updates, and the hinted part streamed while it is written.

mod common;

use common::fixtures::{long_rtmp_mp4, LONG};
use common::live::{
    instance_dir, rtmp_publisher, server, shared, streamed, ts_publisher, wait_for, wait_until,
    Shared, WAIT,
};
use common::TestServer;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One stream, `ll`, published over RTMP in real time (1 s GOP), with 1 s LL-HLS segments.
fn shared_ll() -> Arc<Shared> {
    static S: Mutex<Option<Arc<Shared>>> = Mutex::new(None);
    shared(&S, LONG / 2, || {
        // 1 s GOP and segments, 200 ms parts: every part is five frames.
        let s = server(|c| {
            c.ll_hls.min_segment = Duration::from_secs(1);
            c.ll_hls.part_target = Duration::from_millis(200);
        });
        let publisher = rtmp_publisher(&s, "/live/ll", &long_rtmp_mp4(), &["-re"]);
        wait_for(&s, "ll", "a stream", |_| true);
        let s2 = &s;
        wait_until("a complete LL-HLS segment", WAIT, || {
            playlist(s2, "").contains("#EXTINF")
        });
        (s, publisher)
    })
}

fn playlist(s: &TestServer, query: &str) -> String {
    let r = s.get(&format!("/live/ll/ll.m3u8{query}"), &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    String::from_utf8(r.body).unwrap()
}

/// The newest complete segment a playlist lists.
fn newest_segment(p: &str) -> u64 {
    p.lines()
        .rfind(|l| l.ends_with(".m4s") && !l.starts_with('#'))
        .unwrap_or_else(|| panic!("no complete segment in {p}"))
        .trim_end_matches(".m4s")
        .trim_start_matches(&instance_dir(p))
        .parse()
        .unwrap()
}

/// The part the playlist hints at: (msn, part).
fn hint(p: &str) -> (u64, u64) {
    let line = p
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .unwrap_or_else(|| panic!("no preload hint in {p}"));
    let uri = line.trim_end_matches('"').trim_end_matches(".m4s");
    let uri = uri.trim_start_matches(&instance_dir(p));
    let (msn, part) = uri.split_once('.').unwrap();
    (msn.parse().unwrap(), part.parse().unwrap())
}

#[test]
fn ffmpeg_plays_the_ll_hls_playlist_of_an_rtmp_stream() {
    let shared = shared_ll();
    let p = playlist(&shared.server, "");
    let d = instance_dir(&p);
    assert!(
        p.contains(&format!("#EXT-X-MAP:URI=\"{d}init0.mp4\"")),
        "{p}"
    );
    assert!(p.contains("#EXT-X-PROGRAM-DATE-TIME:20"), "{p}");
    assert!(p.contains(",INDEPENDENT=YES\n"), "{p}");
    common::assert_plays_h264_aac(&shared.server.url("/live/ll/ll.m3u8"), "3");
}

#[test]
fn a_segment_is_its_parts_joined_and_decodes_after_the_init_segment() {
    let shared = shared_ll();
    let s = &shared.server;
    let p = playlist(s, "");
    // The newest complete segment, and its parts (listed for the last segments).
    let msn = newest_segment(&p);
    let d = instance_dir(&p);
    let whole = s.get(&format!("/live/ll/{d}{msn}.m4s"), &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-type"), Some("video/mp4"));
    let mut joined = Vec::new();
    for i in 0.. {
        if !p.contains(&format!("URI=\"{d}{msn}.{i}.m4s\"")) {
            break;
        }
        let part = s.get(&format!("/live/ll/{d}{msn}.{i}.m4s"), &[]);
        assert_eq!(part.status, 200);
        joined.extend_from_slice(&part.body);
    }
    assert_eq!(joined, whole.body, "segment {msn} is its parts, in order");
    let init = s.get(&format!("/live/ll/{d}init0.mp4"), &[]);
    assert_eq!(init.status, 200);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seg.mp4");
    std::fs::write(&file, [init.body, whole.body].concat()).unwrap();
    common::assert_plays_h264_aac(file.to_str().unwrap(), "1");
}

#[test]
fn a_blocking_reload_is_answered_once_the_part_it_names_is_complete() {
    let shared = shared_ll();
    let s = &shared.server;
    let (msn, part) = hint(&playlist(s, ""));
    let r = s.get(
        &format!("/live/ll/ll.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
        &[],
    );
    assert_eq!(r.status, 200);
    let p = String::from_utf8(r.body.clone()).unwrap();
    let d = instance_dir(&p);
    assert!(
        p.contains(&format!("URI=\"{d}{msn}.{part}.m4s\""))
            && !p.contains(&format!(
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{d}{msn}.{part}.m4s\""
            )),
        "part {msn}.{part} is listed complete:\n{p}"
    );
    // Cacheable for about a part, keyed on the query: a CDN collapses the players waiting.
    assert_eq!(r.header("cache-control"), Some("public, max-age=1"));
    let plain = s.get("/live/ll/ll.m3u8", &[]);
    assert_eq!(plain.header("cache-control"), Some("no-cache"));
}

#[test]
fn a_blocking_reload_too_far_ahead_is_refused_at_once() {
    let shared = shared_ll();
    let s = &shared.server;
    // The newest complete segment, from a reload that blocks until the next part: two beyond
    // it may be waited for, three beyond is refused at once.
    let (msn, part) = hint(&playlist(s, ""));
    let p = playlist(s, &format!("?_HLS_msn={msn}&_HLS_part={part}"));
    let newest = newest_segment(&p);
    let r = s.get(&format!("/live/ll/ll.m3u8?_HLS_msn={}", newest + 3), &[]);
    assert_eq!(r.status, 400);
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(msg.contains("too far ahead"), "{msg}");
    let r = s.get("/live/ll/ll.m3u8?_HLS_part=2", &[]);
    assert_eq!(r.status, 400, "a part without its segment");
    let r = s.get("/live/ll/ll.m3u8?_HLS_msn=x", &[]);
    assert_eq!(r.status, 400);
}

#[test]
fn a_delta_update_replaces_the_oldest_segments_with_ext_x_skip() {
    let shared = shared_ll();
    let s = &shared.server;
    // 1 s segments: CAN-SKIP-UNTIL is 6 s, so a playlist past 7 s has something to skip.
    wait_until("an LL-HLS playlist of 8 segments", WAIT, || {
        playlist(s, "").matches("#EXTINF").count() >= 8
    });
    let full = playlist(s, "");
    assert!(full.contains("CAN-SKIP-UNTIL=6.0"), "{full}");
    let delta = playlist(s, "?_HLS_skip=YES");
    let skipped: usize = delta
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS="))
        .unwrap_or_else(|| panic!("no EXT-X-SKIP in {delta}"))
        .parse()
        .unwrap();
    assert!(skipped >= 1);
    let listed = |p: &str| p.matches("#EXTINF").count();
    // The two were fetched one after the other: at most one segment apart.
    assert!(
        listed(&full).abs_diff(listed(&delta) + skipped) <= 1,
        "{full}\n{delta}"
    );
}

#[test]
fn the_hinted_part_is_sent_frame_by_frame_while_it_is_written() {
    let shared = shared_ll();
    let s = &shared.server;
    // A blocking reload returns as soon as the hinted part is complete: the new hint has just
    // begun (one frame of five). On a loaded machine the request can come late and find its
    // part complete (one chunk): it is asked for again, with the next hint.
    for _ in 0..5 {
        let (msn, part) = hint(&playlist(s, ""));
        let p = playlist(s, &format!("?_HLS_msn={msn}&_HLS_part={part}"));
        let (msn, part) = hint(&p);
        let d = instance_dir(&p);
        let sent = streamed(s.addr, &format!("/live/ll/{d}{msn}.{part}.m4s"));
        // Held until complete, it would have come as one chunk; it came as its frames arrived.
        if sent.len() < 2 {
            continue;
        }
        let whole = s.get(&format!("/live/ll/{d}{msn}.{part}.m4s"), &[]);
        assert_eq!(whole.status, 200);
        assert!(whole.header("etag").is_some());
        assert_eq!(
            sent.concat(),
            whole.body,
            "streamed and complete part are the same bytes"
        );
        assert_eq!(
            &whole.body[4..8],
            b"prft",
            "a fragment starts with its producer reference time"
        );
        return;
    }
    panic!("no part of five came in two chunks or more");
}

/// `zerocast_live_llhls_part_delivery_seconds` (`_count`, `_sum`, and the buckets' counts).
fn delivery(s: &TestServer) -> (u64, f64, Vec<u64>) {
    let text = String::from_utf8(s.get("/metrics", &[]).body).unwrap();
    let name = "zerocast_live_llhls_part_delivery_seconds";
    let value = |suffix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}{suffix} ")))
            .unwrap_or_else(|| panic!("no {name}{suffix} in the metrics"))
            .to_string()
    };
    let buckets = text
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{name}_bucket{{")))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    let count = value("_count").parse().unwrap();
    (count, value("_sum").parse().unwrap(), buckets)
}

#[test]
fn the_frames_a_waiting_part_request_gets_are_timed_from_the_ingest_in_the_metrics() {
    let shared = shared_ll();
    let s = &shared.server;
    // A part that came in three writes or more (on a loaded machine a request can come late
    // and find most of its part there: it is asked for again, with the next hint).
    for _ in 0..5 {
        let (msn, part) = hint(&playlist(s, ""));
        let p = playlist(s, &format!("?_HLS_msn={msn}&_HLS_part={part}"));
        let (msn, part) = hint(&p);
        let (before, sum_before, _) = delivery(s);
        let d = instance_dir(&p);
        let sent = streamed(s.addr, &format!("/live/ll/{d}{msn}.{part}.m4s"));
        if sent.len() < 3 {
            continue;
        }
        // The chunks after the first two hold frames that came after the request (the first
        // holds the part's first frame, there before it; the second may hold one the ingest had
        // as the request came): each is timed once it is written.
        let (after, sum, buckets) = delivery(s);
        assert!(
            after - before >= sent.len() as u64 - 2,
            "{} timed of {} chunks",
            after - before,
            sent.len()
        );
        // On loopback, a frame is written within a part's duration of its arrival.
        let mean = (sum - sum_before) / (after - before) as f64;
        assert!(mean > 0.0 && mean < 0.2, "{mean} s on average");
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        assert_eq!(buckets.last(), Some(&after), "+Inf counts them all");
        return;
    }
    panic!("no part of five came in three writes or more");
}

#[test]
fn a_ts_source_gets_ll_hls_from_the_first_request_on() {
    let s = server(|_| {});
    let _publisher = ts_publisher(&s.url("/live/tsll"), None);
    wait_for(&s, "tsll", "a first HLS segment", |d| {
        d["hls_segments"].as_u64() >= Some(1)
    });
    // The first request starts the conversion and is answered once a first segment exists.
    let r = s.get("/live/tsll/ll.m3u8", &[]);
    assert_eq!(r.status, 200);
    let p = String::from_utf8(r.body).unwrap();
    assert!(
        p.contains("#EXTINF") && p.contains("#EXT-X-PRELOAD-HINT"),
        "{p}"
    );
    common::assert_plays_h264_aac(&s.url("/live/tsll/ll.m3u8"), "2");
}
