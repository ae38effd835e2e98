//! HTTPS, HTTP/2 and RTMPS (issue 12, parts 1 and 3): real clients (curl, ffmpeg, ffprobe, a
//! rustls client) against a certificate from a test CA the tests make, and the hostile cases: a
//! handshake that never completes, a client that speaks no TLS, a thousand stalled handshakes,
//! an idle HTTP/2 connection.

mod common;

use common::fixtures::live_ts;
use common::live::{ffmpeg_publish, wait_for, wait_until, Proc};
use common::tls::{
    connect, curl, demo_bytes, get_on, h2_credit, h2_frames, h2_get, h2_request_frame,
    https_server, TestCa,
};
use common::{require, TestServer};
use server::tls::TlsConfig;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn curl_gets_a_vod_range_over_https_http_1_1() {
    let (s, ca) = https_server(|_| {});
    let (body, status) = curl(
        s.https[0],
        &ca,
        "/videos/faststart.mp4",
        &["--http1.1", "-r", "1000-200999"],
    );
    assert_eq!(status, "1.1 206");
    assert_eq!(body, demo_bytes("faststart.mp4")[1000..201000]);
}

#[test]
fn curl_http2_gets_the_json_api_and_a_vod_range() {
    let (s, ca) = https_server(|_| {});
    let (body, status) = curl(s.https[0], &ca, "/api/videos", &["--http2"]);
    assert_eq!(status, "2 200");
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 5);
    let (body, status) = curl(
        s.https[0],
        &ca,
        "/videos/clip.ts",
        &["--http2", "-r", "0-99999"],
    );
    assert_eq!(status, "2 206");
    assert_eq!(body, demo_bytes("clip.ts")[..100000]);
}

#[test]
fn ffmpeg_publishes_with_put_over_https_and_an_http2_viewer_gets_h264_and_aac() {
    let (s, ca) = https_server(|_| {});
    let url = format!("https://localhost:{}/live/secure", s.https[0].port());
    let ca_file = ca.ca.to_str().unwrap().to_owned();
    let _publisher = ffmpeg_publish(
        &live_ts(),
        &["-re"],
        "mpegts",
        &["-method", "PUT", "-tls_verify", "1", "-ca_file", &ca_file],
        &url,
    );
    wait_for(&s, "secure", "live", |d| d["state"] == "live");
    let (body, status) = curl(
        s.https[0],
        &ca,
        "/live/secure.ts",
        &["--http2", "--max-time", "3"],
    );
    assert_eq!(status, "2 200");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("watched.ts");
    std::fs::write(&file, &body).unwrap();
    assert_eq!(common::codecs(file.to_str().unwrap()), ["aac", "h264"]);
}

/// An HTTP/2 live viewer cut off by the server (here the control API's "drop viewers") sees
/// its stream reset, not ended: a player takes a clean end for the end of the broadcast and
/// does not come back.
#[test]
fn an_http2_viewer_cut_off_sees_its_stream_reset_not_ended() {
    require("curl");
    let mut ca = TestCa::new();
    let (cert, key) = ca.issue();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = server::Config {
        tls: Some(TlsConfig::new(vec![any], cert, key)),
        admin_token: Some("a-long-random-admin-token".into()),
        ..server::Config::default()
    };
    let s = TestServer::start_with(config, server::Library::from_static(&[], common::now()));
    let _publisher =
        common::live::raw_publish(s.addr, "/live/cut", &std::fs::read(live_ts()).unwrap());
    wait_for(&s, "cut", "live", |d| {
        d["state"] == "live" && d["ring_units"].as_u64() > Some(0)
    });
    let port = s.https[0].port();
    let viewer = Proc::spawn(
        Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "--http2",
                "--max-time",
                "30",
                "--cacert",
            ])
            .arg(&ca.ca)
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .arg(format!("https://localhost:{port}/live/cut.ts")),
    );
    wait_for(&s, "cut", "a viewer", |d| d["viewers"]["ts"] == 1);
    let r = common::request(
        s.addr,
        "DELETE",
        "/api/streams/cut/viewers",
        &[("Authorization", "Bearer a-long-random-admin-token")],
    );
    assert_eq!(r.status, 200);
    let (ok, err) = viewer.wait(Duration::from_secs(20));
    assert!(!ok, "curl saw a clean end");
    assert!(err.contains("HTTP/2") || err.contains("stream"), "{err}");
}

