//! Live streams: the async shell around the `live` crate, which does the work without I/O.
//!
//! ```text
//!  PUT/POST /live/{name}  ingest.rs --read into slab--> Publish (publish.rs)
//!  rtmp://…/live/{name}   rtmp_conn --FLV tag bodies-->   Ingest::prepare/commit, MediaOutputs
//!                                                         (write lock, brief) → wake viewers
//!  GET /live/{name}.ts|.flv, RTMP play   follow.rs <--one writev per batch-- Viewer::step
//!  GET /live/{name}/index.m3u8, /{tag}/{seq}.ts  (http/hls.rs)  Segmenter (same Bytes)
//!  /api/streams, /metrics                  api.rs
//! ```
//! - `registry.rs`: the streams, publish keys, the one-publisher rule, and the shell around
//!   `live::Lifecycle` (grace and linger deadlines become timer tasks on the live clock).
//! - `publish.rs`: a publisher's hold on a stream; TS packets and FLV tags go in here.
//! - `ingest.rs`: the HTTP ingest read loop. (The RTMP shell is `crate::rtmp_conn`.)
//! - `follow.rs`: the viewer loop of every output.
//! - `dvr.rs`, `rewind.rs`: where a `?t=` viewer starts (ring or recording); an `.flv` one that
//!   starts before its ring converts TS on its own until the FLV ring takes over.
//! - `memory.rs`: what each stream holds, summed against the server-wide budget.
//! - `stats.rs`: a stream's counters; `api.rs`: the JSON documents and the Prometheus families;
//!   `delivery.rs`: how soon a frame reaches the LL-HLS part requests waiting for it.
//! - `clock.rs`: the live clock's wall-clock side (NTP timestamps of `prft` boxes, and back).
//!
//! Every viewer of a stream waits on the stream's `watch` channel (one per stream and output
//! family, not one per viewer, not a broadcast of data): the channel carries no data, only
//! "something new"; each viewer then takes what is new since its own cursor from the ring.
//! One clock: [`Live::now`], the time since the registry was made, is what the ring, the
//! segmenter and the lifecycle are given.

pub mod api;
mod clock;
pub(crate) mod delivery;
pub(crate) mod dvr;
pub mod fanout;
pub(crate) mod follow;
pub(crate) mod frames;
pub(crate) mod ingest;
mod instance;
mod keys;
pub(crate) mod llhls;
pub mod memory;
mod publish;
mod registry;
pub(crate) mod rewind;
mod stats;

pub(crate) use follow::watch_http;
pub use keys::presented_key;
pub(crate) use keys::{query_key, same_key};
pub use llhls::Held;
pub use publish::Publish;
pub(crate) use registry::NewStream;
pub use registry::{valid_name, Inner, Live, Stream};
pub use stats::Stats;

pub use fanout::FanoutConfig;
/// Segments kept beyond a playlist's window by default (RFC 8216 §6.2.2's retention).
pub use live::hls::SPARE_BEYOND_WINDOW;
pub use live::Budget;
use live::{HlsLimits, Limits, LlLimits, ViewerPolicy};
use std::collections::HashMap;
use std::time::Duration;

/// What a rendered LL-HLS playlist is valid for: the `LlHls::version`, and the recording's
/// checkpoints (how many, the oldest) and the floor its DVR window was listed with.
pub(crate) type PlaylistKey = (u64, (usize, u64, u64));

/// What a rendered TS HLS playlist is valid for: the `Segmenter::version`, the recording's
/// checkpoints (how many, the oldest) and the floor.
pub(crate) type TsPlaylistKey = (u64, (usize, u64), u64);

