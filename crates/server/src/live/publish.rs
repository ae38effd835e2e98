//! A publisher's hold on a stream. Both sources come in here: whole TS packets from HTTP ingest
//! ([`Publish::packets`]) and FLV tag bodies from RTMP ([`Publish::tag`]). Each is serialised
//! once per output and pushed under a brief write lock; viewers are woken per
//! `live::Batch` (the `.ts` ring per video frame, FLV/RTMP per `media_batch` and keyframes).
//!
//! ```text
//!  TS source:   packets ─ Ingest::prepare/commit ─> TS ring + HLS
//!                       └ FromTs (once FLV/RTMP is wanted) ─> MediaOutputs (FLV + RTMP rings)
//!  RTMP source: tag body ─ MediaOutputs (FLV + RTMP rings)
//!                        └ ToTs ─> packets ─ Ingest::prepare/commit ─> TS ring + HLS
//! ```
//! Dropped without [`Publish::finish`] (the task was cancelled), the session counts as a
//! dropped connection: the publisher may come back within the grace period.

use super::{Live, Stream};
use crate::error::IngestError;
use bytes::{Bytes, BytesMut};
use live::{Batch, End, Ingest, MediaOutputs, Slab};
use media::flv::timeline::Timeline;
use media::flv::wire::{classify, Kind};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// RTMP sources without video wake `.ts` viewers at most this often.
const AUDIO_ONLY_WAKE: Duration = Duration::from_millis(20);

/// `.ts` and `.mp4` viewers of a TS source are woken at most this often: a publisher that sends
/// a packet per read (thousands of reads a second) would otherwise wake every viewer of the
/// stream for each, a hundred times the work of a wake per frame. What comes in between is
/// woken by the deadline [`Publish::wake_owed`] gives the read loop.
const TS_READ_WAKE: Duration = Duration::from_millis(5);

/// The largest codec configuration (an FLV sequence header) a publisher may send: an avcC or
/// hvcC is at most a few KiB (parameter sets are taken up to 16 KiB), an AAC or Opus one bytes.
pub(crate) const MAX_SEQUENCE_HEADER: usize = 64 << 10;

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
    /// FLV tags to TS, for an RTMP source's TS output.
    to_ts: media::flv::ToTs,
    muxed: Vec<u8>,
    /// Where an RTMP session's timestamps are on the stream's timeline: rising per track, and
    /// continuing the stream's clock (set at its first tag).
    timeline: Option<Timeline>,
    wake_ts: Batch,
    wake_media: Batch,
    /// The wakes of a TS source's reads ([`TS_READ_WAKE`]), and when one is owed by (live
    /// clock) for what was published without one.
    ts_reads: Batch,
    owed: Option<Duration>,
    /// TS bytes muxed from the tags (what the ingest bitrate holds too, `RateLimit::wait_made`).
    made: u64,
    /// Tags in a row that could not be read (skipped; [`BAD_TAGS`] of them end the publish).
    bad_tags: u32,
}

/// Unreadable tags in a row that end an RTMP publish: one (an empty message, an encoder's empty
/// configuration before its real one) is skipped, as other servers do; a publisher that sends
/// nothing readable is refused.
const BAD_TAGS: u32 = 64;

impl Publish {
    pub(super) fn new(
        live: Arc<Live>,
        stream: Arc<Stream>,
        ingest: Ingest,
        generation: u64,
    ) -> Self {
        let media_batch = live.config.media_batch;
        Publish {
            live,
            stream,
            ingest: Some(ingest),
            generation,
            end: None,
            to_flv: None,
            tags: Vec::new(),
            to_ts: media::flv::ToTs::default(),
            muxed: Vec::new(),
            timeline: None,
            wake_ts: Batch::new(AUDIO_ONLY_WAKE),
            wake_media: Batch::new(media_batch),
            ts_reads: Batch::new(TS_READ_WAKE),
            owed: None,
            made: 0,
            bad_tags: 0,
        }
    }

