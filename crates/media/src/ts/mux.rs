//! An MPEG-TS writer: access units in, 188-byte packets out (ISO/IEC 13818-1). One program; PAT
//! and PMT before every keyframe and at least every 100 ms; PES with PTS (and DTS when it
//! differs); PCR on the video PID on keyframes and at least every 40 ms; continuity counters per
//! PID; adaptation-field stuffing; random_access_indicator on keyframes; an access unit delimiter
//! before each H.264/H.265 access unit.

use super::PACKET;

pub const PMT_PID: u16 = 0x1000;
pub const VIDEO_PID: u16 = 0x100;
pub const AUDIO_PID: u16 = 0x101;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Video {
    H264,
    H265,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audio {
    /// AAC in ADTS frames.
    Aac,
}

/// Decode-ready data with its times (90 kHz, not wrapped: the muxer wraps them).
#[derive(Debug, Clone, Copy)]
pub struct AccessUnit<'a> {
    pub pts: u64,
    pub dts: u64,
    pub keyframe: bool,
    /// Annex B (video) or ADTS (audio).
    pub data: &'a [u8],
}

#[derive(Debug)]
pub struct Muxer {
    video: Option<Video>,
    audio: Option<Audio>,
    /// Continuity counters: PAT, PMT, video, audio.
    cc: [u8; 4],
    last_psi: Option<u64>,
    last_pcr: Option<u64>,
    /// The PMT's version (one up each time its streams change, [`Muxer::set_video`]).
    pmt_version: u8,
}

/// PCR runs this far behind DTS (the decoder's buffer time).
const PCR_DELAY: u64 = 9000;

impl Muxer {
    pub fn new(video: Option<Video>, audio: Option<Audio>) -> Self {
        Muxer {
            video,
            audio,
            cc: [0; 4],
            last_psi: None,
            last_pcr: None,
            pmt_version: 0,
        }
    }

    /// The audio codec muxed, if any.
    pub fn audio_codec(&self) -> Option<Audio> {
        self.audio
    }

    /// The video codec muxed, if any.
    pub fn video_codec(&self) -> Option<Video> {
        self.video
    }

    /// This video codec from now on, in a muxer that began without video (an RTMP publisher
    /// whose video came after its audio had been taken for a radio stream) or with another
    /// codec (a publisher that switched from H.264 to H.265): the PMT names it from the next
    /// access unit on, its version one up (a demuxer takes a PMT of the version it has already
    /// seen for the same table), and the PCR is on the video PID. Continuity counters go on.
    /// Nothing when this is the codec muxed already.
    pub fn set_video(&mut self, video: Video) {
        if self.video == Some(video) {
            return;
        }
        self.video = Some(video);
        self.pmt_version = (self.pmt_version + 1) & 0x1f;
        self.last_psi = None;
        self.last_pcr = None;
    }

    /// AAC from now on, in a muxer that began without audio (a publisher whose audio
    /// configuration came after its first video frame): the PMT names it from the next tables
    /// on, its version one up. Nothing when it is muxed already.
    pub fn set_audio(&mut self, audio: Audio) {
        if self.audio == Some(audio) {
            return;
        }
        self.audio = Some(audio);
        self.pmt_version = (self.pmt_version + 1) & 0x1f;
        self.last_psi = None;
    }

    pub fn video(&mut self, au: &AccessUnit<'_>, out: &mut Vec<u8>) {
        let Some(codec) = self.video else { return };
        if au.keyframe || due(self.last_psi, au.dts, 9000) {
            self.psi(out);
            self.last_psi = Some(au.dts);
        }
        let aud: &[u8] = match codec {
            Video::H264 => &[0, 0, 0, 1, 0x09, 0xf0],
            Video::H265 => &[0, 0, 0, 1, 0x46, 0x01, 0x50],
        };
        let pcr = (au.keyframe || due(self.last_pcr, au.dts, 3600))
            .then(|| au.dts.saturating_sub(PCR_DELAY));
        if let Some(p) = pcr {
            self.last_pcr = Some(p + PCR_DELAY);
        }
        let header = pes_header(0xe0, au.pts, au.dts, aud.len() + au.data.len(), true);
        self.packets(
            2,
            VIDEO_PID,
            &[&header, aud, au.data],
            au.keyframe,
            pcr,
            out,
        );
    }

