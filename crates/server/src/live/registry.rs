//! The registry of live streams: names, publish keys, the one-publisher rule, and the thin shell
//! around each stream's [`Lifecycle`]: its transitions are applied here (HLS ended, viewers
//! woken, the stream forgotten) and its deadlines become timer tasks on the live clock.

use super::keys::same_key;
use super::memory::Memory;
use super::{LiveConfig, Output, PlaylistKey, Publish, Stats, TsPlaylistKey};
use crate::clip::Clip;
use crate::error::Error;
use live::{
    Begin, Bitrate, End, Ingest, Lifecycle, MediaOutputs, Ring, Segmenter, Timing, Transition,
};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// A stream's state, behind its lock.
#[derive(Debug)]
pub struct Inner {
    /// MPEG-TS units (every source).
    pub ring: Ring,
    /// FLV tags and RTMP messages: always for an RTMP source, from the first FLV or RTMP viewer
    /// on for a TS source.
    pub media: Option<MediaOutputs>,
    pub hls: Segmenter,
    pub lifecycle: Lifecycle,
    pub publisher: Option<SocketAddr>,
    /// Kept here between sessions, taken by the publishing session.
    pub(super) ingest: Option<Ingest>,
    pub video_codec: Option<&'static str>,
    pub audio_codecs: Vec<&'static str>,
    /// The origin an edge pulls this stream from (`None`: a publisher pushed it here).
    pub origin: Option<String>,
    /// Input rate over the last whole second.
    pub bitrate: Bitrate,
}

impl Inner {
    /// The ring of one output, if the stream has it.
    pub fn ring(&self, output: Output) -> Option<&Ring> {
        match output {
            Output::Ts => Some(&self.ring),
            Output::Flv => self.media.as_ref().map(|m| &m.flv),
            Output::Rtmp => self.media.as_ref().map(|m| &m.rtmp),
            Output::Mp4 => self.media.as_ref().map(|m| &m.mp4),
        }
    }
}

/// One live stream.
#[derive(Debug)]
pub struct Stream {
    pub name: String,
    /// Distinguishes this stream from an earlier one of the same name: in segment ETags, and as
    /// the directory of its segment, part and init segment URIs ([`Stream::dir`]).
    pub instance: u64,
    /// On the live clock.
    pub created: Duration,
    inner: RwLock<Inner>,
    /// Wakes `.ts` and `.mp4` viewers (and HLS playlist waiters), per video frame.
    tick: watch::Sender<u64>,
    /// Wakes FLV and RTMP viewers, batched (see `LiveConfig::media_batch`).
    tick_media: watch::Sender<u64>,
    /// Wakes the LL-HLS and DASH requests that wait (blocking playlist reloads, parts and
    /// segments that have not begun): when a part completes or begins (`LlHls::parts_mark`),
    /// and when the stream changes state. Not per frame: a thousand players
    /// waiting for the next part would otherwise be woken seven times each for nothing.
    tick_ll: watch::Sender<u64>,
    /// A TS source converts its TS to FLV tags once someone watches FLV or RTMP.
    pub(super) media_wanted: AtomicBool,
    pub stats: Stats,
    /// What this stream holds, as last counted into `memory`.
    held: AtomicUsize,
    memory: Arc<Memory>,
    /// Bumped to disconnect the publisher (control API); its sessions watch it.
    kick: watch::Sender<u64>,
    /// Bumped to disconnect every viewer (control API); each viewer loop watches it.
    drop_viewers: watch::Sender<u64>,
    /// The LL-HLS playlist as last rendered without a carried query, full (0) and delta (1), with
    /// the `LlHls::version` it was rendered at: the players waiting for the same part all get
    /// this one `Bytes`.
    pub(crate) ll_playlist: Mutex<[Option<(PlaylistKey, bytes::Bytes)>; 2]>,
    /// The DASH manifest as last rendered without a carried query, up to the `UTCTiming` that
    /// names the host each player asked (`live::dash::shared_with`), with what it was rendered
    /// for (as the LL-HLS playlist's).
    pub(crate) dash_manifest: Mutex<Option<(PlaylistKey, bytes::Bytes)>>,
    /// The media sequence number the last LL-HLS playlist (or DASH manifest) given out began
    /// with: a DVR window never lists anything before it.
    pub(crate) ll_floor: AtomicU64,
    /// The same for the TS HLS playlist.
    pub(crate) hls_floor: AtomicU64,
    /// The TS HLS playlist as last rendered (without a carried query), with what it was
    /// rendered for: the `Segmenter::version`, the recording's checkpoints (how many, the
    /// oldest), the floor.
    pub(crate) hls_playlist: Mutex<Option<(TsPlaylistKey, bytes::Bytes)>>,
    /// Where its recorder wrote each keyframe of the output it records (`None`: not recorded):
    /// DVR past that output's ring.
    pub(crate) recorded: Mutex<Option<(Output, live::record::checkpoints::Checkpoints)>>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.memory.release(&self.held);
    }
}

