//! MP4 to access units: each track's samples in decode order, with the codec configuration needed
//! to turn them into elementary streams for MPEG-TS (H.264/H.265 length-prefixed NAL units to
//! Annex B with the parameter sets before every keyframe; AAC raw frames behind ADTS headers).
//! The file is in memory; sample data are slices of it.

use super::{child, full_box, next_box, parse_moov, stbl, FourCC};
use crate::error::{Error, Result};
use crate::read::Reader;

/// How a track's samples become an elementary stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codec {
    /// H.264 or H.265: the NAL length field size, and the parameter sets (SPS/PPS, and VPS).
    H264 {
        nal_len: usize,
        params: Vec<Vec<u8>>,
    },
    H265 {
        nal_len: usize,
        params: Vec<Vec<u8>>,
    },
    /// AAC: the ADTS header fields from the AudioSpecificConfig.
    Aac {
        object_type: u8,
        frequency_index: u8,
        channels: u8,
    },
}

/// One sample: where its bytes are, its decode time and composition offset (track timescale).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub offset: u64,
    pub size: u32,
    pub dts: i64,
    pub cto: i32,
    pub keyframe: bool,
}

#[derive(Debug, Clone)]
pub struct Track {
    pub codec: Codec,
    pub timescale: u32,
    pub samples: Vec<Sample>,
}

/// The video track (H.264/H.265) and the first AAC track of an MP4, ready to remux. Tracks of
/// other codecs are left out; fragmented MP4 is not supported here (yet).
pub fn tracks(data: &[u8]) -> Result<(Option<Track>, Option<Track>)> {
    let mut top = Reader::new(data, 0, "mp4");
    let mut moov = None;
    while let Some(b) = next_box(&mut top, true)? {
        if &b.kind == b"moov" {
            moov = Some(b.body);
        } else if &b.kind == b"moof" {
            return Err(Error::malformed(
                "mp4",
                "fragmented MP4 cannot be remuxed yet; remux it with ffmpeg -c copy -f mpegts",
            ));
        }
    }
    let moov = moov.ok_or_else(|| Error::malformed("mp4", "no moov box"))?;
    let (_, _, all) = parse_moov(&moov)?;
    let data_len = data.len() as u64;
    let (mut video, mut audio) = (None, None);
    for t in all {
        let (Some((kind, entry)), Some(stbl)) = (&t.entry, &t.stbl) else {
            continue;
        };
        let Some(codec) = codec(&t.handler, *kind, entry.clone())? else {
            continue;
        };
        let is_video = matches!(codec, Codec::H264 { .. } | Codec::H265 { .. });
        if (is_video && video.is_some()) || (!is_video && audio.is_some()) {
            continue;
        }
        let mut table = stbl::expand(stbl, data_len)?;
        table.clip_to(data_len);
        let samples = (0..table.len())
            .map(|i| Sample {
                offset: table.offset[i],
                size: table.size[i],
                dts: table.dts[i],
                cto: table.cto[i],
                keyframe: table.keyframe[i],
            })
            .collect();
        let track = Track {
            codec,
            timescale: t.timescale,
            samples,
        };
        if is_video {
            video = Some(track);
        } else {
            audio = Some(track);
        }
    }
    Ok((video, audio))
}

/// The decoder configuration record box (`avcC` of `avc1`/`avc3`, `hvcC` of `hvc1`/`hev1`) of
/// a visual sample entry's body.
pub(crate) fn visual_config<'a>(kind: FourCC, mut e: Reader<'a>) -> Result<Option<Reader<'a>>> {
    e.skip(78)?; // the visual sample entry's fixed fields
    let name = if matches!(&kind, b"avc1" | b"avc3") {
        b"avcC"
    } else {
        b"hvcC"
    };
    child(&e, name)
}

