//! Every MP4 and MPEG-TS title as HLS (`/videos/{id}/index.m3u8`) and MP4 and WebM titles as
//! DASH (`/videos/{id}/manifest.mpd`): ffmpeg reads the title's own frames from them, Chromium
//! plays the HLS natively and dash.js plays the manifests; their parts are entities like the
//! title.

mod common;
use common::browser::{dash_js, verdict};
use common::*;
use std::process::Command;

/// (pts, keyframe) of a stream's packets, as ffprobe demuxes them from `input`.
fn packets(input: &str, stream: &str) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream, "-show_entries"])
        .args(["packet=pts_time,flags", "-of", "csv=p=0", input])
        .output()
        .expect("ffprobe");
    assert!(out.status.success(), "{input}: {:?}", out);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// ffmpeg copies `input` (every stream, `-c copy`) without a word on its error output.
fn copies_cleanly(input: &str) {
    require("ffmpeg");
    let out = Command::new("ffmpeg")
        .args([
            "-v", "error", "-nostdin", "-i", input, "-map", "0", "-c", "copy",
        ])
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{input}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ffmpeg_reads_the_titles_own_frames_from_the_hls_of_every_mp4_and_ts_title() {
    let srv = TestServer::demo();
    for name in [
        "faststart.mp4",
        "ntsc-moov-at-end.mp4",
        "fragmented.mp4",
        "clip.ts",
    ] {
        let hls = srv.url(&format!("/videos/{name}/index.m3u8"));
        let file = demo_dir().join(name);
        let file = file.to_str().unwrap();
        copies_cleanly(&hls);
        let (ours, theirs) = (packets(&hls, "v:0"), packets(file, "v:0"));
        assert_eq!(ours.len(), theirs.len(), "{name}: video frames");
        assert_eq!(ours, theirs, "{name}: video PTS and keyframes");
        assert_eq!(
            pts(packets(&hls, "a:0")),
            pts(packets(file, "a:0")),
            "{name}: audio"
        );
    }
}

/// The PTS column alone (ffmpeg flags the file's AAC priming frame as discarded from its edit
/// list; the segments start with the same frame at the same time, without the flag).
fn pts(v: Vec<String>) -> Vec<String> {
    v.iter()
        .map(|p| p.split(',').next().unwrap().to_string())
        .collect()
}

#[test]
fn ffmpeg_reads_the_titles_own_frames_from_the_dash_manifest_of_mp4_titles() {
    let srv = TestServer::demo();
    for name in ["faststart.mp4", "ntsc-moov-at-end.mp4"] {
        let mpd = srv.url(&format!("/videos/{name}/manifest.mpd"));
        let file = demo_dir().join(name);
        let file = file.to_str().unwrap();
        copies_cleanly(&mpd);
        assert_eq!(packets(&mpd, "v:0"), packets(file, "v:0"), "{name}: video");
        assert_eq!(
            pts(packets(&mpd, "a:0")),
            pts(packets(file, "a:0")),
            "{name}: audio"
        );
    }
}

#[test]
fn ffmpeg_reads_the_titles_own_frames_from_the_dash_manifest_of_a_webm_title() {
    // 20 s of VP9 and Opus, a keyframe every 2 s: segments of 6 s, so several of them.
    let lib = tempfile::tempdir().unwrap();
    let webm = lib.path().join("long.webm");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=24",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:sample_rate=48000",
        "-t",
        "20",
        "-g",
        "48",
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-b:v",
        "200k",
        "-c:a",
        "libopus",
        webm.to_str().unwrap(),
    ]);
    let srv = TestServer::start(library(lib.path()));
    let mpd = srv.url("/videos/long.webm/manifest.mpd");
    let text = String::from_utf8(srv.get("/videos/long.webm/manifest.mpd", &[]).body).unwrap();
    assert!(text.contains("mimeType=\"video/webm\"") && text.contains("codecs=\"opus\""));
    // Every segment listed is served, for both tracks.
    let timeline = text.split("<SegmentTimeline>").nth(1).unwrap();
    let segments: usize = timeline
        .split("</SegmentTimeline>")
        .next()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("<S "))
        .map(|l| {
            1 + l.split("r=\"").nth(1).map_or(0, |r| {
                r.split('"').next().unwrap().parse::<usize>().unwrap()
            })
        })
        .sum();
    assert!(segments >= 3, "{text}");
    for track in 0..2 {
        for n in 0..segments {
            let r = srv.get(&format!("/videos/long.webm/dash/{track}-{n}.webm"), &[]);
            assert_eq!(r.status, 200, "{track}-{n}");
        }
    }
    let file = webm.to_str().unwrap();
    copies_cleanly(&mpd);
    let (ours, theirs) = (packets(&mpd, "v:0"), packets(file, "v:0"));
    assert_eq!(ours.len(), theirs.len(), "video frames");
    assert_eq!(ours, theirs, "video PTS and keyframes");
    assert_eq!(packets(&mpd, "a:0"), packets(file, "a:0"), "audio");
}

