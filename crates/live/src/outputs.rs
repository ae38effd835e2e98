//! The FLV, RTMP and fragmented-MP4 outputs of a stream, sans-I/O: each FLV tag body is
//! serialised once as an FLV tag ([`media::flv::wire`]) and once as an RTMP message
//! ([`rtmp::write`]) and pushed to that output's ring; the latest sequence headers (AVC/HEVC
//! decoder configuration, AAC AudioSpecificConfig) are kept aside and handed, like a TS
//! keyframe's PAT/PMT, to every viewer that starts at a keyframe. The fMP4 output is written
//! once per stream by [`media::cmaf::Fragmenter`]: a fragment per video frame, its head a unit
//! of the MP4 ring and its samples `Bytes` slices of the FLV tag just made (no copy); the init
//! segment is what a viewer starting at a keyframe gets first.
//!
//! ```text
//!  tag body ──┬─ flv_tag ──────> FLV ring   (HTTP-FLV viewers)
//!             │     └─ Fragmenter: moof+mdat head, sample = slice of the FLV tag
//!             │                 ──> MP4 ring (HTTP-fMP4 viewers)
//!             └─ av_message ───> RTMP ring  (RTMP players)
//!  sequence header: kept in `seq[video]`, sent before the keyframe a viewer starts at;
//!  for MP4, the init segment made from both
//! ```
//! The RTMP clock of the stream (the latest timestamp pushed) is kept here too, so that a
//! publisher that comes back within the grace period continues it instead of starting over.

use crate::llhls::{wallclock, LlHls, LlLimits, TrackInit};
use crate::ring::{Limits, Ring};
use bytes::Bytes;
use media::cmaf::{self, Event, Fragmenter};
use media::flv::wire::{self, Kind};
use std::time::Duration;

/// The chunk size announced to every RTMP peer and used for the shared RTMP messages.
pub const RTMP_CHUNK_SIZE: usize = 4096;
/// The message stream id the shared RTMP messages are written for (the first `createStream`).
pub const RTMP_PLAY_STREAM_ID: u32 = 1;
/// How often (stream time) a stream without video has a frame FLV and RTMP viewers may start
/// at, as the TS splitter cuts a radio stream (`media::ts::AUDIO_CUT`).
pub const AUDIO_START_MS: u32 = 500;

#[derive(Debug)]
pub struct MediaOutputs {
    pub flv: Ring,
    pub rtmp: Ring,
    /// Fragmented MP4 (CMAF): fragment heads and sample slices; the init segment before a
    /// viewer's first keyframe fragment.
    pub mp4: Ring,
    /// Low-latency HLS: the same fragments as the MP4 ring, cut into parts and segments.
    pub llhls: LlHls,
    fragmenter: Fragmenter<Bytes>,
    /// The latest init segment.
    init: Option<Bytes>,
    events: Vec<Event<Bytes>>,
    /// The latest audio (0) and video (1) sequence headers, as (FLV tag, RTMP message).
    seq: [Option<(Bytes, Bytes)>; 2],
    /// The latest RTMP timestamp (ms) pushed.
    clock: Option<u32>,
    /// A stream without video: the time (ms) of the last audio frame viewers may start at
    /// ([`AUDIO_START_MS`]).
    audio_start: Option<u32>,
    /// The 90 kHz clock of the stream's TS that the FLV timestamps count from (set by the
    /// publisher): what an `.flv` DVR viewer converting a TS recording times its tags on
    /// ([`crate::rewind`]).
    pub flv_clock: Option<media::flv::Clock>,
}

impl MediaOutputs {
    pub fn new(limits: Limits, ll: LlLimits) -> Self {
        MediaOutputs {
            flv: Ring::new(limits),
            rtmp: Ring::new(limits),
            mp4: Ring::new(limits),
            llhls: LlHls::new(ll),
            fragmenter: Fragmenter::default(),
            init: None,
            events: Vec::new(),
            seq: [None, None],
            clock: None,
            audio_start: None,
            flv_clock: None,
        }
    }

    /// LL-HLS and DASH URIs in directory `dir` ([`LlHls::with_dir`]).
    pub fn with_dir(mut self, dir: String) -> Self {
        self.llhls = self.llhls.with_dir(dir);
        self
    }

