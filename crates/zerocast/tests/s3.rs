//! Titles in S3-compatible object storage (`library = "s3://bucket/prefix"`), against a real S3
//! server (moto, `common::s3`): the range oracle passes on bucket titles as on local files
//! (the seek oracle and indexing: `s3_index.rs`); a title larger than the block cache streams through it; concurrent viewers of one
//! block cost one request to the store; a store that goes away cuts the responses that need it
//! (never a short body that looks whole) and its titles serve again when it is back.

mod common;
use common::s3::{file, metric, serve, store_with_demo, Moto, BUCKET};
use common::spawned::Served;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The parts of a multipart/byteranges body: (Content-Range, bytes).
fn multipart(r: &Resp) -> Vec<(String, Vec<u8>)> {
    let ct = r.header("content-type").unwrap();
    let boundary = format!("--{}", ct.split("boundary=").nth(1).unwrap());
    let mut out = Vec::new();
    let body = &r.body;
    let mut at = 0;
    while let Some(p) = find(&body[at..], boundary.as_bytes()) {
        let start = at + p + boundary.len();
        if body[start..].starts_with(b"--") {
            break;
        }
        let head_end = start + find(&body[start..], b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&body[start..head_end]).to_lowercase();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("content-range: "))
            .unwrap()
            .to_string();
        let next = head_end + find(&body[head_end..], boundary.as_bytes()).unwrap();
        out.push((range, body[head_end..next - 2].to_vec()));
        at = next;
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn titles_in_a_bucket_answer_whole_ranged_and_conditional_requests_as_their_files() {
    let store = store_with_demo();
    let (_d, s) = serve(&store, &["--library", "s3://media/videos"], "");
    let mut rng = fastrand::Rng::with_seed(15);
    for name in DEMO {
        let bytes = file(name);
        let len = bytes.len() as u64;
        let path = format!("/videos/{name}");
        let whole = request(s.addr, "GET", &path, &[]);
        assert_eq!(whole.status, 200, "{name}");
        assert!(whole.body == bytes, "{name}: whole title differs");
        let etag = whole.header("etag").unwrap().to_string();
        for _ in 0..25 {
            let a = rng.u64(0..len);
            let b = rng.u64(a..len);
            let r = request(
                s.addr,
                "GET",
                &path,
                &[("Range", &format!("bytes={a}-{b}"))],
            );
            assert_eq!(r.status, 206, "{name} {a}-{b}");
            assert_eq!(
                r.header("content-range").unwrap(),
                format!("bytes {a}-{b}/{len}")
            );
            assert!(
                r.body[..] == bytes[a as usize..=b as usize],
                "{name} {a}-{b}"
            );
        }
        let n = rng.u64(1..len.min(100_000));
        let r = request(s.addr, "GET", &path, &[("Range", &format!("bytes=-{n}"))]);
        assert!(
            r.body[..] == bytes[(len - n) as usize..],
            "{name} suffix {n}"
        );
        // Two ranges: a multipart body, each part the file's bytes.
        let (a, b) = (rng.u64(0..len / 2), rng.u64(len / 2 + 1..len));
        let spec = format!("bytes=0-{a},{}-{b}", a + 1 + rng.u64(0..(len / 2 - a)));
        let r = request(s.addr, "GET", &path, &[("Range", &spec)]);
        assert_eq!(r.status, 206, "{name} {spec}");
        for (range, part) in multipart(&r) {
            let (x, y) = range
                .trim_start_matches("bytes ")
                .split('/')
                .next()
                .unwrap()
                .split_once('-')
                .unwrap();
            let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
            assert!(part == bytes[x..=y], "{name} part {range}");
        }
        // If-Range with the object's ETag: the range; with another: the whole title.
        let r = request(
            s.addr,
            "GET",
            &path,
            &[("Range", "bytes=5-9"), ("If-Range", &etag)],
        );
        assert_eq!((r.status, &r.body[..]), (206, &bytes[5..10]), "{name}");
        let r = request(
            s.addr,
            "GET",
            &path,
            &[("Range", "bytes=5-9"), ("If-Range", "\"x\"")],
        );
        assert_eq!(r.status, 200, "{name}");
        let r = request(s.addr, "GET", &path, &[("If-None-Match", &etag)]);
        assert_eq!(r.status, 304, "{name}");
        let r = request(s.addr, "HEAD", &path, &[]);
        assert_eq!(
            r.header("content-length"),
            Some(&*len.to_string()),
            "{name}"
        );
    }
}

#[test]
fn two_servers_reading_one_bucket_give_every_title_the_same_etag_the_stores_own() {
    let store = store_with_demo();
    let (_d1, a) = serve(&store, &["--library", "s3://media/videos"], "");
    let (_d2, b) = serve(&store, &["--library", "s3://media"], "");
    for name in DEMO {
        let x = request(a.addr, "HEAD", &format!("/videos/{name}"), &[]);
        let y = request(b.addr, "HEAD", &format!("/videos/videos/{name}"), &[]);
        let (x, y) = (x.header("etag").unwrap(), y.header("etag").unwrap());
        assert_eq!(x, y, "{name}");
        // S3's ETag of a single-part upload: the MD5 of the bytes, quoted.
        assert!(
            x.len() == 34 && x.starts_with('"') && x.ends_with('"'),
            "{x}"
        );
    }
}

#[test]
fn a_title_larger_than_the_block_cache_streams_through_it_with_blocks_evicted_and_fetched_again() {
    let store = store_with_demo();
    // Blocks of 64 KiB, sent with sendfile (as local titles are from `sendfile_min` on).
    let config = "sendfile_min = \"64KiB\"\n[s3]\nblock_size = \"64KiB\"\nread_ahead = 0\n";
    let (_d, s) = serve(
        &store,
        &["--library", "s3://media/videos", "--cache-size", "256KiB"],
        config,
    );
    let name = "ntsc-moov-at-end.mp4";
    let bytes = file(name);
    assert!(
        bytes.len() > 8 * (256 << 10),
        "the title is several times the cache"
    );
    let before = metric(&s, "s3_requests_total");
    for round in 0..2 {
        let r = request(s.addr, "GET", &format!("/videos/{name}"), &[]);
        assert_eq!(r.status, 200);
        assert!(r.body == bytes, "round {round}: the title's bytes");
        assert!(
            metric(&s, "s3_cache_bytes") <= 256 << 10,
            "within the cache"
        );
    }
    let blocks = bytes.len().div_ceil(64 << 10) as u64;
    let requests = metric(&s, "s3_requests_total") - before;
    assert!(
        requests >= 2 * blocks - 8,
        "{requests} requests for {blocks} blocks twice"
    );
    assert!(metric(&s, "s3_block_evictions_total") >= blocks);
    // Over plain HTTP/1.1 the blocks went out with sendfile from the cache's memfd (slots
    // reused as blocks were let go, the bytes above still the title's).
    let sent = metric(&s, "s3_block_sendfile_bytes_total");
    assert!(
        sent >= bytes.len() as u64,
        "{sent} bytes sent with sendfile of 2 × {}",
        bytes.len()
    );
}

#[test]
fn a_hundred_concurrent_viewers_of_one_block_make_one_request_to_the_store() {
    let store = store_with_demo();
    let config = "[s3]\nblock_size = \"64KiB\"\n";
    let (_d, s) = serve(&store, &["--library", "s3://media/videos"], config);
    let name = "ntsc-moov-at-end.mp4";
    let bytes = file(name);
    // Block 10: neither it nor the block before it was read to index the title.
    let (a, b) = (10 * 65_536 + 1_000, 10 * 65_536 + 50_000);
    let before = metric(&s, "s3_requests_total");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(100));
    let addr = s.addr;
    let viewers: Vec<_> = (0..100)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let req = format!(
                    "GET /videos/{name} HTTP/1.1\r\nHost: x\r\nRange: bytes={a}-{b}\r\n\
                     Connection: close\r\n\r\n"
                );
                barrier.wait();
                c.write_all(req.as_bytes()).unwrap();
                let mut raw = Vec::new();
                c.read_to_end(&mut raw).unwrap();
                parse_response(&raw)
            })
        })
        .collect();
    for v in viewers {
        let r = v.join().unwrap();
        assert_eq!(r.status, 206);
        assert!(r.body[..] == bytes[a..=b]);
    }
    assert_eq!(
        metric(&s, "s3_requests_total") - before,
        1,
        "one request to the store"
    );
}

