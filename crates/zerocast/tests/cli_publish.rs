//! `zerocast publish` and `zerocast watch`: a file published in real time (MPEG-TS, or MP4
//! remuxed), in a loop that comes back after a network drop, to a server that ignores
//! `Expect: 100-continue`, ended by a signal, refused for a wrong key.

mod common;

use common::cutter::Cutter;
use common::fixtures::{live_ts, short_live_ts};
use common::live::{server, stream_doc, wait_for, Proc, Reading, Viewer, WAIT};
use common::ts::{assert_continuous, assert_starts_with_psi_and_keyframe, keyframes};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

fn zerocast() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zerocast"))
}

#[test]
fn the_cli_publishes_a_file_in_real_time_and_watches_it() {
    let s = server(|c| c.global_key = Some("cli".into()));
    let f = live_ts();
    let _publisher = Proc::spawn(zerocast().args([
        "publish",
        f.to_str().unwrap(),
        &s.url("/live/cli"),
        "--key",
        "cli",
        "--loop",
    ]));
    wait_for(&s, "cli", "live", |d| d["ring_units"].as_u64() > Some(3));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.ts");
    let w = zerocast()
        .args([
            "watch",
            &s.url("/live/cli.ts"),
            "-o",
            out.to_str().unwrap(),
            "--duration",
            "3",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&w.stdout);
    assert!(
        w.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&w.stderr)
    );
    assert!(text.contains("Mbit/s"), "{text}");
    let saved = std::fs::read(&out).unwrap();
    assert_starts_with_psi_and_keyframe(&saved);
    // One line per keyframe it saved: the one it starts at and one a second after it, for 3 s
    // (3 or 4 of them, depending on where in a GOP it joined; 5 when a stall on a loaded
    // machine made the publisher catch up within those 3 s).
    let printed = text.matches("keyframe\n").count();
    assert_eq!(printed, keyframes(&saved).len(), "{text}");
    assert!((3..=5).contains(&printed), "{text}");
    // Real-time pacing: a ~700 kbit/s stream, not the whole file at once. Over the session, not
    // the server's last second (a publisher catching up after a stall sends a burst).
    let d = stream_doc(&s, "cli").unwrap();
    let bits = d["bytes_in"].as_f64().unwrap() * 8.0;
    let rate = bits / d["session_uptime_seconds"].as_f64().unwrap();
    assert!(
        (350_000.0..1_400_000.0).contains(&rate),
        "publish rate {rate} bit/s"
    );
}

/// A network drop under `zerocast publish --loop`: it connects again and the stream goes on
/// (a second publisher session within the grace), where it used to exit with an error.
#[test]
fn the_cli_publisher_in_a_loop_comes_back_after_a_network_drop() {
    comes_back_after("drop", Duration::from_secs(15), Cutter::cut);
}

/// A drop the server does not see (a NAT that lost its state resets the publisher only): the
/// server holds the lost session until its publisher timeout and refuses the publisher that
/// comes back meanwhile (409); `publish --loop` tries again until it is let in.
#[test]
fn the_cli_publisher_in_a_loop_comes_back_after_a_drop_the_server_did_not_see() {
    comes_back_after("nat", Duration::from_secs(2), Cutter::sever);
}

/// `publish --loop` to stream `name` through a relay that `drop` cuts (the server's publisher
/// timeout `timeout`): the stream's second session comes, and its bytes go on.
fn comes_back_after(name: &str, timeout: Duration, drop: fn(&Cutter)) {
    let s = server(|c| {
        c.grace = Duration::from_secs(60);
        c.publisher_timeout = timeout;
    });
    let relay = Cutter::start(s.addr);
    let f = live_ts();
    let url = format!("http://{}/live/{name}", relay.addr);
    let _publisher = Proc::spawn(zerocast().args(["publish", f.to_str().unwrap(), &url, "--loop"]));
    wait_for(&s, name, "live", |d| d["ring_units"].as_u64() > Some(3));
    drop(&relay);
    let d = wait_for(&s, name, "the publisher back", |d| {
        d["sessions"] == 2 && d["state"] == "live"
    });
    // Paced on from where it was: about a second's worth more comes in.
    let bytes = d["bytes_in"].as_u64().unwrap();
    wait_for(&s, name, "more bytes", |d| {
        d["bytes_in"].as_u64() > Some(bytes + 100_000)
    });
}

