//! H.264 and H.265 NAL units in Annex B byte streams (as carried in MPEG-TS PES payloads).
//!
//! Used where a container does not flag keyframes itself: a PES whose payload holds an H.264 IDR
//! slice (type 5) or an H.265 IRAP picture (types 16-23) is a random access point. Also reads the
//! picture size from an H.264 SPS.

use crate::error::Result;
use crate::read::BitReader;

/// Video codecs whose NAL units we understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    H265,
}

/// Iterates over NAL unit payloads (without start codes) of an Annex B byte stream.
pub fn annex_b(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let start = find_start_code(data)?;
        let body = &data[start..];
        let end = find_start_code(body).map(|e| e - 3).unwrap_or(body.len());
        // A 4-byte start code leaves one trailing zero on the previous unit; trim it.
        let mut unit = &body[..end];
        while let [rest @ .., 0] = unit {
            unit = rest;
        }
        data = &body[end..];
        Some(unit)
    })
}

/// Index just past the next `00 00 01`.
fn find_start_code(data: &[u8]) -> Option<usize> {
    data.windows(3).position(|w| w == [0, 0, 1]).map(|p| p + 3)
}

/// What a scan of the start of an access unit found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// An IDR (H.264) or IRAP (H.265) picture starts here.
    pub random_access: bool,
    /// A picture slice of any kind was seen (so the scan saw the whole header part).
    pub saw_slice: bool,
}

/// Looks through the NAL units at the start of an access unit for a random access picture. Stops at
/// the first slice, since what follows it is picture data.
pub fn scan(codec: Codec, data: &[u8]) -> Scan {
    let mut out = Scan::default();
    for unit in annex_b(data) {
        let Some(&first) = unit.first() else { continue };
        match codec {
            Codec::H264 => match first & 0x1f {
                5 => {
                    out.random_access = true;
                    out.saw_slice = true;
                    break;
                }
                1..=4 => {
                    out.saw_slice = true;
                    break;
                }
                _ => {}
            },
            Codec::H265 => match (first >> 1) & 0x3f {
                16..=23 => {
                    out.random_access = true;
                    out.saw_slice = true;
                    break;
                }
                0..=9 => {
                    out.saw_slice = true;
                    break;
                }
                _ => {}
            },
        }
    }
    out
}

/// Finds the first H.264 SPS in an Annex B stream.
pub fn find_h264_sps(data: &[u8]) -> Option<&[u8]> {
    annex_b(data).find(|u| u.first().map(|b| b & 0x1f) == Some(7))
}

