//! A mixed crowd around one live stream, for the soak and fault tests: fast `.ts` viewers that
//! check every packet's continuity counter as it arrives, viewers that upload, viewers that never
//! read, viewers that connect and drop in a loop, and VOD range clients. Every client runs on its
//! own thread until [`Crowd::stop`].

use super::added_latency::Arrivals;
use super::ts::PACKET;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How many of each kind of client.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub fast: usize,
    pub uploading: usize,
    pub never_reading: usize,
    pub dropping: usize,
    pub vod: usize,
}

/// What one fast viewer saw.
#[derive(Debug, Default)]
pub struct FastReport {
    pub bytes: u64,
    pub packets: u64,
    /// Continuity-counter gaps (a skip, a lost or repeated packet).
    pub gaps: u64,
    /// Why the connection ended before the crowd was stopped.
    pub ended: Option<String>,
    /// When packets with a PCR arrived (`added_latency`).
    pub arrivals: Arrivals,
}

/// What the VOD clients saw: each request's time to its whole answer (sorted), when it was
/// asked (since the crowd started) with that time, and the failures.
#[derive(Debug, Default)]
pub struct VodReport {
    pub latencies: Vec<Duration>,
    pub timeline: Vec<(Duration, Duration)>,
    pub failures: Vec<String>,
}

pub struct Crowd {
    stop: Arc<AtomicBool>,
    fast: Vec<JoinHandle<FastReport>>,
    vod: Vec<JoinHandle<VodReport>>,
    others: Vec<JoinHandle<()>>,
    /// Connections the misbehaving clients made (each reconnects when dropped).
    pub misbehaving_connects: Arc<AtomicU64>,
}

/// A `.ts` viewer's body, checked as it arrives: the response head, chunked framing, then
/// 188-byte packets whose continuity counters are followed per PID.
#[derive(Debug)]
struct LiveTs {
    /// When the bytes being fed were read.
    now: Instant,
    head_done: bool,
    buf: Vec<u8>,
    /// Bytes left in the current chunk; `None` while a chunk-size line is expected.
    chunk_left: Option<usize>,
    packet: Vec<u8>,
    cc: HashMap<u16, u8>,
    report: FastReport,
}

impl LiveTs {
    fn new(connected: Instant) -> Self {
        LiveTs {
            now: connected,
            head_done: false,
            buf: Vec::new(),
            chunk_left: None,
            packet: Vec::new(),
            cc: HashMap::new(),
            report: FastReport::default(),
        }
    }

    /// Takes what was read at `now`; false once the response turned out not to be the stream.
    fn feed(&mut self, data: &[u8], now: Instant) -> bool {
        self.now = now;
        self.buf.extend_from_slice(data);
        if !self.head_done {
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                return true;
            };
            if !self.buf.starts_with(b"HTTP/1.1 200") {
                let line = self.buf.split(|&b| b == b'\r').next().unwrap_or_default();
                self.report.ended = Some(String::from_utf8_lossy(line).into_owned());
                return false;
            }
            self.buf.drain(..end + 4);
            self.head_done = true;
        }
        let mut pos = 0;
        loop {
            match self.chunk_left {
                None => {
                    let Some(eol) = self.buf[pos..].windows(2).position(|w| w == b"\r\n") else {
                        break;
                    };
                    let line = std::str::from_utf8(&self.buf[pos..pos + eol]).unwrap();
                    let size = usize::from_str_radix(line.trim(), 16).expect("chunk size");
                    pos += eol + 2;
                    self.chunk_left = Some(size);
                }
                Some(0) => {
                    // The CRLF after a chunk's data.
                    if self.buf.len() - pos < 2 {
                        break;
                    }
                    pos += 2;
                    self.chunk_left = None;
                }
                Some(left) => {
                    let n = left.min(self.buf.len() - pos);
                    if n == 0 {
                        break;
                    }
                    let data = self.buf[pos..pos + n].to_vec();
                    self.body(&data);
                    pos += n;
                    self.chunk_left = Some(left - n);
                }
            }
        }
        self.buf.drain(..pos);
        true
    }

    fn body(&mut self, mut data: &[u8]) {
        self.report.bytes += data.len() as u64;
        while !data.is_empty() {
            let n = (PACKET - self.packet.len()).min(data.len());
            self.packet.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.packet.len() == PACKET {
                let p = std::mem::take(&mut self.packet);
                self.check(&p);
            }
        }
    }

    fn check(&mut self, p: &[u8]) {
        self.report.packets += 1;
        let h = media::ts::header(p).expect("every packet has the sync byte");
        if !h.has_payload || h.pid == 0x1fff {
            return;
        }
        let disc = p[3] & 0x20 != 0 && p[4] > 0 && p[5] & 0x80 != 0;
        // A PCR: adaptation field of at least 7 bytes with the PCR flag; its 33-bit base.
        if p[3] & 0x20 != 0 && p[4] >= 7 && p[5] & 0x10 != 0 {
            let b = |i: usize| u64::from(p[i]);
            let pcr = b(6) << 25 | b(7) << 17 | b(8) << 9 | b(9) << 1 | b(10) >> 7;
            self.report.arrivals.pcr(pcr, self.now, disc);
        }
        if let Some(prev) = self.cc.insert(h.pid, h.cc) {
            if !disc && h.cc != (prev + 1) & 0x0f {
                self.report.gaps += 1;
            }
        }
    }
}

