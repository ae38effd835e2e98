//! What a new user sees when `zerocast serve` starts: a port in use reported once and before the
//! library loads, a hint when the RTMP port is taken, a warning for an empty library, and a
//! config file's relative paths taken from the file's directory.

mod common;
use common::spawned::Served;
use common::*;
use std::net::TcpListener;
use std::process::{Command, Output};

/// `zerocast serve ARGS` that is expected to stop by itself (it cannot start).
fn serve_failing(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_zerocast"))
        .arg("serve")
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .expect("run zerocast");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The `error:` line of a failed run.
fn error_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line in {err}"))
        .to_string()
}

fn taken() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

#[test]
fn a_port_in_use_is_reported_once() {
    let (_held, addr) = taken();
    let out = serve_failing(&["--listen", &addr, "--rtmp-listen", "off"]);
    let line = error_line(&out);
    assert!(line.contains(&format!("cannot listen on {addr}")), "{line}");
    assert_eq!(line.matches("Address already in use").count(), 1, "{line}");
}

#[test]
fn a_port_in_use_is_reported_before_the_library_loads() {
    let (_held, addr) = taken();
    let lib = demo_copy();
    let out = serve_failing(&[
        "--listen",
        &addr,
        "--rtmp-listen",
        "off",
        "--library",
        lib.path().to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(error_line(&out).contains("cannot listen on"), "{err}");
    assert!(
        !err.contains("scanning library") && !err.contains("library loaded"),
        "the library was loaded before the port was found taken:\n{err}"
    );
}

#[test]
fn a_taken_rtmp_port_suggests_rtmp_listen_off() {
    let (_held, addr) = taken();
    let out = serve_failing(&["--listen", "127.0.0.1:0", "--rtmp-listen", &addr]);
    let line = error_line(&out);
    assert!(line.contains(&format!("RTMP on {addr}")), "{line}");
    assert!(line.contains("--rtmp-listen off"), "{line}");
    assert_eq!(line.matches("Address already in use").count(), 1, "{line}");
}

#[test]
fn an_empty_library_starts_with_a_warning() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    let s = Served::start(None, &["--library", dir]);
    let warned = s.log_lines("no titles found in");
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains(dir), "{}", warned[0]);
}

#[test]
fn a_library_of_titles_starts_without_the_empty_warning() {
    let lib = demo_copy();
    let s = Served::start(None, &["--library", lib.path().to_str().unwrap()]);
    assert!(s.log_lines("no titles found").is_empty());
}

#[test]
fn a_relative_library_in_a_config_file_is_relative_to_the_file() {
    let root = tempfile::tempdir().unwrap();
    let videos = root.path().join("videos");
    std::fs::create_dir(&videos).unwrap();
    for name in DEMO {
        std::fs::copy(demo_dir().join(name), videos.join(name)).unwrap();
    }
    let config = root.path().join("zerocast.toml");
    std::fs::write(&config, "library = \"videos\"\n").unwrap();
    // The server's working directory (this crate's) has no `videos`.
    assert!(!std::path::Path::new("videos").exists());
    let s = Served::start(None, &["--config", config.to_str().unwrap()]);
    let list = request(s.addr, "GET", "/api/videos", &[]).json();
    assert_eq!(list.as_array().map(Vec::len), Some(DEMO.len()), "{list}");
}

/// A library that is not there (a mount not up yet), with a recording rule: the start fails
/// and says so, and makes no directory where the library should be.
#[test]
fn a_library_that_is_not_there_is_refused_and_not_made_for_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("videos");
    let config = dir.path().join("zerocast.toml");
    std::fs::write(&config, "[[record]]\nstreams = \"*\"\n").unwrap();
    let out = serve_failing(&[
        "--listen",
        "127.0.0.1:0",
        "--rtmp-listen",
        "off",
        "--library",
        lib.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let line = error_line(&out);
    assert!(line.contains("is not a directory"), "{line}");
    assert!(!lib.exists(), "the library directory was made");
}
