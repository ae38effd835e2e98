//! Segments where the media has gaps, or keyframes far apart: no part or segment outlasts its
//! target, none is a frame or two long, and a reconnect stays a reconnect.

use super::tests::{feed, stream};
use super::*;
use bytes::Bytes;
use std::time::Duration;

/// 25 fps, a keyframe every 2 s; the encoder drops 1 s of frames (decode time 1.76 s to
/// 2.8 s), then goes on, its next keyframe later: the segment open at the gap ends with its
/// last frame, nothing is listed longer than its target, and the segment after the gap begins
/// at once (nothing left out), discontinuous, its first part not independent.
#[test]
fn a_gap_in_the_media_under_ten_seconds_never_makes_a_part_or_segment_outlast_its_target() {
    let mut l = stream();
    let frag = |l: &mut LlHls, ms: u32, key: bool| {
        let b = Bytes::from(vec![1u8; 100]);
        l.fragment(vec![b], key, ms.into(), Some(1_000_000_000 + u64::from(ms)));
    };
    for n in 0..45 {
        frag(&mut l, n * 40, n % 50 == 0);
    }
    // 1 s without frames, then on (not at a keyframe).
    for n in 0..150 {
        frag(&mut l, 2_800 + n * 40, n % 50 == 30);
    }
    let p = l.playlist(false, None);
    assert!(p.contains("#EXT-X-TARGETDURATION:2\n"), "{p}");
    for line in p.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            let d: f64 = d.trim_end_matches(',').parse().unwrap();
            assert!(d.round() <= 2.0, "{line}\n{p}");
        }
        if let Some(d) = line.strip_prefix("#EXT-X-PART:DURATION=") {
            let d: f64 = d.split(',').next().unwrap().parse().unwrap();
            assert!(d <= 0.334, "{line}\n{p}");
        }
    }
    assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{p}");
    let first = l.segment(0).unwrap();
    assert_eq!(
        first.duration,
        Duration::from_millis(1800),
        "its last frame's end"
    );
    let after = l.segment(1).unwrap();
    assert!(after.discontinuity && !after.parts[0].independent);
    assert_eq!(after.start_ms, 2_800, "from the first frame after the gap");
    // DASH: one period, its timeline showing the gap.
    assert_eq!(after.period, first.period);
    // It ends at the next keyframe, and the segments after it begin at keyframes again.
    assert_eq!(after.duration, Duration::from_millis(1200));
    for msn in 2..=l.last_segment().unwrap() {
        let s = l.segment(msn).unwrap();
        assert!(s.parts[0].independent, "segment {msn} at {} ms", s.start_ms);
    }
    assert_eq!(l.cut_short, 0);
}

/// Keyframes every 10 s (x264's default GOP at 25 fps) and 2 s segments: segments are cut
/// without keyframes in between, and the one that reaches the next keyframe ends there only
/// once it lasts a second: never a segment of a frame or two.
#[test]
fn keyframes_far_apart_never_make_a_segment_of_a_frame_or_two() {
    let mut l = stream();
    feed(&mut l, 0, 25 * 40, 250);
    let complete: Vec<&LlSegment> = l.segments().filter(|s| s.complete).collect();
    assert!(complete.len() >= 4);
    for s in &complete {
        assert!(
            s.duration >= Duration::from_secs(1),
            "{} ms at {}",
            s.duration.as_millis(),
            s.start_ms
        );
        assert!(s.duration.as_secs_f64().round() <= 2.0);
    }
}

/// A publisher comes back, and its first frames have a gap: the reconnect's segment still
/// waits for a keyframe, in a DASH period of its own.
#[test]
fn a_gap_just_after_a_reconnect_leaves_the_reconnect_as_it_was() {
    let mut l = stream();
    feed(&mut l, 0, 60, 50);
    let period = l.segment(0).unwrap().period;
    l.discontinuity();
    let b = || vec![Bytes::from(vec![1u8; 10])];
    l.fragment(b(), false, 10_000, Some(1_000_010_000));
    l.fragment(b(), false, 10_500, Some(1_000_010_500));
    assert!(l.period_change_pending());
    l.fragment(b(), true, 10_540, Some(1_000_010_540));
    let s = l.segments().last().unwrap();
    assert_eq!(s.start_ms, 10_540, "from the keyframe");
    assert!(s.discontinuity && s.parts[0].independent);
    assert_ne!(s.period, period, "a period of its own");
}

/// A long first step (2.4 s, so the next frame is estimated to last as long) then a gap: the
/// segment open at the gap ends no later than the fragment after it begins (found by the
/// fuzzer: a DASH timeline whose segment overlapped the next).
#[test]
fn a_segment_closed_at_a_gap_never_ends_after_the_fragment_that_follows_it() {
    let mut l = stream();
    for (ms, key) in [
        (0, true),
        (0, false),
        (2_400, false),
        (2_440, false),
        (2_807, true),
    ] {
        l.fragment(vec![Bytes::from_static(b"x")], key, ms, None);
    }
    // The complete ones, and the one open after the gap.
    let segments: Vec<(u32, Duration)> = (0..=l.newest_msn())
        .filter_map(|msn| l.segment(msn))
        .map(|s| (s.start_ms(), s.duration))
        .collect();
    assert_eq!(segments.last().map(|s| s.0), Some(2_807), "{segments:?}");
    for w in segments.windows(2) {
        let end = u64::from(w[0].0) + w[0].1.as_millis() as u64;
        assert!(end <= u64::from(w[1].0), "{segments:?}");
    }
}