    pub fn audio(&mut self, au: &AccessUnit<'_>, out: &mut Vec<u8>) {
        if self.audio.is_none() {
            return;
        }
        // Without video, the tables come every 100 ms (with video, before its keyframes).
        let tables = self.video.is_none() && due(self.last_psi, au.dts, 9000);
        if self.last_psi.is_none() || tables {
            self.psi(out);
            self.last_psi = Some(au.dts);
        }
        // Without video, the audio PID carries the PCR.
        let pcr = (self.video.is_none() && due(self.last_pcr, au.dts, 3600))
            .then(|| au.dts.saturating_sub(PCR_DELAY));
        if let Some(p) = pcr {
            self.last_pcr = Some(p + PCR_DELAY);
        }
        let header = pes_header(0xc0, au.pts, au.pts, au.data.len(), false);
        self.packets(3, AUDIO_PID, &[&header, au.data], false, pcr, out);
    }

    /// PAT and PMT.
    fn psi(&mut self, out: &mut Vec<u8>) {
        let pat = section(
            0x00,
            1,
            0,
            &[0x00, 0x01, 0xe0 | (PMT_PID >> 8) as u8, PMT_PID as u8],
        );
        self.psi_packet(0, 0, &pat, out);
        let pcr_pid = if self.video.is_some() {
            VIDEO_PID
        } else {
            AUDIO_PID
        };
        let mut body = vec![0xe0 | (pcr_pid >> 8) as u8, pcr_pid as u8, 0xf0, 0x00];
        let mut es = |stream_type: u8, pid: u16| {
            body.extend_from_slice(&[stream_type, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0x00]);
        };
        match self.video {
            Some(Video::H264) => es(0x1b, VIDEO_PID),
            Some(Video::H265) => es(0x24, VIDEO_PID),
            None => {}
        }
        if let Some(Audio::Aac) = self.audio {
            es(0x0f, AUDIO_PID);
        }
        let pmt = section(0x02, 1, self.pmt_version, &body);
        self.psi_packet(1, PMT_PID, &pmt, out);
    }

    fn psi_packet(&mut self, slot: usize, pid: u16, section: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[
            0x47,
            0x40 | (pid >> 8) as u8,
            pid as u8,
            0x10 | self.cc[slot],
            0,
        ]);
        out.extend_from_slice(section);
        out.resize(start + PACKET, 0xff);
        self.cc[slot] = (self.cc[slot] + 1) & 0x0f;
    }

    /// Splits a PES (given as consecutive parts) into packets.
    fn packets(
        &mut self,
        slot: usize,
        pid: u16,
        parts: &[&[u8]],
        random_access: bool,
        pcr: Option<u64>,
        out: &mut Vec<u8>,
    ) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut part = 0;
        let mut at = 0;
        let mut left = total;
        let mut first = true;
        while left > 0 {
            // The adaptation field (after its length byte): flags, PCR, stuffing.
            let mut af: Vec<u8> = Vec::new();
            if first && (random_access || pcr.is_some()) {
                af.push(
                    if random_access { 0x40 } else { 0 } | if pcr.is_some() { 0x10 } else { 0 },
                );
                if let Some(base) = pcr {
                    let b = base % (1 << 33);
                    af.extend_from_slice(&[
                        (b >> 25) as u8,
                        (b >> 17) as u8,
                        (b >> 9) as u8,
                        (b >> 1) as u8,
                        ((b & 1) << 7) as u8 | 0x7e,
                        0,
                    ]);
                }
            }
            let mut af_len = if af.is_empty() { 0 } else { 1 + af.len() };
            let space = 184 - af_len;
            if left < space {
                let stuff = space - left;
                if af_len == 0 {
                    if stuff >= 2 {
                        af.push(0);
                        af.resize(stuff - 1, 0xff);
                    }
                    af_len = stuff;
                } else {
                    af.resize(af.len() + stuff, 0xff);
                    af_len += stuff;
                }
            }
            let afc = if af_len > 0 { 0x30 } else { 0x10 };
            let pusi = if first { 0x40 } else { 0 };
            out.extend_from_slice(&[
                0x47,
                pusi | (pid >> 8) as u8,
                pid as u8,
                afc | self.cc[slot],
            ]);
            self.cc[slot] = (self.cc[slot] + 1) & 0x0f;
            if af_len > 0 {
                out.push((af_len - 1) as u8);
                out.extend_from_slice(&af);
            }
            let mut room = 184 - af_len;
            while room > 0 {
                let p = parts[part];
                let n = room.min(p.len() - at);
                out.extend_from_slice(&p[at..at + n]);
                at += n;
                room -= n;
                left -= n;
                if at == p.len() {
                    part += 1;
                    at = 0;
                    while part < parts.len() && parts[part].is_empty() {
                        part += 1;
                    }
                }
            }
            first = false;
        }
    }
}

