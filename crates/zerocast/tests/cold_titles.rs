//! A title mapped from disk (beyond the memory budget) whose pages are not in the page cache:
//! a range of it, large (`sendfile`) or small or written from the mapping (`writev`, as over
//! TLS) or over HTTP/2, is read in off the server's workers before it is sent (`pagein`), and
//! once read in, it is sent from the page cache. One test in this binary: it counts a process-wide
//! metric.

mod common;

use common::TestServer;
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

/// A new directory on the disk the build is on holding `bytes` as `name`, written around the
/// page cache (`O_DIRECT`, where the file system takes it; its last partial page written as
/// usual): a new file, none of whose pages has been in memory. (CI saw pages of a file that had
/// been sent once, in large folios, stay in the page cache for a minute whatever they were
/// advised: so every try of [`cold_request`] takes a file of its own.)
fn fresh_copy(name: &str, bytes: &[u8]) -> tempfile::TempDir {
    use std::io::Write;
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    const BLOCK: usize = 4096;
    let dir = tempfile::tempdir_in(on_disk()).unwrap();
    let path = dir.path().join(name);
    let whole = bytes.len() / BLOCK * BLOCK;
    let direct = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path);
    let written = direct.and_then(|mut file| {
        // A buffer aligned to the block, as `O_DIRECT` asks.
        let mut buffer = vec![0u8; (1 << 20) + BLOCK];
        let skew = buffer.as_ptr().align_offset(BLOCK);
        let aligned = buffer
            .get_mut(skew..skew.saturating_add(1 << 20))
            .ok_or_else(|| std::io::Error::other("no aligned buffer"))?;
        for chunk in bytes[..whole].chunks(1 << 20) {
            aligned[..chunk.len()].copy_from_slice(chunk);
            file.write_all(&aligned[..chunk.len()])?;
        }
        Ok(())
    });
    match written {
        Ok(()) => {
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.write_all_at(&bytes[whole..], whole as u64).unwrap();
            file.sync_all().unwrap();
        }
        Err(e) => {
            eprintln!("no O_DIRECT here ({e}): {name} written through the page cache");
            std::fs::write(&path, bytes).unwrap();
        }
    }
    dir
}

