//! Clips (`/videos/{id}?start=T&end=T`): files of the title's own container that ffprobe,
//! ffmpeg, Chromium and the CLI open, served as entities (Range, HEAD, validators).

mod common;
use common::browser::{beacon_server, Chromium};
use common::*;
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// (title, start, end, GOP length in seconds) for every container that is clipped.
const CASES: [(&str, &str, &str, f64); 5] = [
    ("faststart.mp4", "3", "5", 2.0),
    ("ntsc-moov-at-end.mp4", "00:00:30;00", "00:00:40;00", 2.002),
    ("fragmented.mp4", "2.5", "00:00:05:12", 2.0),
    ("clip.ts", "1s", "5.5", 2.0),
    ("vp9-opus.webm", "2.5", "3.5", 2.0),
];

fn seconds(t: &str) -> f64 {
    match t {
        "00:00:30;00" => 30.0,
        "00:00:40;00" => 40.0,
        "00:00:05:12" => 5.5,
        "1s" => 1.0,
        t => t.parse().unwrap(),
    }
}

/// ffprobe's duration of a file (the container's, else the longest stream's).
fn duration(path: &str) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of"])
        .args(["csv=p=0", path])
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{path}: no duration: {:?}", out))
}

fn clip_path(name: &str, start: &str, end: &str) -> String {
    format!("/videos/{name}?start={start}&end={end}")
}

#[test]
fn every_clip_decodes_and_lasts_its_span_within_a_gop_starting_at_the_keyframe_seek_names() {
    let srv = TestServer::demo();
    let dir = tempfile::tempdir().unwrap();
    for (name, start, end, gop) in CASES {
        let resp = srv.get(&clip_path(name, start, end), &[]);
        assert_eq!(
            resp.status,
            200,
            "{name}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        let file = dir.path().join(name);
        std::fs::write(&file, &resp.body).unwrap();
        let file = file.to_str().unwrap();
        assert_decodes_without_errors(file, None);
        let d = duration(file);
        let span = seconds(end) - seconds(start);
        assert!(
            d >= span - 0.05 && d <= span + 2.0 * gop + 0.1,
            "{name}: {d} s for a clip of {span} s"
        );
        // The first frame is the keyframe that seek names, byte for byte the same size.
        let seek = srv
            .get(&format!("/api/videos/{name}/seek?t={start}"), &[])
            .json();
        let offset = seek["offset"].as_u64().unwrap();
        let title = ffprobe_video_packets(demo_dir().join(name).to_str().unwrap());
        let keyframe_pts = title
            .iter()
            .find(|p| p.2 && p.1 >= Some(offset))
            .unwrap_or_else(|| panic!("{name}: no packet at {offset}"))
            .0;
        let clip = ffprobe_video_packets(file);
        assert!(clip[0].2, "{name}: the clip starts with a keyframe");
        let title_first = title.iter().map(|p| p.0).fold(f64::MAX, f64::min);
        // As many frames as the title shows over the clip's own span from that keyframe.
        let (lo, hi) = clip.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
            (lo.min(p.0), hi.max(p.0))
        });
        let frames_in_title = title
            .iter()
            .filter(|p| p.0 >= keyframe_pts - 1e-6 && p.0 <= keyframe_pts + (hi - lo) + 1e-3)
            .count();
        assert_eq!(clip.len(), frames_in_title, "{name}: frames");
        // An MP4 clip's timeline starts where the title's does (zero, or the title's own
        // composition delay); a TS or WebM clip keeps the stream's own clock.
        let origin = if name.ends_with(".ts") || name.ends_with(".webm") {
            keyframe_pts
        } else {
            title_first
        };
        assert!(
            (lo - origin).abs() < 0.01,
            "{name}: the clip's timeline starts at {lo} s"
        );
        let shown = seek["keyframe"]["seconds"].as_f64().unwrap();
        assert!(
            ((keyframe_pts - title_first) - shown).abs() < 0.01,
            "{name}: seek says {shown} s, ffprobe {keyframe_pts}"
        );
    }
}

