//! The server out of descriptors (issue 11, finding 2): under `ulimit -n 128`, never-reading
//! clients fill it, and it must still answer `/healthz` (a 200, or a fast 503) and not flood its
//! log with accept failures.

mod common;

use common::parse_response;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// `zerocast serve` (the embedded demo library) under a descriptor limit of 128, with its log
/// lines collected; returns once it listens.
struct Limited {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Limited {
    fn start(extra: &[&str]) -> Limited {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new("prlimit")
            .args(["--nofile=128:128", "--", env!("CARGO_BIN_EXE_zerocast")])
            .args(["serve", "--listen", &listen, "--rtmp-listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prlimit and zerocast");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains("listening") {
                    let _ = tx.send(());
                }
                kept.lock().unwrap().push(line);
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the server started");
        Limited {
            child,
            addr: listen.parse().unwrap(),
            log,
        }
    }

    /// Log lines about accepting connections.
    fn accept_lines(&self) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|l| l.contains("accept"))
            .cloned()
            .collect()
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// `/healthz` on a fresh connection: its status and how long the answer took.
fn healthz(addr: SocketAddr) -> (u16, Duration) {
    let asked = Instant::now();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(!got.is_empty(), "/healthz unanswered after 5 s");
    (parse_response(&got).status, asked.elapsed())
}

/// Fills the server with never-reading clients and checks it still answers, quickly, and logs
/// the episode in a few lines.
fn assert_answers_when_full(s: &Limited) {
    let _clients = never_reading(s.addr, 200);
    for _ in 0..20 {
        let (status, took) = healthz(s.addr);
        assert!(status == 200 || status == 503, "/healthz: {status}");
        assert!(took < Duration::from_secs(2), "/healthz took {took:?}");
    }
    let lines = s.accept_lines();
    assert!(lines.len() < 10, "{} accept lines: {lines:#?}", lines.len());
}

#[test]
fn at_the_connection_cap_healthz_gets_a_fast_answer() {
    let s = Limited::start(&[]);
    assert_answers_when_full(&s);
    let lines = s.accept_lines();
    assert!(
        lines.iter().any(|l| l.contains("connection limit reached")),
        "the cap was reached: {lines:#?}"
    );
}

#[test]
fn out_of_descriptors_healthz_gets_a_fast_answer_from_the_reserve() {
    // A cap the descriptors cannot back: accept hits EMFILE, and the reserve answers.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zerocast.toml");
    std::fs::write(&cfg, "max_connections = 100000\n").unwrap();
    let s = Limited::start(&["--config", cfg.to_str().unwrap()]);
    assert_answers_when_full(&s);
    let lines = s.accept_lines();
    assert!(
        lines.iter().any(|l| l.contains("out of descriptors")),
        "the reserve was used: {lines:#?}"
    );
}
