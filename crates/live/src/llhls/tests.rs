use super::*;
use bytes::Bytes;
use std::time::Duration;

pub(super) fn limits() -> LlLimits {
    LlLimits {
        part_target: Duration::from_millis(333),
        min_segment: Duration::from_secs(2),
        window: 4,
        spare: 1,
        max_segment_bytes: 1 << 20,
        dvr: 0,
    }
}

/// 25 fps from frame `from` on, a keyframe every `gop` frames; each fragment two `Bytes` (head and
/// sample), its first byte the frame number modulo 256. Wall clock: 1 000 000 s + media time.
pub(super) fn feed(l: &mut LlHls, from: u32, frames: u32, gop: u32) {
    for n in from..from + frames {
        let ms = n * 40;
        let head = Bytes::from(vec![n as u8; 8]);
        let sample = Bytes::from(vec![n as u8; 100]);
        l.fragment(
            vec![head, sample],
            n % gop == 0,
            ms.into(),
            Some(1_000_000_000 + u64::from(ms)),
        );
    }
}

pub(super) fn stream() -> LlHls {
    let mut l = LlHls::new(limits());
    l.init(Bytes::from_static(b"init"));
    l
}

#[test]
fn parts_never_exceed_the_part_target_and_start_independent_at_keyframes() {
    let mut l = stream();
    feed(&mut l, 0, 50 * 3 + 10, 50);
    let seg = l.segment(0).unwrap();
    assert!(seg.complete);
    assert_eq!(seg.duration, Duration::from_secs(2));
    // 333 ms at 40 ms per frame: 8 frames (320 ms) per part; 50 frames = 6 parts and 2 frames.
    let durations: Vec<u128> = seg.parts.iter().map(|p| p.duration.as_millis()).collect();
    assert_eq!(durations, [320, 320, 320, 320, 320, 320, 80]);
    assert_eq!(
        seg.parts.iter().map(|p| p.duration).sum::<Duration>(),
        seg.duration
    );
    assert!(seg.parts[0].independent && !seg.parts[1].independent);
    assert_eq!(seg.parts[0].data.len(), 16, "8 fragments of two Bytes each");
    assert_eq!(seg.parts[0].bytes, 8 * 108);
    // Every byte of the segment is in exactly one of its parts, in order.
    let joined: Vec<u8> = seg
        .parts
        .iter()
        .flat_map(|p| p.data.iter().flatten())
        .copied()
        .collect();
    assert_eq!(joined.len(), seg.bytes);
    assert!(joined.windows(2).all(|w| w[0] <= w[1]));
    // The fourth segment is open, its part being written is the hint.
    assert_eq!(l.last_segment(), Some(2));
    assert_eq!(l.hint(), Some((3, 1)));
    assert_eq!(l.last_part(), Some((3, 0)));
}

#[test]
fn nothing_is_cut_before_the_first_keyframe_or_without_an_init_segment() {
    let mut l = LlHls::new(limits());
    feed(&mut l, 0, 60, 50);
    assert!(l.segment(0).is_none(), "no init segment yet");
    l.init(Bytes::from_static(b"init"));
    feed(&mut l, 60, 30, 50);
    assert!(l.segment(0).is_none(), "no keyframe since the init segment");
    feed(&mut l, 90, 20, 50);
    let s = l.segment(0).unwrap();
    assert_eq!(s.start_ms, 100 * 40);
    assert_eq!(s.wall_ms, Some(1_000_000_000 + 4000));
}

