//! FLV tag bodies (what RTMP carries, and what [`crate::flv::FromTs`] makes of MPEG-TS) read for
//! the CMAF writer: decoder configurations become tracks, coded frames become samples whose
//! bytes are a range of the tag body (length-prefixed NAL units, raw AAC or Opus frames are
//! what MP4 stores, so nothing is rewritten). Times are FLV milliseconds: tracks made here have
//! a timescale of 1000.
//!
//! ```text
//! video  legacy:   FrameType(4) CodecID(4)=7 AVC | PacketType | CompositionTime(SI24) | data
//!        enhanced: 1 FrameType(3) PacketType(4) | FourCC 'avc1'/'hvc1' | [SI24 cts] | data
//! audio  AAC:      SoundFormat(4)=10 ... | PacketType | data
//!        enhanced: SoundFormat(4)=9 PacketType(4) | FourCC 'Opus' | data
//! ```

use super::init::{AudioCodec, AudioTrack, VideoCodec, VideoTrack};
use crate::error::{Error, Result};
use crate::mp4::remux::{audio_specific_config, avcc, hvcc};
use crate::nal::{h264_sps_dimensions, h265_sps_dimensions};
use crate::read::Reader;

/// Timescale of the tracks made from FLV: milliseconds.
pub const TIMESCALE: u32 = 1000;

/// AAC sampling rates by frequency index.
const RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// What one tag body is to the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    Video(VideoTrack),
    Audio(AudioTrack),
    /// A coded frame: its bytes are `body[data..]`.
    Frame {
        video: bool,
        keyframe: bool,
        /// Presentation minus decode time, ms (video; 0 for audio).
        cto: i32,
        data: usize,
    },
    /// Nothing to write (end of sequence, metadata, a codec fMP4 output does not carry here).
    Skip,
}

/// Reads a video (`video`) or audio tag body.
pub fn read(video: bool, body: &[u8]) -> Result<Tag> {
    let mut r = Reader::new(
        body,
        0,
        if video {
            "flv video tag"
        } else {
            "flv audio tag"
        },
    );
    let b0 = r.u8()?;
    if video {
        read_video(b0, &mut r)
    } else {
        read_audio(b0, &mut r)
    }
}

fn si24(r: &mut Reader<'_>) -> Result<i32> {
    let b = r.bytes(3)?;
    let v = (i32::from(b[0]) << 16) | (i32::from(b[1]) << 8) | i32::from(b[2]);
    // Sign-extend 24 bits.
    Ok((v << 8) >> 8)
}

fn read_video(b0: u8, r: &mut Reader<'_>) -> Result<Tag> {
    let (hevc, packet, keyframe) = if b0 & 0x80 != 0 {
        let fourcc = r.bytes(4)?;
        let hevc = match fourcc {
            b"avc1" => false,
            b"hvc1" => true,
            _ => return Ok(Tag::Skip),
        };
        // Enhanced packet types: 0 sequence start, 1 coded frames, 3 coded frames without
        // composition time.
        (hevc, b0 & 0x0f, (b0 >> 4) & 0x07 == 1)
    } else {
        match b0 & 0x0f {
            7 => {}
            _ => return Ok(Tag::Skip),
        }
        let packet = r.u8()?;
        // Legacy AVC: 0 sequence header, 1 NAL units (with a composition time), 2 end.
        let packet = match packet {
            0 => {
                r.skip(3)?;
                0
            }
            1 => 1,
            _ => return Ok(Tag::Skip),
        };
        (false, packet, b0 >> 4 == 1)
    };
    match packet {
        0 => {
            let config = r.rest().to_vec();
            Ok(Tag::Video(video_track(hevc, config)?))
        }
        1 => {
            let cto = si24(r)?;
            Ok(Tag::Frame {
                video: true,
                keyframe,
                cto,
                data: r.position() as usize,
            })
        }
        3 => Ok(Tag::Frame {
            video: true,
            keyframe,
            cto: 0,
            data: r.position() as usize,
        }),
        _ => Ok(Tag::Skip),
    }
}

