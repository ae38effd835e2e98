//! Live streams: the registry and publishing rules, the ingest loop and the viewer loop. This is
//! the async shell around the `live` crate, which does the work without I/O.
//!
//! ```text
//!  PUT/POST /live/{name}  --read into slab-->  Ingest::prepare (restamp, split; no lock)
//!                                              Ingest::commit  (ring + HLS; write lock, brief)
//!                                              tick.send       (one wake-up per read)
//!  GET /live/{name}.ts    <--one writev per batch--  Viewer::step (read lock, clones Bytes)
//!  GET /live/{name}/index.m3u8, /{seq}.ts          Segmenter (same Bytes)
//! ```
//! Every viewer of a stream waits on the stream's `watch` channel (one per stream, not one per
//! viewer, not a broadcast of data): the channel carries no data, only "something new"; each
//! viewer then takes what is new since its own cursor from the ring.

use crate::api::{StreamDoc, StreamViewersDoc};
use crate::error::Error;
use bytes::{Buf, BytesMut};
use http::{HeaderMap, Uri};
use live::{HlsLimits, Ingest, Limits, RequestBody, Ring, Segmenter, Slab, Step, Viewer};
use live::{ViewerPolicy, Want};
use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Live settings.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub ring: Limits,
    pub viewer: ViewerPolicy,
    pub hls: HlsLimits,
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
    /// FLV and RTMP viewers of an RTMP source are woken at most this often (and on keyframes),
    /// so each write carries several frames: their cost is mostly per write (docs/benchmarks.md).
    /// `.ts` viewers are woken on every video frame.
    pub media_batch: Duration,
    /// The kernel send buffer of a viewer socket (SO_SNDBUF; the kernel doubles it). Bounds what
    /// a stalled viewer costs in the kernel, and makes a slow one's writes progress in steps
    /// small enough to tell slow from stalled. 0 leaves the kernel's autotuning.
    pub viewer_send_buffer: usize,
    /// How long an ended stream stays listed (and its HLS playlist, with ENDLIST, served).
    pub linger: Duration,
    pub max_streams: usize,
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
            grace: Duration::from_secs(10),
            keys: HashMap::new(),
            global_key: None,
            slab_size: 256 << 10,
            slab_min_read: 32 << 10,
            max_ingest_bitrate: 100_000_000,
            publisher_timeout: Duration::from_secs(15),
            stall_timeout: Duration::from_secs(15),
            viewer_send_buffer: 256 << 10,
            media_batch: Duration::from_millis(100),
            linger: Duration::from_secs(60),
            max_streams: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Live,
    /// The publisher's connection dropped; it may come back until the grace period ends.
    Reconnecting,
    Ended,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Live => "live",
            State::Reconnecting => "reconnecting",
            State::Ended => "ended",
        }
    }
}

/// What a viewer watches: the stream as MPEG-TS (every source), or, for RTMP sources, as FLV over
/// HTTP or as RTMP messages. Each output has its own ring of units serialised once per stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Ts = 0,
    Flv = 1,
    Rtmp = 2,
}

/// Counters of one stream (read by the API and /metrics).
#[derive(Debug, Default)]
pub struct Stats {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Connected viewers per [`Output`].
    pub viewers: [AtomicI64; 3],
    pub viewers_total: AtomicU64,
    pub skips: AtomicU64,
    pub slow_disconnects: AtomicU64,
    pub stalled_disconnects: AtomicU64,
    pub playlist_requests: AtomicU64,
    pub segment_requests: AtomicU64,
    /// Largest lag (units behind the publisher) seen by a viewer when it was woken.
    pub max_lag_units: AtomicU64,
    /// Milliseconds since the live epoch when a skip was last logged.
    last_skip_log: AtomicU64,
}