#[test]
fn a_player_reading_a_title_range_after_range_gets_the_next_blocks_fetched_ahead() {
    let store = store_with_demo();
    let config = "[s3]\nblock_size = \"64KiB\"\nread_ahead = 2\n";
    let (_d, s) = serve(&store, &["--library", "s3://media/videos"], config);
    let name = "ntsc-moov-at-end.mp4";
    let bytes = file(name);
    let (misses, ahead) = (
        metric(&s, "s3_block_misses_total"),
        metric(&s, "s3_block_read_ahead_total"),
    );
    for k in 5..20 {
        let (a, b) = (k * 65_536, (k + 1) * 65_536 - 1);
        let r = request(
            s.addr,
            "GET",
            &format!("/videos/{name}"),
            &[("Range", &format!("bytes={a}-{b}"))],
        );
        assert!(r.body[..] == bytes[a..=b], "range {k}");
    }
    let misses = metric(&s, "s3_block_misses_total") - misses;
    let ahead = metric(&s, "s3_block_read_ahead_total") - ahead;
    // The first two ranges miss; from the second on, each range's next blocks are on their way
    // before the player asks.
    assert!(misses <= 3, "{misses} misses for 15 ranges");
    assert!(ahead >= 12, "{ahead} blocks fetched ahead");
}

