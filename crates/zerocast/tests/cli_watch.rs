//! `zerocast watch`: what it does with its output (a file kept as it was when nothing came, a
//! FIFO or device written through) and the URLs and durations it refuses.

mod common;
use common::*;

/// `watch -o` of a stream that is not there: the file that was there stays as it was, and
/// nothing is left beside it.
#[test]
fn cli_watch_of_a_stream_that_is_not_there_leaves_the_output_file_as_it_was() {
    let srv = TestServer::demo();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("precious.ts");
    std::fs::write(&out, b"precious").unwrap();
    let watch = zerocast(&[
        "watch",
        &srv.url("/live/nope.ts"),
        "-o",
        out.to_str().unwrap(),
        "--duration",
        "5",
    ]);
    assert_eq!(watch.status.code(), Some(1), "{watch:?}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["precious.ts"]);
}

#[test]
fn cli_watch_with_a_duration_that_is_not_a_number_of_seconds_is_bad_usage() {
    for bad in ["-1", "nan", "inf", "1e20"] {
        let out = zerocast(&[
            "watch",
            "http://127.0.0.1:9/live/x.ts",
            &format!("--duration={bad}"),
        ]);
        assert_eq!(out.status.code(), Some(2), "--duration={bad}");
    }
}

#[test]
fn watch_refuses_flv_hls_and_rtmp_urls_as_bad_usage() {
    for url in [
        "http://127.0.0.1:9/live/show.flv",
        "http://127.0.0.1:9/live/show/index.m3u8",
        "rtmp://127.0.0.1:9/live/show",
    ] {
        let out = zerocast(&["watch", url]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert_eq!(
            err,
            format!(
                "error: bad URL '{url}': expected an http://HOST[:PORT]/live/NAME.ts URL (watch \
                 follows MPEG-TS; .flv, HLS and rtmp:// are not supported by watch)\n"
            ),
            "{url}"
        );
    }
}

/// `watch -o FIFO` (a player reading it, or /dev/null) writes through it as the stream comes:
/// nothing is made beside it, and it stays what it was.
#[test]
fn cli_watch_into_a_fifo_writes_through_it() {
    use std::os::unix::fs::FileTypeExt;
    let s = common::live::server(|_| {});
    let data = std::fs::read(common::fixtures::live_ts()).unwrap();
    let half = data.len() / 2 / 188 * 188;
    let _publisher = common::live::raw_publish(s.addr, "/live/pipe", &data[..half]);
    common::live::wait_for(&s, "pipe", "a keyframe", |d| {
        d["ring_units"].as_u64() >= Some(1)
    });
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("player");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path; mkfifo touches no memory of ours.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap().len())
    };
    let w = zerocast(&[
        "watch",
        &s.url("/live/pipe.ts"),
        "-o",
        fifo.to_str().unwrap(),
        "--duration",
        "1",
    ]);
    assert_eq!(
        w.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&w.stderr)
    );
    // (Before the reader is joined: a FIFO replaced by a file would leave it waiting.)
    let meta = std::fs::symlink_metadata(&fifo).unwrap();
    assert!(meta.file_type().is_fifo());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["player"]);
    assert!(reader.join().unwrap() > 0, "the player read the stream");
}
