//! Live edges (`zerocast serve --origin URL`): an origin, edges of it and an edge of an edge, all
//! on loopback; ffmpeg publishes to the origin; viewers ask the edges. One upstream connection
//! per edge per stream, every output on every edge, publisher reconnects and origin restarts
//! followed without dropping the edges' viewers, the pull released when nobody watches.

mod common;

use common::fixtures::long_live_ts;
use common::live::{
    ffmpeg_publish, server, stream_doc, wait_for, wait_until, Proc, Reading, Viewer, WAIT,
};
use common::{assert_plays_h264_aac, TestServer};
use server::edge::{EdgeConfig, Origin};
use std::net::SocketAddr;
use std::time::Duration;

/// A server that pulls the streams it does not have from `origins` (in order).
fn edge_of(origins: &[SocketAddr], idle: Duration) -> TestServer {
    edge_with(origins, idle, None)
}

/// The same, presenting `token` to its origins.
fn edge_with(origins: &[SocketAddr], idle: Duration, token: Option<String>) -> TestServer {
    let urls: Vec<String> = origins.iter().map(|a| format!("http://{a}")).collect();
    edge_to(&urls, idle, token, None)
}

/// An edge of the origins at `urls`, checking `https://` ones against `ca`.
fn edge_to(
    urls: &[String],
    idle: Duration,
    token: Option<String>,
    ca: Option<std::path::PathBuf>,
) -> TestServer {
    let config = edge_config(urls, idle, token, ca);
    TestServer::start_with(config, server::Library::from_static(&[], common::now()))
}

/// The settings of an edge of the origins at `urls`.
fn edge_config(
    urls: &[String],
    idle: Duration,
    token: Option<String>,
    ca: Option<std::path::PathBuf>,
) -> server::Config {
    server::Config {
        edge: Some(EdgeConfig {
            origins: urls.iter().map(|u| Origin::parse(u).unwrap()).collect(),
            idle,
            token,
            ca,
        }),
        ..server::Config::default()
    }
}

/// An address nothing listens on (the servers of these tests listen on 127.0.0.1 only).
fn dead_origin() -> SocketAddr {
    "127.0.0.77:1".parse().unwrap()
}

/// ffmpeg publishes the 40 s fixture to `s` as `name`, in real time, over HTTP PUT.
fn publish(s: &TestServer, name: &str) -> Proc {
    let url = s.url(&format!("/live/{name}"));
    ffmpeg_publish(
        &long_live_ts(),
        &["-re"],
        "mpegts",
        &["-method", "PUT"],
        &url,
    )
}

/// An origin with the live settings changed by `f`, and `cam` published to it and live.
fn origin_with_cam(f: impl FnOnce(&mut server::live::LiveConfig)) -> (TestServer, Proc) {
    let origin = server(f);
    let publisher = publish(&origin, "cam");
    wait_live(&origin, "cam");
    (origin, publisher)
}

/// Waits until `s` has `name` live with a few units in its ring.
fn wait_live(s: &TestServer, name: &str) {
    wait_for(s, name, "live with a keyframe", |d| {
        d["state"] == "live" && d["ring_units"].as_u64() > Some(2)
    });
}

/// How many viewers (`.ts`, `.flv`, `.mp4`, RTMP) the server has had for `name`; each edge's
/// pull is one.
fn viewers_total(s: &TestServer, name: &str) -> u64 {
    stream_doc(s, name).map_or(0, |d| d["viewers"]["ts_total"].as_u64().unwrap())
}

