//! Clips: the part of a title between two times, as a file of the title's own container that
//! players open, made of a small head written for the clip and one range of the title's bytes.
//!
//! | container | head | body |
//! |---|---|---|
//! | MP4 | `ftyp`, a new `moov` for the kept samples, the `mdat` header ([`mp4`]) | the kept samples' span of the original `mdat` |
//! | fragmented MP4 | `ftyp`, `moov` (without `mehd`, edit lists from the first fragment) ([`fragmented`]) | the fragments from the keyframe's |
//! | MPEG-TS | PAT, PMT ([`ts`]) | the packets from the keyframe's |
//! | WebM, Matroska | EBML header, Segment of unknown size, Info (Duration), Tracks, Cues ([`webm`]) | the Clusters from the keyframe's |
//!
//! Every clip starts at the video keyframe at or before its start and ends just before the first
//! keyframe at or after its end (the end snaps forward): whole GOPs, so every frame decodes. A
//! WebM clip is whole Clusters, which may reach further on either side. A title without video is
//! cut at its audio (see [`MediaInfo::keyframes`]).

pub mod fragmented;
pub mod mp4;
pub mod ts;
pub mod webm;

use crate::error::{Error, Result};
use crate::info::{Container, MediaInfo};
use crate::time::MediaTime;
use std::ops::Range;

/// A clip: the head to send, then the title's bytes `body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clip {
    /// Written for this clip (container headers and tables).
    pub head: Vec<u8>,
    /// The ranges of the title's bytes that follow the head, unchanged, in file order (one,
    /// but for an MP4 whose tracks are not interleaved).
    pub body: Vec<Range<u64>>,
    /// Where the clip starts and ends on the title's timeline (the keyframes that bound it).
    pub start: MediaTime,
    pub end: MediaTime,
}

impl Clip {
    /// The clip's length in bytes.
    pub fn len(&self) -> u64 {
        let body: u64 = self.body.iter().map(|r| r.end - r.start).sum();
        self.head.len() as u64 + body
    }

    /// Where its body begins in the title (its first range's start).
    pub fn body_start(&self) -> u64 {
        self.body.first().map_or(0, |r| r.start)
    }

