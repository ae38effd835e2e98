//! Bad input never stops the server, never panics, and gets a clear answer.

mod common;
use common::*;
use server::Config;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A library of broken files next to a good one, and the bytes of the two unindexable ones.
struct Broken {
    srv: TestServer,
    garbage: Vec<u8>,
    cut: Vec<u8>,
    _dir: tempfile::TempDir,
}

fn broken_library() -> Broken {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(demo_dir().join("faststart.mp4")).unwrap();
    let moov_end = std::fs::read(demo_dir().join("ntsc-moov-at-end.mp4")).unwrap();
    std::fs::write(dir.path().join("good.mp4"), &good).unwrap();
    // moov at the end, cut in half: no index at all.
    let cut = moov_end[..moov_end.len() / 2].to_vec();
    std::fs::write(dir.path().join("cut.mp4"), &cut).unwrap();
    // moov at the front, cut in half: the samples that are present are indexed.
    std::fs::write(dir.path().join("half.mp4"), &good[..good.len() / 2]).unwrap();
    let mut rng = fastrand::Rng::with_seed(1);
    let garbage: Vec<u8> = (0..100_000).map(|_| rng.u8(..)).collect();
    std::fs::write(dir.path().join("garbage.mp4"), &garbage).unwrap();
    std::fs::write(dir.path().join("zero.webm"), b"").unwrap();
    let ts = std::fs::read(demo_dir().join("clip.ts")).unwrap();
    std::fs::write(
        dir.path().join("cut-mid-packet.ts"),
        &ts[..ts.len() / 2 + 77],
    )
    .unwrap();
    // A WebM whose header survives and whose clusters are garbage.
    let webm = std::fs::read(demo_dir().join("vp9-opus.webm")).unwrap();
    let mut bad_webm = webm[..2000].to_vec();
    bad_webm.extend((0..5000).map(|_| rng.u8(..)));
    std::fs::write(dir.path().join("mangled.webm"), &bad_webm).unwrap();
    let lib = server::Library::load(dir.path(), u64::MAX, |_| {}).unwrap();
    Broken {
        srv: TestServer::start(lib),
        garbage,
        cut,
        _dir: dir,
    }
}

#[test]
fn broken_files_are_listed_with_what_is_wrong_with_them() {
    let b = broken_library();
    let titles = b.srv.get("/api/videos", &[]).json();
    let get = |id: &str| {
        titles
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(get("good.mp4")["seekable"], true);
    assert!(get("cut.mp4")["index_error"]
        .as_str()
        .unwrap()
        .contains("no moov"));
    assert_eq!(
        get("half.mp4")["seekable"],
        true,
        "a truncated faststart file keeps its first keyframes"
    );
    // The keyframes at 0 s and 2 s are in the first half of the 8 s clip.
    assert_eq!(get("half.mp4")["keyframes"], 2);
    assert_eq!(get("garbage.mp4")["container"], "unknown");
    assert!(get("garbage.mp4")["index_error"]
        .as_str()
        .unwrap()
        .contains("unknown container"));
    assert_eq!(get("zero.webm")["index_error"], "empty file");
    assert_eq!(get("cut-mid-packet.ts")["seekable"], true);
    assert_eq!(get("mangled.webm")["container"], "webm");
}

#[test]
fn broken_files_are_still_served_byte_for_byte() {
    let b = broken_library();
    for (id, bytes) in [("garbage.mp4", &b.garbage), ("cut.mp4", &b.cut)] {
        let r = b
            .srv
            .get(&format!("/videos/{id}"), &[("Range", "bytes=100-199")]);
        assert_eq!(r.status, 206);
        assert_eq!(r.body, &bytes[100..200]);
    }
    assert_eq!(
        b.srv.get("/videos/garbage.mp4", &[]).header("content-type"),
        Some("application/octet-stream")
    );
}

#[test]
fn seeking_in_an_unindexed_title_says_why() {
    let b = broken_library();
    let r = b.srv.get("/api/videos/cut.mp4/seek?t=1", &[]);
    assert_eq!(r.status, 422);
    assert!(r.json()["error"].as_str().unwrap().contains("no moov"));
}

#[test]
fn ids_cannot_reach_outside_the_library() {
    let root = tempfile::tempdir().unwrap();
    let lib = root.path().join("lib");
    std::fs::create_dir_all(lib.join("movies")).unwrap();
    std::fs::copy(demo_dir().join("clip.ts"), lib.join("movies/a.ts")).unwrap();
    std::fs::write(root.path().join("secret.txt"), b"secret").unwrap();
    std::os::unix::fs::symlink(root.path().join("secret.txt"), lib.join("out.ts")).unwrap();
    std::os::unix::fs::symlink(root.path(), lib.join("updir")).unwrap();
    std::os::unix::fs::symlink(lib.join("movies/a.ts"), lib.join("inside.ts")).unwrap();
    std::fs::write(lib.join(".hidden.ts"), b"x").unwrap();
    let mut skipped = Vec::new();
    let library = server::Library::load(&lib, u64::MAX, |e| {
        if let server::LoadEvent::Skipped { path, reason } = e {
            skipped.push((path.to_path_buf(), reason));
        }
    })
    .unwrap();
    let ids: Vec<&str> = library.titles().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["inside.ts", "movies/a.ts"]);
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped
        .iter()
        .all(|(_, r)| r.contains("outside the library")));
    let srv = TestServer::start(library);
    assert_eq!(srv.get("/videos/movies/a.ts", &[]).status, 200);
    assert_eq!(
        srv.get("/videos/movies%2Fa.ts", &[]).status,
        200,
        "an encoded slash names the same id"
    );
    for path in [
        "/videos/out.ts",
        "/videos/updir/secret.txt",
        "/videos/../secret.txt",
        "/videos/movies/../../secret.txt",
        "/videos/%2e%2e/secret.txt",
        "/videos/%2E%2E%2Fsecret.txt",
        "/videos/movies/%2e%2e/movies/a.ts",
        "/videos//etc/passwd",
        "/videos/%2Fetc%2Fpasswd",
        "/videos/%ff%fe",
        "/videos/.hidden.ts",
        "/videos/movies%00/a.ts",
    ] {
        let r = srv.get(path, &[]);
        assert_eq!(r.status, 404, "{path}");
        assert!(!String::from_utf8_lossy(&r.body).contains("secret\n"));
    }
}

