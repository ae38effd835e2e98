//! A real browser: headless Chromium plays and seeks the demo titles in `<video>` elements.
//!
//! The page comes from a tiny beacon server in this test; its videos come from zerocast. The page
//! reports each video's events (metadata, seeked, playing, error) back as `GET /beacon?...`.

mod common;
use common::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CASES: [(&str, f64); 4] = [
    ("faststart.mp4", 5.0),
    ("ntsc-moov-at-end.mp4", 61.0),
    ("fragmented.mp4", 4.5),
    ("vp9-opus.webm", 3.0),
];

fn page(zerocast: &str) -> String {
    let mut s = String::from("<!doctype html><meta charset=utf-8><body><script>\n");
    s.push_str("const send = (m) => fetch('/beacon?' + new URLSearchParams(m));\n");
    for (i, (name, seek)) in CASES.iter().enumerate() {
        s.push_str(&format!(
            "(() => {{ const v = document.createElement('video'); v.muted = true; v.preload = 'auto';
  const id = '{name}'; let reported = false;
  v.addEventListener('loadedmetadata', () => {{ send({{id, ev: 'meta', duration: v.duration}}); v.currentTime = {seek}; }});
  v.addEventListener('seeked', () => {{ send({{id, ev: 'seeked', t: v.currentTime}});
    v.play().catch(e => send({{id, ev: 'error', msg: String(e)}})); }});
  v.addEventListener('timeupdate', () => {{ if (!reported && v.currentTime > {seek} + 0.5) {{ reported = true;
    send({{id, ev: 'playing', t: v.currentTime, w: v.videoWidth, h: v.videoHeight}}); }} }});
  v.addEventListener('error', () => send({{id, ev: 'error', msg: String(v.error && v.error.code)}}));
  v.src = '{zerocast}/videos/{name}'; document.body.appendChild(v); v{i} = v; }})();\n"
        ));
    }
    s.push_str("</script>");
    s
}

/// Serves the page and collects beacons (as query maps) until the test ends.
fn beacon_server(html: String) -> (String, mpsc::Receiver<HashMap<String, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            // Drain the request head.
            let mut h = String::new();
            while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                h.clear();
            }
            let body = if let Some(q) = path.strip_prefix("/beacon?") {
                let map = q
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), percent_decode(v)))
                    .collect();
                let _ = tx.send(map);
                String::new()
            } else {
                html.clone()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (base, rx)
}

fn percent_decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn chromium_plays_and_seeks_every_container_it_supports() {
    require("chromium");
    let srv = TestServer::demo();
    let (base, beacons) = beacon_server(page(&srv.url("")));
    let profile = tempfile::tempdir().unwrap();
    let mut chromium = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--autoplay-policy=no-user-gesture-required",
            "--mute-audio",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("{base}/page.html"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut seen: HashMap<(String, String), HashMap<String, String>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && seen.keys().filter(|k| k.1 == "playing").count() < CASES.len()
    {
        if let Ok(b) = beacons.recv_timeout(Duration::from_millis(200)) {
            if b.get("ev").map(String::as_str) == Some("error") {
                let _ = chromium.kill();
                panic!("chromium reported an error: {b:?}");
            }
            seen.insert((b["id"].clone(), b["ev"].clone()), b);
        }
    }
    let _ = chromium.kill();
    let _ = chromium.wait();
    for (name, seek) in CASES {
        let api = srv.get(&format!("/api/videos/{name}"), &[]).json();
        let ours = api["duration_seconds"].as_f64().unwrap();
        let meta = seen
            .get(&(name.to_string(), "meta".into()))
            .unwrap_or_else(|| panic!("{name}: no metadata; saw {seen:?}"));
        let duration: f64 = meta["duration"].parse().unwrap();
        assert!(
            (duration - ours).abs() < 0.3,
            "{name}: browser duration {duration}, zerocast {ours}"
        );
        let seeked: f64 = seen[&(name.to_string(), "seeked".into())]["t"]
            .parse()
            .unwrap();
        assert!(
            (seeked - seek).abs() < 0.1,
            "{name}: seeked to {seeked}, asked {seek}"
        );
        let playing = &seen
            .get(&(name.to_string(), "playing".into()))
            .unwrap_or_else(|| panic!("{name}: never played after the seek"));
        assert!(playing["t"].parse::<f64>().unwrap() > seek + 0.5);
        assert_eq!(
            (playing["w"].as_str(), playing["h"].as_str()),
            ("320", "180"),
            "{name}: picture size"
        );
    }
    // The browser's abandoned range requests left the server healthy.
    assert_eq!(srv.get("/healthz", &[]).status, 200);
}
