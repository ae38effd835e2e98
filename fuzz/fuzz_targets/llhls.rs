//! LL-HLS cutting and its requests, and the LL-DASH manifest of the same segments: a publisher's
//! fragment times, keyframes and configurations (any order, any clock), interleaved with
//! players' playlist queries. Input: records of [op, ...]; op 0: an init segment (len, bytes),
//! 1: a fragment (flags, ms as 4 bytes, size as 2), 2: a query (len, bytes), 3: a reconnect,
//! 4: the end, 5: a shrink (keep). Checks that the target duration never changes, that a
//! segment is found by its own number, that what is kept stays within the window, and that
//! every Period of the manifest is one timeline without gaps or overlaps. With a DVR window of
//! what a recording is said to hold (a different answer at each query), a playlist's media
//! sequence never goes back from the one before.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use live::dash::{mpd, mpd_with, Manifest};
use live::llhls::{Awaited, Dvr, LlHls, LlLimits, Query, TrackInit};
use std::time::Duration;

const LIMITS: LlLimits = LlLimits {
    part_target: Duration::from_millis(333),
    min_segment: Duration::from_secs(2),
    window: 4,
    spare: 1,
    max_segment_bytes: 4096,
    dvr: 6,
};

fuzz_target!(|data: &[u8]| {
    let mut ll = LlHls::new(LIMITS);
    let target = ll.target_duration();
    let (mut floor, mut last_seq) = (0, 0);
    let mut unit = 0u64;
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 6 {
            0 => {
                let Some((&n, tail)) = rest.split_first() else {
                    break;
                };
                let (init, tail) = tail.split_at(usize::from(n).min(tail.len()));
                let track = |codecs: &str| TrackInit {
                    init: Bytes::copy_from_slice(init),
                    codecs: codecs.into(),
                    shape: (init.len() as u32, 2),
                };
                let tracks = [
                    (n & 1 == 0).then(|| track("avc1.64001f")),
                    (n & 2 == 0).then(|| track("mp4a.40.2")),
                ];
                ll.init_tracks(Bytes::copy_from_slice(init), tracks);
                rest = tail;
            }
            1 => {
                let Some((head, tail)) = rest.split_at_checked(7) else {
                    break;
                };
                let ms = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
                let size = usize::from(u16::from_be_bytes([head[5], head[6]]) % 2048);
                let muxed = Bytes::from(vec![0; size]);
                let tracks = [vec![muxed.slice(..size / 2)], vec![muxed.slice(size / 2..)]];
                let wall = (head[0] & 2 == 0).then_some(u64::from(ms));
                // Some fragments never reach the ring (unknown unit).
                let at = (head[0] & 4 == 0).then_some(unit);
                unit += 1;
                ll.fragment_tracks(vec![muxed], tracks, head[0] & 1 == 1, ms.into(), wall, at);
                rest = tail;
            }
            2 => {
                let Some((&n, tail)) = rest.split_first() else {
                    break;
                };
                let (q, tail) = tail.split_at(usize::from(n).min(tail.len()));
                rest = tail;
                let q = String::from_utf8_lossy(q);
                if let Ok(query) = Query::parse(Some(&q)) {
                    let _ = ll.readiness(&query);
                    let _ = ll.awaited(&Awaited::Playlist(query));
                    let msn = query.msn.unwrap_or(0);
                    let part = query.part.unwrap_or(0) as usize;
                    let _ = ll.awaited(&Awaited::Part {
                        msn,
                        part,
                        begun: query.skip,
                    });
                    let _ = ll.awaited(&Awaited::Segment {
                        msn,
                        begun: query.skip,
                    });
                    let p = ll.playlist(query.skip, Some("sig=x"));
                    assert!(p.starts_with("#EXTM3U\n"));
                    let m = Manifest {
                        now_ms: 0,
                        carry: Some(&q),
                        clock_url: "/api/time",
                    };
                    if let Some(m) = mpd(&ll, &m) {
                        assert_timelines_are_contiguous(&m);
                    }
                    // A recording said to hold the segments whose first unit the query's length
                    // does not divide.
                    let holds = |a: u64, _: u64, _: u64| a % (n as u64 + 2) != 0;
                    let dvr = Dvr {
                        recorded: &holds,
                        floor,
                    };
                    let p = ll.playlist_with(query.skip, None, Some(&dvr));
                    let seq: u64 = p
                        .lines()
                        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
                        .and_then(|v| v.parse().ok())
                        .expect("a media sequence");
                    assert_eq!(seq, ll.first_listed(Some(&dvr)));
                    assert!(seq >= last_seq, "the media sequence went back: {seq} after {last_seq}");
                    last_seq = seq;
                    floor = floor.max(seq);
                    if let Some(m) = mpd_with(&ll, &m, Some(&dvr)) {
                        assert_timelines_are_contiguous(&m);
                    }
                }
            }
            3 => ll.discontinuity(),
            4 => ll.end(),
            _ => {
                let Some((&keep, tail)) = rest.split_first() else {
                    break;
                };
                ll.shrink(usize::from(keep % 8));
                rest = tail;
            }
        }
        assert_eq!(ll.target_duration(), target, "EXT-X-TARGETDURATION changed");
        // Window + spare + the open one, each within its byte limit (plus a last fragment), twice
        // (muxed and per track), and the init segments they need (at most one per segment, plus
        // one waiting; muxed and two tracks).
        let bound = 2 * (LIMITS.window + LIMITS.spare + 2) * (LIMITS.max_segment_bytes + 2048)
            + 3 * (LIMITS.window + LIMITS.spare + 3 + LIMITS.dvr + LIMITS.spare) * 256;
        assert!(ll.bytes() <= bound, "{} bytes kept", ll.bytes());
        if let Some(first) = ll.first_msn() {
            for msn in first..=ll.newest_msn() {
                if let Some(s) = ll.segment(msn) {
                    assert_eq!(s.msn, msn);
                }
            }
        }
    }
});