/// A fragmented MP4 whose fragments are longer than the segment target and than its GOPs:
/// each segment is whole fragments, and its `EXTINF` is what they hold (it used to be the
/// keyframes' spacing it was cut at: 6 s listed for 10 s of frames).
#[test]
fn the_hls_of_long_fragments_lists_each_segment_as_long_as_its_frames() {
    let lib = tempfile::tempdir().unwrap();
    let file = lib.path().join("long-frags.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x90:rate=25",
        "-t",
        "30",
        "-g",
        "50",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-movflags",
        "frag_keyframe+empty_moov+default_base_moof",
        "-min_frag_duration",
        "10000000",
        file.to_str().unwrap(),
    ]);
    let srv = TestServer::start(library(lib.path()));
    let base = "/videos/long-frags.mp4/";
    let playlist = String::from_utf8(srv.get(&format!("{base}index.m3u8"), &[]).body).unwrap();
    // Fragments of several GOPs, each begun at a keyframe: every segment begins with one.
    assert!(
        playlist.contains("#EXT-X-INDEPENDENT-SEGMENTS\n"),
        "{playlist}"
    );
    let init = srv.get(&format!("{base}hls/init.mp4"), &[]).body;
    let lines: Vec<&str> = playlist.lines().collect();
    let mut total = 0.0;
    for (i, l) in lines.iter().enumerate() {
        let Some(listed) = l.strip_prefix("#EXTINF:") else {
            continue;
        };
        let listed: f64 = listed.trim_end_matches(',').parse().unwrap();
        let seg = srv.get(&format!("{base}{}", lines[i + 1]), &[]);
        assert_eq!(seg.status, 200, "{}", lines[i + 1]);
        let one = lib.path().join("one.mp4");
        std::fs::write(&one, [init.clone(), seg.body].concat()).unwrap();
        let frames = packets(one.to_str().unwrap(), "v:0").len() as f64;
        assert!(
            (listed - frames / 25.0).abs() < 0.05,
            "{} lists {listed} s for {frames} frames:\n{playlist}",
            lines[i + 1]
        );
        total += listed;
    }
    assert!((total - 30.0).abs() < 0.1, "{total} s in all:\n{playlist}");
}

/// A fragmented MP4 cut into fragments of 0.3 s whatever its keyframes (every 2 s): its
/// segments (whole fragments) begin with frames of the GOP before, so its playlist does not say
/// `EXT-X-INDEPENDENT-SEGMENTS`; the demo's, cut at keyframes, does. Each segment's first video
/// frame is a keyframe exactly where the playlist says so.
#[test]
fn the_hls_of_fragments_not_cut_at_keyframes_is_not_said_to_be_independent() {
    let lib = tempfile::tempdir().unwrap();
    let file = lib.path().join("short-frags.mp4");
    ffmpeg(&[
        "-i",
        demo_dir().join("faststart.mp4").to_str().unwrap(),
        "-c",
        "copy",
        "-movflags",
        "empty_moov+default_base_moof",
        "-frag_duration",
        "300000",
        file.to_str().unwrap(),
    ]);
    std::fs::copy(
        demo_dir().join("fragmented.mp4"),
        lib.path().join("fragmented.mp4"),
    )
    .unwrap();
    let srv = TestServer::start(library(lib.path()));
    for (name, independent) in [("short-frags.mp4", false), ("fragmented.mp4", true)] {
        let base = format!("/videos/{name}/");
        let playlist = srv.get(&format!("{base}index.m3u8"), &[]);
        assert_eq!(playlist.status, 200, "{name}");
        let playlist = String::from_utf8(playlist.body).unwrap();
        assert_eq!(
            playlist.contains("#EXT-X-INDEPENDENT-SEGMENTS\n"),
            independent,
            "{name}:\n{playlist}"
        );
        // What it says: the first video frame of each segment (after the init segment).
        let init = srv.get(&format!("{base}hls/init.mp4"), &[]).body;
        let first_keys = playlist
            .lines()
            .filter(|l| l.ends_with(".m4s"))
            .map(|uri| {
                let seg = srv.get(&format!("{base}{uri}"), &[]).body;
                let one = lib.path().join("one.mp4");
                std::fs::write(&one, [init.clone(), seg].concat()).unwrap();
                let out = std::process::Command::new("ffprobe")
                    .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
                    .args(["packet=flags", "-of", "csv=p=0", "-read_intervals", "%+#1"])
                    .arg(&one)
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).starts_with('K')
            })
            .collect::<Vec<bool>>();
        assert!(first_keys.len() >= 2, "{name}: {first_keys:?}");
        assert_eq!(
            first_keys.iter().all(|&k| k),
            independent,
            "{name}: {first_keys:?}"
        );
    }
}

