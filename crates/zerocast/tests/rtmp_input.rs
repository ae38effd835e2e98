//! Hostile and unusual RTMP input over a real connection (issue 11): chunk streams interleaved in
//! the middle of a message, a command with too few values. The server answers or closes cleanly,
//! never panics, and still takes a real ffmpeg publisher afterwards. Also what an RTMP player is
//! sent: ffprobe sees exactly the stream's video and audio, nothing else.

mod common;

use common::fixtures::{long_rtmp_mp4, rtmp_mp4};
use common::live::{
    ffmpeg_publish, rtmp_publisher, server, wait_for, wait_until, Reading, Viewer, WAIT,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Once;
use std::time::Instant;

/// Panics anywhere in this test binary (server tasks included) since the hook was installed.
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts every panic of the process; the server runs in it, so a panic in a connection task
/// (which tokio would otherwise swallow) fails the test that checks the count.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, SeqCst);
            default(info);
        }));
    });
}

/// A connection that has completed the plain handshake (C0 C1, S0 S1 S2, C2).
fn handshaken(addr: std::net::SocketAddr) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let mut c0c1 = vec![3u8];
    c0c1.extend((0..1536u32).map(|i| (i * 7) as u8));
    c.write_all(&c0c1).unwrap();
    let mut s012 = vec![0u8; 1 + 1536 * 2];
    c.read_exact(&mut s012).unwrap();
    assert_eq!(s012[0], 3, "S0: version 3");
    assert_eq!(&s012[1 + 1536..], &c0c1[1..], "S2 echoes C1");
    c.write_all(&s012[1..1 + 1536]).unwrap();
    c
}

/// One chunk with a type 0 header (chunk stream id < 64).
fn chunk0(csid: u8, type_id: u8, stream_id: u32, length: usize, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![csid, 0, 0, 0];
    b.extend_from_slice(&(length as u32).to_be_bytes()[1..]);
    b.push(type_id);
    b.extend_from_slice(&stream_id.to_le_bytes());
    b.extend_from_slice(payload);
    b
}

fn amf_string(s: &str) -> Vec<u8> {
    let mut b = vec![2];
    b.extend_from_slice(&(s.len() as u16).to_be_bytes());
    b.extend_from_slice(s.as_bytes());
    b
}

fn amf_number(n: f64) -> Vec<u8> {
    let mut b = vec![0];
    b.extend_from_slice(&n.to_be_bytes());
    b
}

/// `connect(1, {app: "live"})` as one AMF0 command message on chunk stream 3.
fn connect_live() -> Vec<u8> {
    let mut body = amf_string("connect");
    body.extend(amf_number(1.0));
    body.push(3);
    body.extend_from_slice(&3u16.to_be_bytes());
    body.extend_from_slice(b"app");
    body.extend(amf_string("live"));
    body.extend_from_slice(&[0, 0, 9]);
    chunk0(3, 20, 0, body.len(), &body)
}

/// Reads what the server sends until `needle` shows up; false if it closes first.
fn answer_contains(c: &mut TcpStream, needle: &[u8]) -> bool {
    let mut seen = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match c.read(&mut b) {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&b[..n]),
        }
        if seen.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
    }
}

/// The server closes the connection (within `WAIT`), whatever it sends first.
fn closed_by_server(c: &mut TcpStream) -> bool {
    let mut b = [0u8; 4096];
    loop {
        match c.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => {
                return e.kind() == std::io::ErrorKind::ConnectionReset;
            }
        }
    }
}