#[test]
fn the_playlist_lists_parts_a_preload_hint_and_the_ingest_wall_clock() {
    let mut l = stream();
    feed(&mut l, 0, 50 * 8 + 20, 50);
    let p = l.playlist(false, None);
    assert!(
        p.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n"),
        "{p}"
    );
    assert!(
        p.contains(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.999,CAN-SKIP-UNTIL=12.0\n"
        ),
        "{p}"
    );
    assert!(p.contains("#EXT-X-PART-INF:PART-TARGET=0.333\n"), "{p}");
    // Window 4: segments 4..=7 complete, 8 open.
    assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:4\n"), "{p}");
    assert_eq!(p.matches("#EXTINF:2.000,\n").count(), 4, "{p}");
    assert_eq!(p.matches("#EXT-X-MAP:URI=\"init0.mp4\"").count(), 1, "{p}");
    // Segment 4 starts at 16 s: 1 000 016 s after the epoch.
    assert!(
        p.contains("#EXT-X-PROGRAM-DATE-TIME:1970-01-12T13:46:56.000Z\n4.m4s")
            || p.contains("#EXT-X-PROGRAM-DATE-TIME:1970-01-12T13:46:56.000Z\n#EXT-X-PART"),
        "{p}"
    );
    // Parts: for the last three target durations (segments 6, 7 and the open 8), not for 4 and 5.
    assert!(
        !p.contains("URI=\"4.0.m4s\"") && !p.contains("URI=\"5.0.m4s\""),
        "{p}"
    );
    assert!(
        p.contains("#EXT-X-PART:DURATION=0.320,URI=\"6.0.m4s\",INDEPENDENT=YES\n"),
        "{p}"
    );
    assert!(
        p.contains("#EXT-X-PART:DURATION=0.320,URI=\"8.1.m4s\"\n"),
        "{p}"
    );
    assert!(
        p.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"8.2.m4s\"\n"),
        "{p}"
    );
    let with_link = l.playlist(false, Some("sig=abc"));
    assert!(
        with_link.contains("URI=\"init0.mp4?sig=abc\""),
        "{with_link}"
    );
    assert!(with_link.contains("\n7.m4s?sig=abc\n"), "{with_link}");
    assert!(with_link.contains("URI=\"8.2.m4s?sig=abc\""), "{with_link}");
}

#[test]
fn a_delta_update_skips_what_is_older_than_can_skip_until() {
    let mut l = LlHls::new(LlLimits {
        window: 10,
        ..limits()
    });
    l.init(Bytes::from_static(b"init"));
    feed(&mut l, 0, 50 * 12 + 10, 50);
    let full = l.playlist(false, None);
    let delta = l.playlist(true, None);
    // 10 segments of 2 s listed, CAN-SKIP-UNTIL 12 s: the 4 that start more than 12 s before the
    // end (the open segment's complete part counts: 20.32 s in all) are skipped: 2 to 6.
    assert!(
        delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=5\n"),
        "{delta}"
    );
    assert_eq!(full.matches("#EXTINF").count(), 10);
    assert_eq!(delta.matches("#EXTINF").count(), 5);
    assert!(
        delta.contains("#EXT-X-MEDIA-SEQUENCE:2\n"),
        "the first listed, skipped or not"
    );
    assert!(
        !delta.contains("\n6.m4s\n") && delta.contains("\n7.m4s\n"),
        "{delta}"
    );
    assert!(delta.contains("#EXT-X-MAP:URI=\"init0.mp4\""), "{delta}");
    // The parts of the last three target durations are in both.
    let parts = |p: &str| p.lines().filter(|l| l.starts_with("#EXT-X-PART:")).count();
    assert_eq!(parts(&delta), parts(&full), "{full}\n{delta}");
    assert!(parts(&delta) > 6);
}

