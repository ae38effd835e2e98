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
//!
//! This file holds the arguments and the run (publishers, viewers, the measurement window); the
//! rest is in modules: [`ts`], [`flv`], [`mp4`], [`llhls`] and [`rtmp`] (one viewer per protocol), [`http`] (what the
//! HTTP viewers share), [`publish`] (the publisher and its marks), [`report`] (counters and the
//! JSON report), [`procfs`] (CPU and RSS from /proc) and [`stamp`] (`SO_TIMESTAMPNS`).

mod flv;
mod http;
mod llhls;
mod mp4;
mod procfs;
mod publish;
mod report;
mod rtmp;
mod stamp;
mod ts;

use anyhow::{bail, Context, Result};
use clap::Parser;
use report::{Sample, Shared, ViewerStats, Window};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Only the first viewer failure is described on stderr.
static REPORTED: AtomicBool = AtomicBool::new(false);

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
    /// Publish to this server instead of `--server` (http://HOST:PORT): an origin, with the
    /// viewers on one of its edges.
    #[arg(long)]
    publish_to: Option<String>,
    /// The server's PID, for its CPU time and RSS.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// What viewers watch: `ts` (GET /live/NAME.ts), `flv` (GET /live/NAME.flv), `mp4` (GET
    /// /live/NAME.mp4), `llhls` (LL-HLS: blocking reloads and hinted parts of
    /// /live/NAME/ll.m3u8) or `rtmp` (play rtmp://RTMP/live/NAME). FLV, MP4, LL-HLS and RTMP
    /// viewers check structure, not continuity counters.
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
    let publish_addr = match &args.publish_to {
        Some(p) => authority(p)?,
        None => addr,
    };
    let shared = Arc::new(Shared::default());
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
                if let Err(e) =
                    publish::publish(publish_addr, &name, key.as_deref(), &data, sh, &counter).await
                {
                    eprintln!("publisher {name}: {e:#}");
                }
            });
        }
        // Wait for a keyframe in every ring.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let docs = http::api_all(publish_addr).await.unwrap_or_default();
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
                "flv" => flv::viewer(addr, bind, &stream, rs, &st, &sh).await,
                "mp4" => mp4::viewer(addr, bind, &stream, rs, &st, &sh).await,
                "llhls" => llhls::viewer(addr, bind, &stream, rs, &st, &sh).await,
                "rtmp" => rtmp::viewer(rtmp, bind, &stream, rs, &st, &sh).await,
                _ => ts::viewer(addr, bind, &stream, rs, &st, &sh).await,
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
    let before = Sample::take(addr, &streams, &args.server_pid, &stats).await;
    shared.latencies_us.lock().unwrap().clear();
    shared.waiting_us.lock().unwrap().clear();
    shared.arrivals_us.lock().unwrap().clear();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let wall = t0.elapsed().as_secs_f64();
    let rss = procfs::procs_rss(&args.server_pid);
    let after = Sample::take(addr, &streams, &args.server_pid, &stats).await;
    shared.stop.store(true, Relaxed);
    // Publishers stop at their next chunk; then every byte sent must have been counted.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (ingest_sent, ingest_lost) = report::ingest(publish_addr, &streams, &sent).await;
    let report = report::json(Window {
        viewers: args.viewers,
        connected_in: ramp,
        wall,
        before: &before,
        after: &after,
        rss,
        stats: &stats,
        latencies_us: std::mem::take(&mut *shared.latencies_us.lock().unwrap()),
        waiting_us: std::mem::take(&mut *shared.waiting_us.lock().unwrap()),
        arrivals_us: std::mem::take(&mut *shared.arrivals_us.lock().unwrap()),
        publishers: sent.len(),
        ingest_sent,
        ingest_lost,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    for t in tasks {
        t.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_takes_http_ip_port() {
        let want: SocketAddr = "127.0.0.1:18080".parse().unwrap();
        assert_eq!(authority("http://127.0.0.1:18080").unwrap(), want);
        assert_eq!(authority("http://127.0.0.1:18080/").unwrap(), want);
        assert!(authority("http://localhost:18080").is_err());
    }

    /// The flags bench/live.sh and bench/rtmp-vs-nginx.sh pass.
    #[test]
    fn the_bench_scripts_command_lines_parse() {
        let parse = |line: &str| Args::try_parse_from(line.split_whitespace());
        let a = parse(
            "zerocast-load --server http://127.0.0.1:8080 --stream fan --publish live4m.ts \
             --viewers 2000 --ramp 1000 --duration 20 --server-pid 123 --read-size 4096 \
             --bind 127.0.0.2,127.0.0.3 --publishers 4",
        )
        .unwrap();
        assert_eq!(a.bind.len(), 2);
        let counts = (a.viewers, a.ramp, a.read_size, a.publishers);
        assert_eq!(counts, (2000, 1000, 4096, 4));
        assert_eq!(a.output, "ts");
        let a = parse(
            "zerocast-load --server http://127.0.0.1:8080 --rtmp 127.0.0.1:1936 --stream bench \
             --output rtmp --viewers 500 --ramp 500 --duration 20 --server-pid 1,2,3 \
             --bind 127.0.0.2,127.0.0.3",
        )
        .unwrap();
        assert_eq!(a.server_pid, [1, 2, 3]);
        assert_eq!(a.rtmp, "127.0.0.1:1936".parse::<SocketAddr>().unwrap());
        assert!(parse("zerocast-load").is_err(), "--stream is required");
    }
}