/// Puts the pages of `data` (a title mapped from its file) out of memory and out of the page
/// cache, as the kernel does under memory pressure: they must be read from disk again. (Those
/// of a [`fresh_copy`] that the library read when it loaded the title: its head, its index.)
/// The kernel keeps a page it is still writing back, so this is done again (a busy machine
/// takes a few tries; there is no event to wait for) until the pages at `firsts` are out: where
/// the ranges the test asks for begin (the server looks up the first page of each stretch, and
/// reads in a stretch whole when a page it looks up is missing). Whether it got there in 2 s.
fn page_out(data: &[u8], path: &std::path::Path, firsts: &[usize]) -> bool {
    use std::os::fd::AsRawFd;
    let page = 4096;
    let start = data.as_ptr() as usize / page * page;
    let len = data.as_ptr() as usize + data.len() - start;
    let file = std::fs::File::open(path).unwrap();
    for i in 0..200 {
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
        if firsts.iter().all(|&at| resident[at / page] & 1 == 0) {
            return true;
        }
        if i == 199 {
            let left: Vec<usize> = (0..resident.len())
                .filter(|&i| resident[i] & 1 == 1)
                .collect();
            eprintln!(
                "pages stayed: {} of {} resident (first resident: {:?})",
                left.len(),
                resident.len(),
                left.iter().take(8).collect::<Vec<_>>()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// A server on a [`fresh_copy`] of `bytes` as `name`, the only title of its library (mapped
/// from its file: a budget of nothing), and what a request of it answered.
struct Cold<T> {
    server: TestServer,
    answer: T,
    _dir: tempfile::TempDir,
}

/// Starts a server (`start`, which may make requests first, and returns where the ranges to
/// be asked for begin) on a [`fresh_copy`] of `bytes` as `name`, puts the pages the library
/// read out ([`page_out`]) and makes a request, until the server reads in at least
/// `need(&answer)` bytes for it. The page cache is the kernel's: on a busy machine a page can
/// stay in it whatever it is advised, or come back between the page-out and the request (seen
/// once in CI: nothing left to read in), so this tries again, with a new file, ten times at
/// most. A server that sends without reading in fails every try.
fn cold_request<T>(
    (name, bytes): (&str, &[u8]),
    start: impl Fn(Library) -> (TestServer, Vec<usize>),
    request: impl Fn(&TestServer) -> T,
    need: impl Fn(&T) -> u64,
) -> Cold<T> {
    let mut tries = Vec::new();
    for _ in 0..10 {
        let dir = fresh_copy(name, bytes);
        let path = dir.path().join(name);
        let library = Library::load(dir.path(), 0, |_| {}).expect("library");
        let title = library.get(name).unwrap().clone();
        assert!(!title.cached);
        let (server, firsts) = start(library);
        if !page_out(&title.data, &path, &firsts) {
            eprintln!(
                "cold request of {name}, try {}: pages stayed",
                tries.len() + 1
            );
            tries.push(format!("the pages of {name} stayed in the page cache"));
            continue;
        }
        let before = metric(&server, "vod_read_in_bytes_total");
        let answer = request(&server);
        let read_in = metric(&server, "vod_read_in_bytes_total") - before;
        if read_in >= need(&answer) {
            return Cold {
                server,
                answer,
                _dir: dir,
            };
        }
        let tried = format!("{read_in} bytes read in, {} needed", need(&answer));
        eprintln!("cold request of {name}, try {}: {tried}", tries.len() + 1);
        tries.push(tried);
    }
    panic!("no try read the pages in: {tries:?}");
}

#[test]
fn a_range_of_a_title_not_in_the_page_cache_is_read_in_off_the_workers_then_sent() {
    let name = "ntsc-moov-at-end.mp4";
    let bytes = std::fs::read(common::demo_dir().join(name)).unwrap();
    let plain = |firsts: Vec<usize>| {
        move |library| {
            (
                TestServer::start_with(server::Config::default(), library),
                firsts.clone(),
            )
        }
    };
    // Past `sendfile_min` (1 MiB).
    let range = 0..1_200_000usize;
    let header = format!("bytes={}-{}", range.start, range.end - 1);
    let get = |s: &TestServer| s.get("/videos/ntsc-moov-at-end.mp4", &[("Range", &header)]);
    let cold = cold_request((name, &bytes), plain(vec![0]), get, |_| range.len() as u64);
    assert_eq!(cold.answer.status, 206);
    assert_eq!(cold.answer.body, bytes[range.clone()]);
    // Now in the page cache: the same range is sent without reading anything in.
    let again = metric(&cold.server, "vod_read_in_bytes_total");
    let r = get(&cold.server);
    assert_eq!(r.status, 206);
    assert_eq!(metric(&cold.server, "vod_read_in_bytes_total"), again);
    drop(cold);
    // A range under `sendfile_min` (written from the mapping): read in the same way.
    let small = 200_000..700_000usize;
    let header = format!("bytes={}-{}", small.start, small.end - 1);
    let get = |s: &TestServer| s.get("/videos/ntsc-moov-at-end.mp4", &[("Range", &header)]);
    let cold = cold_request((name, &bytes), plain(vec![200_000]), get, |_| {
        small.len() as u64
    });
    assert_eq!(cold.answer.status, 206);
    assert_eq!(cold.answer.body, bytes[small.clone()]);
    drop(cold);

    // A body written from the mapping (as over TLS) several stretches long: each stretch looked
    // up (and read in) before it is written, the bytes in order.
    let mut rng = fastrand::Rng::with_seed(3);
    let long: Vec<u8> = (0..20_000_000).map(|_| rng.u8(..)).collect();
    let start = |library| {
        let mut config = server::Config::default();
        config.policy.sendfile_min = u64::MAX;
        (TestServer::start_with(config, library), vec![1000])
    };
    // The first stretch at least (the kernel's readahead may bring the next ones in first).
    let get = |s: &TestServer| s.get("/videos/long.bin", &[("Range", "bytes=1000-")]);
    let cold = cold_request(("long.bin", &long), start, get, |_| 8 << 20);
    assert_eq!(cold.answer.status, 206);
    assert!(cold.answer.body == long[1000..], "the bytes in order");
    drop(cold);

    // Over HTTP/2 (hyper's path): the same.
    let mut ca = common::tls::TestCa::new();
    let (cert, key) = ca.issue();
    let mut tls = server::tls::TlsConfig::new(vec!["127.0.0.1:0".parse().unwrap()], cert, key);
    tls.rtmps_listen = None;
    let config = server::Config {
        tls: Some(tls),
        ..server::Config::default()
    };
    let start = |library| (TestServer::start_with(config.clone(), library), vec![0]);
    let get = |s: &TestServer| common::tls::curl(s.https[0], &ca, "/videos/long.bin", &["--http2"]);
    let cold = cold_request(("long.bin", &long), start, get, |_| 8 << 20);
    assert_eq!(cold.answer.1, "2 200");
    assert!(cold.answer.0 == long, "the bytes in order");
    drop(cold);

    // A clip of a title whose tracks are not interleaved, over HTTP/2: its video's range (not
    // the body's file part, which is its audio's) is read in too, before it is copied.
    let flat = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../media/tests/fixtures/non-interleaved.mp4"
    ))
    .unwrap();
    let clip = "/videos/flat.mp4?start=3&end=5";
    let start = |library| {
        let s = TestServer::start_with(config.clone(), library);
        // Where the clip's video begins: its keyframe at 2 s.
        let seek = s.get("/api/videos/flat.mp4/seek?t=3", &[]).json();
        let video = seek["offset"].as_u64().unwrap() as usize;
        // Once first: the clip's head is made then (from the `moov`, whose reading the kernel
        // follows with a readahead of the whole small file), and kept.
        assert_eq!(s.get(clip, &[]).status, 200);
        (s, vec![video])
    };
    let get = |s: &TestServer| common::tls::curl(s.https[0], &ca, clip, &["--http2"]);
    let cold = cold_request(("flat.mp4", &flat), start, get, |(body, _)| {
        (body.len() as u64 / 2).max(1)
    });
    assert_eq!(cold.answer.1, "2 200");
    assert!(
        cold.answer.0 == cold.server.get(clip, &[]).body,
        "the clip's bytes"
    );
}