#[test]
fn blocking_requests_wait_for_the_part_or_segment_they_name() {
    let mut l = stream();
    feed(&mut l, 0, 50 + 9, 50);
    // Segment 0 complete; segment 1 has part 0 complete (8 frames), part 1 open.
    let q = |msn, part| Query {
        msn: Some(msn),
        part,
        skip: false,
    };
    assert_eq!(l.readiness(&Query::default()), Readiness::Ready);
    assert_eq!(l.readiness(&q(0, None)), Readiness::Ready);
    assert_eq!(l.readiness(&q(1, None)), Readiness::Wait);
    assert_eq!(l.readiness(&q(1, Some(0))), Readiness::Ready);
    assert_eq!(l.readiness(&q(1, Some(1))), Readiness::Wait);
    assert_eq!(
        l.readiness(&q(0, Some(99))),
        Readiness::Ready,
        "past segment 0's parts"
    );
    assert_eq!(
        l.readiness(&q(2, None)),
        Readiness::Wait,
        "two beyond the newest complete segment may wait"
    );
    assert_eq!(l.readiness(&q(3, None)), Readiness::TooFar { newest: 0 });
    // The Advance Part Limit: 3 s of 333 ms parts (10) beyond the newest part (1.0).
    assert_eq!(l.readiness(&q(1, Some(10))), Readiness::Wait);
    assert_eq!(
        l.readiness(&q(1, Some(11))),
        Readiness::TooFar { newest: 0 }
    );
    // In the next segment: its part 10 is at least 11 parts beyond the newest.
    assert_eq!(l.readiness(&q(2, Some(9))), Readiness::Wait);
    assert_eq!(
        l.readiness(&q(2, Some(10))),
        Readiness::TooFar { newest: 0 }
    );
    feed(&mut l, 59, 8, 50);
    assert_eq!(l.readiness(&q(1, Some(1))), Readiness::Ready);
    l.end();
    assert_eq!(
        l.readiness(&q(3, None)),
        Readiness::Ready,
        "an ended stream holds nothing"
    );
    assert!(l.playlist(false, None).ends_with("#EXT-X-ENDLIST\n"));
}

#[test]
fn the_query_is_read_and_bad_values_are_refused() {
    let q = Query::parse(Some("jwt=x&_HLS_msn=12&_HLS_part=3&_HLS_skip=YES")).unwrap();
    assert_eq!((q.msn, q.part, q.skip), (Some(12), Some(3), true));
    assert!(q.is_blocking());
    assert_eq!(Query::parse(None), Ok(Query::default()));
    assert_eq!(
        Query::parse(Some("_HLS_part=1")),
        Err(QueryError::PartWithoutMsn)
    );
    assert_eq!(
        Query::parse(Some("_HLS_msn=-1")),
        Err(QueryError::NotANumber("_HLS_msn"))
    );
    assert_eq!(
        Query::parse(Some("_HLS_msn=1&_HLS_skip=NO")),
        Err(QueryError::Skip)
    );
    assert_eq!(
        Query::parse(Some("_HLS_msn=99999999999999999999999")),
        Err(QueryError::NotANumber("_HLS_msn"))
    );
}

#[test]
fn a_new_init_segment_starts_a_segment_at_the_next_keyframe_and_is_mapped() {
    let mut l = stream();
    feed(&mut l, 0, 60, 50);
    l.init(Bytes::from_static(b"init, new size"));
    feed(&mut l, 60, 45, 25);
    // The keyframe at frame 75 starts segment 2 although segment 1 is only 1 s long.
    let s = l.segment(2).unwrap();
    assert_eq!((s.start_ms, s.init), (75 * 40, 1));
    let p = l.playlist(false, None);
    assert!(
        p.contains("#EXT-X-MAP:URI=\"init0.mp4\"") && p.contains("#EXT-X-MAP:URI=\"init1.mp4\""),
        "{p}"
    );
    assert_eq!(
        l.init_segment(1).map(|b| &b[..]),
        Some(&b"init, new size"[..])
    );
    // Once no kept segment needs version 0, it is dropped.
    feed(&mut l, 105, 50 * 10, 50);
    assert!(l.init_segment(0).is_none() && l.init_segment(1).is_some());
}

#[test]
fn a_delta_update_never_skips_a_discontinuity() {
    let mut l = LlHls::new(LlLimits {
        window: 10,
        ..limits()
    });
    l.init(Bytes::from_static(b"init"));
    feed(&mut l, 0, 50 * 4, 50);
    l.discontinuity();
    feed(&mut l, 10_000, 50 * 8 + 10, 50);
    // Segments 0 to 3, then the break, then 4 to 11 and the open one: without the break the
    // delta would skip past it (segments older than 12 s from the end: 0 to 5).
    let delta = l.playlist(true, None);
    assert!(
        delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n"),
        "{delta}"
    );
    assert!(delta.contains("#EXT-X-DISCONTINUITY\n"), "{delta}");
    let full = l.playlist(false, None);
    assert_eq!(
        full.matches("#EXT-X-DISCONTINUITY\n").count(),
        delta.matches("#EXT-X-DISCONTINUITY\n").count()
    );
}