    /// TS bytes muxed from the publisher's tags so far.
    pub fn made(&self) -> u64 {
        self.made
    }

    /// Ends the session.
    pub fn finish(mut self, end: End) {
        self.end = Some(end);
    }

    /// Counts bytes received from the publisher; `holding`: what its connection holds of
    /// messages still arriving (RTMP's partial messages), for the memory budget.
    pub fn received(&self, n: usize, holding: usize) {
        self.stream.stats.bytes_in.fetch_add(n as u64, Relaxed);
        self.stream.stats.receiving.store(holding, Relaxed);
    }

    /// Publishes the whole TS packets a slab holds (HTTP ingest).
    pub fn slab(&mut self, slab: &mut Slab) -> Result<(), IngestError> {
        match slab.take_whole(media::ts::PACKET) {
            Some(packets) => self.packets(packets),
            None => Ok(()),
        }
    }

    /// Publishes whole TS packets of a TS source, and, once FLV or RTMP viewers want them, the
    /// same frames as FLV tags.
    pub fn packets(&mut self, packets: BytesMut) -> Result<(), IngestError> {
        let Some(ingest) = self.ingest.as_mut() else {
            return Ok(());
        };
        // Restamped first: the FLV tags are timed on the stream's clock, as its recording is.
        let data = ingest.prepare(packets).map_err(IngestError::Ts)?;
        if self.to_flv.is_none() && self.stream.media_wanted.load(Relaxed) {
            self.to_flv = Some(match ingest.flv_clock() {
                Some(clock) => media::flv::FromTs::on_clock(clock),
                None => media::flv::FromTs::default(),
            });
        }
        self.tags.clear();
        if let Some(conv) = &mut self.to_flv {
            conv.feed(&data, &mut self.tags);
            ingest.kept_flv_clock(conv.clock());
            // What the conversion gathers counts against the budget with the receive slab.
            let holding = conv.holding();
            self.stream.stats.receiving.store(holding, Relaxed);
        }
        if !self.tags.is_empty() {
            let now = self.live.now();
            let ntp = self.live.ntp(now);
            let keyframe = self.tags.iter().any(|t| t.keyframe);
            let (limits, ll) = (self.live.config.ring, self.live.config.ll_hls);
            let ll_changed = {
                let mut inner = self.stream.write();
                let media = inner.media.get_or_insert_with(|| {
                    MediaOutputs::new(limits, ll).with_dir(self.stream.dir())
                });
                let before = media.llhls.parts_mark();
                media.flv_clock = self.to_flv.as_ref().and_then(media::flv::FromTs::clock);
                for t in &self.tags {
                    let kind = Kind {
                        sequence: t.sequence,
                        keyframe: t.keyframe,
                    };
                    media.push(t.video, &t.body, t.ms, kind, now, ntp);
                }
                let ll_changed = media.llhls.parts_mark() != before;
                self.stream.account(&mut inner, now);
                ll_changed
            };
            if self.wake_media.due(keyframe, now) {
                self.stream.wake_media();
            }
            if ll_changed {
                self.stream.wake_ll();
            }
        }
        let now = self.live.now();
        let wake = self.ts_reads.due(false, now);
        self.commit_prepared(data, wake);
        self.owed = match wake {
            true => None,
            false => self.owed.or(Some(now + TS_READ_WAKE)),
        };
        Ok(())
    }

    /// When the viewers are owed a wake for what was published since the last one (live
    /// clock), if they are: the read loop wakes them then ([`Publish::wake_now`]) if no read
    /// has done it before.
    pub fn wake_owed(&self) -> Option<Duration> {
        self.owed
    }

    /// Wakes the `.ts` (and `.mp4`) viewers for what was published without a wake.
    pub fn wake_now(&mut self) {
        if self.owed.take().is_some() {
            self.ts_reads.due(true, self.live.now());
            self.stream.wake_ts();
        }
    }

