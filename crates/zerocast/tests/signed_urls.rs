//! Signed URLs (issue 12, part 6): titles and live streams under the protected prefixes are
//! served only with a valid, unexpired link; an HLS playlist opened with a scoped link carries it
//! on to its segments, so ffmpeg plays it with nothing special.

mod common;

use common::fixtures::live_ts;
use common::live::{raw_publish, wait_until, Reading, Viewer, WAIT};
use common::{demo_copy, library, TestServer};
use server::auth::signed::Signed;
use std::time::{SystemTime, UNIX_EPOCH};

const SECRET: &[u8] = b"a-signing-secret-for-tests";

fn signer() -> Signed {
    Signed::new(SECRET, vec!["/videos/".into(), "/live/".into()]).unwrap()
}

fn server() -> TestServer {
    let config = server::Config {
        signed: Some(signer()),
        ..server::Config::default()
    };
    let dir = demo_copy();
    TestServer::start_with(config, library(dir.path()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `path?expires=..&sig=..`, signed for the path itself.
fn link(path: &str, expires: u64) -> String {
    format!(
        "{path}?expires={expires}&sig={}",
        signer().sign(path, expires)
    )
}

/// The body of `path` once it answers 200 with `marker` in it (a playlist or manifest that
/// lists what the test needs).
fn body_with(s: &TestServer, path: &str, what: &str, marker: &str) -> String {
    let mut body = String::new();
    wait_until(what, WAIT, || {
        let r = s.get(path, &[]);
        body = String::from_utf8_lossy(&r.body).into_owned();
        r.status == 200 && body.contains(marker)
    });
    body
}

/// The query of a link to every path under `scope`, valid for 5 minutes.
fn scoped(scope: &str) -> String {
    let expires = now() + 300;
    format!(
        "expires={expires}&scope={scope}&sig={}",
        signer().sign(scope, expires)
    )
}

/// The `max-age` of an answer's `Cache-Control`.
fn max_age(r: &common::Resp) -> u64 {
    let cc = r.header("cache-control").unwrap_or("");
    cc.split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no max-age in {cc}"))
}

#[test]
fn a_title_is_served_with_a_valid_link_and_refused_without_one() {
    let s = server();
    let r = s.get(
        &link("/videos/faststart.mp4", now() + 60),
        &[("Range", "bytes=0-99")],
    );
    assert_eq!(r.status, 206);
    let bare = s.get("/videos/faststart.mp4", &[]);
    assert_eq!(bare.status, 403);
    assert!(bare.json()["error"]
        .as_str()
        .unwrap()
        .contains("signed link"));
}

/// An answer through a link is kept by a cache no longer than the link lives: a CDN keying on
/// the link's query must not serve it after it expires.
#[test]
fn an_answer_through_a_link_is_cacheable_no_longer_than_the_link_lives() {
    let s = server();
    let r = s.get(&link("/videos/faststart.mp4", now() + 60), &[]);
    assert_eq!(r.status, 200);
    let max_age = max_age(&r);
    assert!((55..=60).contains(&max_age), "{max_age}");
}

#[test]
fn an_expired_link_is_refused_and_says_so() {
    let s = server();
    let expired = now() - 1;
    let r = s.get(&link("/videos/faststart.mp4", expired), &[]);
    assert_eq!(r.status, 403);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("expired"), "{error}");
}

#[test]
fn a_link_to_one_title_does_not_open_another() {
    let s = server();
    let q = link("/videos/faststart.mp4", now() + 60);
    let other = q.replace("faststart.mp4", "clip.ts");
    assert_eq!(s.get(&other, &[]).status, 403);
}

#[test]
fn the_api_and_the_page_need_no_link() {
    let s = server();
    assert_eq!(s.get("/api/videos", &[]).status, 200);
    assert_eq!(s.get("/healthz", &[]).status, 200);
}

#[test]
fn a_live_ts_viewer_needs_a_link() {
    let s = server();
    let data = std::fs::read(live_ts()).unwrap();
    let _p = raw_publish(s.addr, "/live/show", &data);
    wait_until("the stream", WAIT, || {
        s.get("/api/streams/show", &[]).status == 200
    });
    assert_eq!(s.get("/live/show.ts", &[]).status, 403);
    let v = Viewer::start(s.addr, &link("/live/show.ts", now() + 60), Reading::Fast);
    v.wait_body("a GOP", |b| b.len() >= 3 * common::ts::PACKET);
    common::ts::assert_starts_with_psi_and_keyframe(&v.body().unwrap().0);
}

#[test]
fn ffmpeg_plays_hls_through_a_scoped_link_carried_on_to_the_segments() {
    let s = server();
    let data = std::fs::read(live_ts()).unwrap();
    let _p = raw_publish(s.addr, "/live/show", &data);
    let q = scoped("/live/show/");
    let playlist = format!("/live/show/index.m3u8?{q}");
    let body = body_with(&s, &playlist, "a segment", ".ts?");
    let seg = body.lines().find(|l| !l.starts_with('#')).unwrap();
    assert!(seg.ends_with(&q), "{seg}");
    assert_eq!(s.get(&format!("/live/show/{seg}"), &[]).status, 200);
    let bare = seg.split('?').next().unwrap();
    assert_eq!(s.get(&format!("/live/show/{bare}"), &[]).status, 403);
    common::assert_plays_h264_aac(&s.url(&playlist), "2");
}

#[test]
fn an_ll_hls_playlist_carries_the_scoped_link_and_nothing_else_of_the_query() {
    let s = server();
    // In real time: a TS source's LL-HLS begins with the first request for it.
    let _p = common::live::ts_publisher(&s.url("/live/show"), None);
    let q = scoped("/live/show/");
    // Other parameters (a player's own, or one written to end a quoted URI early) stay behind.
    let playlist = format!("/live/show/ll.m3u8?x=a%22,BYTERANGE=1&{q}&_HLS_skip=YES");
    let body = body_with(&s, &playlist, "a part", "#EXT-X-PART:");
    assert!(!body.contains("BYTERANGE"), "{body}");
    let uris: Vec<&str> = body
        .split("URI=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert!(uris.len() >= 2, "{body}");
    for uri in &uris {
        assert!(uri.ends_with(&format!("?{q}")), "{uri}");
    }
    let part = uris.iter().find(|u| !u.starts_with("init")).unwrap();
    assert_eq!(s.get(&format!("/live/show/{part}"), &[]).status, 200);
    // The hinted part, streamed as it is written, is cacheable no longer than the link lives
    // (five minutes), as every answer through it is.
    let hint = body
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .and_then(|l| l.split('"').next())
        .unwrap();
    let r = s.get(&format!("/live/show/{hint}"), &[]);
    assert_eq!(r.status, 200);
    assert!(max_age(&r) <= 300, "{:?}", r.header("cache-control"));
}

#[test]
fn an_rtmp_player_needs_a_link_signed_for_its_stream() {
    let s = server();
    let _p = common::live::ts_publisher(&s.url("/live/rt"), None);
    common::live::wait_for(&s, "rt", "a keyframe", |d| {
        d["ring_units"].as_u64() > Some(1)
    });
    let bare = format!("rtmp://{}/live/rt", s.rtmp);
    assert!(common::codecs(&bare).is_empty(), "played without a link");
    let expires = now() + 300;
    let other = signer().sign("/live/other", expires);
    let wrong = format!("{bare}?expires={expires}&sig={other}");
    assert!(
        common::codecs(&wrong).is_empty(),
        "played with another stream's link"
    );
    let http = signer().sign("/live/rt", expires);
    let http = format!("{bare}?expires={expires}&sig={http}");
    assert!(
        common::codecs(&http).is_empty(),
        "played with an HTTP path's link"
    );
    let sig = signer().sign("/live/rt.rtmp", expires);
    common::assert_plays_h264_aac(&format!("{bare}?expires={expires}&sig={sig}"), "2");
}

#[test]
fn a_dash_manifest_carries_the_scoped_link_to_its_segments() {
    let s = server();
    let _p = common::live::ts_publisher(&s.url("/live/show"), None);
    let q = scoped("/live/show/");
    let manifest = format!("/live/show/manifest.mpd?{q}");
    let body = body_with(&s, &manifest, "a segment", "<S ");
    let escaped = q.replace('&', "&amp;");
    let init = body
        .split("initialization=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    assert!(init.ends_with(&format!("?{escaped}")), "{init}");
    assert!(
        body.contains(&format!("$Number$.m4s?{escaped}\"")),
        "{body}"
    );
    let init = init.replace("&amp;", "&");
    assert_eq!(s.get(&format!("/live/show/{init}"), &[]).status, 200);
    let bare = init.split('?').next().unwrap();
    assert_eq!(s.get(&format!("/live/show/{bare}"), &[]).status, 403);
}
