use super::flv::{read, Tag};
use super::{Event, Fragmenter};
use crate::flv::FromTs;
use crate::ts::PACKET;

pub(super) fn clip() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/clip.ts")).unwrap()
}

/// demo/clip.ts (H.264 + AAC) through `FromTs`, then the fragmenter: a fragmented MP4 file (init,
/// then every fragment), and the video frames, keyframes and positions of keyframe data in it.
pub(crate) fn fmp4_of_clip() -> (Vec<u8>, usize, Vec<u64>) {
    let data = clip();
    let mut conv = FromTs::default();
    let mut tags = Vec::new();
    for chunk in data.chunks(PACKET * 7) {
        conv.feed(chunk, &mut tags);
    }
    let mut f = Fragmenter::<Vec<u8>>::default();
    let mut events = Vec::new();
    for t in &tags {
        let sample = |start: usize| t.body[start..].to_vec();
        f.tag(t.video, t.ms, &t.body, sample, &mut events).unwrap();
    }
    let mut file = Vec::new();
    let mut frames = 0;
    let mut keys = Vec::new();
    for e in events {
        match e {
            Event::Init(init) => {
                assert!(file.is_empty(), "one init segment for one configuration");
                file.extend_from_slice(&init);
            }
            Event::Fragment {
                head,
                data,
                keyframe,
                ..
            } => {
                file.extend_from_slice(&head);
                if keyframe {
                    keys.push(file.len() as u64);
                }
                frames += 1;
                for d in data {
                    file.extend_from_slice(&d);
                }
            }
        }
    }
    (file, frames, keys)
}

/// demo/clip.ts through the fragmenter as two CMAF tracks (what DASH serves): per track, its own
/// init segment then its own fragment of every fragment that has its frames.
fn track_files_of_clip() -> [Vec<u8>; 2] {
    let data = clip();
    let mut tags = Vec::new();
    FromTs::default().feed(&data, &mut tags);
    let mut f = Fragmenter::<Vec<u8>>::default();
    let mut events = Vec::new();
    let mut files = [Vec::new(), Vec::new()];
    for t in &tags {
        let sample = |start: usize| t.body[start..].to_vec();
        f.tag(t.video, t.ms, &t.body, sample, &mut events).unwrap();
        for e in events.drain(..) {
            match e {
                Event::Init(_) => {
                    for (i, file) in files.iter_mut().enumerate() {
                        assert!(file.is_empty(), "one configuration");
                        file.extend_from_slice(&f.track_init(i == 0).unwrap());
                    }
                }
                Event::Fragment { data, tracks, .. } => {
                    let video = usize::from(tracks[0].is_some());
                    let [v, a] = tracks;
                    if let Some(head) = v {
                        files[0].extend_from_slice(&head);
                        files[0].extend_from_slice(&data[0]);
                    }
                    if let Some(head) = a {
                        files[1].extend_from_slice(&head);
                        data[video..]
                            .iter()
                            .for_each(|d| files[1].extend_from_slice(d));
                    }
                }
            }
        }
    }
    files
}

