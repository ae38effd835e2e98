//! The init segment: `ftyp` and a `moov` with one track per medium and no samples (they come in
//! fragments), with `mvex` announcing the fragments.

use super::boxes::{bx, full, matrix, u16, u32, zeros};
use super::{AUDIO_TRACK, VIDEO_TRACK};

/// A video track's decoder configuration and picture size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    pub codec: VideoCodec,
    pub width: u16,
    pub height: u16,
    /// Ticks per second of its times.
    pub timescale: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264: the AVCDecoderConfigurationRecord (`avcC`).
    Avc { avcc: Vec<u8> },
    /// H.265: the HEVCDecoderConfigurationRecord (`hvcC`).
    Hevc { hvcc: Vec<u8> },
}

/// An audio track's decoder configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrack {
    pub codec: AudioCodec,
    pub channels: u16,
    pub sample_rate: u32,
    pub timescale: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC: the AudioSpecificConfig.
    Aac { asc: Vec<u8> },
    /// Opus (`dOps`, ISO/IEC 14496-12 encapsulation of Opus): pre-skip in 48 kHz samples.
    Opus { pre_skip: u16 },
}

/// The init segment of a stream with these tracks (video is track 1, audio track 2).
pub fn init_segment(video: Option<&VideoTrack>, audio: Option<&AudioTrack>) -> Vec<u8> {
    let mut o = Vec::with_capacity(1024);
    bx(&mut o, b"ftyp", |o| {
        o.extend_from_slice(b"iso6");
        u32(o, 0);
        // Not `cmfc`: a CMAF header holds one track, this one may hold two.
        for brand in [b"iso6", b"isom", b"mp41"] {
            o.extend_from_slice(brand);
        }
    });
    bx(&mut o, b"moov", |o| {
        full(o, b"mvhd", 0, 0, |o| {
            u32(o, 0); // creation time
            u32(o, 0); // modification time
            u32(o, 1000); // timescale
            u32(o, 0); // duration: unknown (fragments)
            u32(o, 0x0001_0000); // rate 1.0
            u16(o, 0x0100); // volume 1.0
            zeros(o, 10);
            matrix(o);
            zeros(o, 24); // pre_defined
            u32(o, AUDIO_TRACK + 1); // next_track_ID
        });
        if let Some(v) = video {
            trak(o, VIDEO_TRACK, v.timescale, Medium::Video(v));
        }
        if let Some(a) = audio {
            trak(o, AUDIO_TRACK, a.timescale, Medium::Audio(a));
        }
        bx(o, b"mvex", |o| {
            for (id, present) in [
                (VIDEO_TRACK, video.is_some()),
                (AUDIO_TRACK, audio.is_some()),
            ] {
                if present {
                    full(o, b"trex", 0, 0, |o| {
                        u32(o, id);
                        u32(o, 1); // default_sample_description_index
                        u32(o, 0); // default_sample_duration
                        u32(o, 0); // default_sample_size
                        u32(o, 0); // default_sample_flags
                    });
                }
            }
        });
    });
    o
}

