//! A VOD media playlist (RFC 8216 §4.3): every segment listed, `EXT-X-ENDLIST`, the init segment
//! in `EXT-X-MAP` for fMP4; or, for a title still being written, an EVENT playlist (segments are
//! only ever added, and no `EXT-X-ENDLIST` yet).

use super::Seg;
use std::fmt::Write as _;

/// The playlist of `segments`, whose URIs `uri(n)` gives (relative to the playlist), with the
/// init segment `map` for fMP4 segments. `event`: the title is still being written. The target
/// duration is at least `min_target` (a playlist that grows may not change it; a recording's
/// keeps the same one when it is finished). `independent`: every segment begins with a
/// keyframe (`EXT-X-INDEPENDENT-SEGMENTS`).
pub fn playlist(
    segments: &[Seg],
    map: Option<&str>,
    event: bool,
    min_target: u64,
    independent: bool,
    uri: impl Fn(usize) -> String,
) -> String {
    let longest = segments
        .iter()
        .map(|s| s.duration.as_secs_f64())
        .fold(0.0, f64::max);
    // EXTINF rounded to the nearest integer may not exceed the target (§4.3.3.1).
    let target = (longest.round() as u64).max(min_target).max(1);
    let kind = if event { "EVENT" } else { "VOD" };
    let mut p = String::with_capacity(64 + 40 * segments.len());
    // Version 6 for EXT-X-MAP in a playlist without I-frames only (§7), 3 for fractional EXTINF.
    let version = if map.is_some() { 6 } else { 3 };
    let _ = write!(
        p,
        "#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-TARGETDURATION:{target}\n\
         #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:{kind}\n"
    );
    if independent {
        p.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    if let Some(m) = map {
        let _ = writeln!(p, "#EXT-X-MAP:URI=\"{m}\"");
    }
    for (n, s) in segments.iter().enumerate() {
        let _ = write!(p, "#EXTINF:{:.6},\n{}\n", s.duration.as_secs_f64(), uri(n));
    }
    if !event {
        p.push_str("#EXT-X-ENDLIST\n");
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MediaTime;

    #[test]
    fn a_vod_playlist_lists_every_segment_and_ends() {
        let segs = [
            Seg {
                start: MediaTime::ZERO,
                duration: MediaTime::new(6006, 1000),
            },
            Seg {
                start: MediaTime::new(6006, 1000),
                duration: MediaTime::new(2, 1),
            },
        ];
        let p = playlist(&segs, Some("hls/init.mp4"), false, 1, true, |n| {
            format!("hls/{n}.m4s")
        });
        assert_eq!(
            p,
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"hls/init.mp4\"\n#EXTINF:6.006000,\nhls/0.m4s\n\
             #EXTINF:2.000000,\nhls/1.m4s\n#EXT-X-ENDLIST\n"
        );
        let ts = playlist(&segs, None, false, 1, true, |n| format!("hls/{n}.ts"));
        assert!(ts.contains("#EXT-X-VERSION:3\n") && !ts.contains("EXT-X-MAP"));
        // Still being written: an EVENT playlist, not ended, its target at least the one given.
        let event = playlist(&segs, None, true, 12, true, |n| format!("hls/{n}.ts"));
        // Segments that do not all begin with a keyframe are not said to be independent.
        let not = playlist(&segs, Some("hls/init.mp4"), false, 1, false, |n| {
            format!("{n}")
        });
        assert!(!not.contains("INDEPENDENT"), "{not}");
        assert!(event.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"), "{event}");
        assert!(event.contains("#EXT-X-TARGETDURATION:12\n"), "{event}");
        assert!(!event.contains("ENDLIST"), "{event}");
    }
}