/// The `esds` of an `mp4a` sample entry's body, past its full box header.
pub(crate) fn mp4a_esds<'a>(mut e: Reader<'a>) -> Result<Option<Reader<'a>>> {
    e.skip(8)?;
    let version = e.u16()?;
    e.skip(18)?;
    e.skip(match version {
        1 => 16,
        2 => 36,
        _ => 0,
    })?;
    // An MP4's is a child of the entry; a QuickTime file's (ffmpeg's `mov`, Apple's) is in
    // the entry's `wave` box.
    let found = match child(&e, b"esds")? {
        Some(esds) => Some(esds),
        None => match child(&e, b"wave")? {
            Some(wave) => child(&wave, b"esds")?,
            None => None,
        },
    };
    let Some(mut esds) = found else {
        return Ok(None);
    };
    full_box(&mut esds)?;
    Ok(Some(esds))
}

pub(crate) fn codec(handler: &FourCC, kind: FourCC, e: Reader<'_>) -> Result<Option<Codec>> {
    match (handler, &kind) {
        (b"vide", b"avc1" | b"avc3" | b"hvc1" | b"hev1") => {
            let h264 = matches!(&kind, b"avc1" | b"avc3");
            let Some(mut c) = visual_config(kind, e)? else {
                return Ok(None);
            };
            let (nal_len, params) = if h264 { avcc(&mut c)? } else { hvcc(&mut c)? };
            Ok(Some(if h264 {
                Codec::H264 { nal_len, params }
            } else {
                Codec::H265 { nal_len, params }
            }))
        }
        (b"soun", b"mp4a") => {
            let Some(mut esds) = mp4a_esds(e)? else {
                return Ok(None);
            };
            let asc = esds_config(&mut esds)?;
            Ok(asc.map(|(o, f, c)| Codec::Aac {
                object_type: o,
                frequency_index: f,
                channels: c,
            }))
        }
        _ => Ok(None),
    }
}

/// Most parameter sets taken from a decoder configuration: H.264 allows 32 SPS and 256 PPS.
const MAX_PARAMS: usize = 288;
/// Most bytes of parameter sets taken from a decoder configuration. Real ones come to a few
/// hundred bytes (a few KiB with scaling lists); they are written again before every keyframe
/// of a live stream, so a publisher must not make that costly with a tiny message.
const MAX_PARAM_BYTES: usize = 16 << 10;

/// Adds a parameter set of `len` bytes read from `c` to `params`, within [`MAX_PARAMS`] and
/// [`MAX_PARAM_BYTES`]; an empty one carries nothing and is skipped.
fn param(
    c: &mut Reader<'_>,
    len: usize,
    params: &mut Vec<Vec<u8>>,
    what: &'static str,
) -> Result<()> {
    let bytes = c.bytes(len)?;
    if len == 0 {
        return Ok(());
    }
    let total = params.iter().map(Vec::len).sum::<usize>() + len;
    if params.len() >= MAX_PARAMS || total > MAX_PARAM_BYTES {
        return Err(Error::malformed(
            what,
            "more parameter sets than a decoder takes",
        ));
    }
    params.push(bytes.to_vec());
    Ok(())
}

/// The NAL length size and the parameter sets (SPS, PPS) of an AVCDecoderConfigurationRecord.
pub fn avcc(c: &mut Reader<'_>) -> Result<(usize, Vec<Vec<u8>>)> {
    c.skip(4)?;
    let nal_len = usize::from(c.u8()? & 3) + 1;
    let mut params = Vec::new();
    // numOfSequenceParameterSets (5 bits), then numOfPictureParameterSets (8).
    for mask in [0x1f, 0xff] {
        let n = c.u8()? & mask;
        for _ in 0..n {
            let len = usize::from(c.u16()?);
            param(c, len, &mut params, "avcC")?;
        }
    }
    Ok((nal_len, params))
}

