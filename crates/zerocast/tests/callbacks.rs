//! HTTP callbacks (issue 12, part 6): `on_publish`, `on_play` and `on_unpublish` POSTed as JSON
//! over http and https, with their timeout and fail-closed default; what the service hears, and
//! that refusals touch nothing.

mod common;

use common::auth::{publish_status, server};
use common::fixtures::{live_ts, rtmp_mp4};
use common::live::{ffmpeg_publish, raw_publish, stream_doc, wait_for};
use common::require;
use server::auth::hooks::{parse_url, Hooks};
use server::auth::Rules;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// What the callback server does with each request.
#[derive(Clone)]
enum Answer {
    Status(u16),
    /// The status, once the test says so (a service that thinks until then).
    When(u16, std::sync::Arc<std::sync::Mutex<mpsc::Receiver<()>>>),
    /// Reads the request and never answers.
    Hang,
}

/// A callback service on 127.0.0.1: answers every request with `answer` and reports each
/// request's (path, JSON body).
fn hook_server(answer: Answer) -> (String, mpsc::Receiver<(String, serde_json::Value)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut len = 0;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) <= 2 {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let _ = tx.send((path, serde_json::from_slice(&body).unwrap_or_default()));
            match &answer {
                Answer::Status(code) | Answer::When(code, _) => {
                    if let Answer::When(_, go) = &answer {
                        let _ = go.lock().unwrap().recv_timeout(Duration::from_secs(30));
                    }
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
                Answer::Hang => held.push(conn),
            }
        }
    });
    (base, rx)
}

fn hooks(base: &str) -> Hooks {
    let mut h = Hooks::default();
    h.on_publish = Some(parse_url(&format!("{base}/on_publish")).unwrap());
    h.on_play = Some(parse_url(&format!("{base}/on_play")).unwrap());
    h.on_unpublish = Some(parse_url(&format!("{base}/on_unpublish")).unwrap());
    h.timeout = Duration::from_millis(500);
    h
}

/// The callbacks at `base` with `on_play` alone (publishers are admitted without a call).
fn play_hooks(base: &str) -> Hooks {
    let mut h = hooks(base);
    h.on_publish = None;
    h
}

/// The live fixture published to `s` as `name` (HTTP), once it has a segment.
fn live_stream(s: &common::TestServer, name: &str) -> common::live::ChunkedPost {
    let p = raw_publish(
        s.addr,
        &format!("/live/{name}"),
        &std::fs::read(live_ts()).unwrap(),
    );
    wait_for(s, name, "a segment", |d| {
        d["hls_segments"].as_u64() >= Some(1)
    });
    p
}

#[test]
fn on_publish_answering_500_refuses_the_publisher() {
    let (base, calls) = hook_server(Answer::Status(500));
    let s = server(Rules::default(), Some(hooks(&base)));
    assert_eq!(publish_status(&s, "/live/hooked?token=abc&jwt=x.y.z"), 403);
    let (path, body) = calls.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(path, "/on_publish");
    assert_eq!(body["action"], "publish");
    assert_eq!(body["stream"], "hooked");
    assert_eq!(body["protocol"], "http");
    assert_eq!(
        body["query"], "token=abc&jwt=-",
        "credentials are not passed on"
    );
    assert!(body["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(stream_doc(&s, "hooked").is_none(), "refusals touch nothing");
}

#[test]
fn a_callback_that_never_answers_refuses_after_its_timeout() {
    let (base, calls) = hook_server(Answer::Hang);
    let s = server(Rules::default(), Some(hooks(&base)));
    let started = std::time::Instant::now();
    assert_eq!(publish_status(&s, "/live/hooked"), 403);
    // The callback's timeout is 500 ms; the answer comes after it, and long before the client's
    // own 20 s limit (the refusal's lingering close adds up to 1 s; a loaded machine, more).
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(calls.recv_timeout(Duration::from_secs(1)).is_ok());
}

#[test]
fn a_callback_that_cannot_be_reached_admits_only_when_fail_open() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let s = server(Rules::default(), Some(hooks(&base)));
    assert_eq!(publish_status(&s, "/live/a"), 403, "fail-closed by default");
    let mut open = hooks(&base);
    open.fail_open = true;
    let s = server(Rules::default(), Some(open));
    assert_eq!(publish_status(&s, "/live/a"), 200);
}

#[test]
fn on_play_and_on_unpublish_hear_of_viewers_and_the_end_of_a_publish() {
    let (base, calls) = hook_server(Answer::Status(204));
    let s = server(Rules::default(), Some(hooks(&base)));
    let mut p = raw_publish(s.addr, "/live/told", &std::fs::read(live_ts()).unwrap());
    wait_for(&s, "told", "a segment", |d| {
        d["hls_segments"].as_u64() >= Some(1)
    });
    assert_eq!(s.get("/live/told/index.m3u8?x=1", &[]).status, 200);
    p.send(&[], Duration::ZERO);
    assert_eq!(p.end().status, 200);
    let mut seen: Vec<(String, serde_json::Value)> = Vec::new();
    while seen.len() < 3 {
        seen.push(
            calls
                .recv_timeout(Duration::from_secs(5))
                .expect("three calls"),
        );
    }
    let paths: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["/on_publish", "/on_play", "/on_unpublish"]);
    assert_eq!(seen[1].1["query"], "x=1");
    assert_eq!(seen[2].1["action"], "unpublish");
}

