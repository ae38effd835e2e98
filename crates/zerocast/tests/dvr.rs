//! DVR (`/live/{name}.ts?t=-S`): a viewer starts at the keyframe that arrived about S seconds
//! ago and follows on to the live edge without a gap, from the ring, or from the recording before
//! it; a time past what the stream holds is a 416 that says how far back it goes.

mod common;
use common::live::{server, ts_publisher, wait_for_within, wait_until, Reading, Viewer, WAIT};
use common::recording::{recorded, recording_server};
use common::ts::{assert_continuous, assert_starts_with_psi_and_keyframe, cuts, keyframe_pts};
use media::ts::Cut;
use std::time::Duration;

/// The PTS (seconds) of the first keyframe in `ts`.
fn first_keyframe_pts(ts: &[u8]) -> f64 {
    cuts(ts)
        .into_iter()
        .find_map(|c| match c {
            Cut::Keyframe { pts: Some(p), .. } => Some(p.0 as f64 / 90_000.0),
            _ => None,
        })
        .expect("a keyframe with a PTS")
}

/// A live viewer and one asking for `?t=-{back}` of `/live/{name}.ts`: the rewound one starts
/// with PAT, PMT and a keyframe within a GOP of `back` seconds behind the live edge, and plays on
/// without a gap (continuity counters, keyframe PTS rising by at most a GOP).
#[track_caller]
fn assert_rewinds(addr: std::net::SocketAddr, name: &str, back: f64) {
    let live = Viewer::start(addr, &format!("/live/{name}.ts"), Reading::Fast);
    let rewound = Viewer::start(addr, &format!("/live/{name}.ts?t=-{back}"), Reading::Fast);
    // Enough to cover the rewound part and the move onto the ring.
    let keyframes = |n: usize| {
        move |b: &[u8]| {
            cuts(b)
                .iter()
                .filter(|c| matches!(c, Cut::Keyframe { .. }))
                .count()
                >= n
        }
    };
    live.wait_body("two keyframes live", keyframes(2));
    rewound.wait_body(
        "the rewound part and two keyframes more",
        keyframes(back as usize + 2),
    );
    let (_, live_ts, _) = live.response();
    let (resp, back_ts, _) = rewound.response();
    assert_eq!(resp.status, 200);
    let whole = |b: &[u8]| b[..b.len() / 188 * 188].to_vec();
    let (live_ts, back_ts) = (whole(&live_ts), whole(&back_ts));
    assert_starts_with_psi_and_keyframe(&back_ts);
    // The fixture has a keyframe every second: the DVR viewer starts within a GOP of `back`.
    let behind = first_keyframe_pts(&live_ts) - first_keyframe_pts(&back_ts);
    assert!(
        (back - 1.0..=back + 1.1).contains(&behind),
        "{behind:.2} s behind the live edge"
    );
    assert_continuous(&back_ts, "the DVR viewer");
    let pts = keyframe_pts(&back_ts);
    assert!(
        pts.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] < 1.5),
        "{pts:?}"
    );
}

#[test]
fn a_ts_viewer_asking_for_t_minus_5_starts_5_s_behind_the_live_edge_and_plays_on() {
    let s = server(|c| c.ring.max_age = Duration::from_secs(30));
    let _publisher = ts_publisher(&s.url("/live/dvr"), None);
    wait_for_within(&s, "dvr", "7 s of stream", WAIT, |d| {
        d["session_uptime_seconds"].as_f64() >= Some(7.0)
    });
    assert_rewinds(s.addr, "dvr", 5.0);
}

#[test]
fn a_ts_viewer_rewinds_past_the_ring_into_the_recording_and_plays_on_to_the_live_edge() {
    // A file every 3 s: 9 s back spans several.
    let r = recorded("kept", server::record::Format::Ts, 3);
    let s = &r.server;
    // The ring holds 2 s and the current GOP: 9 s back is only in the recording, and the API
    // says the window reaches that far.
    let doc = common::live::stream_doc(s, "kept").unwrap();
    let window = doc["dvr_window_seconds"].as_f64().unwrap();
    assert!(window >= 11.0, "{doc}");
    assert_rewinds(s.addr, "kept", 9.0);
}

