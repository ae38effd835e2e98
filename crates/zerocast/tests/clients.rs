//! Real clients against a real server: ffmpeg and ffprobe over HTTP, and the zerocast CLI.

mod common;
use common::*;
use std::process::Command;

#[test]
fn ffmpeg_seeks_and_decodes_a_frame_over_http() {
    let srv = TestServer::demo();
    let dir = tempfile::tempdir().unwrap();
    for (name, t) in [
        ("faststart.mp4", "5"),
        ("ntsc-moov-at-end.mp4", "61.5"),
        ("fragmented.mp4", "3"),
        ("clip.ts", "5"),
        ("vp9-opus.webm", "3"),
    ] {
        let png = dir.path().join(format!("{name}.png"));
        ffmpeg(&[
            "-ss",
            t,
            "-i",
            &srv.url(&format!("/videos/{name}")),
            "-frames:v",
            "1",
            png.to_str().unwrap(),
        ]);
        // A real picture: a PNG of the video's 320x180 (its IHDR's width and height).
        let png = std::fs::read(&png).unwrap();
        assert_eq!(&png[12..16], b"IHDR", "{name}");
        let (w, h) = (
            u32::from_be_bytes(png[16..20].try_into().unwrap()),
            u32::from_be_bytes(png[20..24].try_into().unwrap()),
        );
        assert_eq!((w, h), (320, 180), "{name}: picture size");
    }
}

#[test]
fn ffprobe_reports_the_duration_over_http() {
    let srv = TestServer::demo();
    for name in DEMO {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "csv=p=0",
            ])
            .arg(srv.url(&format!("/videos/{name}")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let remote: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let ours = srv.get(&format!("/api/videos/{name}"), &[]).json()["duration_seconds"]
            .as_f64()
            .unwrap();
        assert!(
            (remote - ours).abs() < 0.25,
            "{name}: ffprobe {remote} s, zerocast {ours} s"
        );
    }
}

#[test]
fn ffmpeg_decodes_whole_files_without_errors() {
    let srv = TestServer::demo();
    for name in DEMO {
        assert_decodes_without_errors(&srv.url(&format!("/videos/{name}")), None);
    }
}

/// `seek` over HTTP and `index --at` on the local file name the same keyframe offset.
#[test]
fn cli_seek_and_local_index_name_the_same_offset() {
    let srv = TestServer::demo();
    for (name, tc) in [
        ("ntsc-moov-at-end.mp4", "00:01:02;10"),
        ("clip.ts", "00:00:05:12"),
        ("vp9-opus.webm", "4.5"),
    ] {
        let url = srv.url(&format!("/videos/{name}"));
        let seek = zerocast(&["seek", &url, tc]);
        assert!(
            seek.status.success(),
            "{}",
            String::from_utf8_lossy(&seek.stderr)
        );
        let stdout = String::from_utf8_lossy(&seek.stdout);
        let offset: usize = stdout.split('\t').next().unwrap().trim().parse().unwrap();
        local_index_agrees(name, tc, offset);
    }
}

/// The local index (no server) names the same offset as the server.
fn local_index_agrees(name: &str, tc: &str, offset: usize) {
    let local = zerocast(&["index", demo_dir().join(name).to_str().unwrap(), "--at", tc]);
    assert!(local.status.success());
    let local_off: usize = String::from_utf8_lossy(&local.stdout)
        .split('\t')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(local_off, offset, "{name} at {tc}");
}