fn get(addr: SocketAddr, path: &str) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr)?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())?;
    Ok(s)
}

fn fast_viewer(addr: SocketAddr, path: String, stop: Arc<AtomicBool>) -> FastReport {
    let mut check = LiveTs::new(Instant::now());
    let mut s = match get(addr, &path) {
        Ok(s) => s,
        Err(e) => {
            check.report.ended = Some(format!("connect: {e}"));
            return check.report;
        }
    };
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = vec![0u8; 64 << 10];
    while !stop.load(Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => {
                check.report.ended = Some("closed by the server".into());
                break;
            }
            Ok(n) => {
                if !check.feed(&buf[..n], Instant::now()) {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                check.report.ended = Some(format!("read: {e}"));
                break;
            }
        }
    }
    check.report
}

/// Sends 4 KiB every 10 ms on its viewer connection until the server drops it; reconnects.
fn uploader(addr: SocketAddr, path: String, stop: Arc<AtomicBool>, connects: Arc<AtomicU64>) {
    let zeros = [0u8; 4096];
    while !stop.load(Relaxed) {
        let Ok(mut s) = get(addr, &path) else {
            thread::sleep(Duration::from_millis(50));
            continue;
        };
        connects.fetch_add(1, Relaxed);
        while !stop.load(Relaxed) && s.write_all(&zeros).is_ok() {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Asks for the stream and never reads; when the server gives up on it (the stall timeout),
/// asks again.
fn never_reader(addr: SocketAddr, path: String, stop: Arc<AtomicBool>, connects: Arc<AtomicU64>) {
    while !stop.load(Relaxed) {
        let Ok(s) = get(addr, &path) else {
            thread::sleep(Duration::from_millis(50));
            continue;
        };
        connects.fetch_add(1, Relaxed);
        // Peeking reads nothing off the socket; it returns once the server has closed it.
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut one = [0u8; 1];
        while !stop.load(Relaxed) {
            match s.peek(&mut one) {
                Ok(0) => break,
                Err(e)
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                _ => thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

/// Connects, asks for the stream, reads a little, drops the connection; 20 times a second.
fn dropper(addr: SocketAddr, path: String, stop: Arc<AtomicBool>, connects: Arc<AtomicU64>) {
    let mut buf = [0u8; 4096];
    while !stop.load(Relaxed) {
        if let Ok(mut s) = get(addr, &path) {
            connects.fetch_add(1, Relaxed);
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let _ = s.read(&mut buf);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Asks for random 64 KiB ranges of `title` on fresh connections, one at a time.
fn vod_client(
    addr: SocketAddr,
    title: String,
    size: u64,
    seed: u64,
    stop: Arc<AtomicBool>,
    t0: Instant,
) -> VodReport {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut report = VodReport::default();
    while !stop.load(Relaxed) {
        let start = rng.u64(..size.saturating_sub(65536).max(1));
        let asked = Instant::now();
        let r = (|| -> Result<(), String> {
            let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let head = format!(
                "GET /videos/{title} HTTP/1.1\r\nHost: x\r\nRange: bytes={start}-{}\r\nConnection: close\r\n\r\n",
                start + 65535
            );
            s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
            let mut raw = Vec::new();
            s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
            let r = super::parse_response(&raw);
            if r.status != 206 || r.body.len() != 65536 {
                return Err(format!("{} with {} bytes", r.status, r.body.len()));
            }
            Ok(())
        })();
        match r {
            Ok(()) => report.timeline.push((asked - t0, asked.elapsed())),
            Err(e) => report.failures.push(e),
        }
        thread::sleep(Duration::from_millis(20));
    }
    report
}

/// The crowd's threads stand for other machines: on this one they yield to the VOD clients and
/// the server (nice `SOAK_CROWD_NICE`, default 10), so that what the VOD clients measure is the
/// server's latency, not their own place in the run queue behind hundreds of reader threads.
fn crowd_priority() {
    let nice = std::env::var("SOAK_CROWD_NICE").map_or(10, |n| n.parse().unwrap());
    // SAFETY: setpriority takes plain integers and changes only the calling thread's nice value
    // (Linux: `who` 0 with PRIO_PROCESS is the calling thread); it touches no memory of ours.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    assert_eq!(r, 0, "setpriority: {}", std::io::Error::last_os_error());
}

impl Crowd {
    /// Starts `mix` around `/live/{stream}.ts`, the VOD clients on `title` (`size` bytes).
    pub fn start(addr: SocketAddr, stream: &str, title: &str, size: u64, mix: Mix) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let connects = Arc::new(AtomicU64::new(0));
        let path = format!("/live/{stream}.ts");
        let spawn = |f: fn(SocketAddr, String, Arc<AtomicBool>, Arc<AtomicU64>)| {
            let (p, s, c) = (path.clone(), stop.clone(), connects.clone());
            thread::spawn(move || {
                crowd_priority();
                f(addr, p, s, c)
            })
        };
        let mut others = Vec::new();
        for _ in 0..mix.uploading {
            others.push(spawn(uploader));
        }
        for _ in 0..mix.never_reading {
            others.push(spawn(never_reader));
        }
        for _ in 0..mix.dropping {
            others.push(spawn(dropper));
        }
        let fast = (0..mix.fast)
            .map(|_| {
                let (p, s) = (path.clone(), stop.clone());
                thread::Builder::new()
                    .stack_size(256 << 10)
                    .spawn(move || {
                        crowd_priority();
                        fast_viewer(addr, p, s)
                    })
                    .unwrap()
            })
            .collect();
        let vod = (0..mix.vod)
            .map(|i| {
                let (t, s) = (title.to_string(), stop.clone());
                let t0 = Instant::now();
                thread::spawn(move || vod_client(addr, t, size, i as u64, s, t0))
            })
            .collect();
        Crowd {
            stop,
            fast,
            vod,
            others,
            misbehaving_connects: connects,
        }
    }

    /// Stops every client; returns what the fast viewers and the VOD clients saw.
    pub fn stop(self) -> (Vec<FastReport>, VodReport) {
        self.stop.store(true, Relaxed);
        let fast = self.fast.into_iter().map(|h| h.join().unwrap()).collect();
        let mut vod = VodReport::default();
        for h in self.vod {
            let r = h.join().unwrap();
            vod.timeline.extend(r.timeline);
            vod.failures.extend(r.failures);
        }
        for h in self.others {
            h.join().unwrap();
        }
        vod.timeline.sort();
        vod.latencies = vod.timeline.iter().map(|t| t.1).collect();
        vod.latencies.sort();
        (fast, vod)
    }
}

/// The `q` quantile (0..=1) of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