#[derive(Debug)]
pub struct Inner {
    /// MPEG-TS units (every source).
    pub ring: Ring,
    /// FLV tags and RTMP messages, when the source is RTMP (see rtmp.rs).
    pub flv: Option<Ring>,
    pub rtmp: Option<Ring>,
    pub hls: Segmenter,
    pub state: State,
    pub publisher: Option<SocketAddr>,
    pub session_started: Instant,
    /// Counts publisher sessions; a grace timer only ends the session it was started for.
    generation: u64,
    /// Kept here between sessions, taken by the publishing session.
    ingest: Option<Ingest>,
    pub sessions: u64,
    /// The latest RTMP timestamp (ms) published, so that a publisher that comes back continues
    /// the FLV/RTMP outputs' clock instead of starting it over.
    pub(crate) rtmp_clock: Option<u32>,
    /// The latest video and audio sequence headers, as (FLV tag, RTMP message).
    pub(crate) media_seq: [Option<(bytes::Bytes, bytes::Bytes)>; 2],
    pub video_codec: Option<&'static str>,
    pub audio_codecs: Vec<&'static str>,
    pub end_reason: Option<String>,
    /// Input rate over the last whole second.
    pub bitrate: u64,
    rate_window: (Instant, u64),
}

/// One live stream.
#[derive(Debug)]
pub struct Stream {
    pub name: String,
    /// Distinguishes this stream from an earlier one of the same name (in segment ETags).
    pub instance: u64,
    pub created: Instant,
    inner: RwLock<Inner>,
    /// Wakes `.ts` viewers (and HLS playlist waiters).
    tick: watch::Sender<u64>,
    /// Wakes FLV and RTMP viewers (RTMP sources), batched (see `LiveConfig::media_batch`).
    tick_media: watch::Sender<u64>,
    /// A TS source converts its TS to FLV tags once someone watches FLV or RTMP.
    media_wanted: std::sync::atomic::AtomicBool,
    pub stats: Stats,
}

impl Stream {
    /// The stream's state, for reading. Never held across an await.
    pub fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes sure the stream has FLV and RTMP outputs: an RTMP source always has them; a TS source
    /// gets them from the first FLV or RTMP viewer on (converted from its TS by the ingest loop;
    /// that viewer starts at the next keyframe). False for a TS source whose video is not H.264.
    pub fn want_media(&self, live: &Live) -> bool {
        let mut inner = self.write();
        if inner.video_codec.is_some_and(|c| c != "h264") && inner.flv.is_none() {
            return false;
        }
        let limits = live.config.ring;
        inner.flv.get_or_insert_with(|| Ring::new(limits));
        inner.rtmp.get_or_insert_with(|| Ring::new(limits));
        self.media_wanted.store(true, Relaxed);
        true
    }

    /// Runs `f` on the stream's state for writing (the RTMP shell fills the FLV/RTMP rings); the
    /// caller wakes the viewers.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.write())
    }

    /// Wakes every viewer once.
    pub(crate) fn wake(&self) {
        self.wake_ts();
        self.wake_media();
    }

    /// Wakes the `.ts` viewers.
    pub(crate) fn wake_ts(&self) {
        self.tick.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes the FLV and RTMP viewers.
    pub(crate) fn wake_media(&self) {
        self.tick_media.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// All live streams.
#[derive(Debug)]
pub struct Live {
    pub config: LiveConfig,
    streams: Mutex<HashMap<String, Arc<Stream>>>,
    epoch: Instant,
    next_instance: AtomicU64,
}

/// How a publisher session ended.
#[derive(Debug)]
pub enum End {
    /// The body ended properly: the stream ends now.
    Clean,
    /// The connection dropped: the publisher may come back within the grace period.
    Dropped(String),
    /// The publisher sent something unacceptable (why): the stream ends now.
    Refused(String),
}

/// A publisher's hold on a stream. Dropped without `finish` (the task was cancelled): treated
/// as a dropped connection.
#[derive(Debug)]
pub struct Publish {
    live: Arc<Live>,
    pub stream: Arc<Stream>,
    ingest: Option<Ingest>,
    generation: u64,
    end: Option<End>,
    /// TS to FLV tags, for the FLV/RTMP outputs of a TS source (once wanted).
    to_flv: Option<media::flv::FromTs>,
    tags: Vec<media::flv::Tag>,
    last_media_wake: Option<Instant>,
}

/// A stream name: 1 to 128 of `A-Z a-z 0-9 _ - .`, not starting with a dot.
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Compares keys in time independent of where they differ.
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The key a publisher presents: `?key=` or `Authorization: Bearer`.
pub fn presented_key(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let from_query = uri
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| {
            kv.strip_prefix("key=").map(|v| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            })
        });
    from_query.or_else(|| {
        let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string())
    })
}

