//! A live stream's tracks and frames, as they come, into an init segment and CMAF fragments:
//! one fragment per video frame, carrying the audio frames that arrived since the previous one
//! (an audio-only stream: one per audio frame), so a frame is on the wire as soon as it is in.
//!
//! Sans-I/O and generic over the caller's handle on a frame's bytes (`T`: a `Bytes` slice of
//! the tag body in the live wing), which it hands back in the order the bytes go on the wire
//! after the fragment's head: the writer never touches sample bytes.
//!
//! A frame's duration is not known until the next frame of its track arrives; it is written as
//! the track's previous frame interval, and every fragment's `tfdt` gives the exact decode time,
//! so an estimate that was off does not accumulate.
//!
//! The fragments' timeline is 64-bit and rises per track ([`Timeline`]): a publisher's 32-bit
//! millisecond clock wraps after 49.7 days, and a publisher may step its timestamps back, where
//! a decode time that went back would stall every player of the stream (MSE drops or overlaps
//! the frames, an HTTP-fMP4 `<video>` stops).

use super::flv::Tag;
use super::fragment::{fragment_head, Run, Sample};
use super::init::{init_segment, AudioTrack, VideoTrack};
use super::{AUDIO_TRACK, VIDEO_TRACK};
use crate::error::Result;
use crate::flv::timeline::{Anchor, Timeline};

/// How long (stream time, ms) fragments wait for the second track's configuration: an init
/// segment's tracks cannot change under a viewer, so the first one should name both.
const START_WAIT_MS: u32 = 1000;

/// What the fragmenter produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<T> {
    /// A new init segment (the first, or one with a changed decoder configuration): what every
    /// viewer that starts from here on gets first.
    Init(Vec<u8>),
    /// A fragment: `head` (`moof` and `mdat` header), then the frames' bytes in this order.
    Fragment {
        head: Vec<u8>,
        data: Vec<T>,
        /// It starts with a video keyframe (or the stream has no video): a viewer may start here.
        keyframe: bool,
        /// Decode time of its video frame (or first audio frame), ms, on the fragments' 64-bit
        /// timeline (see the module's head).
        ms: u64,
        /// Per track (video, audio): the head of a fragment of that track alone, followed on
        /// the wire by that track's frames of `data` (video: the first, audio: the others);
        /// `None` for a track with no frame here. Separate CMAF tracks, as DASH needs them,
        /// from the same sample bytes.
        tracks: [Option<Vec<u8>>; 2],
    },
}

#[derive(Debug)]
struct Pending<T> {
    /// Decode time on the fragments' timeline, ms.
    time: u64,
    /// What it is assumed to last if it is the last of its fragment.
    estimate: u32,
    size: u32,
    data: T,
}

#[derive(Debug)]
pub struct Fragmenter<T> {
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    /// Whether the current configuration's init segment has been emitted.
    init_sent: bool,
    sequence: u32,
    /// Where each frame is on the fragments' timeline.
    timeline: Timeline,
    /// The time of the last fragment made (what [`Event::Fragment`]'s `ms` never goes below).
    last_ms: u64,
    /// Audio frames waiting for the next video frame.
    queued: Vec<Pending<T>>,
    /// Fragments have started: at the first video keyframe (or first audio frame without video)
    /// once both tracks are configured, or [`START_WAIT_MS`] after the first frame.
    started: bool,
    first_ms: Option<u32>,
    /// Frames dropped: before the configuration or the first keyframe.
    pub skipped: u64,
}

impl<T> Default for Fragmenter<T> {
    fn default() -> Self {
        Fragmenter {
            video: None,
            audio: None,
            init_sent: false,
            sequence: 0,
            timeline: Timeline::default(),
            last_ms: 0,
            queued: Vec::new(),
            started: false,
            first_ms: None,
            skipped: 0,
        }
    }
}

/// Most audio frames held for a video frame (about a second of AAC): past it they go out in a
/// fragment of their own (a stream whose video stopped).
const MAX_QUEUED: usize = 48;