    /// Publishes one FLV tag body of an RTMP source at `ms`: serialised once for the FLV and
    /// RTMP outputs, remuxed to TS for the TS output. A sequence header over
    /// [`MAX_SEQUENCE_HEADER`] ends the publish: every keyframe unit of the outputs holds the
    /// headers current when it came (for viewers that start there), which the ring's byte count
    /// does not see.
    pub fn tag(&mut self, video: bool, body: &[u8], ms: u32) -> Result<(), IngestError> {
        if body.is_empty() {
            // Nothing to play (some encoders send empty media messages).
            return Ok(());
        }
        let now = self.live.now();
        let (limits, ll) = (self.live.config.ring, self.live.config.ll_hls);
        let kind = classify(video, body);
        if kind.sequence && body.len() > MAX_SEQUENCE_HEADER {
            let len = body.len();
            let max = MAX_SEQUENCE_HEADER;
            return Err(IngestError::SequenceHeader { video, len, max });
        }
        // Every output is timed on a timeline that rises per track whatever the publisher's
        // timestamps do (`media::flv::timeline`: a repeat, jitter, a clock restarted without
        // reconnecting). A publisher that came back within the grace period starts its clock
        // over: the timeline continues the stream's (worked out at its first tag).
        // (A sequence header is not a frame: the frame after it has its timestamp. The timeline
        // is anchored at the session's first frame, not at a header before it, which an encoder
        // may time on another clock.)
        // (Kept, to be put back if the tag cannot be read: a tag that reaches no output does not
        // move the clock either.)
        let timeline_before = self.timeline.clone();
        let time = match &mut self.timeline {
            Some(timeline) if kind.sequence => timeline.peek(video, ms),
            Some(timeline) => timeline.place(video, ms).0,
            None => {
                let mut inner = self.stream.write();
                let media = inner.media.get_or_insert_with(|| {
                    MediaOutputs::new(limits, ll).with_dir(self.stream.dir())
                });
                let at = (ms, u64::from(ms.wrapping_add(media.continuation(ms))));
                if kind.sequence {
                    at.1
                } else {
                    let timeline = Timeline::anchored([Some(at), Some(at)]);
                    self.timeline.insert(timeline).place(video, ms).0
                }
            }
        };
        // The outputs' timestamps are 32-bit (FLV, RTMP): the timeline's low bits, wrapping.
        let ms = time as u32;
        // Muxed to TS first, outside the stream's lock: a tag that cannot be read reaches no
        // output (an unreadable configuration would be what new FLV and RTMP viewers get first).
        self.muxed.clear();
        let muxed = if video {
            self.to_ts.video(body, ms, &mut self.muxed)
        } else {
            self.to_ts.audio(body, ms, &mut self.muxed)
        };
        let ll_changed = muxed.is_ok() && {
            let mut inner = self.stream.write();
            let media = inner
                .media
                .get_or_insert_with(|| MediaOutputs::new(limits, ll).with_dir(self.stream.dir()));
            // The TS muxed from these tags is restamped after a reconnect (the tags' clock
            // continues, the TS's may not): a conversion back must undo that too.
            let shift = self.ingest.as_ref().map_or(0, Ingest::restamp_offset);
            media.flv_clock = Some(media::flv::ToTs::clock(ms, shift));
            let before = media.llhls.parts_mark();
            media.push(video, body, ms, kind, now, self.live.ntp(now));
            let ll_changed = media.llhls.parts_mark() != before;
            self.stream.account(&mut inner, now);
            ll_changed
        };
        if ll_changed {
            self.stream.wake_ll();
        }
        if muxed.is_err() {
            self.timeline = timeline_before;
        }
        match muxed {
            Ok(()) => self.bad_tags = 0,
            Err(error) if self.bad_tags + 1 >= BAD_TAGS => {
                return Err(IngestError::Tag { video, error });
            }
            Err(error) => {
                self.bad_tags += 1;
                tracing::debug!(stream = %self.stream.name, video, %error, "a tag that cannot be read, skipped");
                return Ok(());
            }
        }
        self.made += self.muxed.len() as u64;
        if self.to_ts.take_tracks_changed() {
            // The TS's tracks changed (video after audio alone, or another video codec): HLS
            // players are told, at the segment its first keyframe begins.
            self.stream.write().hls.tracks_change();
        }
        if self.wake_media.due(kind.keyframe, now) {
            self.stream.wake_media();
        }
        // `.ts` viewers are woken once per video frame (audio waits for the next one), or every
        // 20 ms without video.
        let wake = self.wake_ts.due(video, now);
        if self.muxed.is_empty() {
            if wake {
                self.stream.wake_ts();
            }
            return Ok(());
        }
        let packets = BytesMut::from(Bytes::from(std::mem::take(&mut self.muxed)));
        self.commit(packets, wake)
    }

