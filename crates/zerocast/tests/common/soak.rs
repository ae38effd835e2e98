//! The soak scenario around [`super::crowd`]: a spawned server, a live stream whose publisher is
//! cut off and comes back every 10 s, the crowd, `/healthz` and RSS sampled through the run,
//! and what a user would check at the end.

use super::crowd::{quantile, Crowd, FastReport, Mix, VodReport};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// What a soak run measured.
#[derive(Debug)]
pub struct Soak {
    pub fast: Vec<FastReport>,
    pub vod: VodReport,
    /// `/healthz` every 250 ms through the run: status (0: no answer) and time to answer.
    pub healthz: Vec<(u16, Duration)>,
    /// Every second: time since the crowd started, the server's RSS (KiB), and the live memory
    /// it accounts (bytes).
    pub samples: Vec<(Duration, u64, u64)>,
    /// The server's RSS after the warm-up and at the end, KiB.
    pub rss_warm: u64,
    pub rss_end: u64,
    /// Stream bytes received by the server while the fast viewers watched.
    pub stream_bytes: u64,
    pub misbehaving_connects: u64,
    pub publisher_sessions: u64,
}

/// One `/healthz` on a fresh connection: status (0 if unanswered within 5 s) and time taken.
pub fn healthz(addr: SocketAddr) -> (u16, Duration) {
    let asked = Instant::now();
    let answer = (|| -> std::io::Result<Vec<u8>> {
        let mut c = TcpStream::connect(addr)?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut got = Vec::new();
        c.read_to_end(&mut got)?;
        Ok(got)
    })();
    match answer {
        Ok(got) if !got.is_empty() => (super::parse_response(&got).status, asked.elapsed()),
        _ => (0, asked.elapsed()),
    }
}

fn stream_doc(addr: SocketAddr, name: &str) -> Option<serde_json::Value> {
    let r = super::request(addr, "GET", &format!("/api/streams/{name}"), &[]);
    (r.status == 200).then(|| r.json())
}

