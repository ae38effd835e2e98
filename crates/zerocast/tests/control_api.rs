//! The control API (issue 12, part 7): with the admin token, a stream's publisher (HTTP or
//! RTMP) and its viewers can be disconnected; without it, nothing happens; the read-only API can
//! be made private.

mod common;

use common::fixtures::{live_ts, long_rtmp_mp4};
use common::live::{
    raw_publish, rtmp_publisher, stream_doc, wait_for, wait_until, Reading, Viewer, WAIT,
};
use common::{request, Resp, TestServer};

const TOKEN: &str = "s3cret-admin-token";

fn server_with(admin_token: Option<&str>, private_api: bool) -> TestServer {
    let config = server::Config {
        admin_token: admin_token.map(String::from),
        private_api,
        ..server::Config::default()
    };
    TestServer::start_with(config, server::Library::from_static(&[], common::now()))
}

fn delete(s: &TestServer, path: &str, token: Option<&str>) -> Resp {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    request(s.addr, "DELETE", path, &headers)
}

/// A stream published over HTTP from the live fixture, all at once; the connection stays open.
fn publishing(s: &TestServer) -> common::live::ChunkedPost {
    let data = std::fs::read(live_ts()).unwrap();
    let p = raw_publish(s.addr, "/live/show", &data);
    wait_for(s, "show", "live", |d| {
        d["state"] == "live" && d["ring_units"].as_u64() > Some(0)
    });
    p
}

#[test]
fn the_admin_token_disconnects_an_http_publisher_and_the_stream_ends() {
    let s = server_with(Some(TOKEN), false);
    let publisher = publishing(&s);
    let r = delete(&s, "/api/streams/show/publisher", Some(TOKEN));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["stream"], "show");
    let doc = wait_for(&s, "show", "ended", |d| d["state"] == "ended");
    assert!(
        doc["end_reason"].as_str().unwrap().contains("control API"),
        "{doc}"
    );
    // The publisher is told why, and its connection closed.
    let answer = publisher.end();
    assert_eq!(answer.status, 403);
}

#[test]
fn the_admin_token_disconnects_an_rtmp_publisher() {
    let s = server_with(Some(TOKEN), false);
    let publisher = rtmp_publisher(&s, "/live/show", &long_rtmp_mp4(), &["-re"]);
    wait_for(&s, "show", "live", |d| d["state"] == "live");
    assert_eq!(
        delete(&s, "/api/streams/show/publisher", Some(TOKEN)).status,
        200
    );
    wait_for(&s, "show", "ended", |d| d["state"] == "ended");
    let (ok, _) = publisher.wait(WAIT);
    assert!(!ok, "ffmpeg sees its publish cut off");
}

#[test]
fn the_admin_token_disconnects_viewers_and_the_stream_goes_on() {
    let s = server_with(Some(TOKEN), false);
    let _publisher = publishing(&s);
    let viewer = Viewer::start(s.addr, "/live/show.ts", Reading::Fast);
    wait_for(&s, "show", "a viewer", |d| d["viewers"]["ts"] == 1);
    let r = delete(&s, "/api/streams/show/viewers", Some(TOKEN));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["viewers"], 1);
    viewer.wait_closed();
    wait_for(&s, "show", "no viewers", |d| d["viewers"]["ts"] == 0);
    assert_eq!(stream_doc(&s, "show").unwrap()["state"], "live");
}

#[test]
fn without_the_right_token_nothing_is_disconnected() {
    let s = server_with(Some(TOKEN), false);
    let _publisher = publishing(&s);
    let none = delete(&s, "/api/streams/show/publisher", None);
    assert_eq!(none.status, 401);
    assert_eq!(
        none.header("www-authenticate"),
        Some("Bearer realm=\"zerocast admin\"")
    );
    assert_eq!(
        delete(&s, "/api/streams/show/publisher", Some("wrong")).status,
        403
    );
    assert_eq!(stream_doc(&s, "show").unwrap()["state"], "live");
}

/// A publisher's address is its personal data: the admin sees it, the public API does not.
#[test]
fn the_publishers_address_is_shown_to_the_admin_alone() {
    let s = server_with(Some(TOKEN), false);
    let _publisher = publishing(&s);
    let bearer = format!("Bearer {TOKEN}");
    let admin = s
        .get("/api/streams/show", &[("Authorization", &bearer)])
        .json();
    let address: std::net::SocketAddr = admin["publisher"].as_str().unwrap().parse().unwrap();
    assert_eq!(address.ip().to_string(), "127.0.0.1");
    let public = stream_doc(&s, "show").unwrap();
    assert_eq!(public["state"], "live");
    assert_eq!(public["publisher"], serde_json::Value::Null, "{public}");
    let listed = s.get("/api/streams", &[]).json();
    assert_eq!(listed[0]["publisher"], serde_json::Value::Null, "{listed}");
    let wrong = s
        .get("/api/streams/show", &[("Authorization", "Bearer not-it")])
        .json();
    assert_eq!(wrong["publisher"], serde_json::Value::Null, "{wrong}");
}