    /// The offset that makes a new publisher session's timestamps continue this stream's clock,
    /// 40 ms after where it stopped; `first_ms` is the session's first timestamp. A new stream
    /// keeps its publisher's clock, unless that is far on (past 2³¹ ms: an encoder that counts
    /// from its boot): it starts at 1 s then, so that the 32-bit millisecond clock, which FLV
    /// and RTMP viewers get as it is (players differ in how they take its wrap; the fMP4
    /// timeline is 64-bit), does not wrap within weeks.
    pub fn continuation(&self, first_ms: u32) -> u32 {
        match self.clock {
            Some(last) => last.wrapping_add(40).wrapping_sub(first_ms),
            None if first_ms >= 1 << 31 => 1000u32.wrapping_sub(first_ms),
            None => 0,
        }
    }

    /// Bytes held by both rings and the kept sequence headers.
    pub fn bytes(&self) -> usize {
        let seq: usize = self
            .seq
            .iter()
            .flatten()
            .map(|(t, m)| t.len() + m.len())
            .sum();
        // The MP4 ring's samples are slices of the FLV ring's tags, and LL-HLS holds the MP4
        // ring's units: counted more than once, on the safe side of the budget.
        let init = self.init.as_ref().map_or(0, Bytes::len);
        self.flv.bytes() + self.rtmp.bytes() + self.mp4.bytes() + self.llhls.bytes() + seq + init
    }

    /// The rings down to their current GOP and recent units (see [`Ring::shrink_to_gop`]), and
    /// LL-HLS down to `keep_segments`; the bytes dropped.
    pub fn shrink_to_gop(&mut self, now: Duration, keep: Duration, keep_segments: usize) -> usize {
        self.flv.shrink_to_gop(now, keep)
            + self.rtmp.shrink_to_gop(now, keep)
            + self.mp4.shrink_to_gop(now, keep)
            + self.llhls.shrink(keep_segments)
    }

    /// Serialises one tag body at `ms` for every output and pushes it (a sequence header is
    /// kept aside instead). `ntp`: the wall clock at `now` (NTP format), what each MP4 fragment's
    /// `prft` says the frame was received at.
    pub fn push(&mut self, video: bool, body: &[u8], ms: u32, kind: Kind, now: Duration, ntp: u64) {
        // The later of the tracks' frames' (a publisher that comes back goes on after both; a
        // sequence header, which may be timed on another clock than the frames, is not one).
        if !kind.sequence {
            self.clock = Some(match self.clock {
                Some(c) if (ms.wrapping_sub(c) as i32) < 0 => c,
                _ => ms,
            });
        }
        let tag = Bytes::from(wire::flv_tag(
            if video { wire::VIDEO } else { wire::AUDIO },
            ms,
            body,
        ));
        self.push_mp4(video, &tag, ms, now, ntp);
        let msg = Bytes::from(rtmp::write::av_message(
            video,
            ms,
            body,
            RTMP_CHUNK_SIZE,
            RTMP_PLAY_STREAM_ID,
        ));
        if kind.sequence {
            // A configuration that changed (a publisher's new resolution or sample rate): in
            // band too, for the viewers watching already (those that start later get it before
            // their first keyframe).
            // A first one after the stream's first keyframe (an encoder that configures its
            // audio after its first video frame; a conversion that met audio's after video's
            // keyframe) is in band too, for the viewers that started at that keyframe.
            let slot = &mut self.seq[usize::from(video)];
            let changed = match slot {
                Some((t, _)) => t[11..] != tag[11..],
                None => self.flv.last_keyframe().is_some(),
            };
            *slot = Some((tag.clone(), msg.clone()));
            if changed {
                self.flv.push(tag, now);
                self.rtmp.push(msg, now);
            }
            return;
        }
        // Without video, viewers start at an audio frame (one each AUDIO_START_MS at most),
        // given the audio's configuration first.
        let audio_start = !video
            && self.seq[1].is_none()
            && self
                .audio_start
                .is_none_or(|at| ms.wrapping_sub(at) >= AUDIO_START_MS);
        if audio_start {
            self.audio_start = Some(ms);
        }
        if kind.keyframe || audio_start {
            // Video's configuration first, then audio's.
            let flv_psi = self.seq.iter().rev().flatten().map(|(t, _)| t.clone());
            self.flv.push_keyframe(tag, flv_psi.collect(), now);
            let rtmp_psi = self.seq.iter().rev().flatten().map(|(_, m)| m.clone());
            self.rtmp.push_keyframe(msg, rtmp_psi.collect(), now);
        } else {
            self.flv.push(tag, now);
            self.rtmp.push(msg, now);
        }
    }

    /// The stream's tracks as its fMP4 output has them: what an `.mp4` DVR viewer's own
    /// fragmenter starts with ([`crate::rewind`]).
    pub fn tracks(&self) -> (Option<cmaf::VideoTrack>, Option<cmaf::AudioTrack>) {
        let (v, a) = self.fragmenter.tracks();
        (v.cloned(), a.cloned())
    }