#[test]
fn a_reconnect_is_a_discontinuity_and_memory_stays_bounded() {
    let mut l = stream();
    feed(&mut l, 0, 120, 50);
    l.discontinuity();
    // The new session's clock starts elsewhere.
    feed(&mut l, 10_000, 120, 50);
    let p = l.playlist(false, None);
    assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{p}");
    let before = l.bytes();
    feed(&mut l, 20_000, 50 * 40, 50);
    assert!(
        l.bytes() <= before * 2,
        "window and spare bound what is kept"
    );
    let freed = l.shrink(1);
    assert!(freed > 0 && l.segment(l.newest_msn() - 1).is_some());
    assert!(l.segment(l.newest_msn() - 2).is_none());
    // Keyframes far apart: segments are cut at the byte limit, and what is kept is bounded.
    let mut l = LlHls::new(LlLimits {
        max_segment_bytes: 1_000,
        ..limits()
    });
    l.init(Bytes::from_static(b"init"));
    feed(&mut l, 0, 5000, 100_000);
    assert!(l.cut_short > 100, "{}", l.cut_short);
    assert!(l.bytes() <= 1_000 * (4 + 1 + 1) + 4, "{}", l.bytes());
    let s = l.segment(l.newest_msn() - 1).unwrap();
    assert!(!s.parts[0].independent && s.bytes <= 1_000);
}

#[test]
fn segments_never_outgrow_the_target_duration_and_it_never_changes() {
    // Keyframes every 4 s, segments of 2 s: each is cut before it would round above 2 s.
    let mut l = stream();
    feed(&mut l, 0, 25 * 30, 100);
    for msn in 0..l.newest_msn() {
        let Some(s) = l.segment(msn) else { continue };
        assert!(s.duration.as_secs_f64().round() <= 2.0, "{:?}", s.duration);
    }
    assert!(l
        .playlist(false, None)
        .contains("#EXT-X-TARGETDURATION:2\n"));
    assert!(l.cut_short > 0);
    // A clock that goes back is a discontinuity, not a segment of 49 days.
    feed(&mut l, 10, 200, 50);
    let p = l.playlist(false, None);
    assert!(p.contains("#EXT-X-TARGETDURATION:2\n"), "{p}");
    assert!(p.contains("#EXT-X-DISCONTINUITY\n"), "{p}");
}

#[test]
fn parts_stay_within_the_target_at_frame_intervals_that_alternate() {
    // 30 fps in milliseconds: 33, 33, 34, ...
    let mut l = stream();
    for n in 0..300u32 {
        let ms = n * 1000 / 30;
        l.fragment(vec![Bytes::from_static(b"x")], n % 60 == 0, ms.into(), None);
    }
    let mut parts = 0;
    for msn in 0..l.newest_msn() {
        for p in l.segment(msn).unwrap().parts.iter().filter(|p| p.complete) {
            assert!(p.duration <= Duration::from_millis(333), "{:?}", p.duration);
            parts += 1;
        }
    }
    assert!(parts > 20);
}

#[test]
fn init_segments_that_no_segment_uses_do_not_pile_up() {
    let mut l = stream();
    for i in 0..10_000u32 {
        l.init(Bytes::from(i.to_be_bytes().to_vec()));
    }
    assert!(l.bytes() < 100, "{}", l.bytes());
    feed(&mut l, 0, 60, 50);
    // The last one, under a number of its own (10,000 came after the first).
    assert_eq!(l.segment(0).unwrap().init, 10_000);
    assert_eq!(l.init_segment(10_000).unwrap()[..], 9_999u32.to_be_bytes());
}

#[test]
fn an_init_segments_number_always_names_the_same_bytes() {
    let mut l = stream();
    let mut seen: std::collections::HashMap<u64, Bytes> = Default::default();
    let mut frame = 0;
    for i in 0..200u32 {
        // Configurations one after another before a frame, or between frames.
        l.init(Bytes::from(i.to_be_bytes().to_vec()));
        if i % 3 == 0 {
            feed(&mut l, frame, 10, 10);
            frame += 10;
        }
        for v in 0..=u64::from(i) + 1 {
            if let Some(b) = l.init_segment(v) {
                assert_eq!(seen.entry(v).or_insert_with(|| b.clone()), b, "version {v}");
            }
        }
    }
}

