//! DVR windows in a recorded stream's live playlists (`hls_dvr_secs`): the segments that left
//! memory are listed while its recording holds them and served from it, the same bytes under
//! the same ETags, and play on into the segments in memory: TS HLS of a stream recorded as TS,
//! LL-HLS and LL-DASH of one recorded as fMP4.

mod common;
use common::live::{ffmpeg_publish, instance_dir, wait_for_within, WAIT};
use common::recording::{recorded_with, recording_server};
use common::ts::{assert_starts_with_psi_and_keyframe, keyframe_pts};
use std::time::Duration;

/// LL-HLS segments of 1 s, 3 listed and 1 spare in memory, and `dvr` remembered for a window
/// from the recording.
fn ll_dvr(dvr: usize) -> impl FnOnce(&mut server::Config) {
    move |c| {
        c.live.ll_hls.min_segment = Duration::from_secs(1);
        c.live.ll_hls.window = 3;
        c.live.ll_hls.spare = 1;
        c.live.ll_hls.dvr = dvr;
    }
}

/// ffmpeg publishes the long fixture to `name` for `secs` seconds, goes away, and publishes it
/// again within the grace: the second publisher.
fn publish_and_come_back(s: &common::TestServer, name: &str, secs: f64) -> common::live::Proc {
    let url = s.url(&format!("/live/{name}"));
    let publish = || {
        let input = common::fixtures::long_live_ts();
        ffmpeg_publish(&input, &["-re"], "mpegts", &[], &url)
    };
    let first = publish();
    wait_for_within(s, name, "the first session", WAIT, |d| {
        d["session_uptime_seconds"].as_f64() >= Some(secs)
    });
    drop(first);
    wait_for_within(s, name, "the publisher gone", WAIT, |d| {
        d["state"] == "reconnecting"
    });
    publish()
}

#[test]
fn a_recorded_streams_hls_playlist_lists_segments_from_the_recording_that_play_on_into_memory() {
    // Segments of 1 s; 3 listed and 1 spare in memory; 30 s more from the recording.
    let r = recorded_with("event", server::record::Format::Ts, 4, |c| {
        c.live.hls.min_segment = Duration::from_secs(1);
        c.live.hls.window = 3;
        c.live.hls.spare = 1;
        c.live.hls.dvr = 30;
    });
    let s = &r.server;
    let p = String::from_utf8(s.get("/live/event/index.m3u8", &[]).body).unwrap();
    let segs: Vec<&str> = p.lines().filter(|l| l.ends_with(".ts")).collect();
    assert!(segs.len() >= 9, "a DVR window beyond the 4 in memory: {p}");
    assert_eq!(segs[0], format!("{}0.ts", instance_dir(&p)), "{p}");
    // The first segments (long gone from memory) and on into memory: one continuous stream.
    let mut ts = Vec::new();
    for seg in &segs[..segs.len() - 1] {
        let r = s.get(&format!("/live/event/{seg}"), &[]);
        assert_eq!(r.status, 200, "{seg}");
        assert_starts_with_psi_and_keyframe(&r.body);
        // Each segment repeats the PAT and PMT it starts with: check the media between.
        ts.extend_from_slice(&r.body[188 * 2..]);
    }
    let pts = keyframe_pts(&ts);
    assert!(pts.len() >= 8, "8 s and more: {pts:?}");
    assert!(
        pts.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] < 1.5),
        "a gap between segments: {pts:?}"
    );
}