    /// Where the fMP4 output's timeline is (`Fragmenter::anchor`): what an `.mp4` DVR viewer's
    /// own fragmenter starts on, so that its fragments are the ring's.
    pub fn anchor(&self) -> cmaf::Anchor {
        self.fragmenter.anchor()
    }

    /// Each configured track's own init segment and description (video, audio), for DASH.
    fn track_inits(&self) -> [Option<TrackInit>; 2] {
        let (video, audio) = self.fragmenter.tracks();
        let v = video.map(|v| TrackInit {
            init: Bytes::from(self.fragmenter.track_init(true).unwrap_or_default()),
            codecs: v.codecs(),
            shape: (u32::from(v.width), u32::from(v.height)),
        });
        let a = audio.map(|a| TrackInit {
            init: Bytes::from(self.fragmenter.track_init(false).unwrap_or_default()),
            codecs: a.codecs(),
            shape: (a.sample_rate, u32::from(a.channels)),
        });
        [v, a]
    }

    /// The fMP4 output of one FLV tag (`tag`: header, body, PreviousTagSize).
    fn push_mp4(&mut self, video: bool, tag: &Bytes, ms: u32, now: Duration, ntp: u64) {
        const HEAD: usize = 11;
        let Some(body) = tag.get(HEAD..tag.len().saturating_sub(4)) else {
            return;
        };
        // A tag that cannot be read (a configuration without an SPS, not AAC) leaves the tracks
        // as they were; a frame too large for one fragment is left out.
        let sample = |start: usize| tag.slice(HEAD + start..HEAD + body.len());
        let _ = self
            .fragmenter
            .tag(video, ms, body, sample, &mut self.events);
        let mut events = std::mem::take(&mut self.events);
        for e in events.drain(..) {
            match e {
                Event::Init(init) => {
                    // Viewers already watching get the new configuration where it changed.
                    let init = Bytes::from(init);
                    self.init = Some(init.clone());
                    self.llhls.init_tracks(init.clone(), self.track_inits());
                    self.mp4.push(init, now);
                }
                Event::Fragment {
                    head,
                    data,
                    keyframe,
                    ms,
                    tracks,
                } => {
                    // The producer reference time first: when the frame reached the ingest.
                    let track = if self.fragmenter.has_video() {
                        cmaf::VIDEO_TRACK
                    } else {
                        cmaf::AUDIO_TRACK
                    };
                    let mut prft = cmaf::prft(track, ntp, ms);
                    prft.extend_from_slice(&head);
                    let prft = Bytes::from(prft);
                    let unit = std::iter::once(prft.clone()).chain(data.iter().cloned());
                    let wall = wallclock::ntp_to_unix_ms(ntp);
                    // Each track alone (DASH): its own head, then its samples (video's is the
                    // first of `data`).
                    let video = usize::from(tracks[0].is_some());
                    let [v, a] = tracks;
                    let own = |head: Option<Vec<u8>>, samples: &[Bytes]| match head {
                        Some(h) => std::iter::once(Bytes::from(h))
                            .chain(samples.iter().cloned())
                            .collect(),
                        None => Vec::new(),
                    };
                    let split = [
                        own(v, data.get(..video).unwrap_or_default()),
                        own(a, data.get(video..).unwrap_or_default()),
                    ];
                    // The unit's number in the MP4 ring, which it is pushed to next.
                    let seq = Some(self.mp4.end_seq());
                    self.llhls
                        .fragment_tracks(unit.collect(), split, keyframe, ms, wall, seq);
                    // One unit: a viewer gets a fragment's head and samples together or not at
                    // all (a skip never leaves it inside an mdat).
                    let init = if keyframe {
                        self.init.iter().cloned().collect()
                    } else {
                        Vec::new()
                    };
                    self.mp4.push_parts(prft, data, keyframe, init, now);
                }
            }
        }
        self.events = events;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{Step, Viewer, ViewerPolicy};

    const LIMITS: Limits = Limits {
        max_bytes: 1 << 20,
        max_age: Duration::from_secs(10),
    };
    /// A wall clock (NTP format) for the pushes: 2026-11-26 00:00:00 UTC.
    const NTP: u64 = (3_973_190_400u64) << 32;

    const POLICY: ViewerPolicy = ViewerPolicy {
        max_skips: 3,
        skip_period: Duration::from_secs(60),
        max_batch_bytes: 1 << 20,
        max_batch_units: 512,
    };

    fn kind(sequence: bool, keyframe: bool) -> Kind {
        Kind { sequence, keyframe }
    }

    #[test]
    fn a_viewer_starts_with_the_sequence_headers_then_the_keyframe() {
        let mut o = MediaOutputs::new(LIMITS, LlLimits::default());
        let t = Duration::ZERO;
        o.push(true, &[0x17, 0, 1], 0, kind(true, false), t, 0);
        o.push(false, &[0xaf, 0, 2], 0, kind(true, false), t, 0);
        o.push(true, &[0x17, 1, 3], 0, kind(false, true), t, 0);
        o.push(false, &[0xaf, 1, 4], 20, kind(false, false), t, 0);
        assert_eq!(o.flv.end_seq(), 2, "sequence headers are not units");
        for (ring, name) in [(&o.flv, "flv"), (&o.rtmp, "rtmp")] {
            let Step::Send { parts, .. } = Viewer::default().step(ring, t, &POLICY) else {
                panic!("{name}: nothing to send");
            };
            assert_eq!(
                parts.len(),
                4,
                "{name}: video config, audio config, keyframe, audio"
            );
            let body_at = if name == "flv" { 11 } else { 12 };
            let bodies: Vec<&[u8]> = parts.iter().map(|p| &p[body_at..body_at + 3]).collect();
            assert_eq!(
                bodies,
                [
                    &[0x17, 0, 1][..],
                    &[0xaf, 0, 2],
                    &[0x17, 1, 3],
                    &[0xaf, 1, 4]
                ],
                "{name}"
            );
        }
    }

    /// A publisher's audio configuration changes mid-stream (a new sample rate): a viewer
    /// watching already gets the new one in band, before the frames that need it; the same one
    /// sent again changes nothing.
    #[test]
    fn a_changed_sequence_header_reaches_the_viewers_watching_already() {
        let mut o = MediaOutputs::new(LIMITS, LlLimits::default());
        let t = Duration::ZERO;
        o.push(true, &[0x17, 0, 1], 0, kind(true, false), t, 0);
        o.push(false, &[0xaf, 0, 2], 0, kind(true, false), t, 0);
        o.push(true, &[0x17, 1, 3], 0, kind(false, true), t, 0);
        let mut viewers = [Viewer::default(), Viewer::default()];
        for (v, ring) in viewers.iter_mut().zip([&o.flv, &o.rtmp]) {
            assert!(matches!(v.step(ring, t, &POLICY), Step::Send { .. }));
        }
        o.push(false, &[0xaf, 0, 2], 20, kind(true, false), t, 0);
        assert_eq!(o.flv.end_seq(), 1, "the same configuration again: nothing");
        o.push(false, &[0xaf, 0, 9], 40, kind(true, false), t, 0);
        o.push(false, &[0xaf, 1, 4], 40, kind(false, false), t, 0);
        for (i, (v, ring)) in viewers.iter_mut().zip([&o.flv, &o.rtmp]).enumerate() {
            let Step::Send { parts, .. } = v.step(ring, t, &POLICY) else {
                panic!("{i}: nothing to send");
            };
            let body_at = if i == 0 { 11 } else { 12 };
            let bodies: Vec<&[u8]> = parts.iter().map(|p| &p[body_at..body_at + 3]).collect();
            assert_eq!(bodies, [&[0xaf, 0, 9][..], &[0xaf, 1, 4]], "{i}");
        }
    }

    /// The bodies of what a new viewer of `ring` gets first (FLV tags, or RTMP messages when
    /// `rtmp`).
    fn first_bodies(ring: &Ring, rtmp: bool) -> Vec<Vec<u8>> {
        let Step::Send { parts, .. } = Viewer::default().step(ring, Duration::ZERO, &POLICY) else {
            return Vec::new();
        };
        let at = if rtmp { 12 } else { 11 };
        parts.iter().map(|p| p[at..at + 3].to_vec()).collect()
    }

    /// An encoder that configures its audio after its first video frame: a viewer that started
    /// at that keyframe gets the audio's configuration in band, before its frames.
    #[test]
    fn an_audio_configuration_first_sent_after_the_first_keyframe_reaches_its_viewers() {
        let mut o = MediaOutputs::new(LIMITS, LlLimits::default());
        let t = Duration::ZERO;
        o.push(true, &[0x17, 0, 1], 0, kind(true, false), t, 0);
        o.push(true, &[0x17, 1, 3], 0, kind(false, true), t, 0);
        o.push(false, &[0xaf, 0, 2], 10, kind(true, false), t, 0);
        o.push(false, &[0xaf, 1, 4], 20, kind(false, false), t, 0);
        for (ring, rtmp) in [(&o.flv, false), (&o.rtmp, true)] {
            assert_eq!(
                first_bodies(ring, rtmp),
                [[0x17, 0, 1], [0x17, 1, 3], [0xaf, 0, 2], [0xaf, 1, 4]],
                "rtmp: {rtmp}"
            );
        }
    }

    /// A radio stream (AAC alone): FLV and RTMP viewers start at an audio frame, at most half
    /// a second back, with the audio's configuration first.
    #[test]
    fn a_stream_without_video_starts_its_viewers_at_an_audio_frame() {
        let mut o = MediaOutputs::new(LIMITS, LlLimits::default());
        let t = Duration::ZERO;
        o.push(false, &[0xaf, 0, 2], 0, kind(true, false), t, 0);
        for n in 0..40u8 {
            let ms = u32::from(n) * 23;
            o.push(false, &[0xaf, 1, n], ms, kind(false, false), t, 0);
        }
        for (ring, rtmp) in [(&o.flv, false), (&o.rtmp, true)] {
            let got = first_bodies(ring, rtmp);
            assert_eq!(got[0], [0xaf, 0, 2], "rtmp: {rtmp}");
            // The last start: the frame at 506 ms (22 × 23), the first 500 ms after the one at 0.
            assert_eq!(got[1], [0xaf, 1, 22], "rtmp: {rtmp}");
            assert_eq!(got.len(), 1 + 40 - 22);
        }
    }

    #[test]
    fn an_mp4_viewer_gets_the_init_segment_then_fragments_from_a_keyframe_that_index_as_mp4() {
        let clip =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/clip.ts")).unwrap();
        let mut tags = Vec::new();
        media::flv::FromTs::default().feed(&clip, &mut tags);
        let mut o = MediaOutputs::new(LIMITS, LlLimits::default());
        let t = Duration::ZERO;
        for tag in &tags {
            let k = wire::classify(tag.video, &tag.body);
            o.push(tag.video, &tag.body, tag.ms, k, t, NTP);
        }
        let mut viewer = Viewer::default();
        let Step::Send { parts, .. } = viewer.step(&o.mp4, t, &POLICY) else {
            panic!("nothing to send");
        };
        assert_eq!(&parts[0][4..8], b"ftyp", "the init segment first");
        // Then a fragment: its producer reference time (the wall clock at ingest), its moof.
        let head = &parts[1];
        assert_eq!(&head[4..8], b"prft");
        assert_eq!(u64::from_be_bytes(head[16..24].try_into().unwrap()), NTP);
        assert_eq!(&head[32 + 4..32 + 8], b"moof");
        let file: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        let info = media::index(&file).unwrap();
        assert_eq!(info.video.map(|v| v.codec).as_deref(), Some("h264"));
        assert_eq!(info.audio.map(|a| a.codec).as_deref(), Some("aac"));
        // A late joiner starts at the latest keyframe: its first sample is that keyframe's.
        let first = (parts[0].len() + parts[1].len()) as u64;
        assert_eq!(info.keyframes.first().map(|k| k.offset), Some(first));
        // Samples are slices of the FLV ring's tags, not copies.
        let flv_tags: Vec<&Bytes> = o.flv.units().map(|u| &u.data).collect();
        let sample = &parts[2];
        assert!(flv_tags
            .iter()
            .any(|t| t.as_ptr_range().contains(&sample.as_ptr())));
    }

    #[test]
    fn a_new_session_continues_the_clock_40_ms_on() {
        let mut o = MediaOutputs::new(LIMITS, LlLimits::default());
        assert_eq!(o.continuation(500), 0, "a new stream keeps its own clock");
        // One far on (an encoder counting from its boot, 35 days up) starts at 1 s.
        let far = 3_000_000_000u32;
        assert_eq!(far.wrapping_add(o.continuation(far)), 1000);
        o.push(
            true,
            &[0x27, 1, 0],
            9_960,
            kind(false, false),
            Duration::ZERO,
            0,
        );
        let offset = o.continuation(0);
        assert_eq!(0u32.wrapping_add(offset), 10_000);
        let offset = o.continuation(7);
        assert_eq!(7u32.wrapping_add(offset), 10_000);
        // Audio that lagged the video: the clock goes on after the video.
        o.push(
            false,
            &[0xaf, 1, 0],
            9_900,
            kind(false, false),
            Duration::ZERO,
            0,
        );
        assert_eq!(o.continuation(0), 10_000, "after the later track");
    }
}
