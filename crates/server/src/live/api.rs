//! What the live wing shows: the JSON document of a stream (`/api/streams[/{name}]`) and the
//! Prometheus families of `/metrics`, one table of them.

use super::{Live, Stream};
use crate::response::{metric, metric_family, metric_sample};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering::Relaxed;

/// A live stream, as `GET /api/streams[/{name}]` shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct StreamDoc {
    pub name: String,
    /// `live`, `reconnecting` (the publisher dropped and may come back) or `ended`.
    pub state: String,
    /// The publisher's address while one is connected (on an edge: the origin's); shown only
    /// to a request with the admin token (it is a viewer's personal data on the public API).
    pub publisher: Option<String>,
    /// On an edge: the origin this stream is pulled from (`None`: pushed here by a publisher).
    #[serde(default)]
    pub origin: Option<String>,
    pub uptime_seconds: f64,
    /// Since the current publisher connected.
    pub session_uptime_seconds: Option<f64>,
    /// Publisher sessions so far (reconnects + 1).
    pub sessions: u64,
    /// Bits per second over the last second.
    pub input_bitrate: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub video_codec: Option<String>,
    pub audio_codecs: Vec<String>,
    pub viewers: StreamViewersDoc,
    /// Times a viewer fell out of the window and skipped to the newest keyframe.
    pub skips: u64,
    /// Viewers dropped after repeated skips.
    pub slow_disconnects: u64,
    /// Viewers dropped because their socket took nothing for the stall timeout.
    pub stalled_disconnects: u64,
    pub max_lag_units: u64,
    /// DVR viewers converting another output's recording or ring to their own format now (an
    /// `.flv` or `.mp4` viewer that rewound before its ring, a `.ts` one into an fMP4
    /// recording), and how many such conversions joined their ring.
    #[serde(default)]
    pub dvr_converting: i64,
    #[serde(default)]
    pub dvr_joins: u64,
    pub ring_bytes: u64,
    /// What the stream holds against the server-wide live memory budget (its rings, HLS
    /// segments and receive buffer).
    pub held_bytes: u64,
    pub ring_units: u64,
    pub hls_segments: u64,
    pub end_reason: Option<String>,
    pub ts_url: String,
    pub hls_url: String,
    #[serde(default)]
    pub flv_url: String,
    #[serde(default)]
    pub mp4_url: String,
    /// Low-latency HLS (fMP4 parts).
    #[serde(default)]
    pub ll_hls_url: String,
    /// Low-latency DASH (the same parts, one track per representation).
    #[serde(default)]
    pub dash_url: String,
    /// The library title of the recording file being written (`None`: not recorded), and its
    /// HLS (an EVENT playlist from the file's start: a DVR window of the current file).
    #[serde(default)]
    pub recording: Option<String>,
    #[serde(default)]
    pub recording_hls_url: Option<String>,
    /// How far back a DVR viewer can start (`?t=-S`), seconds: the oldest keyframe the TS ring
    /// or the recording holds (0 before the first).
    #[serde(default)]
    pub dvr_window_seconds: f64,
}

/// Viewers per output.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct StreamViewersDoc {
    /// Connected `.ts` viewers.
    pub ts: u64,
    /// Connected `.flv` viewers.
    pub flv: u64,
    /// Connected RTMP players.
    pub rtmp: u64,
    /// Connected `.mp4` (fragmented MP4) viewers.
    #[serde(default)]
    pub mp4: u64,
    pub ts_total: u64,
    pub hls_playlist_requests: u64,
    pub hls_segment_requests: u64,
}

fn viewers(s: &Stream, i: usize) -> u64 {
    s.stats.viewers[i].load(Relaxed).max(0) as u64
}

/// Whether a document shows the publisher's address: only to the admin (and to the publisher
/// itself, in the answer to its upload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addresses {
    Shown,
    Hidden,
}

