//! zerocast behind real HTTP caches, with the configurations in `deploy/`: nginx (`proxy_cache`,
//! `slice 1m`, `proxy_cache_lock`) and Varnish. Ranges and whole titles through the cache are
//! byte-exact, `If-Range` with the origin's ETag works through it, and two origins holding the
//! same bytes give the same ETags (content-derived, whatever the files' dates).

mod common;
use common::spawned::free_port;
use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process started by this test, stopped by its PID when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM, so nginx's master takes its worker with it.
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// Waits until `port` answers HTTP (the cache's own start takes a moment).
fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn template(name: &str, pairs: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(repo().join("deploy").join(name)).unwrap();
    for (k, v) in pairs {
        text = text.replace(k, v);
    }
    text
}

/// nginx from `deploy/nginx-cache.conf.in` in front of `origins`.
fn nginx(dir: &Path, origins: &[std::net::SocketAddr]) -> (Proc, u16) {
    require("nginx");
    let port = free_port();
    let servers: Vec<String> = origins.iter().map(|a| format!("server {a};")).collect();
    let conf = template(
        "nginx-cache.conf.in",
        &[
            ("@DIR@", dir.display().to_string()),
            ("@PORT@", port.to_string()),
            ("@ORIGINS@", servers.join("\n        ")),
        ],
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("nginx")
        .args(["-c", path.to_str().unwrap(), "-e", "stderr"])
        .stdout(Stdio::null())
        .spawn()
        .expect("nginx");
    wait_listening(port);
    (Proc(child), port)
}

/// Varnish from `deploy/varnish.vcl.in` in front of `origin`.
fn varnish(dir: &Path, origin: std::net::SocketAddr) -> (Proc, u16) {
    require("varnishd");
    let port = free_port();
    let vcl = template(
        "varnish.vcl.in",
        &[
            ("@HOST@", origin.ip().to_string()),
            ("@PORT@", origin.port().to_string()),
        ],
    );
    let path = dir.join("zerocast.vcl");
    std::fs::write(&path, vcl).unwrap();
    let child = Command::new("varnishd")
        .args(["-F", "-j", "none", "-a", &format!("127.0.0.1:{port}")])
        .args([
            "-f",
            path.to_str().unwrap(),
            "-n",
            dir.join("work").to_str().unwrap(),
        ])
        .args(["-s", "malloc,256m"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("varnishd");
    wait_listening(port);
    (Proc(child), port)
}

fn via(port: u16, path: &str, headers: &[(&str, &str)]) -> Resp {
    request(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        "GET",
        path,
        headers,
    )
}

/// Random single ranges and the whole title through the cache at `port` equal the file's bytes,
/// twice (the second time from the cache).
fn byte_exact(port: u16, name: &str) {
    let data = std::fs::read(demo_dir().join(name)).unwrap();
    let len = data.len() as u64;
    let path = format!("/videos/{name}");
    let mut rng = fastrand::Rng::with_seed(11);
    for round in 0..2 {
        let whole = via(port, &path, &[]);
        assert_eq!(whole.status, 200, "{name} round {round}");
        assert!(
            whole.body == data,
            "{name}: the whole title differs (round {round})"
        );
        for _ in 0..15 {
            let a = rng.u64(..len);
            let b = rng.u64(a..len.min(a + (3 << 20)));
            let r = via(port, &path, &[("range", &format!("bytes={a}-{b}"))]);
            assert_eq!(r.status, 206, "{name} bytes={a}-{b}");
            assert!(
                r.body == data[a as usize..=b as usize],
                "{name} bytes={a}-{b}"
            );
        }
    }
}

/// `If-Range` with the origin's ETag gives the range; with another, the whole title.
fn if_range(port: u16, origin_etag: &str) {
    let path = "/videos/ntsc-moov-at-end.mp4";
    let hit = via(
        port,
        path,
        &[("range", "bytes=100-199"), ("if-range", origin_etag)],
    );
    assert_eq!(hit.status, 206, "If-Range with the origin's ETag");
    assert_eq!(hit.body.len(), 100);
    let miss = via(
        port,
        path,
        &[("range", "bytes=100-199"), ("if-range", "\"other\"")],
    );
    assert_eq!(miss.status, 200, "If-Range with another ETag");
}

/// What every cache in front must get right: byte-exact ranges and titles, `If-Range` with the
/// origin's ETag, and repeated requests answered from the cache.
fn fronts_byte_exactly(srv: &TestServer, port: u16) {
    for name in ["ntsc-moov-at-end.mp4", "clip.ts"] {
        byte_exact(port, name);
    }
    let etag = srv
        .get("/videos/ntsc-moov-at-end.mp4", &[])
        .header("etag")
        .unwrap()
        .to_string();
    if_range(port, &etag);
    let again = via(port, "/videos/clip.ts", &[("range", "bytes=0-99")]);
    assert_eq!(again.header("x-cache"), Some("HIT"));
}

#[test]
fn nginx_slice_cache_serves_byte_exact_ranges_and_titles_and_honours_if_range() {
    let srv = TestServer::demo();
    let dir = tempfile::tempdir().unwrap();
    let (_nginx, port) = nginx(dir.path(), &[srv.addr]);
    fronts_byte_exactly(&srv, port);
}

#[test]
fn varnish_serves_byte_exact_ranges_and_titles_and_honours_if_range() {
    let srv = TestServer::demo();
    let dir = tempfile::tempdir().unwrap();
    let (_varnish, port) = varnish(dir.path(), srv.addr);
    fronts_byte_exactly(&srv, port);
}

#[test]
fn two_origins_with_their_own_copies_give_the_same_etags_through_one_cache() {
    // Two copies of the library, written at different times: other dates, other inodes.
    let a = TestServer::demo();
    std::thread::sleep(Duration::from_millis(20));
    let b = TestServer::demo();
    let dir = tempfile::tempdir().unwrap();
    let (_nginx, port) = nginx(dir.path(), &[a.addr, b.addr]);
    for name in DEMO {
        let path = format!("/videos/{name}");
        let ta = a.get(&path, &[("range", "bytes=0-0")]);
        let tb = b.get(&path, &[("range", "bytes=0-0")]);
        assert_eq!(ta.header("etag"), tb.header("etag"), "{name}");
        assert_ne!(ta.header("last-modified"), None);
        // Through the cache, whichever origin answers each slice: the same validator.
        for n in 0..4 {
            let r = via(port, &format!("{path}?n={n}"), &[("range", "bytes=0-0")]);
            assert_eq!(r.header("etag"), ta.header("etag"), "{name} via nginx");
        }
    }
}

#[test]
fn a_titles_etag_survives_a_restart_and_a_new_modification_date() {
    let dir = demo_copy();
    let tag = |dir: &Path| {
        let srv = TestServer::start(library(dir));
        srv.get("/videos/clip.ts", &[("range", "bytes=0-0")])
            .header("etag")
            .unwrap()
            .to_string()
    };
    let first = tag(dir.path());
    assert_eq!(tag(dir.path()), first, "after a restart");
    // The same bytes written again: a new date and inode, the same ETag.
    let bytes = std::fs::read(dir.path().join("clip.ts")).unwrap();
    std::fs::remove_file(dir.path().join("clip.ts")).unwrap();
    std::fs::write(dir.path().join("clip.ts"), &bytes).unwrap();
    assert_eq!(tag(dir.path()), first, "after the file was written again");
}

/// The playlist's last segment URI.
fn last_segment(playlist: &str) -> String {
    playlist
        .lines()
        .rfind(|l| !l.starts_with('#') && !l.trim().is_empty())
        .expect("a segment")
        .to_string()
}

#[test]
fn live_hls_through_nginx_keeps_playlists_fresh_and_fetches_each_segment_once() {
    let s = common::live::server(|c| {
        c.hls.min_segment = Duration::from_secs(1);
        c.hls.window = 3;
    });
    let _publisher = common::live::ts_publisher(&s.url("/live/relay"), None);
    common::live::wait_for(&s, "relay", "a publisher", |d| d["state"] == "live");
    let dir = tempfile::tempdir().unwrap();
    let (_nginx, port) = nginx(dir.path(), &[s.addr]);
    let first = via(port, "/live/relay/index.m3u8", &[]);
    assert_eq!(first.status, 200);
    let first = String::from_utf8(first.body).unwrap();
    // Once the origin lists a newer segment, so does the playlist through the cache.
    common::live::wait_until(
        "a newer segment at the origin",
        Duration::from_secs(20),
        || {
            let r = s.get("/live/relay/index.m3u8", &[]);
            last_segment(&String::from_utf8_lossy(&r.body)) != last_segment(&first)
        },
    );
    let now = String::from_utf8(via(port, "/live/relay/index.m3u8", &[]).body).unwrap();
    assert_ne!(last_segment(&now), last_segment(&first), "a stale playlist");
    // A segment: from the origin once, then from the cache, the same bytes.
    let seg = format!("/live/relay/{}", last_segment(&now));
    let a = via(port, &seg, &[]);
    let b = via(port, &seg, &[]);
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(a.header("x-cache"), Some("MISS"));
    assert_eq!(b.header("x-cache"), Some("HIT"));
    assert!(a.body == b.body && a.body == s.get(&seg, &[]).body);
}
