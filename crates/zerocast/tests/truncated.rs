//! A title mapped from its file (beyond the memory budget) whose file is cut short under the
//! running server, as `cp` over it or `ffmpeg -y` writing to it does: what reads past the new
//! end fails, the server lives on, and the library is rescanned at once, so the title is then
//! what its file holds.

mod common;

use common::live::wait_until;
use common::spawned::Served;
use common::{demo_copy, request};
use std::time::Duration;

#[test]
fn a_title_file_cut_short_under_the_server_fails_what_reads_it_and_is_reloaded() {
    let dir = demo_copy();
    let lib = dir.path().to_str().unwrap();
    let s = Served::start(None, &["--library", lib, "--cache-size", "0"]);
    let info = |s: &Served| request(s.addr, "GET", "/api/videos/ntsc-moov-at-end.mp4", &[]).json();
    assert_eq!(info(&s)["cached_in_memory"], false, "mapped from its file");
    // Cut short in place: the file keeps its inode, which the server has mapped.
    let title = dir.path().join("ntsc-moov-at-end.mp4");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&title)
        .unwrap();
    file.set_len(1000).unwrap();
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
}