#[test]
fn cli_get_with_an_offset_and_a_size_past_the_end_returns_the_rest() {
    let srv = TestServer::demo();
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url("/videos/clip.ts");
    let out = dir.path().join("tail");
    let get = zerocast(&[
        "get",
        &url,
        "--offset",
        "330000",
        "--size",
        "1MB",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(get.status.success());
    assert_eq!(
        std::fs::read(&out).unwrap(),
        &std::fs::read(demo_dir().join("clip.ts")).unwrap()[330000..]
    );
}

/// `get` with the default size (20 MiB) of a smaller title: the server answers the whole title
/// (200, the range covers it), and that is a success with the whole file.
#[test]
fn cli_get_with_the_default_size_fetches_a_whole_small_title() {
    let srv = TestServer::demo();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("whole.ts");
    let get = zerocast(&[
        "get",
        &srv.url("/videos/clip.ts"),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(demo_dir().join("clip.ts")).unwrap()
    );
}

/// A failed `get` leaves the output file that was there as it was, and no partial file beside it.
#[test]
fn cli_get_that_fails_leaves_the_output_file_as_it_was() {
    let srv = TestServer::demo();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("precious.mp4");
    std::fs::write(&out, b"precious").unwrap();
    let get = zerocast(&[
        "get",
        &srv.url("/videos/nope.mp4"),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(get.status.code(), Some(1));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["precious.mp4"]);
}

/// `-o /dev/null` (or any file that is not a regular one) is written to as it is: nothing is
/// made beside it, and it stays what it was.
#[test]
fn cli_get_into_dev_null_writes_through_it() {
    let srv = TestServer::demo();
    let get = zerocast(&[
        "get",
        &srv.url("/videos/clip.ts"),
        "--size",
        "1000",
        "-o",
        "/dev/null",
    ]);
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    use std::os::unix::fs::FileTypeExt;
    let null = std::fs::metadata("/dev/null").unwrap();
    assert!(null.file_type().is_char_device());
    assert!(!std::path::Path::new("/dev/.null.partial").exists());
}

/// `get --size 1000 -o FILE` against a server that answers every request with `head` then
/// `body`: what the command did, what it said, and whether FILE exists.
fn get_1000_from(head: &'static [u8], body: Vec<u8>) -> (Option<i32>, String, bool) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut c, _) = listener.accept().unwrap();
        let mut asked = [0u8; 4096];
        let _ = c.read(&mut asked).unwrap();
        let _ = c.write_all(head);
        let _ = c.write_all(&body);
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    let get = zerocast(&[
        "get",
        &format!("http://{addr}/videos/x.mp4"),
        "--size",
        "1000",
        "-o",
        out.to_str().unwrap(),
    ]);
    server.join().unwrap();
    let err = String::from_utf8_lossy(&get.stderr).into_owned();
    (get.status.code(), err, out.exists())
}

/// A server that answers more than was asked for (`Content-Range` past the range): `get`
/// refuses it rather than writing whatever comes.
#[test]
fn cli_get_refuses_a_range_answer_larger_than_asked() {
    let (code, err, written) = get_1000_from(
        b"HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 0-999999999/*\r\n\
          content-length: 1000000000\r\n\r\n",
        vec![b'x'; 64 << 10],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("asked for bytes 0-999, got 'bytes 0-999999999/*'"),
        "{err}"
    );
    assert!(!written);
}

/// A proxy or cache that answers a short range before the video's end (`bytes 0-99` of five
/// million when 1000 were asked for): `get` fails rather than save 100 bytes as the chunk.
#[test]
fn cli_get_refuses_a_range_answer_shorter_than_asked_before_the_end() {
    let (code, err, written) = get_1000_from(
        b"HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 0-99/5000000\r\n\
          content-length: 100\r\n\r\n",
        vec![b'x'; 100],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("asked for bytes 0-999, got 'bytes 0-99/5000000'"),
        "{err}"
    );
    assert!(!written);
}

/// `zerocast index FILE | head`: standard output closed early is a clean exit, not a panic.
#[test]
fn cli_index_into_a_closed_pipe_exits_cleanly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_zerocast"))
        .args(["index", demo_dir().join("faststart.mp4").to_str().unwrap()])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cli_get_without_an_output_file_writes_to_stdout() {
    let srv = TestServer::demo();
    let url = srv.url("/videos/clip.ts");
    let get = zerocast(&["get", &url, "--offset", "188", "--size", "188"]);
    assert!(get.status.success());
    assert_eq!(
        get.stdout,
        &std::fs::read(demo_dir().join("clip.ts")).unwrap()[188..376]
    );
}

#[test]
fn cli_index_prints_the_keyframe_table() {
    let out = zerocast(&["index", demo_dir().join("faststart.mp4").to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let oracle = ffprobe_keyframes(demo_dir().join("faststart.mp4").to_str().unwrap());
    assert_eq!(rows.len(), oracle.len());
    assert!(rows[1].contains("00:00:02:00"), "{}", rows[1]);
    assert!(rows[1].ends_with(&oracle[1].1.to_string()));
}

#[test]
fn cli_says_it_cannot_connect_when_the_server_is_down() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = zerocast(&["seek", &format!("http://{closed}/videos/x.mp4"), "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

#[test]
fn cli_names_an_unknown_id() {
    let srv = TestServer::demo();
    let out = zerocast(&["get", &srv.url("/videos/nope.mp4"), "--size", "10"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no title with id 'nope.mp4'"));
}

#[test]
fn cli_says_which_frame_of_a_timecode_is_out_of_range() {
    let srv = TestServer::demo();
    let out = zerocast(&["seek", &srv.url("/videos/clip.ts"), "00:00:00:99"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("frame 99 out of range"));
}

#[test]
fn cli_says_an_offset_is_past_the_end() {
    let srv = TestServer::demo();
    let out = zerocast(&[
        "get",
        &srv.url("/videos/clip.ts"),
        "--offset",
        "99999999",
        "--size",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("past the end"));
}

#[test]
fn cli_bad_size_is_a_usage_error() {
    let srv = TestServer::demo();
    let out = zerocast(&["get", &srv.url("/videos/clip.ts"), "--size", "lots"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn cli_a_url_that_is_not_http_is_bad_usage() {
    let out = zerocast(&["get", "ftp://x/videos/a", "--size", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: bad URL 'ftp://x/videos/a': expected http://HOST[:PORT]/videos/ID\n"
    );
}

#[test]
fn serve_binary_runs_the_embedded_demo_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zerocast"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
            "--rtmp-listen",
            "127.0.0.1:0",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("JSON log line: {line}"));
        seen.push(v.clone());
        if v["fields"]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("listening")
        {
            break;
        }
    }
    assert_eq!(
        seen.iter()
            .filter(|v| v["fields"]["message"] == "loaded")
            .count(),
        DEMO.len()
    );
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = request(addr, "GET", "/api/videos", &[]);
    assert_eq!(r.json().as_array().unwrap().len(), DEMO.len());
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    assert!(lines.any(|l| l.unwrap().contains("shutting down")));
}

#[test]
fn serve_reads_a_config_file_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    std::fs::copy(demo_dir().join("clip.ts"), lib.join("only.ts")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("zerocast.toml");
    std::fs::write(
        &cfg,
        format!(
            "library = {:?}\nlisten = \"127.0.0.1:1\"\ncache_size = \"1MiB\"\n\
             [live]\nkeys = {{ show = \"cfgkey\" }}\ngrace_secs = 3\n",
            lib
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zerocast"))
        .args([
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--publish-key",
            "other=flagkey",
            "--rtmp-listen",
            "127.0.0.1:0",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut ok = None;
    // Up to 30 s for a debug build to start on a loaded machine.
    for _ in 0..600 {
        if std::net::TcpStream::connect(addr).is_ok() {
            ok = Some(request(addr, "GET", "/api/videos", &[]));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Publish keys from the file and from the flag (an empty body publishes nothing and ends).
    let put = |path: &str| request(addr, "PUT", path, &[("Content-Length", "0")]).status;
    let keys = [
        put("/live/show"),
        put("/live/show?key=flagkey"),
        put("/live/show?key=cfgkey"),
        put("/live/other?key=flagkey"),
    ];
    child.kill().unwrap();
    let _ = child.wait();
    let list = ok.expect("server from config started").json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], "only.ts");
    assert_eq!(list[0]["cached_in_memory"], true);
    assert_eq!(keys, [401, 403, 200, 200]);
}

#[test]
fn serve_with_a_bad_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zerocast.toml");
    std::fs::write(&cfg, "listen = 5\n").unwrap();
    let out = zerocast(&["serve", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config file"));
}
