//! `Movie::parse` of MP4s built here box by box: which tracks and codecs it takes, and what it
//! refuses before expanding anything.

use super::Movie;
use crate::cmaf::boxes::{bx, full, u16 as put16, u32 as put32, zeros};
use crate::error::Error;

/// A track's sample tables: `count` samples of `size` bytes, in chunks at `chunks` as the
/// `stsc` runs (first chunk, samples per chunk, sample description index) say.
struct Table<'a> {
    count: u32,
    size: u32,
    stsc: &'a [(u32, u32, u32)],
    chunks: &'a [u32],
}

/// One sample of `size` bytes at `offset`.
fn one(offset: &[u32], size: u32) -> Table<'_> {
    Table {
        count: 1,
        size,
        stsc: &[(1, 1, 1)],
        chunks: offset,
    }
}

fn trak(id: u32, handler: &[u8; 4], entries: &[Vec<u8>], t: &Table<'_>) -> Vec<u8> {
    let mut o = Vec::new();
    bx(&mut o, b"trak", |o| {
        full(o, b"tkhd", 0, 3, |o| {
            zeros(o, 8);
            put32(o, id);
            zeros(o, 72);
        });
        bx(o, b"mdia", |o| {
            full(o, b"mdhd", 0, 0, |o| {
                zeros(o, 8);
                put32(o, 1000);
                put32(o, t.count);
                zeros(o, 4);
            });
            full(o, b"hdlr", 0, 0, |o| {
                zeros(o, 4);
                o.extend_from_slice(handler);
                zeros(o, 13);
            });
            bx(o, b"minf", |o| {
                bx(o, b"stbl", |o| {
                    full(o, b"stsd", 0, 0, |o| {
                        put32(o, entries.len() as u32);
                        entries.iter().for_each(|e| o.extend_from_slice(e));
                    });
                    full(o, b"stts", 0, 0, |o| {
                        put32(o, 1);
                        put32(o, t.count);
                        put32(o, 1);
                    });
                    full(o, b"stsz", 0, 0, |o| {
                        put32(o, t.size);
                        put32(o, t.count);
                    });
                    full(o, b"stsc", 0, 0, |o| {
                        put32(o, t.stsc.len() as u32);
                        for &(first, per, description) in t.stsc {
                            for v in [first, per, description] {
                                put32(o, v);
                            }
                        }
                    });
                    full(o, b"stco", 0, 0, |o| {
                        put32(o, t.chunks.len() as u32);
                        t.chunks.iter().for_each(|&c| put32(o, c));
                    });
                });
            });
        });
    });
    o
}

/// A file: an `mdat` of `mdat` bytes first (sample offsets 8 and on), then the movie's `moov`.
fn file(traks: &[Vec<u8>], mdat: usize) -> Vec<u8> {
    let mut o = Vec::new();
    bx(&mut o, b"mdat", |o| zeros(o, mdat));
    o.extend(moov(traks));
    o
}

fn moov(traks: &[Vec<u8>]) -> Vec<u8> {
    let mut o = Vec::new();
    bx(&mut o, b"moov", |o| {
        full(o, b"mvhd", 0, 0, |o| {
            zeros(o, 8);
            put32(o, 1000);
            zeros(o, 84);
        });
        traks.iter().for_each(|t| o.extend_from_slice(t));
    });
    o
}

/// A visual sample entry of `kind` with these configuration boxes.
fn visual(kind: &[u8; 4], config: &[u8]) -> Vec<u8> {
    let mut o = Vec::new();
    bx(&mut o, kind, |o| {
        zeros(o, 6);
        put16(o, 1); // data_reference_index
        zeros(o, 16);
        put16(o, 640);
        put16(o, 360);
        zeros(o, 50);
        o.extend_from_slice(config);
    });
    o
}

/// An audio sample entry of `kind` with these configuration boxes.
fn audio(kind: &[u8; 4], config: &[u8]) -> Vec<u8> {
    let mut o = Vec::new();
    bx(&mut o, kind, |o| {
        zeros(o, 6);
        put16(o, 1);
        zeros(o, 8);
        put16(o, 2); // channels
        put16(o, 16);
        zeros(o, 4);
        put32(o, 44_100 << 16);
        o.extend_from_slice(config);
    });
    o
}