/// A publisher admitted by `on_publish` that resets its connection before it is told to go on
/// (`100 Continue`): its session ends, and `on_unpublish` hears of it as of any other end.
#[test]
fn a_publisher_gone_before_its_100_continue_is_told_to_on_unpublish() {
    let (go, told) = mpsc::channel();
    let told = std::sync::Arc::new(std::sync::Mutex::new(told));
    let (base, calls) = hook_server(Answer::When(204, told));
    let s = server(Rules::default(), Some(hooks(&base)));
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    write!(
        c,
        "PUT /live/gone HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n"
    )
    .unwrap();
    let (path, _) = calls.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(path, "/on_publish");
    // Closed with a reset (linger 0) while the service thinks: the 100 Continue cannot go.
    common::reset(c);
    go.send(()).unwrap();
    let (path, body) = calls
        .recv_timeout(Duration::from_secs(10))
        .expect("on_unpublish called");
    assert_eq!(path, "/on_unpublish");
    assert_eq!(body["stream"], "gone");
}

/// A DASH player is asked about as an HLS one is: refused by `on_play`, its manifest is a 403,
/// and the callback is told no more than that the service refused.
#[test]
fn a_dash_manifest_asks_on_play_as_a_playlist_does() {
    let (base, calls) = hook_server(Answer::Status(403));
    let s = server(Rules::default(), Some(play_hooks(&base)));
    let _p = live_stream(&s, "dashed");
    let r = s.get("/live/dashed/manifest.mpd", &[]);
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let (path, body) = calls.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (path.as_str(), &body["stream"]),
        ("/on_play", &"dashed".into())
    );
}

/// A player reloading its playlist asks the service once in a few seconds, with its answer
/// (here a refusal) holding for the reloads; another query is another question.
#[test]
fn playlist_reloads_ask_on_play_once_and_its_answer_holds_for_them() {
    let (base, calls) = hook_server(Answer::Status(403));
    let s = server(Rules::default(), Some(play_hooks(&base)));
    let _p = live_stream(&s, "polled");
    for _ in 0..5 {
        assert_eq!(s.get("/live/polled/index.m3u8", &[]).status, 403);
    }
    let (_, first) = calls.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(first["stream"], "polled");
    assert!(calls.try_recv().is_err(), "asked more than once");
    assert_eq!(s.get("/live/polled/index.m3u8?token=2", &[]).status, 403);
    let (_, other) = calls.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(other["query"], "token=2");
}

/// With signed links, a playlist request without one is refused (403) before the callback is
/// asked: the service hears only of viewers the rules let in.
#[test]
fn a_playlist_without_its_signed_link_does_not_ask_on_play() {
    let (base, calls) = hook_server(Answer::Status(204));
    let signed = server::auth::signed::Signed::new(b"a-secret-of-this-test", vec!["/live/".into()]);
    let config = server::Config {
        hooks: Some(play_hooks(&base)),
        signed: Some(signed.unwrap()),
        ..server::Config::default()
    };
    let s = common::TestServer::start_with(
        config,
        server::Library::from_static(&[], std::time::SystemTime::now()),
    );
    let _p = live_stream(&s, "linked");
    assert_eq!(s.get("/live/linked/index.m3u8", &[]).status, 403);
    assert_eq!(s.get("/live/linked/manifest.mpd", &[]).status, 403);
    assert!(calls.try_recv().is_err(), "the callback was asked");
}

/// A callback that cannot be reached refuses a viewer without telling it why (the address it
/// tried, the error): that is for the log.
#[test]
fn a_viewer_refused_for_an_unreachable_callback_is_not_told_its_address() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let s = server(Rules::default(), Some(play_hooks(&base)));
    let _p = live_stream(&s, "told2");
    let r = s.get("/live/told2/index.m3u8", &[]);
    assert_eq!(r.status, 403);
    let body = String::from_utf8(r.body).unwrap();
    assert!(body.contains("on_play callback did not answer"), "{body}");
    assert!(
        !body.contains("127.0.0.1") && !body.contains("refused"),
        "{body}"
    );
}

