//! Every library title as HLS and DASH, from its [`Package`]: no sample byte is copied.
//!
//! | path under `/videos/{id}/` | what |
//! |---|---|
//! | `index.m3u8` | VOD media playlist (fMP4 segments with `EXT-X-MAP` for MP4 titles, TS for TS) |
//! | `hls/init.mp4`, `hls/{n}.m4s`, `hls/{n}.ts` | its init and media segments |
//! | `manifest.mpd` | static DASH manifest, an AdaptationSet per track (MP4 and WebM titles) |
//! | `dash/init-{track}.mp4`, `dash/{track}-{n}.m4s` | one track's init and media segments |
//! | `dash/init-{track}.webm`, `dash/{track}-{n}.webm` | the same of a WebM title |
//!
//! Each answer is an [`Entity`] (Range, preconditions, `HEAD`) made of a few `Bytes`: the written
//! head, then slices of the cached title. Their ETags derive from the title's, so they change
//! exactly when the title does.

use super::pieces::{Piece, Pieces};
use crate::body::Chunks;
use crate::entity::{self, Policy};
use crate::error::Error;
use crate::library::Title;
use crate::package::Package;
use bytes::Bytes;
use http::{Request, Response};
use media::clip::mp4;
use std::sync::Arc;

/// What under a title's path is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asset {
    Playlist,
    Manifest,
    HlsInit,
    HlsSegment(usize),
    /// A track's init segment; `true`: named `.webm`.
    DashInit(usize, bool),
    DashSegment(usize, usize, bool),
}