impl Stream {
    /// The directory, relative to `/live/{name}/`, that the playlists and manifests of this
    /// instance of the stream name their segments, parts and init segments in: its instance in
    /// hex, then `/`. A stream published again under the same name after this one ended lists
    /// other URIs, so no cache answers them with this one's immutable bytes.
    pub fn dir(&self) -> String {
        format!("{:x}/", self.instance)
    }

    /// Whether `tag` (the directory of a segment's URI, without its `/`) names this instance.
    pub fn is_instance(&self, tag: &str) -> bool {
        // Exactly as `dir` writes it (the router takes lowercase hex only; no leading zero): one
        // resource, one URL. Asked per segment request: no string made for it.
        (tag == "0" || !tag.starts_with('0')) && u64::from_str_radix(tag, 16) == Ok(self.instance)
    }

    /// The stream's state, for reading. Never held across an await.
    pub fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// How many wait on the stream now: viewers of every output, players held for a playlist,
    /// part or segment, and recorders (each holds a receiver of one of its wake-ups).
    pub(crate) fn waiting(&self) -> usize {
        self.tick.receiver_count()
            + self.tick_media.receiver_count()
            + self.tick_ll.receiver_count()
    }

    /// Records where an edge pulls the stream from (`/api/streams`).
    pub(crate) fn set_origin(&self, origin: Option<String>) {
        self.write().origin = origin;
    }

    /// Makes sure the stream has FLV and RTMP outputs: an RTMP source always has them; a TS source
    /// gets them from the first FLV or RTMP viewer on (converted from its TS by the publisher;
    /// that viewer starts at the next keyframe). False for a TS source whose video is neither
    /// H.264 nor H.265 (FLV, RTMP and MP4 carry those, H.265 as enhanced RTMP).
    pub fn want_media(&self, limits: live::Limits, ll: live::LlLimits) -> bool {
        // Asked on every held LL-HLS/DASH request: once the output exists a read lock answers,
        // so waiting players do not queue behind ingest for the write lock.
        if self.media_wanted.load(Relaxed) && self.read().media.is_some() {
            return true;
        }
        let mut inner = self.write();
        let carried = |c: &str| c == "h264" || c == "hevc";
        if inner.video_codec.is_some_and(|c| !carried(c)) && inner.media.is_none() {
            return false;
        }
        inner
            .media
            .get_or_insert_with(|| MediaOutputs::new(limits, ll).with_dir(self.dir()));
        self.media_wanted.store(true, Relaxed);
        true
    }

    /// Bytes this stream holds (rings, HLS segments, receive buffer), as last counted.
    pub fn held(&self) -> usize {
        self.held.load(Relaxed)
    }

    /// Re-counts what the stream holds after a change, shrinking it first if the server is
    /// over its memory budget. Called with the write lock held.
    pub(super) fn account(&self, inner: &mut Inner, now: Duration) {
        let receiving = self.stats.receiving.load(Relaxed);
        let held_back = self.stats.held_back.load(Relaxed);
        self.memory
            .update(&self.held, inner, now, receiving, held_back);
    }

    /// Disconnects the publisher, if one is connected (the control API): its session ends as
    /// refused, so the stream ends without waiting for it to come back. Returns its address.
    pub fn kick_publisher(&self) -> Option<SocketAddr> {
        let publisher = self.read().publisher?;
        self.kick.send_modify(|n| *n = n.wrapping_add(1));
        Some(publisher)
    }

