use super::*;
use crate::llhls::LlLimits;
use crate::outputs::MediaOutputs;
use crate::ring::{Limits, Step, Viewer, ViewerPolicy};
use media::flv::{wire, FromTs};
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

fn demo() -> Vec<u8> {
    let data = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/clip.ts"))
        .expect("demo/clip.ts");
    data[..data.len() / PACKET * PACKET].to_vec()
}

/// The outputs a stream makes of `ts` (its FLV conversion, then the fMP4 writer, as the
/// publisher feeds them), and that conversion's clock.
fn outputs_of(ts: &[u8]) -> (MediaOutputs, Clock) {
    outputs_shifted(ts, 0)
}

/// [`outputs_of`], with the stream's timestamps `shift` ms on (wrapping at 2^32, as a
/// publisher's do), and the clock that gives them.
fn outputs_shifted(ts: &[u8], shift: u32) -> (MediaOutputs, Clock) {
    let mut conv = FromTs::default();
    let mut out = MediaOutputs::new(LIMITS, LlLimits::default());
    let mut tags = Vec::new();
    for chunk in ts.chunks(PACKET * 7) {
        tags.clear();
        conv.feed(chunk, &mut tags);
        for t in &tags {
            let kind = wire::classify(t.video, &t.body);
            let ms = t.ms.wrapping_add(shift);
            out.push(t.video, &t.body, ms, kind, Duration::ZERO, 0);
        }
    }
    let clock = conv.clock().expect("the stream's conversion began");
    let clock = Clock {
        first: clock.first - i64::from(shift) * 90,
        ..clock
    };
    (out, clock)
}

/// The byte offset of the `n`th video keyframe's first packet in `ts`.
fn keyframe_offset(ts: &[u8], n: usize) -> usize {
    let mut cuts = Vec::new();
    media::ts::Splitter::default()
        .feed(ts, &mut cuts)
        .expect("the demo splits");
    cuts.iter()
        .filter_map(|c| match c {
            media::ts::Cut::Keyframe { at, .. } => Some(*at),
            _ => None,
        })
        .nth(n)
        .expect("the demo has that many keyframes")
}

/// A fragment as it plays: what its runs hold, and its samples' bytes.
type Played = (Runs, Vec<u8>);

/// Fragments of a flat list of parts (a `prft` and head, or a head, then samples); init
/// segments are left out.
fn fragments(parts: &[Bytes]) -> Vec<Played> {
    let mut out: Vec<Played> = Vec::new();
    for p in parts {
        let head = match read_prft(p) {
            Some((_, at)) => Some(&p[at..]),
            None if p.get(4..8) == Some(b"moof") => Some(&p[..]),
            None => None,
        };
        match head {
            Some(h) => out.push((fragment_runs(h).expect("a fragment head"), Vec::new())),
            None if p.get(4..8) == Some(b"ftyp") => {}
            None => out.last_mut().expect("a head first").1.extend_from_slice(p),
        }
    }
    out
}

/// A viewer rewound to the second keyframe of `ts` (its PAT and PMT first), fed in pieces cut
/// anywhere, as a recording's slices are: the ring unit it joins at, if it does, and what it
/// was sent.
fn rewound_to_second_keyframe(
    ts: &[u8],
    outputs: &MediaOutputs,
    clock: Clock,
) -> (Option<u64>, Vec<Bytes>) {
    let mut input = ts[..PACKET * 2].to_vec();
    input.extend_from_slice(&ts[keyframe_offset(ts, 1)..]);
    let mut r = Mp4Rewind::new(clock, outputs.tracks(), outputs.anchor());
    r.index(&outputs.mp4);
    let mut sent = Vec::new();
    let joined = input
        .chunks(1000)
        .find_map(|piece| r.feed(piece, &mut sent));
    (joined, sent)
}

