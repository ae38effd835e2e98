use super::*;
use crate::error::Error;
use crate::mp4::stbl::{self, SampleTable};
use crate::mp4::{next_box, parse_trak};
use crate::read::Reader;
use select::{Column, Facts};

fn cut(data: &[u8], from: MediaTime, to: Option<MediaTime>) -> Result<Clip> {
    clip(&Movie::parse(data)?, from, to)
}

const FASTSTART: &[u8] = include_bytes!("../../../../../demo/faststart.mp4");
const MOOV_AT_END: &[u8] = include_bytes!("../../../../../demo/ntsc-moov-at-end.mp4");

fn secs(s: i64) -> MediaTime {
    MediaTime::new(s, 1)
}

use crate::clip::fixtures::file;

/// Every track's samples (video first) as (presentation time in seconds, bytes).
fn samples(data: &[u8]) -> Vec<Vec<(f64, Vec<u8>)>> {
    let mut top = Reader::new(data, 0, "mp4");
    let mut moov = None;
    while let Some(b) = next_box(&mut top, true).unwrap() {
        if &b.kind == b"moov" {
            moov = Some(b.body);
        }
    }
    let mut r = moov.unwrap();
    let mut out = Vec::new();
    while let Some(b) = next_box(&mut r, false).unwrap() {
        if &b.kind != b"trak" {
            continue;
        }
        let t = parse_trak(&b.body).unwrap();
        let table: SampleTable = stbl::expand(t.stbl.as_ref().unwrap(), data.len() as u64).unwrap();
        let facts = Facts::of(&table, t.timescale, t.media_time, 0);
        let col = Column {
            table: &table,
            timescale: t.timescale,
            media_time: t.media_time,
            facts: &facts,
        };
        out.push(
            (0..table.len())
                .map(|i| {
                    let o = table.offset[i] as usize;
                    (
                        col.pts(i) as f64 / f64::from(t.timescale),
                        data[o..o + table.size[i] as usize].to_vec(),
                    )
                })
                .collect(),
        );
    }
    out
}

#[test]
fn a_clip_holds_whole_gops_with_the_titles_own_sample_bytes() {
    // faststart.mp4: 8 s, a keyframe every 2 s. 3 s .. 5 s is the GOPs at 2 s and 4 s.
    let c = cut(FASTSTART, secs(3), Some(secs(5))).unwrap();
    assert_eq!((c.start, c.end), (secs(2), secs(6)));
    let f = file(FASTSTART, &c);
    assert_eq!(f.len() as u64, c.len());
    let info = crate::mp4::index(&f).unwrap();
    let times: Vec<f64> = info
        .keyframes
        .iter()
        .map(|k| k.time.as_secs_f64())
        .collect();
    assert_eq!(times, [0.0, 2.0]);
    assert!(
        (info.duration.as_secs_f64() - 4.0).abs() < 0.05,
        "{}",
        info.duration
    );

    let title = samples(FASTSTART);
    let clipped = samples(&f);
    assert_eq!(clipped.len(), 2, "video and audio");
    for (t, c) in title.iter().zip(&clipped) {
        let wanted: Vec<&Vec<u8>> = t
            .iter()
            .filter(|(pts, _)| (2.0..6.0).contains(pts))
            .map(|(_, b)| b)
            .collect();
        let got: Vec<&Vec<u8>> = c.iter().map(|(_, b)| b).collect();
        assert_eq!(got, wanted, "the same samples, byte for byte");
    }
    // The first video frame is presented at the clip's start.
    let first = clipped[0].iter().map(|(p, _)| *p).fold(f64::MAX, f64::min);
    assert_eq!(first, 0.0);
}

/// `faststart.mp4` with all its video first, then all its audio (scripts/make-non-interleaved.py).
const NON_INTERLEAVED: &[u8] = include_bytes!("../../../tests/fixtures/non-interleaved.mp4");

#[test]
fn a_clip_of_a_file_that_is_not_interleaved_sends_each_tracks_samples_and_not_the_bytes_between() {
    let c = cut(NON_INTERLEAVED, secs(3), Some(secs(5))).unwrap();
    assert_eq!((c.start, c.end), (secs(2), secs(6)));
    assert_eq!(
        c.body.len(),
        2,
        "the video's run and the audio's: {:?}",
        c.body
    );
    // The same samples as the same clip of the interleaved file, byte for byte.
    let f = file(NON_INTERLEAVED, &c);
    let interleaved = file(FASTSTART, &cut(FASTSTART, secs(3), Some(secs(5))).unwrap());
    assert_eq!(samples(&f), samples(&interleaved));
    // And nothing else: not the video after the clip nor the audio before it, which lie
    // between its video and its audio in the file.
    let sent: u64 = c.body.iter().map(|r| r.end - r.start).sum();
    let kept: usize = samples(&f).iter().flatten().map(|(_, b)| b.len()).sum();
    assert_eq!(sent, kept as u64);
    assert!(sent < c.body_end() - c.body_start());
    let info = crate::mp4::index(&f).unwrap();
    assert!(
        (info.duration.as_secs_f64() - 4.0).abs() < 0.05,
        "{}",
        info.duration
    );
}