/// An `esds` of this object type and DecoderSpecificInfo (none: as MP3 has it).
fn esds(object_type: u8, dsi: Option<&[u8]>) -> Vec<u8> {
    let dsi = dsi.map_or(Vec::new(), |d| [&[0x05, d.len() as u8], d].concat());
    let mut o = Vec::new();
    full(&mut o, b"esds", 0, 0, |o| {
        o.extend_from_slice(&[0x03, (3 + 2 + 13 + dsi.len() + 3) as u8, 0, 1, 0]);
        o.extend_from_slice(&[0x04, (13 + dsi.len()) as u8, object_type, 0x15]);
        zeros(o, 11);
        o.extend_from_slice(&dsi);
        o.extend_from_slice(&[0x06, 0x01, 0x02]);
    });
    o
}

fn avc1() -> Vec<u8> {
    let mut c = Vec::new();
    bx(&mut c, b"avcC", |o| {
        o.extend_from_slice(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0])
    });
    visual(b"avc1", &c)
}

/// A movie of an H.264 track and an audio track of this sample entry.
fn with_audio(entry: Vec<u8>) -> Vec<u8> {
    let v = trak(1, b"vide", &[avc1()], &one(&[8], 10));
    let a = trak(2, b"soun", &[entry], &one(&[18], 10));
    file(&[v, a], 20)
}

fn codecs(data: &[u8]) -> Vec<String> {
    let m = Movie::parse(data).unwrap();
    m.tracks.iter().map(|t| t.codecs.clone()).collect()
}

#[test]
fn mp3_in_mp4_without_decoder_specific_info_is_a_movie_named_mp4a_6b() {
    // ffmpeg -c:a libmp3lame: objectTypeIndication 0x6B and no DecoderSpecificInfo.
    let mp3 = with_audio(audio(b"mp4a", &esds(0x6b, None)));
    assert_eq!(codecs(&mp3), ["avc1.64001f", "mp4a.6B"]);
    let mpeg2 = with_audio(audio(b"mp4a", &esds(0x69, None)));
    assert_eq!(codecs(&mpeg2)[1], "mp4a.69");
    let aac = with_audio(audio(b"mp4a", &esds(0x40, Some(&[0x12, 0x10]))));
    assert_eq!(codecs(&aac)[1], "mp4a.40.2");
    let he_aac = with_audio(audio(b"mp4a", &esds(0x40, Some(&[0x2b, 0x92]))));
    assert_eq!(codecs(&he_aac)[1], "mp4a.40.5");
}

#[test]
fn an_unreadable_esds_names_the_sample_entry_and_keeps_the_movie() {
    // An ES_Descriptor that declares more than its box holds.
    let mut broken = Vec::new();
    full(&mut broken, b"esds", 0, 0, |o| {
        o.extend_from_slice(&[0x03, 40, 0, 1])
    });
    let m = Movie::parse(&with_audio(audio(b"mp4a", &broken))).unwrap();
    assert_eq!(m.tracks.len(), 2);
    assert_eq!(m.tracks[1].codecs, "mp4a");
}

#[test]
fn codecs_keep_hyphens_and_name_av1_and_vp9_from_their_records() {
    let ec3 = with_audio(audio(b"ec-3", &[]));
    assert_eq!(codecs(&ec3)[1], "ec-3");
    let ac3 = with_audio(audio(b"ac-3", &[]));
    assert_eq!(codecs(&ac3)[1], "ac-3");
    let video = |entry: Vec<u8>| {
        let v = trak(1, b"vide", &[entry], &one(&[8], 10));
        codecs(&file(&[v], 10)).remove(0)
    };
    let mut av1c = Vec::new();
    bx(&mut av1c, b"av1C", |o| {
        o.extend_from_slice(&[0x81, 0x08, 0x0c, 0])
    });
    assert_eq!(video(visual(b"av01", &av1c)), "av01.0.08M.08");
    let mut vpcc = Vec::new();
    full(&mut vpcc, b"vpcC", 1, 0, |o| {
        o.extend_from_slice(&[0, 31, 0x82, 1, 1, 1, 0, 0]);
    });
    assert_eq!(video(visual(b"vp09", &vpcc)), "vp09.00.31.08");
    assert_eq!(video(visual(b"vp09", &[])), "vp09");
}

