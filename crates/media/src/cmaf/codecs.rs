//! The `codecs` parameter (RFC 6381) of a track, as a DASH `Representation@codecs`, an HLS
//! `CODECS` attribute or an MSE `addSourceBuffer` type names it: read from the decoder
//! configuration the init segment carries.

use super::init::{AudioCodec, AudioTrack, VideoCodec, VideoTrack};
use std::fmt::Write as _;

impl VideoTrack {
    /// `avc1.PPCCLL` (profile, constraint flags, level of the `avcC`), or
    /// `hvc1.{space}{profile}.{compatibility}.{tier}{level}.{constraints}` (ISO/IEC 14496-15
    /// Annex E) from the `hvcC`. A record too short for them gives the bare sample entry name.
    pub fn codecs(&self) -> String {
        match &self.codec {
            VideoCodec::Avc { avcc } => avc(avcc),
            VideoCodec::Hevc { hvcc } => hevc(hvcc).unwrap_or_else(|| "hvc1".into()),
        }
    }
}

/// `avc1.PPCCLL` from an `avcC`.
pub(crate) fn avc(avcc: &[u8]) -> String {
    match avcc.get(1..4) {
        Some(p) => format!("avc1.{:02x}{:02x}{:02x}", p[0], p[1], p[2]),
        None => "avc1".into(),
    }
}

pub(crate) fn hevc(hvcc: &[u8]) -> Option<String> {
    let head = hvcc.get(..13)?;
    let space = ["", "A", "B", "C"][usize::from(head[1] >> 6)];
    let tier = if head[1] & 0x20 != 0 { 'H' } else { 'L' };
    let profile = head[1] & 0x1f;
    // The 32 compatibility flags in reverse bit order, in hex without leading zeros.
    let compat = u32::from_be_bytes([head[2], head[3], head[4], head[5]]).reverse_bits();
    let mut s = format!("hvc1.{space}{profile}.{compat:X}.{tier}{}", head[12]);
    // The six constraint bytes, trailing zero bytes left out.
    let constraints = &head[6..12];
    let used = constraints
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i + 1);
    for b in &constraints[..used] {
        let _ = write!(s, ".{b:X}");
    }
    Some(s)
}

impl AudioTrack {
    /// `mp4a.40.{object type}` from the AudioSpecificConfig, or `opus`.
    pub fn codecs(&self) -> String {
        match &self.codec {
            AudioCodec::Aac { asc } => aac(asc.first().map_or(2, |b| b >> 3)),
            AudioCodec::Opus { .. } => "opus".into(),
        }
    }
}

/// `mp4a.40.{object type}` (AAC-LC for an object type out of range).
pub(crate) fn aac(object_type: u8) -> String {
    match object_type {
        aot @ 1..=30 => format!("mp4a.40.{aot}"),
        _ => "mp4a.40.2".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(codec: VideoCodec) -> VideoTrack {
        VideoTrack {
            codec,
            width: 640,
            height: 360,
            timescale: 1000,
        }
    }

    #[test]
    fn h264_names_profile_constraints_and_level_of_its_avcc() {
        let avcc = vec![1, 0x64, 0x00, 0x1f, 0xff];
        assert_eq!(video(VideoCodec::Avc { avcc }).codecs(), "avc1.64001f");
        assert_eq!(video(VideoCodec::Avc { avcc: vec![1] }).codecs(), "avc1");
    }

    #[test]
    fn h265_main_profile_level_3_1_reads_as_browsers_expect() {
        // Main profile (1), compatibility flags 0x60000000 (profiles 1 and 2), main tier,
        // level 93 (3.1), progressive and frame-only constraint flags (0xb0).
        let mut hvcc = vec![1, 0x01, 0x60, 0, 0, 0, 0xb0, 0, 0, 0, 0, 0, 93];
        hvcc.extend_from_slice(&[0xf0, 0]);
        assert_eq!(video(VideoCodec::Hevc { hvcc }).codecs(), "hvc1.1.6.L93.B0");
        assert_eq!(
            video(VideoCodec::Hevc { hvcc: vec![1, 2] }).codecs(),
            "hvc1"
        );
    }

    #[test]
    fn audio_names_its_aac_object_type_or_opus() {
        let aac = |asc: Vec<u8>| AudioTrack {
            codec: AudioCodec::Aac { asc },
            channels: 2,
            sample_rate: 44_100,
            timescale: 1000,
        };
        assert_eq!(aac(vec![0x12, 0x10]).codecs(), "mp4a.40.2");
        assert_eq!(aac(vec![0x2b, 0x92]).codecs(), "mp4a.40.5");
        let opus = AudioTrack {
            codec: AudioCodec::Opus { pre_skip: 312 },
            channels: 2,
            sample_rate: 48_000,
            timescale: 1000,
        };
        assert_eq!(opus.codecs(), "opus");
    }
}