/// A server (or a proxy before it) that does not answer `Expect: 100-continue` in time (a slow
/// `on_publish` hook) gets the body after a moment (RFC 9110 §10.1.1), not after the
/// publisher's 30 s wait for an answer; its `100 Continue`, come late, is passed over, and the
/// publish ends well.
#[test]
fn the_cli_publisher_sends_its_body_to_a_server_that_answers_the_expectation_late() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let f = short_live_ts();
    let url = format!("http://{addr}/live/quiet");
    let publisher = Proc::spawn(zerocast().args(["publish", f.to_str().unwrap(), &url]));
    let (mut c, _) = listener.accept().unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    let head_end = loop {
        let n = c.read(&mut b).unwrap();
        assert!(n > 0, "closed before its head");
        got.extend_from_slice(&b[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let asked = Instant::now();
    assert!(String::from_utf8_lossy(&got[..head_end])
        .to_ascii_lowercase()
        .contains("expect: 100-continue"));
    while got.len() == head_end {
        let n = c.read(&mut b).unwrap();
        assert!(n > 0, "closed before its body");
        got.extend_from_slice(&b[..n]);
    }
    let waited = asked.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "the body came after {waited:?}"
    );
    c.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
    while !got.ends_with(b"0\r\n\r\n") {
        let n = c.read(&mut b).unwrap();
        assert!(n > 0, "closed before the body's end");
        got.extend_from_slice(&b[..n]);
    }
    c.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
    let (ok, err) = publisher.wait(WAIT);
    assert!(ok, "{err}");
}

/// Ctrl-C on `zerocast publish` ends the body properly: the stream ends at once ("publisher
/// finished"), not after the server's grace for a publisher that dropped (60 s here).
#[test]
fn a_signal_to_the_cli_publisher_ends_the_stream_at_once() {
    let s = server(|c| c.grace = Duration::from_secs(60));
    let f = live_ts();
    let publisher =
        Proc::spawn(zerocast().args(["publish", f.to_str().unwrap(), &s.url("/live/sig")]));
    wait_for(&s, "sig", "live", |d| d["ring_units"].as_u64() > Some(3));
    // SAFETY: kill only sends a signal to the child this test started.
    unsafe { libc::kill(publisher.0.id() as i32, libc::SIGINT) };
    let d = wait_for(&s, "sig", "its end", |d| d["state"] == "ended");
    assert_eq!(d["end_reason"], "publisher finished");
    let (ok, err) = publisher.wait(WAIT);
    assert!(ok, "{err}");
}

#[test]
fn the_cli_publishes_an_mp4_remuxed_to_mpeg_ts() {
    let s = server(|c| c.global_key = Some("cli".into()));
    let mp4 = common::demo_dir().join("faststart.mp4");
    let _publisher = Proc::spawn(zerocast().args([
        "publish",
        mp4.to_str().unwrap(),
        &s.url("/live/mp4"),
        "--key",
        "cli",
    ]));
    let d = wait_for(&s, "mp4", "an MP4 publisher", |d| {
        d["ring_units"].as_u64() > Some(3) && d["video_codec"] == "h264"
    });
    assert_eq!(d["audio_codecs"], json!(["aac"]));
    let v = Viewer::start(s.addr, "/live/mp4.ts", Reading::Fast);
    v.wait_body("two keyframes", |ts| keyframes(ts).len() >= 2);
    let (_, ts, _) = v.stop();
    assert_starts_with_psi_and_keyframe(&ts);
    assert_continuous(&ts, "a remuxed MP4");
}

#[test]
fn the_cli_publish_with_a_wrong_key_fails_with_403() {
    let s = server(|c| c.global_key = Some("cli".into()));
    let bad = zerocast()
        .args([
            "publish",
            live_ts().to_str().unwrap(),
            &s.url("/live/x"),
            "--key",
            "no",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("403"), "{err}");
    assert!(err.contains("wrong stream key for 'x'"), "{err}");
    assert_eq!(stream_doc(&s, "x"), None);
}
