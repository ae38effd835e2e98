//! Players across a publisher reconnect (issue 13's playlist rules): the RTMP publisher stops
//! and comes back within the grace period; the LL-HLS playlist marks the break with
//! `EXT-X-DISCONTINUITY`, the DASH manifest begins a new Period, and hls.js and dash.js in
//! headless Chromium, on a page from another origin, play on into the second session.

mod common;

use common::browser::{beacon_server, dash_js, hls_js, Chromium};
use common::fixtures::long_rtmp_mp4;
use common::live::{rtmp_publisher, server, wait_for, wait_until, WAIT};
use common::TestServer;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A page that plays with `script` (`play` starts it on the video `v`) and reports `playing`
/// once the video has played `secs` seconds past where it started, or `error`.
fn page(script: &str, play: &str, secs: u32) -> String {
    format!(
        "<!doctype html><meta charset=utf-8><body><video id=v muted></video>
<script>{script}</script><script>
const send = (m) => fetch('/beacon?' + new URLSearchParams(m));
const v = document.getElementById('v');
let start = null, done = false;
v.addEventListener('error', () => send({{ev: 'error', msg: 'video: ' + (v.error && v.error.message)}}));
v.addEventListener('timeupdate', () => {{
  if (start === null && v.currentTime > 0) start = v.currentTime;
  if (!done && start !== null && v.currentTime > start + {secs}) {{
    done = true;
    send({{ev: 'playing', t: v.currentTime, w: v.videoWidth}});
  }}
}});
{play}
</script>"
    )
}

/// The stream `re` published over RTMP; its publisher killed a few seconds in (its connection
/// drops: the stream waits for it for the grace period), and a new one that publishes again,
/// with `page` open in Chromium from the start: the page's verdict, and the server.
fn across_a_reconnect(
    page: impl FnOnce(&TestServer) -> String,
) -> (HashMap<String, String>, TestServer) {
    let s = server(|_| {});
    let first = rtmp_publisher(&s, "/live/re", &long_rtmp_mp4(), &["-re"]);
    wait_for(&s, "re", "a first HLS segment", |d| {
        d["hls_segments"].as_u64() >= Some(1)
    });
    let (base, beacons) = beacon_server(page(&s));
    let _chromium = Chromium::open(&format!("{base}/page.html"));
    wait_for(&s, "re", "three HLS segments", |d| {
        d["hls_segments"].as_u64() >= Some(3)
    });
    drop(first);
    wait_for(&s, "re", "the publisher gone", |d| {
        d["state"] == "reconnecting"
    });
    let _second = rtmp_publisher(&s, "/live/re", &long_rtmp_mp4(), &["-re"]);
    let s2 = &s;
    wait_until("the second session", WAIT, || {
        common::live::stream_doc(s2, "re").is_some_and(|d| d["sessions"] == 2)
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(b) = beacons.recv_timeout(Duration::from_millis(200)) {
            return (b, s);
        }
    }
    panic!("no verdict from the page within 60 s");
}

#[track_caller]
fn assert_played_on(verdict: &HashMap<String, String>) {
    assert_eq!(
        verdict.get("ev").map(String::as_str),
        Some("playing"),
        "{verdict:?}"
    );
    assert_eq!(verdict["w"], "320", "decoded video: {verdict:?}");
}

/// Seconds of play that only the two sessions together hold: the player starts a second or so
/// into the first one, which is cut three segments (at most 6 s) in.
const PAST_THE_BREAK: u32 = 7;

#[test]
fn hls_js_plays_ll_hls_on_across_a_publisher_reconnect() {
    let (verdict, s) = across_a_reconnect(|s| {
        let url = s.url("/live/re/ll.m3u8");
        let play = format!(
            "const hls = new Hls({{lowLatencyMode: true}});
             hls.on(Hls.Events.ERROR, (e, d) => {{ if (d.fatal) send({{ev: 'error', msg: d.details}}); }});
             hls.loadSource('{url}'); hls.attachMedia(v); v.play().catch(() => {{}});"
        );
        page(&hls_js(), &play, PAST_THE_BREAK)
    });
    assert_played_on(&verdict);
    let p = s.get("/live/re/ll.m3u8", &[]);
    let p = String::from_utf8_lossy(&p.body);
    assert!(p.contains("#EXT-X-DISCONTINUITY\n"), "{p}");
}

#[test]
fn dash_js_plays_ll_dash_on_across_a_publisher_reconnect_into_a_new_period() {
    let (verdict, s) = across_a_reconnect(|s| {
        let url = s.url("/live/re/manifest.mpd");
        let play = format!(
            "const p = dashjs.MediaPlayer().create();
             p.on(dashjs.MediaPlayer.events.ERROR, (e) => send({{ev: 'error', msg: JSON.stringify(e.error && (e.error.message || e.error.code))}}));
             p.initialize(v, '{url}', true);"
        );
        page(&dash_js(), &play, PAST_THE_BREAK)
    });
    assert_played_on(&verdict);
    let m = s.get("/live/re/manifest.mpd", &[]);
    let m = String::from_utf8_lossy(&m.body);
    assert_eq!(m.matches("<Period ").count(), 2, "{m}");
}