    /// What a publisher's session watches for [`Stream::kick_publisher`].
    pub(crate) fn kicks(&self) -> watch::Receiver<u64> {
        self.kick.subscribe()
    }

    /// Disconnects every viewer of every output (the control API; they may come back); returns
    /// how many were connected.
    pub fn drop_viewers(&self) -> u64 {
        let connected = self
            .stats
            .viewers
            .iter()
            .map(|v| v.load(Relaxed).max(0) as u64)
            .sum();
        self.drop_viewers.send_modify(|n| *n = n.wrapping_add(1));
        connected
    }

    /// What a viewer loop watches for [`Stream::drop_viewers`].
    pub(super) fn drops(&self) -> watch::Receiver<u64> {
        self.drop_viewers.subscribe()
    }

    /// A receiver of the wake-ups of one output.
    pub(crate) fn subscribe(&self, output: Output) -> watch::Receiver<u64> {
        match output {
            // Per video frame: `.mp4` viewers too, for low latency (a fragment is a frame).
            Output::Ts | Output::Mp4 => self.tick.subscribe(),
            Output::Flv | Output::Rtmp => self.tick_media.subscribe(),
        }
    }

    /// A receiver of the LL-HLS wake-ups (see `tick_ll`).
    pub(super) fn subscribe_ll(&self) -> watch::Receiver<u64> {
        self.tick_ll.subscribe()
    }