#[test]
fn without_an_admin_token_configured_the_control_api_is_off() {
    let s = server_with(None, false);
    let _publisher = publishing(&s);
    let r = delete(&s, "/api/streams/show/publisher", Some(TOKEN));
    assert_eq!(r.status, 403);
    assert!(r.json()["error"].as_str().unwrap().contains("admin_token"));
    assert_eq!(stream_doc(&s, "show").unwrap()["state"], "live");
}

#[test]
fn kicking_a_stream_without_a_publisher_is_a_409_and_an_unknown_stream_a_404() {
    let s = server_with(Some(TOKEN), false);
    assert_eq!(
        delete(&s, "/api/streams/nope/publisher", Some(TOKEN)).status,
        404
    );
    let publisher = publishing(&s);
    drop(publisher);
    wait_for(&s, "show", "reconnecting", |d| d["state"] != "live");
    assert_eq!(
        delete(&s, "/api/streams/show/publisher", Some(TOKEN)).status,
        409
    );
}

#[test]
fn a_private_api_needs_the_token_and_the_media_routes_do_not() {
    let s = server_with(Some(TOKEN), true);
    let data = std::fs::read(live_ts()).unwrap();
    let _publisher = raw_publish(s.addr, "/live/show", &data);
    // The media routes stay public: the playlist comes without a token.
    wait_until("the playlist", WAIT, || {
        s.get("/live/show/index.m3u8", &[]).status == 200
    });
    assert_eq!(s.get("/api/streams", &[]).status, 401);
    assert_eq!(s.get("/api/videos", &[]).status, 401);
    assert_eq!(s.get("/metrics", &[]).status, 401);
    // The page lists what the API does: private too.
    assert_eq!(s.get("/", &[]).status, 401);
    let bearer = format!("Bearer {TOKEN}");
    let with = s.get("/api/streams/show", &[("Authorization", &bearer)]);
    assert_eq!(with.status, 200);
    assert_eq!(with.json()["state"], "live");
}

#[test]
fn a_preflight_for_the_control_api_allows_delete() {
    let s = server_with(Some(TOKEN), false);
    let r = request(
        s.addr,
        "OPTIONS",
        "/api/streams/show/publisher",
        &[
            ("Origin", "https://admin.example"),
            ("Access-Control-Request-Method", "DELETE"),
        ],
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("DELETE, OPTIONS")
    );
}

fn post(s: &TestServer, path: &str, token: Option<&str>) -> Resp {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    headers.push(("Content-Length", "0"));
    request(s.addr, "POST", path, &headers)
}

/// A drain asked for through the control API: `/readyz` answers 503 while everything is still
/// served for the drain delay, then the server stops accepting and ends its live viewers'
/// responses with the last chunk, so they see a clean end rather than a reset.
#[test]
fn a_drain_turns_readyz_to_503_then_stops_accepting_and_ends_live_viewers_cleanly() {
    let config = server::Config {
        admin_token: Some(TOKEN.into()),
        drain_delay: std::time::Duration::from_millis(1500),
        shutdown_grace: std::time::Duration::from_secs(3),
        ..server::Config::default()
    };
    let s = TestServer::start_with(config, server::Library::from_static(&[], common::now()));
    assert_eq!(request(s.addr, "GET", "/readyz", &[]).status, 200);
    let _publisher = publishing(&s);
    let viewer = Viewer::start(s.addr, "/live/show.ts", Reading::Fast);
    viewer.wait_body("the first bytes", |b| !b.is_empty());
    assert_eq!(
        post(&s, "/api/drain", None).status,
        401,
        "no token, no drain"
    );
    assert_eq!(request(s.addr, "GET", "/readyz", &[]).status, 200);
    let r = post(&s, "/api/drain", Some(TOKEN));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    // During the delay: not ready, but still serving.
    let ready = request(s.addr, "GET", "/readyz", &[]);
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body, b"draining\n");
    assert_eq!(request(s.addr, "GET", "/healthz", &[]).status, 200);
    wait_until("accepting to stop", WAIT, || {
        std::net::TcpStream::connect(s.addr).is_err()
    });
    wait_until("the viewer's response to end", WAIT, || {
        viewer.body().is_some_and(|(_, ended)| ended)
    });
    let (resp, body, ended) = viewer.response();
    assert_eq!(resp.status, 200);
    assert!(
        ended && !body.is_empty(),
        "a clean end after {} bytes",
        body.len()
    );
}
