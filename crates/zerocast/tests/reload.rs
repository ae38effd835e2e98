//! Reload without restart (issue 12, part 8): `zerocast serve` as a process, its config file and
//! library changed under it, then SIGHUP (or, with `--watch`, nothing): new settings apply to new
//! requests while connections stay up, settings that need a restart are named, a bad file is
//! refused, and the library's titles appear, disappear and change, a running download keeping
//! the bytes it started with.

mod common;

use common::live::{send_raw, wait_until};
use common::spawned::Served;
use common::{parse_response, request, DEMO};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

fn hangup(s: &Served) {
    // SAFETY: kill(2) on the child's pid, which is alive (the test holds its handle).
    unsafe { libc::kill(s.child.id() as libc::pid_t, libc::SIGHUP) };
}

/// Sends SIGHUP and waits for the `n`-th log line that has `what`.
fn hangup_and_wait(s: &Served, what: &str, n: usize) {
    hangup(s);
    wait_until(what, Duration::from_secs(20), || {
        s.log_lines(what).len() >= n
    });
}

/// A one-shot publish of a few TS packets with `key`; the server's answer.
fn publish(s: &Served, key: &str) -> u16 {
    let body = std::fs::read(common::demo_dir().join("clip.ts")).unwrap();
    let body = &body[..188 * 50];
    let head = format!(
        "PUT /live/show?key={key} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    send_raw(s.addr, &head, body).status
}

/// One keep-alive GET on `conn`; the response with its Content-Length body.
fn get_on(conn: &mut TcpStream, path: &str) -> common::Resp {
    write!(conn, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let mut b = [0u8; 65536];
    loop {
        let n = conn.read(&mut b).unwrap();
        assert!(n > 0, "closed");
        raw.extend_from_slice(&b[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let r = parse_response(&raw[..end + 4]);
            let len: usize = r.header("content-length").map_or(0, |v| v.parse().unwrap());
            if raw.len() >= end + 4 + len {
                return parse_response(&raw[..end + 4 + len]);
            }
        }
    }
}

fn write_config(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn sighup_applies_new_publish_keys_and_cors_while_connections_stay_up() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zerocast.toml");
    write_config(
        &cfg,
        "cors_origins = [\"https://a.example\"]\n[live]\nkeys = { show = \"first-key\" }\n",
    );
    let mut s = Served::start(None, &["--config", cfg.to_str().unwrap()]);
    assert_eq!(publish(&s, "first-key"), 200);
    let mut kept = TcpStream::connect(s.addr).unwrap();
    assert_eq!(get_on(&mut kept, "/healthz").status, 200);
    write_config(
        &cfg,
        "cors_origins = [\"https://b.example\"]\n[live]\nkeys = { show = \"second-key\" }\n",
    );
    hangup_and_wait(&s, "settings reloaded", 1);
    assert_eq!(publish(&s, "first-key"), 403, "the old key is refused");
    assert_eq!(publish(&s, "second-key"), 200);
    let r = request(
        s.addr,
        "GET",
        "/api/videos",
        &[("Origin", "https://b.example")],
    );
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://b.example")
    );
    assert_eq!(
        get_on(&mut kept, "/healthz").status,
        200,
        "the kept connection still works"
    );
    s.child.kill().unwrap();
}

#[test]
fn a_setting_that_needs_a_restart_is_named_and_the_rest_applies() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zerocast.toml");
    write_config(&cfg, "workers = 2\n");
    let mut s = Served::start(None, &["--config", cfg.to_str().unwrap()]);
    write_config(&cfg, "workers = 1\nmax_ranges = 1\nlog_format = \"json\"\n");
    hangup_and_wait(&s, "settings reloaded", 1);
    let line = s.log_lines("settings reloaded").pop().unwrap();
    assert!(
        line.contains("only a restart") && line.contains("workers"),
        "{line}"
    );
    assert!(line.contains("log_format"), "{line}");
    let r = request(
        s.addr,
        "GET",
        "/videos/clip.ts",
        &[("Range", "bytes=0-0,5-5")],
    );
    assert_eq!(r.status, 416, "max_ranges applied: {}", r.status);
    s.child.kill().unwrap();
}

#[test]
fn a_config_file_that_does_not_parse_is_refused_and_the_settings_in_use_stay() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zerocast.toml");
    write_config(&cfg, "[live]\nkeys = { show = \"first-key\" }\n");
    let mut s = Served::start(None, &["--config", cfg.to_str().unwrap()]);
    write_config(&cfg, "[live]\nkeys = { show = \n");
    hangup_and_wait(&s, "config reload refused", 1);
    assert_eq!(publish(&s, "first-key"), 200, "the old key still works");
    assert!(s.child.try_wait().unwrap().is_none(), "still running");
    s.child.kill().unwrap();
}