#[test]
fn a_clip_answers_ranges_head_and_validators_like_a_title() {
    let srv = TestServer::demo();
    let path = clip_path("ntsc-moov-at-end.mp4", "10", "20");
    let full = srv.get(&path, &[]);
    assert_eq!(full.status, 200);
    let etag = full.header("etag").unwrap().to_string();
    let title = srv.get("/videos/ntsc-moov-at-end.mp4", &[("range", "bytes=0-0")]);
    assert_ne!(Some(etag.as_str()), title.header("etag"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    let len = full.body.len() as u64;
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..40 {
        let a = rng.u64(..len);
        let b = rng.u64(a..len);
        let part = srv.get(&path, &[("range", &format!("bytes={a}-{b}"))]);
        assert_eq!(part.status, 206);
        assert_eq!(
            part.header("content-range"),
            Some(format!("bytes {a}-{b}/{len}").as_str())
        );
        assert_eq!(
            part.body,
            full.body[a as usize..=b as usize],
            "bytes {a}-{b}"
        );
    }
    let head = request(srv.addr, "HEAD", &path, &[]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(len.to_string().as_str())
    );
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert!(head.body.is_empty());
    let again = srv.get(&path, &[("if-none-match", &etag)]);
    assert_eq!(again.status, 304);
    let other = srv.get(&clip_path("ntsc-moov-at-end.mp4", "10", "30"), &[]);
    assert_ne!(other.header("etag"), Some(etag.as_str()));
    assert_eq!(full.header("content-type"), Some("video/mp4"));
}

#[test]
fn bad_clip_times_get_a_clear_error() {
    let srv = TestServer::demo();
    for (query, status, says) in [
        ("start=5&end=3", 400, "not after its start"),
        ("start=4&end=4", 400, "not after its start"),
        ("start=9", 400, "past the end"),
        ("start=1&end=60", 400, "past the end"),
        ("start=banana", 400, "banana"),
        ("end=00:00:01:99", 400, "00:00:01:99"),
    ] {
        let resp = srv.get(&format!("/videos/faststart.mp4?{query}"), &[]);
        let body = String::from_utf8_lossy(&resp.body);
        assert_eq!(resp.status, status, "{query}: {body}");
        assert!(body.contains(says), "{query}: {body}");
    }
}

#[test]
fn cli_clip_saves_a_file_that_ffprobe_opens() {
    let srv = TestServer::demo();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clip.mp4");
    let url = srv.url("/videos/ntsc-moov-at-end.mp4");
    let run = zerocast(&[
        "clip",
        &url,
        "--start",
        "00:01:00;02",
        "--end",
        "65",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out = out.to_str().unwrap();
    assert_decodes_without_errors(out, None);
    let d = duration(out);
    assert!((5.0..=9.1).contains(&d), "{d} s");
    assert_eq!(codecs(out), ["aac", "h264"]);
}

#[test]
fn cli_get_at_saves_the_start_of_a_clip_that_ffprobe_opens() {
    let srv = TestServer::demo();
    let dir = tempfile::tempdir().unwrap();
    for name in ["faststart.mp4", "clip.ts", "vp9-opus.webm"] {
        let out = dir.path().join(name);
        let run = zerocast(&[
            "get",
            &srv.url(&format!("/videos/{name}")),
            "--at",
            "4.5",
            "--size",
            "40KiB",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_eq!(std::fs::metadata(&out).unwrap().len(), 40 * 1024, "{name}");
        // The first frames decode: a file that opens, cut short.
        let probe = ffprobe_video_packets(out.to_str().unwrap());
        assert!(
            probe.len() > 5 && probe[0].2,
            "{name}: {} packets",
            probe.len()
        );
    }
}

#[test]
fn chromium_plays_mp4_clips_in_a_plain_video_element() {
    require("chromium");
    let srv = TestServer::demo();
    let clips = [
        ("a", clip_path("faststart.mp4", "3", "5")),
        ("b", clip_path("ntsc-moov-at-end.mp4", "30", "34")),
    ];
    let mut page = String::from("<!doctype html><meta charset=utf-8><body><script>\n");
    page.push_str("const send = (m) => fetch('/beacon?' + new URLSearchParams(m));\n");
    for (id, path) in &clips {
        page.push_str(&format!(
            "(() => {{ const v = document.createElement('video'); v.muted = true; let done = false;
  v.addEventListener('loadedmetadata', () => send({{id: '{id}', ev: 'meta', duration: v.duration}}));
  v.addEventListener('timeupdate', () => {{ if (!done && v.currentTime > 1) {{ done = true;
    send({{id: '{id}', ev: 'playing', w: v.videoWidth}}); }} }});
  v.addEventListener('error', () => send({{id: '{id}', ev: 'error', msg: String(v.error && v.error.code)}}));
  v.src = '{}'; document.body.appendChild(v); v.play(); }})();\n",
            srv.url(path)
        ));
    }
    page.push_str("</script>");
    let (base, beacons) = beacon_server(page);
    let chromium = Chromium::open(&format!("{base}/page.html"));
    let mut seen: HashMap<(String, String), HashMap<String, String>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && seen.keys().filter(|k| k.1 == "playing").count() < 2 {
        if let Ok(b) = beacons.recv_timeout(Duration::from_millis(200)) {
            assert_ne!(b["ev"], "error", "chromium reported an error: {b:?}");
            seen.insert((b["id"].clone(), b["ev"].clone()), b);
        }
    }
    drop(chromium);
    for (id, path) in &clips {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), srv.get(path, &[]).body).unwrap();
        let want = duration(file.path().to_str().unwrap());
        let id = *id;
        let meta = seen
            .get(&(id.into(), "meta".into()))
            .unwrap_or_else(|| panic!("{id}: no metadata; saw {seen:?}"));
        let d: f64 = meta["duration"].parse().unwrap();
        assert!((d - want).abs() < 0.1, "{id}: {d} s");
        let playing = seen
            .get(&(id.into(), "playing".into()))
            .unwrap_or_else(|| panic!("{id}: never played; saw {seen:?}"));
        assert_eq!(playing["w"], "320");
    }
}

/// With `sendfile_min` at 1 byte every clip and segment answer sends its written head, then the
/// title's bytes with `sendfile` from the title's file: the bytes are the same as written ones.
#[test]
fn clips_and_segments_sent_with_sendfile_after_their_head_are_byte_exact() {
    let dir = demo_copy();
    let mut config = server::Config::default();
    config.policy.sendfile_min = 1;
    let srv = TestServer::start_with(config, library(dir.path()));
    let reference = TestServer::demo();
    let paths = [
        clip_path("ntsc-moov-at-end.mp4", "10", "20"),
        // From the start of a title whose mdat comes first: the body starts before the head
        // would end.
        clip_path("ntsc-moov-at-end.mp4", "0", "4"),
        clip_path("clip.ts", "1", "5"),
        clip_path("fragmented.mp4", "2", "4"),
        "/videos/ntsc-moov-at-end.mp4/hls/2.m4s".to_string(),
        "/videos/ntsc-moov-at-end.mp4/dash/0-2.m4s".to_string(),
        "/videos/clip.ts/hls/0.ts".to_string(),
    ];
    let mut rng = fastrand::Rng::with_seed(9);
    for path in paths {
        let want = reference.get(&path, &[]).body;
        let full = srv.get(&path, &[]);
        assert_eq!(full.status, 200, "{path}");
        assert!(full.body == want, "{path}: the full body differs");
        let len = want.len() as u64;
        for _ in 0..10 {
            let a = rng.u64(..len);
            let b = rng.u64(a..len);
            let part = srv.get(&path, &[("range", &format!("bytes={a}-{b}"))]);
            assert_eq!(part.status, 206, "{path}");
            assert!(
                part.body == want[a as usize..=b as usize],
                "{path}: bytes {a}-{b}"
            );
        }
    }
}

/// ffmpeg's default fragmented MP4 (`frag_keyframe+empty_moov`, no `default_base_moof`) points
/// at its samples by absolute file offsets: it cannot be cut behind a new head, and says so.
#[test]
fn a_fragmented_mp4_that_addresses_samples_by_file_offsets_is_refused_with_the_remedy() {
    let dir = tempfile::tempdir().unwrap();
    ffmpeg(&[
        "-i",
        demo_dir().join("faststart.mp4").to_str().unwrap(),
        "-c",
        "copy",
        "-movflags",
        "frag_keyframe+empty_moov",
        dir.path().join("absolute.mp4").to_str().unwrap(),
    ]);
    let srv = TestServer::start(library(dir.path()));
    let r = srv.get(&clip_path("absolute.mp4", "2", "4"), &[]);
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, 422, "{body}");
    assert!(body.contains("default_base_moof"), "{body}");
    let hls = srv.get("/videos/absolute.mp4/index.m3u8", &[]);
    assert_eq!(hls.status, 422, "{}", String::from_utf8_lossy(&hls.body));
}

