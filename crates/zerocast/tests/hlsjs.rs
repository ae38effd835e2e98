//! hls.js in a real browser (issue 12, parts 1 and 5): headless Chromium opens a page served from
//! another origin (the beacon server's port), and hls.js plays zerocast's live HLS from there,
//! over plain HTTP and over HTTPS (HTTP/2), so CORS and TLS are exercised for real.

mod common;

use common::browser::{hls_js, verdict, LiveTls};
use common::live::stream_doc;
use common::TestServer;
use std::collections::HashMap;

/// A page that plays `playlist` with hls.js and reports `playing` (with the time reached) once
/// the video has advanced two seconds, or `error` with hls.js's fatal error.
fn page(playlist: &str) -> String {
    page_with(playlist, "{}")
}

/// The same with an hls.js configuration (a JavaScript object literal). The verdict also says
/// how many LL-HLS parts hls.js loaded, and how far behind the ingest wall clock the picture
/// shown is (`behind`, seconds: `EXT-X-PROGRAM-DATE-TIME` is when the ingest received a frame).
fn page_with(playlist: &str, config: &str) -> String {
    format!(
        "<!doctype html><meta charset=utf-8><body><video id=v muted autoplay></video>
<script>{}</script><script>
const send = (m) => fetch('/beacon?' + new URLSearchParams(m));
const v = document.getElementById('v');
if (!Hls.isSupported()) send({{ev: 'error', msg: 'no MSE'}});
const hls = new Hls({config});
let start = null, done = false, parts = 0;
hls.on(Hls.Events.ERROR, (e, d) => {{ if (d.fatal) send({{ev: 'error', msg: d.type + '/' + d.details}}); }});
hls.on(Hls.Events.FRAG_LOADED, (e, d) => {{ if (d.part) parts++; }});
v.addEventListener('timeupdate', () => {{
  if (start === null) start = v.currentTime;
  if (!done && v.currentTime > start + 2) {{
    done = true;
    const behind = hls.playingDate ? (Date.now() - hls.playingDate.getTime()) / 1000 : -1;
    send({{ev: 'playing', t: v.currentTime, w: v.videoWidth, parts, behind}});
  }}
}});
hls.loadSource('{playlist}');
hls.attachMedia(v);
v.play().catch(() => {{}});
</script>",
        hls_js()
    )
}

/// Opens the page in Chromium and waits for its first verdict.
fn play(playlist: &str, flags: &[String]) -> HashMap<String, String> {
    verdict(page(playlist), flags)
}

#[track_caller]
fn assert_played(s: &TestServer, verdict: &HashMap<String, String>) {
    assert_eq!(
        verdict.get("ev").map(String::as_str),
        Some("playing"),
        "{verdict:?}"
    );
    assert_eq!(verdict["w"], "320", "decoded video: {verdict:?}");
    let doc = stream_doc(s, "show").unwrap();
    assert!(doc["viewers"]["hls_segment_requests"].as_u64() > Some(0));
}

#[test]
fn hls_js_on_another_origin_plays_live_hls_over_http() {
    let live = LiveTls::start();
    let verdict = play(&live.server.url("/live/show/index.m3u8"), &[]);
    assert_played(&live.server, &verdict);
}

#[test]
fn hls_js_on_another_origin_plays_live_hls_over_https() {
    let live = LiveTls::start();
    let port = live.server.https[0].port();
    let url = format!("https://localhost:{port}/live/show/index.m3u8");
    let verdict = play(&url, std::slice::from_ref(&live.trust));
    assert_played(&live.server, &verdict);
    let h2 = live.http2_connections();
    assert!(h2 > Some(0), "Chromium chose HTTP/2: {h2:?}");
}

/// hls.js in low-latency mode on `ll.m3u8`: it loads parts, and the picture it shows is close to
/// the live edge. The bound is loose (a loaded machine of one or two cores, where Chromium, the
/// debug server and ffmpeg share them and a stall adds to the latency); the figure is printed,
/// and docs/benchmarks.md has the measured ones.
#[track_caller]
fn assert_low_latency(s: &TestServer, verdict: &HashMap<String, String>) {
    assert_played(s, verdict);
    let parts: u64 = verdict["parts"].parse().unwrap();
    assert!(parts > 0, "hls.js loaded LL-HLS parts: {verdict:?}");
    let behind: f64 = verdict["behind"].parse().unwrap();
    eprintln!("hls.js low-latency: {behind:.2} s behind the ingest wall clock, {parts} parts");
    assert!(
        behind >= 0.0,
        "hls.js knew no PROGRAM-DATE-TIME of the picture: {verdict:?}"
    );
    assert!(
        behind < 6.0,
        "picture within 6 s of the ingest (TS HLS is 7-9 s): {verdict:?}"
    );
}

const LOW_LATENCY: &str = "{lowLatencyMode: true}";

#[test]
fn hls_js_plays_ll_hls_in_low_latency_mode_over_http() {
    let live = LiveTls::start();
    let url = live.server.url("/live/show/ll.m3u8");
    let verdict = verdict(page_with(&url, LOW_LATENCY), &[]);
    assert_low_latency(&live.server, &verdict);
}

#[test]
fn hls_js_plays_ll_hls_in_low_latency_mode_over_https_http2() {
    let live = LiveTls::start();
    let port = live.server.https[0].port();
    let url = format!("https://localhost:{port}/live/show/ll.m3u8");
    let verdict = verdict(
        page_with(&url, LOW_LATENCY),
        std::slice::from_ref(&live.trust),
    );
    assert_low_latency(&live.server, &verdict);
    let h2 = live.http2_connections();
    assert!(h2 > Some(0), "Chromium chose HTTP/2: {h2:?}");
}

/// A page that plays `playlist` with hls.js in low-latency mode, seeks to a second after the
/// start of what the player can seek in, and reports `seeked` once it has played two seconds
/// from there: how long that window is, and how far behind the ingest wall clock the picture
/// shown is then (`EXT-X-PROGRAM-DATE-TIME`).
fn seek_back_page(playlist: &str) -> String {
    format!(
        "<!doctype html><meta charset=utf-8><body><video id=v muted autoplay></video>
<script>{}</script><script>
const send = (m) => fetch('/beacon?' + new URLSearchParams(m));
const v = document.getElementById('v');
const hls = new Hls({LOW_LATENCY});
let from = null, span = 0, done = false;
hls.on(Hls.Events.ERROR, (e, d) => {{ if (d.fatal) send({{ev: 'error', msg: d.type + '/' + d.details}}); }});
v.addEventListener('timeupdate', () => {{
  if (from === null && v.currentTime > 0 && v.seekable.length) {{
    span = v.seekable.end(0) - v.seekable.start(0);
    from = v.seekable.start(0) + 1;
    v.currentTime = from;
  }} else if (from !== null && !done && v.currentTime > from + 2 && v.currentTime < from + 6) {{
    done = true;
    const behind = (Date.now() - hls.playingDate.getTime()) / 1000;
    send({{ev: 'seeked', span, behind, w: v.videoWidth}});
  }}
}});
hls.loadSource('{playlist}');
hls.attachMedia(v);
v.play().catch(() => {{}});
</script>",
        hls_js()
    )
}

#[test]
fn hls_js_seeks_back_into_the_ll_hls_dvr_window_of_an_fmp4_recording() {
    let dvr = common::recorded::dvr_stream("dvr");
    let url = format!("http://{}/live/dvr/ll.m3u8", dvr.server.addr);
    let verdict = verdict(seek_back_page(&url), &[]);
    common::browser::assert_played_back_in_dvr(&verdict, "hls.js");
}
