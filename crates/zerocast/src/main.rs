//! `zerocast`: serve a video library; fetch chunks, seek by timecode and index files from the shell.
//!
//! Exit codes: 0 success, 1 failure (server down, unknown id, bad timecode, I/O), 2 bad usage.

mod demo;
mod size;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use server::{Config, Library, LoadEvent, Server};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Parser, Debug)]
#[command(
    name = "zerocast",
    version,
    about = "A zero-copy video streaming server"
)]
struct Cli {
    /// Log format: human-readable or one JSON object per line.
    #[arg(long, value_enum, global = true)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve a video library over HTTP (the embedded demo library without --library).
    Serve(ServeArgs),
    /// Fetch a chunk of a video: from a byte offset or from the keyframe at a timecode.
    Get {
        /// http://HOST:PORT/videos/ID
        url: String,
        /// Start at the keyframe at or before this time (01:09:14:28, 01:09:14;28, 4154.93, 1h9m14s).
        #[arg(long, conflicts_with = "offset")]
        at: Option<String>,
        /// Start at this byte offset.
        #[arg(long)]
        offset: Option<u64>,
        /// How many bytes (20MiB, 1GB, 1048576).
        #[arg(long, default_value = "20MiB", value_parser = size::parse)]
        size: u64,
        /// Write here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Print the byte offset where the keyframe at or before TIMECODE starts.
    Seek {
        /// http://HOST:PORT/videos/ID
        url: String,
        timecode: String,
        /// Print the server's whole JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Index a local file (no server): print its keyframe table, or one offset with --at.
    Index {
        file: PathBuf,
        #[arg(long)]
        at: Option<String>,
    },
    /// Publish an MPEG-TS or MP4 file to a live stream, paced in real time from its timestamps.
    Publish {
        /// An MPEG-TS file, or an MP4 (H.264/H.265 + AAC, remuxed to MPEG-TS in memory).
        file: PathBuf,
        /// http://HOST:PORT/live/NAME
        url: String,
        /// The stream key (or ?key= in the URL).
        #[arg(long)]
        key: Option<String>,
        /// Send the file again and again (as one continuous stream) until interrupted.
        #[arg(long = "loop")]
        looped: bool,
    },
    /// Watch a live stream: print its bitrate and keyframe arrivals, optionally save it.
    Watch {
        /// http://HOST:PORT/live/NAME.ts
        url: String,
        /// Write the stream here.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
    },
}

#[derive(clap::Args, Debug, Default)]
struct ServeArgs {
    /// Directory of videos, scanned recursively (default: the embedded demo library).
    #[arg(long)]
    library: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Memory for titles (e.g. 8GiB) [default: half the RAM]; titles beyond it are mapped from disk.
    #[arg(long, value_parser = size::parse)]
    cache_size: Option<u64>,
    /// TOML file with the same settings; flags win over it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where RTMP publishers connect (rtmp://HOST/live/NAME?key=K), or `off` [default: 0.0.0.0:1935].
    #[arg(long, value_name = "ADDR|off")]
    rtmp_listen: Option<String>,
    /// A live publish key: NAME=SECRET for one stream, or SECRET for any stream (repeatable).
    /// Without any key, only publishers on this machine (loopback) may publish.
    #[arg(long = "publish-key", value_name = "[NAME=]SECRET")]
    publish_keys: Vec<String>,
}

/// The config file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    library: Option<PathBuf>,
    listen: Option<SocketAddr>,
    cache_size: Option<String>,
    log_format: Option<LogFormat>,
    header_read_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    max_ranges: Option<usize>,
    sendfile_min: Option<String>,
    /// "0.0.0.0:1935", or "off".
    rtmp_listen: Option<String>,
    /// Worker threads (default: one per core; 0: tokio's work-stealing runtime instead).
    workers: Option<usize>,
    /// Accept queue length asked of the kernel (capped by net.core.somaxconn).
    listen_backlog: Option<u32>,
    #[serde(default)]
    live: LiveFile,
}

/// The `[live]` table of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LiveFile {
    /// A key that may publish any stream.
    publish_key: Option<String>,
    /// Per-stream keys: `[live.keys] show = "secret"`.
    #[serde(default)]
    keys: std::collections::HashMap<String, String>,
    /// Seconds a dropped publisher has to come back.
    grace_secs: Option<u64>,
    /// Seconds of stream kept for viewers that lag (the current GOP always).
    window_secs: Option<u64>,
    /// Most bytes kept per stream (e.g. "64MiB").
    window_size: Option<String>,
    hls_segment_secs: Option<f64>,
    hls_window: Option<usize>,
    /// Bits per second above which a publisher is slowed down.
    max_ingest_bitrate: Option<u64>,
    viewer_max_skips: Option<usize>,
    viewer_skip_period_secs: Option<u64>,
    viewer_stall_timeout_secs: Option<u64>,
}