#[test]
fn a_ts_viewer_rewinds_past_the_ring_into_an_fmp4_recording_and_plays_on() {
    let r = recorded("tscmaf", server::record::Format::Fmp4, 3);
    // 9 s back is only in the fMP4 recording (the ring holds 2 s): read back into TS on the
    // stream's timeline, continuous to the live edge.
    assert_rewinds(r.server.addr, "tscmaf", 9.0);
}

#[test]
fn a_dvr_viewer_reading_in_real_time_reads_on_in_the_recording_and_never_jumps() {
    let r = recorded("slow", server::record::Format::Ts, 600);
    let s = &r.server;
    // About the fixture's bitrate (94 kB/s): the 9 s from the recording take about 9 s to read,
    // and the keyframe where they end has left the 2 s ring long before.
    let reading = Reading::Slow {
        size: 24_000,
        pause: Duration::from_millis(250),
    };
    let back = Viewer::start(s.addr, "/live/slow.ts?t=-9", reading);
    let keyframes = |b: &[u8]| {
        cuts(b)
            .iter()
            .filter(|c| matches!(c, Cut::Keyframe { .. }))
            .count()
    };
    // 14 s at the reader's pace take about 13 s by design: the common 20 s wait leaves a loaded
    // machine too little.
    wait_until("14 s of keyframes", Duration::from_secs(60), || {
        back.body().is_some_and(|(b, _)| keyframes(&b) >= 14)
    });
    let (resp, ts, _) = back.response();
    assert_eq!(resp.status, 200);
    let ts = ts[..ts.len() / 188 * 188].to_vec();
    assert_continuous(&ts, "the slow DVR viewer");
    let pts = keyframe_pts(&ts);
    assert!(
        pts.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] < 1.5),
        "a jump: {pts:?}"
    );
}

#[test]
fn an_mp4_viewer_rewinds_past_the_ring_into_an_fmp4_recording_and_plays_on() {
    let r = recorded("cmaf", server::record::Format::Fmp4, 3);
    let s = &r.server;
    let live = Viewer::start(s.addr, "/live/cmaf.mp4", Reading::Fast);
    let back = Viewer::start(s.addr, "/live/cmaf.mp4?t=-9", Reading::Fast);
    // A fragment per video frame (25 a second) and per audio run: 11 s and more.
    live.wait_body("a second of fragments live", |b| moofs(b) >= 50);
    back.wait_body("11 s of fragments from 9 s back", |b| {
        moofs(b) >= 11 * 25 * 2
    });
    let dir = tempfile::tempdir().unwrap();
    let probe = |name: &str, body: Vec<u8>| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        common::ffprobe_frames(path.to_str().unwrap())
    };
    let (resp, body, _) = back.response();
    assert_eq!(resp.status, 200);
    let rewound = probe("back.mp4", body);
    let live = probe("live.mp4", live.response().1);
    assert!(rewound[0].1, "starts on a keyframe");
    let behind = live[0].0 - rewound[0].0;
    assert!(
        (8.0..=10.1).contains(&behind),
        "{behind:.2} s behind the live edge"
    );
    // Every frame from there on, through the move from the recording onto the ring.
    assert!(
        rewound.windows(2).all(|w| w[1].0 - w[0].0 < 0.05),
        "a gap: {:?}",
        rewound.windows(2).find(|w| w[1].0 - w[0].0 >= 0.05)
    );
    assert!(rewound.last().unwrap().0 - rewound[0].0 > 10.0);
}

#[test]
fn a_time_past_the_window_or_not_before_the_live_edge_is_refused_with_the_window() {
    let s = server(|c| c.ring.max_age = Duration::from_secs(30));
    let _publisher = ts_publisher(&s.url("/live/dvr"), None);
    wait_for_within(&s, "dvr", "2 s of stream", WAIT, |d| {
        d["session_uptime_seconds"].as_f64() >= Some(2.0)
    });
    let far = s.get("/live/dvr.ts?t=-1h", &[]);
    let text = String::from_utf8_lossy(&far.body);
    assert_eq!(far.status, 416, "{text}");
    assert!(
        text.contains("3600.0 s back is outside the DVR window"),
        "{text}"
    );
    // The window the refusal names is the one the API gives (the ring's, a few seconds).
    let doc = common::live::stream_doc(&s, "dvr").unwrap();
    let window = doc["dvr_window_seconds"].as_f64().unwrap();
    assert!((1.0..30.0).contains(&window), "{doc}");
    let named: f64 = text
        .split("holds its last ")
        .nth(1)
        .and_then(|w| w.split(" s").next())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no window in {text}"));
    assert!((named - window).abs() < 1.0, "{named} against {window}");
    // Before the stream began, by wall clock: outside the window too.
    let r = s.get("/live/dvr.ts?t=2026-11-25T20:15:00Z", &[]);
    assert_eq!(r.status, 416, "{}", String::from_utf8_lossy(&r.body));
    // Not before the live edge (from the stream's start, or ahead by wall clock), or no time.
    for bad in [
        "?t=01:00:00",
        "?t=2099-01-01T00:00:00Z",
        "?t=-banana",
        "?t=banana",
    ] {
        let r = s.get(&format!("/live/dvr.ts{bad}"), &[]);
        assert_eq!(r.status, 400, "{bad}: {}", String::from_utf8_lossy(&r.body));
    }
}

