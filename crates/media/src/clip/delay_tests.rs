//! Titles whose audio track starts late (an empty first edit, as a muxer writes for audio that
//! began after the video): their clips keep the audio as late against the video as the title
//! has it, as a player computes presentation times from each file's edit lists.

use super::fixtures::file;
use super::{fragmented, mp4};
use crate::cmaf::boxes::{bx, full, u32 as put32, u64 as put64};
use crate::mp4::stbl;
use crate::mp4::{child, full_box, next_box, FourCC};
use crate::read::Reader;
use crate::time::MediaTime;
use std::collections::HashMap;

const MOOV_AT_END: &[u8] = include_bytes!("../../../../demo/ntsc-moov-at-end.mp4");
const FRAGMENTED: &[u8] = include_bytes!("../../../../demo/fragmented.mp4");

fn secs(s: i64) -> MediaTime {
    MediaTime::new(s, 1)
}

/// The `moov` body of an MP4.
fn moov(data: &[u8]) -> Reader<'_> {
    let mut top = Reader::new(data, 0, "mp4");
    while let Some(b) = next_box(&mut top, true).unwrap() {
        if &b.kind == b"moov" {
            return b.body;
        }
    }
    panic!("no moov");
}

/// The children of a box body as (type, body).
fn kids<'a>(r: &Reader<'a>) -> Vec<(FourCC, &'a [u8])> {
    let mut r = r.clone();
    std::iter::from_fn(|| next_box(&mut r, false).unwrap())
        .map(|mut b| (b.kind, b.body.rest()))
        .collect()
}

fn movie_scale(moov: &Reader<'_>) -> u32 {
    let mut m = child(moov, b"mvhd").unwrap().unwrap();
    let (v, _) = full_box(&mut m).unwrap();
    m.skip(if v == 1 { 16 } else { 8 }).unwrap();
    m.u32().unwrap()
}

/// A `trak`'s edit list entries: (segment duration, media time).
fn elst(trak: &Reader<'_>) -> Vec<(u64, i64)> {
    let Some(edts) = child(trak, b"edts").unwrap() else {
        return Vec::new();
    };
    let mut e = child(&edts, b"elst").unwrap().unwrap();
    let (v, _) = full_box(&mut e).unwrap();
    (0..e.u32().unwrap())
        .map(|_| {
            let entry = if v == 1 {
                (e.u64().unwrap(), e.u64().unwrap() as i64)
            } else {
                (
                    u64::from(e.u32().unwrap()),
                    i64::from(e.u32().unwrap() as i32),
                )
            };
            e.skip(4).unwrap();
            entry
        })
        .collect()
}

/// `data` with its audio track starting `ms` later: an empty edit before its edit list (or
/// before the whole of its media). The `moov` is rewritten where it is; the titles used here
/// have it after their samples, or fragments whose data offsets count from their `moof`.
fn audio_late(data: &[u8], ms: u64) -> Vec<u8> {
    edited(data, |audio, old, scale| {
        audio.then(|| {
            let mut edits = vec![(ms * u64::from(scale) / 1000, -1)];
            edits.extend(if old.is_empty() { vec![(0, 0)] } else { old });
            edits
        })
    })
}

