//! A real browser for the tests: headless Chromium opening a page served by a tiny beacon server
//! (another origin than zerocast's), which reports what it saw as `GET /beacon?...`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

/// Serves the page and collects beacons (as query maps) until the test ends.
pub fn beacon_server(html: String) -> (String, mpsc::Receiver<HashMap<String, String>>) {
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

/// How the tests run Chromium: headless, no sandbox (root in CI), media that plays by itself and
/// makes no sound, and nothing fetched from outside.
pub const FLAGS: &[&str] = &[
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
];

/// Headless Chromium on a page, in a fresh profile; closed when dropped.
pub struct Chromium {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Chromium {
    pub fn open(url: &str) -> Chromium {
        Chromium::open_with(url, &[])
    }

    /// With extra command-line flags (e.g. a certificate key to trust).
    pub fn open_with(url: &str, extra: &[String]) -> Chromium {
        super::require("chromium");
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new("chromium")
            .args(FLAGS)
            .arg("--disable-quic")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        Chromium {
            child,
            _profile: profile,
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// hls.js (the npm package's minified build), which `scripts/test` installs under
/// `target/npm` when missing.
pub fn hls_js() -> String {
    let path = super::repo().join("target/npm/node_modules/hls.js/dist/hls.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run the test suite with `scripts/test`, which installs hls.js from npm",
            path.display()
        )
    })
}

/// dash.js (the npm package's minified modern build), which `scripts/test` installs under
/// `target/npm` when missing.
pub fn dash_js() -> String {
    let path = super::repo().join("target/npm/node_modules/dashjs/dist/modern/umd/dash.all.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run the test suite with `scripts/test`, which installs dash.js from npm",
            path.display()
        )
    })
}

/// Serves `page` from the beacon server (another origin than zerocast's), opens it in Chromium
/// with `flags`, and waits for its first verdict (at most 60 s).
pub fn verdict(page: String, flags: &[String]) -> HashMap<String, String> {
    let (base, beacons) = beacon_server(page);
    let _chromium = Chromium::open_with(&format!("{base}/page.html"), flags);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if let Ok(b) = beacons.recv_timeout(std::time::Duration::from_millis(200)) {
            return b;
        }
    }
    panic!("no verdict from the page within 60 s");
}

/// A live stream `show` (MPEG-TS over HTTP, real time) on a server with HTTPS too: the server,
/// the Chromium flag that trusts its certificate's key, the authority, and the publisher.
pub struct LiveTls {
    pub server: super::TestServer,
    pub trust: String,
    _ca: super::tls::TestCa,
    _publisher: super::live::Proc,
}

impl LiveTls {
    /// Started, with three HLS segments out.
    pub fn start() -> LiveTls {
        let mut ca = super::tls::TestCa::new();
        let (cert, key) = ca.issue();
        let trust = format!(
            "--ignore-certificate-errors-spki-list={}",
            super::tls::spki_sha256(&cert)
        );
        let any = "127.0.0.1:0".parse().unwrap();
        let config = server::Config {
            tls: Some(server::tls::TlsConfig::new(vec![any], cert, key)),
            ..server::Config::default()
        };
        let dir = super::demo_copy();
        let server = super::TestServer::start_with(config, super::library(dir.path()));
        let url = server.url("/live/show");
        let input = super::fixtures::long_live_ts();
        let publisher = super::live::ffmpeg_publish(&input, &["-re"], "mpegts", &[], &url);
        super::live::wait_for(&server, "show", "three HLS segments", |d| {
            d["hls_segments"].as_u64() >= Some(3)
        });
        LiveTls {
            server,
            trust,
            _ca: ca,
            _publisher: publisher,
        }
    }

    /// HTTP/2 connections the server counted (`/metrics`).
    pub fn http2_connections(&self) -> Option<u64> {
        let metrics = self.server.get("/metrics", &[]);
        String::from_utf8_lossy(&metrics.body)
            .lines()
            .find_map(|l| l.strip_prefix("zerocast_tls_http2_connections_total "))
            .and_then(|n| n.parse::<u64>().ok())
    }
}

/// The verdict of a page that seeks `player` back to the start of a live stream's DVR window
/// and plays from there (`ev=seeked`, the window `span` and how far `behind` it played, s):
/// decoded video, a window from the recording (without it about 4-6 s, what is in memory),
/// and the picture from there.
#[track_caller]
pub fn assert_played_back_in_dvr(verdict: &HashMap<String, String>, player: &str) {
    assert_eq!(
        verdict.get("ev").map(String::as_str),
        Some("seeked"),
        "{verdict:?}"
    );
    assert_eq!(verdict["w"], "320", "decoded video: {verdict:?}");
    let span: f64 = verdict["span"].parse().unwrap();
    let behind: f64 = verdict["behind"].parse().unwrap();
    eprintln!("{player} DVR: a window of {span:.1} s, played {behind:.1} s behind");
    assert!(span >= 10.0, "a DVR window from the recording: {verdict:?}");
    assert!(behind >= 8.0, "playing from the recording: {verdict:?}");
}