#[test]
fn ffprobe_plays_live_hls_over_https() {
    let (s, ca) = https_server(|_| {});
    let url = format!("http://{}/live/hls", s.addr);
    let _publisher = ffmpeg_publish(&live_ts(), &["-re"], "mpegts", &[], &url);
    wait_for(&s, "hls", "two HLS segments", |d| {
        d["hls_segments"].as_u64() >= Some(2)
    });
    let playlist = format!(
        "https://localhost:{}/live/hls/index.m3u8",
        s.https[0].port()
    );
    let (body, status) = curl(s.https[0], &ca, "/live/hls/index.m3u8", &["--http2"]);
    assert_eq!(status, "2 200");
    assert!(String::from_utf8_lossy(&body).contains("#EXTINF"));
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-tls_verify", "1", "-ca_file"])
        .arg(&ca.ca)
        .args(["-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(&playlist)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("h264") && text.contains("aac"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ffmpeg_publishes_and_plays_over_rtmps() {
    let (s, _ca) = https_server(|_| {});
    let rtmps = s.rtmps.unwrap();
    let url = format!("rtmps://localhost:{}/live/rtmps", rtmps.port());
    let _publisher = ffmpeg_publish(&common::fixtures::rtmp_mp4(), &["-re"], "flv", &[], &url);
    wait_for(&s, "rtmps", "live", |d| d["state"] == "live");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("played.flv");
    let (ok, err) = Proc::spawn(
        Command::new("ffmpeg")
            .args([
                "-v", "error", "-nostdin", "-i", &url, "-t", "2", "-c", "copy", "-y",
            ])
            .arg(&out),
    )
    .wait(Duration::from_secs(20));
    assert!(ok, "ffmpeg played rtmps: {err}");
    assert_eq!(common::codecs(out.to_str().unwrap()), ["aac", "h264"]);
}

#[test]
fn plain_http_redirects_to_https_and_https_answers_carry_hsts() {
    let (s, ca) = https_server(|t| {
        t.redirect_http = true;
        t.hsts = Some(Duration::from_secs(31_536_000));
    });
    let r = s.get("/videos/clip.ts?x=1", &[]);
    assert_eq!(r.status, 308);
    let to = format!("https://127.0.0.1:{}/videos/clip.ts?x=1", s.https[0].port());
    assert_eq!(r.header("location"), Some(to.as_str()));
    assert_eq!(
        s.get("/healthz", &[]).status,
        200,
        "health checks are not redirected"
    );
    let no_host = common::live::send_raw(s.addr, "GET /videos/clip.ts HTTP/1.0\r\n\r\n", b"");
    assert_eq!(
        no_host.status, 400,
        "without a Host, nothing is served in the clear"
    );
    let mut tls = connect(s.https[0], &ca.ca, &[b"http/1.1"]);
    let r = get_on(&mut tls, "/healthz");
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
}

/// A HEAD on a listener that redirects to HTTPS gets the redirect's head, or the 400 of a head
/// without a Host, and no body.
#[test]
fn a_head_request_on_a_redirecting_listener_gets_no_body() {
    let (s, _ca) = https_server(|t| t.redirect_http = true);
    for (head, status) in [
        ("HEAD /videos/clip.ts HTTP/1.1\r\nHost: a\r\n\r\n", "308"),
        ("HEAD /videos/clip.ts HTTP/1.0\r\n\r\n", "400"),
    ] {
        let mut c = std::net::TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(head.as_bytes()).unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        let text = String::from_utf8_lossy(&got);
        assert!(text[9..].starts_with(status), "{text}");
        let end = text.find("\r\n\r\n").expect("a whole head") + 4;
        assert_eq!(&text[end..], "", "no body after the head");
    }
}

/// On a listener that redirects to HTTPS, nothing but the health check is served in the clear:
/// not a request pipelined after it, nor one whose head the server does not take.
#[test]
fn plain_http_serves_nothing_in_the_clear_after_a_health_check_or_with_an_odd_head() {
    let (s, _ca) = https_server(|t| t.redirect_http = true);
    let mut sock = TcpStream::connect(s.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let two =
        "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /videos/clip.ts HTTP/1.1\r\nHost: a\r\n\r\n";
    sock.write_all(two.as_bytes()).unwrap();
    let mut got = Vec::new();
    let _ = sock.read_to_end(&mut got);
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        !got.contains("video/mp2t") && !got.contains("HTTP/1.1 206"),
        "the second request is not served in the clear: {got}"
    );
    let names: Vec<String> = (0..80).map(|i| format!("X-Pad-{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let r = common::request(s.addr, "GET", "/videos/clip.ts", &headers);
    assert_eq!(r.status, 400);
}

#[test]
fn a_handshake_that_never_completes_is_dropped_after_the_timeout() {
    let (s, ca) = https_server(|t| t.handshake_timeout = Duration::from_secs(1));
    let mut sock = TcpStream::connect(s.https[0]).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut b = [0u8; 64];
    let closed = matches!(sock.read(&mut b), Ok(0) | Err(_));
    // The timeout is 1 s; the client would give up at 10 s (a loaded machine lies in between).
    assert!(
        closed && started.elapsed() < Duration::from_secs(8),
        "closed after {:?}",
        started.elapsed()
    );
    let (metrics, _) = curl(s.https[0], &ca, "/metrics", &[]);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("zerocast_tls_handshakes_total{result=\"timed_out\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_client_speaking_plain_http_to_the_tls_port_is_closed_and_others_are_served() {
    let (s, ca) = https_server(|_| {});
    let mut sock = TcpStream::connect(s.https[0]).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = sock.read_to_end(&mut got);
    // A TLS alert record (type 21) at most; never an HTTP answer.
    assert!(got.is_empty() || got[0] == 21, "{got:?}");
    let (_, status) = curl(s.https[0], &ca, "/healthz", &[]);
    assert_eq!(status, "2 200");
}

#[test]
fn a_thousand_stalled_handshakes_do_not_keep_others_out() {
    // A handshake timeout longer than the bound below: a client served within the bound was not
    // waiting for the stalled ones to be dropped.
    let (s, ca) = https_server(|t| t.handshake_timeout = Duration::from_secs(8));
    // Each sends the start of a ClientHello record and stops.
    let stalled: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut c = TcpStream::connect(s.https[0]).unwrap();
            c.write_all(&[22, 3, 1, 0x02, 0x00, 1, 0, 1]).unwrap();
            c
        })
        .collect();
    let started = Instant::now();
    let mut tls = connect(s.https[0], &ca.ca, &[b"http/1.1"]);
    assert_eq!(get_on(&mut tls, "/healthz").status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "served after {:?}",
        started.elapsed()
    );
    // And they are all let go once their time is up.
    wait_until(
        "the stalled handshakes timed out",
        Duration::from_secs(40),
        || {
            let m = get_on(&mut tls, "/metrics");
            String::from_utf8_lossy(&m.body)
                .contains("zerocast_tls_handshakes_total{result=\"timed_out\"} 1000")
        },
    );
    drop(stalled);
}

/// An HTTPS server of an empty library (`tweak` changes its config), and a TLS connection to it
/// whose ALPN chose `h2`.
fn h2_to_an_empty_library(
    tweak: impl FnOnce(&mut server::Config),
) -> (TestServer, impl Read + Write) {
    let mut ca = TestCa::new();
    let (cert, key) = ca.issue();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut config = server::Config {
        tls: Some(TlsConfig::new(vec![any], cert, key)),
        ..server::Config::default()
    };
    tweak(&mut config);
    let empty = server::Library::from_static(&[], std::time::SystemTime::now());
    let s = TestServer::start_with(config, empty);
    let tls = connect(s.https[0], &ca.ca, &[b"h2"]);
    (s, tls)
}

/// Reads HTTP/2 frames as a client does until the server closes the connection; each frame's
/// type.
fn frames_until_closed(tls: &mut (impl Read + Write)) -> Vec<u8> {
    let mut types = Vec::new();
    h2_frames(tls, |_, kind, _, _, _| {
        types.push(kind);
        true
    });
    types
}

/// A client that gives the server no flow-control window (SETTINGS_INITIAL_WINDOW_SIZE 0) and
/// answers PINGs: its connection is dropped after the send timeout, as an HTTP/1.1 client that
/// reads nothing is; it would otherwise hold its responses for as long as it likes.
#[test]
fn an_http2_client_that_gives_no_window_is_dropped_after_the_send_timeout() {
    let types = dropped_after_the_send_timeout(0);
    // The answer's HEADERS (type 1) came; no DATA (type 0) could.
    assert!(
        types.contains(&1) && !types.contains(&0),
        "frames: {types:?}"
    );
}

/// A client that gives a stream one byte of credit: the response's last byte is held back
/// until it gives the rest, so the stream stays watched and the connection is dropped after
/// the send timeout (otherwise hyper would queue the whole body as done, holding what it is a
/// slice of, a cached block or a title's pages, with no timer, for as long as the client likes).
#[test]
fn an_http2_client_that_gives_one_byte_of_credit_is_dropped_after_the_send_timeout() {
    dropped_after_the_send_timeout(1);
}

// The lower bounds below are half the 1 s timeout: the server's timer starts before the test's
// clock does (when it takes the connection or the request), and a loaded machine can pause the
// test between the two; they tell a close at its time from one at once.

/// A client that sends SETTINGS with INITIAL_WINDOW_SIZE = `window`, then GET /api/videos on
/// stream 1, and answers PINGs: its connection is closed after the 1 s send timeout (not the
/// idle timeout, nor never). Returns the types of the frames it got.
fn dropped_after_the_send_timeout(window: u32) -> Vec<u8> {
    let (_s, tls) = h2_to_an_empty_library(|c| c.send_timeout = Duration::from_secs(1));
    let mut tls = h2_get(tls, "/api/videos", window, 0);
    let started = Instant::now();
    let types = frames_until_closed(&mut tls);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(8),
        "closed after {waited:?}; frames: {types:?}"
    );
    types
}

/// A browser's paused video gives its stream no credit while the page goes on asking on the
/// same connection: that stream alone is reset after the send timeout, and the connection and
/// its other streams go on (the whole connection used to be dropped).
#[test]
fn an_http2_stream_without_credit_is_reset_alone_while_the_others_go_on() {
    reset_alone_while_others("GET");
}

/// The same where the other requests' answers have no body (HEAD, 304): they move all the same.
#[test]
fn an_http2_stream_without_credit_is_reset_alone_while_bodiless_answers_go_on() {
    reset_alone_while_others("HEAD");
}

/// Stream 1 gets no credit while `method /healthz` is asked every 100 ms on later streams.
fn reset_alone_while_others(method: &str) {
    let (_s, tls) = h2_to_an_empty_library(|c| c.send_timeout = Duration::from_secs(1));
    // Stream 1 gets no window; each later one is given credit of its own.
    let mut tls = h2_get(tls, "/api/videos", 0, 1 << 20);
    let ask = |tls: &mut dyn Write, stream: u32| {
        let mut out = h2_request_frame(stream, method, "/healthz");
        out.extend_from_slice(&h2_credit(stream, 1 << 16));
        tls.write_all(&out).unwrap();
    };
    ask(&mut tls, 3);
    let started = Instant::now();
    let (mut next, mut reset, mut answered_after, mut goaway) = (3, None, 0, false);
    h2_frames(&mut tls, |tls, kind, flags, stream, payload| {
        match (kind, stream) {
            (3, 1) => reset = Some((started.elapsed(), payload.to_vec())),
            (7, _) => goaway = true,
            (0 | 1, s) if s >= 3 && flags & 1 == 1 => {
                answered_after += usize::from(reset.is_some());
                // The page asks again a moment later.
                std::thread::sleep(Duration::from_millis(100));
                next += 2;
                ask(tls, next);
            }
            _ => {}
        }
        !goaway && answered_after < 3 && started.elapsed() < Duration::from_secs(10)
    });
    assert!(!goaway, "the connection was ended");
    let (at, code) = reset.expect("stream 1 was not reset");
    assert!(
        at >= Duration::from_millis(500) && at < Duration::from_secs(5),
        "reset after {at:?}"
    );
    assert_eq!(code, 8u32.to_be_bytes(), "RST_STREAM CANCEL");
    assert_eq!(answered_after, 3, "the other streams went on");
}

#[test]
fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    // The idle limit is the header-read timeout, as for HTTP/1.1 keep-alive.
    let (_s, mut tls) = h2_to_an_empty_library(|c| c.header_read_timeout = Duration::from_secs(1));
    // The client preface and an empty SETTINGS frame, then nothing.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    tls.flush().unwrap();
    // Read frames as a client does: acknowledge SETTINGS and PINGs, note each frame's type.
    let started = Instant::now();
    let types = frames_until_closed(&mut tls);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(8),
        "closed after {waited:?}"
    );
    // A GOAWAY frame (type 7) came before the close.
    assert!(types.contains(&7), "frames: {types:?}");
}