/// `data` with the edit lists `edits` gives its tracks (from whether it is audio, its edit
/// list and the movie's timescale; `None`: as it is).
fn edited(
    data: &[u8],
    edits: impl Fn(bool, Vec<(u64, i64)>, u32) -> Option<Vec<(u64, i64)>>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut top = Reader::new(data, 0, "mp4");
    loop {
        let at = top.position() as usize;
        let Some(b) = next_box(&mut top, true).unwrap() else {
            break;
        };
        if &b.kind != b"moov" {
            out.extend_from_slice(&data[at..top.position() as usize]);
            continue;
        }
        let scale = movie_scale(&b.body);
        bx(&mut out, b"moov", |o| {
            for (kind, body) in kids(&b.body) {
                let r = Reader::new(body, 0, "trak");
                let new = (kind == *b"trak")
                    .then(|| {
                        let audio = crate::mp4::parse_trak(&r).unwrap().handler == *b"soun";
                        edits(audio, elst(&r), scale)
                    })
                    .flatten();
                let Some(edits) = new else {
                    bx(o, &kind, |o| o.extend_from_slice(body));
                    continue;
                };
                bx(o, b"trak", |o| {
                    for (kind, body) in kids(&r) {
                        match &kind {
                            b"edts" => {}
                            b"tkhd" => {
                                bx(o, b"tkhd", |o| o.extend_from_slice(body));
                                bx(o, b"edts", |o| {
                                    full(o, b"elst", 1, 0, |o| {
                                        put32(o, edits.len() as u32);
                                        for &(d, m) in &edits {
                                            put64(o, d);
                                            put64(o, m as u64);
                                            put32(o, 0x0001_0000);
                                        }
                                    });
                                });
                            }
                            _ => bx(o, &kind, |o| o.extend_from_slice(body)),
                        }
                    }
                });
            }
        });
    }
    out
}

/// Per track (in `moov` order): the track id, its timescale, how late the movie shows it (its
/// leading empty edits, seconds) and the first media time it shows.
fn tracks(data: &[u8]) -> Vec<(u32, u32, f64, i64)> {
    let m = moov(data);
    let scale = f64::from(movie_scale(&m));
    kids(&m)
        .into_iter()
        .filter(|(k, _)| k == b"trak")
        .map(|(_, body)| {
            let r = Reader::new(body, 0, "trak");
            let t = crate::mp4::parse_trak(&r).unwrap();
            let edits = elst(&r);
            let empty: u64 = edits.iter().take_while(|e| e.1 == -1).map(|e| e.0).sum();
            let media = edits.iter().find(|e| e.1 >= 0).map_or(0, |e| e.1);
            (t.id, t.timescale, empty as f64 / scale, media)
        })
        .collect()
}

/// Per track (in `moov` order), each sample's presentation time (seconds) by where its bytes
/// are in the file, as a player computes it: the track's empty edits, then its media time
/// less the first one its edit list shows.
fn presented(data: &[u8]) -> Vec<HashMap<u64, f64>> {
    let m = moov(data);
    let edits = tracks(data);
    kids(&m)
        .into_iter()
        .filter(|(k, _)| k == b"trak")
        .zip(edits)
        .map(|((_, body), (_, timescale, empty, media))| {
            let t = crate::mp4::parse_trak(&Reader::new(body, 0, "trak")).unwrap();
            let table = stbl::expand(t.stbl.as_ref().unwrap(), data.len() as u64).unwrap();
            (0..table.len())
                .map(|i| {
                    let pts = table.dts[i] + i64::from(table.cto[i]) - media;
                    let at = empty + pts as f64 / f64::from(timescale);
                    (table.offset[i], at)
                })
                .collect()
        })
        .collect()
}

#[test]
fn an_mp4_clip_keeps_a_late_audio_track_as_late_against_the_video_as_the_title() {
    let title = audio_late(MOOV_AT_END, 500);
    let movie = mp4::Movie::parse(&title).unwrap();
    let before = presented(&title);
    for (from, to) in [(0, 2), (30, 40)] {
        let c = mp4::clip(&movie, secs(from), Some(secs(to))).unwrap();
        let f = file(&title, &c);
        let after = presented(&f);
        assert_eq!(after.len(), 2, "video and audio");
        // The title's offset of a clip's sample: the body follows the head.
        let shift = c.body_start() as i64 - c.head.len() as i64;
        // How much earlier the clip shows each sample than the title does: the same for every
        // sample of every track, or the audio drifts from the video.
        let mut gaps = Vec::new();
        for (track, (clip, whole)) in after.iter().zip(&before).enumerate() {
            for (&at, &t) in clip {
                let was = whole[&((at as i64 + shift) as u64)];
                gaps.push((track, was - t));
            }
        }
        let (lo, hi) = gaps
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), g| (a.min(g.1), b.max(g.1)));
        assert!(hi - lo < 0.002, "{from}..{to}: shifted by {lo} to {hi} s");
        assert!(
            (lo - c.start.as_secs_f64()).abs() < 0.002,
            "{lo} {}",
            c.start
        );
        // The audio starts late in the clip from the start, as in the title.
        if from == 0 {
            let first = after[1].values().copied().fold(f64::MAX, f64::min);
            assert!((first - 0.5).abs() < 0.03, "audio at {first} s");
        }
    }
}