#[test]
fn only_get_and_head_are_allowed_on_videos() {
    let srv = TestServer::demo();
    assert_eq!(
        request(srv.addr, "POST", "/videos/clip.ts", &[]).status,
        405
    );
    let r = request(srv.addr, "DELETE", "/videos/clip.ts", &[]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

/// A head with more header lines than the server takes (64) is refused, on whichever path
/// reads it.
#[test]
fn a_request_with_too_many_headers_is_431() {
    let srv = TestServer::demo();
    let names: Vec<String> = (0..80).map(|i| format!("X-Pad-{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let r = request(srv.addr, "GET", "/videos/clip.ts", &headers);
    assert_eq!(r.status, 431);
    assert_eq!(
        request(srv.addr, "GET", "/videos/clip.ts", &headers[..40]).status,
        200
    );
}

#[test]
fn clients_that_vanish_mid_body_cost_nothing() {
    let srv = TestServer::demo();
    let data = std::fs::read(demo_dir().join("ntsc-moov-at-end.mp4")).unwrap();
    for _ in 0..50 {
        let mut s = TcpStream::connect(srv.addr).unwrap();
        write!(
            s,
            "GET /videos/ntsc-moov-at-end.mp4 HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-\r\n\r\n"
        )
        .unwrap();
        let mut buf = [0u8; 4096];
        s.read_exact(&mut buf).unwrap();
        drop(s); // abandon the rest, as a browser does at every seek
    }
    let r = srv.get("/videos/ntsc-moov-at-end.mp4", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
}

fn quick_timeout_server() -> TestServer {
    let config = Config {
        header_read_timeout: Duration::from_millis(500),
        ..Config::default()
    };
    let dir = demo_copy();
    TestServer::start_with(config, library(dir.path()))
}

#[test]
fn silent_connections_are_closed_after_the_header_timeout() {
    let srv = quick_timeout_server();
    let mut silent: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(srv.addr).unwrap())
        .collect();
    for s in &mut silent {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut b = [0u8; 256];
        // The server closes the connection (EOF, possibly after a 408 response) instead of waiting.
        loop {
            match s.read(&mut b) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("connection still open: {e}"),
            }
        }
    }
    assert_eq!(srv.get("/healthz", &[]).status, 200);
}

#[test]
fn headers_sent_a_byte_at_a_time_are_cut_off() {
    let srv = quick_timeout_server();
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let header = b"GET /videos/clip.ts HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut closed = false;
    for &b in header.iter() {
        if s.write_all(&[b]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => assert!(
                !buf[..n].starts_with(b"HTTP/1.1 200"),
                "a slowloris got served"
            ),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(40));
    }
    assert!(
        closed,
        "the server waited for a header dribbled over {} ms",
        header.len() * 50
    );
}

#[test]
fn unknown_routes_and_ids_are_404_json() {
    let srv = TestServer::demo();
    for p in [
        "/nope",
        "/videos/",
        "/videos/nope.mp4",
        "/api/videos/nope.mp4",
        "/api/nothing",
    ] {
        let r = srv.get(p, &[]);
        assert_eq!(r.status, 404, "{p}");
        assert_eq!(r.json()["status"], 404);
    }
}

#[test]
fn healthz_says_ok() {
    let srv = TestServer::demo();
    let r = srv.get("/healthz", &[]);
    assert_eq!((r.status, r.body), (200, b"ok\n".to_vec()));
}

#[test]
fn the_index_page_plays_the_demo_titles() {
    let srv = TestServer::demo();
    let page = srv.get("/", &[]);
    let html = String::from_utf8_lossy(&page.body);
    assert!(
        html.contains(
            "<video controls preload=none playsinline muted src=\"/videos/faststart.mp4\""
        ),
        "{html}"
    );
    // No script from elsewhere.
    assert!(!html.contains("<script src"), "{html}");
}