enum Medium<'a> {
    Video(&'a VideoTrack),
    Audio(&'a AudioTrack),
}

fn trak(o: &mut Vec<u8>, id: u32, timescale: u32, m: Medium<'_>) {
    bx(o, b"trak", |o| {
        // Flags: enabled, in movie.
        full(o, b"tkhd", 0, 3, |o| {
            u32(o, 0);
            u32(o, 0);
            u32(o, id);
            u32(o, 0); // reserved
            u32(o, 0); // duration
            zeros(o, 8);
            u16(o, 0); // layer
            u16(o, 0); // alternate_group
            u16(
                o,
                if matches!(m, Medium::Audio(_)) {
                    0x0100
                } else {
                    0
                },
            );
            u16(o, 0);
            matrix(o);
            let (w, h) = match m {
                Medium::Video(v) => (v.width, v.height),
                Medium::Audio(_) => (0, 0),
            };
            u32(o, u32::from(w) << 16);
            u32(o, u32::from(h) << 16);
        });
        bx(o, b"mdia", |o| {
            full(o, b"mdhd", 0, 0, |o| {
                u32(o, 0);
                u32(o, 0);
                u32(o, timescale);
                u32(o, 0);
                u16(o, 0x55c4); // language "und"
                u16(o, 0);
            });
            let (handler, name): (&[u8; 4], &[u8]) = match m {
                Medium::Video(_) => (b"vide", b"zerocast video\0"),
                Medium::Audio(_) => (b"soun", b"zerocast audio\0"),
            };
            full(o, b"hdlr", 0, 0, |o| {
                u32(o, 0);
                o.extend_from_slice(handler);
                zeros(o, 12);
                o.extend_from_slice(name);
            });
            bx(o, b"minf", |o| {
                match m {
                    Medium::Video(_) => full(o, b"vmhd", 0, 1, |o| zeros(o, 8)),
                    Medium::Audio(_) => full(o, b"smhd", 0, 0, |o| zeros(o, 4)),
                }
                bx(o, b"dinf", |o| {
                    full(o, b"dref", 0, 0, |o| {
                        u32(o, 1);
                        // Flag 1: the data is in this file.
                        full(o, b"url ", 0, 1, |_| {});
                    });
                });
                bx(o, b"stbl", |o| {
                    full(o, b"stsd", 0, 0, |o| {
                        u32(o, 1);
                        match m {
                            Medium::Video(v) => video_entry(o, v),
                            Medium::Audio(a) => audio_entry(o, a),
                        }
                    });
                    // No samples here: they are all in fragments.
                    full(o, b"stts", 0, 0, |o| u32(o, 0));
                    full(o, b"stsc", 0, 0, |o| u32(o, 0));
                    full(o, b"stsz", 0, 0, |o| {
                        u32(o, 0);
                        u32(o, 0);
                    });
                    full(o, b"stco", 0, 0, |o| u32(o, 0));
                });
            });
        });
    });
}

fn video_entry(o: &mut Vec<u8>, v: &VideoTrack) {
    let (kind, config_kind, config): (&[u8; 4], &[u8; 4], &[u8]) = match &v.codec {
        VideoCodec::Avc { avcc } => (b"avc1", b"avcC", avcc),
        VideoCodec::Hevc { hvcc } => (b"hvc1", b"hvcC", hvcc),
    };
    bx(o, kind, |o| {
        zeros(o, 6);
        u16(o, 1); // data_reference_index
        zeros(o, 16); // pre_defined, reserved
        u16(o, v.width);
        u16(o, v.height);
        u32(o, 0x0048_0000); // 72 dpi
        u32(o, 0x0048_0000);
        u32(o, 0);
        u16(o, 1); // frame_count
        zeros(o, 32); // compressorname
        u16(o, 0x0018); // depth
        u16(o, 0xffff); // pre_defined = -1
        bx(o, config_kind, |o| o.extend_from_slice(config));
    });
}

fn audio_entry(o: &mut Vec<u8>, a: &AudioTrack) {
    let kind: &[u8; 4] = match a.codec {
        AudioCodec::Aac { .. } => b"mp4a",
        AudioCodec::Opus { .. } => b"Opus",
    };
    bx(o, kind, |o| {
        zeros(o, 6);
        u16(o, 1); // data_reference_index
        zeros(o, 8);
        u16(o, a.channels);
        u16(o, 16); // samplesize
        zeros(o, 4);
        // 16.16 fixed point; rates above 65535 Hz do not fit and are written as 0 (the decoder
        // configuration carries the real one). Opus in ISO BMFF: always 48 kHz here (the input
        // rate goes in dOps).
        let rate = match a.codec {
            AudioCodec::Opus { .. } => 48_000 << 16,
            AudioCodec::Aac { .. } if a.sample_rate <= 0xffff => a.sample_rate << 16,
            AudioCodec::Aac { .. } => 0,
        };
        u32(o, rate);
        match &a.codec {
            AudioCodec::Aac { asc } => esds(o, asc),
            AudioCodec::Opus { pre_skip } => bx(o, b"dOps", |o| {
                o.push(0); // version
                o.push(u8::try_from(a.channels).unwrap_or(2));
                u16(o, *pre_skip);
                u32(o, a.sample_rate);
                u16(o, 0); // output gain
                o.push(0); // channel mapping family 0: mono or stereo
            }),
        }
    });
}

/// The MPEG-4 elementary stream descriptor of an AAC track (ISO/IEC 14496-1 §7.2.6).
fn esds(o: &mut Vec<u8>, asc: &[u8]) {
    // Descriptor lengths in one byte: an AudioSpecificConfig is a few bytes, and is cut to fit
    // (the caller's configuration comes from a parsed stream, far below this).
    let asc = &asc[..asc.len().min(100)];
    let len = |n: usize| u8::try_from(n).unwrap_or(u8::MAX);
    full(o, b"esds", 0, 0, |o| {
        let dsi = 2 + asc.len();
        let dcd = 2 + 13 + dsi;
        let es = 3 + dcd + 3;
        o.extend_from_slice(&[0x03, len(es)]);
        u16(o, 0); // ES_ID
        o.push(0); // flags
        o.extend_from_slice(&[0x04, len(dcd - 2), 0x40, 0x15]);
        zeros(o, 3); // bufferSizeDB
        u32(o, 0); // maxBitrate
        u32(o, 0); // avgBitrate
        o.extend_from_slice(&[0x05, len(asc.len())]);
        o.extend_from_slice(asc);
        o.extend_from_slice(&[0x06, 0x01, 0x02]);
    });
}