#[test]
fn an_rtmp_player_refused_by_on_play_gets_play_failed() {
    let (base, _calls) = hook_server(Answer::Status(403));
    let s = server(Rules::default(), Some(play_hooks(&base)));
    let url = format!("rtmp://{}/live/rt", s.rtmp);
    let _p = ffmpeg_publish(&rtmp_mp4(), &["-re"], "flv", &[], &url);
    wait_for(&s, "rt", "live", |d| d["state"] == "live");
    require("rtmpdump");
    let out = Command::new("rtmpdump")
        .args(["-r", &url, "-o", "/dev/null", "-B", "1", "-m", "5"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("NetStream.Play.Failed"), "{text}");
}

/// An RTMP play of a stream that is not there is refused without a call to the service (the
/// callback would answer before the refusal, so none has come by then).
#[test]
fn an_rtmp_play_of_no_stream_does_not_ask_on_play() {
    let (base, calls) = hook_server(Answer::Status(204));
    let s = server(Rules::default(), Some(play_hooks(&base)));
    require("rtmpdump");
    let url = format!("rtmp://{}/live/nobody-here", s.rtmp);
    let out = Command::new("rtmpdump")
        .args(["-r", &url, "-o", "/dev/null", "-B", "1", "-m", "5"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("NetStream.Play.StreamNotFound"), "{text}");
    assert!(calls.try_recv().is_err(), "the callback was asked");
}

/// base64url without padding (RFC 7515's encoding of JWK numbers).
#[test]
fn an_rtmp_publisher_refused_by_on_publish_is_told_why_and_nothing_is_created() {
    let (base, calls) = hook_server(Answer::Status(500));
    let s = server(Rules::default(), Some(hooks(&base)));
    let url = format!("rtmp://{}/live/hooked-rtmp?session=7", s.rtmp);
    let (ok, err) =
        ffmpeg_publish(&rtmp_mp4(), &[], "flv", &[], &url).wait(Duration::from_secs(20));
    assert!(!ok);
    assert!(
        err.contains("refused by the on_publish callback (it answered 500)"),
        "{err}"
    );
    let (_, body) = calls.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(body["protocol"], "rtmp");
    assert_eq!(body["stream"], "hooked-rtmp");
    assert_eq!(body["query"], "session=7");
    assert!(stream_doc(&s, "hooked-rtmp").is_none());
}

#[test]
fn an_https_callback_is_checked_against_the_given_ca_and_asked() {
    let mut ca = common::tls::TestCa::new();
    let (cert, key) = ca.issue();
    // A callback service over TLS (rustls), answering 204 and reporting each request's path.
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, paths) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(sock) = conn else { continue };
            let tls = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut s = rustls::StreamOwned::new(tls, sock);
            let mut head = [0u8; 4096];
            let Ok(n) = s.read(&mut head) else { continue };
            let line = String::from_utf8_lossy(&head[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            let _ = tx.send(line);
            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            let _ = s.flush();
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    });
    let mut h = Hooks::default();
    h.on_publish = Some(parse_url(&format!("https://localhost:{port}/on_publish")).unwrap());
    h.timeout = Duration::from_secs(5);
    h.ca = Some(ca.ca.clone());
    let s = server(Rules::default(), Some(h));
    assert_eq!(
        publish_status(&s, "/live/over-https"),
        200,
        "admitted by the https callback"
    );
    let line = paths.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(line.starts_with("POST /on_publish "), "{line}");
}

/// On an edge, viewers that `on_play` refuses (a `.ts` viewer, an HLS player) are refused
/// before a pull starts: the origin hears nothing of them (the callback is asked first, as for
/// RTMP play), and the service is asked once per request.
#[test]
fn an_edge_asks_on_play_before_it_pulls_a_stream_for_a_viewer() {
    let (base, calls) = hook_server(Answer::Status(403));
    let origin = TcpListener::bind("127.0.0.1:0").unwrap();
    origin.set_nonblocking(true).unwrap();
    let config = server::Config {
        hooks: Some(play_hooks(&base)),
        edge: Some(server::edge::EdgeConfig {
            origins: vec![server::edge::Origin::parse(&format!(
                "http://{}",
                origin.local_addr().unwrap()
            ))
            .unwrap()],
            idle: Duration::from_secs(5),
            token: None,
            ca: None,
        }),
        ..server::Config::default()
    };
    let s =
        common::TestServer::start_with(config, server::Library::from_static(&[], common::now()));
    // (Each its own query: a playlist's answer is remembered for the same one.)
    for path in [
        "/live/cam.ts?v=1",
        "/live/cam/index.m3u8?v=2",
        "/live/cam/manifest.mpd?v=3",
    ] {
        let r = s.get(path, &[]);
        assert_eq!(r.status, 403, "{path} {}", String::from_utf8_lossy(&r.body));
        let (called, body) = calls.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(
            (called.as_str(), &body["stream"]),
            ("/on_play", &"cam".into())
        );
        assert!(calls.try_recv().is_err(), "{path}: asked twice");
    }
    // What reached the origin: its health probes (`/healthz`), and no request for the stream.
    while let Ok((conn, _)) = origin.accept() {
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut line = String::new();
        let _ = BufReader::new(conn).read_line(&mut line);
        assert!(
            line.starts_with("GET /healthz "),
            "the origin was asked: {line}"
        );
    }
}
