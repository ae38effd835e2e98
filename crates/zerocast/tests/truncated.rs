//! A title mapped from its file (beyond the memory budget) whose file is cut short under the
//! running server, as `cp` over it or `ffmpeg -y` writing to it does: what reads past the new
//! end fails, the server lives on, and the library is rescanned at once, so the title is then
//! what its file holds.

mod common;

use common::live::wait_until;
use common::spawned::{free_port, Served};
use common::tls::TestCa;
use common::{demo_copy, request, require};
use std::process::Command;
use std::time::Duration;

#[test]
fn a_title_file_cut_short_under_the_server_fails_what_reads_it_and_is_reloaded() {
    let dir = demo_copy();
    let lib = dir.path().to_str().unwrap();
    let s = Served::start(None, &["--library", lib, "--cache-size", "0"]);
    let info = |s: &Served| request(s.addr, "GET", "/api/videos/ntsc-moov-at-end.mp4", &[]).json();
    assert_eq!(info(&s)["cached_in_memory"], false, "mapped from its file");
    cut_short(dir.path());
    // A clip's head is made from the title's moov, at the end of the file: past the cut.
    let clip = request(
        s.addr,
        "GET",
        "/videos/ntsc-moov-at-end.mp4?start=2&end=4",
        &[],
    );
    // Zeros where the moov was: refused as the malformed file it now is.
    assert_eq!(clip.status, 422, "{}", String::from_utf8_lossy(&clip.body));
    let msg = clip.json()["error"].as_str().unwrap().to_string();
    assert!(msg.contains("cannot be clipped"), "{msg}");
    let health = request(s.addr, "GET", "/healthz", &[]);
    assert_eq!(health.status, 200, "the server lives on");
    wait_until(
        "the title reloaded as its file is now",
        Duration::from_secs(20),
        || info(&s)["size"] == 1000,
    );
    assert!(!s.log_lines("was cut short while it was mapped").is_empty());
    // The copy that cut it short goes on and finishes (in place): read again without a
    // SIGHUP or `--watch`, by the rescans that follow a fault.
    let whole = std::fs::read(common::demo_dir().join("ntsc-moov-at-end.mp4")).unwrap();
    std::fs::write(dir.path().join("ntsc-moov-at-end.mp4"), &whole).unwrap();
    wait_until(
        "the title read again once written whole",
        Duration::from_secs(20),
        || info(&s)["size"] == whole.len(),
    );
}

#[test]
fn a_title_cut_short_while_sent_over_http2_is_not_finished_with_zeros() {
    cut_while_sent_over_tls("--http2", None);
}

#[test]
fn a_title_cut_short_while_sent_over_https_1_1_is_not_finished_with_zeros() {
    cut_while_sent_over_tls("--http1.1", None);
}

#[test]
fn ranges_of_a_title_cut_short_while_sent_over_http2_are_not_finished_with_zeros() {
    cut_while_sent_over_tls("--http2", Some("0-99,2000-"));
}

#[test]
fn ranges_of_a_title_cut_short_while_sent_over_https_1_1_are_not_finished_with_zeros() {
    cut_while_sent_over_tls("--http1.1", Some("0-99,2000-"));
}

/// Over TLS the server copies a mapped title's bytes itself (to encrypt them): a page cut off
/// reads as zeros there. The response must not finish with them under the title's length and
/// ETag (curl fails: the stream reset, or the connection closed before the last byte). The
/// same for several ranges (`multipart/byteranges`, slices of the title rather than one run).
fn cut_while_sent_over_tls(protocol: &str, ranges: Option<&str>) {
    let dir = demo_copy();
    let lib = dir.path().to_str().unwrap();
    let mut ca = TestCa::new();
    let (cert, key) = ca.issue();
    let port = free_port();
    let s = Served::start(
        None,
        &[
            "--library",
            lib,
            "--cache-size",
            "0",
            "--tls-listen",
            &format!("127.0.0.1:{port}"),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    cut_short(dir.path());
    require("curl");
    let mut curl = Command::new("curl");
    if let Some(ranges) = ranges {
        curl.args(["-r", ranges]);
    }
    let out = curl
        .args(["-sS", protocol, "--max-time", "20", "--cacert"])
        .arg(&ca.ca)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-o", "/dev/null", "-w", "%{http_code} %{size_download}"])
        .arg(format!(
            "https://localhost:{port}/videos/ntsc-moov-at-end.mp4"
        ))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "finished: {stdout} {stderr}");
    let health = request(s.addr, "GET", "/healthz", &[]);
    assert_eq!(health.status, 200, "the server lives on");
}

/// Cuts the title `ntsc-moov-at-end.mp4` in `dir` to 1,000 bytes in place: the file keeps its
/// inode, which the server has mapped.
fn cut_short(dir: &std::path::Path) {
    let title = dir.join("ntsc-moov-at-end.mp4");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&title)
        .unwrap();
    file.set_len(1000).unwrap();
}
