//! MP4 to MPEG-TS: the remuxed stream decodes like the source (ffprobe and ffmpeg as oracles), and
//! `zerocast publish` takes MP4 files.

mod common;

use common::{demo_dir, ffmpeg, require};
use std::process::Command;

/// Video frames as ffprobe sees them: (pts seconds, keyframe), in presentation order.
fn frames(path: &str) -> Vec<(f64, bool)> {
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_packets"])
        .args([
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
            path,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Vec<(f64, bool)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.parse().ok()?, f.next()?.starts_with('K')))
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

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
        let dec = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-nostdin",
                "-i",
                out.to_str().unwrap(),
                "-f",
                "null",
                "-",
            ])
            .output()
            .unwrap();
        assert!(dec.status.success());
        assert!(
            dec.stderr.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&dec.stderr)
        );
        assert_eq!(common::codecs(out.to_str().unwrap()), ["aac", "h264"]);
    }
}

#[test]
fn hevc_mp4_remuxes_too_and_bad_input_is_an_error() {
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
    let ts = media::ts::mux::from_mp4(&std::fs::read(&src).unwrap()).unwrap();
    let out = dir.path().join("hevc.ts");
    std::fs::write(&out, &ts).unwrap();
    assert_eq!(frames(out.to_str().unwrap()).len(), 50);
    // Fragmented MP4 and garbage: errors, not panics.
    let frag = std::fs::read(demo_dir().join("fragmented.mp4")).unwrap();
    assert!(media::ts::mux::from_mp4(&frag).is_err());
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