#[test]
fn a_part_request_waits_until_the_part_is_complete_or_begun_when_it_can_be_streamed() {
    let mut l = stream();
    feed(&mut l, 0, 50 + 9, 50);
    // Segment 1: part 0 complete, part 1 begun.
    let part = |msn, part, begun| Awaited::Part { msn, part, begun };
    assert_eq!(l.awaited(&part(1, 0, false)), Readiness::Ready);
    assert_eq!(l.awaited(&part(1, 1, false)), Readiness::Wait);
    assert_eq!(
        l.awaited(&part(1, 1, true)),
        Readiness::Ready,
        "begun: streamed"
    );
    assert_eq!(l.awaited(&part(1, 2, true)), Readiness::Wait, "not begun");
    assert_eq!(
        l.awaited(&part(2, 0, true)),
        Readiness::Wait,
        "the next segment's first"
    );
    assert_eq!(
        l.awaited(&part(3, 0, true)),
        Readiness::TooFar { newest: 0 }
    );
    assert_eq!(
        l.awaited(&part(0, 7, true)),
        Readiness::Gone,
        "segment 0 has 7 parts"
    );
    feed(&mut l, 59, 50 * 20, 50);
    assert_eq!(l.awaited(&part(0, 0, false)), Readiness::Gone, "slid out");
    // A first playlist waits for a complete segment.
    let mut fresh = stream();
    let first = Awaited::Playlist(Query::default());
    feed(&mut fresh, 0, 30, 50);
    assert_eq!(fresh.awaited(&first), Readiness::Wait);
    feed(&mut fresh, 30, 30, 50);
    assert_eq!(fresh.awaited(&first), Readiness::Ready);
}

#[test]
fn an_ended_stream_takes_no_more_fragments() {
    // Found by the llhls fuzz target: a fragment after the end opened a segment at the time the
    // last one began, and the DASH timeline overlapped itself.
    let mut l = stream();
    feed(&mut l, 0, 60, 50);
    l.end();
    let newest = l.newest_msn();
    feed(&mut l, 50, 60, 50);
    assert_eq!(l.newest_msn(), newest);
    assert!(l.playlist(false, None).ends_with("#EXT-X-ENDLIST\n"));
    assert_eq!(l.hint(), None);
}

#[test]
fn the_parts_mark_changes_when_a_part_begins_or_completes_and_not_in_between() {
    let mut l = stream();
    let mut marks = Vec::new();
    for n in 0..60 {
        let before = l.parts_mark();
        feed(&mut l, n, 1, 50);
        marks.push(l.parts_mark() != before);
    }
    // The first fragment begins the first part; then every 8 frames (320 ms of the 333 ms part
    // target) a part completes and the next begins at the same fragment, and at frame 50 (a
    // keyframe 2 s in) the segment ends early with its last, short part.
    let changed: Vec<usize> = (0..60).filter(|&n| marks[n]).collect();
    assert_eq!(changed[0], 0, "the first part began");
    assert!(
        changed.windows(2).all(|w| w[1] - w[0] == 8 || w[1] == 50),
        "{changed:?}"
    );
    assert!(changed.len() < 10, "not per fragment: {changed:?}");
}

#[test]
fn the_version_changes_when_the_playlist_does_and_not_with_every_fragment() {
    let mut l = stream();
    let (mut v, mut p) = (l.version(), l.playlist(false, None));
    let mut changes = 0;
    for n in 0..50 * 8 {
        feed(&mut l, n, 1, 50);
        if n == 50 * 5 {
            l.discontinuity();
        }
        let now = l.playlist(false, None);
        if l.version() == v {
            assert_eq!(now, p, "the same version, another playlist after frame {n}");
        } else {
            changes += 1;
        }
        (v, p) = (l.version(), now);
    }
    // About a part (8 frames) at a time, not 400.
    assert!((40..120).contains(&changes), "{changes} versions");
}

