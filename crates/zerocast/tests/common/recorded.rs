//! What the recording tests share: a `zerocast` process on a library of its own with
//! `[[record]]` rules, ffmpeg publishing in real time, and the library's titles as JSON.

use super::fixtures::long_live_ts;
use super::live::{ffmpeg_publish, wait_until, Proc};
use super::spawned::Served;
use super::{request, Resp};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Long enough for a real-time publisher on a loaded machine.
pub const WAIT: Duration = Duration::from_secs(60);

/// A library directory with a config file holding `rules`, and the server on it.
pub fn serve(lib: &Path, rules: &str, limits: &[String]) -> Served {
    let config = lib.parent().unwrap().join("zerocast.toml");
    std::fs::write(&config, rules).unwrap();
    Served::start_under(
        limits,
        &[
            "--library",
            lib.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    )
}

pub fn get(s: &Served, path: &str, headers: &[(&str, &str)]) -> Resp {
    request(s.addr, "GET", path, headers)
}

/// ffmpeg publishes the 40 s fixture in real time to `/live/{name}`.
pub fn publish(s: &Served, name: &str) -> Proc {
    ffmpeg_publish(
        &long_live_ts(),
        &["-re"],
        "mpegts",
        &[],
        &format!("http://{}/live/{name}", s.addr),
    )
}

/// The titles whose ids start with `prefix`, as `/api/videos` lists them.
pub fn titles(s: &Served, prefix: &str) -> Vec<Value> {
    let r = get(s, "/api/videos", &[]);
    assert_eq!(r.status, 200);
    let all: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
    all.into_iter()
        .filter(|t| t["id"].as_str().unwrap().starts_with(prefix))
        .collect()
}

/// Waits for a title under `prefix` that satisfies `ok`, and returns it.
#[track_caller]
pub fn wait_title(s: &Served, prefix: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let mut found = None;
    wait_until(what, WAIT, || {
        found = titles(s, prefix).into_iter().find(&ok);
        found.is_some()
    });
    found.unwrap()
}

/// The finished recordings of `stream` on disk, oldest first.
pub fn finished_files(lib: &Path, stream: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(lib.join("recordings").join(stream))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p: &std::path::PathBuf| !p.file_name().unwrap().to_string_lossy().starts_with('.'));
    v.sort();
    v
}

/// The RTMP address a spawned server listens on, from its log.
pub fn rtmp_addr(s: &Served) -> String {
    let line = s
        .log_lines("RTMP ingest: rtmp://")
        .pop()
        .expect("an RTMP listener");
    let from = line.find("rtmp://").unwrap() + "rtmp://".len();
    line[from..].split('/').next().unwrap().to_string()
}

/// A server that records `name` as fMP4 with a DVR window of 60 s in its live playlists (LL-HLS
/// and LL-DASH segments of 1 s, 3 listed; the ring holds 2 s), ffmpeg publishing to it in real
/// time, 14 s in: what lies before the last 7 s is only in the recording.
pub struct DvrStream {
    pub server: Served,
    _publisher: Proc,
    _dir: tempfile::TempDir,
}

pub fn dvr_stream(name: &str) -> DvrStream {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    let config = format!(
        "[live]\nwindow_secs = 2\nll_hls_segment_secs = 1\nll_hls_window = 3\n\
         hls_dvr_secs = 60\n\n[[record]]\nstreams = \"{name}\"\nformat = \"fmp4\"\n\
         segment_secs = 4\n"
    );
    let server = serve(&lib, &config, &[]);
    let publisher = publish(&server, name);
    wait_until("14 s of stream", WAIT, || {
        let r = get(&server, &format!("/api/streams/{name}"), &[]);
        let d: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        d["session_uptime_seconds"].as_f64() >= Some(14.0)
    });
    DvrStream {
        server,
        _publisher: publisher,
        _dir: dir,
    }
}
