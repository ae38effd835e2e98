//! MP4 to MPEG-TS: the remuxed stream decodes like the source (ffprobe and ffmpeg as oracles), and
//! `zerocast publish` takes MP4 files.

mod common;

use common::{assert_decodes_without_errors, demo_dir, ffmpeg, ffprobe_frames as frames};

#[test]
fn remuxed_mp4_decodes_like_the_source() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["faststart.mp4", "ntsc-moov-at-end.mp4"] {
        let src = demo_dir().join(name);
        let data = std::fs::read(&src).unwrap();
        let ts = media::ts::mux::from_mp4(&data).unwrap();
        let out = dir.path().join(format!("{name}.ts"));
        std::fs::write(&out, &ts).unwrap();
        // Our own index reads it back with the same keyframes.
        let ours = media::ts::index(&ts).unwrap();
        let source = media::index::index(&data).unwrap();
        assert_eq!(ours.keyframes.len(), source.keyframes.len(), "{name}");
        // Same frames, same times (relative to the first), same keyframes.
        let a = frames(src.to_str().unwrap());
        let b = frames(out.to_str().unwrap());
        assert_eq!(a.len(), b.len(), "{name}: frame count");
        for (x, y) in a.iter().zip(&b) {
            assert!(
                ((x.0 - a[0].0) - (y.0 - b[0].0)).abs() < 0.0001,
                "{name}: {x:?} vs {y:?}"
            );
            assert_eq!(x.1, y.1, "{name}: keyframe flags");
        }
        // It decodes with no error at all, audio included.
        assert_decodes_without_errors(out.to_str().unwrap(), None);
        assert_eq!(common::codecs(out.to_str().unwrap()), ["aac", "h264"]);
    }
}

#[test]
fn an_hevc_mp4_remuxes_and_enhanced_rtmp_hevc_tags_become_the_same_ts() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("hevc.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-t",
        "2",
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "log-level=error",
        "-tag:v",
        "hvc1",
        src.to_str().unwrap(),
    ]);
    let data = std::fs::read(&src).unwrap();
    let ts = media::ts::mux::from_mp4(&data).unwrap();
    let out = dir.path().join("hevc.ts");
    std::fs::write(&out, &ts).unwrap();
    // The same samples as Enhanced RTMP sends them ('hvc1' FourCC: a sequence start with the
    // hvcC, then coded frames with composition times) become the same 50 frames of H.265 in TS.
    let (video, _) = media::mp4::remux::tracks(&data).unwrap();
    let video = video.unwrap();
    let moov_hvcc = {
        // The hvcC box's body, as the sequence start carries it.
        let at = data.windows(4).position(|w| w == b"hvcC").unwrap();
        let size = u32::from_be_bytes(data[at - 4..at].try_into().unwrap()) as usize;
        data[at + 4..at - 4 + size].to_vec()
    };
    let mut conv = media::flv::ToTs::default();
    let mut rtmp_ts = Vec::new();
    let mut start = vec![0x90, b'h', b'v', b'c', b'1']; // ex-header, keyframe, sequence start
    start.extend_from_slice(&moov_hvcc);
    conv.video(&start, 0, &mut rtmp_ts).unwrap();
    for s in &video.samples {
        let ms = (s.dts * 1000 / i64::from(video.timescale)) as u32;
        let cts = (i64::from(s.cto) * 1000 / i64::from(video.timescale)) as i32;
        let frame_type = if s.keyframe { 0x10 } else { 0x20 };
        let mut tag = vec![0x80 | frame_type | 1, b'h', b'v', b'c', b'1'];
        tag.extend_from_slice(&cts.to_be_bytes()[1..]);
        tag.extend_from_slice(&data[s.offset as usize..][..s.size as usize]);
        conv.video(&tag, ms, &mut rtmp_ts).unwrap();
    }
    assert_eq!(conv.codecs().0, Some("hevc"));
    let from_rtmp = dir.path().join("hevc-rtmp.ts");
    std::fs::write(&from_rtmp, &rtmp_ts).unwrap();
    assert_eq!(frames(from_rtmp.to_str().unwrap()).len(), 50);
    assert_decodes_without_errors(from_rtmp.to_str().unwrap(), None);
    assert_eq!(frames(out.to_str().unwrap()).len(), 50);
}

#[test]
fn a_fragmented_mp4_is_an_error() {
    let frag = std::fs::read(demo_dir().join("fragmented.mp4")).unwrap();
    assert!(media::ts::mux::from_mp4(&frag).is_err());
}

#[test]
fn a_mangled_mp4_is_an_error_or_a_remux_never_a_panic() {
    let mut rng = fastrand::Rng::with_seed(5);
    let good = std::fs::read(demo_dir().join("faststart.mp4")).unwrap();
    for _ in 0..300 {
        let mut d = good.clone();
        for _ in 0..4 {
            let i = rng.usize(..d.len().min(4096));
            d[i] = rng.u8(..);
        }
        let _ = media::ts::mux::from_mp4(&d);
    }
}