#[test]
fn a_rewound_mp4_viewer_gets_the_rings_own_fragments_then_joins_it_with_no_gap_or_repeat() {
    let ts = demo();
    let (outputs, clock) = outputs_of(&ts);
    let ring: Vec<Bytes> = outputs
        .mp4
        .units()
        .flat_map(|u| std::iter::once(u.data.clone()).chain(u.more.iter().cloned()))
        .collect();
    let ring = fragments(&ring);
    let (joined, sent) = rewound_to_second_keyframe(&ts, &outputs, clock);
    let joined = joined.expect("joins the ring");
    assert_eq!(&sent[0][4..8], b"ftyp", "the init segment first");
    let mut viewer = Viewer::after(joined);
    let Step::Send { parts, skipped } = viewer.step(&outputs.mp4, Duration::ZERO, &POLICY) else {
        panic!("the ring goes on");
    };
    assert!(!skipped);
    let mine = fragments(&sent);
    // A TS source's fMP4 output is made from the same tags: the first fragment with audio joins.
    assert!(
        mine.len() <= 3,
        "joins at once: {} fragments sent",
        mine.len()
    );
    let mut played = mine.clone();
    played.extend(fragments(&parts));
    // The ring's own fragments from the keyframe the viewer started at, to its end: each
    // exactly once, in order, with the same bytes.
    let start = ring
        .iter()
        .position(|f| *f == mine[0])
        .expect("the first fragment sent is the ring's");
    assert_eq!(played, ring[start..].to_vec());
    assert!(
        start > 0,
        "the viewer started after the ring's first keyframe"
    );
}

/// A stream whose timestamps passed 2^32 ms (49.7 days) after it began and before the viewer's
/// start (its second keyframe, 4 s in): the viewer's fragments' times are the ring's (past
/// 2^32, on the stream's fMP4 timeline), and it joins.
#[test]
fn a_rewound_mp4_viewer_joins_the_ring_of_a_stream_past_the_32_bit_wrap() {
    let ts = demo();
    let (outputs, clock) = outputs_shifted(&ts, u32::MAX - 3000);
    let (joined, sent) = rewound_to_second_keyframe(&ts, &outputs, clock);
    let mine = fragments(&sent);
    let video = mine[0].0[0].expect("a keyframe first").0;
    assert!(video > 1 << 32, "the viewer's first fragment at {video} ms");
    let ring = outputs.mp4.units().find_map(|u| read_prft(&u.data));
    assert!(
        ring.is_some_and(|(ms, _)| ms < 1 << 32),
        "the stream began before the wrap"
    );
    assert!(joined.is_some(), "joins the ring");
}

#[test]
fn an_mp4_viewer_whose_clock_differs_from_the_rings_never_joins_it() {
    let ts = demo();
    let (outputs, clock) = outputs_of(&ts);
    // Half a frame later: no frame has a time the ring's has.
    let other = Clock {
        first: clock.first - 1_800,
        last: clock.last,
    };
    let mut r = Mp4Rewind::new(other, outputs.tracks(), outputs.anchor());
    r.index(&outputs.mp4);
    let mut sent = Vec::new();
    assert_eq!(r.feed(&ts, &mut sent), None);
    assert!(fragments(&sent).len() > 10, "it converts all the same");
}

#[test]
fn the_mp4_index_forgets_fragments_that_left_the_ring() {
    let ts = demo();
    let (mut outputs, clock) = outputs_of(&ts);
    let mut r = Mp4Rewind::new(clock, outputs.tracks(), outputs.anchor());
    r.index(&outputs.mp4);
    let held = r.index.len();
    assert!(held > 10);
    outputs
        .mp4
        .shrink_to_gop(Duration::from_secs(3600), Duration::ZERO);
    r.index(&outputs.mp4);
    assert!(r.index.len() < held);
    assert!(r
        .index
        .front()
        .is_some_and(|u| u.seq >= outputs.mp4.first_seq()));
}