#[test]
fn chunk_streams_interleaved_mid_message_are_reassembled_and_a_publisher_still_gets_in() {
    count_panics();
    let s = server(|_| {});
    let before = PANICS.load(SeqCst);
    let mut c = handshaken(s.rtmp);
    // The first 128-byte chunk of a 300-byte audio message on chunk stream 4, then a whole
    // 50-byte video message on chunk stream 6, then the rest of the audio message (type 3).
    let mut input = chunk0(4, 8, 1, 300, &[0xaf; 128]);
    input.extend(chunk0(6, 9, 1, 50, &[0x17; 50]));
    input.push(0xc4);
    input.extend_from_slice(&[0xaf; 128]);
    input.push(0xc4);
    input.extend_from_slice(&[0xaf; 44]);
    // The chunk stream is in step afterwards: a connect is answered.
    input.extend(connect_live());
    c.write_all(&input).unwrap();
    assert!(
        answer_contains(&mut c, b"NetConnection.Connect.Success"),
        "the connect after interleaved chunk streams was not answered"
    );
    drop(c);
    assert_a_publisher_still_gets_in(&s, before);
}

/// An AMF0 command on chunk stream 3: name, transaction number, null, then string arguments.
fn command(stream_id: u32, name: &str, transaction: f64, args: &[&str]) -> Vec<u8> {
    let mut body = amf_string(name);
    body.extend(amf_number(transaction));
    body.push(5);
    for a in args {
        body.extend(amf_string(a));
    }
    chunk0(3, 20, stream_id, body.len(), &body)
}

/// A publisher's message still arriving (RTMP allows 16 MiB) is held by the server: it counts
/// against the live memory budget like the stream's rings, not as the 256 KiB receive slab.
#[test]
fn an_rtmp_publishers_partial_message_counts_against_the_memory_budget() {
    const DECLARED: usize = 12 << 20;
    const CHUNK: usize = 64 << 10;
    let s = server(|_| {});
    let mut c = handshaken(s.rtmp);
    let mut setup = connect_live();
    setup.extend(command(0, "createStream", 2.0, &[]));
    setup.extend(command(1, "publish", 3.0, &["big", "live"]));
    c.write_all(&setup).unwrap();
    assert!(answer_contains(&mut c, b"NetStream.Publish.Start"));
    let slab = wait_for(&s, "big", "live", |d| d["state"] == "live")["held_bytes"]
        .as_u64()
        .unwrap();
    // Set Chunk Size, then the first 2 MiB of a 12 MiB video message on chunk stream 6.
    let mut input = chunk0(2, 1, 0, 4, &(CHUNK as u32).to_be_bytes());
    input.extend(chunk0(6, 9, 1, DECLARED, &[0x27; CHUNK]));
    for _ in 1..32 {
        input.push(0xc6);
        input.extend_from_slice(&[0x27; CHUNK]);
    }
    // Then a whole message on another chunk stream (an AAC sequence header): the stream is
    // counted again.
    input.extend(chunk0(4, 8, 1, 4, &[0xaf, 0x00, 0x12, 0x10]));
    c.write_all(&input).unwrap();
    let d = wait_for(&s, "big", "the partial message counted", |d| {
        d["held_bytes"].as_u64() >= Some(DECLARED as u64)
    });
    assert!(slab < DECLARED as u64 / 4, "{slab} before, {d}");
}

/// A publisher that sends an audio sequence header of 1 MiB (an AAC configuration is a few
/// bytes; each keyframe of the outputs would hold a copy the ring does not count): its publish
/// ends at once, and says why.
#[test]
fn a_publisher_whose_sequence_header_is_far_larger_than_a_codec_configuration_is_refused() {
    const LEN: usize = 1 << 20;
    const CHUNK: usize = 64 << 10;
    let s = server(|_| {});
    let mut c = handshaken(s.rtmp);
    let mut setup = connect_live();
    setup.extend(command(0, "createStream", 2.0, &[]));
    setup.extend(command(1, "publish", 3.0, &["junk", "live"]));
    c.write_all(&setup).unwrap();
    assert!(answer_contains(&mut c, b"NetStream.Publish.Start"));
    let mut body = vec![0xaf, 0x00];
    body.resize(LEN, 0x11);
    let mut input = chunk0(2, 1, 0, 4, &(CHUNK as u32).to_be_bytes());
    input.extend(chunk0(4, 8, 1, LEN, &body[..CHUNK]));
    for part in body[CHUNK..].chunks(CHUNK) {
        input.push(0xc4);
        input.extend_from_slice(part);
    }
    c.write_all(&input).unwrap();
    assert!(
        closed_by_server(&mut c),
        "the publisher's connection was not ended"
    );
    let d = wait_for(&s, "junk", "ended", |d| d["state"] != "live");
    let why = d["end_reason"].as_str().unwrap_or_default();
    assert!(why.contains("sequence header of 1048576 bytes"), "{d}");
}

