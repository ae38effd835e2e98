//! A title mapped from disk (beyond the memory budget) whose pages are not in the page cache:
//! a range of it, large (`sendfile`) or small or written from the mapping (`writev`, as over
//! TLS) or over HTTP/2, is read in off the server's workers before it is sent (`pagein`), and
//! once read in, it is sent from the page cache. One test in this binary: it counts a process-wide
//! metric.

mod common;

use common::{demo_copy_in, TestServer};
use server::library::Library;

/// `zerocast_{name}` from `/metrics`.
fn metric(s: &TestServer, name: &str) -> u64 {
    let text = String::from_utf8(s.get("/metrics", &[]).body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("zerocast_{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// A directory on the disk the build is on: pages of a file in memory (a `tmpfs` `/tmp`, as
/// Debian 13 mounts it) can be put out of the page cache only to swap, if there is any.
fn on_disk() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// Puts the pages of `data` (a title mapped from its file) out of memory and out of the page
/// cache, as the kernel does under memory pressure: they must be read from disk again. The
/// kernel keeps a page it is still writing back, or that the journal still holds, so this is
/// done again (a busy machine takes a few tries; there is no event to wait for) until the pages
/// at `firsts` (where the ranges the test asks for begin: a stretch with one page missing is
/// read in whole) are out, and at most two fifths of the others stay (CI saw 192 of 554 pages
/// stay for a minute: two large folios, 1.25 to 2 MiB into the demo title, clean and unmapped
/// here, whatever they were advised). Whether it got there in 2 s.
fn page_out(data: &[u8], path: &std::path::Path, firsts: &[usize]) -> bool {
    use std::os::fd::AsRawFd;
    let page = 4096;
    let start = data.as_ptr() as usize / page * page;
    let len = data.as_ptr() as usize + data.len() - start;
    let file = std::fs::File::open(path).unwrap();
    for i in 0..200 {
        if i % 50 == 49 {
            // Still held: the whole system's dirty data written and its journal committed
            // (a folio the journal holds cannot be put out).
            // SAFETY: sync(2) takes no arguments and cannot fail.
            unsafe { libc::sync() };
        }
        // SAFETY: the range is inside the title's own read-only file mapping, which `data`
        // keeps alive; MADV_DONTNEED only unmaps its pages from this process (a read-only file
        // mapping: a later access reads the same bytes from the file again). MADV_PAGEOUT would
        // leave a large folio it cannot split mapped, and then in the page cache.
        let r = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        assert_eq!(r, 0);
        file.sync_all().unwrap();
        // SAFETY: an advice on an open descriptor; it touches no memory of ours.
        let r = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(r, 0);
        let mut resident = vec![0u8; len.div_ceil(page)];
        // SAFETY: `start..start + len` is the title's live mapping, page-aligned, and `resident`
        // holds one byte per page of it. (`mincore` reads no page in, where a probe would start
        // the kernel's readahead.)
        let r = unsafe { libc::mincore(start as *mut libc::c_void, len, resident.as_mut_ptr()) };
        assert_eq!(r, 0);
        let left: Vec<usize> = (0..resident.len())
            .filter(|&i| resident[i] & 1 == 1)
            .collect();
        let firsts_out = firsts.iter().all(|&at| resident[at / page] & 1 == 0);
        if firsts_out && left.len() * 5 <= resident.len() * 2 {
            return true;
        }
        if i == 199 {
            let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
            let pressure: Vec<&str> = meminfo
                .lines()
                .filter(|l| {
                    ["Dirty:", "Writeback:", "MemFree:", "Cached:"]
                        .iter()
                        .any(|k| l.starts_with(k))
                })
                .collect();
            eprintln!(
                "pages stayed: {} of {} resident (the first ones out: {firsts_out}; first resident: {:?}); {pressure:?}",
                left.len(),
                resident.len(),
                left.iter().take(8).collect::<Vec<_>>()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// Puts the pages of `data` out ([`page_out`]) and makes a request, until the server reads in
/// at least `need(&answer)` bytes of it; returns that answer. The page cache is the kernel's:
/// on a busy machine a large folio can stay in it whatever it is advised, or a page come back
/// between the page-out and the request (seen once in CI: nothing left to read in), so this
/// tries again, thirty times at most (seen in CI twice: ten tries of 2 s each, with the
/// pages of a file just written staying; it passed alone right after). A server that sends without reading in fails every try.
fn cold_request<T>(
    s: &TestServer,
    (data, path, firsts): (&[u8], &std::path::Path, &[usize]),
    mut request: impl FnMut() -> T,
    need: impl Fn(&T) -> u64,
) -> T {
    let mut tries = Vec::new();
    for _ in 0..30 {
        if !page_out(data, path, firsts) {
            eprintln!(
                "cold request of {path:?}, try {}: pages stayed",
                tries.len() + 1
            );
            tries.push(format!("the pages of {path:?} stayed in the page cache"));
            continue;
        }
        let before = metric(s, "vod_read_in_bytes_total");
        let answer = request();
        let read_in = metric(s, "vod_read_in_bytes_total") - before;
        if read_in >= need(&answer) {
            return answer;
        }
        let tried = format!("{read_in} bytes read in, {} needed", need(&answer));
        eprintln!("cold request of {path:?}, try {}: {tried}", tries.len() + 1);
        tries.push(tried);
    }
    panic!("no try read the pages in: {tries:?}");
}

#[test]
fn a_range_of_a_title_not_in_the_page_cache_is_read_in_off_the_workers_then_sent() {
    let dir = demo_copy_in(on_disk());
    let path = dir.path().join("ntsc-moov-at-end.mp4");
    // A budget of nothing: every title is mapped from its file.
    let library = Library::load(dir.path(), 0, |_| {}).expect("library");
    let title = library.get("ntsc-moov-at-end.mp4").unwrap().clone();
    assert!(!title.cached);
    let s = TestServer::start_with(server::Config::default(), library);
    // Past `sendfile_min` (1 MiB), and short of where the kernel was seen to keep pages.
    let range = 0..1_200_000usize;
    let header = format!("bytes={}-{}", range.start, range.end - 1);
    let get = || s.get("/videos/ntsc-moov-at-end.mp4", &[("Range", &header)]);
    let r = cold_request(&s, (&title.data, &path, &[0]), get, |_| range.len() as u64);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, std::fs::read(&path).unwrap()[range.clone()]);
    // Now in the page cache: the same range is sent without reading anything in.
    let again = metric(&s, "vod_read_in_bytes_total");
    let r = s.get("/videos/ntsc-moov-at-end.mp4", &[("Range", &header)]);
    assert_eq!(r.status, 206);
    assert_eq!(metric(&s, "vod_read_in_bytes_total"), again);
    // A range under `sendfile_min` (written from the mapping): read in the same way.
    let small = 200_000..700_000usize;
    let header = format!("bytes={}-{}", small.start, small.end - 1);
    let get = || s.get("/videos/ntsc-moov-at-end.mp4", &[("Range", &header)]);
    let r = cold_request(&s, (&title.data, &path, &[200_000]), get, |_| {
        small.len() as u64
    });
    assert_eq!(r.status, 206);
    assert_eq!(r.body, std::fs::read(&path).unwrap()[small.clone()]);

    // A body written from the mapping (as over TLS) several stretches long: each stretch looked
    // up (and read in) before it is written, the bytes in order.
    let dir = tempfile::tempdir_in(on_disk()).unwrap();
    let path = dir.path().join("long.bin");
    let mut rng = fastrand::Rng::with_seed(3);
    let bytes: Vec<u8> = (0..20_000_000).map(|_| rng.u8(..)).collect();
    std::fs::write(&path, &bytes).unwrap();
    let library = Library::load(dir.path(), 0, |_| {}).expect("library");
    let title = library.get("long.bin").unwrap().clone();
    let mut config = server::Config::default();
    config.policy.sendfile_min = u64::MAX;
    let s = TestServer::start_with(config, library);
    // The first stretch at least (the kernel's readahead may bring the next ones in first).
    let get = || s.get("/videos/long.bin", &[("Range", "bytes=1000-")]);
    let r = cold_request(&s, (&title.data, &path, &[1000]), get, |_| 8 << 20);
    assert_eq!(r.status, 206);
    assert!(r.body == bytes[1000..], "the bytes in order");

    // Over HTTP/2 (hyper's path): the same. (The server before, and its mapping, gone first:
    // pages another mapping holds stay in memory.)
    drop((s, title));
    let mut ca = common::tls::TestCa::new();
    let (cert, key) = ca.issue();
    let mut tls = server::tls::TlsConfig::new(vec!["127.0.0.1:0".parse().unwrap()], cert, key);
    tls.rtmps_listen = None;
    let config = server::Config {
        tls: Some(tls),
        ..server::Config::default()
    };
    let library = Library::load(dir.path(), 0, |_| {}).expect("library");
    let title = library.get("long.bin").unwrap().clone();
    let s = TestServer::start_with(config.clone(), library);
    let get = || common::tls::curl(s.https[0], &ca, "/videos/long.bin", &["--http2"]);
    let (body, version) = cold_request(&s, (&title.data, &path, &[0]), get, |_| 8 << 20);
    assert_eq!(version, "2 200");
    assert!(body == bytes, "the bytes in order");

    // A clip of a title whose tracks are not interleaved, over HTTP/2: its video's range (not
    // the body's file part, which is its audio's) is read in too, before it is copied.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../media/tests/fixtures/non-interleaved.mp4"
    );
    let path = dir.path().join("flat.mp4");
    std::fs::copy(fixture, &path).unwrap();
    drop((s, title));
    let library = Library::load(dir.path(), 0, |_| {}).expect("library");
    let title = library.get("flat.mp4").unwrap().clone();
    let s = TestServer::start_with(config, library);
    // Where the clip's video begins: its keyframe at 2 s.
    let seek = s.get("/api/videos/flat.mp4/seek?t=3", &[]).json();
    let video = seek["offset"].as_u64().unwrap() as usize;
    // Once first: the clip's head is made then (from the `moov`, whose reading the kernel
    // follows with a readahead of the whole small file), and kept.
    let clip = "/videos/flat.mp4?start=3&end=5";
    assert_eq!(s.get(clip, &[]).status, 200);
    let get = || common::tls::curl(s.https[0], &ca, clip, &["--http2"]);
    let (_, version) = cold_request(&s, (&title.data, &path, &[video]), get, |(body, _)| {
        body.len() as u64 / 2
    });
    assert_eq!(version, "2 200");
}