impl Live {
    pub fn new(config: LiveConfig) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            << 20;
        Live {
            config,
            streams: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            next_instance: AtomicU64::new(seed),
        }
    }

    /// Time on the live clock (what the ring and segmenter are given).
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Stream>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Stream>> {
        self.map().get(name).cloned()
    }

    /// Streams sorted by name.
    pub fn list(&self) -> Vec<Arc<Stream>> {
        let mut v: Vec<_> = self.map().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Checks a publisher's key. Without any key configured, only loopback publishers may publish.
    pub fn authorize(&self, name: &str, key: Option<&str>, peer: IpAddr) -> Result<(), Error> {
        if !valid_name(name) {
            return Err(Error::BadStreamName(name.to_string()));
        }
        let expected: Vec<&str> = match self.config.keys.get(name) {
            Some(k) => vec![k.as_str()],
            None => self.config.global_key.iter().map(String::as_str).collect(),
        };
        if expected.is_empty() && self.config.keys.is_empty() {
            return if peer.is_loopback() {
                Ok(())
            } else {
                Err(Error::PublishNotConfigured(peer))
            };
        }
        match key {
            None => Err(Error::KeyRequired(name.to_string())),
            Some(k) if expected.iter().any(|e| same_key(e, k)) => Ok(()),
            Some(_) => Err(Error::WrongKey(name.to_string())),
        }
    }

    /// Takes the stream for a publisher: a new stream, or one whose publisher dropped within
    /// the grace period (continued seamlessly). A live stream is refused (409).
    pub fn begin_publish(self: &Arc<Self>, name: &str, peer: SocketAddr) -> Result<Publish, Error> {
        let mut map = self.map();
        let now = Instant::now();
        if let Some(s) = map.get(name).cloned() {
            let mut inner = s.write();
            match inner.state {
                State::Live => return Err(Error::StreamBusy(name.to_string())),
                State::Reconnecting => {
                    inner.state = State::Live;
                    inner.generation += 1;
                    inner.sessions += 1;
                    inner.publisher = Some(peer);
                    inner.session_started = now;
                    let t = self.now();
                    inner.hls.discontinuity(t);
                    let mut ingest = inner.ingest.take().unwrap_or_default();
                    ingest.new_session();
                    let generation = inner.generation;
                    drop(inner);
                    tracing::info!(stream = name, %peer, "publisher is back within the grace period; stream continues");
                    return Ok(Publish {
                        live: self.clone(),
                        stream: s,
                        ingest: Some(ingest),
                        generation,
                        end: None,
                        to_flv: None,
                        tags: Vec::new(),
                        last_media_wake: None,
                    });
                }
                State::Ended => {}
            }
        }
        if map.len() >= self.config.max_streams && !map.contains_key(name) {
            return Err(Error::TooManyStreams(self.config.max_streams));
        }
        let (tick, _) = watch::channel(0);
        let (tick_media, _) = watch::channel(0);
        let stream = Arc::new(Stream {
            name: name.to_string(),
            instance: self.next_instance.fetch_add(1, Relaxed),
            created: now,
            inner: RwLock::new(Inner {
                ring: Ring::new(self.config.ring),
                flv: None,
                rtmp: None,
                hls: Segmenter::new(self.config.hls),
                state: State::Live,
                publisher: Some(peer),
                session_started: now,
                generation: 0,
                ingest: None,
                rtmp_clock: None,
                media_seq: [None, None],
                sessions: 1,
                video_codec: None,
                audio_codecs: Vec::new(),
                end_reason: None,
                bitrate: 0,
                rate_window: (now, 0),
            }),
            tick,
            tick_media,
            media_wanted: Default::default(),
            stats: Stats::default(),
        });
        // An ended stream of the same name is replaced; its viewers have already been told.
        map.insert(name.to_string(), stream.clone());
        tracing::info!(stream = name, %peer, "publishing");
        Ok(Publish {
            live: self.clone(),
            stream,
            ingest: Some(Ingest::default()),
            generation: 0,
            end: None,
            to_flv: None,
            tags: Vec::new(),
            last_media_wake: None,
        })
    }

    /// Ends a stream: viewers drain what is left and get a clean end; HLS gets ENDLIST. It stays
    /// listed for `linger`, then goes (unless replaced).
    fn end_stream(self: &Arc<Self>, stream: &Arc<Stream>, reason: String) {
        {
            let mut inner = stream.write();
            if inner.state == State::Ended {
                return;
            }
            inner.state = State::Ended;
            inner.publisher = None;
            inner.end_reason = Some(reason.clone());
            let now = self.now();
            inner.hls.end(now);
        }
        stream.wake();
        tracing::info!(stream = %stream.name, reason, "stream ended");
        let live = self.clone();
        let stream = stream.clone();
        tokio::spawn(async move {
            tokio::time::sleep(live.config.linger).await;
            let mut map = live.map();
            if map
                .get(&stream.name)
                .is_some_and(|s| Arc::ptr_eq(s, &stream))
            {
                map.remove(&stream.name);
            }
        });
    }

    /// Waits until the stream has a segment to list (a player that asks for the playlist right
    /// after the publisher started gets one instead of an error), at most `limit`.
    pub async fn wait_for_segment(&self, name: &str, limit: Duration) {
        let Some(stream) = self.get(name) else { return };
        let mut rx = stream.tick.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            {
                let inner = stream.read();
                if !inner.hls.is_empty() || inner.state == State::Ended {
                    return;
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    }

    /// The JSON document of a stream.
    pub fn doc(&self, s: &Stream) -> StreamDoc {
        let inner = s.read();
        let st = &s.stats;
        StreamDoc {
            name: s.name.clone(),
            state: inner.state.name().into(),
            publisher: inner.publisher.map(|p| p.to_string()),
            uptime_seconds: s.created.elapsed().as_secs_f64(),
            session_uptime_seconds: (inner.state == State::Live)
                .then(|| inner.session_started.elapsed().as_secs_f64()),
            sessions: inner.sessions,
            input_bitrate: inner.bitrate,
            bytes_in: st.bytes_in.load(Relaxed),
            bytes_out: st.bytes_out.load(Relaxed),
            video_codec: inner.video_codec.map(Into::into),
            audio_codecs: inner.audio_codecs.iter().map(|c| c.to_string()).collect(),
            viewers: StreamViewersDoc {
                ts: st.viewers[0].load(Relaxed).max(0) as u64,
                flv: st.viewers[1].load(Relaxed).max(0) as u64,
                rtmp: st.viewers[2].load(Relaxed).max(0) as u64,
                ts_total: st.viewers_total.load(Relaxed),
                hls_playlist_requests: st.playlist_requests.load(Relaxed),
                hls_segment_requests: st.segment_requests.load(Relaxed),
            },
            skips: st.skips.load(Relaxed),
            slow_disconnects: st.slow_disconnects.load(Relaxed),
            stalled_disconnects: st.stalled_disconnects.load(Relaxed),
            max_lag_units: st.max_lag_units.load(Relaxed),
            ring_bytes: inner.ring.bytes() as u64,
            ring_units: inner.ring.end_seq() - inner.ring.first_seq(),
            hls_segments: inner.hls.len() as u64,
            end_reason: inner.end_reason.clone(),
            ts_url: format!("/live/{}.ts", s.name),
            hls_url: format!("/live/{}/index.m3u8", s.name),
        }
    }

    /// Prometheus text exposition of the live counters.
    pub fn metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let streams = self.list();
        let mut family = |name: &str, kind: &str, help: &str, get: &dyn Fn(&Stream) -> u64| {
            let _ = writeln!(
                out,
                "# HELP zerocast_live_{name} {help}\n# TYPE zerocast_live_{name} {kind}"
            );
            for s in &streams {
                let _ = writeln!(
                    out,
                    "zerocast_live_{name}{{stream=\"{}\"}} {}",
                    s.name,
                    get(s)
                );
            }
        };
        family("up", "gauge", "1 while a publisher is connected", &|s| {
            u64::from(s.read().state == State::Live)
        });
        family(
            "input_bytes_total",
            "counter",
            "Bytes received from publishers",
            &|s| s.stats.bytes_in.load(Relaxed),
        );
        family(
            "output_bytes_total",
            "counter",
            "Bytes written to viewers",
            &|s| s.stats.bytes_out.load(Relaxed),
        );
        family(
            "viewers",
            "gauge",
            "Connected viewers (all outputs)",
            &|s| {
                s.stats
                    .viewers
                    .iter()
                    .map(|v| v.load(Relaxed).max(0) as u64)
                    .sum()
            },
        );
        family(
            "skips_total",
            "counter",
            "Viewer skips to the newest keyframe",
            &|s| s.stats.skips.load(Relaxed),
        );
        family(
            "slow_disconnects_total",
            "counter",
            "Viewers dropped after repeated skips",
            &|s| s.stats.slow_disconnects.load(Relaxed),
        );
        family(
            "stalled_disconnects_total",
            "counter",
            "Viewers dropped for taking no bytes",
            &|s| s.stats.stalled_disconnects.load(Relaxed),
        );
        family(
            "max_lag_units",
            "gauge",
            "Largest viewer lag seen, in units",
            &|s| s.stats.max_lag_units.load(Relaxed),
        );
        family("ring_bytes", "gauge", "Bytes held by the ring", &|s| {
            s.read().ring.bytes() as u64
        });
        family(
            "hls_segment_requests_total",
            "counter",
            "HLS segments served",
            &|s| s.stats.segment_requests.load(Relaxed),
        );
    }
}

impl Publish {
    /// Publishes the whole packets the slab holds.
    fn publish(&mut self, slab: &mut Slab, live: &Live) -> Result<(), String> {
        match slab.take_whole(media::ts::PACKET) {
            Some(packets) => self.publish_ts(packets, live),
            None => Ok(()),
        }
    }

    /// Publishes whole TS packets of a TS source, and, once FLV or RTMP viewers want them, the
    /// same frames as FLV tags.
    fn publish_ts(&mut self, packets: BytesMut, live: &Live) -> Result<(), String> {
        if self.to_flv.is_none() && self.stream.media_wanted.load(Relaxed) {
            self.to_flv = Some(media::flv::FromTs::default());
        }
        if let Some(conv) = &mut self.to_flv {
            self.tags.clear();
            conv.feed(&packets, &mut self.tags);
        }
        let keyframe = self.tags.iter().any(|t| t.keyframe);
        if !self.tags.is_empty() {
            let (limits, now, tags) = (live.config.ring, live.now(), &self.tags);
            self.stream.update(|inner| {
                for t in tags {
                    let (video, seq, key) = (t.video, t.sequence, t.keyframe);
                    crate::rtmp::push_media(inner, limits, now, video, &t.body, t.ms, seq, key);
                }
            });
            let batch = live.config.media_batch;
            if keyframe || self.last_media_wake.is_none_or(|t| t.elapsed() >= batch) {
                self.last_media_wake = Some(Instant::now());
                self.stream.wake_media();
            }
        }
        self.publish_packets(packets, live, true)
    }

    /// Publishes whole TS packets (from a slab, or muxed from RTMP); wakes the viewers if `wake`.
    pub fn publish_packets(
        &mut self,
        packets: BytesMut,
        live: &Live,
        wake: bool,
    ) -> Result<(), String> {
        let ingest = self.ingest.as_mut().expect("held while publishing");
        let data = ingest.prepare(packets).map_err(|e| e.to_string())?;
        let now = live.now();
        {
            let mut inner = self.stream.write();
            let inner = &mut *inner;
            ingest.commit(data, &mut inner.ring, &mut inner.hls, now);
            if inner.video_codec != ingest.video_codec() {
                inner.video_codec = ingest.video_codec();
                inner.audio_codecs = ingest.audio_codecs().to_vec();
            }
            let total = self.stream.stats.bytes_in.load(Relaxed);
            let (since, at) = inner.rate_window;
            let elapsed = since.elapsed();
            if elapsed >= Duration::from_secs(1) {
                inner.bitrate = ((total - at) as f64 * 8.0 / elapsed.as_secs_f64()) as u64;
                inner.rate_window = (Instant::now(), total);
            }
        }
        if wake {
            // Only `.ts` viewers read this ring; FLV/RTMP viewers have their own wake-ups.
            self.stream.wake_ts();
        }
        Ok(())
    }

    /// Ends the session.
    pub fn finish(mut self, end: End) {
        self.end = Some(end);
    }
}

impl Drop for Publish {
    fn drop(&mut self) {
        let end = self
            .end
            .take()
            .unwrap_or_else(|| End::Dropped("session cancelled".into()));
        let stream = &self.stream;
        {
            let mut inner = stream.write();
            if inner.generation != self.generation || inner.state != State::Live {
                return;
            }
            inner.ingest = self.ingest.take();
            if let End::Dropped(reason) = &end {
                inner.state = State::Reconnecting;
                inner.publisher = None;
                let generation = self.generation;
                let live = self.live.clone();
                let timed = stream.clone();
                let grace = live.config.grace;
                tracing::info!(stream = %stream.name, reason, ?grace, "publisher dropped; waiting for it to come back");
                let reason = reason.clone();
                if tokio::runtime::Handle::try_current().is_ok() {
                    tokio::spawn(async move {
                        tokio::time::sleep(grace).await;
                        let expired = {
                            let inner = timed.read();
                            inner.generation == generation && inner.state == State::Reconnecting
                        };
                        if expired {
                            live.end_stream(&timed, format!("publisher gone ({reason}) and did not come back within {grace:?}"));
                        }
                    });
                }
                drop(inner);
                stream.wake();
                return;
            }
        }
        let reason = match end {
            End::Clean => "publisher finished".to_string(),
            End::Refused(why) => format!("publisher refused: {why}"),
            End::Dropped(_) => unreachable!("handled above"),
        };
        self.live.end_stream(stream, reason);
    }
}

/// Reads a publisher's body into slabs and publishes it. `side` holds body bytes that arrived with
/// the request head. Returns the end of the session and the bytes received.
pub async fn ingest(
    sock: &mut TcpStream,
    publish: &mut Publish,
    mut body: RequestBody,
    mut side: BytesMut,
    live: &Live,
    mut shutdown: watch::Receiver<bool>,
) -> End {
    let cfg = &live.config;
    let mut slab = Slab::new(cfg.slab_size, cfg.slab_min_read);
    let started = tokio::time::Instant::now();
    let rate = (cfg.max_ingest_bitrate / 8).max(1);
    let mut received: u64 = 0;
    let stream = publish.stream.clone();
    let stats = &stream.stats;
    let end = loop {
        match body.want() {
            Want::Done => break End::Clean,
            Want::Data(n) => {
                let got = if !side.is_empty() {
                    // Body bytes that came with the head or a framing read: the small copy.
                    let k = side.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                    slab.extend(&side[..k]);
                    side.advance(k);
                    k
                } else {
                    // Over the rate limit: stop reading for a while (TCP pushes back).
                    let allowed = rate * 2 + (rate as f64 * started.elapsed().as_secs_f64()) as u64;
                    if received > allowed {
                        let wait =
                            Duration::from_secs_f64((received - allowed) as f64 / rate as f64);
                        tokio::time::sleep(wait).await;
                    }
                    let buf = slab.spare();
                    let room = (buf.capacity() - buf.len()) as u64;
                    let mut limited = (&mut *sock).take(n.min(room));
                    let read = limited.read_buf(buf);
                    let r = tokio::select! {
                        r = tokio::time::timeout(cfg.publisher_timeout, read) => r,
                        _ = shutdown.changed() => break End::Clean,
                    };
                    match r {
                        Err(_) => {
                            break End::Dropped(format!("no data for {:?}", cfg.publisher_timeout))
                        }
                        Ok(Err(e)) => break End::Dropped(e.to_string()),
                        Ok(Ok(0)) => {
                            break match body.eof() {
                                Ok(()) => End::Dropped("connection closed".into()),
                                Err(e) => End::Dropped(e.to_string()),
                            };
                        }
                        Ok(Ok(k)) => k,
                    }
                };
                body.data(got);
                received += got as u64;
                stats.bytes_in.fetch_add(got as u64, Relaxed);
                if let Err(e) = publish.publish(&mut slab, live) {
                    break End::Refused(e);
                }
            }
            Want::Framing => {
                let used = match body.framing(&side) {
                    Ok(used) => used,
                    Err(e) => break End::Refused(e.to_string()),
                };
                side.advance(used);
                if body.want() == Want::Framing && (used == 0 || side.is_empty()) {
                    if side.capacity() - side.len() < 64 {
                        side.reserve(64);
                    }
                    let mut limited = (&mut *sock).take(64);
                    let read = limited.read_buf(&mut side);
                    let r = tokio::select! {
                        r = tokio::time::timeout(cfg.publisher_timeout, read) => r,
                        _ = shutdown.changed() => break End::Clean,
                    };
                    match r {
                        Err(_) => break End::Dropped("no data".into()),
                        Ok(Err(e)) => break End::Dropped(e.to_string()),
                        Ok(Ok(0)) => {
                            break End::Dropped(
                                body.eof().err().map_or("closed".into(), |e| e.to_string()),
                            )
                        }
                        Ok(Ok(_)) => {}
                    }
                }
            }
        }
    };
    if slab.pending() > 0 {
        tracing::debug!(stream = %publish.stream.name, bytes = slab.pending(), "partial packet at the end dropped");
    }
    tracing::debug!(
        stream = %publish.stream.name,
        received,
        slabs = slab.allocations,
        reclaimed = slab.reclaims,
        copied = slab.carried,
        "ingest session over"
    );
    end
}

/// Resolves when the peer has closed its side (a viewer sends nothing after its request; any
/// bytes it does send are ignored).
async fn closed(sock: &TcpStream) {
    loop {
        if sock.readable().await.is_err() {
            return;
        }
        let mut b = [0u8; 64];
        match sock.try_read(&mut b) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Serves one `.ts` (or, with `Output::Flv`, `.flv`) viewer over HTTP until the stream ends, the
/// viewer goes, or it is dropped for lagging.
pub async fn watch_http(
    sock: &mut TcpStream,
    stream: Arc<Stream>,
    live: &Live,
    output: Output,
    chunked: bool,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let ctype = match output {
        Output::Flv => "video/x-flv",
        _ => "video/mp2t",
    };
    let mut head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncache-control: no-cache, no-store\r\naccess-control-allow-origin: *\r\n"
    );
    head.push_str(if chunked {
        "transfer-encoding: chunked\r\n"
    } else {
        "connection: close\r\n"
    });
    head.push_str(&format!(
        "date: {}\r\n\r\n",
        httpdate::HttpDate::from(std::time::SystemTime::now())
    ));
    if output == Output::Flv {
        // The FLV file header (audio and video) and PreviousTagSize0, once per viewer.
        let flv: &[u8] = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00";
        if chunked {
            head.push_str(&format!("{:x}\r\n", flv.len()));
        }
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(flv);
        if chunked {
            bytes.extend_from_slice(b"\r\n");
        }
        sock.write_all(&bytes).await?;
    } else {
        sock.write_all(head.as_bytes()).await?;
    }
    follow(sock, stream, live, output, chunked, shutdown).await
}

/// Sets a viewer socket's send buffer (see `LiveConfig::viewer_send_buffer`).
pub(crate) fn viewer_socket(sock: &TcpStream, live: &Live) {
    if live.config.viewer_send_buffer > 0 {
        let _ =
            rustix::net::sockopt::set_socket_send_buffer_size(sock, live.config.viewer_send_buffer);
    }
}

/// Writes a stream's units of one output to a viewer, from the latest keyframe on, until the
/// stream ends or the viewer goes or is dropped. `chunked`: HTTP chunked framing per batch.
pub(crate) async fn follow(
    sock: &mut TcpStream,
    stream: Arc<Stream>,
    live: &Live,
    output: Output,
    chunked: bool,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    viewer_socket(sock, live);
    let stats = &stream.stats;
    stats.viewers[output as usize].fetch_add(1, Relaxed);
    stats.viewers_total.fetch_add(1, Relaxed);
    struct Gone<'a>(&'a AtomicI64);
    impl Drop for Gone<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Relaxed);
        }
    }
    let _gone = Gone(&stats.viewers[output as usize]);
    let policy = live.config.viewer;
    let mut rx = match output {
        Output::Ts => stream.tick.subscribe(),
        Output::Flv | Output::Rtmp => stream.tick_media.subscribe(),
    };
    let mut viewer = Viewer::default();
    loop {
        rx.borrow_and_update();
        let now = live.now();
        let (step, ended, lag) = {
            let inner = stream.read();
            let ring = match output {
                Output::Ts => Some(&inner.ring),
                Output::Flv => inner.flv.as_ref(),
                Output::Rtmp => inner.rtmp.as_ref(),
            };
            match ring {
                Some(ring) => {
                    let lag = viewer.lag(ring);
                    let step = viewer.step(ring, now, &policy);
                    (step, inner.state == State::Ended, lag)
                }
                None => (Step::Wait, inner.state == State::Ended, 0),
            }
        };
        match step {
            Step::Send { parts, skipped } => {
                if skipped {
                    stats.skips.fetch_add(1, Relaxed);
                    log_skip(&stream, now, viewer.total_skips);
                }
                stats.max_lag_units.fetch_max(lag, Relaxed);
                let n: usize = parts.iter().map(|p| p.len()).sum();
                let mut size = [0u8; 20];
                let size = chunk_size_line(n, &mut size);
                let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len() + 2);
                if chunked {
                    slices.push(IoSlice::new(size));
                }
                slices.extend(parts.iter().map(|p| IoSlice::new(p)));
                if chunked {
                    slices.push(IoSlice::new(b"\r\n"));
                }
                match write_all_vectored(sock, &mut slices, live.config.stall_timeout).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                        stats.stalled_disconnects.fetch_add(1, Relaxed);
                        tracing::info!(stream = %stream.name, "viewer took nothing for {:?}; disconnected", live.config.stall_timeout);
                        return Err(e);
                    }
                    Err(e) => return Err(e),
                }
                stats.bytes_out.fetch_add(n as u64, Relaxed);
            }
            Step::Disconnect => {
                stats.slow_disconnects.fetch_add(1, Relaxed);
                tracing::info!(stream = %stream.name, skips = viewer.total_skips, "viewer keeps falling behind; disconnected");
                return Ok(());
            }
            Step::Wait if ended => {
                if chunked {
                    sock.write_all(b"0\r\n\r\n").await?;
                }
                return Ok(());
            }
            Step::Wait => {
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return Ok(()) },
                    () = closed(sock) => return Ok(()),
                    _ = shutdown.changed() => {
                        if chunked {
                            sock.write_all(b"0\r\n\r\n").await?;
                        }
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Logs skips at most once a second per stream.
fn log_skip(stream: &Stream, now: Duration, viewer_skips: u64) {
    let ms = now.as_millis() as u64;
    let last = stream.stats.last_skip_log.load(Relaxed);
    if ms.saturating_sub(last) >= 1000
        && stream
            .stats
            .last_skip_log
            .compare_exchange(last, ms, Relaxed, Relaxed)
            .is_ok()
    {
        tracing::info!(
            stream = %stream.name,
            total_skips = stream.stats.skips.load(Relaxed),
            viewer_skips,
            "a slow viewer skipped to the newest keyframe"
        );
    }
}

fn chunk_size_line(n: usize, buf: &mut [u8; 20]) -> &[u8] {
    use std::io::Write as _;
    let mut w = &mut buf[..];
    let _ = write!(w, "{n:x}\r\n");
    let left = w.len();
    &buf[..20 - left]
}

/// Most slices handed to one writev (the kernel's IOV_MAX).
pub(crate) const IOV_MAX: usize = 1024;

/// Writes all slices; each write must make progress within `stall`.
async fn write_all_vectored(
    sock: &mut TcpStream,
    slices: &mut [IoSlice<'_>],
    stall: Duration,
) -> io::Result<()> {
    let mut rest = slices;
    while !rest.is_empty() {
        let upto = rest.len().min(IOV_MAX);
        let n = match tokio::time::timeout(stall, sock.write_vectored(&rest[..upto])).await {
            Ok(r) => r?,
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}