fn main() {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            // A closed pipe (`zerocast get ... | head`) is not a failure.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                0
            } else {
                eprintln!("error: {e:#}");
                1
            }
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => {
            let file = match &args.config {
                Some(p) => {
                    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                    toml::from_str(&text).with_context(|| format!("config file {}", p.display()))?
                }
                None => FileConfig::default(),
            };
            init_logging(cli.log_format.or(file.log_format).unwrap_or(LogFormat::Human));
            rt.block_on(serve(args, file))
        }
        Command::Get { url, at, offset, size, output } => {
            rt.block_on(get(&url, at.as_deref(), offset, size, output.as_deref()))
        }
        Command::Seek { url, timecode, json } => rt.block_on(async {
            let s = client::timecode_to_index(&url, &timecode).await?;
            if json {
                println!(
                    "{{\"offset\":{},\"keyframe_seconds\":{},\"keyframe_timecode\":{:?},\"requested_seconds\":{},\"frame_rate\":{:?}}}",
                    s.offset, s.keyframe.seconds, s.keyframe.timecode, s.requested.seconds, s.frame_rate
                );
            } else {
                println!(
                    "{}\tkeyframe {} ({:.3} s) for {} ({:.3} s)",
                    s.offset,
                    s.keyframe.timecode.as_deref().unwrap_or("-"),
                    s.keyframe.seconds,
                    timecode,
                    s.requested.seconds
                );
            }
            Ok(())
        }),
        Command::Index { file, at } => index(&file, at.as_deref()),
        Command::Publish { file, url, key, looped } => {
            let data = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            // MP4 is remuxed to MPEG-TS in memory first (H.264/H.265 + AAC).
            let data = match media::index::detect(&data) {
                media::Container::Mp4 => media::ts::mux::from_mp4(&data)
                    .with_context(|| format!("remuxing {} to MPEG-TS", file.display()))?,
                _ => data,
            };
            rt.block_on(async {
                let publishing = client::live::publish(&url, key.as_deref(), data.into(), looped, |p| {
                    eprint!(
                        "\rpublished {:.1} MB in {:.0} s ({:.2} Mbit/s), loop {}   ",
                        p.bytes as f64 / 1e6,
                        p.elapsed.as_secs_f64(),
                        p.bytes as f64 * 8.0 / p.elapsed.as_secs_f64().max(0.001) / 1e6,
                        p.loops + 1
                    );
                });
                let done = tokio::select! {
                    r = publishing => r?,
                    () = shutdown_signal() => {
                        eprintln!();
                        return Ok(());
                    }
                };
                eprintln!(
                    "\rpublished {} bytes in {:.1} s ({} pass{})",
                    done.bytes,
                    done.elapsed.as_secs_f64(),
                    done.loops,
                    if done.loops == 1 { "" } else { "es" }
                );
                Ok(())
            })
        }
        Command::Watch { url, output, duration } => rt.block_on(watch(&url, output.as_deref(), duration)),
    }
}

