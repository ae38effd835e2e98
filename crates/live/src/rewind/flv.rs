//! An `.flv` DVR viewer's conversion (see the module above): with a [`FromTs`] started on the
//! clock of the stream's own conversion ([`Clock`]), every frame gets the timestamp and body the
//! FLV ring gave it; read back from the stream's fMP4 ([`ToFlv`]), every frame gets the
//! timestamp and the coded bytes the FLV ring gave it (the tag header is this server's: an RTMP
//! publisher's enhanced AVC comes back as legacy AVC).
//!
//! Where it joins: right after the ring's unit of the last video tag it sent (the same time, both
//! keyframes or neither; the stream's clock never repeats a time, as it runs on across publisher
//! sessions, see `Ingest::flv_clock`; the bodies may differ, an RTMP publisher's carrying NAL
//! units that TS drops), once every audio
//! tag the ring holds before that unit was sent and none after it was. A TS source's FLV ring is
//! made by the same conversion from the same packets, so its order is the viewer's and the join
//! comes at the first video frame it checks. An RTMP source's ring is in the publisher's order;
//! the viewer's conversion emits a video frame when the next one begins (it has every audio tag
//! from before that next frame then), so the first check after a frame finds the join too.
//! Until it joins (a publisher reconnect restarted the stream's clock, a stream without video),
//! the viewer simply goes on converting.

use super::{Index, Seq, Tags, LOOK_BACK_MS};
use crate::ring::Ring;
use bytes::Bytes;
use media::cmaf::ToFlv;
use media::flv::{wire, Clock, Tag};

/// One FLV ring unit, as far as the join needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Indexed {
    seq: u64,
    video: bool,
    ms: u32,
    /// A video keyframe.
    key: bool,
}

impl Seq for Indexed {
    fn seq(&self) -> u64 {
        self.seq
    }
}

/// The time and kind of an FLV tag's wire bytes (`None`: not an audio or video tag).
fn tag_time(tag: &[u8]) -> Option<(bool, u32)> {
    let head = tag.get(..8)?;
    let video = match head[0] & 0x1f {
        wire::VIDEO => true,
        wire::AUDIO => false,
        _ => return None,
    };
    Some((
        video,
        u32::from_be_bytes([head[7], head[4], head[5], head[6]]),
    ))
}

/// A DVR viewer's own conversion to FLV, and where it joins the FLV ring.
#[derive(Debug)]
pub struct FlvRewind {
    input: Input,
    join: Join,
}

/// What an `.flv` DVR viewer's conversion reads.
#[derive(Debug)]
enum Input {
    /// MPEG-TS (a TS recording, the TS ring), converted on the stream's FLV clock.
    Ts(Box<Tags>),
    /// The stream's own fMP4 (an fMP4 recording, then the fMP4 ring): made of the FLV ring's
    /// tags, with their times (`media::cmaf::ToFlv`).
    Fmp4(Box<ToFlv>),
}

/// What was sent, and the FLV ring as far as the join needs it.
#[derive(Debug, Default)]
struct Join {
    /// The newest video tag sent (time, keyframe) and audio tag's time (sequence headers are
    /// not ring units).
    last_video: Option<(u32, bool)>,
    last_audio: Option<u32>,
    /// The FLV ring's units, as far as [`FlvRewind::index`] has seen them.
    index: Index<Indexed>,
}

impl FlvRewind {
    /// A conversion of TS on the stream's FLV clock (`MediaOutputs::flv_clock`).
    pub fn new(clock: Clock) -> Self {
        FlvRewind {
            input: Input::Ts(Box::new(Tags::new(clock))),
            join: Join::default(),
        }
    }

    /// A conversion of the stream's fMP4 (a stream recorded as fMP4).
    pub fn of_fmp4() -> Self {
        FlvRewind {
            input: Input::Fmp4(Box::default()),
            join: Join::default(),
        }
    }

    /// Notes the FLV ring's units not seen before (cheap under the stream's read lock: only the
    /// new ones are read) and forgets those that left it.
    pub fn index(&mut self, flv: &Ring) {
        self.join.index.refresh(flv, |seq, u| {
            let (video, ms) = tag_time(&u.data)?;
            Some(Indexed {
                seq,
                video,
                ms,
                key: u.keyframe,
            })
        });
    }

    /// The next bytes fed start at a packet or box boundary (a new stretch of the recording, or
    /// the ring): a packet or box cut short before them is dropped.
    pub fn realign(&mut self) {
        match &mut self.input {
            Input::Ts(tags) => tags.realign(),
            Input::Fmp4(r) => r.realign(),
        }
    }

