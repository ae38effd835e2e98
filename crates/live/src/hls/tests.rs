//! The TS HLS segmenter: segments, playlists, DVR windows, reconnects and memory.

use super::*;

fn limits() -> HlsLimits {
    HlsLimits {
        min_segment: Duration::from_secs(2),
        window: 3,
        spare: 1,
        max_segment_bytes: 10_000,
        dvr: 0,
    }
}

fn b(n: u8) -> Bytes {
    Bytes::from(vec![n; 10])
}

/// Feeds a 1 fps keyframe stream (keyframe each second, 4 units per second).
fn feed(s: &mut Segmenter, from_sec: u64, secs: u64) {
    for t in from_sec..from_sec + secs {
        let now = Duration::from_secs(t);
        s.push_keyframe(
            b(t as u8),
            &[Bytes::from_static(b"PSI")],
            Some(Ts90k(t * 90_000)),
            now,
            t * 4,
        );
        for k in 1..4 {
            s.push(b(t as u8), now + Duration::from_millis(250 * k));
        }
    }
}

#[test]
fn a_dvr_window_lists_the_segments_that_left_memory_while_their_bytes_are_recorded() {
    let mut s = Segmenter::new(HlsLimits { dvr: 5, ..limits() });
    // 20 s of 1 s keyframes: segments of 2 s; 3 listed + 1 spare in memory, 5 remembered.
    feed(&mut s, 0, 20);
    assert_eq!(s.len(), 4);
    let plain = s.playlist();
    assert_eq!(plain.matches("#EXTINF").count(), 3, "{plain}");
    // Everything recorded: the 5 remembered, then all 4 in memory, in order.
    let dvr = s.playlist_with(|_, _, _| true, 0);
    let seqs: Vec<&str> = dvr.lines().filter(|l| l.ends_with(".ts")).collect();
    assert_eq!(
        seqs,
        ["0.ts", "1.ts", "2.ts", "3.ts", "4.ts", "5.ts", "6.ts", "7.ts", "8.ts"]
    );
    assert!(dvr.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{dvr}");
    // Where the first unit of segment 2 (second 4) is not recorded, the window begins after.
    let partial = s.playlist_with(|first, _, _| first > 4 * 4, 0);
    assert!(partial.contains("#EXT-X-MEDIA-SEQUENCE:3\n"), "{partial}");
    assert_eq!(s.first_listed(Some((&|first, _, _| first > 4 * 4, 0))), 3);
    assert_eq!(s.first_listed(None), 6);
    // Nothing before where the last playlist began, even what the recording holds.
    let later = s.playlist_with(|_, _, _| true, 3);
    assert!(later.contains("#EXT-X-MEDIA-SEQUENCE:3\n"), "{later}");
    // Nothing recorded: the window in memory (its spare goes first); none before the floor.
    assert_eq!(s.playlist_with(|_, _, _| false, 0), s.playlist());
    assert!(s
        .playlist_with(|_, _, _| false, 7)
        .contains("#EXT-X-MEDIA-SEQUENCE:7\n"));
    // A remembered segment's bytes run from its first unit to the next one's, and come to its
    // PAT/PMT and 2 s of units.
    let (p, next) = s.past(4).unwrap();
    assert_eq!((p.seq, p.first_unit, next), (4, 8 * 4, 10 * 4));
    assert_eq!(p.bytes, 3 + 8 * 10);
    // The recording is asked whether it holds that many bytes there.
    let exact = s.playlist_with(|_, _, bytes| bytes == 3 + 8 * 10, 0);
    assert!(exact.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{exact}");
    let short = s.playlist_with(|first, _, bytes| first > 4 * 4 || bytes < 83, 0);
    assert!(short.contains("#EXT-X-MEDIA-SEQUENCE:3\n"), "{short}");
    assert!(s.past(5).is_none() && s.get(5).is_some());
}

#[test]
fn a_dvr_window_forms_while_players_reload_from_the_start() {
    let mut s = Segmenter::new(HlsLimits { dvr: 5, ..limits() });
    let mut floor = 0;
    // A player reloads after every second; the recording holds everything.
    for t in 0..20 {
        feed(&mut s, t, 1);
        floor = floor.max(s.first_listed(Some((&|_, _, _| true, floor))));
    }
    let p = s.playlist_with(|_, _, _| true, floor);
    let seqs: Vec<&str> = p.lines().filter(|l| l.ends_with(".ts")).collect();
    assert_eq!(seqs.len(), 9, "5 remembered and 4 in memory: {p}");
    assert_eq!(seqs[0], "0.ts", "{p}");
}

#[test]
fn the_version_changes_with_what_the_playlist_lists_and_only_then() {
    let mut s = Segmenter::new(limits());
    feed(&mut s, 0, 3);
    let (v, p) = (s.version(), s.playlist());
    // Units and a keyframe within the open segment: the same playlist, the same version.
    s.push(b(9), Duration::ZERO);
    s.push_keyframe(
        b(9),
        &[],
        Some(Ts90k(3 * 90_000)),
        Duration::from_secs(3),
        99,
    );
    assert_eq!((s.version(), s.playlist()), (v, p.clone()));
    // A segment closes, memory shrinks, the stream ends: each a new version.
    let mut seen = vec![v];
    feed(&mut s, 4, 2);
    seen.push(s.version());
    s.shrink(1);
    seen.push(s.version());
    s.end();
    seen.push(s.version());
    assert!(seen.windows(2).all(|w| w[1] > w[0]), "{seen:?}");
    assert_ne!(s.playlist(), p);
}

#[test]
fn segments_start_at_keyframes_with_psi_and_the_playlist_slides() {
    let mut s = Segmenter::new(limits());
    assert!(s.is_empty());
    feed(&mut s, 0, 3);
    assert_eq!(s.len(), 1, "closed at the first keyframe 2 s in");
    let seg = s.get(0).unwrap();
    assert_eq!(seg.parts[0], Bytes::from_static(b"PSI"));
    assert_eq!(seg.parts.len(), 1 + 8, "2 s of units");
    assert_eq!(seg.duration, Duration::from_secs(2));
    feed(&mut s, 3, 20);
    let p = s.playlist();
    assert!(p.contains("#EXT-X-TARGETDURATION:2\n"), "{p}");
    assert_eq!(p.matches("#EXTINF:2.000,").count(), 3, "{p}");
    let first = s.segments.front().unwrap().seq + (s.len() as u64 - 3);
    assert!(
        p.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{first}\n")),
        "{p}"
    );
    assert!(p.contains(&format!("\n{first}.ts\n")), "{p}");
    assert!(!p.contains("ENDLIST"));
    assert!(s.get(0).is_none(), "slid out and dropped");
    assert!(s.len() <= 4, "window plus spare");
    s.end();
    assert!(s.playlist().ends_with("#EXT-X-ENDLIST\n"));
}

#[test]
fn shrinking_keeps_the_newest_segments_and_the_media_sequence_moves_on() {
    let mut s = Segmenter::new(limits());
    feed(&mut s, 0, 9);
    assert_eq!(s.len(), 4);
    let newest = s.segments.back().unwrap().seq;
    let before = s.bytes();
    let freed = s.shrink(2);
    assert_eq!(s.len(), 2);
    assert_eq!(s.bytes(), before - freed);
    let p = s.playlist();
    assert!(
        p.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{}\n", newest - 1)),
        "{p}"
    );
    assert!(s.get(newest - 2).is_none(), "dropped");
    assert_eq!(s.shrink(2), 0, "nothing more to drop");
}

#[test]
fn a_segment_a_publisher_left_lasts_until_its_last_unit_not_until_it_came_back() {
    let mut s = Segmenter::new(limits());
    feed(&mut s, 0, 5);
    // The segment begun at 4 s holds units up to 4.75 s; the publisher comes back at 25 s.
    s.discontinuity();
    feed(&mut s, 25, 1);
    let left = s.segments.back().unwrap();
    assert_eq!(left.duration, Duration::from_millis(750));
    assert!(s.playlist().contains("#EXT-X-TARGETDURATION:2\n"));
}

/// Audio alone, then video joins (its keyframe 1.5 s of media after the audio segment began,
/// though a publisher faster than real time sent it 0.2 s later): the audio segment closes at
/// the keyframe, shorter than the 2 s minimum, lasting what its timestamps say, and the video's
/// segment is discontinuous.
#[test]
fn tracks_that_change_close_the_segment_at_the_keyframe_by_its_timestamps() {
    let mut s = Segmenter::new(limits());
    let t0 = Duration::from_secs(10);
    s.push_keyframe(b(1), &[b(0)], Some(Ts90k(900_000)), t0, 0);
    s.push(b(1), t0 + Duration::from_millis(100));
    s.tracks_change();
    let at = t0 + Duration::from_millis(200);
    s.push_keyframe(b(2), &[b(0)], Some(Ts90k(900_000 + 135_000)), at, 2);
    let audio = s.segments.back().unwrap();
    assert_eq!(audio.duration, Duration::from_millis(1500));
    assert!(!audio.discontinuity);
    feed(&mut s, 20, 3);
    let p = s.playlist();
    assert!(p.contains("#EXTINF:1.500,"), "{p}");
    assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{p}");
    // Later keyframes are cut by the minimum again.
    assert!(s.segments.back().unwrap().duration >= Duration::from_secs(2));
}

#[test]
fn a_reconnect_marks_a_discontinuity_and_counts_it_when_it_slides_out() {
    let mut s = Segmenter::new(limits());
    feed(&mut s, 0, 5);
    s.discontinuity();
    feed(&mut s, 100, 5);
    let p = s.playlist();
    assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{p}");
    assert!(p.contains("#EXT-X-DISCONTINUITY-SEQUENCE:0\n"));
    feed(&mut s, 105, 20);
    let p = s.playlist();
    assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 0, "{p}");
    assert!(p.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{p}");
}

#[test]
fn a_stream_without_keyframes_stays_bounded() {
    let mut s = Segmenter::new(limits());
    feed(&mut s, 0, 1);
    for _ in 0..10_000 {
        s.push(b(1), Duration::ZERO);
        assert!(s.bytes() <= 10_000 + 10);
    }
    assert_eq!(s.dropped, 1);
    feed(&mut s, 1, 5);
    let p = s.playlist();
    assert!(p.contains("#EXT-X-DISCONTINUITY\n"), "{p}");
}

/// A long GOP once (an encoder's scene change, a reconnect) makes a long segment: the target
/// duration grows to it and stays there after the segment slid out (it went back down to 2).
#[test]
fn the_target_duration_never_goes_back_down() {
    let mut s = Segmenter::new(limits());
    feed(&mut s, 0, 6);
    s.push_keyframe(
        b(6),
        &[Bytes::from_static(b"PSI")],
        Some(Ts90k(6 * 90_000)),
        Duration::from_secs(6),
        24,
    );
    for k in 1..20 {
        s.push(b(6), Duration::from_millis(6_000 + 250 * k));
    }
    feed(&mut s, 11, 20);
    let p = s.playlist();
    assert!(!p.contains("#EXTINF:5.000"), "the long one slid out: {p}");
    assert!(p.contains("#EXT-X-TARGETDURATION:5\n"), "{p}");
}

/// Keyframes every 0.5 s, then one 0.3 s earlier than the open segment began (a publisher's
/// clock that stepped back): that segment lasts until its latest unit, the next is
/// discontinuous, and the target duration stays what the segments are (not the 26 h of a
/// step taken as the rest of the 33-bit period).
#[test]
fn a_keyframe_earlier_than_the_open_segment_closes_it_by_arrival_and_marks_a_discontinuity() {
    let mut s = Segmenter::new(limits());
    let key = |s: &mut Segmenter, pts_ms: u64, at_ms: u64, unit: u64| {
        let now = Duration::from_millis(at_ms);
        s.push_keyframe(b(1), &[b(0)], Some(Ts90k(pts_ms * 90)), now, unit);
        s.push(b(1), now + Duration::from_millis(250));
    };
    for i in 0..6 {
        key(&mut s, 10_000 + i * 500, i * 500, i * 2);
    }
    // The open segment began at 12 s; the next keyframe says 11.7 s.
    key(&mut s, 11_700, 3_000, 12);
    for i in 1..6 {
        key(&mut s, 11_700 + i * 500, 3_000 + i * 500, 12 + i * 2);
    }
    let p = s.playlist();
    assert!(p.contains("#EXT-X-TARGETDURATION:2\n"), "{p}");
    assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{p}");
    for d in s.segments.iter().map(|g| g.duration) {
        assert!(d <= Duration::from_secs(2), "{d:?}\n{p}");
    }
}

#[test]
fn a_segment_that_left_the_playlist_stays_for_its_duration_and_the_playlists() {
    let mut s = Segmenter::new(HlsLimits {
        spare: 3 + SPARE_BEYOND_WINDOW,
        ..limits()
    });
    // 2 s segments, three listed: segment 0 left when segment 3 closed (8 s); it stays for its
    // 2 s and the 6 s of the last playlist that listed it: 14 s after its end.
    feed(&mut s, 0, 16);
    assert!(s.playlist().contains("#EXT-X-MEDIA-SEQUENCE:4\n"));
    assert!(s.get(0).is_some(), "12 s after its end, still owed");
    feed(&mut s, 16, 1);
    assert!(s.get(0).is_none(), "14 s after its end, gone");
    assert!(s.get(1).is_some());
}
