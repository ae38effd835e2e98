//! Seek indexes and `/api/videos/{id}/seek` checked against ffprobe's view of the same files.

mod common;
use common::*;
use std::path::Path;

/// Extra fixtures made at test time from the demo clips: a TS whose clock starts at 95,440 s and
/// wraps past 2^33 ticks a few seconds in, and a WebM without Cues (live muxing).
fn extra_fixtures(dir: &Path) {
    let d = demo_dir();
    let ts = d.join("clip.ts");
    let webm = d.join("vp9-opus.webm");
    ffmpeg(&[
        "-i",
        ts.to_str().unwrap(),
        "-c",
        "copy",
        "-output_ts_offset",
        "95440",
        "-f",
        "mpegts",
        dir.join("wrap.ts").to_str().unwrap(),
    ]);
    ffmpeg(&[
        "-i",
        webm.to_str().unwrap(),
        "-c",
        "copy",
        "-f",
        "webm",
        "-live",
        "1",
        dir.join("nocues.webm").to_str().unwrap(),
    ]);
    // Fragmented with a global sidx in front of the fragments.
    let mp4 = d.join("faststart.mp4");
    ffmpeg(&[
        "-i",
        mp4.to_str().unwrap(),
        "-c",
        "copy",
        "-movflags",
        "frag_keyframe+empty_moov+default_base_moof+global_sidx",
        dir.join("sidx.mp4").to_str().unwrap(),
    ]);
}

const EXTRA: [&str; 3] = ["wrap.ts", "nocues.webm", "sidx.mp4"];

fn check_index_against_ffprobe(path: &Path) {
    let data = std::fs::read(path).unwrap();
    let info = media::index(&data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let oracle = ffprobe_keyframes(path.to_str().unwrap());
    let ours: Vec<(f64, u64)> = info
        .keyframes
        .iter()
        .map(|k| (k.time.as_secs_f64(), k.offset))
        .collect();
    assert_eq!(
        ours.len(),
        oracle.len(),
        "{}: keyframe count\nours {ours:?}\nffprobe {oracle:?}",
        path.display()
    );
    let webm = path.extension().is_some_and(|e| e == "webm");
    for (i, ((t, off), (ft, fpos))) in ours.iter().zip(&oracle).enumerate() {
        assert!(
            (t - ft).abs() < 0.0015,
            "{} keyframe {i}: time {t} vs ffprobe {ft}",
            path.display()
        );
        if webm {
            // Our offset is the Cluster holding the keyframe block that ffprobe points at.
            let next = ours.get(i + 1).map_or(u64::MAX, |n| n.1);
            assert!(
                *off <= *fpos && *fpos < next,
                "{} keyframe {i}: cluster {off}, block {fpos}",
                path.display()
            );
            assert_eq!(
                &data[*off as usize..*off as usize + 4],
                &[0x1f, 0x43, 0xb6, 0x75],
                "a Cluster ID"
            );
        } else {
            assert_eq!(
                off,
                fpos,
                "{} keyframe {i} at {t}s: byte position",
                path.display()
            );
        }
    }
    let dur = info.duration.as_secs_f64();
    let last = oracle.last().unwrap().0;
    assert!(
        dur > last && dur < last + 3.0,
        "{}: duration {dur}",
        path.display()
    );
}

#[test]
fn indexes_match_ffprobe_for_every_container() {
    let dir = tempfile::tempdir().unwrap();
    extra_fixtures(dir.path());
    for name in DEMO {
        check_index_against_ffprobe(&demo_dir().join(name));
    }
    for name in EXTRA {
        check_index_against_ffprobe(&dir.path().join(name));
    }
    let sidx = std::fs::read(dir.path().join("sidx.mp4")).unwrap();
    assert!(
        sidx.windows(4).any(|w| w == b"sidx"),
        "the fixture has a sidx box"
    );
    // The wrap fixture really crosses 2^33 ticks and still starts at 0.
    let info = media::index(&std::fs::read(dir.path().join("wrap.ts")).unwrap()).unwrap();
    assert_eq!(info.keyframes[0].time.as_secs_f64(), 0.0);
    assert!((info.duration.as_secs_f64() - 8.0).abs() < 0.1);
}

#[test]
fn seek_answers_agree_with_ffprobe_at_random_times() {
    let dir = demo_copy();
    extra_fixtures(dir.path());
    let srv = TestServer::start(library(dir.path()));
    let mut rng = fastrand::Rng::with_seed(42);
    for name in DEMO.iter().copied().chain(EXTRA) {
        let oracle = ffprobe_keyframes(dir.path().join(name).to_str().unwrap());
        let info = srv.get(&format!("/api/videos/{name}"), &[]).json();
        let duration = info["duration_seconds"].as_f64().unwrap();
        assert_eq!(info["keyframes"].as_u64().unwrap() as usize, oracle.len());
        for _ in 0..25 {
            let t = rng.f64() * duration;
            if oracle.iter().any(|k| (k.0 - t).abs() < 0.005) {
                continue; // too close to a keyframe to judge with ffprobe's rounded times
            }
            let expect = oracle.iter().rev().find(|k| k.0 <= t).unwrap_or(&oracle[0]);
            let r = srv.get(&format!("/api/videos/{name}/seek?t={t:.4}"), &[]);
            assert_eq!(
                r.status,
                200,
                "{name} t={t}: {}",
                String::from_utf8_lossy(&r.body)
            );
            let j = r.json();
            assert!(
                (j["keyframe"]["seconds"].as_f64().unwrap() - expect.0).abs() < 0.0015,
                "{name} t={t}: {j}"
            );
            assert!((j["requested"]["seconds"].as_f64().unwrap() - t).abs() < 0.0001);
            if !name.ends_with(".webm") {
                assert_eq!(j["offset"].as_u64().unwrap(), expect.1, "{name} t={t}");
            }
        }
    }
}

fn ntsc_seek(srv: &TestServer, t: &str) -> Resp {
    srv.get(&format!("/api/videos/ntsc-moov-at-end.mp4/seek?t={t}"), &[])
}

#[test]
fn ntsc_drop_frame_timecodes_land_on_the_right_keyframe() {
    let srv = TestServer::demo();
    let seek = |t: &str| ntsc_seek(&srv, t);
    let info = srv.get("/api/videos/ntsc-moov-at-end.mp4", &[]).json();
    assert_eq!(info["frame_rate"], "30000/1001");
    // The clip has B-frames: ffprobe shows decode order differing from presentation order.
    let packets = ffprobe_video_packets(demo_dir().join("ntsc-moov-at-end.mp4").to_str().unwrap());
    assert!(
        packets.windows(2).any(|w| w[1].0 < w[0].0),
        "expected B-frames (pts out of order)"
    );

    // Keyframes every 60 frames. Drop-frame 00:01:00;02 is frame 1800 = 60.06 s: a keyframe.
    let j = seek("00:01:00;02").json();
    assert_eq!(j["keyframe"]["timecode"], "00:01:00;02");
    assert!((j["keyframe"]["seconds"].as_f64().unwrap() - 60.06).abs() < 1e-9);
    // Non-drop 00:01:00:00 is frame 1800 as well.
    assert_eq!(seek("00:01:00:00").json()["offset"], j["offset"]);
    // One frame earlier (frame 1799) belongs to the previous GOP.
    let before = seek("00:00:59;29").json();
    assert!((before["keyframe"]["seconds"].as_f64().unwrap() - 58.058).abs() < 1e-6);
    // Other forms land on the same keyframe.
    for t in ["60.06", "00:01:00.060", "1m0.06s"] {
        assert_eq!(seek(t).json()["offset"], j["offset"], "{t}");
    }
}

#[test]
fn drop_frame_labels_that_do_not_exist_are_400() {
    let srv = TestServer::demo();
    // Frames ;00 and ;01 do not exist at minute 1.
    let bad = ntsc_seek(&srv, "00:01:00;00");
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"]
        .as_str()
        .unwrap()
        .contains("do not exist"));
}

