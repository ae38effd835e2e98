//! CORS (issue 12, part 5): every route a browser player uses answers pages of other origins
//! (`*` by default, or a configured list), exposes the headers players read, and answers
//! preflights; a real Chromium on another origin reads ranges and validators.

mod common;

use common::browser::{beacon_server, Chromium};
use common::fixtures::live_ts;
use common::live::{raw_publish, wait_for};
use common::{demo_copy, library, request, Resp, TestServer};
use server::cors::Cors;
use std::time::{Duration, Instant};

const ORIGIN: (&str, &str) = ("Origin", "https://player.example");
const EXPOSED: &str = "Content-Range, Content-Length, ETag, Accept-Ranges";

/// A server on a copy of the demo clips, with `cors`.
fn server_with(cors: Cors) -> TestServer {
    let config = server::Config {
        cors,
        ..server::Config::default()
    };
    let dir = demo_copy();
    TestServer::start_with(config, library(dir.path()))
}

#[track_caller]
fn assert_readable_by_any_origin(r: &Resp, what: &str) {
    assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{what}");
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some(EXPOSED),
        "{what}"
    );
}

#[test]
fn a_vod_range_is_readable_by_any_origin_with_content_range_exposed() {
    let s = server_with(Cors::Any);
    let r = s.get("/videos/faststart.mp4", &[ORIGIN, ("Range", "bytes=0-99")]);
    assert_eq!(r.status, 206);
    assert_readable_by_any_origin(&r, "a range of a title");
}

#[test]
fn the_json_api_errors_and_the_page_routes_are_readable_by_any_origin() {
    let s = server_with(Cors::Any);
    for path in [
        "/api/videos",
        "/api/videos/faststart.mp4",
        "/api/streams",
        "/videos/nope",
    ] {
        let r = s.get(path, &[ORIGIN]);
        assert_readable_by_any_origin(&r, path);
    }
}

#[test]
fn a_preflight_is_answered_204_with_the_methods_and_range_allowed() {
    let s = server_with(Cors::Any);
    let r = request(
        s.addr,
        "OPTIONS",
        "/videos/faststart.mp4",
        &[
            ORIGIN,
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "range, if-none-match"),
        ],
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, HEAD, OPTIONS")
    );
    let allowed = r
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("range") && allowed.contains("if-none-match"),
        "{allowed}"
    );
    assert_eq!(r.header("access-control-max-age"), Some("86400"));
}

#[test]
fn an_options_request_for_a_path_no_route_has_is_a_404() {
    let s = server_with(Cors::Any);
    assert_eq!(
        request(s.addr, "OPTIONS", "/nowhere", &[ORIGIN]).status,
        404
    );
}

#[test]
fn live_hls_and_ts_viewers_are_readable_by_any_origin() {
    let s = server_with(Cors::Any);
    let data = std::fs::read(live_ts()).unwrap();
    let _p = raw_publish(s.addr, "/live/show", &data);
    wait_for(&s, "show", "a segment", |d| {
        d["hls_segments"].as_u64() >= Some(1)
    });
    let playlist = s.get("/live/show/index.m3u8", &[ORIGIN]);
    assert_readable_by_any_origin(&playlist, "the playlist");
    let body = String::from_utf8(playlist.body).unwrap();
    let seg = body.lines().find(|l| l.ends_with(".ts")).unwrap();
    assert_readable_by_any_origin(&s.get(&format!("/live/show/{seg}"), &[ORIGIN]), "a segment");
    // A `.ts` viewer's head: read it and drop the connection.
    let v = common::live::Viewer::start(s.addr, "/live/show.ts", common::live::Reading::Fast);
    v.wait_body("the head", |_| true);
    let (head, _, _) = v.response();
    assert_readable_by_any_origin(&head, "a .ts viewer");
}

#[test]
fn with_a_list_only_a_listed_origin_is_allowed_and_answers_vary_by_origin() {
    let s = server_with(Cors::Origins(vec!["https://player.example".into()]));
    let ok = s.get("/api/videos", &[ORIGIN]);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://player.example")
    );
    assert_eq!(ok.header("vary"), Some("Origin"));
    let other = s.get("/api/videos", &[("Origin", "https://evil.example")]);
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);
    assert_eq!(other.header("vary"), Some("Origin"));
}

/// A page that fetches a range of a title (reading `Content-Range` and `ETag`), then the same
/// range with `If-None-Match` (not CORS-safelisted: a preflight first), then the JSON API, and
/// reports each step or the error.
fn page(zerocast: &str) -> String {
    format!(
        "<!doctype html><meta charset=utf-8><script>
const z = '{zerocast}';
const send = (m) => fetch('/beacon?' + new URLSearchParams(m));
(async () => {{
  try {{
    const r = await fetch(z + '/videos/faststart.mp4', {{headers: {{Range: 'bytes=0-99'}}}});
    const len = (await r.arrayBuffer()).byteLength;
    send({{ev: 'range', status: r.status, cr: r.headers.get('content-range'), etag: r.headers.get('etag'), len}});
    const c = await fetch(z + '/videos/faststart.mp4', {{headers: {{Range: 'bytes=0-99', 'If-None-Match': '\"nope\"'}}}});
    send({{ev: 'preflighted', status: c.status}});
    const j = await (await fetch(z + '/api/videos')).json();
    send({{ev: 'api', n: j.length}});
  }} catch (e) {{ send({{ev: 'error', msg: String(e)}}); }}
}})();
</script>"
    )
}

/// Opens the page in Chromium; returns its reports by event name, up to `api` or `error`.
fn browse(
    s: &TestServer,
) -> std::collections::HashMap<String, std::collections::HashMap<String, String>> {
    let (base, beacons) = beacon_server(page(&s.url("")));
    let _chromium = Chromium::open(&format!("{base}/page.html"));
    let mut seen = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !seen.contains_key("api") && !seen.contains_key("error") {
        if let Ok(b) = beacons.recv_timeout(Duration::from_millis(200)) {
            seen.insert(b["ev"].clone(), b);
        }
    }
    seen
}

#[test]
fn chromium_on_another_origin_reads_ranges_validators_and_the_api() {
    let s = server_with(Cors::Any);
    let seen = browse(&s);
    assert!(!seen.contains_key("error"), "{seen:?}");
    let range = &seen["range"];
    assert_eq!(range["status"], "206");
    assert_eq!(range["cr"], "bytes 0-99/274377", "Content-Range is exposed");
    assert!(range["etag"].starts_with('"'), "ETag is exposed: {range:?}");
    assert_eq!(range["len"], "100");
    assert_eq!(seen["preflighted"]["status"], "206", "the preflight passed");
    assert_eq!(seen["api"]["n"], "5");
}

#[test]
fn chromium_on_another_origin_is_refused_when_cors_is_off() {
    let s = server_with(Cors::Off);
    let seen = browse(&s);
    let e = seen
        .get("error")
        .unwrap_or_else(|| panic!("the page read across origins: {seen:?}"));
    assert!(e["msg"].contains("Failed to fetch"), "{e:?}");
}
