//! RFC 9110 range and precondition behaviour of `/videos/{id}`, checked against the files themselves.

mod common;
use common::*;

fn file(name: &str) -> Vec<u8> {
    std::fs::read(demo_dir().join(name)).unwrap()
}

/// Splits a multipart/byteranges body into (Content-Range, bytes) parts.
fn multipart(resp: &Resp) -> Vec<(String, Vec<u8>)> {
    let ct = resp.header("content-type").unwrap();
    let boundary = ct.split("boundary=").nth(1).expect("boundary");
    let delim = format!("\r\n--{boundary}");
    let body = &resp.body;
    let mut parts = Vec::new();
    let mut pos;
    let find = |from: usize, pat: &[u8]| {
        body[from..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|p| p + from)
    };
    let mut at = find(0, delim.as_bytes()).expect("first delimiter");
    loop {
        pos = at + delim.len();
        if body[pos..].starts_with(b"--") {
            break;
        }
        let head_end = find(pos, b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&body[pos..head_end]).to_string();
        let cr = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .expect("part Content-Range")
            .to_string();
        // The part length comes from its Content-Range, not from searching for the boundary.
        let (a, b) = cr
            .strip_prefix("bytes ")
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .split_once('-')
            .unwrap();
        let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
        let data_start = head_end + 4;
        parts.push((cr, body[data_start..data_start + (b - a + 1)].to_vec()));
        at = data_start + (b - a + 1);
        assert!(
            body[at..].starts_with(delim.as_bytes()),
            "delimiter after part"
        );
    }
    assert_eq!(&body[pos..], b"--\r\n");
    parts
}