/// A library of the demo clips in a temporary directory, served.
fn library_server(extra: &[&str]) -> (tempfile::TempDir, Served) {
    let dir = common::demo_copy();
    let mut args = vec!["--library", dir.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    let s = Served::start(None, &args);
    (dir, s)
}

#[test]
fn sighup_rescans_the_library_new_titles_appear_removed_ones_404_changed_ones_get_a_new_etag() {
    let (dir, mut s) = library_server(&[]);
    let etag = |s: &Served| {
        request(s.addr, "HEAD", "/videos/clip.ts", &[])
            .header("etag")
            .map(str::to_string)
    };
    let before = etag(&s);
    std::fs::copy(dir.path().join("faststart.mp4"), dir.path().join("new.mp4")).unwrap();
    std::fs::remove_file(dir.path().join("vp9-opus.webm")).unwrap();
    // A new version, as a publishing tool writes it: a new file renamed over the old one.
    let tmp = dir.path().join(".clip.ts.tmp");
    let mut bytes = std::fs::read(dir.path().join("clip.ts")).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, dir.path().join("clip.ts")).unwrap();
    hangup_and_wait(&s, "library rescanned", 1);
    assert_eq!(request(s.addr, "GET", "/videos/new.mp4", &[]).status, 200);
    assert_eq!(
        request(s.addr, "GET", "/videos/vp9-opus.webm", &[]).status,
        404
    );
    let after = etag(&s);
    assert!(
        after.is_some() && after != before,
        "{before:?} -> {after:?}"
    );
    let r = request(s.addr, "GET", "/videos/clip.ts", &[]);
    assert_eq!(r.body, bytes);
    let titles = request(s.addr, "GET", "/api/videos", &[]).json();
    assert_eq!(titles.as_array().unwrap().len(), DEMO.len());
    s.child.kill().unwrap();
}

#[test]
fn a_title_replaced_while_it_is_downloaded_keeps_serving_the_old_bytes_to_that_download() {
    // 16 MiB: far more than the socket buffers hold, so most of it is sent after the swap.
    let dir = common::demo_copy();
    let path = dir.path().join("big.bin");
    let old: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&path, &old).unwrap();
    let mut s = Served::start(None, &["--library", dir.path().to_str().unwrap()]);
    // A client that reads 4 KiB and stops: the kernel's buffers hold at most a few MiB of the
    // rest (the receive window stays small while nothing is read).
    let mut slow = TcpStream::connect(s.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        slow,
        "GET /videos/big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut got = vec![0u8; 4096];
    slow.read_exact(&mut got).unwrap();
    let tmp = dir.path().join(".new");
    std::fs::write(&tmp, b"replaced").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    hangup_and_wait(&s, "library rescanned", 1);
    assert_eq!(
        request(s.addr, "GET", "/videos/big.bin", &[]).body,
        b"replaced"
    );
    slow.read_to_end(&mut got).unwrap();
    let r = parse_response(&got);
    assert!(
        r.body == old,
        "the running download got the old bytes, whole ({} bytes)",
        r.body.len()
    );
    s.child.kill().unwrap();
}

#[test]
fn with_watch_a_new_file_is_served_without_a_signal() {
    let (dir, mut s) = library_server(&["--watch"]);
    wait_until("the watcher started", Duration::from_secs(10), || {
        !s.log_lines("watching the library").is_empty()
    });
    std::fs::copy(dir.path().join("clip.ts"), dir.path().join("dropped-in.ts")).unwrap();
    wait_until("the new title is served", Duration::from_secs(20), || {
        request(s.addr, "HEAD", "/videos/dropped-in.ts", &[]).status == 200
    });
    s.child.kill().unwrap();
}