/// Removes emulation prevention bytes (`00 00 03` -> `00 00`). Copies a header-sized unit.
fn rbsp(unit: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(unit.len());
    let mut zeros = 0;
    for &b in unit {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Picture width and height from an H.264 sequence parameter set (NAL unit including its header
/// byte), after cropping.
pub fn h264_sps_dimensions(sps: &[u8]) -> Result<(u32, u32)> {
    let data = rbsp(sps.get(1..).unwrap_or_default());
    let mut r = BitReader::new(&data);
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format = r.ue()?;
        if chroma_format == 3 {
            r.bit()?; // separate_colour_plane_flag
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            let lists = if chroma_format == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            // delta_scale is -128..=127 in a valid SPS; a hostile one is any
                            // i32, so the sum is taken wide (ITU-T H.264 §7.3.2.1.1.1).
                            next = (i64::from(last) + i64::from(r.se()?)).rem_euclid(256) as i32;
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            let cycle = r.ue()?.min(255);
            for _ in 0..cycle {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = u64::from(r.bit()?);
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut cl, mut cr, mut ct, mut cb) = (0u64, 0u64, 0u64, 0u64);
    if r.bit()? == 1 {
        cl = u64::from(r.ue()?);
        cr = u64::from(r.ue()?);
        ct = u64::from(r.ue()?);
        cb = u64::from(r.ue()?);
    }
    let (sub_w, sub_h) = match chroma_format {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let crop_x = if chroma_format == 0 { 1 } else { sub_w };
    let crop_y = (2 - frame_mbs_only) * if chroma_format == 0 { 1 } else { sub_h };
    let width = (width_mbs * 16).saturating_sub(crop_x * (cl + cr));
    let height = ((2 - frame_mbs_only) * height_units * 16).saturating_sub(crop_y * (ct + cb));
    Ok((
        width.min(u64::from(u32::MAX)) as u32,
        height.min(u64::from(u32::MAX)) as u32,
    ))
}

/// An HEVCDecoderConfigurationRecord (`hvcC`, ISO/IEC 14496-15 §8.3.3.1) for one VPS, SPS and
/// PPS (NAL units with their two-byte headers), with 4-byte NAL unit lengths: the profile, tier
/// and level fields copied from the SPS's `profile_tier_level`, the chroma format, bit depths
/// and temporal layers read from the SPS. `None` for an SPS that cannot be read that far, or a
/// parameter set longer than 64 KiB.
pub fn hevc_config(vps: &[u8], sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    let body = rbsp(sps.get(2..)?);
    let info = h265_sps(sps).ok()?;
    // sps_video_parameter_set_id, max_sub_layers_minus1, temporal_id_nesting: one byte; then the
    // general profile_tier_level: 12 bytes.
    let ptl = body.get(1..13)?;
    let mut c = Vec::with_capacity(32 + vps.len() + sps.len() + pps.len());
    c.push(1); // configurationVersion
    c.extend_from_slice(ptl);
    let minus8 = |d: u8| d.saturating_sub(8) & 0x07;
    c.extend_from_slice(&[
        0xf0,
        0x00, // min_spatial_segmentation_idc: 0
        0xfc, // parallelismType: unknown
        0xfc | info.chroma_format,
        0xf8 | minus8(info.bit_depth_luma),
        0xf8 | minus8(info.bit_depth_chroma),
        0x00,
        0x00, // avgFrameRate: unknown
        // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3.
        ((info.max_sub_layers & 0x07) << 3) | (u8::from(info.temporal_id_nested) << 2) | 3,
        3, // numOfArrays
    ]);
    for (kind, unit) in [(32u8, vps), (33, sps), (34, pps)] {
        let len = u16::try_from(unit.len()).ok()?;
        c.push(0x80 | kind); // array_completeness, NAL unit type
        c.extend_from_slice(&1u16.to_be_bytes());
        c.extend_from_slice(&len.to_be_bytes());
        c.extend_from_slice(unit);
    }
    Some(c)
}

/// Picture width and height from an H.265 sequence parameter set (NAL unit including its
/// two-byte header), after the conformance window (ITU-T H.265 §7.3.2.2).
pub fn h265_sps_dimensions(sps: &[u8]) -> Result<(u32, u32)> {
    h265_sps(sps).map(|s| (s.width, s.height))
}

/// What an H.265 sequence parameter set says that an `hvcC` repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H265Sps {
    /// After the conformance window.
    pub width: u32,
    pub height: u32,
    pub max_sub_layers: u8,
    pub temporal_id_nested: bool,
    pub chroma_format: u8,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
}

/// Reads an H.265 sequence parameter set (NAL unit including its two-byte header) up to its bit
/// depths (ITU-T H.265 §7.3.2.2).
pub fn h265_sps(sps: &[u8]) -> Result<H265Sps> {
    let data = rbsp(sps.get(2..).unwrap_or_default());
    let mut r = BitReader::new(&data);
    r.bits(4)?; // sps_video_parameter_set_id
    let sub_layers = r.bits(3)?; // sps_max_sub_layers_minus1
    let nested = r.bit()? == 1; // sps_temporal_id_nesting_flag
                                // profile_tier_level: general profile (8), compatibility flags (32), constraint flags (48),
                                // level (8).
    for n in [8, 16, 16, 16, 16, 16, 8] {
        r.bits(n)?;
    }
    let mut present = Vec::with_capacity(sub_layers as usize);
    for _ in 0..sub_layers {
        present.push((r.bit()?, r.bit()?));
    }
    if sub_layers > 0 {
        for _ in sub_layers..8 {
            r.bits(2)?; // reserved_zero_2bits
        }
    }
    for (profile, level) in present {
        if profile == 1 {
            // As the general profile: 8 + 32 + 48 bits.
            for n in [8, 16, 16, 16, 16, 16] {
                r.bits(n)?;
            }
        }
        if level == 1 {
            r.bits(8)?;
        }
    }
    r.ue()?; // sps_seq_parameter_set_id
    let chroma_format = r.ue()?;
    if chroma_format == 3 {
        r.bit()?; // separate_colour_plane_flag
    }
    let width = u64::from(r.ue()?);
    let height = u64::from(r.ue()?);
    let (mut cl, mut cr, mut ct, mut cb) = (0u64, 0u64, 0u64, 0u64);
    if r.bit()? == 1 {
        cl = u64::from(r.ue()?);
        cr = u64::from(r.ue()?);
        ct = u64::from(r.ue()?);
        cb = u64::from(r.ue()?);
    }
    let sub_w = if matches!(chroma_format, 1 | 2) { 2 } else { 1 };
    let sub_h = if chroma_format == 1 { 2 } else { 1 };
    let w = width.saturating_sub(sub_w * cl.saturating_add(cr));
    let h = height.saturating_sub(sub_h * ct.saturating_add(cb));
    let depth = |v: u32| u8::try_from(v.saturating_add(8)).unwrap_or(u8::MAX);
    let bit_depth_luma = depth(r.ue()?);
    let bit_depth_chroma = depth(r.ue()?);
    Ok(H265Sps {
        width: w.min(u64::from(u32::MAX)) as u32,
        height: h.min(u64::from(u32::MAX)) as u32,
        max_sub_layers: (sub_layers + 1) as u8,
        temporal_id_nested: nested,
        chroma_format: chroma_format.min(3) as u8,
        bit_depth_luma,
        bit_depth_chroma,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_of_an_h265_picture_comes_from_its_sps_after_the_conformance_window() {
        // `ffmpeg -f lavfi -i testsrc2=size=320x180 -frames:v 1 -c:v libx265 -f hevc`: its SPS
        // (coded 320x184, cropped to 180 by the conformance window).
        let sps = hex(
            "42010101600000030090000003000003003ca00a080b9f796566924caf01680800000300080000\
                       0300c840",
        );
        assert_eq!(h265_sps_dimensions(&sps), Ok((320, 180)));
        crate::mutations(&sps, 7, 500, |d| {
            let _ = h265_sps_dimensions(d);
        });
    }

    #[test]
    fn an_hvcc_repeats_the_profile_depth_and_layers_of_its_sps() {
        let sps = hex(
            "42010101600000030090000003000003003ca00a080b9f796566924caf01680800000300080000\
                       0300c840",
        );
        let info = h265_sps(&sps).unwrap();
        assert_eq!(
            (
                info.chroma_format,
                info.bit_depth_luma,
                info.bit_depth_chroma
            ),
            (1, 8, 8)
        );
        let c = hevc_config(&[0x40, 1, 9], &sps, &[0x44, 1, 7]).unwrap();
        assert_eq!(c[0], 1, "configurationVersion");
        // general_profile_space/tier/idc: Main (1); level 60 (2.0), from the SPS.
        assert_eq!((c[1], c[12]), (0x01, 60));
        assert_eq!(&c[16..19], &[0xfd, 0xf8, 0xf8], "4:2:0, 8-bit");
        assert_eq!(
            c[21] & 0x3b,
            (1 << 3) | 3,
            "one temporal layer, 4-byte lengths"
        );
        assert_eq!(c[22], 3, "VPS, SPS and PPS arrays");
        assert!(
            hevc_config(&[0x40, 1], &sps[..6], &[0x44, 1]).is_none(),
            "cut SPS"
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn splits_annex_b_with_both_start_code_lengths() {
        let data = [
            0, 0, 0, 1, 9, 0xf0, 0, 0, 1, 0x65, 1, 2, 0, 0, 0, 1, 0x41, 7,
        ];
        let units: Vec<&[u8]> = annex_b(&data).collect();
        assert_eq!(
            units,
            vec![&[9, 0xf0][..], &[0x65, 1, 2][..], &[0x41, 7][..]]
        );
    }

    #[test]
    fn finds_idr_and_irap() {
        let idr = [0, 0, 1, 9, 0x10, 0, 0, 1, 0x67, 0, 0, 1, 0x65, 0x88];
        assert!(scan(Codec::H264, &idr).random_access);
        let p = [0, 0, 1, 9, 0x30, 0, 0, 1, 0x41, 0x9a];
        let s = scan(Codec::H264, &p);
        assert!(!s.random_access && s.saw_slice);
        // H.265: type 19 (IDR_W_RADL) is (19 << 1) = 0x26 in the first header byte.
        assert!(scan(Codec::H265, &[0, 0, 1, 0x26, 0x01, 0xaf]).random_access);
        assert!(!scan(Codec::H265, &[0, 0, 1, 0x02, 0x01, 0xd0]).random_access);
    }

    #[test]
    fn sps_dimensions_with_cropping() {
        // The SPS of demo/faststart.mp4 (x264, 320x180: 12 macroblock rows, 12 lines cropped).
        let sps = [
            0x67, 0x64, 0x00, 0x0c, 0xac, 0xd9, 0x41, 0x41, 0x9f, 0x9f, 0x01, 0x10, 0x00, 0x00,
            0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x00, 0xf1, 0x42, 0x99, 0x60,
        ];
        assert_eq!(h264_sps_dimensions(&sps).unwrap(), (320, 180));
        assert!(h264_sps_dimensions(&[0x67]).is_err());
        crate::mutations(&sps, 11, 500, |d| {
            let _ = h264_sps_dimensions(d);
        });
    }

    #[test]
    fn a_scaling_list_delta_far_out_of_range_is_read_without_overflow() {
        // Found by the cmaf_from_flv fuzzer: a High 4:4:4 SPS whose scaling list carries a
        // delta_scale near i32::MAX (a valid one is -128..=127).
        let sps = [
            0x67, 0xf4, 0x4e, 0x00, 0x6a, 0x91, 0x3b, 0x9c, 0xcd, 0x00, 0x00, 0x00, 0x00, 0xff,
            0xff, 0xff, 0xfa, 0x00, 0x00, 0x00, 0x00, 0x46, 0x00, 0x00,
        ];
        let _ = h264_sps_dimensions(&sps);
    }
}
