//! The FLV wire form of one tag body, written once per stream for the FLV output, and what a tag
//! body is ([`classify`]). (Its RTMP message form is `rtmp::write::av_message`.)
//!
//! ```text
//! FLV tag:      Type(8) DataSize(24) Timestamp(24) TimestampExtended(8) StreamID(24)=0 | body
//!               | PreviousTagSize(32) = 11 + DataSize
//! ```

/// What one tag body is, from its first two bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Kind {
    /// An AVC/HEVC decoder configuration record or an AAC AudioSpecificConfig: sent before
    /// every keyframe a viewer starts at, not pushed as media.
    pub sequence: bool,
    /// A video keyframe (coded frames, not the sequence start).
    pub keyframe: bool,
}

/// Classifies a video or audio tag body (legacy FLV and Enhanced RTMP video headers).
pub fn classify(video: bool, body: &[u8]) -> Kind {
    let (Some(&b0), Some(&b1)) = (body.first(), body.get(1)) else {
        return Kind::default();
    };
    if !video {
        // AAC: packet type 0 is the AudioSpecificConfig; enhanced audio (SoundFormat 9): packet
        // type 0 is the sequence start.
        return Kind {
            sequence: (b0 >> 4 == 10 && b1 == 0) || (b0 >> 4 == 9 && b0 & 0x0f == 0),
            keyframe: false,
        };
    }
    if b0 & 0x80 != 0 {
        // Enhanced RTMP: IsExHeader, FrameType(3), PacketType(4); packet type 0 is the sequence
        // start, frame type 1 a keyframe.
        Kind {
            sequence: b0 & 0x0f == 0,
            keyframe: (b0 >> 4) & 0x07 == 1 && b0 & 0x0f != 0,
        }
    } else {
        Kind {
            sequence: b1 == 0,
            keyframe: b0 >> 4 == 1 && b1 == 1,
        }
    }
}

/// FLV tag types of video (9) and audio (8) tags (also their RTMP message type ids).
pub const VIDEO: u8 = 9;
pub const AUDIO: u8 = 8;

/// An FLV tag: header, body, PreviousTagSize. `ms` is the RTMP timestamp (its top byte goes to
/// TimestampExtended). A body longer than the 24-bit DataSize allows is cut at 16 MiB − 1 (RTMP
/// messages cannot be longer either).
pub fn flv_tag(kind: u8, ms: u32, body: &[u8]) -> Vec<u8> {
    let body = &body[..body.len().min(0xff_ffff)];
    let n = body.len();
    let mut t = Vec::with_capacity(11 + n + 4);
    t.extend_from_slice(&[kind, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
    t.extend_from_slice(&[
        (ms >> 16) as u8,
        (ms >> 8) as u8,
        ms as u8,
        (ms >> 24) as u8,
    ]);
    t.extend_from_slice(&[0, 0, 0]);
    t.extend_from_slice(body);
    t.extend_from_slice(&((11 + n) as u32).to_be_bytes());
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_headers_are_told_apart_from_frames_in_every_flavour() {
        let seq = |video, body: &[u8]| classify(video, body).sequence;
        assert!(
            seq(false, &[0xaf, 0, 0x12, 0x10]),
            "AAC AudioSpecificConfig"
        );
        assert!(!seq(false, &[0xaf, 1, 0x21]), "an AAC frame");
        assert!(
            seq(false, b"\x90OpusOpusHead"),
            "enhanced Opus sequence start"
        );
        assert!(!seq(false, b"\x91Opus\xfc"), "an Opus packet");
        assert!(seq(true, &[0x17, 0, 0, 0, 0]), "AVC configuration");
        assert!(seq(true, b"\x90hvc1\x01"), "enhanced HEVC sequence start");
        let key = |body: &[u8]| classify(true, body).keyframe;
        assert!(key(b"\x91hvc1\0\0\0") && !key(b"\xa1hvc1\0\0\0"));
    }

    #[test]
    fn flv_tags_carry_the_timestamp_top_byte_and_previous_tag_size() {
        let tag = flv_tag(VIDEO, 0x0102_0304, &[1, 2, 3]);
        assert_eq!(&tag[..11], &[9, 0, 0, 3, 2, 3, 4, 1, 0, 0, 0]);
        assert_eq!(&tag[11..14], &[1, 2, 3]);
        assert_eq!(&tag[14..], &14u32.to_be_bytes());
    }

    #[test]
    fn tag_kinds_of_legacy_and_enhanced_headers() {
        let k = |sequence, keyframe| Kind { sequence, keyframe };
        assert_eq!(
            classify(true, &[0x17, 0]),
            k(true, false),
            "AVC sequence header"
        );
        assert_eq!(classify(true, &[0x17, 1]), k(false, true), "AVC keyframe");
        assert_eq!(
            classify(true, &[0x27, 1]),
            k(false, false),
            "AVC inter frame"
        );
        assert_eq!(
            classify(true, &[0x90, 0]),
            k(true, false),
            "Enhanced sequence start"
        );
        assert_eq!(
            classify(true, &[0x91, 0]),
            k(false, true),
            "Enhanced keyframe"
        );
        assert_eq!(
            classify(true, &[0xa1, 0]),
            k(false, false),
            "Enhanced inter frame"
        );
        assert_eq!(
            classify(false, &[0xaf, 0]),
            k(true, false),
            "AAC sequence header"
        );
        assert_eq!(classify(false, &[0xaf, 1]), k(false, false), "AAC frame");
        assert_eq!(classify(true, &[0x17]), Kind::default(), "too short");
        assert_eq!(classify(false, &[]), Kind::default());
    }

    #[test]
    fn any_body_serialises_without_panicking() {
        let mut rng = fastrand::Rng::with_seed(9);
        for _ in 0..2_000 {
            let body: Vec<u8> = (0..rng.usize(0..300)).map(|_| rng.u8(..)).collect();
            let video = rng.bool();
            let _ = classify(video, &body);
            let ms = rng.u32(..);
            let tag = flv_tag(if video { VIDEO } else { AUDIO }, ms, &body);
            assert_eq!(tag.len(), body.len() + 15);
        }
    }
}
