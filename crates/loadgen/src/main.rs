//! `zerocast-load`: thousands of live viewers from one process, each checking that what it gets is
//! continuous MPEG-TS, and (optionally) the publisher too, so that publisher-to-viewer latency can
//! be measured on one clock.
//!
//! Each viewer is a raw HTTP/1.1 GET of `/live/{stream}.ts` on its own socket (from source
//! addresses 127.0.0.2.. when given, to go beyond one address's ports), decoding the chunked body
//! with the server's own framing parser and the TS with the media crate. It records bytes, time to
//! the first keyframe, continuity-counter gaps (a skip shows as one), and latency marks.
//!
//! Latency marks: with `--publish FILE`, this process publishes FILE in a loop, paced in real time,
//! and appends to each chunk one TS packet on PID 0x1FF0 (not in the PMT, so players ignore it)
//! carrying the time it was written. A viewer that reads the packet computes now − then (the
//! latency as the viewer process sees it, including its own wait for a CPU), and also arrival −
//! then, where arrival is the kernel's receive timestamp of the bytes (`SO_TIMESTAMPNS`): when
//! the server's write put them in the viewer's socket. On a machine where the load client shares
//! the cores with the server, the second is the latency the server adds; the first adds the load
//! client's own queueing behind its other viewers.

use anyhow::{bail, Context, Result};
use clap::Parser;
use live::{RequestBody, Want};
use media::ts::{Cut, Splitter, PACKET};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

const MARK_PID: u16 = 0x1ff0;
/// Only the first viewer failure and gap are described on stderr.
static REPORTED: AtomicBool = AtomicBool::new(false);
static GAP_REPORTED: AtomicBool = AtomicBool::new(false);
const MARK_MAGIC: &[u8; 6] = b"ZCMARK";

#[derive(Parser, Debug)]
#[command(name = "zerocast-load", about = "Live viewer load client for zerocast")]
struct Args {
    /// The server, http://HOST:PORT
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The stream name.
    #[arg(long)]
    stream: String,
    /// How many viewers.
    #[arg(long, default_value_t = 100)]
    viewers: usize,
    /// Seconds to measure for, after all viewers are connected.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// New connections per second (0: all at once).
    #[arg(long, default_value_t = 1000)]
    ramp: u64,
    /// Source addresses to spread the connections over (comma-separated).
    #[arg(long, value_delimiter = ',')]
    bind: Vec<IpAddr>,
    /// Bytes per read (and per viewer buffer).
    #[arg(long, default_value_t = 64 << 10)]
    read_size: usize,
    /// Publish this MPEG-TS file to the stream (looped, real time, with latency marks).
    #[arg(long)]
    publish: Option<std::path::PathBuf>,
    /// The publish key.
    #[arg(long)]
    key: Option<String>,
    /// The server's PID, for its CPU time and RSS.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// What viewers watch: `ts` (GET /live/NAME.ts), `flv` (GET /live/NAME.flv) or `rtmp` (play
    /// rtmp://RTMP/live/NAME). FLV and RTMP viewers check structure, not continuity counters.
    #[arg(long, default_value = "ts")]
    output: String,
    /// The RTMP server for `--output rtmp` (HOST:PORT).
    #[arg(long, default_value = "127.0.0.1:1935")]
    rtmp: SocketAddr,
    /// Publish to this many streams, {stream}-0 .. {stream}-(N-1), at once (with --publish);
    /// viewers are spread over them. Reports bytes sent that the server did not count.
    #[arg(long, default_value_t = 0)]
    publishers: usize,
}

#[derive(Default)]
struct ViewerStats {
    bytes: AtomicU64,
    gaps: AtomicU64,
    /// Microseconds from the request to the first keyframe (0: none yet).
    first_keyframe_us: AtomicU64,
    failed: AtomicBool,
    ended: AtomicBool,
}

struct Shared {
    stop: AtomicBool,
    latencies_us: Mutex<Vec<u32>>,
    /// Mark to kernel receive timestamp, TS viewers.
    arrivals_us: Mutex<Vec<u32>>,
}

/// Wall-clock microseconds: the clock of the kernel's receive timestamps, so marks and arrivals
/// compare (one machine, one clock).
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

fn authority(server: &str) -> Result<SocketAddr> {
    let a = server.trim_start_matches("http://").trim_end_matches('/');
    a.parse()
        .with_context(|| format!("--server {server}: expected http://IP:PORT"))
}

