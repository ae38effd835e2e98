use super::*;
use crate::cmaf::tests::fmp4_of_clip;
use crate::flv::FromTs;
use crate::ts::PACKET;

/// demo/clip.ts as `FromTs` makes it into tags (what the fMP4 of `fmp4_of_clip` is made of).
fn tags_of_clip() -> Vec<Tag> {
    let data = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/clip.ts")).unwrap();
    let mut conv = FromTs::default();
    let mut tags = Vec::new();
    for chunk in data.chunks(PACKET * 7) {
        conv.feed(chunk, &mut tags);
    }
    tags
}

fn read_all(file: &[u8], piece: usize) -> (Vec<Tag>, ToFlv) {
    let mut r = ToFlv::default();
    let mut out = Vec::new();
    for p in file.chunks(piece) {
        r.feed(p, &mut out);
    }
    (out, r)
}

#[test]
fn a_streams_fragments_read_back_as_the_tags_they_were_made_of() {
    let made_of = tags_of_clip();
    let (file, frames, _) = fmp4_of_clip();
    for piece in [1, 1000, file.len()] {
        let (out, r) = read_all(&file, piece);
        assert_eq!(r.skipped, 0);
        // The sequence headers first, as the conversion sent them.
        let sequences: Vec<&Tag> = out.iter().filter(|t| t.sequence).collect();
        let sent: Vec<&Tag> = made_of.iter().filter(|t| t.sequence).collect();
        assert_eq!(sequences.len(), 2);
        for s in &sequences {
            assert!(sent.iter().any(|t| t.video == s.video && t.body == s.body));
        }
        // Every video frame of the fragments, with its time, kind and body.
        let video = |tags: &[Tag]| -> Vec<(u32, bool, Vec<u8>)> {
            tags.iter()
                .filter(|t| t.video && !t.sequence)
                .map(|t| (t.ms, t.keyframe, t.body.clone()))
                .collect()
        };
        let (back, orig) = (video(&out), video(&made_of));
        assert_eq!(back.len(), frames);
        assert!(back[0].1, "the fragments begin at a keyframe");
        assert_eq!(back[..], orig[orig.len() - back.len()..]);
        // Audio: the same frames, at the same times.
        let audio = |tags: &[Tag]| -> Vec<(u32, Vec<u8>)> {
            tags.iter()
                .filter(|t| !t.video && !t.sequence)
                .map(|t| (t.ms, t.body.clone()))
                .collect()
        };
        let (back, orig) = (audio(&out), audio(&made_of));
        let first = orig.iter().position(|a| a.1 == back[0].1).unwrap();
        assert!(back.len() > 100);
        for (b, o) in back.iter().zip(&orig[first..]) {
            assert_eq!(b.1, o.1);
            assert_eq!(b.0, o.0);
        }
        // In the order they reached the ingest: a fragment's audio (held by the writer for its
        // video frame) before that frame.
        let order = |tags: &[Tag]| -> Vec<(bool, Vec<u8>)> {
            tags.iter()
                .filter(|t| !t.sequence)
                .map(|t| (t.video, t.body.clone()))
                .collect()
        };
        let (back, orig) = (order(&out), order(&made_of));
        let first = orig.iter().position(|t| *t == back[0]).unwrap();
        assert_eq!(back[..], orig[first..first + back.len()]);
    }
}

#[test]
fn a_new_init_segment_with_the_same_configuration_sends_no_sequence_header_again() {
    let (file, _, _) = fmp4_of_clip();
    let (mut out, mut r) = read_all(&file, 4096);
    // A recording's next file, or the ring after the recording: the init again, then fragments.
    r.realign();
    r.feed(&file, &mut out);
    assert_eq!(out.iter().filter(|t| t.sequence).count(), 2);
}

#[test]
fn a_box_that_cannot_be_is_dropped_and_reading_goes_on_after_a_realign() {
    let (file, frames, _) = fmp4_of_clip();
    let mut r = ToFlv::default();
    let mut out = Vec::new();
    // A size smaller than a box header, then one over the limit.
    r.feed(&[0, 0, 0, 3, b'm', b'o', b'o', b'f'], &mut out);
    assert_eq!((r.skipped, out.len()), (1, 0));
    r.realign();
    let mut huge = (u32::try_from(MAX_BOX).unwrap() + 1).to_be_bytes().to_vec();
    huge.extend_from_slice(b"mdat");
    r.feed(&huge, &mut out);
    assert_eq!((r.skipped, out.len()), (2, 0));
    assert!(r.buf.is_empty(), "nothing is held for it");
    // Nothing is read until the next whole box is fed.
    r.feed(&file, &mut out);
    assert!(out.is_empty());
    r.realign();
    r.feed(&file, &mut out);
    assert_eq!(
        out.iter().filter(|t| t.video && !t.sequence).count(),
        frames
    );
}