#[test]
fn each_track_alone_is_a_fragmented_mp4_that_indexes_and_decodes() {
    let [video, audio] = track_files_of_clip();
    let (muxed, frames, keys) = fmp4_of_clip();
    let v = crate::index(&video).unwrap();
    assert_eq!(v.video.as_ref().map(|t| t.codec.as_str()), Some("h264"));
    assert!(v.audio.is_none(), "the video track holds no audio");
    assert_eq!(
        v.keyframes.len(),
        keys.len(),
        "every keyframe of the muxed output"
    );
    let a = crate::index(&audio).unwrap();
    assert_eq!(a.audio.as_ref().map(|t| t.codec.as_str()), Some("aac"));
    assert!(a.video.is_none());
    // The same samples, split: the muxed file's sample bytes are in one track or the other.
    let m = crate::index(&muxed).unwrap();
    assert!(frames > 0);
    let dir = std::env::temp_dir().join(format!("zerocast-cmaf-tracks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, file, expect) in [("v.mp4", &video, "h264,"), ("a.mp4", &audio, "aac")] {
        let path = dir.join(name);
        std::fs::write(&path, file).unwrap();
        assert!(
            streams(&path).starts_with(expect),
            "{name}: {}",
            streams(&path)
        );
        assert_decodes_without_errors(&path);
    }
    let (m, v) = (m.duration.as_secs_f64(), v.duration.as_secs_f64());
    assert!(
        (m - v).abs() < 0.1,
        "the video track plays {v} s, the muxed output {m} s"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_live_ts_stream_becomes_fragments_the_mp4_indexer_reads_back() {
    let (file, frames, keys) = fmp4_of_clip();
    let ts = crate::ts::index(&clip()).unwrap();
    let info = crate::index(&file).unwrap();
    let v = info.video.as_ref().expect("a video track");
    assert_eq!(v.codec, "h264");
    assert_eq!(
        (v.width, v.height),
        (
            ts.video.as_ref().unwrap().width,
            ts.video.as_ref().unwrap().height
        )
    );
    assert_eq!(info.audio.as_ref().map(|a| a.codec.as_str()), Some("aac"));
    // Every keyframe from the first one after both tracks were configured (the AAC
    // configuration comes with the first audio frame, after the first video keyframe), at the
    // first byte of its sample (the video run comes first in a fragment).
    assert!(
        (ts.keyframes.len() - 1..=ts.keyframes.len()).contains(&info.keyframes.len()),
        "{} keyframes of {}",
        info.keyframes.len(),
        ts.keyframes.len()
    );
    let offsets: Vec<u64> = info.keyframes.iter().map(|k| k.offset).collect();
    assert_eq!(offsets, keys);
    // One fragment per video frame; the same duration as the source, within a frame.
    assert!(frames > ts.keyframes.len());
    let gop = ts.keyframes[1].time.as_secs_f64() - ts.keyframes[0].time.as_secs_f64();
    let (a, b) = (info.duration.as_secs_f64(), ts.duration.as_secs_f64());
    let skipped = b - a;
    assert!(
        skipped.abs() < 0.1 || (skipped - gop).abs() < 0.1,
        "{a} s against {b} s"
    );
}

#[test]
fn frames_before_the_first_keyframe_or_without_a_configuration_are_skipped() {
    let mut f = Fragmenter::<u8>::default();
    let mut out = Vec::new();
    f.frame(true, true, 0, 0, 1, 0, &mut out).unwrap();
    f.frame(false, true, 0, 0, 1, 0, &mut out).unwrap();
    assert!(out.is_empty());
    assert_eq!(f.skipped, 2);
}

#[test]
fn tag_bodies_of_any_shape_never_panic() {
    let (tags, _) = {
        let data = clip();
        let mut conv = FromTs::default();
        let mut tags = Vec::new();
        conv.feed(&data[..PACKET * 400], &mut tags);
        (tags, ())
    };
    for (i, t) in tags.iter().take(40).enumerate() {
        crate::mutations(&t.body, i as u64, 200, |d| {
            let _ = read(true, d);
            let _ = read(false, d);
        });
    }
}

/// ffprobe sees H.264 and AAC at the source's picture size, and ffmpeg decodes every frame of
/// the fragmented file with no error.
#[test]
fn ffmpeg_decodes_the_fragments_with_no_error() {
    use std::process::Command;
    let (file, frames, _) = fmp4_of_clip();
    let dir = std::env::temp_dir().join(format!("zerocast-cmaf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("clip.mp4");
    std::fs::write(&path, &file).unwrap();
    let streams = streams(&path);
    assert!(streams.lines().any(|l| l.starts_with("h264,")), "{streams}");
    assert!(streams.lines().any(|l| l.starts_with("aac")), "{streams}");
    assert_decodes_without_errors(&path);
    // Every video frame decoded.
    let count = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-count_frames",
            "-show_entries",
        ])
        .args(["stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    let n: usize = String::from_utf8_lossy(&count.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(n, frames);
    std::fs::remove_dir_all(&dir).unwrap();
}

pub(super) fn avc_track() -> super::VideoTrack {
    let data = clip();
    let mut tags = Vec::new();
    FromTs::default().feed(&data[..PACKET * 400], &mut tags);
    let seq = tags.iter().find(|t| t.video && t.sequence).unwrap();
    match read(true, &seq.body).unwrap() {
        Tag::Video(v) => v,
        other => panic!("{other:?}"),
    }
}

pub(super) fn aac_track() -> super::AudioTrack {
    super::AudioTrack {
        codec: super::AudioCodec::Aac {
            asc: vec![0x12, 0x10],
        },
        channels: 2,
        sample_rate: 44_100,
        timescale: 1000,
    }
}

#[test]
fn a_track_configured_after_fragments_started_is_not_added_under_the_viewers() {
    let mut f = Fragmenter::<u8>::default();
    let mut out = Vec::new();
    f.video_config(avc_track());
    // No audio within the first second: fragments start with video alone.
    f.frame(true, true, 0, 0, 1, 0, &mut out).unwrap();
    f.frame(true, true, 0, 1_000, 1, 0, &mut out).unwrap();
    let inits = |out: &[Event<u8>]| out.iter().filter(|e| matches!(e, Event::Init(_))).count();
    assert_eq!(inits(&out), 1);
    f.audio_config(aac_track());
    f.frame(false, true, 0, 1_010, 1, 0, &mut out).unwrap();
    f.frame(true, false, 0, 1_040, 1, 0, &mut out).unwrap();
    assert_eq!(inits(&out), 1, "no second init segment with another track");
    assert_eq!(
        f.init()
            .map(|i| i.windows(4).filter(|w| w == b"trak").count()),
        Some(1)
    );
}

#[test]
fn an_opus_head_with_a_channel_mapping_table_is_refused() {
    // Enhanced audio: SoundFormat 9, packet type 0 (sequence start), 'Opus', then OpusHead.
    let head = |channels: u8, family: u8| {
        let mut b = vec![0x90];
        b.extend_from_slice(b"Opus");
        b.extend_from_slice(b"OpusHead");
        b.extend_from_slice(&[1, channels, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, family]);
        b
    };
    match read(false, &head(2, 0)).unwrap() {
        Tag::Audio(a) => {
            assert_eq!((a.channels, a.sample_rate), (2, 48_000));
            assert_eq!(a.codec, super::AudioCodec::Opus { pre_skip: 312 });
        }
        other => panic!("{other:?}"),
    }
    assert!(read(false, &head(6, 1)).is_err());
}

/// H.265: an MP4 made by ffmpeg (libx265, 320x180) becomes Enhanced-RTMP tag bodies (an `hvc1`
/// sequence start with its hvcC, then coded frames with their composition times), then
/// fragments; ffmpeg decodes every frame of them and ffprobe sees hevc at 320x180.
#[test]
fn h265_frames_from_enhanced_rtmp_tags_become_fragments_ffmpeg_decodes() {
    let dir = std::env::temp_dir().join(format!("zerocast-cmaf-hevc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mp4, hvcc) = h265_mp4(2);
    let hvcc = &hvcc[..];
    let (video, _) = crate::mp4::remux::tracks(&mp4).unwrap();
    let video = video.unwrap();
    let ms = |t: i64| (t * 1000 / i64::from(video.timescale)) as u32;
    let mut f = Fragmenter::<Vec<u8>>::default();
    let mut events = Vec::new();
    // IsExHeader, FrameType 1 (key), PacketType 0 (sequence start), 'hvc1'.
    let mut seq = vec![0x90];
    seq.extend_from_slice(b"hvc1");
    seq.extend_from_slice(hvcc);
    match read(true, &seq).unwrap() {
        Tag::Video(v) => {
            assert_eq!((v.width, v.height), (320, 180));
            f.video_config(v);
        }
        other => panic!("{other:?}"),
    }
    for s in &video.samples {
        // PacketType 1 (coded frames): SI24 composition time, then the length-prefixed units.
        let frame_type = if s.keyframe { 1 } else { 2 };
        let mut body = vec![0x80 | (frame_type << 4) | 1];
        body.extend_from_slice(b"hvc1");
        let cto = ms(i64::from(s.cto)).to_be_bytes();
        body.extend_from_slice(&cto[1..]);
        body.extend_from_slice(&mp4[s.offset as usize..s.offset as usize + s.size as usize]);
        let Tag::Frame {
            keyframe,
            cto,
            data,
            ..
        } = read(true, &body).unwrap()
        else {
            panic!("a coded frame");
        };
        let bytes = body[data..].to_vec();
        f.frame(
            true,
            keyframe,
            cto,
            ms(s.dts),
            bytes.len(),
            bytes,
            &mut events,
        )
        .unwrap();
    }
    let mut file = Vec::new();
    let mut frames = 0;
    for e in events {
        match e {
            Event::Init(i) => file.extend_from_slice(&i),
            Event::Fragment { head, data, .. } => {
                frames += 1;
                file.extend_from_slice(&head);
                data.iter().for_each(|d| file.extend_from_slice(d));
            }
        }
    }
    // A stream with no audio starts 1 s in (the writer waits that long for a second track), at
    // the next keyframe: every frame from there on.
    let start = video
        .samples
        .iter()
        .position(|s| s.keyframe && ms(s.dts) >= 1000)
        .unwrap();
    assert_eq!(frames, video.samples.len() - start);
    let out = dir.join("out.mp4");
    std::fs::write(&out, &file).unwrap();
    let streams = streams(&out);
    assert_eq!(streams.trim(), "hevc,320,180");
    assert_decodes_without_errors(&out);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `secs` s of 320x180 25 fps H.265 (a keyframe a second, `hvc1`) made by ffmpeg's x265, as MP4,
/// and its `hvcC` box's body (what an Enhanced-RTMP sequence start carries).
pub(crate) fn h265_mp4(secs: u32) -> (Vec<u8>, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("zerocast-x265-{}-{secs}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("src.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .args(["testsrc2=size=320x180:rate=25", "-t", &secs.to_string()])
        .args(["-c:v", "libx265", "-x265-params"])
        .args(["log-level=error:keyint=25:open-gop=0", "-tag:v", "hvc1"])
        .arg(&src)
        .status()
        .expect("ffmpeg (scripts/test installs it)");
    assert!(made.success());
    let mp4 = std::fs::read(&src).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let at = mp4.windows(4).position(|w| w == b"hvcC").unwrap();
    let size = u32::from_be_bytes(mp4[at - 4..at].try_into().unwrap()) as usize;
    let hvcc = mp4[at + 4..at - 4 + size].to_vec();
    (mp4, hvcc)
}

/// ffprobe's codec name, width and height of each stream, one line each.
fn streams(path: &std::path::Path) -> String {
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe (scripts/test installs ffmpeg)");
    String::from_utf8_lossy(&probe.stdout).into_owned()
}

/// ffmpeg decodes every frame of `path` and says nothing at `-v error`.
pub(super) fn assert_decodes_without_errors(path: &std::path::Path) {
    let decode = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg (scripts/test installs it)");
    let errors = String::from_utf8_lossy(&decode.stderr);
    assert!(
        decode.status.success() && errors.trim().is_empty(),
        "{errors}"
    );
}

#[test]
fn a_prft_written_before_a_fragment_reads_back_with_where_the_moof_begins() {
    let head = super::fragment_head(
        7,
        &[super::Run {
            track_id: super::VIDEO_TRACK,
            base_time: 1234,
            samples: &[super::Sample {
                duration: 40,
                size: 10,
                keyframe: true,
                cto: 0,
            }],
        }],
    )
    .unwrap();
    let mut unit = super::prft(super::VIDEO_TRACK, 5 << 32, 1234);
    let at = unit.len();
    unit.extend_from_slice(&head);
    assert_eq!(super::read_prft(&unit), Some((1234, at)));
    assert_eq!(super::read_prft_ntp(&unit), Some(5 << 32));
    assert_eq!(&unit[at + 4..at + 8], b"moof");
    // Cut short, another box, or nothing: not a prft.
    assert_eq!(super::read_prft(&unit[..31]), None);
    assert_eq!(super::read_prft_ntp(&unit[..31]), None);
    assert_eq!(super::read_prft_ntp(&head), None);
    assert_eq!(super::read_prft(&head), None);
    assert_eq!(super::read_prft(&[]), None);
}

#[test]
fn a_fragment_heads_runs_read_back_per_track() {
    let sample = super::Sample {
        duration: 21,
        size: 9,
        keyframe: true,
        cto: 0,
    };
    let head = super::fragment_head(
        3,
        &[
            super::Run {
                track_id: super::VIDEO_TRACK,
                base_time: 1 << 33,
                samples: &[sample],
            },
            super::Run {
                track_id: super::AUDIO_TRACK,
                base_time: 990,
                samples: &[sample, sample, sample],
            },
        ],
    )
    .unwrap();
    assert_eq!(
        super::fragment_runs(&head).unwrap(),
        [Some((1 << 33, 1)), Some((990, 3))]
    );
    let audio_only = super::fragment_head(
        4,
        &[super::Run {
            track_id: super::AUDIO_TRACK,
            base_time: 5,
            samples: &[sample],
        }],
    )
    .unwrap();
    assert_eq!(
        super::fragment_runs(&audio_only).unwrap(),
        [None, Some((5, 1))]
    );
    // Cut anywhere, or not a moof: an error, never a panic.
    for n in 0..head.len() - 8 {
        let _ = super::fragment_runs(&head[..n]);
    }
    assert!(super::fragment_runs(&head[..40]).is_err());
    assert!(super::fragment_runs(b"\0\0\0\x08free").is_err());
}

#[test]
fn an_init_segments_tracks_read_back() {
    let (file, _, _) = fmp4_of_clip();
    // The clip's init segment: ftyp and moov, before the first moof.
    let init = &file[..file.windows(4).position(|w| w == b"moof").unwrap() - 4];
    assert_eq!(super::init_tracks(init).unwrap(), [true, true]);
    let audio = super::init_segment(None, Some(&audio_of_clip()));
    assert_eq!(super::init_tracks(&audio).unwrap(), [false, true]);
    assert!(super::init_tracks(b"\0\0\0\x08free").is_err());
    for n in 0..init.len() {
        let _ = super::init_tracks(&init[..n]);
    }
}

/// The demo clip's audio track, as the fragmenter reads it.
fn audio_of_clip() -> super::AudioTrack {
    let mut conv = FromTs::default();
    let mut tags = Vec::new();
    let clip = clip();
    conv.feed(&clip[..clip.len() / PACKET * PACKET], &mut tags);
    let mut f = Fragmenter::<()>::default();
    for t in tags.iter().filter(|t| t.sequence && !t.video) {
        let _ = f.tag(false, t.ms, &t.body, |_| (), &mut Vec::new());
    }
    f.tracks().1.cloned().expect("the clip has audio")
}

/// Two audio frames at one time (a publisher that repeats a timestamp, or an Opus packet of no
/// frames before another): no sample of a fragment lasts 0 (players stall on them).
#[test]
fn audio_frames_that_share_a_timestamp_never_make_a_sample_of_no_duration() {
    let mut f = Fragmenter::<u8>::default();
    let mut out = Vec::new();
    f.video_config(avc_track());
    f.audio_config(aac_track());
    f.frame(true, true, 0, 0, 1, 0, &mut out).unwrap();
    for ms in [10, 10, 30] {
        f.frame(false, true, 0, ms, 1, 0, &mut out).unwrap();
    }
    f.frame(true, false, 0, 40, 1, 0, &mut out).unwrap();
    let mut durations = Vec::new();
    for e in &out {
        let Event::Fragment { head, .. } = e else {
            continue;
        };
        // Each `trun`: version and flags, a count, the data offset, then 16 bytes a sample
        // (duration, size, flags, composition offset).
        for at in head
            .windows(4)
            .enumerate()
            .filter(|(_, w)| w == b"trun")
            .map(|(i, _)| i)
        {
            let n = u32::from_be_bytes(head[at + 8..at + 12].try_into().unwrap()) as usize;
            for s in 0..n {
                let d = at + 16 + 16 * s;
                durations.push(u32::from_be_bytes(head[d..d + 4].try_into().unwrap()));
            }
        }
    }
    assert_eq!(durations.len(), 5, "two video frames, three audio ones");
    assert!(durations.iter().all(|&d| d > 0), "{durations:?}");
}