    /// Wakes the LL-HLS and DASH requests that wait.
    pub(super) fn wake_ll(&self) {
        self.tick_ll.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes every viewer once.
    pub(super) fn wake(&self) {
        self.wake_ts();
        self.wake_media();
        self.wake_ll();
    }

    /// Wakes the `.ts` viewers (and HLS playlist waiters).
    pub(super) fn wake_ts(&self) {
        self.tick.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes the FLV and RTMP viewers.
    pub(super) fn wake_media(&self) {
        self.tick_media.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// All live streams.
#[derive(Debug)]
pub struct Live {
    pub config: LiveConfig,
    streams: Mutex<HashMap<String, Arc<Stream>>>,
    epoch: Instant,
    /// The wall clock at `epoch`, as an NTP timestamp (for MP4 `prft` boxes, recordings' names;
    /// moved when the system clock is stepped: clock.rs).
    pub(super) epoch_ntp: AtomicU64,
    instances: super::instance::Instances,
    /// What all streams hold, against the budget.
    pub memory: Arc<Memory>,
    /// The publish keys now: per stream, and the global one (replaced by a reload).
    keys: RwLock<Arc<PublishKeys>>,
    /// Where viewers run (fanout.rs).
    pub fanout: super::fanout::Fanout,
    /// Called with each new stream (not a publisher's return within the grace): the recorders.
    pub(crate) on_new_stream: std::sync::OnceLock<NewStream>,
    /// How soon frames reach the LL-HLS part requests that wait for them.
    pub(crate) delivery: super::delivery::Delivery,
}

/// What is done with each new stream.
pub(crate) struct NewStream(pub Box<OnNewStream>);

type OnNewStream = dyn Fn(&Arc<Stream>) + Send + Sync;

impl std::fmt::Debug for NewStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewStream")
    }
}

/// Publish keys: per stream, and one that may publish any stream without a key of its own.
#[derive(Debug, Default)]
struct PublishKeys {
    per_stream: HashMap<String, String>,
    global: Option<String>,
}

/// A stream name: 1 to 128 of `A-Z a-z 0-9 _ - .`, not starting with a dot.
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl Live {
    pub fn new(config: LiveConfig) -> Self {
        let memory = Arc::new(Memory::new(config.memory_budget, config.slab_size));
        let keys = PublishKeys {
            per_stream: config.keys.clone(),
            global: config.global_key.clone(),
        };
        Live {
            fanout: super::fanout::Fanout::start(config.fanout),
            memory,
            keys: RwLock::new(Arc::new(keys)),
            config,
            streams: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            epoch_ntp: AtomicU64::new(super::clock::ntp_now()),
            instances: super::instance::Instances::new(),
            on_new_stream: std::sync::OnceLock::new(),
            delivery: Default::default(),
        }
    }

    /// Time on the live clock: what the rings, segmenters and lifecycles are given.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// The instant of a time on the live clock (for timers).
    pub(super) fn instant(&self, at: Duration) -> Instant {
        self.epoch + at
    }

    fn timing(&self) -> Timing {
        Timing {
            grace: self.config.grace,
            linger: self.config.linger,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Stream>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Stream>> {
        self.map().get(name).cloned()
    }

    /// A stream that a new viewer of `output` can watch: not ended, and for FLV/RTMP one whose
    /// video those outputs can carry.
    pub fn watchable(&self, name: &str, output: Output) -> Result<Arc<Stream>, Error> {
        let s = self.get(name).filter(|s| !s.read().lifecycle.is_ended());
        let s = s.ok_or_else(|| Error::UnknownStream(name.into()))?;
        // (The read guard is gone before `want_media` takes the write lock.)
        if output != Output::Ts && !s.want_media(self.config.ring, self.config.ll_hls) {
            return Err(Error::NoFlvOutput(name.into()));
        }
        Ok(s)
    }

    /// Streams sorted by name.
    pub fn list(&self) -> Vec<Arc<Stream>> {
        let mut v: Vec<_> = self.map().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Replaces the publish keys (a reload): publishers from now on are checked against these;
    /// those already publishing stay.
    pub fn set_keys(&self, per_stream: HashMap<String, String>, global: Option<String>) {
        let keys = Arc::new(PublishKeys { per_stream, global });
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }

    /// Checks a publisher's key. Without any key configured, only loopback publishers may publish.
    pub fn authorize(&self, name: &str, key: Option<&str>, peer: IpAddr) -> Result<(), Error> {
        if !valid_name(name) {
            return Err(Error::BadStreamName(name.to_string()));
        }
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner()).clone();
        let expected: Vec<&str> = match keys.per_stream.get(name) {
            Some(k) => vec![k.as_str()],
            None => keys.global.iter().map(String::as_str).collect(),
        };
        if expected.is_empty() && keys.per_stream.is_empty() {
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
        let now = self.now();
        if let Some(s) = map.get(name).cloned() {
            let mut inner = s.write();
            match inner.lifecycle.begin(now) {
                Begin::Busy => return Err(Error::StreamBusy(name.to_string())),
                Begin::Continue { generation } => {
                    inner.publisher = Some(peer);
                    inner.hls.discontinuity();
                    if let Some(m) = &mut inner.media {
                        m.llhls.discontinuity();
                    }
                    s.account(&mut inner, now);
                    let mut ingest = inner.ingest.take().unwrap_or_default();
                    ingest.new_session();
                    drop(inner);
                    // The open LL-HLS segment and part were closed.
                    s.wake_ll();
                    tracing::info!(stream = %Clip(name), %peer, "publisher is back within the grace period; stream continues");
                    return Ok(Publish::new(self.clone(), s, ingest, generation));
                }
                Begin::Replace => {}
            }
        }
        if map.len() >= self.config.max_streams && !map.contains_key(name) {
            return Err(Error::TooManyStreams(self.config.max_streams));
        }
        if let Err(e) = self.memory.admit() {
            tracing::warn!(stream = %crate::clip::Clip(name), %peer, error = %e, "publish refused");
            return Err(e);
        }
        let instance = self.instances.next();
        let (tick, _) = watch::channel(0);
        let (tick_media, _) = watch::channel(0);
        let (tick_ll, _) = watch::channel(0);
        let stream = Arc::new(Stream {
            name: name.to_string(),
            instance,
            created: now,
            inner: RwLock::new(Inner {
                ring: Ring::new(self.config.ring),
                media: None,
                hls: Segmenter::new(self.config.hls).with_dir(format!("{instance:x}/")),
                lifecycle: Lifecycle::new(self.timing(), now),
                publisher: Some(peer),
                ingest: None,
                video_codec: None,
                audio_codecs: Vec::new(),
                origin: None,
                bitrate: Bitrate::new(Duration::from_secs(1), now),
            }),
            tick,
            tick_media,
            tick_ll,
            media_wanted: AtomicBool::new(false),
            stats: Stats::default(),
            held: AtomicUsize::new(0),
            memory: self.memory.clone(),
            kick: watch::channel(0).0,
            drop_viewers: watch::channel(0).0,
            ll_playlist: Mutex::new([None, None]),
            dash_manifest: Mutex::new(None),
            ll_floor: AtomicU64::new(0),
            hls_floor: AtomicU64::new(0),
            hls_playlist: Mutex::new(None),
            recorded: Mutex::default(),
        });
        stream.account(&mut stream.write(), now);
        // An ended stream of the same name is replaced; its viewers have already been told.
        map.insert(name.to_string(), stream.clone());
        tracing::info!(stream = %Clip(name), %peer, "publishing");
        if let Some(f) = self.on_new_stream.get() {
            (f.0)(&stream);
        }
        Ok(Publish::new(self.clone(), stream, Ingest::default(), 0))
    }

    /// Session `generation` of a stream ended; `ingest` is kept for a publisher that comes back.
    pub(super) fn end_session(
        self: &Arc<Self>,
        stream: &Arc<Stream>,
        generation: u64,
        end: End,
        ingest: Option<Ingest>,
    ) {
        let dropped = match &end {
            End::Dropped(why) => Some(why.clone()),
            _ => None,
        };
        let mut ingest = ingest;
        let transition = {
            let mut inner = stream.write();
            let t = inner.lifecycle.end(generation, end, self.now());
            if t != Transition::None {
                // What it kept back of its last frame goes out: nothing will decide it now.
                if let Some(ingest) = &mut ingest {
                    let inner = &mut *inner;
                    ingest.flush(&mut inner.ring, &mut inner.hls, self.now());
                }
                stream.stats.held_back.store(0, Relaxed);
                inner.publisher = None;
                inner.ingest = ingest;
                stream.account(&mut inner, self.now());
            }
            t
        };
        if let (Transition::Reconnecting { .. }, Some(reason)) = (&transition, dropped) {
            let grace = self.config.grace;
            tracing::info!(stream = %stream.name, reason, ?grace, "publisher dropped; waiting for it to come back");
        }
        self.apply(stream, transition);
    }

    /// The server is stopping: every stream ends now, those waiting for a publisher to come
    /// back too, so that their viewers drain and their recordings are finished.
    pub(crate) fn shut_down(self: &Arc<Self>) {
        for stream in self.list() {
            let t = stream.write().lifecycle.shut_down(self.now());
            self.apply(&stream, t);
        }
    }

    /// Carries out what the lifecycle decided, and schedules its next deadline.
    fn apply(self: &Arc<Self>, stream: &Arc<Stream>, transition: Transition) {
        match transition {
            Transition::None => return,
            Transition::Reconnecting { .. } => stream.wake(),
            Transition::Ended { reason, .. } => {
                {
                    let mut inner = stream.write();
                    inner.publisher = None;
                    let now = self.now();
                    inner.hls.end();
                    if let Some(m) = &mut inner.media {
                        m.llhls.end();
                    }
                    stream.account(&mut inner, now);
                }
                stream.wake();
                tracing::info!(stream = %stream.name, reason, "stream ended");
            }
            Transition::Forget => {
                let mut map = self.map();
                if map
                    .get(&stream.name)
                    .is_some_and(|s| Arc::ptr_eq(s, stream))
                {
                    map.remove(&stream.name);
                }
                return;
            }
        }
        let Some(at) = stream.read().lifecycle.deadline() else {
            return;
        };
        // Outside a runtime (a publisher dropped during shutdown) there is nothing to wake.
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let (live, stream) = (self.clone(), stream.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(live.instant(at)).await;
            let t = stream.write().lifecycle.poll(live.now());
            live.apply(&stream, t);
        });
    }

    /// Waits until the stream has a segment to list (a player that asks for the playlist right
    /// after the publisher started gets one instead of an error), at most `limit`.
    pub async fn wait_for_segment(&self, name: &str, limit: Duration) {
        let Some(stream) = self.get(name) else { return };
        let mut rx = stream.tick.subscribe();
        let deadline = Instant::now() + limit;
        loop {
            {
                let inner = stream.read();
                if !inner.hls.is_empty() || inner.lifecycle.is_ended() {
                    return;
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    }
}
