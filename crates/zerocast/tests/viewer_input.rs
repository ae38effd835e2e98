//! A live viewer that uploads bytes instead of only reading (issue 11, finding 1): it must cost
//! bounded work per wake-up, be disconnected, and never keep its worker from other connections.

mod common;

use common::{demo_dir, TestServer};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads a response head up to its blank line; returns the status line.
fn read_head(r: &mut impl BufRead) -> String {
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            return status;
        }
    }
}

#[test]
fn a_viewer_that_uploads_is_disconnected_and_its_worker_keeps_serving_others() {
    // One worker: the publisher, the uploading viewer and the VOD client share its thread.
    let config = server::Config {
        workers: Some(1),
        listen: "127.0.0.1:0".parse().unwrap(),
        rtmp_listen: None,
        ..server::Config::default()
    };
    let lib = server::Library::load(&demo_dir(), u64::MAX, |_| {}).unwrap();
    let s = TestServer::start_with(config, lib);

    // A publisher whose head has been accepted: the stream is live (no media yet, so the viewer
    // waits for a keyframe and only watches its socket).
    let mut publisher = TcpStream::connect(s.addr).unwrap();
    publisher
        .write_all(b"PUT /live/up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.get("/api/streams/up", &[]).status != 200 {
        assert!(Instant::now() < deadline, "the stream never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }

    let viewer = TcpStream::connect(s.addr).unwrap();
    (&viewer)
        .write_all(b"GET /live/up.ts HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(viewer.try_clone().unwrap());
    assert_eq!(read_head(&mut reader), "HTTP/1.1 200 OK\r\n");

    // The viewer now sends as fast as it can, for at most 20 s.
    let stop = Arc::new(AtomicBool::new(false));
    let upload = {
        let (mut w, stop) = (viewer.try_clone().unwrap(), stop.clone());
        std::thread::spawn(move || {
            let zeros = [0u8; 64 * 1024];
            let started = Instant::now();
            let mut sent: u64 = 0;
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(20) {
                match w.write(&zeros) {
                    Ok(n) => sent += n as u64,
                    Err(_) => return (true, sent, started.elapsed()),
                }
            }
            (false, sent, started.elapsed())
        })
    };

    // Meanwhile a VOD range on the same worker is answered at once.
    let mut vod = TcpStream::connect(s.addr).unwrap();
    vod.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let asked = Instant::now();
    vod.write_all(b"GET /videos/faststart.mp4 HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    vod.read_to_end(&mut answer)
        .expect("the VOD range was answered within 5 s");
    let took = asked.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 206"), "{text}");
    let file = std::fs::read(demo_dir().join("faststart.mp4")).unwrap();
    assert!(answer.ends_with(&file[..10]), "the range's bytes");

    // And the uploading viewer is disconnected by the server.
    let (cut_off, sent, after) = upload.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(
        cut_off,
        "the viewer was still connected after sending {sent} bytes for {after:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "the VOD range took {took:?} beside the uploading viewer"
    );
    drop(publisher);
}