/// Splits `/videos/{id}/{asset}` (the part after `/videos/`, decoded) into the title id and the
/// asset, or `None` when the path names no asset.
pub(super) fn split(path: &str) -> Option<(&str, Asset)> {
    for (suffix, asset) in [
        ("/index.m3u8", Asset::Playlist),
        ("/manifest.mpd", Asset::Manifest),
        ("/hls/init.mp4", Asset::HlsInit),
    ] {
        if let Some(id) = path.strip_suffix(suffix).filter(|id| !id.is_empty()) {
            return Some((id, asset));
        }
    }
    let (head, file) = path.rsplit_once('/')?;
    let (id, dir) = head.rsplit_once('/').filter(|(id, _)| !id.is_empty())?;
    let number = |s: &str| {
        (!s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let asset = match dir {
        "hls" => {
            let n = file
                .strip_suffix(".m4s")
                .or_else(|| file.strip_suffix(".ts"))?;
            Asset::HlsSegment(number(n)?)
        }
        "dash" => {
            let (stem, webm) = match file.strip_suffix(".webm") {
                Some(stem) => (stem, true),
                None => (
                    file.strip_suffix(".mp4").or(file.strip_suffix(".m4s"))?,
                    false,
                ),
            };
            match stem.strip_prefix("init-") {
                Some(t) if webm || file.ends_with(".mp4") => Asset::DashInit(number(t)?, webm),
                Some(_) => return None,
                None if !webm && !file.ends_with(".m4s") => return None,
                None => {
                    let (t, n) = stem.split_once('-')?;
                    Asset::DashSegment(number(t)?, number(n)?, webm)
                }
            }
        }
        _ => return None,
    };
    Some((id, asset))
}

fn not_found(t: &Title, what: &str) -> Error {
    Error::NoSuchPart {
        id: t.id.clone(),
        what: what.to_string(),
    }
}

/// Answers `asset` of title `t`; `carry`: the query a playlist or manifest passes on to its
/// segment URIs (a signed link's, a token's).
pub(super) fn serve<B>(
    t: &Arc<Title>,
    asset: Asset,
    policy: &Policy,
    req: &Request<B>,
    carry: Option<&str>,
) -> Result<Response<Chunks>, Error> {
    let query = carry.map(|q| format!("?{q}")).unwrap_or_default();
    // A title in object storage: its movie is read from the store first (then asked again).
    if t.package_pending() {
        return Ok(super::pieces::pending(t));
    }
    let package = t.package().map_err(|reason| Error::NotPackaged {
        id: t.id.clone(),
        reason: reason.to_string(),
    })?;
    let slice = |r: std::ops::Range<u64>| Piece::of(t, r);
    // The title offset of the last part when it is the one slice of the title after a head.
    let (parts, content_type, tag, tail): (Vec<Piece>, &'static str, String, Option<u64>) =
        match (&**package, asset) {
            (p @ (Package::Movie { .. } | Package::Clips { .. }), Asset::Playlist) => {
                let (map, ext) = match p {
                    Package::Clips { init: None, .. } => (None, "ts"),
                    _ => (Some("hls/init.mp4"), "m4s"),
                };
                // A recording being written: an EVENT playlist, which grows (so its tag names
                // how many segments it lists). A recording's target (growing or finished) is
                // twice the segment target: a segment is the target and less than a GOP, so
                // the target holds for the segments to come (GOPs up to 6 s).
                let growing = t.is_growing();
                let min_target = if t.recording.is_some() {
                    2 * crate::package::TARGET.ticks.unsigned_abs()
                } else {
                    1
                };
                let independent = !matches!(
                    p,
                    Package::Clips {
                        independent: false,
                        ..
                    }
                );
                let uri = |n| format!("hls/{n}.{ext}{query}");
                let map = map.map(|m| format!("{m}{query}"));
                let text = media::package::hls::playlist(
                    p.segs(),
                    map.as_deref(),
                    growing,
                    min_target,
                    independent,
                    uri,
                );
                let tag = if growing {
                    format!("m3u8-{}", p.segs().len())
                } else {
                    "m3u8".into()
                };
                (
                    vec![Bytes::from(text).into()],
                    "application/vnd.apple.mpegurl",
                    tag,
                    None,
                )
            }
            (Package::Movie { movie, .. }, Asset::HlsInit) => {
                let init = mp4::init(movie, None).map_err(|e| not_found(t, &e.to_string()))?;
                (
                    vec![Bytes::from(init).into()],
                    "video/mp4",
                    "init".into(),
                    None,
                )
            }
            (Package::Clips { init: Some(i), .. }, Asset::HlsInit) => {
                (vec![i.clone().into()], "video/mp4", "init".into(), None)
            }
            (Package::Movie { movie, slots, .. }, Asset::HlsSegment(n)) => {
                let slot = slots
                    .get(n)
                    .ok_or_else(|| not_found(t, "no such segment"))?;
                let s = mp4::segment(movie, slot, n as u32 + 1, None)
                    .map_err(|e| not_found(t, &e.to_string()))?;
                let tail = (s.body.len() == 1).then(|| s.body[0].start);
                let mut parts: Vec<Piece> = vec![Bytes::from(s.head).into()];
                parts.extend(s.body.into_iter().map(slice));
                (parts, "video/mp4", format!("h{n}"), tail)
            }
            (Package::Clips { init, segments, .. }, Asset::HlsSegment(n)) => {
                let (head, body) = segments
                    .get(n)
                    .ok_or_else(|| not_found(t, "no such segment"))?;
                let kind = if init.is_some() {
                    "video/mp4"
                } else {
                    "video/mp2t"
                };
                (
                    vec![head.clone().into(), slice(body.clone())],
                    kind,
                    format!("h{n}"),
                    Some(body.start),
                )
            }
            (Package::Movie { movie, .. }, Asset::Manifest) => {
                let text = manifest(movie, package.segs(), carry.unwrap_or_default());
                (
                    vec![Bytes::from(text).into()],
                    "application/dash+xml",
                    "mpd".into(),
                    None,
                )
            }
            (Package::Movie { movie, .. }, Asset::DashInit(k, false)) => {
                let track = movie
                    .tracks
                    .get(k)
                    .ok_or_else(|| not_found(t, "no such track"))?;
                let init = mp4::init(movie, Some(k)).map_err(|e| not_found(t, &e.to_string()))?;
                (
                    vec![Bytes::from(init).into()],
                    mime(track),
                    format!("i{k}"),
                    None,
                )
            }
            (Package::Movie { movie, slots, .. }, Asset::DashSegment(k, n, false)) => {
                let track = movie
                    .tracks
                    .get(k)
                    .ok_or_else(|| not_found(t, "no such track"))?;
                let slot = slots
                    .get(n)
                    .ok_or_else(|| not_found(t, "no such segment"))?;
                let s = mp4::segment(movie, slot, n as u32 + 1, Some(k))
                    .map_err(|e| not_found(t, &e.to_string()))?;
                let tail = (s.body.len() == 1).then(|| s.body[0].start);
                let mut parts: Vec<Piece> = vec![Bytes::from(s.head).into()];
                parts.extend(s.body.into_iter().map(slice));
                (parts, mime(track), format!("d{k}-{n}"), tail)
            }
            (Package::Clusters { layout, .. }, Asset::Manifest) => (
                vec![Bytes::from(webm_manifest(
                    layout,
                    package.segs(),
                    carry.unwrap_or_default(),
                ))
                .into()],
                "application/dash+xml",
                "mpd".into(),
                None,
            ),
            (Package::Clusters { layout, .. }, Asset::DashInit(k, true)) => {
                let init = layout
                    .init(k)
                    .ok_or_else(|| not_found(t, "no such track"))?;
                (
                    vec![Bytes::copy_from_slice(init).into()],
                    webm_mime(&layout.tracks[k]),
                    format!("i{k}"),
                    None,
                )
            }
            (Package::Clusters { layout, .. }, Asset::DashSegment(k, n, true)) => {
                let spans = layout
                    .segment(k, n)
                    .ok_or_else(|| not_found(t, "no such track or segment"))?;
                let parts = spans
                    .into_iter()
                    .map(|s| match s {
                        media::webm::dash::Span::Written(w) => Bytes::from(w).into(),
                        media::webm::dash::Span::Title(r) => slice(r),
                    })
                    .collect();
                (
                    parts,
                    webm_mime(&layout.tracks[k]),
                    format!("d{k}-{n}"),
                    None,
                )
            }
            (Package::Clusters { .. }, Asset::Playlist | Asset::HlsInit | Asset::HlsSegment(_)) => {
                return Err(Error::NotPackaged {
                    id: t.id.clone(),
                    reason: "HLS carries MPEG-TS or fragmented MP4, not WebM; a WebM title is \
                         served as DASH: its manifest.mpd"
                        .into(),
                })
            }
            (
                Package::Clips { .. },
                Asset::Manifest | Asset::DashInit(..) | Asset::DashSegment(..),
            ) => {
                return Err(Error::NotPackaged {
                    id: t.id.clone(),
                    reason: "DASH is served for MP4 and WebM titles (their tracks can be served \
                         apart); use its index.m3u8"
                        .into(),
                })
            }
            (Package::Movie { .. } | Package::Clusters { .. }, Asset::DashInit(..))
            | (Package::Movie { .. } | Package::Clusters { .. }, Asset::DashSegment(..)) => {
                return Err(not_found(
                    t,
                    "no such part (an MP4 title's are .mp4 and .m4s, a WebM title's .webm)",
                ))
            }
            (Package::Clips { init: None, .. }, Asset::HlsInit) => {
                return Err(not_found(t, "an MPEG-TS playlist has no init segment"))
            }
        };
    let mut e = Pieces::of_title(t, parts, content_type, &tag, tail)
        .ok_or_else(|| not_found(t, "bad entity tag"))?;
    if t.is_growing() && asset == Asset::Playlist {
        e.no_cache();
    }
    Ok(entity::serve(&e, policy, req.method(), req.headers()))
}

fn mime(track: &mp4::MovieTrack) -> &'static str {
    if track.is_video() {
        "video/mp4"
    } else {
        "audio/mp4"
    }
}

fn webm_mime(track: &media::webm::dash::Track) -> &'static str {
    if track.video {
        "video/webm"
    } else {
        "audio/webm"
    }
}

/// Bits per second of `bytes` over the segments' span.
fn bandwidth(bytes: u64, segs: &[media::package::Seg]) -> u64 {
    let secs = end(segs).as_secs_f64().max(0.001);
    (bytes as f64 * 8.0 / secs) as u64
}

/// Where the last segment ends.
fn end(segs: &[media::package::Seg]) -> media::MediaTime {
    segs.last().map_or(media::MediaTime::ZERO, |s| {
        let scale = s.start.scale.max(s.duration.scale);
        media::MediaTime::new(
            s.start
                .rescale(scale)
                .saturating_add(s.duration.rescale(scale)),
            scale,
        )
    })
}

/// The DASH manifest of a WebM title: every track cut at the lead's segment times.
fn webm_manifest(
    layout: &media::webm::dash::Layout,
    segs: &[media::package::Seg],
    query: &str,
) -> String {
    let tracks: Vec<media::package::dash::Track<'_>> = layout
        .tracks
        .iter()
        .enumerate()
        .map(|(id, tr)| media::package::dash::Track {
            id,
            video: tr.video,
            codecs: tr.codecs,
            bandwidth: bandwidth(tr.bytes, segs),
            width: tr.width,
            height: tr.height,
            sample_rate: tr.sample_rate,
            webm: true,
        })
        .collect();
    media::package::dash::manifest(&tracks, segs, layout.timescale(), end(segs), query)
}

/// The DASH manifest of an MP4 title: every track cut at the lead's segment times.
fn manifest(movie: &mp4::Movie, segs: &[media::package::Seg], query: &str) -> String {
    let tracks: Vec<media::package::dash::Track<'_>> = movie
        .tracks
        .iter()
        .enumerate()
        .map(|(id, tr)| media::package::dash::Track {
            id,
            video: tr.is_video(),
            codecs: &tr.codecs,
            bandwidth: bandwidth(tr.bytes(), segs),
            width: tr.width,
            height: tr.height,
            sample_rate: tr.sample_rate,
            webm: false,
        })
        .collect();
    let timescale = movie.tracks[movie.lead].timescale;
    media::package::dash::manifest(&tracks, segs, timescale, end(segs), query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_paths_split_into_the_title_and_what_is_asked() {
        assert_eq!(
            split("a/b.mp4/index.m3u8"),
            Some(("a/b.mp4", Asset::Playlist))
        );
        assert_eq!(
            split("b.mp4/manifest.mpd"),
            Some(("b.mp4", Asset::Manifest))
        );
        assert_eq!(split("b.mp4/hls/init.mp4"), Some(("b.mp4", Asset::HlsInit)));
        assert_eq!(
            split("b.ts/hls/12.ts"),
            Some(("b.ts", Asset::HlsSegment(12)))
        );
        assert_eq!(
            split("b.mp4/hls/3.m4s"),
            Some(("b.mp4", Asset::HlsSegment(3)))
        );
        assert_eq!(
            split("b.mp4/dash/init-1.mp4"),
            Some(("b.mp4", Asset::DashInit(1, false)))
        );
        assert_eq!(
            split("x/b.mp4/dash/0-7.m4s"),
            Some(("x/b.mp4", Asset::DashSegment(0, 7, false)))
        );
        assert_eq!(
            split("v.webm/dash/init-1.webm"),
            Some(("v.webm", Asset::DashInit(1, true)))
        );
        assert_eq!(
            split("v.webm/dash/1-3.webm"),
            Some(("v.webm", Asset::DashSegment(1, 3, true)))
        );
        for bad in [
            "b.mp4",
            "b.mp4/hls/x.ts",
            "b.mp4/hls/-1.ts",
            "b.mp4/hls/99999999999.ts",
            "b.mp4/dash/0.m4s",
            "b.mp4/dash/init-0.m4s",
            "b.mp4/dash/0-1.mp4",
            "b.mp4/dash/init-x.webm",
            "b.mp4/other/1.ts",
            "/hls/1.ts",
        ] {
            assert_eq!(split(bad), None, "{bad}");
        }
    }
}