#[test]
fn a_time_past_the_end_is_400() {
    let srv = TestServer::demo();
    let past = ntsc_seek(&srv, "00:02:00;02");
    assert_eq!(past.status, 400);
    assert!(past.json()["error"]
        .as_str()
        .unwrap()
        .contains("past the end"));
}

#[test]
fn malformed_or_missing_times_are_400_saying_which() {
    let srv = TestServer::demo();
    for (t, why) in [
        ("00:00:00:30", "frame 30 out of range"),
        ("banana", "unknown unit"),
        ("1:2:3:4:5", "expected"),
    ] {
        let r = ntsc_seek(&srv, t);
        assert_eq!(r.status, 400, "{t}");
        let e = r.json()["error"].as_str().unwrap().to_string();
        assert!(e.contains(why), "{t}: {e}");
    }
    assert_eq!(
        srv.get("/api/videos/ntsc-moov-at-end.mp4/seek", &[]).status,
        400
    );
}

#[test]
fn seeking_in_an_unknown_title_is_404() {
    let srv = TestServer::demo();
    assert_eq!(srv.get("/api/videos/nope.mp4/seek?t=1", &[]).status, 404);
}

#[test]
fn api_describes_titles() {
    let srv = TestServer::demo();
    let list = srv.get("/api/videos", &[]).json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), DEMO.len());
    let by_id = |id: &str| list.iter().find(|t| t["id"] == id).unwrap().clone();
    let mp4 = by_id("faststart.mp4");
    assert_eq!(mp4["container"], "mp4");
    assert_eq!(mp4["video_codec"], "h264");
    assert_eq!(mp4["audio_codec"], "aac");
    assert_eq!(
        (mp4["width"].as_u64(), mp4["height"].as_u64()),
        (Some(320), Some(180))
    );
    assert_eq!(mp4["frame_rate"], "24/1");
    assert_eq!(mp4["cached_in_memory"], true);
    assert!((mp4["duration_seconds"].as_f64().unwrap() - 8.0).abs() < 0.05);
    let webm = by_id("vp9-opus.webm");
    assert_eq!(
        (webm["video_codec"].as_str(), webm["audio_codec"].as_str()),
        (Some("vp9"), Some("opus"))
    );
    let ts = by_id("clip.ts");
    assert_eq!(
        (ts["container"].as_str(), ts["width"].as_u64()),
        (Some("mpegts"), Some(320))
    );
    assert_eq!(srv.get("/api/videos/nope", &[]).status, 404);
}