/// The NAL length size and the parameter sets (VPS, SPS, PPS) of an HEVCDecoderConfigurationRecord.
pub fn hvcc(c: &mut Reader<'_>) -> Result<(usize, Vec<Vec<u8>>)> {
    c.skip(21)?;
    let nal_len = usize::from(c.u8()? & 3) + 1;
    let arrays = c.u8()?;
    let mut params = Vec::new();
    for _ in 0..arrays {
        c.u8()?;
        let n = c.u16()?;
        for _ in 0..n {
            let len = usize::from(c.u16()?);
            param(c, len, &mut params, "hvcC")?;
        }
    }
    Ok((nal_len, params))
}

/// Object type, sampling frequency index and channel configuration of an AudioSpecificConfig
/// (`None` for what ADTS cannot carry). HE-AAC (v1 and v2, object types 5 and 29, signalled
/// explicitly) gives its core's: AAC-LC at the core rate, as ADTS carries it (the decoder
/// finds the SBR and PS in the frames).
pub fn audio_specific_config(asc: &[u8]) -> Option<(u8, u8, u8)> {
    let mut r = crate::read::BitReader::new(asc);
    let mut object_type = r.bits(5).ok()?;
    let frequency_index = r.bits(4).ok()?;
    let channels = r.bits(4).ok()?;
    if matches!(object_type, 5 | 29) {
        // The extension's sampling frequency index (an explicit rate after 15), then the
        // core's object type.
        if r.bits(4).ok()? == 15 {
            r.bits(24).ok()?;
        }
        object_type = r.bits(5).ok()?;
    }
    ((1..=4).contains(&object_type) && frequency_index <= 12).then_some((
        object_type as u8,
        frequency_index as u8,
        channels as u8,
    ))
}

/// Reads an MPEG-4 descriptor header: its tag and its (bounded) body.
fn descriptor<'a>(r: &mut Reader<'a>) -> Result<(u8, Reader<'a>)> {
    let tag = r.u8()?;
    let mut len = 0usize;
    for _ in 0..4 {
        let b = r.u8()?;
        len = (len << 7) | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
    }
    Ok((tag, r.sub(len, "mp4 descriptor")?))
}

/// Object type, sampling frequency index and channel configuration from an `esds`.
fn esds_config(esds: &mut Reader<'_>) -> Result<Option<(u8, u8, u8)>> {
    Ok(esds_asc(esds)?.and_then(audio_specific_config))
}

/// The AudioSpecificConfig an `esds` carries (its DecoderSpecificInfo), as it is: `None` for
/// an object type other than AAC's or without one (MP3, `0x6B`, has none).
pub(crate) fn esds_asc<'a>(esds: &mut Reader<'a>) -> Result<Option<&'a [u8]>> {
    Ok(match esds_decoder(esds)? {
        Some(Decoder {
            object_type: 0x40 | 0x66..=0x68,
            specific_info,
        }) => specific_info,
        _ => None,
    })
}

/// The DecoderConfigDescriptor of an `esds` (ISO/IEC 14496-1 §7.2.6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decoder<'a> {
    /// objectTypeIndication: `0x40` MPEG-4 audio, `0x66`-`0x68` MPEG-2 AAC, `0x69` MPEG-2
    /// audio, `0x6B` MPEG-1 audio.
    pub object_type: u8,
    /// The DecoderSpecificInfo (AAC's AudioSpecificConfig), which is optional: `ffmpeg -c:a
    /// libmp3lame` writes a descriptor of its 13 fixed bytes alone.
    pub specific_info: Option<&'a [u8]>,
}

/// The DecoderConfigDescriptor of an `esds`; `None` without one.
pub(crate) fn esds_decoder<'a>(esds: &mut Reader<'a>) -> Result<Option<Decoder<'a>>> {
    let (tag, mut es) = descriptor(esds)?;
    if tag != 0x03 {
        return Ok(None);
    }
    es.skip(2)?;
    let flags = es.u8()?;
    if flags & 0x80 != 0 {
        es.skip(2)?;
    }
    if flags & 0x40 != 0 {
        let n = usize::from(es.u8()?);
        es.skip(n)?;
    }
    if flags & 0x20 != 0 {
        es.skip(2)?;
    }
    let (tag, mut dc) = descriptor(&mut es)?;
    if tag != 0x04 {
        return Ok(None);
    }
    let object_type = dc.u8()?;
    dc.skip(12)?; // streamType, bufferSizeDB, maxBitrate, avgBitrate
    let specific_info = if dc.remaining() == 0 {
        None
    } else {
        let (tag, mut dsi) = descriptor(&mut dc)?;
        (tag == 0x05).then(|| dsi.rest())
    };
    Ok(Some(Decoder {
        object_type,
        specific_info,
    }))
}

