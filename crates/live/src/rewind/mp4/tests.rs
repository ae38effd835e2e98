use super::*;
use crate::llhls::LlLimits;
use crate::outputs::MediaOutputs;
use crate::ring::{Limits, Step, Viewer, ViewerPolicy};
use media::flv::wire;
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
    let mut conv = FromTs::default();
    let mut out = MediaOutputs::new(LIMITS, LlLimits::default());
    let mut tags = Vec::new();
    for chunk in ts.chunks(PACKET * 7) {
        tags.clear();
        conv.feed(chunk, &mut tags);
        for t in &tags {
            let kind = wire::classify(t.video, &t.body);
            out.push(t.video, &t.body, t.ms, kind, Duration::ZERO, 0);
        }
    }
    (out, conv.clock().expect("the stream's conversion began"))
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
    // The viewer rewinds to the second keyframe (its PAT and PMT first), fed in pieces cut
    // anywhere, as a recording's slices are.
    let from = keyframe_offset(&ts, 1);
    let mut input = ts[..PACKET * 2].to_vec();
    input.extend_from_slice(&ts[from..]);
    let mut r = Mp4Rewind::new(clock, outputs.tracks());
    r.index(&outputs.mp4);
    let mut sent = Vec::new();
    let joined = input
        .chunks(1000)
        .find_map(|piece| r.feed(piece, &mut sent))
        .expect("joins the ring");
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

#[test]
fn an_mp4_viewer_whose_clock_differs_from_the_rings_never_joins_it() {
    let ts = demo();
    let (outputs, clock) = outputs_of(&ts);
    // Half a frame later: no frame has a time the ring's has.
    let other = Clock {
        first: clock.first - 1_800,
        last: clock.last,
    };
    let mut r = Mp4Rewind::new(other, outputs.tracks());
    r.index(&outputs.mp4);
    let mut sent = Vec::new();
    assert_eq!(r.feed(&ts, &mut sent), None);
    assert!(fragments(&sent).len() > 10, "it converts all the same");
}

#[test]
fn the_mp4_index_forgets_fragments_that_left_the_ring() {
    let ts = demo();
    let (mut outputs, clock) = outputs_of(&ts);
    let mut r = Mp4Rewind::new(clock, outputs.tracks());
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