async fn run(args: Args) -> Result<()> {
    let addr = authority(&args.server)?;
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        latencies_us: Mutex::new(Vec::new()),
        arrivals_us: Mutex::new(Vec::new()),
    });
    let streams: Vec<String> = if args.publishers > 0 {
        (0..args.publishers)
            .map(|i| format!("{}-{i}", args.stream))
            .collect()
    } else {
        vec![args.stream.clone()]
    };
    let mut sent: Vec<Arc<AtomicU64>> = Vec::new();
    if let Some(file) = &args.publish {
        let data =
            Arc::new(std::fs::read(file).with_context(|| format!("reading {}", file.display()))?);
        for name in &streams {
            let counter = Arc::new(AtomicU64::new(0));
            sent.push(counter.clone());
            let (sh, name, key, data) =
                (shared.clone(), name.clone(), args.key.clone(), data.clone());
            tokio::spawn(async move {
                if let Err(e) = publish(addr, &name, key.as_deref(), &data, sh, &counter).await {
                    eprintln!("publisher {name}: {e:#}");
                }
            });
        }
        // Wait for a keyframe in every ring.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let docs = api_all(addr).await.unwrap_or_default();
            let up = docs
                .iter()
                .filter(|d| d["ring_units"].as_u64() > Some(1) && d["state"] == "live")
                .filter(|d| streams.iter().any(|n| d["name"] == n.as_str()))
                .count();
            if up == streams.len() {
                break;
            }
            if Instant::now() > deadline {
                bail!("only {up} of {} published streams came up", streams.len());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let stats: Vec<Arc<ViewerStats>> = (0..args.viewers).map(|_| Arc::default()).collect();
    let connect_start = Instant::now();
    let mut tasks = Vec::with_capacity(args.viewers);
    for (i, st) in stats.iter().enumerate() {
        if args.ramp > 0 {
            let due = connect_start + Duration::from_secs_f64(i as f64 / args.ramp as f64);
            tokio::time::sleep_until(due).await;
        }
        let bind = (!args.bind.is_empty()).then(|| args.bind[i % args.bind.len()]);
        let (st, sh, stream, rs) = (
            st.clone(),
            shared.clone(),
            streams[i % streams.len()].clone(),
            args.read_size,
        );
        let (output, rtmp) = (args.output.clone(), args.rtmp);
        tasks.push(tokio::spawn(async move {
            let r = match output.as_str() {
                "flv" => flv_viewer(addr, bind, &stream, rs, &st, &sh).await,
                "rtmp" => rtmp_viewer(rtmp, bind, &stream, rs, &st, &sh).await,
                _ => viewer(addr, bind, &stream, rs, &st, &sh).await,
            };
            if let Err(e) = r {
                if !st.failed.swap(true, Relaxed) && !REPORTED.swap(true, Relaxed) {
                    eprintln!("a viewer of {stream} failed: {e:#}");
                }
            }
        }));
    }
    let ramp = connect_start.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Measure.
    let cpu0 = procs_cpu(&args.server_pid);
    let self0 = proc_cpu(std::process::id());
    let each0: Vec<u64> = stats.iter().map(|s| s.bytes.load(Relaxed)).collect();
    let bytes0: u64 = each0.iter().sum();
    let gaps0: u64 = stats.iter().map(|s| s.gaps.load(Relaxed)).sum();
    let api0 = api_sum(addr, &streams).await;
    shared.latencies_us.lock().unwrap().clear();
    shared.arrivals_us.lock().unwrap().clear();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu1 = procs_cpu(&args.server_pid);
    let self1 = proc_cpu(std::process::id());
    let rss: Option<u64> = (!args.server_pid.is_empty())
        .then(|| args.server_pid.iter().filter_map(|&p| proc_rss(p)).sum());
    let each1: Vec<u64> = stats.iter().map(|s| s.bytes.load(Relaxed)).collect();
    let bytes1: u64 = each1.iter().sum();
    let gaps1: u64 = stats.iter().map(|s| s.gaps.load(Relaxed)).sum();
    let api1 = api_sum(addr, &streams).await;
    shared.stop.store(true, Relaxed);
    // Publishers stop at their next chunk; then every byte sent must have been counted.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let docs = api_all(addr).await.unwrap_or_default();
    let mut ingest_loss = 0u64;
    let mut ingest_sent = 0u64;
    for (name, sent) in streams.iter().zip(&sent) {
        let got = docs
            .iter()
            .find(|d| d["name"] == name.as_str())
            .and_then(|d| d["bytes_in"].as_u64())
            .unwrap_or(0);
        let sent = sent.load(Relaxed);
        ingest_sent += sent;
        ingest_loss += sent.saturating_sub(got);
    }
    let mut lat = std::mem::take(&mut *shared.latencies_us.lock().unwrap());
    lat.sort_unstable();
    let mut arr = std::mem::take(&mut *shared.arrivals_us.lock().unwrap());
    arr.sort_unstable();
    let mut ttfk: Vec<u64> = stats
        .iter()
        .map(|s| s.first_keyframe_us.load(Relaxed))
        .filter(|&t| t > 0)
        .collect();
    ttfk.sort_unstable();
    let failed = stats.iter().filter(|s| s.failed.load(Relaxed)).count();
    let ended = stats.iter().filter(|s| s.ended.load(Relaxed)).count();
    let viewers_with_gaps = stats.iter().filter(|s| s.gaps.load(Relaxed) > 0).count();
    let mut per_viewer: Vec<f64> = each1
        .iter()
        .zip(&each0)
        .map(|(b, a)| (b - a) as f64 * 8.0 / wall / 1e6)
        .collect();
    per_viewer.sort_by(f64::total_cmp);
    let pct = |v: &[u64], p: f64| -> Option<f64> {
        (!v.is_empty()).then(|| v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0)
    };
    let lat64: Vec<u64> = lat.iter().map(|&x| u64::from(x)).collect();
    let arr64: Vec<u64> = arr.iter().map(|&x| u64::from(x)).collect();
    let delta = |k: &str| api1.get(k).copied().unwrap_or(0) - api0.get(k).copied().unwrap_or(0);
    let report = serde_json::json!({
        "viewers": args.viewers,
        "connected_in_seconds": ramp.as_secs_f64(),
        "measured_seconds": wall,
        "failed": failed,
        "ended_by_server": ended,
        "viewers_with_gaps_total": viewers_with_gaps,
        "gaps_in_window": gaps1 - gaps0,
        "throughput_mbit_s": (bytes1 - bytes0) as f64 * 8.0 / wall / 1e6,
        "per_viewer_mbit_s_min": per_viewer.first(),
        "per_viewer_mbit_s_median": per_viewer.get(per_viewer.len() / 2),
        "time_to_first_keyframe_ms": {"p50": pct(&ttfk, 0.5), "p99": pct(&ttfk, 0.99), "max": pct(&ttfk, 1.0), "count": ttfk.len()},
        "latency_ms": {"p50": pct(&lat64, 0.5), "p99": pct(&lat64, 0.99), "max": pct(&lat64, 1.0), "samples": lat64.len()},
        "arrival_latency_ms": {"p50": pct(&arr64, 0.5), "p99": pct(&arr64, 0.99), "max": pct(&arr64, 1.0), "samples": arr64.len()},
        "server_cpu_percent": match (cpu0, cpu1) { (Some(a), Some(b)) => Some((b - a) / wall * 100.0), _ => None },
        "server_rss_kib": rss,
        "load_client_cpu_percent": match (self0, self1) { (Some(a), Some(b)) => Some((b - a) / wall * 100.0), _ => None },
        "server_skips_in_window": delta("skips"),
        "server_slow_disconnects_in_window": delta("slow_disconnects"),
        "server_stalled_disconnects_in_window": delta("stalled_disconnects"),
        "server_max_lag_units": api1.get("max_lag_units"),
        "publishers": sent.len(),
        "ingest_bytes_sent": ingest_sent,
        "ingest_bytes_lost": ingest_loss,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    for t in tasks {
        t.abort();
    }
    Ok(())
}

/// CPU seconds of the given processes together.
fn procs_cpu(pids: &[u32]) -> Option<f64> {
    (!pids.is_empty()).then(|| pids.iter().filter_map(|&p| proc_cpu(p)).sum())
}

/// CPU seconds (user + system) of a process.
fn proc_cpu(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn proc_rss(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .ok()
}

/// Counters summed over the given streams (max for max_lag_units).
async fn api_sum(
    addr: SocketAddr,
    names: &[String],
) -> std::collections::HashMap<&'static str, u64> {
    let mut out = std::collections::HashMap::new();
    for d in api_all(addr).await.unwrap_or_default() {
        if !names.iter().any(|n| d["name"] == n.as_str()) {
            continue;
        }
        for k in ["skips", "slow_disconnects", "stalled_disconnects"] {
            *out.entry(k).or_insert(0) += d[k].as_u64().unwrap_or(0);
        }
        let m = out.entry("max_lag_units").or_insert(0);
        *m = (*m).max(d["max_lag_units"].as_u64().unwrap_or(0));
    }
    out
}

/// GET /api/streams as JSON.
async fn api_all(addr: SocketAddr) -> Result<Vec<serde_json::Value>> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /api/streams HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no response head")?;
    Ok(serde_json::from_slice(&raw[at + 4..])?)
}

async fn connect(addr: SocketAddr, bind: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    if let Some(ip) = bind {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    sock.connect(addr).await
}

/// Sends a GET and reads the response head; returns the socket, the buffer and where the body
/// starts and ends in it.
async fn get(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    path: &str,
    read_size: usize,
) -> Result<(TcpStream, Vec<u8>, usize, usize)> {
    let mut s = connect(addr, bind).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut buf = vec![0u8; read_size];
    let mut have = 0;
    loop {
        let n = s.read(&mut buf[have..]).await?;
        if n == 0 {
            bail!("closed before a response");
        }
        have += n;
        let mut h = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut h);
        if let httparse::Status::Complete(at) = r.parse(&buf[..have])? {
            if r.code != Some(200) {
                bail!("status {:?}", r.code);
            }
            return Ok((s, buf, at, have));
        }
        if have == buf.len() {
            bail!("response head too long");
        }
    }
}

/// An HTTP-FLV viewer: checks the FLV header and every tag's framing (PreviousTagSize), and
/// notes the first video keyframe.
async fn flv_viewer(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    stream: &str,
    read_size: usize,
    st: &ViewerStats,
    sh: &Shared,
) -> Result<()> {
    let start = Instant::now();
    let (mut s, mut buf, mut from, mut to) =
        get(addr, bind, &format!("/live/{stream}.flv"), read_size).await?;
    let mut body = Dechunk::default();
    // The FLV parser's window: a tag header, then `skip` body bytes, then PreviousTagSize.
    let mut head: Vec<u8> = Vec::with_capacity(16);
    let mut need_header = 9usize; // the file header first
    let mut last_tag = 0usize; // what the next PreviousTagSize must say
    let mut skip = 0usize;
    let mut in_file_header = true;
    loop {
        let done = body.feed(&buf[from..to], |mut d| {
            st.bytes.fetch_add(d.len() as u64, Relaxed);
            while !d.is_empty() {
                if skip > 0 {
                    let n = skip.min(d.len());
                    skip -= n;
                    d = &d[n..];
                    continue;
                }
                let n = (need_header - head.len()).min(d.len());
                head.extend_from_slice(&d[..n]);
                d = &d[n..];
                if head.len() < need_header {
                    continue;
                }
                if in_file_header {
                    if &head[..3] != b"FLV" {
                        st.gaps.fetch_add(1, Relaxed);
                    }
                    in_file_header = false;
                } else {
                    // PreviousTagSize of the last tag (4), then this tag's header (11).
                    let prev = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
                    if prev as usize != last_tag {
                        st.gaps.fetch_add(1, Relaxed);
                    }
                    let size = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
                    last_tag = 11 + size;
                    if head[4] == 9 && size > 0 && st.first_keyframe_us.load(Relaxed) == 0 {
                        // The body's first two bytes decide; peek when present.
                        if d.len() >= 2 && d[0] >> 4 == 1 && d[1] == 1 {
                            st.first_keyframe_us
                                .store(start.elapsed().as_micros().max(1) as u64, Relaxed);
                        }
                    }
                    if !matches!(head[4], 8 | 9 | 18) {
                        st.gaps.fetch_add(1, Relaxed);
                    }
                    skip = size;
                }
                head.clear();
                // Next: PreviousTagSize (after the file header: PreviousTagSize0), then
                // a tag header.
                need_header = 15;
            }
        })?;
        if done {
            st.ended.store(true, Relaxed);
            return Ok(());
        }
        if sh.stop.load(Relaxed) {
            return Ok(());
        }
        let n = s.read(&mut buf).await?;
        if n == 0 {
            st.ended.store(true, Relaxed);
            return Ok(());
        }
        (from, to) = (0, n);
    }
}

/// An RTMP player (rml_rtmp's client session): connect, play, count the media it gets.
async fn rtmp_viewer(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    stream: &str,
    read_size: usize,
    st: &ViewerStats,
    sh: &Shared,
) -> Result<()> {
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    use rml_rtmp::sessions::{
        ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    };
    let start = Instant::now();
    let mut s = connect(addr, bind).await?;
    let mut buf = vec![0u8; read_size];
    let mut hs = Handshake::new(PeerType::Client);
    s.write_all(
        &hs.generate_outbound_p0_and_p1()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
    )
    .await?;
    let rest = loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            bail!("closed during the handshake");
        }
        match hs
            .process_bytes(&buf[..n])
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                s.write_all(&response_bytes).await?
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                s.write_all(&response_bytes).await?;
                break remaining_bytes;
            }
        }
    };
    let mut config = ClientSessionConfig::new();
    config.tc_url = Some(format!("rtmp://{addr}/live"));
    let (mut session, initial) =
        ClientSession::new(config).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut out: Vec<u8> = Vec::new();
    let push = |r: ClientSessionResult, out: &mut Vec<u8>| {
        if let ClientSessionResult::OutboundResponse(p) = r {
            out.extend_from_slice(&p.bytes);
        }
    };
    for r in initial {
        push(r, &mut out);
    }
    push(
        session
            .request_connection("live".into())
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
        &mut out,
    );
    s.write_all(&out).await?;
    let mut input = rest;
    loop {
        out.clear();
        if !input.is_empty() {
            for r in session
                .handle_input(&input)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?
            {
                match r {
                    ClientSessionResult::RaisedEvent(
                        ClientSessionEvent::ConnectionRequestAccepted,
                    ) => {
                        let r = session
                            .request_playback(stream.to_string())
                            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                        push(r, &mut out);
                    }
                    ClientSessionResult::RaisedEvent(ClientSessionEvent::VideoDataReceived {
                        data,
                        ..
                    }) => {
                        st.bytes.fetch_add(data.len() as u64, Relaxed);
                        if data.len() >= 2
                            && data[0] >> 4 == 1
                            && data[1] == 1
                            && st.first_keyframe_us.load(Relaxed) == 0
                        {
                            st.first_keyframe_us
                                .store(start.elapsed().as_micros().max(1) as u64, Relaxed);
                        }
                    }
                    ClientSessionResult::RaisedEvent(ClientSessionEvent::AudioDataReceived {
                        data,
                        ..
                    }) => {
                        st.bytes.fetch_add(data.len() as u64, Relaxed);
                    }
                    ClientSessionResult::RaisedEvent(
                        ClientSessionEvent::ConnectionRequestRejected { description },
                    ) => {
                        bail!("connect rejected: {description}");
                    }
                    other => push(other, &mut out),
                }
            }
            if !out.is_empty() {
                s.write_all(&out).await?;
            }
        }
        if sh.stop.load(Relaxed) {
            return Ok(());
        }
        let n = s.read(&mut buf).await?;
        if n == 0 {
            st.ended.store(true, Relaxed);
            return Ok(());
        }
        input = buf[..n].to_vec();
    }
}

