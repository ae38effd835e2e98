//! Shared test harness: a real server on 127.0.0.1:0, a raw HTTP/1.1 client that shows exactly what
//! went over the wire, and ffprobe as the oracle.
#![allow(dead_code)]

pub mod added_latency;
pub mod auth;
pub mod browser;
pub mod cdp;
pub mod crowd;
pub mod cutter;
pub mod fixtures;
pub mod live;
pub mod recorded;
pub mod recording;
pub mod s3;
pub mod soak;
pub mod spawned;
pub mod tls;
pub mod ts;

use server::{Config, Library, Server};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn demo_dir() -> PathBuf {
    repo().join("demo")
}

pub const DEMO: [&str; 5] = [
    "faststart.mp4",
    "ntsc-moov-at-end.mp4",
    "fragmented.mp4",
    "clip.ts",
    "vp9-opus.webm",
];

/// Fails loudly when a tool the suite needs is missing: `scripts/test` installs them.
pub fn require(tool: &str) {
    let ok = Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
        || ["--version", "version"].iter().any(|v| {
            Command::new(tool)
                .arg(v)
                .output()
                .is_ok_and(|o| o.status.success())
        })
        // Tools with no version flag that exits 0 (rtmpdump).
        || Command::new("sh")
            .args(["-c", &format!("command -v '{tool}'")])
            .output()
            .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{tool} is not installed; run the test suite with `scripts/test`, which installs it"
    );
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub rtmp: SocketAddr,
    /// HTTPS listeners and the RTMPS one, when `config.tls` asked for them.
    pub https: Vec<SocketAddr>,
    pub rtmps: Option<SocketAddr>,
    pub live: std::sync::Arc<server::live::Live>,
    _dir: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(library: Library) -> Self {
        Self::start_with(Config::default(), library)
    }

    /// The demo clips (and nothing else from `demo/`), loaded from a copy with `Library::load`.
    pub fn demo() -> Self {
        let dir = demo_copy();
        let mut s = Self::start(library(dir.path()));
        s._dir = Some(dir);
        s
    }

    pub fn start_with(mut config: Config, library: Library) -> Self {
        config.listen = "127.0.0.1:0".parse().unwrap();
        Self::start_bound(config, library)
    }

    /// As [`TestServer::start_with`], on `config.listen` as it is (a server restarted on the
    /// address it had).
    pub fn start_bound(mut config: Config, library: Library) -> Self {
        config.rtmp_listen = Some("127.0.0.1:0".parse().unwrap());
        // Two workers and two fan-out threads unless a test asks otherwise, whatever the
        // machine: tests run side by side in one process, and a runtime per core each on a
        // machine of many cores would take thousands of threads and descriptors between them.
        config.workers = config.workers.or(Some(2));
        config.live.fanout.threads = config.live.fanout.threads.or(Some(2));
        if let Some(t) = &mut config.tls {
            let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
            t.listen.iter_mut().for_each(|a| *a = any);
            t.rtmps_listen = t.rtmps_listen.map(|_| any);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (atx, arx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = Server::bind(config, library).await.expect("bind");
                let rtmp = server.rtmp_addr().expect("RTMP on");
                let tls = (server.https_addrs(), server.rtmps_addr());
                atx.send((server.local_addr(), rtmp, server.live(), tls))
                    .unwrap();
                server
                    .run(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        let (addr, rtmp, live, (https, rtmps)) = arx.recv().expect("server started");
        TestServer {
            addr,
            rtmp,
            https,
            rtmps,
            live,
            _dir: None,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        request(self.addr, "GET", path, headers)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Closes `c` with a reset (`SO_LINGER` 0), as a client that crashes or is cut off does.
pub fn reset(c: std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor, and a `linger` option value of the size given.
    let r = unsafe {
        libc::setsockopt(
            c.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    drop(c);
}

/// One request on a fresh connection, read to the end (`Connection: close`).
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

/// Video packets as ffprobe sees them: (pts seconds, byte position, keyframe).
pub fn ffprobe_video_packets(input: &str) -> Vec<(f64, Option<u64>, bool)> {
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_packets",
            "-show_entries",
        ])
        .args(["packet=pts_time,pos,flags", "-of", "csv=p=0", input])
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {input}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let pts: f64 = f.first()?.parse().ok()?;
            Some((
                pts,
                f.get(1).and_then(|p| p.parse().ok()),
                f.get(2).is_some_and(|fl| fl.starts_with('K')),
            ))
        })
        .collect()
}

/// Keyframes per ffprobe as (seconds from the first frame, byte position).
pub fn ffprobe_keyframes(input: &str) -> Vec<(f64, u64)> {
    let packets = ffprobe_video_packets(input);
    let first = packets.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let mut keys: Vec<(f64, u64)> = packets
        .iter()
        .filter(|p| p.2)
        .map(|p| (p.0 - first, p.1.expect("keyframe position")))
        .collect();
    keys.sort_by(|a, b| a.0.total_cmp(&b.0));
    keys
}

/// Video frames per ffprobe as (pts seconds, keyframe), in presentation order.
pub fn ffprobe_frames(input: &str) -> Vec<(f64, bool)> {
    let mut v: Vec<(f64, bool)> = ffprobe_video_packets(input)
        .iter()
        .map(|p| (p.0, p.2))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// Runs the `zerocast` binary (the CLI) with `args` and waits for it.
pub fn zerocast(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_zerocast"))
        .args(args)
        .output()
        .expect("run zerocast")
}

pub fn ffmpeg(args: &[&str]) {
    require("ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-nostdin"])
        .args(args)
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A temporary directory holding copies of the demo clips.
pub fn demo_copy() -> tempfile::TempDir {
    demo_copy_in(&std::env::temp_dir())
}

/// A copy of the demo library in a new directory under `parent`.
pub fn demo_copy_in(parent: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(parent).unwrap();
    for name in DEMO {
        std::fs::copy(demo_dir().join(name), dir.path().join(name)).unwrap();
    }
    dir
}

pub fn library(dir: &Path) -> Library {
    Library::load(dir, u64::MAX, |_| {}).expect("library")
}

pub fn now() -> SystemTime {
    SystemTime::now()
}

/// The codec names ffprobe reports for an input, each once, sorted (ffprobe lists a TS's streams
/// twice: under the program and alone).
pub fn codecs(input: &str) -> Vec<String> {
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(input)
        .output()
        .expect("ffprobe");
    let mut c: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    c.sort();
    c.dedup();
    c
}

/// ffmpeg decodes `input` (its first `secs` seconds, or all of it) without a single error.
#[track_caller]
pub fn assert_decodes_without_errors(input: &str, secs: Option<&str>) {
    require("ffmpeg");
    let mut c = Command::new("ffmpeg");
    c.args(["-v", "error", "-nostdin", "-i", input]);
    if let Some(t) = secs {
        c.args(["-t", t]);
    }
    let out = c.args(["-f", "null", "-"]).output().expect("ffmpeg");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{input}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ffmpeg decodes `secs` seconds of `input` without a single error, and ffprobe finds H.264 and
/// AAC in it (an RTMP input may also show ffmpeg's data streams for RTMP's own messages).
#[track_caller]
pub fn assert_plays_h264_aac(input: &str, secs: &str) {
    assert_decodes_without_errors(input, Some(secs));
    let found = codecs(input);
    assert!(
        found.iter().any(|c| c == "h264") && found.iter().any(|c| c == "aac"),
        "{input}: {found:?}"
    );
}