#[test]
fn a_fragmented_mp4_clip_keeps_a_late_audio_track_as_late_against_the_video_as_the_title() {
    let title = audio_late(FRAGMENTED, 500);
    assert!(tracks(&title)[1].2 > 0.49, "{:?}", tracks(&title));
    assert_fragmented_clips_keep_the_tracks_in_step(&title);
}

/// Tracks whose edit lists begin at different media times (B-frame delay for the video, AAC
/// priming for the audio), none late: the clip shows them in step as the title does.
#[test]
fn a_fragmented_mp4_clip_keeps_tracks_of_other_edit_media_times_in_step() {
    let title = edited(FRAGMENTED, |audio, _, _| {
        Some(vec![(0, if audio { 1024 } else { 2000 })])
    });
    assert_fragmented_clips_keep_the_tracks_in_step(&title);
}

fn assert_fragmented_clips_keep_the_tracks_in_step(title: &[u8]) {
    let (title, info) = (title, crate::index(title).unwrap());
    let whole = tracks(title);
    for (from, to) in [(0, 2), (3, 5)] {
        let c = fragmented::fragmented(title, &info, secs(from), Some(secs(to))).unwrap();
        let f = file(title, &c);
        assert!(crate::index(&f).is_ok());
        // Samples keep their decode times and composition offsets (the fragments are the
        // title's): how much earlier the clip shows a track's samples than the title does
        // follows from the edit lists alone, and is the same for every track.
        let gaps: Vec<f64> = tracks(&f)
            .iter()
            .zip(&whole)
            .map(|(clip, title)| {
                assert_eq!(clip.0, title.0);
                let media = (clip.3 - title.3) as f64 / f64::from(clip.1);
                title.2 - clip.2 + media
            })
            .collect();
        assert_eq!(gaps.len(), 2);
        assert!((gaps[0] - gaps[1]).abs() < 0.002, "{from}..{to}: {gaps:?}");
        assert!((gaps[0] - c.start.as_secs_f64()).abs() < 0.002);
    }
}

/// Edit lists that hide the first 15 s of the title: its VOD segments begin at the title's
/// start, each lasts what it shows (none of nothing or less), and they follow one another.
#[test]
fn segments_of_a_title_whose_edit_lists_hide_its_first_seconds_begin_at_its_start() {
    let title = edited(MOOV_AT_END, |audio, e, _| {
        let scale = if audio { 48_000 } else { 30_000 };
        let (d, m) = e.first().copied().unwrap_or((0, 0));
        Some(vec![(d, m + 15 * scale)])
    });
    let m = crate::clip::mp4::Movie::parse(&title).unwrap();
    let slots = crate::clip::mp4::plan(&m, secs(6));
    assert_eq!(slots[0].start, MediaTime::ZERO);
    let mut end = MediaTime::ZERO;
    for s in &slots {
        assert!(s.duration > MediaTime::ZERO, "{s:?}");
        assert!(
            (s.start.as_secs_f64() - end.as_secs_f64()).abs() < 0.001,
            "{s:?}"
        );
        end = MediaTime::new(
            s.start.rescale(s.duration.scale) + s.duration.ticks,
            s.duration.scale,
        );
    }
    assert!((end.as_secs_f64() - 55.0).abs() < 1.0, "{end:?}");
}