async fn viewer(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    stream: &str,
    read_size: usize,
    st: &ViewerStats,
    sh: &Shared,
) -> Result<()> {
    let start = Instant::now();
    let (s, mut buf, mut from, mut to) =
        get(addr, bind, &format!("/live/{stream}.ts"), read_size).await?;
    arrival_stamps(&s)?;
    // The kernel receive time of the latest bytes read (none for what came with the head).
    let mut arrival: Option<u64> = None;
    let mut body = Dechunk::default();
    let mut pkt = [0u8; PACKET];
    let mut fill = 0;
    let mut check = TsCheck {
        cc: Vec::new(),
        splitter: Some(Splitter::default()),
        cuts: Vec::new(),
        start,
    };
    loop {
        let done = body.feed(&buf[from..to], |mut d| {
            st.bytes.fetch_add(d.len() as u64, Relaxed);
            // Whole packets are checked in place; only a packet split across reads (or
            // chunks) is assembled in `pkt`.
            if fill > 0 {
                let n = (PACKET - fill).min(d.len());
                pkt[fill..fill + n].copy_from_slice(&d[..n]);
                fill += n;
                d = &d[n..];
                if fill == PACKET {
                    fill = 0;
                    check.packet(&pkt, st, sh, arrival);
                }
            }
            let mut whole = d.chunks_exact(PACKET);
            for p in &mut whole {
                let p: &[u8; PACKET] = p.try_into().expect("chunks_exact");
                check.packet(p, st, sh, arrival);
            }
            let rest = whole.remainder();
            pkt[fill..fill + rest.len()].copy_from_slice(rest);
            fill += rest.len();
        })?;
        if done {
            st.ended.store(true, Relaxed);
            return Ok(());
        }
        if sh.stop.load(Relaxed) {
            return Ok(());
        }
        let (n, at) = read_stamped(&s, &mut buf).await?;
        if n == 0 {
            st.ended.store(true, Relaxed);
            return Ok(());
        }
        (from, to, arrival) = (0, n, at);
    }
}