/// A client whose TLS handshake chose `h2` and that then sends no preface (or half of one):
/// its connection is dropped an idle time after the GOAWAY, not held (with its file
/// descriptor and its place under the connection limits) for as long as it stays.
#[test]
fn an_http2_connection_that_never_sends_its_preface_is_dropped() {
    let (_s, mut tls) = h2_to_an_empty_library(|c| c.header_read_timeout = Duration::from_secs(1));
    tls.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    tls.flush().unwrap();
    let started = Instant::now();
    let mut b = [0u8; 4096];
    let closed = loop {
        match tls.read(&mut b) {
            Ok(0) | Err(_) => break started.elapsed(),
            Ok(_) => {}
        }
    };
    assert!(
        closed >= Duration::from_millis(500) && closed < Duration::from_secs(8),
        "closed after {closed:?}"
    );
}

#[test]
fn an_http2_viewer_and_playlist_need_their_jwt_as_over_http_1_1() {
    use server::auth::{Credential, Keys, Rule, Rules};
    let secret = b"a test secret of at least 32 bytes!!";
    let mut ca = TestCa::new();
    let (cert, key) = ca.issue();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = server::Config {
        tls: Some(TlsConfig::new(vec![any], cert, key)),
        auth: Rules {
            rules: vec![Rule {
                streams: "*".into(),
                publish: vec![Credential::Key],
                read: vec![Credential::Jwt],
            }],
            jwt: Some(std::sync::Arc::new(
                Keys::new(Some(secret), &[], 5).unwrap(),
            )),
            jwks: None,
        },
        ..server::Config::default()
    };
    let s = TestServer::start_with(
        config,
        server::Library::from_static(&[], std::time::SystemTime::now()),
    );
    let _publisher = ffmpeg_publish(&live_ts(), &["-re"], "mpegts", &[], &s.url("/live/h2"));
    wait_for(&s, "h2", "a segment", |d| {
        d["hls_segments"].as_u64() >= Some(1)
    });
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let claims = serde_json::json!({"action": "read", "stream": "h2", "exp": exp});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap();
    let (_, status) = curl(s.https[0], &ca, "/live/h2.ts", &["--http2"]);
    assert_eq!(status, "2 401");
    let (_, status) = curl(s.https[0], &ca, "/live/h2/index.m3u8", &["--http2"]);
    assert_eq!(status, "2 401");
    let (body, status) = curl(
        s.https[0],
        &ca,
        &format!("/live/h2/index.m3u8?jwt={token}"),
        &["--http2"],
    );
    assert_eq!(status, "2 200");
    assert!(String::from_utf8_lossy(&body).contains(&format!("?jwt={token}")));
    let (body, status) = curl(
        s.https[0],
        &ca,
        &format!("/live/h2.ts?jwt={token}"),
        &["--http2", "--max-time", "2"],
    );
    assert_eq!(status, "2 200");
    assert!(body.len() > 188 && body[0] == 0x47, "TS bytes");
}