#[test]
fn random_single_and_multi_ranges_match_the_file() {
    let srv = TestServer::demo();
    let mut rng = fastrand::Rng::with_seed(2026);
    for name in DEMO {
        let data = file(name);
        let len = data.len() as u64;
        for _ in 0..40 {
            let n = rng.usize(1..5);
            let mut specs = Vec::new();
            let mut expect: Vec<(u64, u64)> = Vec::new();
            for _ in 0..n {
                match rng.u8(0..3) {
                    0 => {
                        let a = rng.u64(0..len);
                        let b = a + rng.u64(0..len.min(100_000));
                        specs.push(format!("{a}-{b}"));
                        expect.push((a, (b + 1).min(len)));
                    }
                    1 => {
                        let a = rng.u64(0..len);
                        specs.push(format!("{a}-"));
                        expect.push((a, len));
                    }
                    _ => {
                        let s = rng.u64(1..len);
                        specs.push(format!("-{s}"));
                        expect.push((len - s, len));
                    }
                }
            }
            // The oracle: sort and merge overlapping or adjacent ranges.
            expect.sort();
            let mut merged: Vec<(u64, u64)> = Vec::new();
            for (a, b) in expect {
                match merged.last_mut() {
                    Some(l) if a <= l.1 => l.1 = l.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            let header = format!("bytes={}", specs.join(","));
            let r = srv.get(&format!("/videos/{name}"), &[("Range", &header)]);
            if merged == [(0, len)] {
                assert_eq!(r.status, 200, "{name} {header}");
                assert_eq!(r.body, data);
            } else if merged.len() == 1 {
                let (a, b) = merged[0];
                assert_eq!(r.status, 206, "{name} {header}");
                assert_eq!(
                    r.header("content-range").unwrap(),
                    format!("bytes {a}-{}/{len}", b - 1)
                );
                assert_eq!(r.header("content-length").unwrap(), (b - a).to_string());
                assert_eq!(r.body, &data[a as usize..b as usize], "{name} {header}");
            } else {
                assert_eq!(r.status, 206, "{name} {header}");
                assert_eq!(
                    r.header("content-length").unwrap(),
                    r.body.len().to_string()
                );
                let parts = multipart(&r);
                assert_eq!(parts.len(), merged.len(), "{name} {header}");
                for ((cr, bytes), (a, b)) in parts.iter().zip(&merged) {
                    assert_eq!(cr, &format!("bytes {a}-{}/{len}", b - 1));
                    assert_eq!(bytes, &data[*a as usize..*b as usize]);
                }
            }
        }
    }
}

#[test]
fn content_types_and_cache_headers() {
    let srv = TestServer::demo();
    for (name, ct) in [
        ("faststart.mp4", "video/mp4"),
        ("fragmented.mp4", "video/mp4"),
        ("clip.ts", "video/mp2t"),
        ("vp9-opus.webm", "video/webm"),
    ] {
        let r = srv.get(&format!("/videos/{name}"), &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some(ct));
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert!(r.header("cache-control").unwrap().contains("max-age"));
        let etag = r.header("etag").unwrap();
        assert!(
            etag.starts_with('"') && !etag.starts_with("W/"),
            "strong ETag: {etag}"
        );
        assert!(r.header("last-modified").is_some());
        assert_eq!(r.body, file(name));
        // HEAD: the same headers, no body.
        let h = request(srv.addr, "HEAD", &format!("/videos/{name}"), &[]);
        assert_eq!(h.status, 200);
        assert_eq!(h.header("content-length"), r.header("content-length"));
        assert_eq!(h.header("etag"), r.header("etag"));
        assert!(h.body.is_empty());
    }
}

#[test]
fn preconditions() {
    let srv = TestServer::demo();
    let path = "/videos/faststart.mp4";
    let full = srv.get(path, &[]);
    let etag = full.header("etag").unwrap().to_string();
    let lm = full.header("last-modified").unwrap().to_string();
    let weak = format!("W/{etag}");
    let r = |h: &[(&str, &str)]| srv.get(path, h);

    assert_eq!(r(&[("If-None-Match", &etag)]).status, 304);
    assert_eq!(
        r(&[("If-None-Match", &weak)]).status,
        304,
        "If-None-Match compares weakly"
    );
    assert_eq!(r(&[("If-None-Match", "\"other\"")]).status, 200);
    let nm = r(&[("If-Modified-Since", &lm)]);
    assert_eq!(nm.status, 304);
    assert!(nm.body.is_empty());
    assert_eq!(nm.header("etag"), Some(etag.as_str()));
    assert_eq!(
        r(&[("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")]).status,
        200
    );
    // A 412 is no answer a shared cache may keep for everyone.
    let failed = r(&[("If-Match", "\"other\"")]);
    assert_eq!(failed.status, 412);
    assert_eq!(failed.header("cache-control"), Some("no-store"));
    assert_eq!(r(&[("If-Match", &etag)]).status, 200);
    assert_eq!(
        r(&[("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")]).status,
        412
    );

    // If-Range: strong match -> 206; anything else -> the whole file.
    assert_eq!(
        r(&[("Range", "bytes=0-9"), ("If-Range", &etag)]).status,
        206
    );
    assert_eq!(r(&[("Range", "bytes=0-9"), ("If-Range", &lm)]).status, 206);
    for stale in [weak.as_str(), "\"other\"", "Thu, 01 Jan 1970 00:00:00 GMT"] {
        let x = r(&[("Range", "bytes=0-9"), ("If-Range", stale)]);
        assert_eq!(x.status, 200, "If-Range {stale}");
        assert_eq!(x.body.len(), full.body.len());
    }
}

#[test]
fn unsatisfiable_and_malformed_ranges() {
    let srv = TestServer::demo();
    let path = "/videos/clip.ts";
    let len = file("clip.ts").len();
    for unsat in [
        format!("bytes={len}-"),
        format!("bytes={}-{}", len + 5, len + 10),
        "bytes=-0".into(),
    ] {
        let r = srv.get(path, &[("Range", &unsat)]);
        assert_eq!(r.status, 416, "{unsat}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{len}").as_str())
        );
        assert_eq!(r.header("cache-control"), Some("no-store"), "{unsat}");
    }
    // Syntactically invalid: ignored (RFC 9110 §14.2), the whole file with 200.
    for bad in [
        "bytes=",
        "bytes=abc",
        "bytes=5-1",
        "bytes=--5",
        "bytes=1-2-3",
        "chapters=1-2",
        "bytes 0-1",
        "bytes=0-1;2-3",
        "bytes=0x0-1",
        "bytes=,",
        "bytes=99999999999999999999999-",
    ] {
        let r = srv.get(path, &[("Range", bad)]);
        assert_eq!(r.status, 200, "Range: {bad}");
        assert_eq!(r.body.len(), len);
    }
    // 1000 parts: refused cheaply.
    let many: Vec<String> = (0..1000).map(|i| format!("{}-{}", i * 3, i * 3)).collect();
    let r = srv.get(path, &[("Range", &format!("bytes={}", many.join(",")))]);
    assert_eq!(r.status, 416);
    // Ranges that add up to the whole file: 200.
    let r = srv.get(path, &[("Range", &format!("bytes=0-99,100-{}", len - 1))]);
    assert_eq!(r.status, 200);
    // A zero-length entity has no satisfiable range.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.mp4"), b"").unwrap();
    let srv = TestServer::start(library(dir.path()));
    assert_eq!(srv.get("/videos/empty.mp4", &[]).status, 200);
    assert_eq!(
        srv.get("/videos/empty.mp4", &[("Range", "bytes=0-")])
            .status,
        416
    );
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    use std::io::{Read, Write};
    let srv = TestServer::demo();
    let data = file("vp9-opus.webm");
    let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
    for i in 0..20u64 {
        let (a, b) = (i * 1000, i * 1000 + 999);
        write!(
            s,
            "GET /videos/vp9-opus.webm HTTP/1.1\r\nHost: x\r\nRange: bytes={a}-{b}\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 206"));
        let mut body = vec![0u8; 1000];
        s.read_exact(&mut body).unwrap();
        assert_eq!(body, &data[a as usize..=b as usize]);
    }
}