async fn watch(url: &str, output: Option<&Path>, duration: Option<f64>) -> Result<()> {
    let mut file = match output {
        Some(p) => Some(
            tokio::fs::File::create(p)
                .await
                .with_context(|| format!("creating {}", p.display()))?,
        ),
        None => None,
    };
    let duration = duration.map(Duration::from_secs_f64);
    let events = |e: client::live::WatchEvent<'_>| match e {
        client::live::WatchEvent::Keyframe(at) => println!("{:8.3} s  keyframe", at.as_secs_f64()),
        client::live::WatchEvent::Progress(w) => println!(
            "{:8.3} s  {:.2} Mbit/s, {} bytes, {} keyframes",
            w.elapsed.as_secs_f64(),
            w.bitrate / 1e6,
            w.bytes,
            w.keyframes
        ),
    };
    let watching = client::live::watch(url, file.as_mut(), duration, events);
    let seen = tokio::select! {
        r = watching => r?,
        () = shutdown_signal() => return Ok(()),
    };
    println!(
        "{} bytes, {} keyframes in {:.1} s; first keyframe after {}; {}",
        seen.bytes,
        seen.keyframes,
        seen.elapsed.as_secs_f64(),
        seen.first_keyframe.map_or("-".into(), |d| format!(
            "{:.0} ms",
            d.as_secs_f64() * 1000.0
        )),
        if seen.ended {
            "the stream ended"
        } else {
            "stopped"
        }
    );
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

async fn serve(args: ServeArgs, file: FileConfig) -> Result<()> {
    let mut config = Config::default();
    if let Some(l) = args.listen.or(file.listen) {
        config.listen = l;
    }
    if let Some(s) = file.header_read_timeout_secs {
        config.header_read_timeout = Duration::from_secs(s.max(1));
    }
    if file.workers.is_some() {
        config.workers = file.workers;
    }
    if let Some(b) = file.listen_backlog {
        config.listen_backlog = b;
    }
    if let Some(s) = file.shutdown_grace_secs {
        config.shutdown_grace = Duration::from_secs(s);
    }
    if let Some(m) = file.max_ranges {
        config.policy.max_ranges = m.max(1);
    }
    if let Some(s) = &file.sendfile_min {
        config.policy.sendfile_min = size::parse(s)
            .map_err(anyhow::Error::msg)
            .context("sendfile_min in the config file")?;
    }
    apply_live(&mut config.live, &file.live, &args.publish_keys)?;
    if let Some(r) = args.rtmp_listen.as_ref().or(file.rtmp_listen.as_ref()) {
        config.rtmp_listen = match r.as_str() {
            "off" | "none" => None,
            a => Some(
                a.parse()
                    .with_context(|| format!("rtmp_listen '{a}': expected HOST:PORT or off"))?,
            ),
        };
    }
    let budget = match (args.cache_size, &file.cache_size) {
        (Some(s), _) => s,
        (None, Some(s)) => size::parse(s)
            .map_err(anyhow::Error::msg)
            .context("cache_size in the config file")?,
        (None, None) => server::default_cache_budget(),
    };
    let library = match args.library.or(file.library) {
        Some(dir) => {
            let dir2 = dir.clone();
            tokio::task::spawn_blocking(move || load_library(&dir2, budget))
                .await?
                .with_context(|| format!("loading the library {}", dir.display()))?
        }
        None => {
            tracing::info!("no --library given: serving the embedded demo library");
            let lib = Library::from_static(demo::FILES, SystemTime::now());
            for t in lib.titles() {
                report(&LoadEvent::Loaded {
                    title: t,
                    bytes: t.data.len() as u64,
                    read: Duration::ZERO,
                    indexed: Duration::ZERO,
                });
            }
            lib
        }
    };
    let server = Server::bind(config, library).await?;
    tracing::info!(addr = %server.local_addr(), "listening; open http://{}/ in a browser", server.local_addr());
    if let Some(a) = server.rtmp_addr() {
        tracing::info!(addr = %a, "RTMP ingest: rtmp://{a}/live/NAME");
    }
    server.run(shutdown_signal()).await;
    Ok(())
}