    /// Where its body ends in the title (its last range's end).
    pub fn body_end(&self) -> u64 {
        self.body.last().map_or(0, |r| r.end)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The clip of a title (`data`, indexed as `info`) from the keyframe at or before `from` to the
/// keyframe at or after `to` (`None`: to the end of the title).
pub fn clip(data: &[u8], info: &MediaInfo, from: MediaTime, to: Option<MediaTime>) -> Result<Clip> {
    match info.container {
        Container::Mp4 if crate::mp4::is_fragmented(data) => {
            fragmented::fragmented(data, info, from, to)
        }
        Container::Mp4 => mp4::clip(&mp4::Movie::parse(data)?, from, to),
        Container::MpegTs => ts::clip(data, info, from, to),
        Container::WebM | Container::Matroska => webm::clip(data, info, from, to),
        Container::Unknown => Err(Error::malformed(
            "clip",
            "clips of titles of an unknown container are not made",
        )),
    }
}

#[cfg(test)]
mod audio_only_tests;
#[cfg(test)]
mod delay_tests;
#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts as mpegts;

    const TS: &[u8] = include_bytes!("../../../../demo/clip.ts");
    const FRAGMENTED: &[u8] = include_bytes!("../../../../demo/fragmented.mp4");
    const WEBM: &[u8] = include_bytes!("../../../../demo/vp9-opus.webm");

    fn secs(s: i64) -> MediaTime {
        MediaTime::new(s, 1)
    }

    use super::fixtures::file;

    fn keyframe_times(info: &MediaInfo) -> Vec<f64> {
        info.keyframes
            .iter()
            .map(|k| k.time.as_secs_f64())
            .collect()
    }

    #[test]
    fn an_mpegts_clip_is_pat_pmt_then_whole_packets_from_the_keyframe() {
        let info = crate::index(TS).unwrap();
        let c = clip(TS, &info, secs(3), Some(secs(5))).unwrap();
        assert_eq!((c.start, c.end), (secs(2), secs(6)));
        assert_eq!(c.head.len(), 2 * mpegts::PACKET);
        assert_eq!(c.body_start(), info.seek(secs(3)).unwrap().keyframe.offset);
        assert_eq!((c.body_end() - c.body_start()) % mpegts::PACKET as u64, 0);
        let f = file(TS, &c);
        let pat = mpegts::header(&f).unwrap();
        assert_eq!(pat.pid, 0);
        // The clip's next PAT continues the head's counter.
        let next = f[mpegts::PACKET..]
            .chunks_exact(mpegts::PACKET)
            .filter_map(mpegts::header)
            .find(|h| h.pid == 0);
        if let Some(n) = next {
            assert_eq!(n.cc, (pat.cc + 1) & 0x0f);
        }
        let clipped = crate::index(&f).unwrap();
        assert_eq!(keyframe_times(&clipped), [0.0, 2.0]);
        assert!((clipped.duration.as_secs_f64() - 4.0).abs() < 0.1);
    }

    #[test]
    fn an_mpegts_clip_of_a_title_whose_pmt_runs_over_packets_starts_with_all_of_it() {
        let whole = &TS[..TS.len() / mpegts::PACKET * mpegts::PACKET];
        let long = mpegts::psi::with_long_pmt(whole, 30);
        let info = crate::index(&long).unwrap();
        let c = clip(&long, &info, secs(3), Some(secs(5))).unwrap();
        // The PAT, then every packet of the PMT, their counters running on into the body's.
        let pmt_packets = long
            .chunks_exact(mpegts::PACKET)
            .filter_map(mpegts::header)
            .filter(|h| h.pid == 0x1000)
            .skip(1)
            .take_while(|h| !h.pusi)
            .count()
            + 1;
        assert!(pmt_packets >= 3);
        assert_eq!(c.head.len(), (1 + pmt_packets) * mpegts::PACKET);
        let f = file(&long, &c);
        let pmt: Vec<u8> = f
            .chunks_exact(mpegts::PACKET)
            .filter_map(mpegts::header)
            .filter(|h| h.pid == 0x1000)
            .take(6)
            .map(|h| h.cc)
            .collect();
        assert!(pmt.windows(2).all(|w| w[1] == (w[0] + 1) & 0x0f), "{pmt:?}");
        let clipped = crate::index(&f).unwrap();
        assert_eq!(keyframe_times(&clipped), [0.0, 2.0]);
        assert_eq!(clipped.video.map(|v| v.codec), info.video.map(|v| v.codec));
    }

    #[test]
    fn a_fragmented_mp4_clip_is_the_init_then_whole_fragments() {
        let info = crate::index(FRAGMENTED).unwrap();
        let c = clip(FRAGMENTED, &info, secs(3), Some(secs(5))).unwrap();
        assert_eq!((c.start, c.end), (secs(2), secs(6)));
        let f = file(FRAGMENTED, &c);
        assert_eq!(&FRAGMENTED[c.body_start() as usize + 4..][..4], b"moof");
        let clipped = crate::index(&f).unwrap();
        assert_eq!(clipped.keyframes.len(), 2);
        assert!(!f.windows(4).take(c.head.len()).any(|w| w == b"mehd"));
    }

    #[test]
    fn a_webm_clip_is_the_header_info_tracks_new_cues_then_whole_clusters() {
        let info = crate::index(WEBM).unwrap();
        let c = clip(WEBM, &info, secs(3), Some(MediaTime::new(35, 10))).unwrap();
        assert_eq!((c.start, c.end), (secs(2), secs(4)));
        assert_eq!(c.body_start(), info.seek(secs(3)).unwrap().keyframe.offset);
        let f = file(WEBM, &c);
        let clipped = crate::index(&f).unwrap();
        // One keyframe, at the start (an audio block a few ms earlier opens the cluster).
        let times = keyframe_times(&clipped);
        assert!(times.len() == 1 && times[0].abs() < 0.05, "{times:?}");
        assert!(
            (clipped.duration.as_secs_f64() - 2.0).abs() < 0.01,
            "{}",
            clipped.duration
        );
        // Its Cues name the kept clusters where they are in the clip.
        assert_eq!(clipped.keyframes[0].offset, c.head.len() as u64);
    }
}