/// A PES header with PTS (and DTS when it differs), for `len` bytes of payload. Video PES with
/// more than 65,535 bytes get the unbounded length 0, as the standard allows for video in TS.
fn pes_header(stream_id: u8, pts: u64, dts: u64, len: usize, video: bool) -> Vec<u8> {
    let with_dts = dts != pts;
    let hdr_len = if with_dts { 10 } else { 5 };
    let pes_len = 3 + hdr_len + len;
    let pes_len = if pes_len > 0xffff {
        debug_assert!(video, "audio PES fits in 64 KiB");
        0
    } else {
        pes_len
    };
    let mut h = vec![
        0,
        0,
        1,
        stream_id,
        (pes_len >> 8) as u8,
        pes_len as u8,
        0x80,
    ];
    h.push(if with_dts { 0xc0 } else { 0x80 });
    h.push(hdr_len as u8);
    h.extend_from_slice(&timestamp(if with_dts { 3 } else { 2 }, pts));
    if with_dts {
        h.extend_from_slice(&timestamp(1, dts));
    }
    h
}

fn timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    let t = ts % (1 << 33);
    [
        (prefix << 4) | (((t >> 30) as u8 & 7) << 1) | 1,
        (t >> 22) as u8,
        (((t >> 15) as u8) << 1) | 1,
        (t >> 7) as u8,
        ((t as u8) << 1) | 1,
    ]
}