#[test]
fn the_first_moov_is_the_movie_and_a_box_cut_off_after_it_is_no_error() {
    let v = trak(1, b"vide", &[avc1()], &one(&[8], 10));
    let title = file(&[v], 10);
    let first = Movie::parse(&title).unwrap();
    // A second moov, empty: the seek index and players take the first.
    let mut twice = title.clone();
    twice.extend(moov(&[]));
    let m = Movie::parse(&twice).unwrap();
    assert_eq!((m.tracks.len(), m.tracks[0].id), (1, first.tracks[0].id));
    // A free box that claims 100 bytes, 4 of them present (a truncated download).
    let mut cut = title.clone();
    cut.extend_from_slice(&[0, 0, 0, 100, b'f', b'r', b'e', b'e', 1, 2, 3, 4]);
    assert_eq!(Movie::parse(&cut).unwrap().tracks.len(), 1);
    assert!(
        crate::mp4::index(&cut).is_ok(),
        "as the seek index takes it"
    );
    // Before any moov, a cut-off box is still an error.
    let mut head = vec![0, 0, 3, 232, b'f', b'r', b'e', b'e'];
    head.extend(moov(&[]));
    assert!(matches!(Movie::parse(&head), Err(Error::Truncated { .. })));
}

#[test]
fn a_track_with_samples_of_a_second_sample_description_is_refused() {
    // Two avc1 entries; chunk 1 (sample 1) uses the first, chunk 2 (sample 2) the second.
    let t = Table {
        count: 2,
        size: 5,
        stsc: &[(1, 1, 1), (2, 1, 2)],
        chunks: &[8, 13],
    };
    let v = trak(1, b"vide", &[avc1(), avc1()], &t);
    let e = Movie::parse(&file(&[v], 10)).unwrap_err().to_string();
    assert!(e.contains("sample description 2"), "{e}");
    // Two entries, every sample of the first: clipped as before.
    let t = Table {
        stsc: &[(1, 1, 1)],
        ..t
    };
    let v = trak(1, b"vide", &[avc1(), avc1()], &t);
    assert_eq!(
        Movie::parse(&file(&[v], 10)).unwrap().tracks[0].table.len(),
        2
    );
}

#[test]
fn tracks_and_samples_are_bounded_across_the_movie_before_expanding() {
    // 65 audio tracks of one sample each: more tracks than a movie is expanded with.
    let a = trak(1, b"soun", &[audio(b"mp4a", &[])], &one(&[8], 1));
    let many = vec![a; 65];
    let e = Movie::parse(&file(&many, 10)).unwrap_err().to_string();
    assert!(e.contains("65 video and audio tracks"), "{e}");
    assert_eq!(
        Movie::parse(&file(&many[..64], 10)).unwrap().tracks.len(),
        64
    );
    // Two tracks of 2^24 one-byte samples each (each within the per-track bound) and one more
    // sample in a 64 MiB title: refused from the moov alone, before ~840 MB of tables (and
    // as much again of cutting facts) are expanded.
    let t = Table {
        count: 1 << 24,
        size: 1,
        stsc: &[(1, 1 << 24, 1)],
        chunks: &[8],
    };
    let a = trak(1, b"soun", &[audio(b"mp4a", &[])], &t);
    let b = trak(2, b"soun", &[audio(b"mp4a", &[])], &one(&[8], 1));
    let boxes = moov(&[a.clone(), a, b]);
    let e = Movie::parse_boxes(&boxes, 64 << 20)
        .unwrap_err()
        .to_string();
    assert!(e.contains("33554433 samples in all tracks"), "{e}");
}