#[test]
fn an_fmp4_recorded_streams_ll_hls_playlist_lists_segments_from_the_recording_that_play_on() {
    // LL-HLS segments of 1 s; 3 listed and 1 spare in memory; 30 s more from the recording.
    let r = recorded_with("llevent", server::record::Format::Fmp4, 4, ll_dvr(30));
    let s = &r.server;
    let p = String::from_utf8(s.get("/live/llevent/ll.m3u8", &[]).body).unwrap();
    let segs: Vec<&str> = p.lines().filter(|l| l.ends_with(".m4s")).collect();
    assert!(segs.len() >= 9, "a DVR window beyond the 4 in memory: {p}");
    let d = instance_dir(&p);
    assert!(
        p.contains(&format!("#EXT-X-MAP:URI=\"{d}init0.mp4\"\n")),
        "{p}"
    );
    // The init segment, the first segments (long gone from memory) and on into memory: one
    // stream that ffprobe reads from a keyframe on, every frame.
    let mut mp4 = s.get(&format!("/live/llevent/{d}init0.mp4"), &[]).body;
    for seg in &segs {
        let r = s.get(&format!("/live/llevent/{seg}"), &[]);
        assert_eq!(r.status, 200, "{seg}");
        mp4.extend_from_slice(&r.body);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dvr.mp4");
    std::fs::write(&file, &mp4).unwrap();
    let frames = common::ffprobe_frames(file.to_str().unwrap());
    assert!(frames[0].1, "starts on a keyframe");
    assert!(
        frames.windows(2).all(|w| w[1].0 - w[0].0 < 0.05),
        "a gap: {:?}",
        frames.windows(2).find(|w| w[1].0 - w[0].0 >= 0.05)
    );
    assert!(frames.last().unwrap().0 - frames[0].0 > 8.0);
}

#[test]
fn ll_hls_and_dash_segments_that_left_memory_are_the_same_bytes_under_the_same_etags() {
    let r = recorded_with("llsame", server::record::Format::Fmp4, 4, ll_dvr(30));
    let s = &r.server;
    let p = String::from_utf8(s.get("/live/llsame/ll.m3u8", &[]).body).unwrap();
    let newest = p.lines().rfind(|l| l.ends_with(".m4s")).unwrap();
    let d = instance_dir(&p);
    let msn: u64 = newest
        .trim_start_matches(&d)
        .trim_end_matches(".m4s")
        .parse()
        .unwrap();
    // The LL-HLS segment (both tracks), and each track's own DASH segment of the same frames.
    let urls = [
        format!("/live/llsame/{newest}"),
        format!("/live/llsame/{d}dash/v{msn}.m4s"),
        format!("/live/llsame/{d}dash/a{msn}.m4s"),
    ];
    let before: Vec<_> = urls.iter().map(|u| s.get(u, &[])).collect();
    for (u, r) in urls.iter().zip(&before) {
        assert_eq!(r.status, 200, "{u}");
    }
    // Blocking reloads, one segment at a time, until it has left memory (4 more kept after it
    // and the open one).
    for next in msn + 1..=msn + 6 {
        let r = s.get(&format!("/live/llsame/ll.m3u8?_HLS_msn={next}"), &[]);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let p = String::from_utf8(s.get("/live/llsame/ll.m3u8", &[]).body).unwrap();
    assert!(p.contains(&format!("\n{newest}\n")), "still listed: {p}");
    let mpd = String::from_utf8(s.get("/live/llsame/manifest.mpd", &[]).body).unwrap();
    let start: u64 = mpd
        .split("startNumber=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(start <= msn, "still in the manifest: {mpd}");
    for (u, before) in urls.iter().zip(&before) {
        let after = s.get(u, &[]);
        assert_eq!(after.status, 200, "{u}");
        assert_eq!(after.header("etag"), before.header("etag"), "{u}");
        assert!(
            after.body == before.body,
            "{u}: the same bytes from the recording"
        );
    }
    // And a range of one, as of any segment.
    let part = s.get(&urls[0], &[("range", "bytes=100-1099")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, before[0].body[100..1100]);
}

#[test]
fn the_ll_hls_dvr_window_reaches_back_across_a_publisher_reconnect() {
    let (s, _library) = recording_server("rejoin", server::record::Format::Fmp4, 4, ll_dvr(60));
    let _second = publish_and_come_back(&s, "rejoin", 8.0);
    wait_for_within(&s, "rejoin", "8 s of the second session", WAIT, |d| {
        d["sessions"] == 2 && d["session_uptime_seconds"].as_f64() >= Some(8.0)
    });
    // One playlist from the first session's segments, long gone from memory, across the break
    // and on into the second's.
    let p = String::from_utf8(s.get("/live/rejoin/ll.m3u8", &[]).body).unwrap();
    let (before, after) = p.split_once("#EXT-X-DISCONTINUITY\n").expect(&p);
    let segments = |part: &str| -> Vec<String> {
        part.lines()
            .filter(|l| l.ends_with(".m4s"))
            .map(str::to_string)
            .collect()
    };
    let (before, after) = (segments(before), segments(after));
    assert!(before.len() >= 5, "the first session's segments: {p}");
    assert!(after.len() >= 5, "the second session's: {p}");
    assert!(p.contains("#EXT-X-DISCONTINUITY-SEQUENCE:0\n"), "{p}");
    // Each side plays from a keyframe with every frame, with the init segment it names.
    let maps: Vec<&str> = p
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .map(|l| l.trim_end_matches('"'))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for (side, segs) in [(0, &before), (1, &after)] {
        let init = maps[side.min(maps.len() - 1)];
        let mut mp4 = s.get(&format!("/live/rejoin/{init}"), &[]).body;
        for seg in segs.iter() {
            let r = s.get(&format!("/live/rejoin/{seg}"), &[]);
            assert_eq!(r.status, 200, "{seg}: {}", String::from_utf8_lossy(&r.body));
            mp4.extend_from_slice(&r.body);
        }
        let file = dir.path().join(format!("side{side}.mp4"));
        std::fs::write(&file, &mp4).unwrap();
        let frames = common::ffprobe_frames(file.to_str().unwrap());
        assert!(frames[0].1, "side {side} starts on a keyframe");
        assert!(
            frames.windows(2).all(|w| w[1].0 - w[0].0 < 0.05),
            "side {side}: a gap at {:?}",
            frames.windows(2).find(|w| w[1].0 - w[0].0 >= 0.05)
        );
        assert!(frames.last().unwrap().0 - frames[0].0 > 4.0, "side {side}");
    }
}

/// A TS-recorded stream's playlist reaches back across a publisher's reconnect, and the
/// segment the reconnect closed is, from the recording, the bytes it was served as from memory
/// (not with the second session's tables before its keyframe, which the recording holds next).
#[test]
fn the_ts_hls_dvr_window_reaches_back_across_a_reconnect_with_the_same_bytes() {
    let (s, _library) = recording_server("tsrejoin", server::record::Format::Ts, 4, |c| {
        c.live.hls.min_segment = Duration::from_secs(1);
        c.live.hls.window = 3;
        c.live.hls.spare = 1;
        c.live.hls.dvr = 60;
    });
    let _second = publish_and_come_back(&s, "tsrejoin", 6.0);
    let playlist = || String::from_utf8(s.get("/live/tsrejoin/index.m3u8", &[]).body).unwrap();
    let last_before = |p: &str| -> String {
        let (before, _) = p.split_once("#EXT-X-DISCONTINUITY\n").expect(p);
        before
            .lines()
            .rfind(|l| l.ends_with(".ts"))
            .expect(p)
            .to_string()
    };
    // The segment the reconnect closed, while it is in memory.
    common::live::wait_until("a segment of the second session", WAIT, || {
        playlist().contains("#EXT-X-DISCONTINUITY\n#EXTINF")
    });
    let closed = last_before(&playlist());
    let in_memory = s.get(&format!("/live/tsrejoin/{closed}"), &[]);
    assert_eq!(in_memory.status, 200);
    wait_for_within(&s, "tsrejoin", "6 s of the second session", WAIT, |d| {
        d["sessions"] == 2 && d["session_uptime_seconds"].as_f64() >= Some(6.0)
    });
    // Long gone from memory (4 segments of 1 s are kept): listed from the recording.
    let p = playlist();
    assert_eq!(last_before(&p), closed, "{p}");
    let (before, _) = p.split_once("#EXT-X-DISCONTINUITY\n").unwrap();
    assert!(
        before.lines().filter(|l| l.ends_with(".ts")).count() >= 4,
        "{p}"
    );
    let recorded = s.get(&format!("/live/tsrejoin/{closed}"), &[]);
    assert_eq!(recorded.status, 200);
    assert_eq!(recorded.header("etag"), in_memory.header("etag"));
    assert!(
        recorded.body == in_memory.body,
        "{} bytes from the recording, {} from memory",
        recorded.body.len(),
        in_memory.body.len()
    );
}

#[test]
fn an_ll_hls_dvr_window_forms_for_a_player_that_reloads_from_the_start() {
    let (s, _library) = recording_server("early", server::record::Format::Fmp4, 4, ll_dvr(30));
    let input = common::fixtures::long_live_ts();
    let _publisher = ffmpeg_publish(&input, &["-re"], "mpegts", &[], &s.url("/live/early"));
    wait_for_within(&s, "early", "the stream", WAIT, |d| d["state"] == "live");
    // A player at the live edge from the first segment on: a blocking reload per segment.
    let (mut last_seq, mut p) = (0, String::new());
    for msn in 0..12 {
        let r = s.get(&format!("/live/early/ll.m3u8?_HLS_msn={msn}"), &[]);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        p = String::from_utf8(r.body).unwrap();
        let seq: u64 = p
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!(
            seq >= last_seq,
            "the media sequence went back: {seq} after {last_seq}"
        );
        last_seq = seq;
    }
    // 12 segments in: those that left memory are listed from the recording, back to where this
    // player's first playlists began.
    let listed = p.lines().filter(|l| l.ends_with(".m4s")).count();
    assert!(listed >= 9, "a DVR window beyond the 4 in memory: {p}");
    assert!(last_seq <= 2, "{p}");
}