/// The decoded frames of `path` (`ffmpeg -f framemd5`), failing on any decode error.
fn frames(path: &std::path::Path) -> String {
    require("ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg");
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && errors.is_empty(), "{errors}");
    String::from_utf8(out.stdout).unwrap()
}

/// A file with all its video first and then all its audio (as some cameras and `MP4Box -flat`
/// write): its clip decodes to the same frames as the same clip of the interleaved original,
/// and carries its own samples only, not the rest of the video and audio that lie between
/// them in the file; ranges of it are byte-exact, sent with `sendfile` or written.
#[test]
fn a_clip_of_a_title_whose_tracks_are_not_interleaved_sends_only_its_own_samples() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../media/tests/fixtures/non-interleaved.mp4"
    );
    std::fs::copy(fixture, dir.path().join("flat.mp4")).unwrap();
    std::fs::copy(
        demo_dir().join("faststart.mp4"),
        dir.path().join("faststart.mp4"),
    )
    .unwrap();
    let mut config = server::Config::default();
    config.policy.sendfile_min = 1;
    let by_sendfile = TestServer::start_with(config, library(dir.path()));
    let written = TestServer::start(library(dir.path()));
    let clip = by_sendfile.get(&clip_path("flat.mp4", "3", "5"), &[]);
    assert_eq!(clip.status, 200);
    let original = by_sendfile.get(&clip_path("faststart.mp4", "3", "5"), &[]);
    let out = tempfile::tempdir().unwrap();
    let (a, b) = (
        out.path().join("flat.mp4"),
        out.path().join("faststart.mp4"),
    );
    std::fs::write(&a, &clip.body).unwrap();
    std::fs::write(&b, &original.body).unwrap();
    assert_eq!(frames(&a), frames(&b), "the same frames");
    let title = std::fs::metadata(dir.path().join("flat.mp4"))
        .unwrap()
        .len();
    assert!(
        clip.body.len() <= original.body.len(),
        "{} bytes where the interleaved title's clip is {} (the title: {title})",
        clip.body.len(),
        original.body.len()
    );
    let want = written.get(&clip_path("flat.mp4", "3", "5"), &[]).body;
    assert!(want == clip.body, "written and sent with sendfile alike");
    let mut rng = fastrand::Rng::with_seed(4);
    for _ in 0..20 {
        let a = rng.u64(..want.len() as u64);
        let b = rng.u64(a..want.len() as u64);
        let range = format!("bytes={a}-{b}");
        for srv in [&by_sendfile, &written] {
            let part = srv.get(&clip_path("flat.mp4", "3", "5"), &[("range", &range)]);
            assert_eq!(part.status, 206);
            assert!(part.body == want[a as usize..=b as usize], "bytes {a}-{b}");
        }
    }
}