/// A radio stream over RTMP (AAC alone: no video sequence header ever): after 2 s its TS output
/// begins without video, so `.ts` viewers and HLS get it (they used to get nothing).
#[test]
fn an_rtmp_publisher_of_audio_alone_is_watchable_as_ts_and_hls() {
    let s = server(|_| {});
    let url = format!("rtmp://{}/live/radio", s.rtmp);
    let _p = ffmpeg_publish(&long_rtmp_mp4(), &["-re"], "flv", &["-vn"], &url);
    wait_for(&s, "radio", "an HLS segment", |d| {
        d["hls_segments"].as_u64() >= Some(1)
    });
    let v = Viewer::start(s.addr, "/live/radio.ts", Reading::Fast);
    v.wait_body("audio after the PAT and PMT", |b| {
        b.len() >= 3 * common::ts::PACKET
    });
    let (resp, ts, _) = v.stop();
    assert_eq!(resp.status, 200);
    common::ts::assert_starts_with_psi_and_keyframe(&ts);
    let playlist = String::from_utf8(s.get("/live/radio/index.m3u8", &[]).body).unwrap();
    assert!(playlist.contains("#EXTINF:"), "{playlist}");
}

/// After hostile input: a real ffmpeg publisher still publishes a whole stream, and nothing in
/// the process panicked since `before` (the count of panics when the test started).
#[track_caller]
fn assert_a_publisher_still_gets_in(s: &common::TestServer, before: usize) {
    let (ok, err) = rtmp_publisher(s, "/live/after", &rtmp_mp4(), &[]).wait(WAIT);
    assert!(ok, "ffmpeg: {err}");
    wait_for(s, "after", "ended", |d| d["state"] == "ended");
    assert_eq!(
        PANICS.load(SeqCst),
        before,
        "a panic while serving the input"
    );
}

#[test]
fn a_command_with_fewer_than_three_values_closes_the_connection_cleanly() {
    count_panics();
    let s = server(|_| {});
    let before = PANICS.load(SeqCst);
    let mut c = handshaken(s.rtmp);
    let mut body = amf_string("connect");
    body.extend(amf_number(1.0));
    c.write_all(&chunk0(3, 20, 0, body.len(), &body)).unwrap();
    let t = Instant::now();
    assert!(closed_by_server(&mut c), "the connection was not closed");
    assert!(t.elapsed() < WAIT, "closed only after {:?}", t.elapsed());
    drop(c);
    assert_a_publisher_still_gets_in(&s, before);
}

/// ffprobe's stream lines (`Stream #0:0: Video: h264 ...`) for `url`.
fn ffprobe_streams(url: &str) -> Vec<String> {
    common::require("ffprobe");
    let out = Command::new("ffprobe")
        .args(["-v", "info", "-hide_banner", url])
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.trim_start().starts_with("Stream #"))
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn an_rtmp_player_sees_exactly_one_video_and_one_audio_stream() {
    let s = server(|_| {});
    let _publisher = rtmp_publisher(&s, "/live/p", &long_rtmp_mp4(), &["-re"]);
    wait_for(&s, "p", "live with a keyframe", |d| {
        d["ring_units"].as_u64() > Some(2)
    });
    let streams = ffprobe_streams(&format!("rtmp://{}/live/p", s.rtmp));
    let video = streams.iter().filter(|l| l.contains("Video: h264")).count();
    let audio = streams.iter().filter(|l| l.contains("Audio: aac")).count();
    assert_eq!(
        (video, audio, streams.len()),
        (1, 1, 2),
        "one H.264 and one AAC stream and nothing else: {streams:#?}"
    );
}