/// Video tags in an FLV body (after its 13-byte header; a tag cut at the end is not counted).
fn flv_video_tags(b: &[u8]) -> usize {
    let (mut at, mut n) = (13, 0);
    while let Some(h) = b.get(at..at + 11) {
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        at += 11 + size + 4;
        if at > b.len() {
            break;
        }
        n += usize::from(h[0] == 9);
    }
    n
}

/// The packet times (seconds) of one stream of `file` (`v:0`, `a:0`), in file order.
fn packet_times(file: &str, stream: &str) -> Vec<f64> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream, "-show_entries"])
        .args(["packet=pts_time", "-of", "csv=p=0", file])
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// Fragments in an fMP4 body so far: one per video frame.
fn moofs(b: &[u8]) -> usize {
    b.windows(4).filter(|w| w == b"moof").count()
}

/// A live `.flv` viewer and one asking for `?t=-{back}`: the rewound one starts at a keyframe
/// about `back` s behind the live viewer's first, and every video frame and audio frame follows
/// with no gap and no repeat, for `secs` seconds: through its own conversion of the TS (from
/// the recording or the TS ring) and on into the FLV ring.
#[track_caller]
fn assert_flv_rewinds(s: &common::TestServer, name: &str, back: f64, secs: f64) {
    assert_converted_rewinds(s, name, "flv", back, secs);
}

/// [`assert_flv_rewinds`] for the viewer's format `ext` (`flv`, or `mp4`: TS converted to
/// fragments, then the fMP4 ring); its conversion ends in the ring (the stream counts the join).
#[track_caller]
fn assert_converted_rewinds(s: &common::TestServer, name: &str, ext: &str, back: f64, secs: f64) {
    let addr = s.addr;
    let live = Viewer::start(addr, &format!("/live/{name}.{ext}"), Reading::Fast);
    let rewound = Viewer::start(
        addr,
        &format!("/live/{name}.{ext}?t=-{back}"),
        Reading::Fast,
    );
    let frames_in = if ext == "flv" { flv_video_tags } else { moofs };
    live.wait_body("a second of video live", |b| frames_in(b) >= 25);
    // 25 frames a second.
    let frames = (secs * 25.0) as usize;
    rewound.wait_body("the rewound part and on", |b| frames_in(b) >= frames);
    wait_for_within(s, name, "the conversion to join the ring", WAIT, |d| {
        d["dvr_joins"].as_u64() >= Some(1) && d["dvr_converting"] == 0
    });
    let dir = tempfile::tempdir().unwrap();
    let save = |file: &str, v: &Viewer| {
        let (resp, body, _) = v.response();
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&body));
        let path = dir.path().join(file);
        std::fs::write(&path, body).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (live, back_file) = (
        save(&format!("live.{ext}"), &live),
        save(&format!("back.{ext}"), &rewound),
    );
    let rewound = common::ffprobe_frames(&back_file);
    let live = common::ffprobe_frames(&live);
    assert!(rewound[0].1, "starts on a keyframe");
    // The rewound viewer starts at the keyframe at or before `back` (a GOP is 1 s); the live one
    // at the FLV output's newest keyframe, up to a GOP after the request when the output begins
    // with these viewers.
    let behind = live[0].0 - rewound[0].0;
    assert!(
        (back - 1.0..=back + 2.1).contains(&behind),
        "{behind:.2} s behind the live edge"
    );
    // 25 frames a second, AAC at 48 kHz (21.3 ms a frame): one frame missing is a gap.
    for (stream, most) in [("v:0", 0.05), ("a:0", 0.032)] {
        let t = packet_times(&back_file, stream);
        assert!(t.len() > 10, "{stream}: {t:?}");
        let bad = t.windows(2).find(|w| !(w[1] > w[0] && w[1] - w[0] < most));
        assert!(bad.is_none(), "{stream}: a gap or a repeat at {bad:?}");
        assert!(t[t.len() - 1] - t[0] > secs - 1.0, "{stream}: {t:?}");
    }
}