/// An open-GOP title (x264 `open-gop`: pictures that follow a keyframe in decode order but are
/// shown before it, and need the GOP before): a clip shows from the keyframe seek names, where
/// its audio starts too, not from those leading pictures (which put the video 3 frames behind
/// its audio for the whole clip).
#[test]
fn a_clip_of_an_open_gop_title_shows_from_its_keyframe_with_its_audio() {
    let dir = tempfile::tempdir().unwrap();
    let title = dir.path().join("open.mp4");
    let x264 = ["-bf", "3", "-x264-params"];
    six_seconds(
        &title,
        &x264,
        "open-gop=1:keyint=25:min-keyint=25:scenecut=0",
    );
    // Open: a packet after the keyframe at 2 s, in decode order, is shown before it.
    let packets = ffprobe_video_packets(title.to_str().unwrap());
    let key = packets.iter().position(|p| p.2 && p.0 > 1.9).unwrap();
    assert!(
        packets[key + 1].0 < packets[key].0,
        "{:?}",
        &packets[key..key + 4]
    );
    let srv = TestServer::start(library(dir.path()));
    let clip = srv.get(&clip_path("open.mp4", "2", "4"), &[]);
    assert_eq!(clip.status, 200, "{}", String::from_utf8_lossy(&clip.body));
    let file = dir.path().join("clip.mp4");
    std::fs::write(&file, &clip.body).unwrap();
    let shown = ffprobe_video_packets(file.to_str().unwrap());
    let first_key = shown
        .iter()
        .filter(|p| p.2)
        .map(|p| p.0)
        .fold(f64::MAX, f64::min);
    assert!(
        first_key.abs() < 0.02,
        "the keyframe is shown at {first_key} s"
    );
}

