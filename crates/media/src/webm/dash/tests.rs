//! The WebM DASH layout on small hand-made titles.

use super::*;

/// A block: (track, time relative to its cluster, keyframe, payload).
type TestBlock<'a> = (u64, i16, bool, &'a [u8]);

/// A cluster's Timecode element.
fn tc(time: u64) -> Vec<u8> {
    let mut c = Vec::new();
    put_uint(&mut c, TIMECODE, time);
    c
}

/// A SimpleBlock element.
fn sb(&(track, rel, key, payload): &TestBlock<'_>) -> Vec<u8> {
    let mut b = vec![0x80 | track as u8];
    b.extend_from_slice(&rel.to_be_bytes());
    b.push(if key { 0x80 } else { 0 });
    b.extend_from_slice(payload);
    let mut out = Vec::new();
    put(&mut out, SIMPLE_BLOCK, &b);
    out
}

/// A WebM of `clusters`, each (time, blocks).
fn webm(tracks: &[(u64, u64, &str)], clusters: &[(u64, Vec<TestBlock<'_>>)]) -> Vec<u8> {
    let raw: Vec<Vec<u8>> = clusters
        .iter()
        .map(|(time, blocks)| {
            [tc(*time)]
                .into_iter()
                .chain(blocks.iter().map(sb))
                .flatten()
                .collect()
        })
        .collect();
    webm_raw(tracks, &raw)
}

/// A WebM of clusters whose bodies are given.
fn webm_raw(tracks: &[(u64, u64, &str)], clusters: &[Vec<u8>]) -> Vec<u8> {
    let mut header = Vec::new();
    put(&mut header, 0x4282, b"webm");
    let mut out = Vec::new();
    put(&mut out, crate::webm::EBML, &header);
    let mut seg = Vec::new();
    let mut info = Vec::new();
    put_uint(&mut info, TIMECODE_SCALE, 1_000_000);
    put(&mut seg, INFO, &info);
    let mut entries = Vec::new();
    for &(number, kind, codec) in tracks {
        let mut e = Vec::new();
        put_uint(&mut e, crate::webm::TRACK_NUMBER, number);
        put_uint(&mut e, crate::webm::TRACK_TYPE, kind);
        put(&mut e, 0x86, codec.as_bytes());
        put(&mut entries, TRACK_ENTRY, &e);
    }
    put(&mut seg, TRACKS, &entries);
    for c in clusters {
        put(&mut seg, CLUSTER, c);
    }
    put(&mut out, SEGMENT, &seg);
    out
}

fn bytes(data: &[u8], spans: &[Span]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in spans {
        match s {
            Span::Written(w) => out.extend_from_slice(w),
            Span::Title(r) => out.extend_from_slice(&data[r.start as usize..r.end as usize]),
        }
    }
    out
}

fn title() -> Vec<u8> {
    let v = (1, 1, "V_VP9");
    let a = (2, 2, "A_OPUS");
    webm(
        &[v, a],
        &[
            (
                0,
                vec![
                    (1, 0, true, b"k0"),
                    (2, 0, true, b"a0"),
                    (1, 1000, false, b"p1"),
                    (2, 1000, true, b"a1"),
                ],
            ),
            (
                2000,
                vec![
                    (1, 0, true, b"k2"),
                    (2, 0, true, b"a2"),
                    (1, 1000, false, b"p3"),
                ],
            ),
            (
                4000,
                vec![
                    (2, -10, true, b"a3"),
                    (1, 0, true, b"k4"),
                    (1, 1000, false, b"p5"),
                ],
            ),
        ],
    )
}

#[test]
fn segments_start_at_keyframes_at_least_the_target_apart() {
    let data = title();
    let l = Layout::scan(&data, MediaTime::new(3, 1)).unwrap();
    let segs: Vec<(i64, i64)> = l
        .segs()
        .iter()
        .map(|s| (s.start.ticks, s.duration.ticks))
        .collect();
    assert_eq!(segs, [(0, 4000), (4000, 2000)]);
    assert_eq!(l.timescale(), 1000);
    assert_eq!(l.tracks.len(), 2);
    assert!(l.tracks[0].video && !l.tracks[1].video);
    assert_eq!(l.tracks[1].codecs, "opus");
}

#[test]
fn a_tracks_segment_is_its_blocks_under_the_clusters_times() {
    let data = title();
    let l = Layout::scan(&data, MediaTime::new(3, 1)).unwrap();
    let video = l.segment(0, 0).unwrap();
    // Two clusters, each a written head and the video blocks (not adjacent: audio between).
    assert_eq!(
        video
            .iter()
            .filter(|s| matches!(s, Span::Written(_)))
            .count(),
        2
    );
    let body = bytes(&data, &video);
    // Parse what was written back: clusters at 0 and 2000 with k0, p1, k2, p3.
    let mut found = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let c = element(&body, pos, body.len()).unwrap();
        assert_eq!(c.id, CLUSTER);
        let end = c.end.unwrap();
        children(&body, c.data, end, |e| {
            match e.id {
                TIMECODE => found.push(format!("t{}", uint(crate::webm::body(&body, e)))),
                SIMPLE_BLOCK => {
                    found.push(String::from_utf8_lossy(&crate::webm::body(&body, e)[4..]).into())
                }
                _ => panic!("unexpected element"),
            }
            Ok(())
        })
        .unwrap();
        pos = end;
    }
    assert_eq!(found, ["t0", "k0", "p1", "t2000", "k2", "p3"]);
    // Audio of the second segment: a3 (its time 3990 is before the cut at 4000: the first).
    let a1 = bytes(&data, &l.segment(1, 1).unwrap());
    assert!(!a1.windows(2).any(|w| w == b"a3"));
    let a0 = bytes(&data, &l.segment(1, 0).unwrap());
    for name in [b"a0", b"a1", b"a2", b"a3"] {
        assert!(a0.windows(2).any(|w| w == name));
    }
    assert!(l.segment(2, 0).is_none() && l.segment(0, 2).is_none());
}

#[test]
fn an_init_segment_holds_its_track_alone() {
    let data = title();
    let l = Layout::scan(&data, MediaTime::new(3, 1)).unwrap();
    let init = l.init(1).unwrap();
    assert!(init.windows(6).any(|w| w == b"A_OPUS"));
    assert!(!init.windows(5).any(|w| w == b"V_VP9"));
    assert!(crate::webm::is_webm(init));
}

#[test]
fn other_codecs_and_matroska_files_are_refused_with_the_reason() {
    let h264 = webm(
        &[(1, 1, "V_MPEG4/ISO/AVC")],
        &[(0, vec![(1, 0, true, b"k")])],
    );
    let e = Layout::scan(&h264, MediaTime::new(6, 1))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("VP8 and VP9 video; track 1 is V_MPEG4/ISO/AVC"),
        "{e}"
    );
    let mut mkv = title();
    let at = mkv.windows(4).position(|w| w == b"webm").unwrap();
    mkv[at..at + 4].copy_from_slice(b"mkvx");
    let e = Layout::scan(&mkv, MediaTime::new(6, 1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not other Matroska"), "{e}");
}

#[test]
fn garbage_never_panics_and_every_span_lies_in_the_title() {
    let base = title();
    crate::mutations(&base, 7, 20_000, |d| {
        if let Ok(l) = Layout::scan(d, MediaTime::new(1, 1)) {
            for t in 0..l.tracks.len() {
                for n in 0..l.segs().len() {
                    for s in l.segment(t, n).unwrap() {
                        if let Span::Title(r) = s {
                            assert!(r.start <= r.end && r.end <= d.len() as u64);
                        }
                    }
                }
            }
        }
    });
}

/// The names of the payloads in `spans` (two-letter names, as the titles here write them).
fn names(data: &[u8], spans: &[Span]) -> Vec<String> {
    let body = bytes(data, spans);
    let mut found = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let c = element(&body, pos, body.len()).unwrap();
        let end = c.end.unwrap();
        children(&body, c.data, end, |e| {
            if e.id == SIMPLE_BLOCK {
                found.push(String::from_utf8_lossy(&crate::webm::body(&body, e)[4..]).into());
            }
            Ok(())
        })
        .unwrap();
        pos = end;
    }
    found
}

#[test]
fn blocks_before_a_clusters_timecode_are_left_out_and_its_first_timecode_holds() {
    let v = (1, 1, "V_VP9");
    let c0 = [
        sb(&(1, 0, true, b"xx")),
        tc(0),
        sb(&(1, 0, true, b"k0")),
        tc(500),
        sb(&(1, 40, false, b"p1")),
    ]
    .concat();
    let data = webm_raw(&[v], &[c0]);
    let l = Layout::scan(&data, MediaTime::new(6, 1)).unwrap();
    assert_eq!(names(&data, &l.segment(0, 0).unwrap()), ["k0", "p1"]);
    assert_eq!(l.blocks.iter().map(|b| b.time).collect::<Vec<_>>(), [0, 40]);
}

#[test]
fn a_child_of_unknown_size_ends_its_cluster_and_the_next_cluster_is_read() {
    let v = (1, 1, "V_VP9");
    // A SimpleBlock of unknown size (size byte 0xff) in the first cluster.
    let c0 = [
        tc(0),
        sb(&(1, 0, true, b"k0")),
        vec![0xa3, 0xff, 0x81, 0, 0, 0x80],
    ]
    .concat();
    let c1 = [tc(2000), sb(&(1, 0, true, b"k2"))].concat();
    let data = webm_raw(&[v], &[c0, c1]);
    let l = Layout::scan(&data, MediaTime::new(1, 1)).unwrap();
    assert_eq!(l.segs().len(), 2);
    assert_eq!(names(&data, &l.segment(0, 0).unwrap()), ["k0"]);
    assert_eq!(names(&data, &l.segment(0, 1).unwrap()), ["k2"]);
}

#[test]
fn tracks_dash_cannot_carry_are_left_out_and_duplicate_numbers_refused() {
    let tracks = [
        (1, 1, "V_VP9"),
        (2, 17, "S_TEXT/WEBVTT"),
        (3, 1, "V_VP8"),
        (4, 2, "A_OPUS"),
    ];
    let data = webm(
        &tracks,
        &[(
            0,
            vec![
                (1, 0, true, b"k0"),
                (2, 0, true, b"s0"),
                (3, 0, true, b"v0"),
                (4, 0, true, b"a0"),
            ],
        )],
    );
    let l = Layout::scan(&data, MediaTime::new(6, 1)).unwrap();
    let listed: Vec<u64> = l.tracks.iter().map(|t| t.number).collect();
    assert_eq!(
        listed,
        [1, 4],
        "the subtitles and the second video are left out"
    );
    assert_eq!(names(&data, &l.segment(1, 0).unwrap()), ["a0"]);
    let twice = webm(
        &[(1, 1, "V_VP9"), (1, 2, "A_OPUS")],
        &[(0, vec![(1, 0, true, b"k0")])],
    );
    let e = Layout::scan(&twice, MediaTime::new(6, 1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("two tracks numbered 1"), "{e}");
}

#[test]
fn a_segments_work_is_its_own_blocks_however_the_title_spreads_them() {
    // Every cluster holds blocks of every segment (relative times reach far back and ahead):
    // each segment still gets exactly its own blocks, in file order.
    let v = (1, 1, "V_VP9");
    let mut clusters = Vec::new();
    for c in 0..3u64 {
        let mut blocks = Vec::new();
        for k in 0..3i16 {
            let rel = k * 2000 - c as i16 * 2000;
            blocks.push((1, rel, true, &b"bb"[..]));
        }
        clusters.push((c * 2000, blocks));
    }
    let data = webm(&[v], &clusters);
    let l = Layout::scan(&data, MediaTime::new(1, 1)).unwrap();
    assert_eq!(l.segs().len(), 3);
    for n in 0..3 {
        let spans = l.segment(0, n).unwrap();
        let heads = spans
            .iter()
            .filter(|s| matches!(s, Span::Written(_)))
            .count();
        assert_eq!(heads, 3, "segment {n}: a block from each cluster");
        assert_eq!(names(&data, &spans).len(), 3);
    }
}

#[test]
fn vp8_and_vorbis_are_listed_as_video_and_audio() {
    let data = webm(
        &[(1, 1, "V_VP8"), (2, 2, "A_VORBIS")],
        &[(0, vec![(1, 0, true, b"k0"), (2, 0, true, b"a0")])],
    );
    let l = Layout::scan(&data, MediaTime::new(6, 1)).unwrap();
    let listed: Vec<(&str, bool)> = l.tracks.iter().map(|t| (t.codecs, t.video)).collect();
    assert_eq!(listed, [("vp8", true), ("vorbis", false)]);
    assert_eq!(names(&data, &l.segment(1, 0).unwrap()), ["a0"]);
}