/// A PSI section with its CRC: table id, table id extension, then the body.
fn section(table_id: u8, extension: u16, version: u8, body: &[u8]) -> Vec<u8> {
    let len = 5 + body.len() + 4;
    let mut s = vec![
        table_id,
        0xb0 | (len >> 8) as u8,
        len as u8,
        (extension >> 8) as u8,
        extension as u8,
        0xc1 | (version & 0x1f) << 1,
        0,
        0,
    ];
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, not reflected, initial 0xFFFFFFFF).
pub(crate) fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Remuxes an MP4 held in memory (H.264/H.265 video, AAC audio) into MPEG-TS.
pub fn from_mp4(data: &[u8]) -> crate::error::Result<Vec<u8>> {
    use crate::mp4::remux::{self, Codec};
    let (video, audio) = remux::tracks(data)?;
    if video.is_none() && audio.is_none() {
        return Err(crate::Error::malformed(
            "mp4",
            "no H.264, H.265 or AAC track to remux",
        ));
    }
    let vcodec = video.as_ref().map(|t| match t.codec {
        Codec::H265 { .. } => Video::H265,
        _ => Video::H264,
    });
    let acodec = audio.as_ref().map(|_| Audio::Aac);
    let mut mux = Muxer::new(vcodec, acodec);
    let to90k = |t: i64, scale: u32| -> u64 {
        // 1 s of headroom so that negative composition offsets stay positive.
        (i128::from(t) * 90_000 / i128::from(scale.max(1)) + 90_000).max(0) as u64
    };
    let mut out = Vec::with_capacity(data.len() + data.len() / 10);
    let mut buf = Vec::new();
    let (mut vi, mut ai) = (0, 0);
    let empty = Vec::new();
    let vs = video.as_ref().map_or(&empty, |t| &t.samples);
    let as_ = audio.as_ref().map_or(&empty, |t| &t.samples);
    loop {
        let vt = vs
            .get(vi)
            .map(|s| to90k(s.dts, video.as_ref().map_or(1, |t| t.timescale)));
        let at = as_
            .get(ai)
            .map(|s| to90k(s.dts, audio.as_ref().map_or(1, |t| t.timescale)));
        let take_video = match (vt, at) {
            (None, None) => break,
            (Some(v), Some(a)) => v <= a,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        buf.clear();
        if take_video {
            let (s, t) = (&vs[vi], video.as_ref().expect("has samples"));
            vi += 1;
            let bytes = slice(data, s.offset, s.size)?;
            let (Codec::H264 { nal_len, params } | Codec::H265 { nal_len, params }) = &t.codec
            else {
                continue;
            };
            remux::annex_b(bytes, *nal_len, params, s.keyframe, &mut buf)?;
            let dts = to90k(s.dts, t.timescale);
            let pts = to90k(s.dts + i64::from(s.cto), t.timescale);
            mux.video(
                &AccessUnit {
                    pts,
                    dts,
                    keyframe: s.keyframe,
                    data: &buf,
                },
                &mut out,
            );
        } else {
            let (s, t) = (&as_[ai], audio.as_ref().expect("has samples"));
            ai += 1;
            let bytes = slice(data, s.offset, s.size)?;
            let Codec::Aac {
                object_type,
                frequency_index,
                channels,
            } = t.codec
            else {
                continue;
            };
            remux::adts(bytes, object_type, frequency_index, channels, &mut buf)?;
            let pts = to90k(s.dts, t.timescale);
            mux.audio(
                &AccessUnit {
                    pts,
                    dts: pts,
                    keyframe: false,
                    data: &buf,
                },
                &mut out,
            );
        }
    }
    Ok(out)
}

fn slice(data: &[u8], offset: u64, size: u32) -> crate::error::Result<&[u8]> {
    let start = usize::try_from(offset).ok();
    let end = start.and_then(|s| s.checked_add(size as usize));
    match (start, end) {
        (Some(s), Some(e)) if e <= data.len() => Ok(&data[s..e]),
        _ => Err(crate::Error::Truncated {
            what: "mp4 sample",
            offset,
            needed: u64::from(size),
            available: (data.len() as u64).saturating_sub(offset),
        }),
    }
}

/// Whether `every` (90 kHz) has passed since `last` at `dts` (never: at once). Times are compared
/// on the 33-bit clock the packets carry: a muxer fed 32-bit millisecond timestamps (RTMP's)
/// sees them wrap after 49.7 days, where the 33-bit clock goes on (2^32 ms is 45 x 2^33 ticks);
/// a time that went back is due at once.
fn due(last: Option<u64>, dts: u64, every: u64) -> bool {
    let wrap = crate::time::Ts90k::WRAP;
    last.is_none_or(|t| dts.wrapping_sub(t) & (wrap - 1) >= every)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Audio alone, its millisecond clock wrapping at 2^32 (the 90 kHz times drop by 45 x
    /// 2^33, the same 33-bit times): a PCR every 40 ms at most on both sides of the wrap.
    #[test]
    fn audio_alone_carries_a_pcr_across_the_wrap_of_a_millisecond_clock() {
        let mut m = Muxer::new(None, Some(Audio::Aac));
        let mut pcr_at = Vec::new();
        for n in 0..100u32 {
            let ms = (u32::MAX - 1000).wrapping_add(n * 21);
            // As `flv::ToTs` times them: 1 s on.
            let dts = u64::from(ms) * 90 + 90_000;
            let mut out = Vec::new();
            let au = AccessUnit {
                pts: dts,
                dts,
                keyframe: false,
                data: &[0xff, 0xf1, 0x50, 0x80, 0x01, 0x7f, 0xfc, 0],
            };
            m.audio(&au, &mut out);
            // A PCR: an adaptation field whose flags say so.
            if out
                .chunks_exact(PACKET)
                .any(|p| p[3] & 0x20 != 0 && p[4] > 0 && p[5] & 0x10 != 0)
            {
                pcr_at.push(n);
            }
        }
        let gaps = pcr_at.windows(2).map(|w| w[1] - w[0]).max();
        assert!(gaps.is_some_and(|g| g <= 2), "PCRs at frames {pcr_at:?}");
        assert!(pcr_at.last() >= Some(&97), "{pcr_at:?}");
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
    }

    #[test]
    fn packets_are_whole_and_counters_step() {
        let mut m = Muxer::new(Some(Video::H264), Some(Audio::Aac));
        let mut out = Vec::new();
        for (i, len) in [10usize, 183, 184, 185, 1000, 70_000].iter().enumerate() {
            let data = vec![i as u8; *len];
            let t = i as u64 * 3000;
            m.video(
                &AccessUnit {
                    pts: t + 3000,
                    dts: t,
                    keyframe: i % 2 == 0,
                    data: &data,
                },
                &mut out,
            );
            m.audio(
                &AccessUnit {
                    pts: t,
                    dts: t,
                    keyframe: false,
                    data: &data[..len.min(&5000).to_owned()],
                },
                &mut out,
            );
        }
        assert_eq!(out.len() % PACKET, 0);
        let info = crate::ts::index(&out);
        assert!(info.is_ok(), "{info:?}");
        let mut last = std::collections::HashMap::new();
        for p in out.chunks_exact(PACKET) {
            let h = super::super::header(p).expect("valid packet");
            if let Some(prev) = last.insert(h.pid, h.cc) {
                assert_eq!(h.cc, (prev + 1) & 15, "pid {}", h.pid);
            }
        }
        assert_eq!(info.unwrap().keyframes.len(), 3);
    }
}