/// Every `<S t d>` of each Period's timelines begins where the one before it ends, or later (a
/// gap in the media stays in its period, the timeline showing it): never before. And no segment
/// is left out: `$Number$` counts the `<S>`s, so each Period's `startNumber` is the one before
/// it plus that one's segments (a segment missing in the middle would shift every number after
/// it onto another segment's media).
fn assert_timelines_are_contiguous(m: &str) {
    let attr = |s: &str, name: &str| -> u64 {
        let v = s.split(&format!("{name}=\"")).nth(1).unwrap_or("");
        v[..v.find('"').unwrap_or(0)].parse().unwrap_or(u64::MAX)
    };
    let mut next_number = None;
    for period in m.split("<Period ").skip(1) {
        if !period.contains("startNumber") {
            // No tracks (an init segment without any): nothing numbered, nothing to follow on.
            next_number = None;
            continue;
        }
        let first = attr(period, "startNumber");
        if let Some(n) = next_number {
            assert_eq!(first, n, "a segment left out before a Period in {m}");
        }
        let timeline = period.split("</SegmentTimeline>").next().unwrap_or("");
        next_number = Some(first + timeline.matches("<S ").count() as u64);
    }
    for set in m.split("<SegmentTimeline>").skip(1) {
        let set = set.split("</SegmentTimeline>").next().unwrap_or("");
        let mut end = None;
        for s in set.split("<S ").skip(1) {
            let num = |name: &str| -> u64 {
                let v = s.split(&format!("{name}=\"")).nth(1).unwrap_or("");
                v[..v.find('"').unwrap_or(0)].parse().unwrap_or(u64::MAX)
            };
            let (t, d) = (num("t"), num("d"));
            if let Some(e) = end {
                assert!(t >= e, "an overlap in {m}");
            }
            end = Some(t + d);
        }
    }
}
