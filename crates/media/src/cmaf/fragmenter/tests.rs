//! The fragments' decode times per track: they rise whatever the publisher's timestamps do
//! (wrap at 2^32, step back a little or a lot, repeat).

use super::{Event, Fragmenter};
use crate::cmaf::tests::{aac_track, assert_decodes_without_errors, avc_track, clip};
use crate::flv::FromTs;

/// Per track (video, audio): each sample's decode time and duration, read from the fragment
/// heads in `events` (each `traf`'s `tfdt`, version 1, then its `trun`: version and flags, a
/// count, the data offset, then 16 bytes a sample, its duration first).
fn samples<T>(events: &[Event<T>]) -> [Vec<(u64, u32)>; 2] {
    let mut tracks = [Vec::new(), Vec::new()];
    for e in events {
        let Event::Fragment { head, .. } = e else {
            continue;
        };
        let at = |name: &[u8; 4]| {
            head.windows(4)
                .enumerate()
                .filter(|(_, w)| w == name)
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        };
        let be32 = |i: usize| u32::from_be_bytes(head[i..i + 4].try_into().unwrap());
        for (tfhd, (tfdt, trun)) in at(b"tfhd")
            .into_iter()
            .zip(at(b"tfdt").into_iter().zip(at(b"trun")))
        {
            let track = usize::from(be32(tfhd + 8) == crate::cmaf::AUDIO_TRACK);
            let mut time = u64::from_be_bytes(head[tfdt + 8..tfdt + 16].try_into().unwrap());
            for s in 0..be32(trun + 8) as usize {
                let duration = be32(trun + 16 + 16 * s);
                tracks[track].push((time, duration));
                time += u64::from(duration);
            }
        }
    }
    tracks
}

fn rising(times: &[(u64, u32)]) -> bool {
    times.windows(2).all(|w| w[0].0 < w[1].0) && times.iter().all(|&(_, d)| d > 0)
}

/// A publisher whose clock starts a second short of the 32-bit wrap and runs 4 s (over it),
/// with a video frame 10 ms before the one ahead of it and two audio frames at one time, then
/// restarts its clock at 0 (an encoder restarted without reconnecting).
#[test]
fn decode_times_rise_per_track_across_the_wrap_a_step_back_and_a_restarted_clock() {
    let mut f = Fragmenter::<u8>::default();
    f.video_config(avc_track());
    f.audio_config(aac_track());
    let mut out = Vec::new();
    let start = u32::MAX - 1000;
    let mut push = |ms: u32, video: bool, key: bool| {
        f.frame(video, key, 0, ms, 1, 0, &mut out).unwrap();
    };
    for n in 0..100u32 {
        let ms = start.wrapping_add(40 * n);
        let video_ms = if n == 30 { ms.wrapping_sub(50) } else { ms };
        push(video_ms, true, n % 25 == 0);
        push(ms, false, false);
        let second = if n == 60 { ms } else { ms.wrapping_add(20) };
        push(second, false, false);
    }
    for n in 0..25u32 {
        push(40 * n, true, n == 0);
        push(40 * n, false, false);
        push(40 * n + 20, false, false);
    }
    let [video, audio] = samples(&out);
    // (The last video frame's audio waits for the next one.)
    assert_eq!((video.len(), audio.len()), (125, 248));
    assert!(rising(&video), "video: {video:?}");
    assert!(rising(&audio), "audio: {audio:?}");
    let t0 = u64::from(start);
    assert_eq!(video[0].0, t0);
    assert_eq!(
        video[31].0,
        t0 + 40 * 31,
        "back on the clock after the step"
    );
    assert_eq!(video[99].0, t0 + 40 * 99, "past 2^32, not wrapped");
    assert_eq!(
        video[100].0,
        t0 + 40 * 100,
        "one frame after, when the clock restarted"
    );
    assert_eq!(
        audio[122].0,
        t0 + 40 * 61,
        "no drift after the repeated timestamp"
    );
    // The tracks in step after the restart: audio at its video frame's time.
    assert_eq!(audio[246].0, video[123].0);
}