#[test]
fn a_playlist_and_its_segments_are_cacheable_entities_that_follow_the_title() {
    let srv = TestServer::demo();
    let base = "/videos/ntsc-moov-at-end.mp4";
    let title_tag = srv
        .get(base, &[("range", "bytes=0-0")])
        .header("etag")
        .unwrap()
        .trim_matches('"')
        .to_string();
    let playlist = srv.get(&format!("{base}/index.m3u8"), &[]);
    assert_eq!(playlist.status, 200);
    assert_eq!(
        playlist.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    let text = String::from_utf8_lossy(&playlist.body).to_string();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD") && text.ends_with("#EXT-X-ENDLIST\n"));
    let segments: Vec<&str> = text.lines().filter(|l| l.starts_with("hls/")).collect();
    assert_eq!(segments.len(), 12, "70 s in segments of at least 6 s");
    for path in [
        "index.m3u8",
        "manifest.mpd",
        "hls/init.mp4",
        "hls/3.m4s",
        "dash/1-3.m4s",
    ] {
        let full = srv.get(&format!("{base}/{path}"), &[]);
        assert_eq!(full.status, 200, "{path}");
        let etag = full.header("etag").unwrap().to_string();
        assert!(
            etag.starts_with(&format!("\"{title_tag}-")),
            "{path}: {etag} is not derived from the title's"
        );
        let len = full.body.len();
        let part = srv.get(&format!("{base}/{path}"), &[("range", "bytes=5-40")]);
        assert_eq!(part.status, 206, "{path}");
        assert_eq!(part.body, full.body[5..41.min(len)], "{path}");
        let again = srv.get(&format!("{base}/{path}"), &[("if-none-match", &etag)]);
        assert_eq!(again.status, 304, "{path}");
        assert!(full.header("cache-control").unwrap().contains("max-age"));
    }
}

#[test]
fn parts_that_do_not_exist_and_titles_that_are_not_packaged_get_clear_errors() {
    let srv = TestServer::demo();
    for (path, status, says) in [
        ("/videos/faststart.mp4/hls/99.m4s", 404, "no such segment"),
        ("/videos/faststart.mp4/dash/7-0.m4s", 404, "no such track"),
        (
            "/videos/faststart.mp4/dash/init-9.mp4",
            404,
            "no such track",
        ),
        (
            "/videos/clip.ts/manifest.mpd",
            422,
            "DASH is served for MP4 and WebM titles",
        ),
        ("/videos/clip.ts/hls/init.mp4", 404, "no init segment"),
        (
            "/videos/vp9-opus.webm/index.m3u8",
            422,
            "a WebM title is served as DASH",
        ),
        ("/videos/vp9-opus.webm/dash/init-0.mp4", 404, "no such part"),
        (
            "/videos/vp9-opus.webm/dash/0-9.webm",
            404,
            "no such track or segment",
        ),
        ("/videos/nothing.mp4/index.m3u8", 404, "nothing.mp4"),
        ("/videos/faststart.mp4/hls/1x.m4s", 404, ""),
    ] {
        let resp = srv.get(path, &[]);
        let body = String::from_utf8_lossy(&resp.body);
        assert_eq!(resp.status, status, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
}

#[test]
fn the_library_page_links_every_titles_hls_and_dash_and_each_link_answers() {
    let srv = TestServer::demo();
    let page = String::from_utf8(srv.get("/", &[]).body).unwrap();
    let links: Vec<&str> = page
        .split("href=\"")
        .skip(1)
        .map(|h| h.split('"').next().unwrap())
        .filter(|h| h.ends_with("/index.m3u8") || h.ends_with("/manifest.mpd"))
        .collect();
    for want in [
        "/videos/clip.ts/index.m3u8",
        "/videos/faststart.mp4/index.m3u8",
        "/videos/faststart.mp4/manifest.mpd",
        "/videos/vp9-opus.webm/manifest.mpd",
    ] {
        assert!(links.contains(&want), "{want} not in {links:?}");
    }
    assert!(!links.contains(&"/videos/vp9-opus.webm/index.m3u8"));
    assert!(!links.contains(&"/videos/clip.ts/manifest.mpd"));
    for link in links {
        assert_eq!(srv.get(link, &[]).status, 200, "{link}");
    }
}

/// A page that plays `src` in a `<video>` (natively, or through dash.js when `dash`) and reports
/// once it has played 3 s past the start, with the decoded frames and the picture width.
fn player_page(src: &str, dash: bool) -> String {
    let (script, start) = if dash {
        (
            format!("<script>{}</script>", dash_js()),
            format!("dashjs.MediaPlayer().create().initialize(v, '{src}', true);"),
        )
    } else {
        (String::new(), format!("v.src = '{src}'; v.play();"))
    };
    format!(
        "<!doctype html><meta charset=utf-8><body><video id=v muted></video>{script}<script>
const send = (m) => fetch('/beacon?' + new URLSearchParams(m));
const v = document.getElementById('v'); let done = false;
v.addEventListener('error', () => send({{ev: 'error', msg: String(v.error && v.error.message)}}));
v.addEventListener('timeupdate', () => {{ if (!done && v.currentTime > 3) {{ done = true;
  send({{ev: 'playing', t: v.currentTime, w: v.videoWidth, d: v.duration,
    frames: v.getVideoPlaybackQuality().totalVideoFrames}}); }} }});
{start}
</script>"
    )
}

#[test]
fn chromium_plays_the_hls_of_an_mp4_title_natively() {
    require("chromium");
    let srv = TestServer::demo();
    let v = verdict(
        player_page(&srv.url("/videos/ntsc-moov-at-end.mp4/index.m3u8"), false),
        &[],
    );
    assert_eq!(v["ev"], "playing", "{v:?}");
    assert_eq!(v["w"], "320");
    assert!(v["frames"].parse::<u32>().unwrap() >= 60, "{v:?}");
    let d: f64 = v["d"].parse().unwrap();
    assert!((d - 70.0).abs() < 0.5, "duration {d}");
}

#[test]
fn dashjs_plays_the_manifest_of_an_mp4_title() {
    require("chromium");
    let srv = TestServer::demo();
    let v = verdict(
        player_page(&srv.url("/videos/ntsc-moov-at-end.mp4/manifest.mpd"), true),
        &[],
    );
    assert_eq!(v["ev"], "playing", "{v:?}");
    assert_eq!(v["w"], "320");
    assert!(v["frames"].parse::<u32>().unwrap() >= 60, "{v:?}");
}

#[test]
fn dashjs_plays_the_manifest_of_a_webm_title() {
    require("chromium");
    let srv = TestServer::demo();
    let v = verdict(
        player_page(&srv.url("/videos/vp9-opus.webm/manifest.mpd"), true),
        &[],
    );
    assert_eq!(v["ev"], "playing", "{v:?}");
    assert_eq!(v["w"], "320");
    assert!(v["frames"].parse::<u32>().unwrap() >= 60, "{v:?}");
}

/// What packaging holds (the MP4s' sample tables) shows in `/metrics` from the start: titles held
/// in memory are packaged as they load, so a first playlist finds it built.
#[test]
fn what_packaging_holds_shows_in_metrics_from_the_load_on() {
    let srv = TestServer::demo();
    let held = |srv: &TestServer| -> u64 {
        let m = srv.get("/metrics", &[]);
        String::from_utf8_lossy(&m.body)
            .lines()
            .find_map(|l| {
                l.strip_prefix("zerocast_library_package_bytes ")?
                    .parse()
                    .ok()
            })
            .expect("zerocast_library_package_bytes")
    };
    // ntsc-moov-at-end.mp4 alone: 2,098 video and 3,282 audio samples at about 25 bytes each,
    // and the trak boxes.
    let at_load = held(&srv);
    assert!((100_000..2_000_000).contains(&at_load), "{at_load}");
    assert_eq!(
        srv.get("/videos/ntsc-moov-at-end.mp4/index.m3u8", &[])
            .status,
        200
    );
    assert_eq!(held(&srv), at_load, "nothing built again");
}

/// A QuickTime file (ffmpeg's `mov`: AAC's `esds` inside the sample entry's `wave` box): its
/// DASH names the AAC audio as `mp4a.40.2` at its rate, as for an MP4, and ffmpeg reads it.
#[test]
fn a_quicktime_titles_aac_is_named_in_its_dash_manifest() {
    require("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let mov = dir.path().join("qt.mov");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-f", "lavfi", "-i"])
        .arg("testsrc=size=160x120:rate=25")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t", "4", "-c:v", "libx264", "-g", "25", "-c:a", "aac", "-f", "mov",
        ])
        .arg(&mov)
        .status()
        .unwrap();
    assert!(made.success());
    let bytes = std::fs::read(&mov).unwrap();
    assert!(bytes.windows(4).any(|w| w == b"wave"), "a QuickTime entry");
    let srv = TestServer::start(library(dir.path()));
    let r = srv.get("/videos/qt.mov/manifest.mpd", &[]);
    assert_eq!(r.status, 200);
    let mpd = String::from_utf8(r.body).unwrap();
    assert!(mpd.contains("codecs=\"mp4a.40.2\""), "{mpd}");
    assert!(mpd.contains("audioSamplingRate=\"48000\""), "{mpd}");
    copies_cleanly(&srv.url("/videos/qt.mov/manifest.mpd"));
}