fn apply_live(c: &mut server::live::LiveConfig, f: &LiveFile, flags: &[String]) -> Result<()> {
    c.global_key.clone_from(&f.publish_key);
    c.keys.clone_from(&f.keys);
    for k in flags {
        match k.split_once('=') {
            Some((name, secret)) => {
                if !server::live::valid_name(name) || secret.is_empty() {
                    bail!("--publish-key {k}: expected NAME=SECRET with a valid stream name");
                }
                c.keys.insert(name.to_string(), secret.to_string());
            }
            None if !k.is_empty() => c.global_key = Some(k.clone()),
            None => bail!("--publish-key: empty key"),
        }
    }
    if let Some(s) = f.grace_secs {
        c.grace = Duration::from_secs(s);
    }
    if let Some(s) = f.window_secs {
        c.ring.max_age = Duration::from_secs(s.max(1));
    }
    if let Some(s) = &f.window_size {
        c.ring.max_bytes = size::parse(s)
            .map_err(anyhow::Error::msg)
            .context("live.window_size")? as usize;
    }
    if let Some(s) = f.hls_segment_secs {
        c.hls.min_segment = Duration::from_secs_f64(s.clamp(0.1, 60.0));
    }
    if let Some(n) = f.hls_window {
        c.hls.window = n.max(2);
    }
    if let Some(b) = f.max_ingest_bitrate {
        c.max_ingest_bitrate = b.max(100_000);
    }
    if let Some(n) = f.viewer_max_skips {
        c.viewer.max_skips = n;
    }
    if let Some(s) = f.viewer_skip_period_secs {
        c.viewer.skip_period = Duration::from_secs(s);
    }
    if let Some(s) = f.viewer_stall_timeout_secs {
        c.stall_timeout = Duration::from_secs(s.max(1));
    }
    if c.keys.is_empty() && c.global_key.is_none() {
        tracing::info!(
            "no publish key configured: only loopback publishers may publish (see --publish-key)"
        );
    }
    Ok(())
}