/// The soak scenario: `zerocast serve` (under `nofile` descriptors if given) with one live
/// stream whose publisher (ffmpeg, real time, over PUT) is killed and comes back every 10 s,
/// `mix` around it for `run`, and `/healthz` asked throughout.
pub fn soak(nofile: Option<u32>, mix: Mix, run: Duration) -> Soak {
    use super::live::{ffmpeg_publish, Proc};
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zerocast.toml");
    // Never-reading viewers are given up on after 3 s, so they cycle through the run.
    // SOAK_LIVE: more `[live]` settings (to compare, e.g. "fanout_threads = 0").
    let extra = std::env::var("SOAK_LIVE").unwrap_or_default();
    // Two workers and two fan-out threads whatever the machine: the descriptors they take, and
    // so the connection cap under a limit, are those of the runs the limit was chosen by (a
    // runtime per core of a 64-core machine would take a few hundred).
    let fanout = match extra.contains("fanout_threads") {
        true => "",
        false => "fanout_threads = 2\n",
    };
    let toml = format!("workers = 2\n[live]\nviewer_stall_timeout_secs = 3\n{fanout}{extra}\n");
    std::fs::write(&cfg, toml).unwrap();
    let served = super::spawned::Served::start(nofile, &["--config", cfg.to_str().unwrap()]);
    let addr = served.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        let url = format!("http://{addr}/live/soak");
        thread::spawn(move || {
            while !stop.load(Relaxed) {
                let p: Proc = ffmpeg_publish(
                    &super::fixtures::live_ts(),
                    &["-re"],
                    "mpegts",
                    &["-method", "PUT"],
                    &url,
                );
                // The fixture runs 12 s: the publisher is cut off (killed) 10 s in, and the next
                // one continues the stream within the grace period.
                let until = Instant::now() + Duration::from_secs(10);
                while !stop.load(Relaxed) && Instant::now() < until {
                    thread::sleep(Duration::from_millis(50));
                }
                drop(p);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let units = || stream_doc(addr, "soak").and_then(|d| d["ring_units"].as_u64());
    while units().unwrap_or(0) <= 25 {
        assert!(Instant::now() < deadline, "the stream never got going");
        thread::sleep(Duration::from_millis(50));
    }
    let bytes_in =
        |d: Option<serde_json::Value>| d.and_then(|d| d["bytes_in"].as_u64()).unwrap_or(0);
    let before = bytes_in(stream_doc(addr, "soak"));
    let crowd = Crowd::start(addr, "soak", "faststart.mp4", 274_377, mix);
    let started = Instant::now();
    let mut healthz_log = Vec::new();
    let mut rss_warm = None;
    let mut samples = Vec::new();
    while started.elapsed() < run {
        healthz_log.push(healthz(addr));
        if samples.len() < started.elapsed().as_secs() as usize {
            let held = stream_doc(addr, "soak").and_then(|d| d["held_bytes"].as_u64());
            samples.push((started.elapsed(), served.rss_kib(), held.unwrap_or(0)));
        }
        if rss_warm.is_none() && started.elapsed() > run / 3 {
            rss_warm = Some(served.rss_kib());
        }
        thread::sleep(Duration::from_millis(250));
    }
    let rss_end = served.rss_kib();
    let doc = stream_doc(addr, "soak");
    let publisher_sessions = doc
        .as_ref()
        .and_then(|d| d["sessions"].as_u64())
        .unwrap_or(0);
    let stream_bytes = bytes_in(doc).saturating_sub(before);
    let misbehaving_connects = crowd.misbehaving_connects.load(Relaxed);
    let (fast, vod) = crowd.stop();
    stop.store(true, Relaxed);
    publisher.join().unwrap();
    Soak {
        fast,
        vod,
        healthz: healthz_log,
        samples,
        rss_warm: rss_warm.unwrap_or(rss_end),
        rss_end,
        stream_bytes,
        misbehaving_connects,
        publisher_sessions,
    }
}

impl Soak {
    /// Prints the run's figures (stderr).
    pub fn report(&self) {
        let p = |q| quantile(&self.vod.latencies, q);
        let hz: Vec<Duration> = {
            let mut v: Vec<_> = self.healthz.iter().map(|h| h.1).collect();
            v.sort();
            v
        };
        let arrivals: Vec<_> = self.fast.iter().map(|f| &f.arrivals).collect();
        let late = super::added_latency::added(&arrivals);
        eprintln!(
            "soak: {} fast viewers, stream {} bytes, {} misbehaving connections, {} publisher sessions; \
             fast viewers' added latency (after the first to get each packet) p50 {:?} p99 {:?} max {:?} ({} packets); \
             VOD {} ranges p50 {:?} p99 {:?}; /healthz p99 {:?}; RSS {} KiB after warm-up, {} KiB at the end",
            self.fast.len(),
            self.stream_bytes,
            self.misbehaving_connects,
            self.publisher_sessions,
            late.quantile(0.5),
            late.quantile(0.99),
            late.quantile(1.0),
            late.count(),
            self.vod.latencies.len(),
            p(0.5),
            p(0.99),
            quantile(&hz, 0.99),
            self.rss_warm,
            self.rss_end,
        );
    }

    /// Every fast viewer stayed connected, saw no continuity gap and got (nearly) the whole
    /// stream; every VOD range was answered; `/healthz` was always answered; RSS stayed flat.
    #[track_caller]
    pub fn assert_undisturbed(&self) {
        self.report();
        assert!(
            self.publisher_sessions >= 2,
            "the publisher came back: {}",
            self.publisher_sessions
        );
        let ended: Vec<_> = self
            .fast
            .iter()
            .filter_map(|f| f.ended.as_deref())
            .collect();
        assert!(
            ended.is_empty(),
            "{} fast viewers ended early, e.g. {:?}",
            ended.len(),
            &ended[..ended.len().min(3)]
        );
        let gaps: u64 = self.fast.iter().map(|f| f.gaps).sum();
        assert_eq!(gaps, 0, "continuity gaps seen by fast viewers");
        let least = self.fast.iter().map(|f| f.bytes).min().unwrap_or(0);
        assert!(
            least + (256 << 10) >= self.stream_bytes * 9 / 10,
            "a fast viewer got {least} of the {} bytes published",
            self.stream_bytes
        );
        assert!(!self.vod.latencies.is_empty(), "no VOD range answered");
        assert!(
            self.vod.failures.is_empty(),
            "VOD failures: {:?}",
            &self.vod.failures[..self.vod.failures.len().min(3)]
        );
        let unanswered = self.healthz.iter().filter(|h| h.0 == 0).count();
        assert_eq!(unanswered, 0, "/healthz unanswered {unanswered} times");
        assert!(self.misbehaving_connects > 0);
        assert!(
            self.rss_end <= self.rss_warm + self.rss_warm / 4 + (16 << 10),
            "RSS grew from {} KiB after warm-up to {} KiB",
            self.rss_warm,
            self.rss_end
        );
    }
}

impl Soak {
    /// The run as CSV, one line per second: second, RSS KiB, live bytes held, VOD ranges
    /// answered, their p50 and p99 (ms), the slowest `/healthz` (ms).
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "second,rss_kib,live_held_bytes,vod_ranges,vod_p50_ms,vod_p99_ms,healthz_max_ms\n",
        );
        for (i, (at, rss, held)) in self.samples.iter().enumerate() {
            let from = at.saturating_sub(Duration::from_secs(1));
            let mut window: Vec<Duration> = self
                .vod
                .timeline
                .iter()
                .filter(|t| t.0 >= from && t.0 < *at)
                .map(|t| t.1)
                .collect();
            window.sort();
            let hz = self
                .healthz
                .iter()
                .skip(i * 4)
                .take(4)
                .map(|h| h.1)
                .max()
                .unwrap_or_default();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            out.push_str(&format!(
                "{},{rss},{held},{},{:.3},{:.3},{:.3}\n",
                i + 1,
                window.len(),
                ms(quantile(&window, 0.5)),
                ms(quantile(&window, 0.99)),
                ms(hz)
            ));
        }
        out
    }
}