/// The demo clip's tags with their timestamps started 3 s short of the 32-bit wrap, and set 5 s
/// back halfway (a restarted clock): ffprobe reads every packet's decode time rising, per
/// stream, and ffmpeg decodes the file with no error.
#[test]
fn ffmpeg_reads_rising_decode_times_from_a_publisher_whose_clock_wrapped_and_restarted() {
    let data = clip();
    let mut tags = Vec::new();
    FromTs::default().feed(&data[..data.len() / 188 * 188], &mut tags);
    let mut f = Fragmenter::<Vec<u8>>::default();
    let mut events = Vec::new();
    let half = tags.len() / 2;
    for (i, t) in tags.iter().enumerate() {
        let mut ms = t.ms.wrapping_add(u32::MAX - 3000);
        if i >= half {
            ms = ms.wrapping_sub(5000);
        }
        let sample = |start: usize| t.body[start..].to_vec();
        f.tag(t.video, ms, &t.body, sample, &mut events).unwrap();
    }
    let mut file = Vec::new();
    for e in events {
        match e {
            Event::Init(init) => file.extend_from_slice(&init),
            Event::Fragment { head, data, .. } => {
                file.extend_from_slice(&head);
                data.iter().for_each(|d| file.extend_from_slice(d));
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("zerocast-cmaf-wrap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wrapped.mp4");
    std::fs::write(&path, &file).unwrap();
    assert_decodes_without_errors(&path);
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "packet=stream_index,dts"])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe (scripts/test installs ffmpeg)");
    let mut last = [None::<i64>; 2];
    let mut counts = [0; 2];
    for line in String::from_utf8_lossy(&probe.stdout).lines() {
        let (index, dts) = line.split_once(',').expect("index,dts");
        let (index, dts): (usize, i64) = (index.parse().unwrap(), dts.parse().unwrap());
        assert!(
            last[index].is_none_or(|l| l < dts),
            "stream {index}: {dts} after {last:?}"
        );
        last[index] = Some(dts);
        counts[index] += 1;
    }
    assert!(counts.iter().all(|&n| n > 100), "{counts:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A fragmenter with both tracks configured.
fn configured() -> Fragmenter<u8> {
    let mut f = Fragmenter::default();
    f.video_config(avc_track());
    f.audio_config(aac_track());
    f
}

/// Frames `(video, ms)` into `f`; what it made.
fn feed(f: &mut Fragmenter<u8>, frames: &[(bool, u32)], out: &mut Vec<Event<u8>>) {
    for &(video, ms) in frames {
        f.frame(video, video, 0, ms, 1, 0, out).unwrap();
    }
}

/// 25 fps video and AAC at 44.1 kHz (a frame every 23.2 ms) from `from_ms` for `secs`.
fn av(from_ms: u32, secs: u32) -> Vec<(bool, u32)> {
    let mut frames: Vec<(bool, u32)> = (0..secs * 25).map(|n| (true, n * 40)).collect();
    frames.extend((0..secs * 44_100 / 1024).map(|n| (false, n * 1024 * 1000 / 44_100)));
    frames.sort_by_key(|&(video, ms)| (ms, !video));
    frames.iter().map(|&(v, ms)| (v, from_ms + ms)).collect()
}

/// The clock restarts at 0 after 10 s, where the last audio frame was later than the last video
/// frame and the tracks' intervals differ: each track goes on where the other's new clock puts
/// it, so a frame of each at one timestamp still has one decode time.
#[test]
fn the_tracks_stay_in_step_when_the_clock_restarts() {
    let mut f = configured();
    let mut out = Vec::new();
    feed(&mut f, &av(0, 10), &mut out);
    let restart = av(0, 2);
    feed(&mut f, &restart, &mut out);
    let [video, audio] = samples(&out);
    // Where each track's timestamps are on the timeline after the restart: the last frame's
    // decode time less its timestamp.
    let video_ms = restart
        .iter()
        .filter(|f| f.0)
        .map(|f| f.1)
        .next_back()
        .unwrap();
    let audio_ms: Vec<u32> = restart.iter().filter(|f| !f.0).map(|f| f.1).collect();
    let offset_v = video.last().unwrap().0 - u64::from(video_ms);
    // The audio of the restart that went out (the last ones wait for the next video frame).
    let sent = audio.len() - (av(0, 10).iter().filter(|f| !f.0).count());
    let offset_a = audio.last().unwrap().0 - u64::from(audio_ms[sent - 1]);
    assert_eq!(offset_v, offset_a, "video and audio on one clock");
    assert!(rising(&video) && rising(&audio));
}

/// A fragmenter anchored where another one is ([`Fragmenter::anchor`], a DVR viewer's) makes
/// the fragments' times that one makes, per track: here after the audio's clock alone stepped
/// back (so the two tracks' timestamps are on the timeline at different offsets).
#[test]
fn an_anchored_fragmenter_times_each_track_as_the_one_it_was_anchored_on() {
    let mut f = configured();
    let mut out = Vec::new();
    let mut frames = av(0, 4);
    for (video, ms) in frames.iter_mut() {
        if !*video && *ms >= 2000 {
            *ms -= 1500;
        }
    }
    feed(&mut f, &frames, &mut out);
    let mut g = Fragmenter::anchored(f.anchor());
    g.video_config(avc_track());
    g.audio_config(aac_track());
    let next: Vec<(bool, u32)> = av(4000, 1)
        .into_iter()
        .map(|(v, ms)| (v, if v { ms } else { ms - 1500 }))
        .collect();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    feed(&mut f, &next, &mut a);
    feed(&mut g, &next, &mut b);
    let [fv, fa] = samples(&a);
    let [gv, ga] = samples(&b);
    assert_eq!(gv.first().map(|s| s.0), fv.first().map(|s| s.0), "video");
    // The anchored one's first fragment waited for a keyframe: compare from there.
    let first = ga[0].0;
    let same = fa.iter().skip_while(|s| s.0 < first).map(|s| s.0);
    assert!(same.eq(ga.iter().map(|s| s.0)), "audio: {fa:?} {ga:?}");
}