    /// Converts TS or fMP4 bytes (cut anywhere) to FLV tags, appended to `out` as wire tags.
    /// Returns the FLV ring unit to go on at once the ring (as indexed) holds exactly what was
    /// not sent: the rest of `bytes` is not needed then, and this conversion is done.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Bytes>) -> Option<u64> {
        let join = &mut self.join;
        match &mut self.input {
            Input::Ts(tags) => tags.feed(bytes, |t| join.tag(t, out)),
            Input::Fmp4(r) => {
                let mut tags = Vec::new();
                r.feed(bytes, &mut tags);
                tags.into_iter().find_map(|t| join.tag(t, out))
            }
        }
    }
}

impl Join {
    /// One tag out, then the join, checked after each video frame.
    fn tag(&mut self, t: Tag, out: &mut Vec<Bytes>) -> Option<u64> {
        let kind = if t.video { wire::VIDEO } else { wire::AUDIO };
        out.push(Bytes::from(wire::flv_tag(kind, t.ms, &t.body)));
        if t.sequence {
            return None;
        }
        if !t.video {
            self.last_audio = Some(t.ms);
            return None;
        }
        self.last_video = Some((t.ms, t.keyframe));
        self.join()
    }

    /// The ring unit after the last video tag sent, if the ring goes on from there with exactly
    /// what was not sent.
    fn join(&self) -> Option<u64> {
        let (ms, key) = self.last_video?;
        // From the newest back, only as far as tags of about that time. (The times are 32-bit
        // and wrap after 49.7 days: compared by their difference.)
        let not_before = |a: u32, b: u32| (a.wrapping_sub(b) as i32) >= 0;
        let floor = ms.wrapping_sub(LOOK_BACK_MS);
        let mut back = self
            .index
            .iter()
            .rev()
            .take_while(|u| not_before(u.ms, floor));
        // Found counting from the newest (so the index is not empty).
        let from_newest = back.position(|u| u.video && u.ms == ms && u.key == key)?;
        let i = self.index.len() - 1 - from_newest;
        let sent = |u: &Indexed| self.last_audio.is_some_and(|a| not_before(a, u.ms));
        // Audio between the previous video frame and this one: all sent.
        let before = self.index.range(..i).rev().take_while(|u| !u.video);
        // Everything after it: none sent.
        let mut after = self.index.range(i + 1..);
        let clean = before.into_iter().all(sent) && !after.any(|u| !u.video && sent(u));
        clean.then_some(self.index[i].seq + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::INDEXED;
    use super::*;
    use crate::ring::{Limits, Step, Viewer, ViewerPolicy};
    use media::flv::FromTs;
    use media::ts::PACKET;
    use std::time::Duration;

    const LIMITS: Limits = Limits {
        max_bytes: 64 << 20,
        max_age: Duration::from_secs(600),
    };
    const POLICY: ViewerPolicy = ViewerPolicy {
        max_skips: 3,
        skip_period: Duration::from_secs(60),
        max_batch_bytes: 64 << 20,
        max_batch_units: 1 << 20,
    };

    /// The FLV ring a stream's own conversion makes of `ts` (as the publisher does, in slabs of
    /// `slab` packets), and that conversion's clock.
    fn ring_of(ts: &[u8], slab: usize) -> (Ring, Clock) {
        ring_shifted(ts, slab, 0)
    }

    /// [`ring_of`], with the stream's timestamps `shift` ms on (wrapping at 2^32, as a
    /// publisher's do), and the clock that gives them.
    fn ring_shifted(ts: &[u8], slab: usize, shift: u32) -> (Ring, Clock) {
        let mut conv = FromTs::default();
        let mut ring = Ring::new(LIMITS);
        let mut tags = Vec::new();
        for chunk in ts.chunks(PACKET * slab) {
            tags.clear();
            conv.feed(chunk, &mut tags);
            for t in tags.iter().filter(|t| !t.sequence) {
                let kind = if t.video { wire::VIDEO } else { wire::AUDIO };
                let tag = Bytes::from(wire::flv_tag(kind, t.ms.wrapping_add(shift), &t.body));
                if t.keyframe {
                    ring.push_keyframe(tag, Vec::new(), Duration::ZERO);
                } else {
                    ring.push(tag, Duration::ZERO);
                }
            }
        }
        let clock = conv.clock().expect("the stream's conversion began");
        let clock = Clock {
            first: clock.first - i64::from(shift) * 90,
            ..clock
        };
        (ring, clock)
    }

    fn demo() -> Vec<u8> {
        let data = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/clip.ts"))
            .expect("demo/clip.ts");
        data[..data.len() / PACKET * PACKET].to_vec()
    }

    /// The byte offset of the `n`th video keyframe's first packet in `ts`.
    fn keyframe_offset(ts: &[u8], n: usize) -> usize {
        let mut cuts = Vec::new();
        media::ts::Splitter::default()
            .feed(ts, &mut cuts)
            .expect("the demo splits");
        let offsets: Vec<usize> = cuts
            .iter()
            .filter_map(|c| match c {
                media::ts::Cut::Keyframe { at, .. } => Some(*at),
                _ => None,
            })
            .collect();
        offsets[n]
    }

    #[test]
    fn a_rewound_viewer_gets_the_rings_own_tags_then_joins_it_with_no_gap_or_repeat() {
        let ts = demo();
        let (ring, clock) = ring_of(&ts, 7);
        let all: Vec<Bytes> = ring.units().map(|u| u.data.clone()).collect();
        // The viewer rewinds to the second keyframe (its PAT and PMT first) and is fed in
        // pieces cut anywhere, as a recording's slices are.
        let from = keyframe_offset(&ts, 1);
        let mut input = ts[..PACKET * 2].to_vec();
        input.extend_from_slice(&ts[from..]);
        let mut r = FlvRewind::new(clock);
        r.index(&ring);
        let mut sent = Vec::new();
        let mut joined = None;
        for piece in input.chunks(1000) {
            if let Some(seq) = r.feed(piece, &mut sent) {
                joined = Some(seq);
                break;
            }
        }
        let seq = joined.expect("joins the ring");
        let mut viewer = Viewer::after(seq);
        let Step::Send { parts, skipped } = viewer.step(&ring, Duration::ZERO, &POLICY) else {
            panic!("the ring goes on");
        };
        assert!(!skipped);
        // Sequence headers first, then the ring's own tags from a keyframe to its end: each
        // exactly once, in order.
        let media: Vec<Bytes> = sent
            .iter()
            .filter(|t| !wire::classify(t[0] == wire::VIDEO, &t[11..]).sequence)
            .cloned()
            .chain(parts)
            .collect();
        let start = all
            .iter()
            .position(|t| *t == media[0])
            .expect("the first tag sent is the ring's");
        assert_eq!(media, all[start..].to_vec());
        assert!(wire::classify(true, &media[0][11..]).keyframe || media[0][0] == wire::AUDIO);
    }

    /// A stream whose timestamps wrap at 2^32 half a second after the keyframe the viewer
    /// rewinds to: it joins the ring at once, as anywhere else.
    #[test]
    fn a_rewound_viewer_joins_at_once_just_before_the_32_bit_wrap() {
        let ts = demo();
        let mut input = ts[..PACKET * 2].to_vec();
        input.extend_from_slice(&ts[keyframe_offset(&ts, 1)..]);
        // The time of the keyframe the viewer starts at.
        let (_, plain) = ring_of(&ts, 7);
        let mut first = Vec::new();
        FlvRewind::new(plain).feed(&input, &mut first);
        let key_ms = first
            .iter()
            .filter_map(|t| tag_time(t))
            .find_map(|(video, ms)| video.then_some(ms))
            .expect("a video tag");
        let (ring, clock) = ring_shifted(&ts, 7, (u32::MAX - 500).wrapping_sub(key_ms));
        let mut r = FlvRewind::new(clock);
        r.index(&ring);
        let mut sent = Vec::new();
        let joined = input.chunks(1000).find_map(|p| r.feed(p, &mut sent));
        assert!(joined.is_some(), "joins the ring");
        let frames = sent
            .iter()
            .filter(|t| !wire::classify(t[0] == wire::VIDEO, &t[11..]).sequence);
        assert!(frames.count() <= 3, "joined after {} tags", sent.len());
    }

    #[test]
    fn a_viewer_rewound_into_the_streams_fmp4_gets_the_flv_rings_own_tags_then_joins_it() {
        use crate::llhls::LlLimits;
        use crate::outputs::MediaOutputs;
        // The stream's outputs as its publisher feeds them: the FLV tags, and the fMP4 made
        // of them (what an fMP4 recording holds).
        let mut conv = FromTs::default();
        let mut outputs = MediaOutputs::new(LIMITS, LlLimits::default());
        let mut tags = Vec::new();
        for chunk in demo().chunks(PACKET * 7) {
            tags.clear();
            conv.feed(chunk, &mut tags);
            for t in &tags {
                let kind = wire::classify(t.video, &t.body);
                outputs.push(t.video, &t.body, t.ms, kind, Duration::ZERO, 0);
            }
        }
        let all: Vec<Bytes> = outputs.flv.units().map(|u| u.data.clone()).collect();
        // From the fMP4 ring's second keyframe: its init segment, then its fragments, cut
        // anywhere as a recording's slices are.
        let from = outputs
            .mp4
            .units()
            .filter(|u| u.keyframe)
            .nth(1)
            .expect("two keyframes");
        let mut input: Vec<u8> = from.psi.iter().flat_map(|b| b.to_vec()).collect();
        for u in outputs.mp4.units().skip_while(|u| u.seq < from.seq) {
            input.extend_from_slice(&u.data);
            u.more.iter().for_each(|m| input.extend_from_slice(m));
        }
        let mut r = FlvRewind::of_fmp4();
        r.index(&outputs.flv);
        let mut sent = Vec::new();
        let joined = input
            .chunks(1000)
            .find_map(|piece| r.feed(piece, &mut sent))
            .expect("joins the ring");
        let mut viewer = Viewer::after(joined);
        let Step::Send { parts, .. } = viewer.step(&outputs.flv, Duration::ZERO, &POLICY) else {
            panic!("the ring goes on");
        };
        // Sequence headers first; then, from the keyframe, the ring's own tags, each exactly
        // once, with the same times.
        let is_sequence = |t: &Bytes| wire::classify(t[0] == wire::VIDEO, &t[11..]).sequence;
        assert!(is_sequence(&sent[0]) && is_sequence(&sent[1]));
        let played: Vec<Bytes> = sent
            .iter()
            .filter(|t| !is_sequence(t))
            .cloned()
            .chain(parts)
            .collect();
        assert!(wire::classify(true, &played[0][11..]).keyframe);
        let start = all
            .iter()
            .position(|t| *t == played[0])
            .expect("the ring's keyframe");
        assert_eq!(played, all[start..].to_vec());
    }

    #[test]
    fn a_viewer_whose_clock_differs_from_the_rings_never_joins_it() {
        let ts = demo();
        let (ring, clock) = ring_of(&ts, 7);
        // Half a frame later: no frame has a time the ring's has.
        let other = Clock {
            first: clock.first - 1_800,
            last: clock.last,
        };
        let mut r = FlvRewind::new(other);
        r.index(&ring);
        let mut sent = Vec::new();
        assert_eq!(r.feed(&ts, &mut sent), None);
        assert!(sent.len() > 10, "it converts all the same");
    }

    #[test]
    fn a_viewer_converts_on_while_its_ring_holds_no_tag_yet() {
        let ts = demo();
        let (_, clock) = ring_of(&ts, 7);
        // A TS source's FLV output begins with its first viewer: empty at first.
        let mut r = FlvRewind::new(clock);
        r.index(&Ring::new(LIMITS));
        let mut sent = Vec::new();
        assert_eq!(r.feed(&ts, &mut sent), None);
        assert!(sent.len() > 10, "it converts all the same");
    }

    #[test]
    fn the_index_holds_the_newest_units_only() {
        let mut ring = Ring::new(LIMITS);
        for i in 0..(INDEXED as u32 + 1000) {
            let tag = Bytes::from(wire::flv_tag(wire::VIDEO, i * 40, &[0x27, 1, 0, 0, 0]));
            ring.push(tag, Duration::ZERO);
        }
        let mut r = FlvRewind::new(Clock { first: 0, last: 0 });
        r.index(&ring);
        assert_eq!(r.join.index.len(), INDEXED);
        assert_eq!(
            r.join.index.front().map(|u| u.seq),
            Some(ring.end_seq() - INDEXED as u64)
        );
        ring.push(
            Bytes::from(wire::flv_tag(wire::VIDEO, 1 << 30, &[0x27, 1, 0, 0, 0])),
            Duration::ZERO,
        );
        r.index(&ring);
        assert_eq!(r.join.index.len(), INDEXED);
        assert_eq!(r.join.index.back().map(|u| u.ms), Some(1 << 30));
    }

    #[test]
    fn the_index_forgets_units_that_left_the_ring() {
        let ts = demo();
        let (mut ring, clock) = ring_of(&ts, 7);
        let mut r = FlvRewind::new(clock);
        r.index(&ring);
        let held = r.join.index.len();
        assert_eq!(held as u64, ring.end_seq() - ring.first_seq());
        ring.shrink_to_gop(Duration::from_secs(3600), Duration::ZERO);
        r.index(&ring);
        assert!(r.join.index.len() < held);
        assert_eq!(r.join.index.front().map(|u| u.seq), Some(ring.first_seq()));
    }
}