#[test]
fn every_output_on_every_edge_plays_and_the_origin_serves_one_connection_per_edge() {
    let (origin, _publisher) = origin_with_cam(|_| {});
    let a = edge_of(&[origin.addr], Duration::from_secs(30));
    let b = edge_of(&[origin.addr], Duration::from_secs(30));
    // An edge of an edge.
    let c = edge_of(&[a.addr], Duration::from_secs(30));
    std::thread::scope(|scope| {
        for edge in [&a, &b, &c] {
            for url in [
                edge.url("/live/cam.ts"),
                edge.url("/live/cam.flv"),
                edge.url("/live/cam.mp4"),
                edge.url("/live/cam/index.m3u8"),
                edge.url("/live/cam/ll.m3u8"),
                edge.url("/live/cam/manifest.mpd"),
                format!("rtmp://{}/live/cam", edge.rtmp),
            ] {
                scope.spawn(move || assert_plays_h264_aac(&url, "3"));
            }
        }
    });
    // Twenty-one players (and their probes) on three edges: the origin served one connection to
    // each of its two edges, and the first edge one to the edge behind it.
    assert_eq!(
        viewers_total(&origin, "cam"),
        2,
        "{:?}",
        stream_doc(&origin, "cam")
    );
    assert_eq!(
        viewers_total(&a, "cam"),
        viewers_total(&b, "cam") + 1,
        "a served its own players and c's pull, b its players only"
    );
    let origin_url = format!("http://{}", origin.addr);
    for (edge, from) in [
        (&a, &origin_url),
        (&b, &origin_url),
        (&c, &format!("http://{}", a.addr)),
    ] {
        let d = stream_doc(edge, "cam").expect("the edge lists the stream");
        assert_eq!(d["origin"].as_str(), Some(from.as_str()), "{d}");
    }
    assert_eq!(
        stream_doc(&origin, "cam").unwrap()["origin"],
        serde_json::Value::Null
    );
    let metrics = String::from_utf8(a.get("/metrics", &[]).body).unwrap();
    for line in [
        "zerocast_edge_pulls 1\n",
        "zerocast_edge_upstream_connections 1\n",
        "zerocast_edge_upstream_connects_total 1\n",
        "zerocast_edge_origin_reachable 1\n",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
}

#[test]
fn a_publisher_reconnecting_within_the_grace_keeps_the_edge_viewers() {
    let (origin, publisher) = origin_with_cam(|c| c.grace = Duration::from_secs(10));
    let edge = edge_of(&[origin.addr], Duration::from_secs(30));
    let viewer = Viewer::start(edge.addr, "/live/cam.ts", Reading::Fast);
    viewer.wait_body("the stream through the edge", |b| b.len() > 100_000);
    drop(publisher);
    wait_for(&origin, "cam", "the publisher gone", |d| {
        d["state"] == "reconnecting"
    });
    let before = viewer.raw_len();
    let _back = publish(&origin, "cam");
    wait_for(&origin, "cam", "the publisher back", |d| {
        d["state"] == "live" && d["sessions"] == 2
    });
    viewer.wait_body("the stream after the reconnect", |b| {
        b.len() > before + 100_000
    });
    assert!(!viewer.finished(), "the edge's viewer stayed connected");
    // The edge never lost its upstream: still its first session, one connection to the origin.
    let d = stream_doc(&edge, "cam").unwrap();
    assert_eq!(
        (d["state"].as_str(), d["sessions"].as_u64()),
        (Some("live"), Some(1)),
        "{d}"
    );
    assert_eq!(viewers_total(&origin, "cam"), 1);
}

#[test]
fn an_origin_restart_within_the_grace_keeps_the_edge_viewers() {
    let (origin, _publisher) = origin_with_cam(|_| {});
    let at = origin.addr;
    let edge = edge_of(&[at], Duration::from_secs(30));
    let viewer = Viewer::start(edge.addr, "/live/cam.ts", Reading::Fast);
    viewer.wait_body("the stream through the edge", |b| b.len() > 100_000);
    // The origin goes away (its publisher with it) and comes back on the same address.
    drop(_publisher);
    drop(origin);
    wait_for(&edge, "cam", "the upstream lost", |d| {
        d["state"] == "reconnecting"
    });
    let config = server::Config {
        listen: at,
        ..server::Config::default()
    };
    let origin = TestServer::start_bound(config, server::Library::from_static(&[], common::now()));
    let _publisher = publish(&origin, "cam");
    let before = viewer.raw_len();
    wait_for(&edge, "cam", "the upstream back", |d| {
        d["state"] == "live" && d["sessions"] == 2
    });
    viewer.wait_body("the stream after the restart", |b| {
        b.len() > before + 100_000
    });
    assert!(!viewer.finished(), "the edge's viewer stayed connected");
}

#[test]
fn an_edge_releases_the_stream_after_its_idle_time() {
    let (origin, _publisher) = origin_with_cam(|_| {});
    let edge = edge_of(&[origin.addr], Duration::from_secs(1));
    let viewer = Viewer::start(edge.addr, "/live/cam.ts", Reading::Fast);
    viewer.wait_body("the stream through the edge", |b| b.len() > 50_000);
    wait_for(&origin, "cam", "the edge's pull", |d| {
        d["viewers"]["ts"] == 1
    });
    drop(viewer.stop());
    // Nobody watches on the edge: after its idle time it lets go of the origin.
    wait_for(&origin, "cam", "the edge gone", |d| d["viewers"]["ts"] == 0);
    wait_for(&edge, "cam", "the stream ended on the edge", |d| {
        d["state"] == "ended"
    });
    // A new viewer pulls it again.
    let again = Viewer::start(edge.addr, "/live/cam.ts", Reading::Fast);
    again.wait_body("the stream pulled again", |b| b.len() > 50_000);
    assert_eq!(viewers_total(&origin, "cam"), 2);
}

#[test]
fn a_stream_no_origin_has_is_not_found_on_the_edge() {
    let origin = server(|_| {});
    let edge = edge_of(&[origin.addr], Duration::from_secs(5));
    for path in ["/live/none.ts", "/live/none.flv", "/live/none/index.m3u8"] {
        let r = edge.get(path, &[]);
        assert_eq!(
            r.status,
            404,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    wait_until("/readyz says an origin is reachable", WAIT, || {
        edge.get("/readyz", &[]).status == 200
    });
}

#[test]
fn names_no_origin_has_do_not_take_the_places_of_streams_that_exist() {
    let (origin, _publisher) = origin_with_cam(|_| {});
    let mut config = edge_config(
        &[format!("http://{}", origin.addr)],
        Duration::from_secs(30),
        None,
        None,
    );
    config.live.max_streams = 2;
    let edge = TestServer::start_with(config, server::Library::from_static(&[], common::now()));
    // More names than the edge takes streams, each answered 404 (and that answer kept a moment).
    for n in 0..4 {
        let r = edge.get(&format!("/live/nobody{n}.ts"), &[]);
        assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    }
    let viewer = Viewer::start(edge.addr, "/live/cam.ts", Reading::Fast);
    viewer.wait_body("TS packets", |b| b.len() > 188 * 100);
    let (head, _, _) = viewer.stop();
    assert_eq!(head.status, 200);
}

#[test]
fn an_edge_whose_origins_are_down_answers_bad_gateway_and_is_not_ready() {
    // A port nothing listens on.
    let dead = dead_origin();
    let edge = edge_of(&[dead], Duration::from_secs(5));
    let r = edge.get("/live/cam.ts", &[]);
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    let why = r.json()["error"].as_str().unwrap().to_string();
    assert!(why.contains(&dead.to_string()), "names the origin: {why}");
    wait_until("/readyz says no origin", WAIT, || {
        edge.get("/readyz", &[]).status == 503
    });
    let metrics = String::from_utf8(edge.get("/metrics", &[]).body).unwrap();
    assert!(
        metrics.contains("zerocast_edge_origin_reachable 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("zerocast_edge_upstream_connects_total 0\n"),
        "{metrics}"
    );
}

#[test]
fn an_edge_tries_its_origins_in_order() {
    let dead = dead_origin();
    let (origin, _publisher) = origin_with_cam(|_| {});
    let edge = edge_of(&[dead, origin.addr], Duration::from_secs(5));
    let viewer = Viewer::start(edge.addr, "/live/cam.ts", Reading::Fast);
    viewer.wait_body("the stream from the second origin", |b| b.len() > 50_000);
    let d = stream_doc(&edge, "cam").unwrap();
    assert_eq!(
        d["origin"].as_str(),
        Some(format!("http://{}", origin.addr).as_str())
    );
}

#[test]
fn a_stream_that_ends_at_the_origin_ends_on_the_edge_at_once() {
    // No grace at the origin: the publisher gone is the stream's end there.
    let (origin, publisher) = origin_with_cam(|c| c.grace = Duration::ZERO);
    let edge = edge_of(&[origin.addr], Duration::from_secs(30));
    let viewer = Viewer::start(edge.addr, "/live/cam.ts", Reading::Fast);
    viewer.wait_body("the stream through the edge", |b| b.len() > 50_000);
    drop(publisher);
    wait_for(&origin, "cam", "the stream ended", |d| {
        d["state"] == "ended"
    });
    let ended = std::time::Instant::now();
    // The origin ended its response; asked again it has no such stream: the edge ends it too,
    // without waiting out its own grace (10 s).
    let d = wait_for(&edge, "cam", "the stream ended on the edge", |d| {
        d["state"] == "ended"
    });
    assert!(
        ended.elapsed() < Duration::from_secs(5),
        "{:?}",
        ended.elapsed()
    );
    assert_eq!(d["sessions"], 1, "{d}");
    viewer.wait_closed();
}

#[test]
fn an_edge_presents_its_credential_to_an_origin_that_asks_for_one() {
    use common::auth::{rules, token};
    // At the origin, `secret-*` streams need a JWT to publish and to watch.
    let origin = common::auth::server(rules(&[]), None);
    let jwt = token("publish", "secret-cam", 60);
    let url = origin.url(&format!("/live/secret-cam?jwt={jwt}"));
    let _publisher = ffmpeg_publish(
        &long_live_ts(),
        &["-re"],
        "mpegts",
        &["-method", "PUT"],
        &url,
    );
    wait_live(&origin, "secret-cam");
    let trusted = edge_with(
        &[origin.addr],
        Duration::from_secs(5),
        Some(token("read", "secret-*", 600)),
    );
    let viewer = Viewer::start(trusted.addr, "/live/secret-cam.ts", Reading::Fast);
    viewer.wait_body("the stream through the edge", |b| b.len() > 50_000);
    // An edge without the credential is refused by the origin, and says so.
    let stranger = edge_of(&[origin.addr], Duration::from_secs(5));
    let r = stranger.get("/live/secret-cam.ts", &[]);
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    let why = r.json()["error"].as_str().unwrap().to_string();
    assert!(why.contains("answered 401"), "{why}");
}

#[test]
fn an_edge_pulls_from_an_https_origin_whose_certificate_it_checks() {
    let (origin, ca) = common::tls::https_server(|_| {});
    let _publisher = publish(&origin, "cam");
    wait_live(&origin, "cam");
    let https = format!("https://127.0.0.1:{}", origin.https[0].port());
    let edge = edge_to(
        std::slice::from_ref(&https),
        Duration::from_secs(5),
        None,
        Some(ca.ca.clone()),
    );
    let viewer = Viewer::start(edge.addr, "/live/cam.ts", Reading::Fast);
    viewer.wait_body("the stream over TLS", |b| b.len() > 50_000);
    assert_eq!(
        stream_doc(&edge, "cam").unwrap()["origin"].as_str(),
        Some(https.as_str())
    );
    // An edge that trusts another CA refuses the origin's certificate.
    let other = common::tls::TestCa::new();
    let wary = edge_to(
        &[https],
        Duration::from_secs(5),
        None,
        Some(other.ca.clone()),
    );
    let r = wary.get("/live/cam.ts", &[]);
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    let why = r.json()["error"].as_str().unwrap().to_string();
    assert!(why.contains("TLS"), "{why}");
}

#[test]
fn two_edges_that_pull_from_each_other_refuse_the_loop_at_once() {
    // Each edge's origin is the other (a misconfiguration): a viewer asking one for a stream
    // neither has gets 508 naming the loop at once, not the 10 s wait of two edges waiting on
    // each other (each pull says which edges it came through, `x-zerocast-via`).
    let port = |l: &std::net::TcpListener| l.local_addr().unwrap();
    let (la, lb) = (
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    let (a_addr, b_addr) = (port(&la), port(&lb));
    drop((la, lb));
    let edge_at = |at: SocketAddr, origin: SocketAddr| {
        let config = server::Config {
            listen: at,
            ..edge_config(
                &[format!("http://{origin}")],
                Duration::from_secs(5),
                None,
                None,
            )
        };
        TestServer::start_bound(config, server::Library::from_static(&[], common::now()))
    };
    let a = edge_at(a_addr, b_addr);
    let _b = edge_at(b_addr, a_addr);
    let asked = std::time::Instant::now();
    let r = a.get("/live/cam.ts", &[]);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(r.status, 508, "{}", String::from_utf8_lossy(&r.body));
    let why = r.json()["error"].as_str().unwrap().to_string();
    assert!(why.contains("loop of edges"), "{why}");
}

/// A viewer of an edge of an edge that says it came through edges that fill `x-zerocast-via`
/// almost to its bound (anyone may send the header): each edge leaves the oldest out of what it
/// sends on, so the next one neither refuses the pull as a loop nor fails every viewer waiting
/// on it.
#[test]
fn a_long_via_from_a_viewer_does_not_fail_the_pull_of_an_edge_of_an_edge() {
    use std::io::Write as _;
    let (origin, _publisher) = origin_with_cam(|_| {});
    let mid = edge_of(&[origin.addr], Duration::from_secs(30));
    let edge = edge_of(&[mid.addr], Duration::from_secs(30));
    // 480 bytes: the edge's own id (and ", ") still fits 512, the mid-tier's after it would not.
    let ids: Vec<String> = (0..27).map(|n| format!("viewer{n:011}")).collect();
    let mut via = ids.join(", ");
    via.truncate(480);
    let via = via.trim_end_matches([',', ' ']).to_string();
    let mut c = std::net::TcpStream::connect(edge.addr).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        c,
        "GET /live/cam.ts HTTP/1.1\r\nHost: x\r\nx-zerocast-via: {via}\r\n\r\n"
    )
    .unwrap();
    let head = common::live::read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // And a plain viewer of the same stream, on the same pull.
    let plain = Viewer::start(edge.addr, "/live/cam.ts", Reading::Fast);
    plain.wait_body("TS packets", |b| b.len() > 188 * 100);
}

/// A TCP proxy in front of `to` that can be made to hang: its connections cut, and new ones
/// taken and never answered (an origin whose process hangs: the kernel still accepts).
struct Hanging {
    addr: SocketAddr,
    hung: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Hanging {
    fn to(to: SocketAddr) -> Hanging {
        use std::sync::atomic::Ordering::SeqCst;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hung = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (h, o) = (hung.clone(), open.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for c in listener.incoming() {
                let Ok(c) = c else { continue };
                if h.load(SeqCst) {
                    held.push(c);
                    continue;
                }
                let Ok(up) = std::net::TcpStream::connect(to) else {
                    continue;
                };
                let mut kept = o.lock().unwrap();
                kept.push(c.try_clone().unwrap());
                kept.push(up.try_clone().unwrap());
                for (mut from, mut into) in
                    [(c.try_clone().unwrap(), up.try_clone().unwrap()), (up, c)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut into);
                        let _ = into.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Hanging { addr, hung, open }
    }

    fn hang(&self) {
        self.hung.store(true, std::sync::atomic::Ordering::SeqCst);
        for c in self.open.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The first origin hangs (it takes connections and never answers): the edge does not spend
/// the grace waiting for it, but asks the next origin in time, and its viewer stays.
#[test]
fn an_origin_that_hangs_hands_the_edge_to_the_next_within_the_grace() {
    let (first, _p1) = origin_with_cam(|_| {});
    let (second, _p2) = origin_with_cam(|_| {});
    let proxy = Hanging::to(first.addr);
    let edge = edge_of(&[proxy.addr, second.addr], Duration::from_secs(30));
    let viewer = Viewer::start(edge.addr, "/live/cam.ts", Reading::Fast);
    viewer.wait_body("the stream through the first origin", |b| b.len() > 100_000);
    proxy.hang();
    wait_for(&edge, "cam", "the second origin", |d| {
        d["state"] == "live" && d["origin"] == format!("http://{}", second.addr).as_str()
    });
    let before = viewer.raw_len();
    viewer.wait_body("the stream from the second origin", |b| {
        b.len() > before + 100_000
    });
    assert!(!viewer.finished(), "the edge's viewer stayed connected");
}

/// The first origin hangs from the start (it takes connections and never answers): the first
/// pull waits it out and streams from the second; a pull of another stream after that asks the
/// second at once, not the hanging one first (which would hold it for 15 s).
#[test]
fn a_new_pull_asks_the_origin_that_worked_last_first() {
    let (first, _p1) = origin_with_cam(|_| {});
    let (second, _p2) = origin_with_cam(|_| {});
    let _other = publish(&second, "other");
    wait_live(&second, "other");
    let proxy = Hanging::to(first.addr);
    proxy.hang();
    let edge = edge_of(&[proxy.addr, second.addr], Duration::from_secs(30));
    let from_second = format!("http://{}", second.addr);
    let _cam = Viewer::start(edge.addr, "/live/cam.ts", Reading::Fast);
    common::live::wait_for_within(&edge, "cam", "the second origin", 2 * WAIT, |d| {
        d["state"] == "live" && d["origin"] == from_second.as_str()
    });
    let asked = std::time::Instant::now();
    let _other_viewer = Viewer::start(edge.addr, "/live/other.ts", Reading::Fast);
    wait_for(&edge, "other", "the second origin", |d| {
        d["state"] == "live" && d["origin"] == from_second.as_str()
    });
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the hanging origin was asked first: {took:?}"
    );
}