#[test]
fn an_flv_viewer_rewinds_past_the_ring_into_a_ts_recording_and_plays_on_into_the_flv_ring() {
    let r = recorded("flvback", server::record::Format::Ts, 3);
    // Nobody watched `.flv` before: the FLV output begins with these viewers; 9 s back is only
    // in the recording (the rings hold 2 s).
    assert_flv_rewinds(&r.server, "flvback", 9.0, 12.0);
}

#[test]
fn an_flv_viewer_of_a_ts_source_rewinds_before_its_own_output_began_from_the_ts_ring() {
    let s = server(|c| c.ring.max_age = Duration::from_secs(30));
    let _publisher = ts_publisher(&s.url("/live/flvring"), None);
    wait_for_within(&s, "flvring", "7 s of stream", WAIT, |d| {
        d["session_uptime_seconds"].as_f64() >= Some(7.0)
    });
    assert_flv_rewinds(&s, "flvring", 5.0, 7.0);
}

#[test]
fn an_flv_viewer_of_an_rtmp_source_rewinds_into_its_ts_recording_and_plays_on() {
    let (s, _library) = recording_server("rtmpback", server::record::Format::Ts, 3, |_| {});
    let _publisher = common::live::rtmp_publisher(
        &s,
        "/live/rtmpback",
        &common::fixtures::long_live_ts(),
        &["-re"],
    );
    wait_for_within(&s, "rtmpback", "12 s of stream", WAIT, |d| {
        d["session_uptime_seconds"].as_f64() >= Some(12.0)
    });
    assert_flv_rewinds(&s, "rtmpback", 9.0, 12.0);
}

#[test]
fn an_flv_viewer_rewinds_past_the_ring_into_an_fmp4_recording_and_plays_on_into_the_flv_ring() {
    let r = recorded("flvcmaf", server::record::Format::Fmp4, 3);
    // 9 s back is only in the fMP4 recording (the rings hold 2 s): its fragments read back into
    // FLV tags, then the fMP4 ring's, until the FLV ring goes on.
    assert_flv_rewinds(&r.server, "flvcmaf", 9.0, 12.0);
}

#[test]
fn an_flv_viewer_of_an_rtmp_source_rewinds_into_its_fmp4_recording_and_plays_on() {
    let (s, _library) = recording_server("rtmpcmaf", server::record::Format::Fmp4, 3, |_| {});
    let _publisher = common::live::rtmp_publisher(
        &s,
        "/live/rtmpcmaf",
        &common::fixtures::long_live_ts(),
        &["-re"],
    );
    wait_for_within(&s, "rtmpcmaf", "12 s of stream", WAIT, |d| {
        d["session_uptime_seconds"].as_f64() >= Some(12.0)
    });
    assert_flv_rewinds(&s, "rtmpcmaf", 9.0, 12.0);
}

#[test]
fn an_mp4_viewer_rewinds_past_the_ring_into_a_ts_recording_and_plays_on_into_the_mp4_ring() {
    let r = recorded("mp4back", server::record::Format::Ts, 3);
    // Nobody watched `.mp4` before: the fMP4 output begins with these viewers; 9 s back is only
    // in the TS recording (the rings hold 2 s).
    assert_converted_rewinds(&r.server, "mp4back", "mp4", 9.0, 12.0);
}

#[test]
fn an_mp4_viewer_of_a_ts_source_rewinds_before_its_own_output_began_from_the_ts_ring() {
    let s = server(|c| c.ring.max_age = Duration::from_secs(30));
    let _publisher = ts_publisher(&s.url("/live/mp4ring"), None);
    wait_for_within(&s, "mp4ring", "7 s of stream", WAIT, |d| {
        d["session_uptime_seconds"].as_f64() >= Some(7.0)
    });
    assert_converted_rewinds(&s, "mp4ring", "mp4", 5.0, 7.0);
}