fn load_library(dir: &Path, budget: u64) -> Result<Library> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} loading [{bar:40}] {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let started = std::time::Instant::now();
    let (mut read_time, mut index_time) = (Duration::ZERO, Duration::ZERO);
    let lib = Library::load(dir, budget, |ev| match (&bar, &ev) {
        (_, LoadEvent::Loaded { read, indexed, .. }) if bar.is_none() => {
            read_time += *read;
            index_time += *indexed;
            report(&ev)
        }
        (Some(b), LoadEvent::Found { bytes, .. }) => b.set_length(*bytes),
        (
            Some(b),
            LoadEvent::Loaded {
                title,
                bytes,
                read,
                indexed,
            },
        ) => {
            read_time += *read;
            index_time += *indexed;
            b.inc(*bytes);
            b.set_message(title.id.clone());
            if let Err(e) = &title.index {
                b.suspend(|| tracing::warn!(id = %title.id, reason = %e, "cannot index; served as plain bytes without seek"));
            }
        }
        _ => report(&ev),
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let bytes: u64 = lib.titles().map(|t| t.data.len() as u64).sum();
    let cached: u64 = lib
        .titles()
        .filter(|t| t.cached)
        .map(|t| t.data.len() as u64)
        .sum();
    tracing::info!(
        titles = lib.len(),
        bytes,
        cached_bytes = cached,
        mapped_bytes = bytes - cached,
        index_bytes = lib.titles().map(|t| t.index_bytes()).sum::<usize>(),
        seconds = started.elapsed().as_secs_f64(),
        read_seconds = read_time.as_secs_f64(),
        index_seconds = index_time.as_secs_f64(),
        "library loaded"
    );
    Ok(lib)
}

fn report(ev: &LoadEvent<'_>) {
    match ev {
        LoadEvent::Found { files, bytes } => tracing::info!(files, bytes, "scanning library"),
        LoadEvent::Loaded { title, bytes, .. } => match &title.index {
            Ok(i) => tracing::info!(
                id = %title.id, bytes, container = title.container.name(), cached = title.cached,
                keyframes = i.keyframes.len(), duration = i.duration.as_secs_f64(), "loaded"
            ),
            Err(e) => {
                tracing::warn!(id = %title.id, bytes, reason = %e, "cannot index; served as plain bytes without seek")
            }
        },
        LoadEvent::Skipped { path, reason } => {
            tracing::warn!(path = %path.display(), %reason, "skipped")
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("signal received");
}

async fn get(
    url: &str,
    at: Option<&str>,
    offset: Option<u64>,
    size: u64,
    output: Option<&Path>,
) -> Result<()> {
    let offset = match (at, offset) {
        (Some(tc), _) => {
            let s = client::timecode_to_index(url, tc).await?;
            eprintln!(
                "{tc}: keyframe {} ({:.3} s) at byte {}",
                s.keyframe.timecode.as_deref().unwrap_or("-"),
                s.keyframe.seconds,
                s.offset
            );
            s.offset
        }
        (None, Some(o)) => o,
        (None, None) => 0,
    };
    let n = match output {
        Some(p) => {
            let mut f = tokio::fs::File::create(p)
                .await
                .with_context(|| format!("creating {}", p.display()))?;
            client::request_chunk(url, offset, size, &mut f).await?
        }
        None => {
            let mut out = tokio::io::stdout();
            client::request_chunk(url, offset, size, &mut out).await?
        }
    };
    eprintln!("{n} bytes from offset {offset}");
    Ok(())
}

fn index(path: &Path, at: Option<&str>) -> Result<()> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let info = media::index(&data).with_context(|| format!("indexing {}", path.display()))?;
    let rate = info.frame_rate();
    if let Some(tc) = at {
        let t = media::timecode::parse(tc, rate)?;
        let p = info.seek(t)?;
        println!(
            "{}\tkeyframe {} ({:.3} s) for {tc}",
            p.keyframe.offset,
            rate.map(|r| media::timecode::format(p.keyframe.time, r))
                .unwrap_or_default(),
            p.keyframe.time.as_secs_f64()
        );
        return Ok(());
    }
    let v = info.video.as_ref();
    println!(
        "# {} {} {}x{} {} fps, duration {:.3} s, {} keyframes",
        info.container.name(),
        v.map_or("-", |v| v.codec.as_str()),
        v.and_then(|v| v.width).unwrap_or(0),
        v.and_then(|v| v.height).unwrap_or(0),
        rate.map_or("-".into(), |r| r.to_string()),
        info.duration.as_secs_f64(),
        info.keyframes.len()
    );
    if info.keyframes.is_empty() && info.video.is_none() {
        bail!("{} has no video track to index", path.display());
    }
    println!("# index\tseconds\ttimecode\toffset");
    for (i, k) in info.keyframes.iter().enumerate() {
        println!(
            "{i}\t{:.6}\t{}\t{}",
            k.time.as_secs_f64(),
            rate.map(|r| media::timecode::format(k.time, r))
                .unwrap_or_default(),
            k.offset
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example config file in the README is one the server accepts, key for key (the file
    /// format refuses unknown keys), so the documentation cannot drift from the code.
    #[test]
    fn readme_config_example_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("```toml\n")
            .expect("a toml block in the README")
            + 8;
        let len = readme[start..].find("```").expect("its end");
        let file: FileConfig = toml::from_str(&readme[start..start + len]).expect("parses");
        assert_eq!(file.workers, Some(4));
        assert!(file.live.keys.contains_key("show"));
        let mut config = server::Config::default();
        apply_live(&mut config.live, &file.live, &[]).expect("live settings apply");
    }
}