#[test]
fn titles_beyond_the_cache_budget_are_mapped_and_served_the_same() {
    // A budget that holds only the smallest demo title: the rest are mapped from their files.
    let dir = demo_copy();
    let lib = server::Library::load(dir.path(), 260_000, |_| {}).unwrap();
    let cached: Vec<bool> = lib.titles().map(|t| t.cached).collect();
    assert_eq!(cached.iter().filter(|c| **c).count(), 1, "{cached:?}");
    let srv = TestServer::start(lib);
    let mut rng = fastrand::Rng::with_seed(5);
    for name in DEMO {
        let data = file(name);
        let info = srv.get(&format!("/api/videos/{name}"), &[]).json();
        assert_eq!(info["seekable"], true, "{name}: indexed from the mapping");
        for _ in 0..10 {
            let a = rng.usize(0..data.len());
            let b = (a + rng.usize(0..200_000)).min(data.len() - 1);
            let r = srv.get(
                &format!("/videos/{name}"),
                &[("Range", &format!("bytes={a}-{b}"))],
            );
            assert_eq!(r.body, &data[a..=b], "{name} {a}-{b}");
        }
    }
}

#[test]
fn sendfile_and_writev_paths_send_the_same_bytes() {
    // sendfile_min = 1: every single-part body goes out with sendfile, from the sealed memfd of a
    // cached title (budget MAX) or from the title's own file (budget 0).
    for budget in [u64::MAX, 0] {
        let dir = demo_copy();
        let mut config = server::Config::default();
        config.policy.sendfile_min = 1;
        let lib = server::Library::load(dir.path(), budget, |_| {}).unwrap();
        assert!(lib
            .titles()
            .all(|t| t.file.is_some() && t.cached == (budget == u64::MAX)));
        let srv = TestServer::start_with(config, lib);
        let mut rng = fastrand::Rng::with_seed(budget);
        for name in DEMO {
            let data = file(name);
            assert_eq!(
                srv.get(&format!("/videos/{name}"), &[]).body,
                data,
                "{name} whole"
            );
            for _ in 0..20 {
                let a = rng.usize(0..data.len());
                let b = (a + rng.usize(0..300_000)).min(data.len() - 1);
                let r = srv.get(
                    &format!("/videos/{name}"),
                    &[("Range", &format!("bytes={a}-{b}"))],
                );
                assert_eq!(r.status, 206);
                assert_eq!(r.body, &data[a..=b], "{name} {a}-{b} (budget {budget})");
            }
            let h = request(srv.addr, "HEAD", &format!("/videos/{name}"), &[]);
            assert!(h.body.is_empty());
            assert_eq!(
                h.header("content-length"),
                Some(data.len().to_string().as_str())
            );
        }
    }
}