#[test]
fn an_rtmp_publisher_is_held_to_the_ingest_bitrate() {
    // ffmpeg sends the fixture, looped, as fast as it can (no -re); the server reads 2 Mbit/s.
    let s = server(|c| c.max_ingest_bitrate = 2_000_000);
    let _publisher = rtmp_publisher(&s, "/live/fast", &long_rtmp_mp4(), &["-stream_loop", "-1"]);
    wait_for(&s, "fast", "publishing", |d| d["state"] == "live");
    let started = std::time::Instant::now();
    // The scenario is four seconds of publishing.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let doc = common::live::stream_doc(&s, "fast").unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let bytes = doc["bytes_in"].as_u64().unwrap() as f64;
    // The rate, plus its 2 s burst, plus what came before the publish was accepted.
    let allowed = 2_000_000.0 / 8.0 * (elapsed + 2.0) * 1.2 + 256.0 * 1024.0;
    assert!(
        bytes <= allowed,
        "{bytes} bytes in {elapsed:.1} s, allowed {allowed}"
    );
    assert!(
        bytes > 2_000_000.0 / 8.0 * elapsed * 0.5,
        "it still publishes: {bytes}"
    );
}

/// One message on chunk stream `csid` with a type 0 header carrying `ms` (under 2^24).
fn message(csid: u8, type_id: u8, ms: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![csid];
    b.extend_from_slice(&ms.to_be_bytes()[1..]);
    b.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    b.push(type_id);
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(payload);
    b
}

/// The tags of an FLV file: (type, ms, body).
fn flv_tags(flv: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
    let mut at = 9 + 4;
    let mut tags = Vec::new();
    while at + 11 <= flv.len() {
        let h = &flv[at..at + 11];
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ms = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        tags.push((h[0], ms, flv[at + 11..at + 11 + size].to_vec()));
        at += 11 + size + 4;
    }
    tags
}

/// A publisher whose audio came alone for 3 s (its TS began without video after 2 s) and
/// whose video came then: `.ts` viewers get the video too, from its next keyframe (it used to
/// stay out of the TS for as long as the stream lasted).
#[test]
fn an_rtmp_publishers_video_that_comes_after_its_audio_joins_the_ts() {
    let s = server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("faststart.flv");
    let faststart = common::demo_dir().join("faststart.mp4");
    common::ffmpeg(&[
        "-i",
        faststart.to_str().unwrap(),
        "-c",
        "copy",
        "-f",
        "flv",
        flv.to_str().unwrap(),
    ]);
    let tags = flv_tags(&std::fs::read(&flv).unwrap());
    let mut c = handshaken(s.rtmp);
    let mut setup = connect_live();
    setup.extend(command(0, "createStream", 2.0, &[]));
    setup.extend(command(1, "publish", 3.0, &["late", "live"]));
    c.write_all(&setup).unwrap();
    assert!(answer_contains(&mut c, b"NetStream.Publish.Start"));
    let mut input = chunk0(2, 1, 0, 4, &(1u32 << 20).to_be_bytes());
    // Its audio alone up to 3 s, then its video's sequence header and everything from 3 s on.
    let (video, audio) = (9, 8);
    for (kind, ms, body) in tags.iter().filter(|t| t.0 == audio && t.1 < 3000) {
        input.extend(message(4, *kind, *ms, body));
    }
    let config = tags.iter().find(|t| t.0 == video && t.2[1] == 0).unwrap();
    input.extend(message(6, video, 3000, &config.2));
    for (kind, ms, body) in tags
        .iter()
        .filter(|t| t.1 >= 3000 && (t.0 == audio || t.2[1] == 1))
    {
        input.extend(message(
            if *kind == video { 6 } else { 4 },
            *kind,
            *ms,
            body,
        ));
    }
    c.write_all(&input).unwrap();
    wait_for(&s, "late", "the video's keyframes in the TS", |d| {
        d["hls_segments"].as_u64() >= Some(1)
    });
    let v = Viewer::start(s.addr, "/live/late.ts", Reading::Fast);
    v.wait_body("a GOP", |b| b.len() >= 100 * common::ts::PACKET);
    let (resp, ts, _) = v.stop();
    assert_eq!(resp.status, 200);
    let file = dir.path().join("late.ts");
    std::fs::write(&file, &ts).unwrap();
    let streams = ffprobe_streams(file.to_str().unwrap());
    assert!(
        streams.iter().any(|l| l.contains("Video: h264")),
        "{streams:#?}"
    );
    assert!(
        streams.iter().any(|l| l.contains("Audio: aac")),
        "{streams:#?}"
    );
    // Its HLS says where the tracks changed.
    let playlist = || String::from_utf8(s.get("/live/late/index.m3u8", &[]).body).unwrap();
    wait_until("a discontinuity where the video joined", WAIT, || {
        playlist().contains("#EXT-X-DISCONTINUITY\n")
    });
}

