//! The command line: clap's `Cli`, its subcommands (`Command`), the `serve` flags (`ServeArgs`)
//! and the value enums they use.

use crate::size;
use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "zerocast",
    version,
    about = "A zero-copy video streaming server"
)]
pub struct Cli {
    /// Log format: human-readable or one JSON object per line.
    #[arg(long, value_enum, global = true)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`, and `log_format` in the config file.
#[derive(Clone, Copy, Debug, ValueEnum, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve a video library over HTTP (the embedded demo library without --library).
    Serve(ServeArgs),
    /// Fetch a chunk of a video: from a byte offset, or the start of the clip from the keyframe at
    /// a timecode (a file players open: MP4, fragmented MP4 and MPEG-TS titles).
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
        #[arg(long, default_value = "20MiB", value_parser = size::parse_some)]
        size: u64,
        /// Write here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Save the part of a video between two times as a file of its container that players open
    /// (from the keyframe at or before --start to the keyframe at or after --end).
    Clip {
        /// http://HOST:PORT/videos/ID
        url: String,
        /// Where the clip starts (01:09:14:28, 4154.93, 1h9m14s); the beginning without it.
        #[arg(long)]
        start: Option<String>,
        /// Where it ends; the end of the video without it.
        #[arg(long)]
        end: Option<String>,
        /// Write here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Print the byte offset where the keyframe at or before TIMECODE starts.
    Seek {
        /// http://HOST:PORT/videos/ID
        url: String,
        /// A timecode (01:09:14:28), seconds, or for a recording a wall-clock time
        /// (2026-11-26T14:15:00Z).
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
        /// Send the file again and again (as one continuous stream) until interrupted, connecting
        /// again after a network drop.
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
        #[arg(long, value_parser = seconds)]
        duration: Option<f64>,
    },
}

#[derive(clap::Args, Debug, Default, Clone)]
pub struct ServeArgs {
    /// Directory of videos, scanned recursively, or `s3://bucket/prefix` (repeatable: one
    /// directory and any number of buckets; default: the embedded demo library).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub library: Vec<String>,
    /// Address for plain HTTP, or `off` (HTTPS only) [default: 0.0.0.0:8080].
    #[arg(long, value_name = "ADDR|off")]
    pub listen: Option<String>,
    /// An HTTPS listener (repeatable); needs --tls-cert and --tls-key.
    #[arg(long = "tls-listen", value_name = "ADDR")]
    pub tls_listen: Vec<SocketAddr>,
    /// The certificate chain for HTTPS and RTMPS (PEM, leaf first); reloaded on SIGHUP and when
    /// the file changes.
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// Rescan the library when its files change (inotify); without it, on SIGHUP only.
    #[arg(long)]
    pub watch: bool,
    /// An RTMPS listener (rtmps://HOST:PORT/live/NAME), with the same certificate [default: off].
    #[arg(long, value_name = "ADDR")]
    pub rtmps_listen: Option<SocketAddr>,
    /// Memory for titles (e.g. 8GiB) [default: half the RAM]; titles beyond it are mapped from disk.
    #[arg(long, value_parser = size::parse)]
    pub cache_size: Option<u64>,
    /// TOML file with the same settings; flags win over it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where RTMP publishers connect (rtmp://HOST/live/NAME?key=K), or `off` [default: 0.0.0.0:1935].
    #[arg(long, value_name = "ADDR|off")]
    pub rtmp_listen: Option<String>,
    /// A live publish key: NAME=SECRET for one stream, or SECRET for any stream (repeatable).
    /// Without any key, only publishers on this machine (loopback) may publish.
    #[arg(long = "publish-key", value_name = "[NAME=]SECRET")]
    pub publish_keys: Vec<String>,
    /// Be a live edge: a stream asked for here and not published here is pulled from this
    /// origin (http[s]://HOST:PORT; repeatable, tried in order) while anyone watches.
    #[arg(long = "origin", value_name = "URL")]
    pub origins: Vec<String>,
}

/// A number of seconds a command can wait: finite, not negative, at most a year.
fn seconds(s: &str) -> Result<f64, String> {
    const YEAR: f64 = 365.0 * 86_400.0;
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=YEAR).contains(&v) => Ok(v),
        Ok(_) => Err(format!("'{s}' is not a number of seconds from 0 to {YEAR}")),
        Err(e) => Err(format!("'{s}': {e}")),
    }
}