/// Live settings.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub ring: Limits,
    pub viewer: ViewerPolicy,
    pub hls: HlsLimits,
    /// Low-latency HLS: part target, segment length, window.
    pub ll_hls: LlLimits,
    /// A publisher whose connection drops may come back within this time and continue.
    pub grace: Duration,
    /// Per-stream publish keys.
    pub keys: HashMap<String, String>,
    /// A key that may publish any stream without a key of its own.
    pub global_key: Option<String>,
    /// Receive slab size, and the least free space offered to each read.
    pub slab_size: usize,
    pub slab_min_read: usize,
    /// Ingest above this rate (bits/s, averaged with a 2 s burst) is slowed by not reading.
    pub max_ingest_bitrate: u64,
    /// A publisher that sends nothing for this long is treated as gone.
    pub publisher_timeout: Duration,
    /// A viewer whose socket takes nothing for this long is disconnected.
    pub stall_timeout: Duration,
    /// A live segment, part or init segment (HLS, LL-HLS, DASH) must be sent whole within this
    /// of its request, or its connection is reset: it holds the `Bytes` of a segment the stream
    /// may have let go of, and a client slower than this is behind the live window anyway.
    /// Without it, clients that read slowly (but read, so never stall) would keep any number of
    /// old segments in memory, outside the live budget.
    pub segment_send_limit: Duration,
    /// FLV and RTMP viewers are woken at most this often (and on keyframes), so each write
    /// carries several frames: their cost is mostly per write (docs/benchmarks.md). `.ts`
    /// viewers are woken on every video frame.
    pub media_batch: Duration,
    /// The kernel send buffer of a viewer socket (SO_SNDBUF; the kernel doubles it). Bounds what
    /// a stalled viewer costs in the kernel, and makes a slow one's writes progress in steps
    /// small enough to tell slow from stalled. 0 leaves the kernel's autotuning.
    pub viewer_send_buffer: usize,
    /// How long an ended stream stays listed (and its HLS playlist, with ENDLIST, served).
    pub linger: Duration,
    pub max_streams: usize,
    /// What all streams together may hold (rings, HLS segments, receive buffers): past it,
    /// streams shrink to their current GOP and new publishers are refused (503). Default: a
    /// quarter of the machine's (or the cgroup's) memory.
    pub memory_budget: Budget,
    /// Where viewers run: threads of their own, at a lower priority (fanout.rs).
    pub fanout: FanoutConfig,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            ring: Limits {
                max_bytes: 64 << 20,
                max_age: Duration::from_secs(10),
            },
            viewer: ViewerPolicy {
                max_skips: 3,
                skip_period: Duration::from_secs(60),
                max_batch_bytes: 256 << 10,
                max_batch_units: 512,
            },
            hls: HlsLimits::default(),
            ll_hls: LlLimits::default(),
            grace: Duration::from_secs(10),
            keys: HashMap::new(),
            global_key: None,
            slab_size: 256 << 10,
            slab_min_read: 32 << 10,
            max_ingest_bitrate: 100_000_000,
            publisher_timeout: Duration::from_secs(15),
            stall_timeout: Duration::from_secs(15),
            segment_send_limit: Duration::from_secs(30),
            viewer_send_buffer: 256 << 10,
            media_batch: Duration::from_millis(100),
            linger: Duration::from_secs(60),
            max_streams: 10_000,
            memory_budget: Budget {
                limit: live::budget::default_limit(memory::total_memory()),
            },
            fanout: FanoutConfig::default(),
        }
    }
}

/// What a viewer watches: the stream as MPEG-TS (every source), as FLV over HTTP, or as RTMP
/// messages. Each output has its own ring of units serialised once per stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Ts = 0,
    Flv = 1,
    Rtmp = 2,
    /// Fragmented MP4 (CMAF fragments, one per video frame) over HTTP.
    Mp4 = 3,
}

impl Output {
    pub fn content_type(self) -> &'static str {
        match self {
            Output::Ts => "video/mp2t",
            Output::Flv => "video/x-flv",
            Output::Rtmp => "application/octet-stream",
            Output::Mp4 => "video/mp4",
        }
    }
}