fn video_track(hevc: bool, config: Vec<u8>) -> Result<VideoTrack> {
    let fit = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    let (width, height, codec) = if hevc {
        let (_, params) = hvcc(&mut Reader::new(&config, 0, "hvcC"))?;
        // NAL unit type 33: the sequence parameter set.
        let sps = params
            .iter()
            .find(|p| p.first().is_some_and(|h| (h >> 1) & 0x3f == 33))
            .ok_or_else(|| Error::malformed("hvcC", "no sequence parameter set"))?;
        let (w, h) = h265_sps_dimensions(sps)?;
        (fit(w), fit(h), VideoCodec::Hevc { hvcc: config })
    } else {
        let (_, params) = avcc(&mut Reader::new(&config, 0, "avcC"))?;
        let sps = params
            .iter()
            .find(|p| p.first().is_some_and(|h| h & 0x1f == 7))
            .ok_or_else(|| Error::malformed("avcC", "no sequence parameter set"))?;
        let (w, h) = h264_sps_dimensions(sps)?;
        (fit(w), fit(h), VideoCodec::Avc { avcc: config })
    };
    Ok(VideoTrack {
        codec,
        width,
        height,
        timescale: TIMESCALE,
    })
}

fn read_audio(b0: u8, r: &mut Reader<'_>) -> Result<Tag> {
    match b0 >> 4 {
        10 => match r.u8()? {
            0 => {
                let asc = r.rest().to_vec();
                let (_, index, channels) = audio_specific_config(&asc)
                    .ok_or_else(|| Error::malformed("AudioSpecificConfig", "not AAC"))?;
                Ok(Tag::Audio(AudioTrack {
                    sample_rate: RATES[usize::from(index)],
                    channels: u16::from(channels.max(1)),
                    codec: AudioCodec::Aac { asc },
                    timescale: TIMESCALE,
                }))
            }
            1 => Ok(frame(r)),
            _ => Ok(Tag::Skip),
        },
        // Enhanced audio: SoundFormat 9, then the packet type and a FourCC.
        9 => {
            if r.bytes(4)? != b"Opus" {
                return Ok(Tag::Skip);
            }
            match b0 & 0x0f {
                0 => Ok(Tag::Audio(opus_head(r)?)),
                1 => Ok(frame(r)),
                _ => Ok(Tag::Skip),
            }
        }
        _ => Ok(Tag::Skip),
    }
}

fn frame(r: &Reader<'_>) -> Tag {
    // position() is the offset in the body (the reader's base is 0).
    Tag::Frame {
        video: false,
        keyframe: true,
        cto: 0,
        data: r.position() as usize,
    }
}

/// An Opus track from its identification header (`OpusHead`, RFC 7845 §5.1: little-endian).
fn opus_head(r: &mut Reader<'_>) -> Result<AudioTrack> {
    if r.bytes(8)? != b"OpusHead" {
        return Err(Error::malformed("OpusHead", "no OpusHead magic"));
    }
    r.skip(1)?; // version
    let channels = r.u8()?;
    let skip = r.bytes(2)?;
    let rate = r.bytes(4)?;
    r.skip(2)?; // output gain
                // Family 0 (mono, stereo) only: others carry a channel mapping table this writer does not.
    let family = r.u8()?;
    if family != 0 || channels > 2 {
        return Err(Error::malformed(
            "OpusHead",
            format!("channel mapping family {family} with {channels} channels is not supported"),
        ));
    }
    Ok(AudioTrack {
        codec: AudioCodec::Opus {
            pre_skip: u16::from_le_bytes([skip[0], skip[1]]),
        },
        channels: u16::from(channels.max(1)),
        sample_rate: u32::from_le_bytes([rate[0], rate[1], rate[2], rate[3]]),
        timescale: TIMESCALE,
    })
}