#[test]
fn an_mp4_viewer_of_an_rtmp_source_rewinds_into_its_ts_recording_and_plays_on() {
    let (s, _library) = recording_server("rtmpmp4", server::record::Format::Ts, 3, |_| {});
    let _publisher = common::live::rtmp_publisher(
        &s,
        "/live/rtmpmp4",
        &common::fixtures::long_live_ts(),
        &["-re"],
    );
    wait_for_within(&s, "rtmpmp4", "12 s of stream", WAIT, |d| {
        d["session_uptime_seconds"].as_f64() >= Some(12.0)
    });
    assert_converted_rewinds(&s, "rtmpmp4", "mp4", 9.0, 12.0);
}

#[test]
fn an_http2_mp4_viewer_rewinds_before_its_own_output_began_and_plays_on() {
    // The ring holds 10 s; nobody watched `.mp4` before, so its output begins with this viewer
    // and 5 s back is only in the TS ring: converted, over HTTP/2 (the body's frames).
    let (s, ca) = common::tls::https_server(|_| {});
    let _publisher = ts_publisher(&s.url("/live/h2back"), None);
    wait_for_within(&s, "h2back", "7 s of stream", WAIT, |d| {
        d["session_uptime_seconds"].as_f64() >= Some(7.0)
    });
    let (body, status) = common::tls::curl(
        s.https[0],
        &ca,
        "/live/h2back.mp4?t=-5",
        &["--http2", "--max-time", "4"],
    );
    assert_eq!(status, "2 200");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("back.mp4");
    std::fs::write(&file, &body).unwrap();
    let file = file.to_str().unwrap();
    assert!(common::ffprobe_frames(file)[0].1, "starts on a keyframe");
    let t = packet_times(file, "v:0");
    let bad = t.windows(2).find(|w| !(w[1] > w[0] && w[1] - w[0] < 0.05));
    assert!(bad.is_none(), "a gap or a repeat at {bad:?}");
    // About 5 s at once, then 4 s as they come: more than the 4 s an output that began with
    // this viewer holds.
    let span = t[t.len() - 1] - t[0];
    assert!(span > 6.5, "{span:.2} s");
}

/// A time from the stream's start that counts frames (`HH:MM:SS:FF`) is read at the stream's
/// frame rate as measured (an RTMP source has an fMP4 output that measures it): two such times
/// 4 s apart start two viewers at keyframes about 4 s apart. A TS source nobody watches as
/// fMP4 has no measured rate: the answer says to give seconds.
#[test]
fn a_time_counting_frames_is_read_at_the_streams_measured_frame_rate() {
    let s = server(|c| c.ring.max_age = Duration::from_secs(30));
    let input = common::fixtures::long_live_ts();
    let _rtmp = common::live::rtmp_publisher(&s, "/live/framed", &input, &["-re"]);
    wait_for_within(&s, "framed", "7 s of stream", WAIT, |d| {
        d["session_uptime_seconds"].as_f64() >= Some(7.0)
    });
    let first_pts = |t: &str| {
        let v = Viewer::start(s.addr, &format!("/live/framed.ts?t={t}"), Reading::Fast);
        v.wait_body("a keyframe", |b| {
            cuts(b).iter().any(|c| matches!(c, Cut::Keyframe { .. }))
        });
        let (resp, body, _) = v.response();
        assert_eq!(resp.status, 200, "{t}");
        first_keyframe_pts(&body[..body.len() / 188 * 188])
    };
    let apart = first_pts("00:00:05:12") - first_pts("00:00:01:12");
    assert!((3.0..=5.0).contains(&apart), "{apart:.2} s apart");

    let _ts = ts_publisher(&s.url("/live/unframed"), None);
    wait_for_within(&s, "unframed", "2 s of stream", WAIT, |d| {
        d["session_uptime_seconds"].as_f64() >= Some(2.0)
    });
    let r = s.get("/live/unframed.ts?t=00:00:01:12", &[]);
    assert_eq!(r.status, 400);
    let body = String::from_utf8(r.body).unwrap();
    assert!(
        body.contains("frame rate") && body.contains("seconds"),
        "{body}"
    );
}