#[test]
fn pipelined_requests_and_hand_over_to_hyper_on_one_connection() {
    use std::io::{Read, Write};
    let srv = TestServer::demo();
    let data = file("clip.ts");
    let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
    // Three requests in one write: two for the fast path, then an API request that hands the
    // connection to hyper, then a video request that hyper serves.
    let reqs = "GET /videos/clip.ts HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n\
                GET /videos/clip.ts HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\n\r\n\
                GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\
                GET /videos/clip.ts HTTP/1.1\r\nHost: x\r\nRange: bytes=20-29\r\nConnection: close\r\n\r\n";
    s.write_all(reqs.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(text.matches("HTTP/1.1 206").count(), 3, "{text}");
    assert_eq!(text.matches("HTTP/1.1 200").count(), 1, "{text}");
    for chunk in [&data[0..10], &data[10..20], &data[20..30]] {
        assert!(raw.windows(10).any(|w| w == chunk));
    }
    assert!(text.contains("ok\n"));
}

/// Many keep-alive connections at once, each dealt to one of the per-core workers (or, with
/// `workers = 0`, run by tokio's work-stealing runtime): every ranged response carries exactly
/// the file's bytes, whichever thread served it, and every connection keeps working.
#[test]
fn concurrent_keep_alive_connections_get_the_right_bytes_with_and_without_workers() {
    use std::io::{BufRead, BufReader, Read, Write};
    for workers in [Some(0), Some(3)] {
        let dir = demo_copy();
        let config = server::Config {
            workers,
            ..server::Config::default()
        };
        let srv = TestServer::start_with(config, library(dir.path()));
        let name = DEMO[0];
        let data = std::sync::Arc::new(file(name));
        let clients: Vec<_> = (0..24u64)
            .map(|i| {
                let (addr, data) = (srv.addr, data.clone());
                std::thread::spawn(move || {
                    let s = std::net::TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
                        .unwrap();
                    let mut w = s.try_clone().unwrap();
                    let mut r = BufReader::new(s);
                    let len = data.len() as u64;
                    for k in 0..10u64 {
                        let start = (i * 7919 + k * 104_729) % (len - 5000);
                        let end = start + (i * 31 + k * 97) % 4096;
                        write!(
                            w,
                            "GET /videos/{name} HTTP/1.1\r\nHost: x\r\nRange: bytes={start}-{end}\r\n\r\n"
                        )
                        .unwrap();
                        let mut status = String::new();
                        r.read_line(&mut status).unwrap();
                        assert!(status.starts_with("HTTP/1.1 206"), "{status}");
                        let mut length = None;
                        loop {
                            let mut line = String::new();
                            r.read_line(&mut line).unwrap();
                            if line == "\r\n" {
                                break;
                            }
                            if let Some((k, v)) = line.split_once(':') {
                                if k.eq_ignore_ascii_case("content-length") {
                                    length = Some(v.trim().parse::<usize>().unwrap());
                                }
                            }
                        }
                        let mut body = vec![0; length.expect("Content-Length")];
                        r.read_exact(&mut body).unwrap();
                        assert!(
                            body == data[start as usize..=end as usize],
                            "workers {workers:?}: connection {i}, request {k}: wrong bytes"
                        );
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().expect("a client failed");
        }
    }
}

/// The value of the `/metrics` sample `name` (with its labels, if any).
fn metric(s: &TestServer, name: &str) -> u64 {
    let m = s.get("/metrics", &[]);
    let text = String::from_utf8_lossy(&m.body);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn a_range_request_moves_the_vod_counters_in_metrics() {
    let s = TestServer::demo();
    let ok = "zerocast_vod_requests_total{class=\"2xx\"}";
    let client_errors = "zerocast_vod_requests_total{class=\"4xx\"}";
    let (ok0, errors0) = (metric(&s, ok), metric(&s, client_errors));
    let bytes0 = metric(&s, "zerocast_vod_body_bytes_total");
    let r = s.get("/videos/clip.ts", &[("Range", "bytes=100-1099")]);
    assert_eq!((r.status, r.body.len()), (206, 1000));
    assert_eq!(metric(&s, ok), ok0 + 1);
    assert_eq!(metric(&s, client_errors), errors0);
    assert_eq!(metric(&s, "zerocast_vod_body_bytes_total"), bytes0 + 1000);
    let size: u64 = DEMO.iter().map(|n| file(n).len() as u64).sum();
    assert_eq!(metric(&s, "zerocast_library_titles"), DEMO.len() as u64);
    assert_eq!(metric(&s, "zerocast_library_cached_bytes"), size);
}