#[test]
fn fragments_before_an_init_segment_give_no_tags() {
    let (file, _, keys) = fmp4_of_clip();
    // From the second keyframe's fragment on (its `moof`'s size and type before its name).
    let at = file[..keys[1] as usize]
        .windows(4)
        .rposition(|w| w == b"moof")
        .unwrap();
    let (out, r) = read_all(&file[at - 4..], 1000);
    assert!(out.is_empty());
    assert_eq!(r.skipped, 0);
}

#[test]
fn random_mutations_never_panic_and_hold_at_most_two_boxes() {
    let (file, _, _) = fmp4_of_clip();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..200 {
        let mut m = file.clone();
        for _ in 0..8 {
            let at = (next() % m.len() as u64) as usize;
            m[at] = next() as u8;
        }
        let mut r = ToFlv::default();
        let mut out = Vec::new();
        for p in m.chunks(1 + (next() % 5000) as usize) {
            r.feed(p, &mut out);
            assert!(r.buf.len() <= 2 * MAX_BOX + 5000);
        }
    }
}

/// H.265 from ffmpeg (as an Enhanced-RTMP publisher sends it) and Opus (synthetic frames: the
/// reader never decodes them), through the fragmenter and back.
#[test]
fn h265_and_opus_fragments_read_back_as_the_enhanced_tags_they_were_made_of() {
    use crate::cmaf::Event;
    use crate::cmaf::Fragmenter;
    let (mp4, hvcc) = crate::cmaf::tests::h265_mp4(3);
    let (video, _) = crate::mp4::remux::tracks(&mp4).unwrap();
    let video = video.unwrap();
    let ms = |t: i64| (t * 1000 / i64::from(video.timescale)) as u32;
    // The tags, in time order: sequence headers, then frames (video every 40 ms, Opus every 20).
    let mut tags: Vec<(bool, u32, Vec<u8>)> = Vec::new();
    let mut seq = vec![0x90];
    seq.extend_from_slice(b"hvc1");
    seq.extend_from_slice(&hvcc);
    tags.push((true, 0, seq));
    let mut head = vec![0x90];
    head.extend_from_slice(b"OpusOpusHead");
    head.extend_from_slice(&[1, 2]);
    head.extend_from_slice(&312u16.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]);
    tags.push((false, 0, head));
    let mut frames = Vec::new();
    for s in &video.samples {
        let mut body = vec![if s.keyframe { 0x91 } else { 0xa1 }];
        body.extend_from_slice(b"hvc1");
        body.extend_from_slice(&ms(i64::from(s.cto)).to_be_bytes()[1..]);
        body.extend_from_slice(&mp4[s.offset as usize..s.offset as usize + s.size as usize]);
        frames.push((true, ms(s.dts), body));
    }
    for i in 0..150u32 {
        let mut body = vec![0x91];
        body.extend_from_slice(b"Opus");
        body.extend_from_slice(&[0xfc, i as u8, (i >> 8) as u8]);
        frames.push((false, i * 20, body));
    }
    frames.sort_by_key(|(video, ms, _)| (*ms, *video));
    tags.extend(frames);
    let mut f = Fragmenter::<Vec<u8>>::default();
    let mut events = Vec::new();
    for (video, ms, body) in &tags {
        f.tag(
            *video,
            *ms,
            body,
            |start| body[start..].to_vec(),
            &mut events,
        )
        .unwrap();
    }
    let mut file = Vec::new();
    for e in events {
        match e {
            Event::Init(i) => file.extend_from_slice(&i),
            Event::Fragment { head, data, .. } => {
                file.extend_from_slice(&head);
                data.iter().for_each(|d| file.extend_from_slice(d));
            }
        }
    }
    let (out, r) = read_all(&file, 777);
    assert_eq!(r.skipped, 0);
    // The sequence headers as the publisher sent them, both before any frame.
    assert_eq!((out[0].video, &out[0].body), (true, &tags[0].2));
    assert_eq!((out[1].video, &out[1].body), (false, &tags[1].2));
    // Every frame from the first keyframe on (the writer waits for both tracks), with its time
    // and body; per track, as the publisher sent them.
    for video in [true, false] {
        let back: Vec<(u32, &Vec<u8>)> = out[2..]
            .iter()
            .filter(|t| t.video == video)
            .map(|t| (t.ms, &t.body))
            .collect();
        let sent: Vec<(u32, &Vec<u8>)> = tags[2..]
            .iter()
            .filter(|t| t.0 == video)
            .map(|t| (t.1, &t.2))
            .collect();
        assert!(back.len() > 40, "{video}: {}", back.len());
        let first = sent.iter().position(|s| *s == back[0]).unwrap();
        assert_eq!(back[..], sent[first..first + back.len()]);
    }
}
