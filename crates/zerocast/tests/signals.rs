//! Signals from outside while the server starts and stops: a reload signal (SIGHUP) that comes
//! while the start is still waiting on object storage is kept for the reloader instead of
//! ending the process, and a second SIGTERM ends a stop that is still draining, at once.

mod common;

use common::spawned::Served;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Sends `signal` to the process `pid`.
fn kill(pid: u32, signal: libc::c_int) {
    // SAFETY: kill only sends a signal to a process this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
}

/// The process started with `argument` on its command line (the server: its library is
/// this test's own).
fn process_with_argument(argument: &str) -> u32 {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.split(|b| *b == 0).any(|a| a == argument.as_bytes()) {
            found.push(pid);
        }
    }
    assert_eq!(found.len(), 1, "one process started with {argument}");
    found[0]
}

#[test]
fn a_sighup_during_the_first_listing_of_object_storage_does_not_end_the_start() {
    // An object store that takes the listing request and answers only once the server has
    // been sent SIGHUP, mid-start: then a 503 (the server goes on without its titles).
    let store = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", store.local_addr().unwrap());
    let bucket = format!("early{}", store.local_addr().unwrap().port());
    let library = format!("s3://{bucket}/videos");
    let (told, hup) = mpsc::channel();
    let pattern = library.clone();
    std::thread::spawn(move || {
        let (mut c, _) = store.accept().unwrap();
        let mut head = [0u8; 4096];
        let _ = c.read(&mut head);
        let pid = process_with_argument(&pattern);
        kill(pid, libc::SIGHUP);
        told.send(pid).unwrap();
        let _ = c
            .write_all(b"HTTP/1.1 503 Slow Down\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        // Later requests (the reload's listing) get the same.
        for c in store.incoming() {
            let Ok(mut c) = c else { continue };
            let _ = c.read(&mut head);
            let _ = c.write_all(
                b"HTTP/1.1 503 Slow Down\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zerocast.toml");
    std::fs::write(&config, "[s3]\ntimeout_secs = 30\nretries = 0\n").unwrap();
    let cache = dir.path().join("cache");
    let args = ["--config", config.to_str().unwrap(), "--library", &library];
    let env = common::s3::store_env(&endpoint, cache.to_str().unwrap());
    let s = Served::start_with_env(None, &args, &env);
    let pid = hup.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(pid, s.child.id(), "the signal went to the server");
    assert_eq!(common::request(s.addr, "GET", "/healthz", &[]).status, 200);
    // The reload it asked for is done once the server runs.
    common::live::wait_until("the reload", common::live::WAIT, || {
        !s.log_lines("SIGHUP: reloading").is_empty()
    });
}

/// A stop while the start waits on object storage (a listing that does not come): nothing to
/// drain, the process ends at once, cleanly.
#[test]
fn a_sigterm_during_the_start_ends_it_at_once() {
    let store = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", store.local_addr().unwrap());
    let library = format!("s3://stop{}/videos", store.local_addr().unwrap().port());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zerocast.toml");
    std::fs::write(&config, "[s3]\ntimeout_secs = 120\nretries = 0\n").unwrap();
    let listen = format!("127.0.0.1:{}", common::spawned::free_port());
    let cache = dir.path().join("cache");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_zerocast"))
        .args(["serve", "--listen", &listen, "--rtmp-listen", "127.0.0.1:0"])
        .args(["--config", config.to_str().unwrap(), "--library", &library])
        .envs(common::s3::store_env(&endpoint, cache.to_str().unwrap()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The listing asked for, and never answered.
    let (asked, listing) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = asked.send(store.accept().map(|(c, _)| c));
        // (Held open until the test ends: the store's answer never comes.)
        std::thread::park();
    });
    let pid = child.id();
    let Ok(Ok(_listing)) = listing.recv_timeout(Duration::from_secs(20)) else {
        kill(pid, libc::SIGKILL);
        panic!("the server did not ask its store for the listing");
    };
    kill(pid, libc::SIGTERM);
    let (done, exited) = mpsc::channel();
    let waited = std::thread::spawn(move || {
        let status = child.wait().unwrap();
        let _ = done.send(status);
    });
    let Ok(status) = exited.recv_timeout(Duration::from_secs(20)) else {
        kill(pid, libc::SIGKILL);
        panic!("the start was not ended: its 120 s listing would be waited out");
    };
    assert_eq!(status.code(), Some(0), "{status}");
    waited.join().unwrap();
}

/// A stop right after the start (systemd stopping a unit it just started): the server drains
/// and exits cleanly, instead of being ended by the signal's default action.
#[test]
fn a_sigterm_right_after_the_start_stops_the_server_cleanly() {
    let mut s = Served::start(None, &[]);
    kill(s.child.id(), libc::SIGTERM);
    let status = s.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    // Its log is read on a thread of its own: the line may come after the exit.
    common::live::wait_until("the signal logged", common::live::WAIT, || {
        !s.log_lines("signal received").is_empty()
    });
}

#[test]
fn a_second_sigterm_ends_a_stop_that_is_still_draining_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zerocast.toml");
    // After the first SIGTERM, /readyz answers 503 for a minute before the server stops.
    std::fs::write(&config, "drain_delay_secs = 60\n").unwrap();
    let mut s = Served::start(None, &["--config", config.to_str().unwrap()]);
    kill(s.child.id(), libc::SIGTERM);
    common::live::wait_until("the first signal taken", common::live::WAIT, || {
        !s.log_lines("signal received").is_empty()
    });
    assert_eq!(common::request(s.addr, "GET", "/readyz", &[]).status, 503);
    let sent = Instant::now();
    kill(s.child.id(), libc::SIGTERM);
    let status = s.child.wait().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(30),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(1), "{status}");
    common::live::wait_until("the second signal logged", common::live::WAIT, || {
        !s.log_lines("a second signal").is_empty()
    });
}