/// Asks the kernel to timestamp what arrives on `s` (`SO_TIMESTAMPNS`, wall clock).
fn arrival_stamps(s: &TcpStream) -> Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: `s` owns a valid socket for the call; the option value is a c_int that lives
    // across it and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("SO_TIMESTAMPNS");
    }
    Ok(())
}

/// Reads into `buf` like `read`, and returns the kernel's receive time (wall-clock
/// microseconds) of the latest bytes read, from the `SCM_TIMESTAMPNS` control message. Not
/// `AsyncRead`: tokio has no `recvmsg` for TCP, so this waits for readiness and calls it.
async fn read_stamped(s: &TcpStream, buf: &mut [u8]) -> std::io::Result<(usize, Option<u64>)> {
    use std::os::fd::AsRawFd;
    loop {
        s.readable().await?;
        match s.try_io(tokio::io::Interest::READABLE, || {
            recv_stamped(s.as_raw_fd(), buf)
        }) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

fn recv_stamped(fd: libc::c_int, buf: &mut [u8]) -> std::io::Result<(usize, Option<u64>)> {
    // Room for one cmsghdr and a timespec, u64-aligned as cmsg data must be.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is a plain C struct for which all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov` (which covers `buf`, exclusively borrowed) and at `control`,
    // all alive for the call; the kernel writes at most the lengths given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut at = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel just filled, bounded by
    // `msg_controllen` as it set it; a timespec is read (unaligned-safe) only from a message of
    // the matching level, type and length.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let h = &*c;
            if h.cmsg_level == libc::SOL_SOCKET
                && h.cmsg_type == libc::SO_TIMESTAMPNS
                && h.cmsg_len as usize
                    >= libc::CMSG_LEN(std::mem::size_of::<libc::timespec>() as u32) as usize
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                at = Some(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, at))
}

/// A chunked response body decoded with the server's own framing parser: data spans are handed
/// to the caller as they are, framing bytes (a few per chunk) are gathered aside.
#[derive(Default)]
struct Dechunk {
    body: Option<RequestBody>,
    framing: Vec<u8>,
}

impl Dechunk {
    /// Feeds one read; calls `data` for each span of body bytes. True once the last chunk came.
    fn feed(&mut self, mut input: &[u8], mut data: impl FnMut(&[u8])) -> Result<bool> {
        let body = self.body.get_or_insert_with(RequestBody::chunked);
        while !input.is_empty() {
            match body.want() {
                Want::Data(m) => {
                    let k = usize::try_from(m).unwrap_or(usize::MAX).min(input.len());
                    data(&input[..k]);
                    body.data(k);
                    input = &input[k..];
                }
                Want::Framing => {
                    self.framing.push(input[0]);
                    input = &input[1..];
                    let used = body.framing(&self.framing)?;
                    self.framing.drain(..used);
                }
                Want::Done => return Ok(true),
            }
        }
        Ok(body.want() == Want::Done)
    }
}

/// What a TS viewer checks packet by packet.
struct TsCheck {
    /// The last continuity counter per PID.
    cc: Vec<(u16, u8)>,
    /// Looks for the first keyframe; dropped once found.
    splitter: Option<Splitter>,
    cuts: Vec<Cut>,
    /// When the request was sent.
    start: Instant,
}

impl TsCheck {
    fn packet(&mut self, p: &[u8; PACKET], st: &ViewerStats, sh: &Shared, arrival: Option<u64>) {
        let Self {
            cc,
            splitter,
            cuts,
            start,
        } = self;
        let start = *start;
        let Some(h) = media::ts::header(p) else {
            st.gaps.fetch_add(1, Relaxed);
            return;
        };
        if h.has_payload {
            match cc.iter_mut().find(|(pid, _)| *pid == h.pid) {
                Some((_, last)) => {
                    if h.cc != (*last + 1) & 0x0f {
                        st.gaps.fetch_add(1, Relaxed);
                        if !GAP_REPORTED.swap(true, Relaxed) {
                            eprintln!(
                                "first gap: pid {:#x} cc {} after {} at {:?}",
                                h.pid,
                                h.cc,
                                last,
                                start.elapsed()
                            );
                        }
                    }
                    *last = h.cc;
                }
                None => cc.push((h.pid, h.cc)),
            }
        }
        if h.pid == MARK_PID && &p[4..10] == MARK_MAGIC {
            let mut t = [0u8; 8];
            t.copy_from_slice(&p[10..18]);
            let sent = u64::from_be_bytes(t);
            let us = |t: u64| t.saturating_sub(sent).min(u64::from(u32::MAX)) as u32;
            sh.latencies_us.lock().unwrap().push(us(now_us()));
            if let Some(a) = arrival {
                sh.arrivals_us.lock().unwrap().push(us(a));
            }
        }
        if let Some(sp) = splitter {
            cuts.clear();
            if sp.feed(p, cuts).is_ok() && cuts.iter().any(|c| matches!(c, Cut::Keyframe { .. })) {
                st.first_keyframe_us
                    .store(start.elapsed().as_micros().max(1) as u64, Relaxed);
                *splitter = None;
            }
        }
    }
}

/// Publishes `data` (MPEG-TS) in a loop, paced in real time, each chunk followed by a mark,
/// until told to stop; counts the body bytes written.
async fn publish(
    addr: SocketAddr,
    stream: &str,
    key: Option<&str>,
    data: &[u8],
    sh: Arc<Shared>,
    written: &AtomicU64,
) -> Result<()> {
    let data = &data[..data.len() / PACKET * PACKET];
    let plan = client::live::schedule(data);
    if plan.is_empty() {
        bail!("no timestamps to pace the file by");
    }
    let total = plan.last().map_or(0, |p| p.1) + 3600;
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let q = key.map(|k| format!("?key={k}")).unwrap_or_default();
    s.write_all(
        format!("POST /live/{stream}{q} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let began = Instant::now();
    let mut restamp = media::ts::Restamp::default();
    let mut mark_cc = 0u8;
    let mut chunk = Vec::new();
    'laps: for lap in 0u64.. {
        let mut copy = data.to_vec();
        if lap > 0 {
            restamp.new_session();
        }
        restamp.apply(&mut copy);
        let (mut i, mut sent) = (0, 0);
        while sent < copy.len() {
            let due = lap * total + plan.get(i).map_or(total, |p| p.1);
            let due = began + Duration::from_micros(due * 100 / 9);
            tokio::time::sleep_until(due).await;
            let horizon = plan.get(i).map_or(u64::MAX, |p| p.1 + 1800);
            while i < plan.len() && plan[i].1 <= horizon {
                i += 1;
            }
            let end = plan.get(i).map_or(copy.len(), |p| p.0);
            if sh.stop.load(Relaxed) {
                break 'laps;
            }
            if end <= sent {
                continue;
            }
            chunk.clear();
            chunk.extend_from_slice(&copy[sent..end]);
            // The mark: PID 0x1FF0, payload only, the time it is written.
            let now = now_us();
            let mut m = [0xffu8; PACKET];
            m[..4].copy_from_slice(&[0x47, (MARK_PID >> 8) as u8, MARK_PID as u8, 0x10 | mark_cc]);
            m[4..10].copy_from_slice(MARK_MAGIC);
            m[10..18].copy_from_slice(&now.to_be_bytes());
            mark_cc = (mark_cc + 1) & 0x0f;
            chunk.extend_from_slice(&m);
            s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            s.write_all(&chunk).await?;
            s.write_all(b"\r\n").await?;
            written.fetch_add(chunk.len() as u64, Relaxed);
            sent = end;
        }
    }
    Ok(())
}