/// A fragment unit as the stream writes it: `prft`, then the head of these runs.
fn unit(ms: u64, runs: &[media::cmaf::Run<'_>]) -> (Bytes, Vec<u8>) {
    let head = media::cmaf::fragment_head(1, runs).unwrap();
    let mut data = media::cmaf::prft(media::cmaf::VIDEO_TRACK, 0, ms);
    data.extend_from_slice(&head);
    (Bytes::from(data), head)
}

const SAMPLE: media::cmaf::Sample = media::cmaf::Sample {
    duration: 21,
    size: 10,
    keyframe: true,
    cto: 0,
};

/// A video run of one frame and an audio run of `n` frames, at `ms`.
fn runs_at(ms: u64, video: bool, n: usize) -> Vec<media::cmaf::Run<'static>> {
    const AUDIO: [media::cmaf::Sample; 48] = [SAMPLE; 48];
    let mut runs = Vec::new();
    if video {
        runs.push(media::cmaf::Run {
            track_id: media::cmaf::VIDEO_TRACK,
            base_time: ms,
            samples: &AUDIO[..1],
        });
    }
    runs.push(media::cmaf::Run {
        track_id: media::cmaf::AUDIO_TRACK,
        base_time: ms,
        samples: &AUDIO[..n],
    });
    runs
}

/// A viewer that sent the stream's init segment, and a ring whose keyframe at 0 ms carries
/// `ring_init`, followed by an audio-only fragment at 1,000 ms (a stream whose video paused).
fn viewer_and_ring(ring_init: Bytes) -> (Mp4Rewind, Ring, Vec<u8>, Vec<u8>) {
    let (outputs, clock) = outputs_of(&demo());
    let tracks = outputs.tracks();
    let mut r = Mp4Rewind::new(clock, tracks.clone(), outputs.anchor());
    r.sent_init = Some(Bytes::from(media::cmaf::init_segment(
        tracks.0.as_ref(),
        tracks.1.as_ref(),
    )));
    let mut ring = Ring::new(LIMITS);
    let (key, key_head) = unit(0, &runs_at(0, true, 2));
    ring.push_keyframe(key, vec![ring_init], Duration::ZERO);
    let (audio, audio_head) = unit(1000, &runs_at(1000, false, 48));
    ring.push(audio, Duration::ZERO);
    r.index(&ring);
    (r, ring, key_head, audio_head)
}

#[test]
fn a_fragment_without_video_of_a_stream_with_video_is_not_a_join() {
    let (outputs, _) = outputs_of(&demo());
    let (v, a) = outputs.tracks();
    let init = Bytes::from(media::cmaf::init_segment(v.as_ref(), a.as_ref()));
    let (r, _ring, key, audio_only) = viewer_and_ring(init);
    assert_eq!(
        r.join(&key, 0, true),
        Some((1, None)),
        "the same frames, the same init"
    );
    assert_eq!(r.join(&audio_only, 1000, false), None);
}

#[test]
fn a_ring_with_another_decoder_configuration_is_joined_before_a_keyframe_with_its_init_sent_first()
{
    let (outputs, _) = outputs_of(&demo());
    let (v, a) = outputs.tracks();
    let mut other = v.clone().unwrap();
    other.width += 16;
    let init = Bytes::from(media::cmaf::init_segment(Some(&other), a.as_ref()));
    let (mut r, mut ring, key, _) = viewer_and_ring(init.clone());
    // Mid-GOP (an audio fragment comes next): a player takes what follows a new init segment
    // from a keyframe on, and would drop the frames before it.
    assert_eq!(r.join(&key, 0, true), None);
    // Right before a keyframe: joined, the ring's init first.
    let (before, before_head) = unit(2000, &runs_at(2000, true, 2));
    ring.push(before, Duration::ZERO);
    let (next, _) = unit(3000, &runs_at(3000, true, 2));
    ring.push_keyframe(next, vec![init.clone()], Duration::ZERO);
    r.index(&ring);
    assert_eq!(r.join(&before_head, 2000, false), Some((3, Some(init))));
}

#[test]
fn a_ring_whose_init_segment_has_other_tracks_is_not_joined() {
    let (outputs, _) = outputs_of(&demo());
    let (v, _) = outputs.tracks();
    let init = Bytes::from(media::cmaf::init_segment(v.as_ref(), None));
    let (r, _ring, key, _) = viewer_and_ring(init);
    assert_eq!(r.join(&key, 0, true), None);
}