/// A file cut with `ffmpeg -ss 1.5 -c copy` keeps the GOP before the cut, hidden by its edit
/// list (ffprobe: 4.5 s, keyframes at -1.52, 0.48 and 2.48 s): its duration, seek answers and
/// clips count from what it shows, not from the hidden frames.
#[test]
fn a_title_whose_edit_list_hides_frames_before_its_start_counts_from_what_it_shows() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.mp4");
    six_seconds(&src, &["-bf", "2", "-g"], "50");
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    let cut = lib.join("cut.mp4");
    let (s, c) = (src.to_str().unwrap(), cut.to_str().unwrap());
    ffmpeg(&["-ss", "1.5", "-i", s, "-c", "copy", c]);
    let shown = duration(c);
    let keys: Vec<f64> = ffprobe_video_packets(c)
        .iter()
        .filter(|p| p.2)
        .map(|p| p.0)
        .collect();
    assert!(keys[0] < 0.0 && (0.0..1.0).contains(&keys[1]), "{keys:?}");
    let srv = TestServer::start(library(&lib));
    let doc = srv.get("/api/videos/cut.mp4", &[]).json();
    let d = doc["duration_seconds"].as_f64().unwrap();
    assert!((d - shown).abs() < 0.1, "{d} s, ffprobe {shown} s");
    // Its VOD HLS lasts what it shows, and its DASH timeline begins at 0.
    let hls = String::from_utf8(srv.get("/videos/cut.mp4/index.m3u8", &[]).body).unwrap();
    let listed: f64 = hls
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| l.trim_end_matches(',').parse::<f64>().unwrap())
        .sum();
    assert!((listed - d).abs() < 0.1, "{listed} s listed\n{hls}");
    let mpd = String::from_utf8(srv.get("/videos/cut.mp4/manifest.mpd", &[]).body).unwrap();
    assert!(
        mpd.contains("<S t=\"0\"") && !mpd.contains("t=\"-"),
        "{mpd}"
    );
    let seek = srv.get("/api/videos/cut.mp4/seek?t=1", &[]).json();
    let at = seek["keyframe"]["seconds"].as_f64().unwrap();
    assert!(
        (at - keys[1]).abs() < 0.05,
        "seek says {at} s, ffprobe {}",
        keys[1]
    );
    // From 0 to the keyframe at or after 2 s (ffprobe's third): what the title shows there.
    let clip = srv.get(&clip_path("cut.mp4", "0", "2"), &[]);
    assert_eq!(clip.status, 200);
    let file = dir.path().join("clip.mp4");
    std::fs::write(&file, &clip.body).unwrap();
    let f = file.to_str().unwrap();
    assert_decodes_without_errors(f, None);
    let d = duration(f);
    assert!(
        (d - keys[2]).abs() < 0.1,
        "a clip of {d} s, to {} s",
        keys[2]
    );
}

/// 6 s of 320x240 25 fps H.264 (x264, `x264` and `last` its last options) and 48 kHz AAC, made
/// by ffmpeg into `out`.
fn six_seconds(out: &std::path::Path, x264: &[&str], last: &str) {
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
    ];
    args.extend(["-i", "sine=frequency=440:sample_rate=48000", "-t", "6"]);
    args.extend(["-c:v", "libx264", "-preset", "veryfast"]);
    args.extend(x264);
    args.extend([last, "-c:a", "aac", out.to_str().unwrap()]);
    ffmpeg(&args);
}