impl<T> Fragmenter<T> {
    /// A fragmenter whose timeline places each track's timestamps where `anchor` (what
    /// [`Self::anchor`] of another one says) does: a DVR viewer's own, making the fragments the
    /// stream made.
    pub fn anchored(anchor: Anchor) -> Self {
        Fragmenter {
            timeline: Timeline::anchored(anchor),
            ..Fragmenter::default()
        }
    }

    /// Per track (video, audio): where its last frame's timestamp is on the fragments'
    /// timeline, `(ms, time)`.
    pub fn anchor(&self) -> Anchor {
        self.timeline.anchor()
    }

    /// The video track's configuration (a sequence header): a change makes a new init segment.
    /// Once fragments have started, a track that was not in the first init segment is not added
    /// (players cannot take a new track mid-stream): its frames are skipped.
    pub fn video_config(&mut self, track: VideoTrack) {
        if self.started && self.video.is_none() {
            self.skipped += 1;
        } else if self.video.as_ref() != Some(&track) {
            self.video = Some(track);
            self.init_sent = false;
        }
    }

    /// The audio track's configuration (as [`Self::video_config`]).
    pub fn audio_config(&mut self, track: AudioTrack) {
        if self.started && self.audio.is_none() {
            self.skipped += 1;
        } else if self.audio.as_ref() != Some(&track) {
            self.audio = Some(track);
            self.init_sent = false;
        }
    }

