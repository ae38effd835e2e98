//! What the DVR tests share: an in-process server that records a stream (TS or fMP4) into a
//! library of its own, with ffmpeg publishing to it in real time.

use super::fixtures::long_live_ts;
use super::live::{ffmpeg_publish, wait_for_within, Proc, WAIT};
use super::TestServer;
use std::time::Duration;

/// A server whose ring holds 2 s and that records `name` (as `format`, a file every `segment`
/// seconds), with ffmpeg publishing the 40 s fixture to it in real time, 12 s in.
pub struct Recorded {
    pub server: TestServer,
    _publisher: Proc,
    _library: tempfile::TempDir,
}

pub fn recorded(name: &str, format: server::record::Format, segment: u64) -> Recorded {
    recorded_with(name, format, segment, |_| {})
}

/// [`recorded`], with more settings.
pub fn recorded_with(
    name: &str,
    format: server::record::Format,
    segment: u64,
    more: impl FnOnce(&mut server::Config),
) -> Recorded {
    let (server, library) = recording_server(name, format, segment, more);
    let publisher = ffmpeg_publish(
        &long_live_ts(),
        &["-re"],
        "mpegts",
        &[],
        &server.url(&format!("/live/{name}")),
    );
    wait_for_within(&server, name, "12 s of stream", WAIT, |d| {
        d["session_uptime_seconds"].as_f64() >= Some(12.0)
    });
    Recorded {
        server,
        _publisher: publisher,
        _library: library,
    }
}

/// A server whose ring holds 2 s and that records `name` into a library of its own.
pub fn recording_server(
    name: &str,
    format: server::record::Format,
    segment: u64,
    more: impl FnOnce(&mut server::Config),
) -> (TestServer, tempfile::TempDir) {
    let library = tempfile::tempdir().unwrap();
    let mut config = server::Config::default();
    config.live.ring.max_age = Duration::from_secs(2);
    more(&mut config);
    config.record = vec![server::record::Rule {
        streams: name.into(),
        dir: library.path().join("rec"),
        id_prefix: "rec".into(),
        format,
        rotation: server::record::Rotation {
            segment: Duration::from_secs(segment),
            max_bytes: 1 << 30,
        },
        keep: server::record::Keep::default(),
        upload: None,
    }];
    let server = TestServer::start_with(config, server::Library::from_static(&[], super::now()));
    (server, library)
}
