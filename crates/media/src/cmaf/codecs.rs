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

/// `av01.P.LLT.DD` (AV1 Codec ISO Media File Format Binding §5): profile, level and tier,
/// bit depth, from an `av1C` body. `None` for a record too short or of another version.
pub(crate) fn av1(av1c: &[u8]) -> Option<String> {
    let (&marker, &a, &b) = (av1c.first()?, av1c.get(1)?, av1c.get(2)?);
    if marker != 0x81 {
        return None;
    }
    let profile = a >> 5;
    let level = a & 0x1f;
    let tier = if b & 0x80 != 0 { 'H' } else { 'M' };
    // high_bitdepth, then twelve_bit (which only profile 2 uses).
    let depth = match (b & 0x40 != 0, b & 0x20 != 0) {
        (false, _) => 8,
        (true, true) if profile == 2 => 12,
        (true, _) => 10,
    };
    Some(format!("av01.{profile}.{level:02}{tier}.{depth:02}"))
}

/// `vp09.PP.LL.DD` (VP Codec ISO Media File Format Binding): profile, level and bit depth,
/// from a `vpcC` body (version and flags first). `None` for a record too short.
pub(crate) fn vp9(vpcc: &[u8]) -> Option<String> {
    let (&profile, &level, &depth) = (vpcc.get(4)?, vpcc.get(5)?, vpcc.get(6)?);
    Some(format!("vp09.{profile:02}.{level:02}.{:02}", depth >> 4))
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
    fn av1_and_vp9_name_profile_level_and_bit_depth_of_their_records() {
        // Main profile, level 8 (4.0), main tier, 8 bits; then level 13, high tier, 10 bits.
        assert_eq!(
            av1(&[0x81, 0x08, 0x0c, 0]).as_deref(),
            Some("av01.0.08M.08")
        );
        assert_eq!(av1(&[0x81, 0x0d, 0xcc]).as_deref(), Some("av01.0.13H.10"));
        // Professional profile, twelve bits.
        assert_eq!(av1(&[0x81, 0x48, 0x60]).as_deref(), Some("av01.2.08M.12"));
        assert_eq!(av1(&[0x81, 0x08]), None);
        assert_eq!(av1(&[0x01, 0x08, 0x0c]), None);
        // vpcC version 1: profile 0, level 3.1 (31), 8 bits, 4:2:0.
        let vpcc = [1, 0, 0, 0, 0, 31, 0x82, 1, 1, 1, 0, 0];
        assert_eq!(vp9(&vpcc).as_deref(), Some("vp09.00.31.08"));
        assert_eq!(
            vp9(&[1, 0, 0, 0, 2, 10, 0xa2]).as_deref(),
            Some("vp09.02.10.10")
        );
        assert_eq!(vp9(&vpcc[..6]), None);
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