/// Appends a sample as an Annex B access unit (parameter sets first for a keyframe). NAL lengths
/// are checked against the sample's bytes.
pub fn annex_b(
    sample: &[u8],
    nal_len: usize,
    params: &[Vec<u8>],
    keyframe: bool,
    out: &mut Vec<u8>,
) -> Result<()> {
    if keyframe {
        for p in params {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(p);
        }
    }
    let mut r = Reader::new(sample, 0, "mp4 sample");
    while r.remaining() > 0 {
        let mut len = 0usize;
        for _ in 0..nal_len {
            len = (len << 8) | usize::from(r.u8()?);
        }
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(r.bytes(len)?);
    }
    Ok(())
}

/// Appends an AAC raw frame behind an ADTS header.
pub fn adts(
    frame: &[u8],
    object_type: u8,
    frequency_index: u8,
    channels: u8,
    out: &mut Vec<u8>,
) -> Result<()> {
    let len = frame.len() + 7;
    if len >= 1 << 13 {
        return Err(Error::malformed("aac", "frame too large for ADTS"));
    }
    let profile = object_type - 1;
    out.extend_from_slice(&[
        0xff,
        0xf1,
        (profile << 6) | (frequency_index << 2) | (channels >> 2),
        ((channels & 3) << 6) | (len >> 11) as u8,
        (len >> 3) as u8,
        ((len & 7) << 5) as u8 | 0x1f,
        0xfc,
    ]);
    out.extend_from_slice(frame);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An avcC with these SPS and PPS.
    fn avcc_of(sps: &[Vec<u8>], pps: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![1, 0x64, 0, 0x1f, 0xff, 0xe0 | sps.len() as u8];
        for (i, list) in [sps, pps].into_iter().enumerate() {
            if i == 1 {
                b.push(pps.len() as u8);
            }
            for p in list {
                b.extend_from_slice(&(p.len() as u16).to_be_bytes());
                b.extend_from_slice(p);
            }
        }
        b
    }

    fn parse(b: &[u8]) -> Result<(usize, Vec<Vec<u8>>)> {
        avcc(&mut Reader::new(b, 0, "avcC"))
    }

    #[test]
    fn an_audio_specific_config_gives_what_adts_carries_and_he_aac_its_core() {
        // AAC-LC, 44.1 kHz (index 4), stereo.
        assert_eq!(audio_specific_config(&[0x12, 0x10]), Some((2, 4, 2)));
        // HE-AAC v1 (5): core 24 kHz (6), stereo, extension 48 kHz (3), core AAC-LC (2).
        assert_eq!(audio_specific_config(&[0x2b, 0x11, 0x88]), Some((2, 6, 2)));
        // HE-AAC v2 (29): the same core, mono in the core (1).
        assert_eq!(audio_specific_config(&[0xeb, 0x09, 0x88]), Some((2, 6, 1)));
        // Cut short, an escaped object type, an explicit rate: not for ADTS.
        assert_eq!(audio_specific_config(&[0x2b, 0x11]), None);
        assert_eq!(audio_specific_config(&[0xf8, 0x00, 0x00]), None);
        assert_eq!(audio_specific_config(&[0x17, 0x80, 0, 0, 0]), None);
    }

    #[test]
    fn an_avcc_gives_its_nal_length_size_and_parameter_sets_and_skips_empty_ones() {
        let b = avcc_of(&[vec![0x67, 1, 2]], &[vec![], vec![0x68, 3]]);
        let (nal_len, params) = parse(&b).unwrap();
        assert_eq!(nal_len, 4);
        assert_eq!(params, [vec![0x67, 1, 2], vec![0x68, 3]]);
    }

    #[test]
    fn parameter_sets_beyond_what_a_decoder_takes_are_refused() {
        // 16 KiB of parameter sets at most: written again before every keyframe of a stream.
        let big = avcc_of(&[vec![0x67; 10_000]], &[vec![0x68; 7_000]]);
        assert!(parse(&big).is_err());
        let fits = avcc_of(&[vec![0x67; 9_000]], &[vec![0x68; 7_000]]);
        assert_eq!(parse(&fits).unwrap().1.len(), 2);
        // As many as H.264 allows (31 SPS here, 255 PPS), and no more.
        let many = avcc_of(&vec![vec![0x67, 1]; 31], &vec![vec![0x68, 1]; 255]);
        assert_eq!(parse(&many).unwrap().1.len(), 286);
        let mut hvcc = vec![0u8; 22];
        hvcc.push(1);
        hvcc.extend_from_slice(&[0x22, 0x01, 0x2c]); // one array of 300 PPS
        for _ in 0..300 {
            hvcc.extend_from_slice(&[0, 2, 0x44, 1]);
        }
        assert!(hvcc_of(&hvcc).is_err());
    }

    /// An `esds` body (past its version and flags) for `object_type`, with this
    /// DecoderSpecificInfo or none.
    fn esds_of(object_type: u8, dsi: Option<&[u8]>) -> Vec<u8> {
        let dsi = dsi.map_or(Vec::new(), |d| [&[0x05, d.len() as u8], d].concat());
        let mut dc = vec![0x04, (13 + dsi.len()) as u8, object_type, 0x15];
        dc.extend_from_slice(&[0; 11]);
        dc.extend_from_slice(&dsi);
        let mut es = vec![0x03, (3 + dc.len() + 3) as u8, 0, 1, 0];
        es.extend_from_slice(&dc);
        es.extend_from_slice(&[0x06, 0x01, 0x02]);
        es
    }

    #[test]
    fn an_esds_without_decoder_specific_info_as_mp3_in_mp4_has_is_no_error() {
        // ffmpeg -c:a libmp3lame: objectTypeIndication 0x6B, a DecoderConfigDescriptor of its
        // 13 fixed bytes and nothing after them.
        let mp3 = esds_of(0x6b, None);
        let decoder = esds_decoder(&mut Reader::new(&mp3, 0, "esds")).unwrap();
        let none = Decoder {
            object_type: 0x6b,
            specific_info: None,
        };
        assert_eq!(decoder, Some(none));
        assert_eq!(esds_asc(&mut Reader::new(&mp3, 0, "esds")).unwrap(), None);
        let aac = esds_of(0x40, Some(&[0x12, 0x10]));
        let asc = esds_asc(&mut Reader::new(&aac, 0, "esds")).unwrap();
        assert_eq!(asc, Some(&[0x12, 0x10][..]));
        // The same bytes under MP3's object type are not an AudioSpecificConfig.
        let odd = esds_of(0x6b, Some(&[0x12, 0x10]));
        assert_eq!(esds_asc(&mut Reader::new(&odd, 0, "esds")).unwrap(), None);
        // An mp4a sample entry holding it is a track left out of remuxing, not an error.
        let mut entry = vec![0u8; 28];
        entry.extend_from_slice(&((mp3.len() + 12) as u32).to_be_bytes());
        entry.extend_from_slice(b"esds\0\0\0\0");
        entry.extend_from_slice(&mp3);
        let e = Reader::new(&entry, 0, "mp4a");
        assert_eq!(codec(b"soun", *b"mp4a", e).unwrap(), None);
    }

    fn hvcc_of(b: &[u8]) -> Result<(usize, Vec<Vec<u8>>)> {
        hvcc(&mut Reader::new(b, 0, "hvcC"))
    }
}
