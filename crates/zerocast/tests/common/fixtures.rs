//! Media made with ffmpeg at test time, each once per test binary (the encodes are the expensive
//! part of the live tests) and shared by every test that needs it.

use super::ffmpeg;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

fn dir() -> PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("zerocast-fixtures-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
    .clone()
}

/// Video frames per second of every fixture; each has a keyframe every `FPS` frames (1 s GOP).
pub const FPS: usize = 25;

/// A 12 s 320x240 H.264 (1 s GOP, no B-frames) + AAC MPEG-TS: 300 video frames.
pub fn live_ts() -> PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| make_live_ts("live.ts", "12")).clone()
}

/// The same, 2 s long, for a test that publishes it to its end.
pub fn short_live_ts() -> PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| make_live_ts("short.ts", "2")).clone()
}

/// The same, 40 s long, for a stream that runs while several tests watch it.
pub fn long_live_ts() -> PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| make_live_ts("long.ts", "40")).clone()
}

/// How long the long fixtures run.
pub const LONG: Duration = Duration::from_secs(40);

fn make_live_ts(name: &str, secs: &str) -> PathBuf {
    let out = dir().join(name);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        secs,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-keyint_min",
        "25",
        "-sc_threshold",
        "0",
        "-b:v",
        "600k",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-f",
        "mpegts",
        out.to_str().unwrap(),
    ]);
    out
}

/// Video frames in [`live_ts`].
pub const LIVE_TS_FRAMES: usize = 12 * FPS;

/// [`live_ts`] without its video: a stream that never has a keyframe.
pub fn audio_only_ts() -> PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        let out = dir().join("audio.ts");
        ffmpeg(&[
            "-i",
            live_ts().to_str().unwrap(),
            "-vn",
            "-c",
            "copy",
            "-f",
            "mpegts",
            out.to_str().unwrap(),
        ]);
        out
    })
    .clone()
}

/// A 4 s 320x240 H.265 (1 s GOP) + Opus MPEG-TS.
pub fn hevc_opus_ts() -> PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| make_hevc_opus_ts("hevc.ts", "4")).clone()
}

/// The same, 20 s long, published in real time while a test reads its outputs.
pub fn long_hevc_opus_ts() -> PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| make_hevc_opus_ts("long-hevc.ts", "20"))
        .clone()
}

fn make_hevc_opus_ts(name: &str, secs: &str) -> PathBuf {
    {
        let out = dir().join(name);
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=sample_rate=48000",
            "-t",
            secs,
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "keyint=25:min-keyint=25:log-level=error",
            "-c:a",
            "libopus",
            "-f",
            "mpegts",
            out.to_str().unwrap(),
        ]);
        out
    }
}

/// A 6 s 320x240 H.264 (1 s GOP, with B-frames) + AAC MP4, as an RTMP publisher sends it: 150
/// video frames.
pub fn rtmp_mp4() -> PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| make_rtmp_mp4("rtmp.mp4", "6")).clone()
}

/// The same, 40 s long, for a stream that runs while several tests watch it.
pub fn long_rtmp_mp4() -> PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| make_rtmp_mp4("long.mp4", "40")).clone()
}

fn make_rtmp_mp4(name: &str, secs: &str) -> PathBuf {
    let out = dir().join(name);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        secs,
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        "25",
        "-bf",
        "2",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        out.to_str().unwrap(),
    ]);
    out
}

/// Video frames in [`rtmp_mp4`].
pub const RTMP_MP4_FRAMES: usize = 6 * FPS;

/// The reads of a recorded ffmpeg RTMP publish of 1 s (25 frames) of 160x120 H.264 + AAC to
/// `/live/fixture` (see crates/rtmp/tests/fixtures and scripts/record-rtmp-publish.py).
pub fn recorded_rtmp_publish() -> Vec<Vec<u8>> {
    let path = super::repo().join("crates/rtmp/tests/fixtures/ffmpeg-publish.rtmp");
    let rec = std::fs::read(path).unwrap();
    let mut rest = &rec[..];
    let mut reads = Vec::new();
    while rest.len() >= 4 {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        reads.push(rest[4..4 + n].to_vec());
        rest = &rest[4 + n..];
    }
    reads
}

/// The recorded RTMP publish, up to the middle of the read that says `FCUnpublish` (every
/// frame before it whole, the command cut): a publisher whose connection drops mid-message,
/// before it said it was done.
pub fn recorded_rtmp_publish_cut_mid_chunk() -> Vec<u8> {
    let reads = recorded_rtmp_publish();
    let last = reads
        .iter()
        .position(|r| r.windows(11).any(|w| w == b"FCUnpublish"))
        .expect("ffmpeg's FCUnpublish");
    let mut all: Vec<u8> = reads[..last].concat();
    all.extend_from_slice(&reads[last][..reads[last].len() / 2]);
    all
}
