//! FLV tag bodies (as RTMP carries them) to MPEG-TS and back ([`FromTs`]), and their wire forms as
//! FLV tags and RTMP messages ([`wire`]), sans-I/O.
//!
//! ```text
//! video tag: FrameType(4) CodecID(4) | AVCPacketType(8) CompositionTime(SI24) | data
//!   AVC (7): packet type 0 = AVCDecoderConfigurationRecord, 1 = length-prefixed NAL units
//!   Enhanced RTMP: IsExHeader(1) FrameType(3) PacketType(4) | FourCC | ...
//!     PacketType 0 = sequence start (hvcC for 'hvc1'), 1 = coded frames (SI24 cts first),
//!     3 = coded frames without cts
//! audio tag: SoundFormat(4) rate(2) size(1) type(1) | AACPacketType(8) | data
//!   AAC (10): packet type 0 = AudioSpecificConfig, 1 = raw frame
//! ```
//! Video becomes Annex B (parameter sets before every keyframe), AAC gets ADTS headers, and both
//! are muxed by [`crate::ts::mux::Muxer`]: PTS = DTS + composition time. The muxer starts at the
//! first coded video frame (the sequence headers have come before it); audio before that is
//! dropped, so the stream starts at a keyframe. A publisher that has sent no video sequence
//! header after [`AUDIO_ONLY_AFTER_MS`] of AAC is audio alone (a radio stream): the muxer
//! starts then, without video. Video whose sequence header comes later joins the TS at its
//! first keyframe: the PMT is sent again naming it, its version one up
//! ([`Muxer::set_video`]). A publisher that switches codec (H.264 to H.265, a new sequence
//! header) is treated the same way: the TS names the new codec from its first keyframe on, and
//! frames of it before that are skipped. AV1 and VP9 are parsed and skipped (TS cannot carry
//! them here).

mod from_ts;
pub mod timeline;
pub mod wire;

pub use from_ts::{Clock, FromTs, Tag};

use crate::error::{Error, Result};
use crate::mp4::remux::{adts, annex_b, audio_specific_config, avcc, hvcc};
use crate::read::Reader;
use crate::ts::mux::{AccessUnit, Audio, Muxer, Video};

/// 1 s added to every timestamp so the PCR (a little behind DTS) never goes below zero.
const OFFSET_90K: u64 = 90_000;

/// AAC for this long without a video sequence header: the stream is audio alone.
pub const AUDIO_ONLY_AFTER_MS: u32 = 2_000;

#[derive(Debug, Default)]
pub struct ToTs {
    video: Option<(Video, usize, Vec<Vec<u8>>)>,
    aac: Option<(u8, u8, u8)>,
    muxer: Option<Muxer>,
    /// The first AAC frame's time, while the muxer waits for video.
    audio_from: Option<u32>,
    /// The muxer's video changed (it began to carry video after audio alone, or another codec):
    /// taken by [`ToTs::take_tracks_changed`], since an HLS playlist marks it.
    tracks_changed: bool,
    scratch: Vec<u8>,
    /// Coded frames skipped (before the sequence header, or of a codec TS cannot carry here).
    pub skipped: u64,
}

fn si24(b: &[u8]) -> i64 {
    let v = (i32::from(b[0]) << 16) | (i32::from(b[1]) << 8) | i32::from(b[2]);
    i64::from((v << 8) >> 8)
}

impl ToTs {
    /// The clock on which [`FromTs`] turns this TS back into tags with the timestamps they came
    /// with ([`FromTs::on_clock`]); `ms`: the newest timestamp muxed; `shift`: what the TS was
    /// shifted by after muxing (`Restamp::offset`, mod 2^33).
    pub fn clock(ms: u32, shift: u64) -> Clock {
        let offset = (OFFSET_90K + shift % crate::time::Ts90k::WRAP) as i64;
        Clock {
            first: offset,
            last: i64::from(ms) * 90 + offset,
        }
    }

    /// What to add (mod 2^33) to this muxer's timestamps to put them on `clock`'s timeline (the
    /// inverse of [`ToTs::clock`]): the TS of a stream whose tags [`FromTs`] times on `clock`.
    pub fn shift_onto(clock: Clock) -> u64 {
        let wrap = crate::time::Ts90k::WRAP as i64;
        (clock.first - OFFSET_90K as i64).rem_euclid(wrap) as u64
    }