/// A publisher whose keyframes are a few bytes each after a sequence header of 16 KiB of
/// parameter sets (repeated before every keyframe in the TS): each byte it sends would make
/// kilobytes of TS. The TS it makes is held to the ingest bitrate, so the server stops reading
/// it after its first read instead of muxing gigabytes.
#[test]
fn a_publisher_whose_tiny_keyframes_make_far_more_ts_is_held_to_that_output() {
    let s = server(|c| c.max_ingest_bitrate = 1_000_000);
    let mut c = handshaken(s.rtmp);
    let mut setup = connect_live();
    setup.extend(command(0, "createStream", 2.0, &[]));
    setup.extend(command(1, "publish", 3.0, &["amp", "live"]));
    c.write_all(&setup).unwrap();
    assert!(answer_contains(&mut c, b"NetStream.Publish.Start"));
    // An avcC: one SPS (baseline, 64x48) and 250 PPS of 64 bytes.
    let sps = [0x67, 0x42, 0xc0, 0x0a, 0xd9, 0x07, 0x3c, 0x04, 0x40];
    let mut config = vec![0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x0a, 0xff, 0xe1];
    config.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    config.extend_from_slice(&sps);
    config.push(250);
    for n in 0..250u8 {
        config.extend_from_slice(&64u16.to_be_bytes());
        config.push(0x68);
        config.extend(std::iter::repeat_n(n, 63));
    }
    let mut input = chunk0(2, 1, 0, 4, &(1u32 << 20).to_be_bytes());
    input.extend(message(6, 9, 0, &config));
    // Keyframes of one IDR byte, 1 ms apart: 600 KB.
    let frame = [0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65];
    for ms in 0..60_000u32 {
        input.extend(message(6, 9, ms, &frame));
    }
    let sent = input.len() as u64;
    let closer = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = c.write_all(&input);
        c
    });
    let bytes_in = |s: &common::TestServer| {
        wait_for(s, "amp", "live", |_| true)["bytes_in"]
            .as_u64()
            .unwrap()
    };
    wait_until("the first read", WAIT, || bytes_in(&s) > 0);
    // Nothing to wait for: what it is held to shows as what it does not do in this time. At
    // 1 Mbit/s with 2 s ahead, it would have read 375 KB by now, the TS of 37,000 keyframes.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let read = bytes_in(&s);
    assert!(read < 160 << 10, "{read} of {sent} bytes read");
    let _ = closer.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
}