#[test]
fn a_query_written_into_a_shared_playlist_is_the_playlist_rendered_with_it() {
    let mut l = stream();
    feed(&mut l, 0, 50 * 3 + 17, 50);
    l.init(Bytes::from_static(b"other init"));
    feed(&mut l, 50 * 3 + 17, 50 * 6 + 3, 50);
    let q = "expires=99&sig=a%2Fb";
    for skip in [false, true] {
        let shared = l.playlist(skip, None);
        assert!(shared.contains("#EXT-X-PRELOAD-HINT") && shared.contains("#EXT-X-MAP"));
        assert_eq!(
            playlist::with_query(&shared, q),
            l.playlist(skip, Some(q)),
            "skip: {skip}"
        );
    }
    l.end();
    let ended = l.playlist(false, None);
    assert_eq!(playlist::with_query(&ended, q), l.playlist(false, Some(q)));
}

#[test]
fn the_frame_rate_is_measured_from_millisecond_times_and_tells_29_97_from_30() {
    for (num, den) in [(30, 1), (30_000, 1001), (25, 1), (60_000, 1001)] {
        let mut l = stream();
        assert_eq!(l.frame_rate(), None);
        for n in 0..300u64 {
            let ms = (n * 1000 * den / num) as u32;
            l.fragment(vec![Bytes::from_static(b"x")], n % 60 == 0, ms.into(), None);
        }
        let rate = l.frame_rate().unwrap();
        assert_eq!((rate.num, rate.den), (num as u32, den as u32));
        // A clock that steps begins the measure again.
        l.discontinuity();
        assert_eq!(l.frame_rate(), None);
    }
}

/// An encoder that drops a frame (a step of two frame intervals, less than a gap): no
/// segment's EXTINF rounds above the target duration, and a segment's parts still add up to
/// it.
#[test]
fn a_dropped_frame_stretches_no_segment_past_its_target() {
    let mut l = stream();
    let mut ms = 0u32;
    let (mut segments, mut parts) = (std::collections::HashSet::new(), 0);
    for n in 0..400u32 {
        l.fragment(
            vec![Bytes::from_static(b"x")],
            n % 100 == 0,
            ms.into(),
            None,
        );
        // Dropped: the frame after the one at 280 ms, and the one after 2 440 ms, where the
        // first segment (2 s, cut before it rounds above 2) would still have taken one more.
        ms += if matches!(n, 7 | 60) { 80 } else { 40 };
        // Each segment as it completes (the window keeps only the latest).
        for msn in 0..l.newest_msn() {
            let Some(s) = l.segment(msn).filter(|s| s.complete) else {
                continue;
            };
            if !segments.insert(msn) {
                continue;
            }
            let d = s.duration;
            assert!(d.as_secs_f64().round() <= 2.0, "{msn}: {d:?}");
            assert_eq!(s.parts.iter().map(|p| p.duration).sum::<Duration>(), d);
            parts += s.parts.len();
        }
    }
    assert!(segments.len() > 5 && parts > 30, "{segments:?} {parts}");
}

#[test]
fn a_segment_that_left_the_playlist_stays_for_its_duration_and_the_playlists() {
    let mut l = LlHls::new(LlLimits {
        spare: 4 + crate::hls::SPARE_BEYOND_WINDOW,
        ..limits()
    });
    l.init(Bytes::from_static(b"init"));
    // 2 s segments, four listed. Segment 0 left when segment 4 was complete (10 s); it stays
    // for its 2 s and the 8 s of segments and the 2.5 s the open one may add that the last
    // playlist listing it held: 20.5 s after its end.
    feed(&mut l, 0, 50 * 11 + 1, 50);
    let p = l.playlist(false, None);
    assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:7\n"), "{p}");
    assert!(l.segment(0).is_some(), "20 s after its end, still owed");
    feed(&mut l, 50 * 11 + 1, 50, 50);
    assert!(l.segment(0).is_none(), "22 s after its end, gone");
    assert!(l.segment(1).is_some());
}