    /// Commits whole TS packets to the ring and HLS; wakes the `.ts` viewers if `wake`.
    fn commit(&mut self, packets: BytesMut, wake: bool) -> Result<(), IngestError> {
        let Some(ingest) = self.ingest.as_mut() else {
            return Ok(());
        };
        let data = ingest.prepare(packets).map_err(IngestError::Ts)?;
        self.commit_prepared(data, wake);
        Ok(())
    }

    /// Commits what `Ingest::prepare` returned; wakes the `.ts` viewers if `wake`.
    fn commit_prepared(&mut self, data: Bytes, wake: bool) {
        let Some(ingest) = self.ingest.as_mut() else {
            return;
        };
        let now = self.live.now();
        {
            let mut inner = self.stream.write();
            let inner = &mut *inner;
            ingest.commit(data, &mut inner.ring, &mut inner.hls, now);
            let held_back = &self.stream.stats.held_back;
            held_back.store(ingest.holding(), Relaxed);
            if inner.video_codec != ingest.video_codec() {
                inner.video_codec = ingest.video_codec();
                inner.audio_codecs = ingest.audio_codecs().to_vec();
            }
            let total = self.stream.stats.bytes_in.load(Relaxed);
            inner.bitrate.update(total, now);
            self.stream.account(inner, now);
        }
        if wake {
            // `.ts` viewers (and `.mp4` ones, whose fragments were pushed before this) are
            // woken per frame; FLV/RTMP viewers have their own, batched wake-ups.
            self.stream.wake_ts();
        }
    }
}

impl Drop for Publish {
    fn drop(&mut self) {
        let end = self
            .end
            .take()
            .unwrap_or_else(|| End::Dropped("session cancelled".into()));
        let ingest = self.ingest.take();
        self.live
            .end_session(&self.stream, self.generation, end, ingest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTMP publisher's empty media messages and an unreadable configuration (an encoder's
    /// empty avcC before its real one) are skipped; a publisher that sends nothing readable is
    /// refused.
    #[tokio::test]
    async fn unreadable_tags_are_skipped_and_only_a_run_of_them_ends_the_publish() {
        let live = Arc::new(Live::new(super::super::LiveConfig::default()));
        let mut p = live
            .begin_publish("cam", "127.0.0.1:1".parse().unwrap())
            .unwrap();
        assert!(p.tag(true, &[], 0).is_ok(), "an empty message");
        assert!(p.tag(false, &[], 0).is_ok(), "an empty message");
        assert!(p.tag(true, &[0x17, 0, 0, 0, 0], 0).is_ok(), "an empty avcC");
        // The avcC was the first in a row.
        for n in 2..BAD_TAGS {
            assert!(p.tag(false, &[0xaf], n).is_ok(), "bad tag {n}");
        }
        let e = p.tag(false, &[0xaf], BAD_TAGS).unwrap_err();
        assert!(matches!(e, IngestError::Tag { video: false, .. }), "{e}");
    }
}