#[test]
fn a_clip_of_a_file_with_moov_at_the_end_puts_moov_first() {
    let c = cut(MOOV_AT_END, secs(30), Some(secs(40))).unwrap();
    let f = file(MOOV_AT_END, &c);
    let mut top = Reader::new(&f, 0, "clip");
    let kinds: Vec<[u8; 4]> = std::iter::from_fn(|| next_box(&mut top, false).unwrap())
        .map(|b| b.kind)
        .collect();
    assert_eq!(kinds, [*b"ftyp", *b"moov", *b"mdat"]);
    let info = crate::mp4::index(&f).unwrap();
    // Keyframes every 60 frames at 30000/1001: 28.03 s .. 40.04 s.
    let span = c.end.as_secs_f64() - c.start.as_secs_f64();
    assert!((info.duration.as_secs_f64() - span).abs() < 0.05);
    assert!(c.start <= secs(30) && c.end >= secs(40));
}

#[test]
fn an_open_ended_clip_runs_to_the_end_of_the_title() {
    let c = cut(FASTSTART, secs(7), None).unwrap();
    assert_eq!(c.start, secs(6));
    let info = crate::mp4::index(&file(FASTSTART, &c)).unwrap();
    assert!((info.duration.as_secs_f64() - 2.0).abs() < 0.05);
}

#[test]
fn times_past_the_end_or_reversed_are_errors() {
    assert!(matches!(
        cut(FASTSTART, secs(9), None),
        Err(Error::PastEnd { .. })
    ));
    assert!(matches!(
        cut(FASTSTART, secs(2), Some(secs(60))),
        Err(Error::PastEnd { .. })
    ));
    assert!(matches!(
        cut(FASTSTART, secs(5), Some(secs(4))),
        Err(Error::Timecode(_))
    ));
}

#[test]
fn a_fragmented_file_is_not_clipped_by_sample_tables() {
    let frag = include_bytes!("../../../../../demo/fragmented.mp4");
    assert!(matches!(
        cut(frag, secs(1), None),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = fastrand::Rng::with_seed(7);
    let head = &FASTSTART[..8192.min(FASTSTART.len())];
    for _ in 0..300 {
        let mut d = FASTSTART.to_vec();
        for _ in 0..rng.usize(1..8) {
            let i = rng.usize(..head.len());
            d[i] = rng.u8(..);
        }
        let _ = cut(&d, secs(rng.i64(0..8)), Some(secs(rng.i64(1..10))));
    }
}
#[test]
fn tmp_hls() {
    for (name, data) in [("a", MOOV_AT_END), ("b", FASTSTART)] {
        let m = Movie::parse(data).unwrap();
        let dir = format!("/tmp/hls-{name}");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/init.mp4"), init(&m, None).unwrap()).unwrap();
        let mut pl = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:7\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"init.mp4\"\n");
        for (n, slot) in plan(&m, MediaTime::new(6, 1)).iter().enumerate() {
            let s = segment(&m, slot, n as u32 + 1, None).unwrap();
            let mut f = s.head.clone();
            for r in &s.body {
                f.extend_from_slice(&data[r.start as usize..r.end as usize]);
            }
            std::fs::write(format!("{dir}/{n}.m4s"), f).unwrap();
            pl.push_str(&format!(
                "#EXTINF:{:.5},\n{n}.m4s\n",
                slot.duration.as_secs_f64()
            ));
        }
        pl.push_str("#EXT-X-ENDLIST\n");
        std::fs::write(format!("{dir}/index.m3u8"), pl).unwrap();
    }
}

#[test]
fn segments_over_the_titles_samples_index_like_the_title() {
    let m = Movie::parse(MOOV_AT_END).unwrap();
    let slots = plan(&m, MediaTime::new(6, 1));
    assert_eq!(
        slots.len(),
        12,
        "70 s in GOPs of 2.002 s, at least 6 s each"
    );
    let mut file = init(&m, None).unwrap();
    for (n, slot) in slots.iter().enumerate() {
        let s = segment(&m, slot, n as u32 + 1, None).unwrap();
        let before = file.len();
        file.extend_from_slice(&s.head);
        for r in &s.body {
            file.extend_from_slice(&MOOV_AT_END[r.start as usize..r.end as usize]);
        }
        assert_eq!((file.len() - before) as u64, s.len());
    }
    let ours = crate::mp4::index(&file).unwrap();
    let title = crate::mp4::index(MOOV_AT_END).unwrap();
    let times =
        |i: &crate::MediaInfo| -> Vec<MediaTime> { i.keyframes.iter().map(|k| k.time).collect() };
    assert_eq!(times(&ours), times(&title));
    assert_eq!(ours.duration, title.duration);
    // The samples are the title's: every keyframe's first bytes are the same.
    for (a, b) in ours.keyframes.iter().zip(&title.keyframes) {
        assert_eq!(
            file[a.offset as usize..][..64],
            MOOV_AT_END[b.offset as usize..][..64]
        );
    }
}

#[test]
fn a_clip_from_the_start_skips_the_audio_priming_as_the_title_does() {
    // faststart.mp4's AAC starts with a priming frame its edit list skips (media time 1024).
    let c = cut(FASTSTART, secs(0), Some(secs(2))).unwrap();
    let f = file(FASTSTART, &c);
    let title = samples(FASTSTART);
    let clipped = samples(&f);
    let first = |s: &Vec<(f64, Vec<u8>)>| s.iter().map(|x| x.0).fold(f64::MAX, f64::min);
    assert!(
        first(&title[1]) < 0.0,
        "the title's audio starts with priming"
    );
    assert_eq!(
        first(&clipped[1]),
        first(&title[1]),
        "the clip skips it the same way"
    );
}
