//! An RTMP publisher whose timestamps step back without reconnecting (an encoder that restarted
//! its clock, or switched its input): the stream's viewers get timestamps that go on rising.
//! The publisher is ffmpeg's recorded handshake and `publish`, then the demo clip's frames as
//! RTMP messages with the timestamps the test gives them.

mod common;

use common::live::{server, wait_for, Reading, Viewer};
use common::ts::flv_tags;
use common::TestServer;
use std::io::Write;
use std::net::TcpStream;

/// The demo clip's FLV tags (sequence headers, then frames), as the publisher sends them.
fn clip_tags() -> Vec<media::flv::Tag> {
    let ts = std::fs::read(common::demo_dir().join("clip.ts")).unwrap();
    let mut tags = Vec::new();
    media::flv::FromTs::default().feed(&ts[..ts.len() / 188 * 188], &mut tags);
    tags
}

/// RTMP messages of `tags` on ffmpeg's stream (message stream 1, chunks of 4096 bytes), each
/// at the time `at` gives it.
fn messages<'a>(
    tags: impl Iterator<Item = &'a media::flv::Tag>,
    at: impl Fn(u32) -> u32,
) -> Vec<u8> {
    tags.flat_map(|t| rtmp::write::av_message(t.video, at(t.ms), &t.body, 4096, 1))
        .collect()
}

/// A stream published as ffmpeg does (its recorded handshake, connect, createStream, publish
/// and metadata: what comes before its first audio message), then the demo clip's first 4 s as
/// RTMP messages with their own times, watched by an FLV viewer: the server, the publisher's
/// connection, the clip's tags, where the 4 s end (a keyframe), and the viewer.
fn first_4_s_watched() -> (TestServer, TcpStream, Vec<media::flv::Tag>, usize, Viewer) {
    let s = server(|_| {});
    let mut reads = common::fixtures::recorded_rtmp_publish();
    let media = reads
        .iter()
        .position(|r| r.first() == Some(&0x04) && r.get(7) == Some(&0x08))
        .expect("ffmpeg's first audio message");
    reads.truncate(media);
    let mut c = TcpStream::connect(s.rtmp).unwrap();
    c.write_all(&reads.concat()).unwrap();
    let tags = clip_tags();
    let half = tags
        .iter()
        .position(|t| t.ms >= 4000 && t.video && t.keyframe)
        .expect("a keyframe 4 s in");
    c.write_all(&messages(tags[..half].iter(), |ms| ms))
        .unwrap();
    wait_for(&s, "fixture", "live", |d| {
        d["ring_units"].as_u64() > Some(5)
    });
    let v = Viewer::start(s.addr, "/live/fixture.flv", Reading::Fast);
    v.wait_body("the FLV header and a keyframe", |b| flv_tags(b).len() > 3);
    (s, c, tags, half, v)
}

/// Waits until the clip's last video frame has reached the viewer; its FLV.
fn to_the_end(v: Viewer, tags: &[media::flv::Tag]) -> Vec<u8> {
    let last = &tags.iter().rev().find(|t| t.video).expect("video").body;
    v.wait_body("the last frame", |b| {
        b.windows(last.len()).any(|w| w == &last[..])
    });
    let (resp, flv, _) = v.stop();
    assert_eq!(resp.status, 200);
    flv
}

#[test]
fn an_rtmp_publisher_whose_clock_restarts_gives_flv_viewers_rising_timestamps() {
    let (_s, mut c, tags, restart, v) = first_4_s_watched();
    // Then the encoder's clock starts over at 0.
    let back = tags[restart].ms;
    let rest = tags[restart..].iter().filter(|t| !t.sequence);
    c.write_all(&messages(rest, |ms| ms.wrapping_sub(back)))
        .unwrap();
    let flv = to_the_end(v, &tags);
    for kind in [8u8, 9] {
        let times: Vec<u32> = flv_tags(&flv)
            .iter()
            // Frames, not sequence headers (AVC and AAC packet type 0).
            .filter(|t| t.0 == kind && t.2 != 0)
            .map(|t| t.3)
            .collect();
        assert!(times.len() > 50, "{kind}: {times:?}");
        let back = times.windows(2).find(|w| w[1] < w[0]);
        assert!(
            back.is_none(),
            "tag type {kind} went back: {back:?} in {times:?}"
        );
    }
}

/// A frame that cannot be read, at a timestamp far from the stream's (a corrupt message): it
/// reaches no output and does not move the clock, so the frames after it go on where they were
/// (no jump of the stream's time for its viewers).
#[test]
fn an_unreadable_frame_at_a_stray_timestamp_does_not_move_the_clock() {
    let (_s, mut c, tags, half, v) = first_4_s_watched();
    // An AVC frame whose NAL unit length runs past its end, 3 s before the stream's time.
    let bad = [0x27, 0x01, 0, 0, 0, 0, 0, 0x10, 0, 0x41, 0x9a];
    let mut out = rtmp::write::av_message(true, tags[half].ms - 3000, &bad, 4096, 1);
    out.extend(messages(tags[half..].iter(), |ms| ms));
    c.write_all(&out).unwrap();
    let flv = to_the_end(v, &tags);
    let times: Vec<u32> = flv_tags(&flv)
        .iter()
        .filter(|t| t.0 == 9 && t.2 != 0)
        .map(|t| t.3)
        .collect();
    let sent: Vec<u32> = tags
        .iter()
        .filter(|t| t.video && !t.sequence)
        .map(|t| t.ms)
        .collect();
    // The viewer's frames are the publisher's, with the times it gave them.
    assert!(times.len() > 50, "{times:?}");
    assert!(sent.ends_with(&times), "{times:?}");
}