    /// Whether a video track is configured (fragments' times then refer to it).
    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }

    /// The configured tracks (video, audio).
    pub fn tracks(&self) -> (Option<&VideoTrack>, Option<&AudioTrack>) {
        (self.video.as_ref(), self.audio.as_ref())
    }

    /// The init segment of one track alone (a CMAF header: video, or audio), if it is configured.
    pub fn track_init(&self, video: bool) -> Option<Vec<u8>> {
        match video {
            true => self.video.as_ref().map(|v| init_segment(Some(v), None)),
            false => self.audio.as_ref().map(|a| init_segment(None, Some(a))),
        }
    }

    /// The init segment of the tracks configured so far.
    pub fn init(&self) -> Option<Vec<u8>> {
        (self.video.is_some() || self.audio.is_some())
            .then(|| init_segment(self.video.as_ref(), self.audio.as_ref()))
    }

    /// One FLV tag body at `ms` ([`super::flv::read`]): a configuration, or a frame whose bytes
    /// from offset `start` of the body `sample(start)` hands back as the caller's `T` (a slice,
    /// not a copy, in the live wing). An error is a tag that cannot be read (a configuration
    /// without an SPS, not AAC) or a fragment too large for a 32-bit `mdat`; nothing changes then.
    pub fn tag(
        &mut self,
        video: bool,
        ms: u32,
        body: &[u8],
        sample: impl FnOnce(usize) -> T,
        out: &mut Vec<Event<T>>,
    ) -> Result<()> {
        match super::flv::read(video, body)? {
            Tag::Video(v) => self.video_config(v),
            Tag::Audio(a) => self.audio_config(a),
            Tag::Frame {
                video,
                keyframe,
                cto,
                data,
            } => {
                let size = body.len() - data;
                return self.frame(video, keyframe, cto, ms, size, sample(data), out);
            }
            Tag::Skip => {}
        }
        Ok(())
    }

    /// A coded frame of `size` bytes (held by `data`) at decode time `ms`; appends what it
    /// completes to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn frame(
        &mut self,
        video: bool,
        keyframe: bool,
        cto: i32,
        ms: u32,
        size: usize,
        data: T,
        out: &mut Vec<Event<T>>,
    ) -> Result<()> {
        let Ok(size) = u32::try_from(size) else {
            self.skipped += 1;
            return Ok(());
        };
        // (A clock that went back before the start begins the wait again.)
        let first = match self.first_ms {
            Some(first) if (ms.wrapping_sub(first) as i32) >= 0 => first,
            _ => *self.first_ms.insert(ms),
        };
        let ready = (self.video.is_some() && self.audio.is_some())
            || ms.wrapping_sub(first) >= START_WAIT_MS;
        if video {
            // A viewer can start only at a keyframe: fragments start at one.
            let may_start = self.started || (keyframe && ready);
            if self.video.is_none() || !may_start {
                self.skipped += 1;
                return Ok(());
            }
            self.started = true;
            self.send_init(out);
            let (time, duration) = self.timeline.place(true, ms);
            let sample = Sample {
                duration,
                size,
                keyframe,
                cto,
            };
            self.fragment(Some((time, sample, data)), out)
        } else {
            if self.audio.is_none() || (!self.started && (self.video.is_some() || !ready)) {
                self.skipped += 1;
                return Ok(());
            }
            self.started = true;
            self.send_init(out);
            let (time, estimate) = self.timeline.place(false, ms);
            self.queued.push(Pending {
                time,
                estimate,
                size,
                data,
            });
            if self.video.is_none() || self.queued.len() >= MAX_QUEUED {
                self.fragment(None, out)?;
            }
            Ok(())
        }
    }

    fn send_init(&mut self, out: &mut Vec<Event<T>>) {
        if !self.init_sent {
            if let Some(init) = self.init() {
                out.push(Event::Init(init));
            }
            self.init_sent = true;
        }
    }

    /// One fragment: the video frame (if any), then the queued audio frames.
    fn fragment(&mut self, video: Option<(u64, Sample, T)>, out: &mut Vec<Event<T>>) -> Result<()> {
        let queued = std::mem::take(&mut self.queued);
        // Each audio frame lasts until the next; the last one, as long as the interval before it.
        // Never 0 (the timeline rises): players stall on a sample of no duration.
        let audio: Vec<Sample> = queued
            .iter()
            .enumerate()
            .map(|(i, p)| Sample {
                duration: queued
                    .get(i + 1)
                    .map_or(p.estimate, |next| {
                        u32::try_from(next.time.saturating_sub(p.time)).unwrap_or(u32::MAX)
                    })
                    .max(1),
                size: p.size,
                keyframe: true,
                cto: 0,
            })
            .collect();
        let video_sample = video.as_ref().map(|v| [v.1]);
        let mut runs = Vec::with_capacity(2);
        if let (Some((ms, _, _)), Some(s)) = (&video, &video_sample) {
            runs.push(Run {
                track_id: VIDEO_TRACK,
                base_time: *ms,
                samples: s,
            });
        }
        if let Some(first) = queued.first() {
            runs.push(Run {
                track_id: AUDIO_TRACK,
                base_time: first.time,
                samples: &audio,
            });
        }
        if runs.is_empty() {
            return Ok(());
        }
        self.sequence = self.sequence.wrapping_add(1);
        let head = fragment_head(self.sequence, &runs)?;
        let mut tracks = [None, None];
        for run in &runs {
            let i = usize::from(run.track_id == AUDIO_TRACK);
            tracks[i] = Some(if runs.len() == 1 {
                head.clone()
            } else {
                fragment_head(self.sequence, std::slice::from_ref(run))?
            });
        }
        let (keyframe, ms) = match &video {
            Some((ms, s, _)) => (s.keyframe, *ms),
            None => (self.video.is_none(), queued.first().map_or(0, |p| p.time)),
        };
        // Audio flushed alone (its video stopped) may begin before the last video frame: the
        // fragments' times, which LL-HLS cuts by, never go back.
        let ms = ms.max(self.last_ms);
        self.last_ms = ms;
        let mut data = Vec::with_capacity(1 + queued.len());
        if let Some((_, _, d)) = video {
            data.push(d);
        }
        data.extend(queued.into_iter().map(|p| p.data));
        out.push(Event::Fragment {
            head,
            data,
            keyframe,
            ms,
            tracks,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests;
