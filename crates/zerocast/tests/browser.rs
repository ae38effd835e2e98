//! A real browser: headless Chromium plays and seeks the demo titles in `<video>` elements.
//!
//! The page comes from a tiny beacon server in this test; its videos come from zerocast. The page
//! reports each video's events (metadata, seeked, playing, error) back as `GET /beacon?...`.

mod common;
use common::browser::{beacon_server, Chromium};
use common::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const CASES: [(&str, f64); 4] = [
    ("faststart.mp4", 5.0),
    ("ntsc-moov-at-end.mp4", 61.0),
    ("fragmented.mp4", 4.5),
    ("vp9-opus.webm", 3.0),
];

fn page(zerocast: &str) -> String {
    let mut s = String::from("<!doctype html><meta charset=utf-8><body><script>\n");
    s.push_str("const send = (m) => fetch('/beacon?' + new URLSearchParams(m));\n");
    for (i, (name, seek)) in CASES.iter().enumerate() {
        s.push_str(&format!(
            "(() => {{ const v = document.createElement('video'); v.muted = true; v.preload = 'auto';
  const id = '{name}'; let reported = false;
  v.addEventListener('loadedmetadata', () => {{ send({{id, ev: 'meta', duration: v.duration}}); v.currentTime = {seek}; }});
  v.addEventListener('seeked', () => {{ send({{id, ev: 'seeked', t: v.currentTime}});
    v.play().catch(e => send({{id, ev: 'error', msg: String(e)}})); }});
  v.addEventListener('timeupdate', () => {{ if (!reported && v.currentTime > {seek} + 0.5) {{ reported = true;
    send({{id, ev: 'playing', t: v.currentTime, w: v.videoWidth, h: v.videoHeight}}); }} }});
  v.addEventListener('error', () => send({{id, ev: 'error', msg: String(v.error && v.error.code)}}));
  v.src = '{zerocast}/videos/{name}'; document.body.appendChild(v); v{i} = v; }})();\n"
        ));
    }
    s.push_str("</script>");
    s
}

#[test]
fn chromium_plays_and_seeks_every_container_it_supports() {
    require("chromium");
    let srv = TestServer::demo();
    let (base, beacons) = beacon_server(page(&srv.url("")));
    let chromium = Chromium::open(&format!("{base}/page.html"));
    let mut seen: HashMap<(String, String), HashMap<String, String>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && seen.keys().filter(|k| k.1 == "playing").count() < CASES.len()
    {
        if let Ok(b) = beacons.recv_timeout(Duration::from_millis(200)) {
            if b.get("ev").map(String::as_str) == Some("error") {
                panic!("chromium reported an error: {b:?}");
            }
            seen.insert((b["id"].clone(), b["ev"].clone()), b);
        }
    }
    drop(chromium);
    for (name, seek) in CASES {
        let api = srv.get(&format!("/api/videos/{name}"), &[]).json();
        let ours = api["duration_seconds"].as_f64().unwrap();
        let meta = seen
            .get(&(name.to_string(), "meta".into()))
            .unwrap_or_else(|| panic!("{name}: no metadata; saw {seen:?}"));
        let duration: f64 = meta["duration"].parse().unwrap();
        assert!(
            (duration - ours).abs() < 0.3,
            "{name}: browser duration {duration}, zerocast {ours}"
        );
        let seeked: f64 = seen[&(name.to_string(), "seeked".into())]["t"]
            .parse()
            .unwrap();
        assert!(
            (seeked - seek).abs() < 0.1,
            "{name}: seeked to {seeked}, asked {seek}"
        );
        let playing = &seen
            .get(&(name.to_string(), "playing".into()))
            .unwrap_or_else(|| panic!("{name}: never played after the seek"));
        assert!(playing["t"].parse::<f64>().unwrap() > seek + 0.5);
        assert_eq!(
            (playing["w"].as_str(), playing["h"].as_str()),
            ("320", "180"),
            "{name}: picture size"
        );
    }
    // The browser's abandoned range requests left the server healthy.
    assert_eq!(srv.get("/healthz", &[]).status, 200);
}

/// A live stream's fragmented MP4 plays in a plain `<video src>`: no script, no player library.
#[test]
fn chromium_plays_a_live_stream_as_fragmented_mp4_in_a_plain_video_element() {
    require("chromium");
    let s = common::live::server(|_| {});
    // The 40 s fixture: a slow machine's Chromium may take most of the short one to start.
    let _publisher = common::live::ffmpeg_publish(
        &common::fixtures::long_live_ts(),
        &["-re"],
        "mpegts",
        &[],
        &s.url("/live/web"),
    );
    common::live::wait_for(&s, "web", "live", |d| d["ring_units"].as_u64() > Some(5));
    // What the browser is given is an MP4 that ffprobe reads as the stream's two codecs.
    assert_eq!(common::codecs(&s.url("/live/web.mp4")), ["aac", "h264"]);
    let page = format!(
        "<!doctype html><meta charset=utf-8><body><script>
const send = (m) => fetch('/beacon?' + new URLSearchParams(m));
const v = document.createElement('video'); v.muted = true; v.autoplay = true; let reported = false;
v.addEventListener('timeupdate', () => {{ if (!reported && v.currentTime > 1.5) {{ reported = true;
  send({{ev: 'playing', t: v.currentTime, w: v.videoWidth, h: v.videoHeight}}); }} }});
v.addEventListener('error', () => send({{ev: 'error', msg: String(v.error && v.error.code)}}));
v.src = '{}'; document.body.appendChild(v);
</script>",
        s.url("/live/web.mp4")
    );
    let (base, beacons) = beacon_server(page);
    let chromium = Chromium::open(&format!("{base}/page.html"));
    let b = beacons
        .recv_timeout(Duration::from_secs(30))
        .expect("the video played 1.5 s within 30 s");
    drop(chromium);
    assert_eq!(b.get("ev").map(String::as_str), Some("playing"), "{b:?}");
    assert!(
        b["w"].parse::<u32>().unwrap() > 0 && b["h"].parse::<u32>().unwrap() > 0,
        "{b:?}"
    );
}