    /// Codec names, once known.
    pub fn codecs(&self) -> (Option<&'static str>, Option<&'static str>) {
        let v = self.video.as_ref().map(|(v, _, _)| match v {
            Video::H264 => "h264",
            Video::H265 => "hevc",
        });
        (v, self.aac.map(|_| "aac"))
    }

    /// One video tag body at `ms` (the RTMP timestamp); appends TS packets to `out`.
    pub fn video(&mut self, body: &[u8], ms: u32, out: &mut Vec<u8>) -> Result<()> {
        let bad = |why: &str| Error::malformed("flv video", why.to_string());
        let b0 = *body.first().ok_or_else(|| bad("empty tag"))?;
        let (codec, packet, keyframe, cts, data, config): (
            Option<Video>,
            u8,
            bool,
            i64,
            &[u8],
            bool,
        );
        if b0 & 0x80 != 0 {
            // Enhanced RTMP.
            let fourcc = body.get(1..5).ok_or_else(|| bad("short extended header"))?;
            packet = b0 & 0x0f;
            keyframe = (b0 >> 4) & 0x07 == 1;
            codec = (fourcc == b"hvc1").then_some(Video::H265);
            match packet {
                0 => (cts, data, config) = (0, &body[5..], true),
                1 => {
                    let c = body.get(5..8).ok_or_else(|| bad("short coded frame"))?;
                    (cts, data, config) = (si24(c), &body[8..], false);
                }
                3 => (cts, data, config) = (0, &body[5..], false),
                _ => return Ok(()), // sequence end, metadata, multitrack: nothing to mux
            }
        } else {
            let id = b0 & 0x0f;
            keyframe = b0 >> 4 == 1;
            codec = match id {
                7 => Some(Video::H264),
                12 => Some(Video::H265),
                _ => None,
            };
            let h = body.get(1..5).ok_or_else(|| bad("short AVC header"))?;
            packet = h[0];
            match packet {
                0 => (cts, data, config) = (0, &body[5..], true),
                1 => (cts, data, config) = (si24(&h[1..4]), &body[5..], false),
                _ => return Ok(()),
            }
        }
        let Some(codec) = codec else {
            self.skipped += 1;
            return Ok(());
        };
        if config {
            let mut r = Reader::new(data, 0, "flv sequence header");
            let (nal_len, params) = match codec {
                Video::H264 => avcc(&mut r)?,
                Video::H265 => hvcc(&mut r)?,
            };
            self.video = Some((codec, nal_len, params));
            return Ok(());
        }
        let Some((vcodec, nal_len, params)) = &self.video else {
            self.skipped += 1;
            return Ok(());
        };
        if let Some(m) = self
            .muxer
            .as_mut()
            .filter(|m| m.video_codec() != Some(*vcodec))
        {
            // Late video, or a new codec: until its first keyframe the TS stays as it was (its
            // tables, its PCR, the old codec's frames); from it on the muxer names this codec.
            if !keyframe {
                self.skipped += 1;
                return Ok(());
            }
            m.set_video(*vcodec);
            self.tracks_changed = true;
        }
        let muxer = self
            .muxer
            .get_or_insert_with(|| Muxer::new(Some(*vcodec), self.aac.map(|_| Audio::Aac)));
        self.scratch.clear();
        annex_b(data, *nal_len, params, keyframe, &mut self.scratch)?;
        let dts = u64::from(ms) * 90 + OFFSET_90K;
        let pts = (dts as i64 + cts * 90).max(0) as u64;
        muxer.video(
            &AccessUnit {
                pts,
                dts,
                keyframe,
                data: &self.scratch,
            },
            out,
        );
        Ok(())
    }

    /// Whether the TS's video changed (video after audio alone, or another codec) since this
    /// was last asked.
    pub fn take_tracks_changed(&mut self) -> bool {
        std::mem::take(&mut self.tracks_changed)
    }

