//! JSON documents of the library's HTTP API (the live wing's are in live/api.rs).

use crate::library::Title;
use media::timecode;
use media::{FrameRate, MediaTime, SeekPoint};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct TitleDoc {
    pub id: String,
    pub url: String,
    pub container: String,
    pub content_type: String,
    pub size: u64,
    pub cached_in_memory: bool,
    pub seekable: bool,
    /// Why the title has no seek index, when it has none.
    pub index_error: Option<String>,
    pub duration_seconds: Option<f64>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// A rational such as `30000/1001`.
    pub frame_rate: Option<String>,
    pub frames_per_second: Option<f64>,
    pub keyframes: Option<usize>,
    /// For a live recording: when its first frame was received (RFC 3339, UTC).
    #[serde(default)]
    pub recording_started: Option<String>,
    /// A recording still being written (its size, duration and keyframes grow).
    #[serde(default)]
    pub growing: bool,
    /// Where the bytes are, for a title in object storage (`s3://bucket/prefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The title as VOD HLS (MP4, fragmented MP4 and MPEG-TS titles; in object storage, MP4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hls_url: Option<String>,
    /// The title as DASH (MP4 and WebM titles; in object storage, MP4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dash_url: Option<String>,
}

impl TitleDoc {
    pub fn new(t: &Title) -> Self {
        let info = t.index.as_ref().ok();
        let video = info.and_then(|i| i.video.as_ref());
        let rate = video.and_then(|v| v.frame_rate);
        let url = format!("/videos/{}", crate::library::encode_id(&t.id));
        let (hls, dash) = packaged(t);
        TitleDoc {
            hls_url: hls.then(|| format!("{url}/index.m3u8")),
            dash_url: dash.then(|| format!("{url}/manifest.mpd")),
            id: t.id.clone(),
            url,
            container: t.container.name().into(),
            content_type: t.container.mime().into(),
            size: t.len(),
            cached_in_memory: t.cached,
            seekable: info.is_some_and(|i| !i.keyframes.is_empty()),
            index_error: t.index.as_ref().err().cloned(),
            duration_seconds: info.map(|i| i.duration.as_secs_f64()),
            video_codec: video.map(|v| v.codec.clone()),
            audio_codec: info.and_then(|i| i.audio.as_ref()).map(|a| a.codec.clone()),
            width: video.and_then(|v| v.width),
            height: video.and_then(|v| v.height),
            frame_rate: rate.map(|r| r.to_string()),
            frames_per_second: rate.map(FrameRate::as_f64),
            keyframes: info.map(|i| i.keyframes.len()),
            recording_started: t
                .recording
                .map(|r| ::live::llhls::wallclock::rfc3339_ms(r.started_ms)),
            growing: t.is_growing(),
            source: t.remote.as_ref().map(|o| o.source.url.clone()),
        }
    }
}

/// Whether `t` is served as VOD HLS and as DASH (`http::packaged`): what its container allows,
/// without building its packaging (which happens on the first request).
fn packaged(t: &Title) -> (bool, bool) {
    use media::Container;
    let seekable = t.index.as_ref().is_ok_and(|i| !i.keyframes.is_empty());
    if !seekable {
        return (false, false);
    }
    // In object storage only an unfragmented MP4's `moov` is read for packaging.
    let stored = t.remote.is_some();
    let info = t.index.as_ref().ok();
    // DASH of WebM: VP8 or VP9 video, or Opus or Vorbis alone (`media::webm::dash`).
    let webm_dash = match info.and_then(|i| i.video.as_ref()) {
        Some(v) => matches!(v.codec.as_str(), "vp8" | "vp9"),
        None => info
            .and_then(|i| i.audio.as_ref())
            .is_some_and(|a| matches!(a.codec.as_str(), "opus" | "vorbis")),
    };
    match t.container {
        Container::Mp4 if t.is_fragmented() => (!stored, false),
        Container::Mp4 => (true, true),
        Container::MpegTs => (!stored, false),
        Container::WebM => (false, !stored && webm_dash),
        _ => (false, false),
    }
}

/// A point in time, as seconds and (when the frame rate is known) as a timecode.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct TimeDoc {
    pub seconds: f64,
    pub timecode: Option<String>,
}

impl TimeDoc {
    pub fn new(t: MediaTime, rate: Option<FrameRate>) -> Self {
        TimeDoc {
            seconds: t.as_secs_f64(),
            timecode: rate.map(|r| timecode::format(t, r)),
        }
    }
}

/// The answer of `/api/videos/{id}/seek?t=...`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct SeekDoc {
    pub id: String,
    /// Where the keyframe at or before the requested time starts, in bytes from the start of the file.
    pub offset: u64,
    pub keyframe: TimeDoc,
    /// Position of that keyframe among the title's keyframes.
    pub keyframe_index: usize,
    pub requested: TimeDoc,
    pub frame_rate: Option<String>,
    pub size: u64,
}

impl SeekDoc {
    pub fn new(t: &Title, requested: MediaTime, p: SeekPoint, rate: Option<FrameRate>) -> Self {
        SeekDoc {
            id: t.id.clone(),
            offset: p.keyframe.offset,
            keyframe: TimeDoc::new(p.keyframe.time, rate),
            keyframe_index: p.index,
            requested: TimeDoc::new(requested, rate),
            frame_rate: rate.map(|r| r.to_string()),
            size: t.len(),
        }
    }
}