#[test]
fn random_ranges_fetch_only_their_own_blocks() {
    let store = store_with_demo();
    let config = "[s3]\nblock_size = \"64KiB\"\nread_ahead = 2\n";
    let (_d, s) = serve(&store, &["--library", "s3://media/videos"], config);
    let name = "ntsc-moov-at-end.mp4";
    let before = metric(&s, "s3_requests_total");
    // Ranges inside blocks 3, 9 and 20 (not block-aligned: no player reading on).
    for k in [3usize, 9, 20] {
        let a = k * 65_536 + 100;
        let r = request(
            s.addr,
            "GET",
            &format!("/videos/{name}"),
            &[("Range", &format!("bytes={a}-{}", a + 1000))],
        );
        assert_eq!(r.status, 206);
    }
    assert_eq!(metric(&s, "s3_requests_total") - before, 3);
}

#[test]
fn the_store_going_away_cuts_the_responses_that_need_it_and_its_titles_serve_again_when_it_is_back()
{
    let store = Moto::start();
    store.create_bucket(BUCKET);
    let mut big = vec![0u8; 32 << 20];
    fastrand::Rng::with_seed(9).fill(&mut big);
    store.put(BUCKET, "big.bin", &big);
    let config = "[s3]\nblock_size = \"1MiB\"\ntimeout_secs = 2\nretries = 0\n";
    let (_d, s) = serve(
        &store,
        &["--library", "s3://media", "--cache-size", "4MiB"],
        config,
    );
    // A download that has its head and a first megabyte when the store goes away.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    small_receive_buffer(&c);
    c.write_all(b"GET /videos/big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = vec![0u8; 1 << 20];
    c.read_exact(&mut got).unwrap();
    let port = store.kill();
    c.read_to_end(&mut got).unwrap();
    let head_end = find(&got, b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    assert!(
        head.starts_with("http/1.1 200")
            && head.contains(&format!("content-length: {}", big.len()))
    );
    let body = &got[head_end..];
    assert!(
        body.len() < big.len(),
        "cut: {} of {} bytes",
        body.len(),
        big.len()
    );
    assert!(body == &big[..body.len()], "what came is the title's bytes");
    // While it is away: a block not in the cache is a 502 that says why, which a browser
    // player on another origin may read.
    let r = request(
        s.addr,
        "GET",
        "/videos/big.bin",
        &[
            ("Range", "bytes=-1000"),
            ("Origin", "https://player.example"),
        ],
    );
    assert_eq!(r.status, 502);
    assert!(String::from_utf8_lossy(&r.body).contains("object store could not be reached"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    // Back (moto keeps nothing: the same bytes are put again, so the same ETag).
    let store = Moto::start_on(port);
    store.create_bucket(BUCKET);
    store.put(BUCKET, "big.bin", &big);
    let r = request(s.addr, "GET", "/videos/big.bin", &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == big, "whole again");
}

#[test]
fn finished_recordings_the_bucket_lacks_are_uploaded_when_the_server_starts() {
    let store = Moto::start();
    store.create_bucket("rec");
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    let cam = lib.join("recordings/cam");
    std::fs::create_dir_all(&cam).unwrap();
    // Two files a stopped server finished: one it uploaded, one whose upload failed.
    let clip = file("clip.ts");
    let (done, missing) = ("20261126T100000.000Z.ts", "20261126T100010.000Z.ts");
    for name in [done, missing] {
        let f = std::fs::File::create(cam.join(name)).unwrap();
        std::io::Write::write_all(&mut &f, &clip).unwrap();
        f.set_modified(std::time::SystemTime::now() - Duration::from_secs(600))
            .unwrap();
    }
    store.put("rec", &format!("archive/recordings/cam/{done}"), &clip);
    let config = dir.path().join("zerocast.toml");
    let rule = "[[record]]\nstreams = \"cam\"\nupload = \"s3://rec/archive\"\n";
    std::fs::write(&config, rule).unwrap();
    let env = store.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let lib_arg = lib.to_str().unwrap();
    let args = ["--library", lib_arg, "--config", config.to_str().unwrap()];
    let s = Served::start_with_env(None, &args, &env);
    common::live::wait_until("the missing file uploaded", common::recorded::WAIT, || {
        metric(&s, "record_uploads_total") >= 1
    });
    // Only the missing one (the other has its object, of its length).
    assert_eq!(metric(&s, "record_uploads_total"), 1);
    assert_eq!(metric(&s, "record_upload_failures_total"), 0);
    let (_d, b) = serve(&store, &["--library", "s3://rec/archive"], "");
    for name in [done, missing] {
        let r = request(
            b.addr,
            "GET",
            &format!("/videos/recordings/cam/{name}"),
            &[],
        );
        assert_eq!(r.status, 200, "{name}");
        assert!(r.body == clip, "{name}: the file's bytes");
    }
}

/// A receive buffer of 64 KiB that the kernel does not grow (loopback may otherwise take a
/// whole title before the client reads a byte), so the server writes as the client reads.
fn small_receive_buffer(c: &TcpStream) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 64 << 10;
    // SAFETY: a valid socket descriptor, and a c_int option value of the size given.
    let r = unsafe {
        libc::setsockopt(
            c.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}

#[test]
fn finished_recording_files_are_put_into_the_bucket_and_serve_from_it_as_recordings() {
    let store = Moto::start();
    store.create_bucket("rec");
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    std::fs::create_dir(&lib).unwrap();
    let config = dir.path().join("zerocast.toml");
    let rule = "[[record]]\nstreams = \"cam\"\nsegment_secs = 2\nupload = \"s3://rec/archive\"\n";
    std::fs::write(&config, rule).unwrap();
    let env = store.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = [
        "--library",
        lib.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];
    let s = Served::start_with_env(None, &args, &env);
    let publisher = common::recorded::publish(&s, "cam");
    common::live::wait_until("two files uploaded", common::recorded::WAIT, || {
        metric(&s, "record_uploads_total") >= 2
    });
    drop(publisher);
    // A server reading the bucket lists them under the ids they have on the recording server.
    let (_d, b) = serve(&store, &["--library", "s3://rec/archive"], "");
    let files = common::recorded::finished_files(&lib, "cam");
    assert!(files.len() >= 2);
    for path in &files[..2] {
        let id = format!(
            "recordings/cam/{}",
            path.file_name().unwrap().to_str().unwrap()
        );
        let r = request(b.addr, "GET", &format!("/videos/{id}"), &[]);
        assert_eq!(r.status, 200, "{id}");
        assert!(
            r.body == std::fs::read(path).unwrap(),
            "{id}: the file's bytes"
        );
        let doc = request(b.addr, "GET", &format!("/api/videos/{id}"), &[]).json();
        assert!(doc["recording_started"].is_string(), "{id}: {doc}");
        assert_eq!(doc["container"], "mpegts");
    }
    assert_eq!(metric(&s, "record_upload_failures_total"), 0);
}

#[test]
fn over_http2_the_store_going_away_resets_the_download_stream_rather_than_ending_it_short() {
    common::require("curl");
    let store = Moto::start();
    store.create_bucket(BUCKET);
    let mut big = vec![0u8; 96 << 20];
    fastrand::Rng::with_seed(5).fill(&mut big);
    store.put(BUCKET, "big.bin", &big);
    let mut ca = common::tls::TestCa::new();
    let (cert, key) = ca.issue();
    let port = common::spawned::free_port();
    let tls_listen = format!("127.0.0.1:{port}");
    let config = "[s3]\ntimeout_secs = 2\nretries = 0\n";
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let args = [
        "--library",
        "s3://media",
        "--cache-size",
        "4MiB",
        "--tls-listen",
        &tls_listen,
        "--tls-cert",
        c,
        "--tls-key",
        k,
    ];
    let (dir, _s) = serve(&store, &args, config);
    // curl over HTTP/2, reading slowly, into a file.
    let out = dir.path().join("got.bin");
    let curl = std::process::Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "--limit-rate",
            "4M",
            "--max-time",
            "60",
            "--cacert",
        ])
        .arg(&ca.ca)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1"), "-o"])
        .arg(&out)
        .args(["-w", "%{http_version} %{http_code}"])
        .arg(format!("https://localhost:{port}/videos/big.bin"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let size = || std::fs::metadata(&out).map_or(0, |m| m.len());
    common::live::wait_until("a first megabyte", Duration::from_secs(30), || {
        size() >= 1 << 20
    });
    store.kill();
    let done = curl.wait_with_output().unwrap();
    let got = std::fs::read(&out).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&done.stdout),
        "2 200",
        "an HTTP/2 200 had begun"
    );
    assert!(
        !done.status.success(),
        "curl saw the transfer fail, not end"
    );
    assert!(
        got.len() < big.len(),
        "cut: {} of {} bytes",
        got.len(),
        big.len()
    );
    assert!(
        got[..] == big[..got.len()],
        "what came is the title's bytes"
    );
}

/// A rule that uploads its files and keeps them 2 s, whose bucket refuses every upload and every
/// listing (it does not exist): retention removes none of the files not known to be in it
/// (neither an old one nor the recorder's own) and says why, since they are nowhere else; an
/// old one an earlier run marked as uploaded goes, with its mark.
#[test]
fn retention_removes_only_the_recordings_known_to_be_in_their_bucket() {
    let store = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    let cam = lib.join("recordings/cam");
    std::fs::create_dir_all(&cam).unwrap();
    let old = cam.join("20261126T100000.000Z.ts");
    std::fs::write(&old, file("clip.ts")).unwrap();
    let marked = cam.join("20261126T090000.000Z.ts");
    let mark = cam.join(".20261126T090000.000Z.ts.uploaded");
    std::fs::write(&marked, file("clip.ts")).unwrap();
    std::fs::write(&mark, b"").unwrap();
    let config = dir.path().join("zerocast.toml");
    let rule = "[[record]]\nstreams = \"cam\"\nsegment_secs = 1\nkeep_secs = 2\n\
                upload = \"s3://rec/archive\"\n";
    std::fs::write(&config, rule).unwrap();
    let env = store.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let lib_arg = lib.to_str().unwrap();
    let args = ["--library", lib_arg, "--config", config.to_str().unwrap()];
    let s = Served::start_with_env(None, &args, &env);
    let _publisher = common::recorded::publish(&s, "cam");
    let held = "retention keeps recordings that are not in their bucket yet";
    common::live::wait_until("retention passes over them", common::recorded::WAIT, || {
        s.log_lines(held).len() >= 2 && metric(&s, "record_upload_failures_total") >= 2
    });
    assert!(old.exists(), "the old recording is kept");
    assert!(common::recorded::finished_files(&lib, "cam").len() >= 3);
    assert!(
        !marked.exists() && !mark.exists(),
        "the one marked uploaded goes"
    );
    let removed = s.log_lines("retention removed recordings").join("\n");
    assert!(removed.contains("20261126T090000.000Z.ts") && !removed.contains("20261126T100000"));
    assert_eq!(metric(&s, "record_uploads_total"), 0);
}