/// The JSON document of a stream.
pub fn doc(live: &Live, s: &Stream, addresses: Addresses) -> StreamDoc {
    let now = live.now();
    // The file its newest recorded keyframe went to.
    let recording = s
        .recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|(_, c)| Some(c.get(c.len().checked_sub(1)?)?.file.to_string()));
    let inner = s.read();
    let st = &s.stats;
    let life = &inner.lifecycle;
    let recorded_from = s
        .recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|(_, c)| c.oldest());
    let dvr_from = [inner.ring.oldest_keyframe(), recorded_from]
        .into_iter()
        .flatten()
        .min();
    StreamDoc {
        name: s.name.clone(),
        state: life.state().name().into(),
        publisher: inner
            .publisher
            .filter(|_| addresses == Addresses::Shown)
            .map(|p| p.to_string()),
        origin: inner.origin.clone(),
        uptime_seconds: now.saturating_sub(s.created).as_secs_f64(),
        session_uptime_seconds: life
            .is_live()
            .then(|| now.saturating_sub(life.session_started()).as_secs_f64()),
        sessions: life.sessions(),
        input_bitrate: inner.bitrate.bps(),
        bytes_in: st.bytes_in.load(Relaxed),
        bytes_out: st.bytes_out.load(Relaxed),
        video_codec: inner.video_codec.map(Into::into),
        audio_codecs: inner.audio_codecs.iter().map(|c| c.to_string()).collect(),
        viewers: StreamViewersDoc {
            ts: viewers(s, 0),
            flv: viewers(s, 1),
            rtmp: viewers(s, 2),
            mp4: viewers(s, 3),
            ts_total: st.viewers_total.load(Relaxed),
            hls_playlist_requests: st.playlist_requests.load(Relaxed),
            hls_segment_requests: st.segment_requests.load(Relaxed),
        },
        skips: st.skips.load(Relaxed),
        slow_disconnects: st.slow_disconnects.load(Relaxed),
        stalled_disconnects: st.stalled_disconnects.load(Relaxed),
        max_lag_units: st.max_lag_units.load(Relaxed),
        dvr_converting: st.dvr_converting.load(Relaxed),
        dvr_joins: st.dvr_joins.load(Relaxed),
        ring_bytes: inner.ring.data_bytes() as u64,
        held_bytes: s.held() as u64,
        ring_units: inner.ring.end_seq() - inner.ring.first_seq(),
        hls_segments: inner.hls.len() as u64,
        end_reason: life.end_reason().map(Into::into),
        ts_url: format!("/live/{}.ts", s.name),
        hls_url: format!("/live/{}/index.m3u8", s.name),
        flv_url: format!("/live/{}.flv", s.name),
        mp4_url: format!("/live/{}.mp4", s.name),
        ll_hls_url: format!("/live/{}/ll.m3u8", s.name),
        dash_url: format!("/live/{}/manifest.mpd", s.name),
        recording_hls_url: recording
            .as_ref()
            .map(|id| format!("/videos/{}/index.m3u8", crate::library::encode_id(id))),
        recording,
        dvr_window_seconds: dvr_from.map_or(0.0, |o| now.saturating_sub(o).as_secs_f64()),
    }
}

/// The documents of every stream, sorted by name.
pub fn docs(live: &Live, addresses: Addresses) -> Vec<StreamDoc> {
    live.list()
        .iter()
        .map(|s| doc(live, s, addresses))
        .collect()
}

/// One Prometheus family: name (after `zerocast_live_`), type, help, and its value per stream.
type Family = (&'static str, &'static str, &'static str, fn(&Stream) -> u64);

const FAMILIES: &[Family] = &[
    ("up", "gauge", "1 while a publisher is connected", |s| {
        u64::from(s.read().lifecycle.is_live())
    }),
    (
        "input_bytes_total",
        "counter",
        "Bytes received from publishers",
        |s| s.stats.bytes_in.load(Relaxed),
    ),
    (
        "output_bytes_total",
        "counter",
        "Bytes written to viewers",
        |s| s.stats.bytes_out.load(Relaxed),
    ),
    ("viewers", "gauge", "Connected viewers (all outputs)", |s| {
        (0..4).map(|i| viewers(s, i)).sum()
    }),
    (
        "skips_total",
        "counter",
        "Viewer skips to the newest keyframe",
        |s| s.stats.skips.load(Relaxed),
    ),
    (
        "slow_disconnects_total",
        "counter",
        "Viewers dropped after repeated skips",
        |s| s.stats.slow_disconnects.load(Relaxed),
    ),
    (
        "stalled_disconnects_total",
        "counter",
        "Viewers dropped for taking no bytes",
        |s| s.stats.stalled_disconnects.load(Relaxed),
    ),
    (
        "max_lag_units",
        "gauge",
        "Largest viewer lag seen, in units",
        |s| s.stats.max_lag_units.load(Relaxed),
    ),
    (
        "dvr_converting",
        "gauge",
        "DVR viewers converting another output's recording or ring to their own format now",
        |s| u64::try_from(s.stats.dvr_converting.load(Relaxed)).unwrap_or(0),
    ),
    (
        "dvr_joins_total",
        "counter",
        "DVR viewers whose conversion joined their own output's ring",
        |s| s.stats.dvr_joins.load(Relaxed),
    ),
    ("ring_bytes", "gauge", "Bytes held by the ring", |s| {
        s.read().ring.data_bytes() as u64
    }),
    (
        "held_bytes",
        "gauge",
        "Bytes the stream holds against the memory budget",
        |s| s.held() as u64,
    ),
    (
        "hls_segment_requests_total",
        "counter",
        "HLS segments served",
        |s| s.stats.segment_requests.load(Relaxed),
    ),
];

/// Prometheus text exposition of the live counters.
pub fn metrics(live: &Live, out: &mut String) {
    let m = &live.memory;
    let server: [(&str, &str, &str, u64); 4] = [
        (
            "memory_bytes",
            "gauge",
            "Bytes all live streams hold",
            m.held() as u64,
        ),
        (
            "memory_budget_bytes",
            "gauge",
            "The live memory budget",
            m.limit() as u64,
        ),
        (
            "memory_refused_total",
            "counter",
            "Publishers refused because the memory budget was reached",
            m.refused.load(Relaxed),
        ),
        (
            "memory_shrinks_total",
            "counter",
            "Times a stream shrank to its current GOP for the memory budget",
            m.shrinks.load(Relaxed),
        ),
    ];
    for (name, kind, help, value) in server {
        metric(out, &format!("live_{name}"), kind, help, value);
    }
    live.delivery.metrics(out);
    let streams = live.list();
    for (name, kind, help, get) in FAMILIES {
        let name = format!("live_{name}");
        metric_family(out, &name, kind, help);
        for s in &streams {
            metric_sample(out, &name, &format!("stream=\"{}\"", s.name), get(s));
        }
    }
}