    /// One audio tag body at `ms`; appends TS packets to `out`.
    pub fn audio(&mut self, body: &[u8], ms: u32, out: &mut Vec<u8>) -> Result<()> {
        let (Some(&b0), Some(&packet)) = (body.first(), body.get(1)) else {
            return Err(Error::malformed("flv audio", "short tag"));
        };
        if b0 >> 4 != 10 {
            self.skipped += 1;
            return Ok(());
        }
        let data = &body[2..];
        if packet == 0 {
            self.aac = audio_specific_config(data);
            if let Some(m) = self.muxer.as_mut().filter(|m| m.audio_codec().is_none()) {
                // Audio configured after the TS began without it: named from the next tables.
                if self.aac.is_some() {
                    m.set_audio(Audio::Aac);
                    self.tracks_changed = true;
                }
            }
            return Ok(());
        }
        if self.muxer.is_none() && self.video.is_none() && self.aac.is_some() {
            let from = *self.audio_from.get_or_insert(ms);
            if ms.wrapping_sub(from) >= AUDIO_ONLY_AFTER_MS {
                self.muxer = Some(Muxer::new(None, Some(Audio::Aac)));
            }
        }
        let (Some((o, f, c)), Some(muxer)) = (self.aac, self.muxer.as_mut()) else {
            self.skipped += 1;
            return Ok(());
        };
        self.scratch.clear();
        adts(data, o, f, c, &mut self.scratch)?;
        let pts = u64::from(ms) * 90 + OFFSET_90K;
        muxer.audio(
            &AccessUnit {
                pts,
                dts: pts,
                keyframe: false,
                data: &self.scratch,
            },
            out,
        );
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tag as a publisher sends it: (video?, ms, body).
    pub(crate) type TestTag = (bool, u32, Vec<u8>);

    /// faststart.mp4 as an RTMP publisher sends it: (video?, ms, tag body), the sequence
    /// headers first (an avcC built from the parameter sets, an AAC config), then the frames
    /// in decode order.
    pub(crate) fn faststart_tags() -> (Vec<u8>, Vec<TestTag>) {
        use crate::mp4::remux::{tracks, Codec};
        let data = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../demo/faststart.mp4"
        ))
        .unwrap();
        let (video, audio) = tracks(&data).unwrap();
        let (video, audio) = (video.unwrap(), audio.unwrap());
        let Codec::H264 { params, .. } = &video.codec else {
            panic!()
        };
        let mut tags = Vec::new();
        let mut avcc = vec![0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1];
        avcc.extend_from_slice(&(params[0].len() as u16).to_be_bytes());
        avcc.extend_from_slice(&params[0]);
        avcc.push(1);
        avcc.extend_from_slice(&(params[1].len() as u16).to_be_bytes());
        avcc.extend_from_slice(&params[1]);
        tags.push((true, 0, avcc));
        let Codec::Aac {
            object_type,
            frequency_index,
            channels,
        } = audio.codec
        else {
            panic!()
        };
        let asc = [
            (object_type << 3) | (frequency_index >> 1),
            ((frequency_index & 1) << 7) | (channels << 3),
        ];
        tags.push((false, 0, vec![0xaf, 0, asc[0], asc[1]]));
        let ms = |dts: i64, scale: u32| (dts * 1000 / i64::from(scale)) as u32;
        let (mut vi, mut ai) = (0, 0);
        while vi < video.samples.len() || ai < audio.samples.len() {
            let vt = video.samples.get(vi).map(|s| ms(s.dts, video.timescale));
            let at = audio.samples.get(ai).map(|s| ms(s.dts, audio.timescale));
            let video_next = match (vt, at) {
                (Some(v), Some(a)) => v <= a,
                (v, _) => v.is_some(),
            };
            if video_next {
                let s = video.samples[vi];
                vi += 1;
                let mut tag = vec![if s.keyframe { 0x17 } else { 0x27 }, 1];
                let cts = (i64::from(s.cto) * 1000 / i64::from(video.timescale)) as i32;
                tag.extend_from_slice(&cts.to_be_bytes()[1..]);
                tag.extend_from_slice(&data[s.offset as usize..][..s.size as usize]);
                tags.push((true, vt.unwrap(), tag));
            } else {
                let s = audio.samples[ai];
                ai += 1;
                let mut tag = vec![0xaf, 1];
                tag.extend_from_slice(&data[s.offset as usize..][..s.size as usize]);
                tags.push((false, at.expect("audio left"), tag));
            }
        }
        (data, tags)
    }

    pub(crate) fn send(conv: &mut ToTs, (video, ms, tag): &TestTag, out: &mut Vec<u8>) {
        match video {
            true => conv.video(tag, *ms, out).unwrap(),
            false => conv.audio(tag, *ms, out).unwrap(),
        }
    }

    /// FLV tags from an MP4's samples, as an RTMP publisher would send them.
    #[test]
    fn an_mp4_sent_as_flv_tags_becomes_a_ts_with_the_same_keyframes() {
        let (data, tags) = faststart_tags();
        let mut conv = ToTs::default();
        let mut out = Vec::new();
        for t in &tags {
            send(&mut conv, t, &mut out);
        }
        assert_eq!(conv.codecs(), (Some("h264"), Some("aac")));
        let info = crate::ts::index(&out).unwrap();
        let src = crate::index::index(&data).unwrap();
        assert_eq!(info.keyframes.len(), src.keyframes.len());
        assert!((info.duration.as_secs_f64() - src.duration.as_secs_f64()).abs() < 0.1);
    }

    /// A video sequence header after the TS began without video, and no keyframe yet: the TS
    /// stays a radio stream (its tables and its audio cuts go on) until one comes.
    #[test]
    fn a_late_video_sequence_header_without_a_keyframe_changes_nothing_yet() {
        let (_, tags) = faststart_tags();
        let mut conv = ToTs::default();
        let mut out = Vec::new();
        for t in tags.iter().filter(|t| !t.0 && t.1 < 3000) {
            send(&mut conv, t, &mut out);
        }
        let before = out.len();
        let config = tags.iter().find(|t| t.0 && t.2[1] == 0).unwrap();
        send(&mut conv, config, &mut out);
        for t in tags.iter().filter(|t| !t.0 && (3000..6000).contains(&t.1)) {
            send(&mut conv, t, &mut out);
        }
        assert!(!conv.take_tracks_changed());
        // A splitter that follows the radio stream still cuts it at its audio after the header.
        let mut cuts = Vec::new();
        crate::ts::Splitter::default()
            .feed(&out, &mut cuts)
            .unwrap();
        let later = cuts
            .iter()
            .filter(|c| matches!(c, crate::ts::Cut::Keyframe { at, .. } if *at >= before))
            .count();
        assert!(later >= 5, "{later} cuts in the 3 s after the header");
        assert!(crate::ts::index(&out).unwrap().video.is_none());
    }

    /// Audio alone for 3 s (past the 2 s after which the TS begins without video), then the
    /// video's sequence header and its frames from 3 s on: the video joins the TS at its next
    /// keyframe (4 s), named by a PMT of the next version, which a live splitter follows.
    #[test]
    fn video_that_comes_after_the_ts_began_without_it_joins_at_its_next_keyframe() {
        let (_, tags) = faststart_tags();
        let mut conv = ToTs::default();
        let mut out = Vec::new();
        let audio_first = tags.iter().filter(|t| !t.0 && t.1 < 3000);
        let rest = tags.iter().filter(|t| t.0 && (t.1 >= 3000 || t.2[1] == 0));
        let rest = rest.chain(tags.iter().filter(|t| !t.0 && t.1 >= 3000));
        let mut rest: Vec<_> = rest.collect();
        rest.sort_by_key(|t| (t.1, t.2[1] != 0));
        for t in audio_first.chain(rest) {
            send(&mut conv, t, &mut out);
        }
        assert_eq!(conv.codecs(), (Some("h264"), Some("aac")));
        assert!(conv.take_tracks_changed() && !conv.take_tracks_changed());
        let info = crate::ts::index(&out).unwrap();
        assert!(info.video.is_some(), "the TS has video");
        // The keyframes at 4 s and 6 s (the index counts from the first), after 3 s of audio.
        let times: Vec<f64> = info
            .keyframes
            .iter()
            .map(|k| k.time.as_secs_f64())
            .collect();
        assert_eq!(times, [0.0, 2.0], "the keyframes after the video came");
        assert!(
            info.keyframes[0].offset > 100 * 188,
            "after the audio alone"
        );
        // A live splitter finds them too, after the PMT that names the video.
        let mut cuts = Vec::new();
        crate::ts::Splitter::default()
            .feed(&out, &mut cuts)
            .unwrap();
        let keyframes = cuts
            .iter()
            .filter(|c| matches!(c, crate::ts::Cut::Keyframe { .. }))
            .count();
        assert!(keyframes >= 2, "{cuts:?}");
    }

    /// H.264 and AAC for 4 s, then the publisher switches to H.265 (an `hvc1` sequence start,
    /// then its frames): from the first H.265 keyframe on, the PMT names H.265 (a live splitter
    /// that follows it says `hevc` and cuts at its keyframes), and the change is reported for
    /// the HLS playlist.
    #[test]
    fn a_publisher_that_switches_to_h265_gets_a_pmt_that_names_h265() {
        let (_, tags) = faststart_tags();
        let mut conv = ToTs::default();
        let mut out = Vec::new();
        for t in tags.iter().filter(|t| t.1 < 4000) {
            send(&mut conv, t, &mut out);
        }
        assert!(!conv.take_tracks_changed());
        let switched = out.len();
        let (mp4, hvcc) = crate::cmaf::tests::h265_mp4(2);
        let (video, _) = crate::mp4::remux::tracks(&mp4).unwrap();
        let video = video.unwrap();
        let ms = |t: i64| 4000 + (t * 1000 / i64::from(video.timescale)) as u32;
        let mut seq = vec![0x90];
        seq.extend_from_slice(b"hvc1");
        seq.extend_from_slice(&hvcc);
        conv.video(&seq, 4000, &mut out).unwrap();
        for s in &video.samples {
            let frame_type = if s.keyframe { 1 } else { 2 };
            let mut body = vec![0x80 | (frame_type << 4) | 1];
            body.extend_from_slice(b"hvc1");
            let cto = (ms(i64::from(s.cto)) - 4000).to_be_bytes();
            body.extend_from_slice(&cto[1..]);
            body.extend_from_slice(&mp4[s.offset as usize..][..s.size as usize]);
            conv.video(&body, ms(s.dts), &mut out).unwrap();
        }
        assert_eq!(conv.codecs().0, Some("hevc"));
        assert!(conv.take_tracks_changed() && !conv.take_tracks_changed());
        let mut splitter = crate::ts::Splitter::default();
        let mut cuts = Vec::new();
        splitter.feed(&out, &mut cuts).unwrap();
        assert_eq!(splitter.video_codec(), Some("hevc"), "the PMT names H.265");
        let keyframes_after = cuts
            .iter()
            .filter(|c| matches!(c, crate::ts::Cut::Keyframe { at, .. } if *at >= switched))
            .count();
        assert_eq!(keyframes_after, 2, "the two H.265 keyframes");
    }

    /// The AVC sequence header and the first keyframe, then the AAC configuration: the TS that
    /// began without audio names it from the next tables on (a PMT of the next version), its
    /// frames are muxed, and the change is reported for the HLS playlist.
    #[test]
    fn audio_configured_after_the_first_video_frame_joins_the_ts() {
        let (_, tags) = faststart_tags();
        let mut conv = ToTs::default();
        let mut out = Vec::new();
        let aac_config = tags.iter().find(|t| !t.0 && t.2[1] == 0).unwrap();
        let first_key = tags.iter().position(|t| t.0 && t.2[1] == 1).unwrap();
        for t in tags[..=first_key].iter().filter(|t| t.0) {
            send(&mut conv, t, &mut out);
        }
        send(&mut conv, aac_config, &mut out);
        for t in tags[first_key + 1..].iter().filter(|t| t.2[1] != 0) {
            send(&mut conv, t, &mut out);
        }
        assert_eq!(conv.codecs(), (Some("h264"), Some("aac")));
        assert!(conv.take_tracks_changed() && !conv.take_tracks_changed());
        let mut splitter = crate::ts::Splitter::default();
        splitter.feed(&out, &mut Vec::new()).unwrap();
        assert_eq!(splitter.audio_codecs(), ["aac"], "the PMT names AAC");
        // Its frames are muxed on the audio PID (a file index reads the first PMT only).
        let audio_packets = out
            .chunks(crate::ts::PACKET)
            .filter_map(crate::ts::header)
            .filter(|h| h.pid == crate::ts::mux::AUDIO_PID)
            .count();
        assert!(audio_packets > 100, "{audio_packets} audio packets");
    }

    #[test]
    fn garbage_tags_are_errors_or_skipped_never_panics() {
        let mut conv = ToTs::default();
        let mut out = Vec::new();
        assert!(conv.video(&[], 0, &mut out).is_err());
        assert!(conv.video(&[0x17, 0], 0, &mut out).is_err());
        assert!(
            conv.video(&[0x17, 0, 0, 0, 0, 1, 2], 0, &mut out).is_err(),
            "truncated avcC"
        );
        let mut rng = fastrand::Rng::with_seed(13);
        for _ in 0..5000 {
            let n = rng.usize(0..64);
            let d: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
            let _ = conv.video(&d, rng.u32(..), &mut out);
            let _ = conv.audio(&d, rng.u32(..), &mut out);
        }
        assert_eq!(out.len() % 188, 0);
    }
}
