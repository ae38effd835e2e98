//! The server out of descriptors (issue 11, finding 2): under `ulimit -n 128`, never-reading
//! clients fill it, and it must still answer `/healthz` (a 200, or a fast 503) and not flood its
//! log with accept failures.

mod common;

use common::soak::healthz;
use common::spawned::Served;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The server under `ulimit -n 128` with `more` settings, two workers and two fan-out threads
/// whatever the machine (a runtime per core of a 64-core machine would take more descriptors
/// than the limit); the directory holds its configuration.
fn served(more: &str) -> (Served, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zerocast.toml");
    let toml = format!("workers = 2\n{more}[live]\nfanout_threads = 2\n");
    std::fs::write(&cfg, toml).unwrap();
    let s = Served::start(Some(128), &["--config", cfg.to_str().unwrap()]);
    (s, dir)
}

/// Opens `n` clients that each ask for the largest demo title and never read.
fn never_reading(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"GET /videos/ntsc-moov-at-end.mp4 HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            c
        })
        .collect()
}

/// Fills the server with never-reading clients and checks it still answers, quickly, and logs
/// the episode in a few lines.
fn assert_answers_when_full(s: &Served) {
    let _clients = never_reading(s.addr, 200);
    for _ in 0..20 {
        let (status, took) = healthz(s.addr);
        assert_ne!(status, 0, "/healthz unanswered after {took:?}");
        assert!(status == 200 || status == 503, "/healthz: {status}");
        assert!(took < Duration::from_secs(2), "/healthz took {took:?}");
    }
    let lines = s.log_lines("accept");
    assert!(lines.len() < 10, "{} accept lines: {lines:#?}", lines.len());
}

#[test]
fn at_the_connection_cap_healthz_gets_a_fast_answer() {
    let (s, _dir) = served("");
    assert_answers_when_full(&s);
    let lines = s.log_lines("accept");
    assert!(
        lines.iter().any(|l| l.contains("connection limit reached")),
        "the cap was reached: {lines:#?}"
    );
}

#[test]
fn out_of_descriptors_healthz_gets_a_fast_answer_from_the_reserve() {
    // A cap the descriptors cannot back: accept hits EMFILE, and the reserve answers.
    let (s, _dir) = served("max_connections = 100000\n");
    assert_answers_when_full(&s);
    let lines = s.log_lines("accept");
    assert!(
        lines.iter().any(|l| l.contains("out of descriptors")),
        "the reserve was used: {lines:#?}"
    );
}

#[test]
fn over_the_cap_a_client_with_a_long_request_still_reads_its_503() {
    // Never-reading clients over the cap would hold every gentle refusal for its second; a
    // client refused then at once, with more request than the refusal reads (8 KiB of cookies),
    // would be reset by the close and lose the 503 it had been sent.
    let (s, _dir) = served("");
    let _clients = never_reading(s.addr, 200);
    let cookie = "c".repeat(8 << 10);
    let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n");
    for _ in 0..5 {
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(req.as_bytes()).unwrap();
        let mut got = Vec::new();
        let read = c.read_to_end(&mut got);
        assert!(read.is_ok(), "{read:?} after {} bytes", got.len());
        assert_eq!(common::parse_response(&got).status, 503);
    }
}
