//! A static DASH manifest (ISO/IEC 23009-1, live profile's `SegmentTemplate`): one
//! AdaptationSet per track (players such as dash.js take no multiplexed representations), every
//! segment in a `SegmentTimeline` with `$Number$` URIs.

use super::Seg;
use crate::time::MediaTime;
use std::fmt::Write as _;

/// One track as the manifest describes it.
#[derive(Debug, Clone)]
pub struct Track<'a> {
    /// Its number in the segment URIs (`dash/init-{id}.mp4`, `dash/{id}-{n}.m4s`).
    pub id: usize,
    pub video: bool,
    /// RFC 6381.
    pub codecs: &'a str,
    /// Bits per second, averaged over the title.
    pub bandwidth: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub sample_rate: Option<u32>,
    /// WebM segments (`video/webm`, `init-{id}.webm`, `{id}-{n}.webm`) instead of CMAF.
    pub webm: bool,
}

/// ISO 8601 duration in seconds with milliseconds (`PT6.006S`).
fn iso(t: MediaTime) -> String {
    format!("PT{:.3}S", t.as_secs_f64().max(0.0))
}

/// The manifest of `tracks`, all cut into `segments` (times at `timescale`). WebM tracks are
/// described as ffmpeg's WebM DASH muxer describes live WebM (the same profile and
/// `SegmentTemplate`; `video/webm` initialization and media segments). `query`, when not empty,
/// goes after every segment URI (a token or signed link the manifest was fetched with).
pub fn manifest(
    tracks: &[Track<'_>],
    segments: &[Seg],
    timescale: u32,
    duration: MediaTime,
    query: &str,
) -> String {
    let query = match query {
        "" => String::new(),
        q => format!(
            "?{}",
            q.replace('&', "&amp;")
                .replace('"', "&quot;")
                .replace('<', "&lt;")
        ),
    };
    let longest = segments
        .iter()
        .map(|s| s.duration)
        .max()
        .unwrap_or(MediaTime::ZERO);
    let mut m = String::with_capacity(1024 + 32 * segments.len());
    let _ = write!(
        m,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" type=\"static\" \
         mediaPresentationDuration=\"{}\" minBufferTime=\"{}\">\n<Period id=\"0\" start=\"PT0S\">\n",
        iso(duration),
        iso(longest)
    );
    for t in tracks {
        let (kind, attrs) = if t.video {
            let mut a = String::new();
            if let (Some(w), Some(h)) = (t.width, t.height) {
                let _ = write!(a, " width=\"{w}\" height=\"{h}\"");
            }
            ("video", a)
        } else {
            let a = t
                .sample_rate
                .map(|r| format!(" audioSamplingRate=\"{r}\""))
                .unwrap_or_default();
            ("audio", a)
        };
        let (sub, init, media) = if t.webm {
            ("webm", "webm", "webm")
        } else {
            ("mp4", "mp4", "m4s")
        };
        let _ = write!(
            m,
            "<AdaptationSet id=\"{id}\" contentType=\"{kind}\" mimeType=\"{kind}/{sub}\" \
             segmentAlignment=\"true\" startWithSAP=\"1\">\n\
             <Representation id=\"{id}\" codecs=\"{codecs}\" bandwidth=\"{bw}\"{attrs}>\n\
             <SegmentTemplate timescale=\"{timescale}\" \
             initialization=\"dash/init-{id}.{init}{query}\" \
             media=\"dash/{id}-$Number$.{media}{query}\" startNumber=\"0\">\n<SegmentTimeline>\n",
            id = t.id,
            codecs = t.codecs,
            bw = t.bandwidth.max(1),
        );
        timeline(&mut m, segments, timescale);
        m.push_str("</SegmentTimeline>\n</SegmentTemplate>\n</Representation>\n</AdaptationSet>\n");
    }
    m.push_str("</Period>\n</MPD>\n");
    m
}

/// `<S t d r>` runs: a repeat count for consecutive segments of the same duration.
fn timeline(m: &mut String, segments: &[Seg], timescale: u32) {
    let mut i = 0;
    while i < segments.len() {
        let t = segments[i].start.rescale(timescale);
        let d = segments[i].duration.rescale(timescale);
        let mut r = 0;
        while segments
            .get(i + r + 1)
            .is_some_and(|s| s.duration.rescale(timescale) == d)
        {
            r += 1;
        }
        if r > 0 {
            let _ = writeln!(m, "<S t=\"{t}\" d=\"{d}\" r=\"{r}\"/>");
        } else {
            let _ = writeln!(m, "<S t=\"{t}\" d=\"{d}\"/>");
        }
        i += r + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_static_manifest_has_a_set_per_track_and_a_timeline_of_every_segment() {
        let segs: Vec<Seg> = [(0, 2), (2, 2), (4, 2), (6, 1)]
            .iter()
            .map(|&(s, d)| Seg {
                start: MediaTime::new(s, 1),
                duration: MediaTime::new(d, 1),
            })
            .collect();
        let tracks = [
            Track {
                id: 0,
                video: true,
                codecs: "avc1.64000d",
                bandwidth: 200_000,
                width: Some(320),
                height: Some(180),
                sample_rate: None,
                webm: false,
            },
            Track {
                id: 1,
                video: false,
                codecs: "mp4a.40.2",
                bandwidth: 48_000,
                width: None,
                height: None,
                sample_rate: Some(48_000),
                webm: false,
            },
        ];
        let m = manifest(&tracks, &segs, 90_000, MediaTime::new(7, 1), "");
        assert!(m.contains("type=\"static\" mediaPresentationDuration=\"PT7.000S\""));
        assert!(m.contains("codecs=\"avc1.64000d\" bandwidth=\"200000\" width=\"320\""));
        assert!(m.contains("mimeType=\"audio/mp4\""));
        assert!(m.contains("audioSamplingRate=\"48000\""));
        assert_eq!(
            m.matches("<S t=\"0\" d=\"180000\" r=\"2\"/>\n<S t=\"540000\" d=\"90000\"/>")
                .count(),
            2
        );
        assert!(m.contains("media=\"dash/1-$Number$.m4s\" startNumber=\"0\""));
        // A query the manifest was fetched with goes on to every segment URI, escaped.
        let m = manifest(
            &tracks,
            &segs,
            90_000,
            MediaTime::new(7, 1),
            "jwt=a.b&sig=c",
        );
        assert!(m.contains("initialization=\"dash/init-0.mp4?jwt=a.b&amp;sig=c\""));
        assert!(m.contains("media=\"dash/1-$Number$.m4s?jwt=a.b&amp;sig=c\""));
    }
}
