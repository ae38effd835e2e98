//! MPEG-TS to FLV tag bodies, sans-I/O: the reverse of [`super::ToTs`], so that a stream
//! published over HTTP as MPEG-TS can be watched as HTTP-FLV and over RTMP.
//!
//! PES packets are reassembled per PID (a video PES without a length ends where the next one
//! starts, so a frame comes out one frame late; a PES with a length ends when complete, but a
//! video one declared at about 64 KiB waits for the next, and a video PES without a time that
//! does not begin with an access unit delimiter is the rest of the frame before it). H.264 Annex B
//! becomes length-prefixed NAL units with an AVCDecoderConfigurationRecord built from the
//! stream's SPS and PPS; AAC ADTS frames become raw frames with an AudioSpecificConfig from the
//! ADTS header. H.265 and Opus become enhanced-RTMP tags (FourCC `hvc1`, with an `hvcC` built
//! from the VPS, SPS and PPS; FourCC `Opus`, with an `OpusHead`, each packet out of its TS
//! control header). Times are milliseconds from the first video DTS (33-bit wrap unwrapped), or
//! the first audio one of a stream without video; audio from before that time is dropped (a
//! conversion that starts at a keyframe, as an edge's does, gets audio PES that began before it).
//! Other codecs are skipped (counted).

use crate::nal;
use crate::time::{Ts90k, Unwrapper};
use crate::ts::psi::Sections;
use crate::ts::{header, opus, pat_pmt_pid, pes_header, pmt_streams, Stream, PACKET};
use sets::Sets;

mod sets;

/// One FLV tag body to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub video: bool,
    /// A sequence header (AVC decoder configuration or AAC AudioSpecificConfig).
    pub sequence: bool,
    pub keyframe: bool,
    pub ms: u32,
    pub body: Vec<u8>,
}

#[derive(Debug, Default)]
struct Pes {
    data: Vec<u8>,
    pts: Option<Ts90k>,
    dts: Option<Ts90k>,
    /// Bytes the PES header declares after its own header (0: unbounded).
    expected: usize,
    /// Its declared length is at the bound ([`SPLIT_LENGTH`]): a video frame that may go on in
    /// the next PES, without a time.
    bounded: bool,
}

/// A declared video PES length from which the frame may go on in the next PES (muxers that
/// bound their PES fill each to about 64 KiB before the next): such a PES waits for the next
/// one to start. A shorter one is a whole frame, out as soon as it is complete.
const SPLIT_LENGTH: usize = 0xF000;

/// While a stream whose PMT lists video has sent no decoder configuration yet (a conversion that
/// began mid-GOP), audio frames are held back, up to this far into it: so that a viewer, and the
/// fMP4 writer, start with both tracks at the first keyframe instead of with audio alone.
const AUDIO_ALONE_AFTER_MS: u32 = 10_000;

/// Most audio PES (and bytes) kept while the first video PES completes.
const EARLY_AUDIO: (usize, usize) = (64, 1 << 20);

/// Largest PES gathered before it is dropped (a stream without PES starts for a long time).
const MAX_PES: usize = 16 << 20;

/// Milliseconds of a non-negative 90 kHz time (0 for one before the start), wrapping at 2^32
/// as RTMP's and FLV's timestamps do (after 49.7 days; the fMP4 timeline unwraps them).
fn ms_of(at: i64) -> u32 {
    (at.max(0) / 90) as u32
}

/// AAC sampling rates by frequency index.
const RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// The clock a conversion's tags are timed on: the unwrapped 90 kHz time that is 0 ms, and the
/// newest unwrapped time seen. A second conversion of the same stream started on it (from a
/// recording of it) gives every frame the same time as the first did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub first: i64,
    pub last: i64,
}

#[derive(Debug, Default)]
pub struct FromTs {
    /// The PAT's and PMT's sections, gathered over packets.
    pat: Sections,
    pmt: Sections,
    pmt_pid: Option<u16>,
    video_pid: Option<u16>,
    audio_pid: Option<u16>,
    /// The video is H.265 (else H.264); the audio Opus (else AAC).
    hevc: bool,
    opus: bool,
    video: Pes,
    audio: Pes,
    vps: Option<Vec<u8>>,
    sps: Sets,
    pps: Sets,
    /// The video decoder configuration record last sent (avcC or hvcC).
    config_sent: Option<Vec<u8>>,
    asc_sent: Option<[u8; 2]>,
    /// Opus channels of the OpusHead last sent.
    opus_sent: Option<u8>,
    /// The Opus encoder's pre-skip: the start trim of the stream's first packet.
    opus_pre_skip: u16,
    clock: Unwrapper,
    /// The DTS times are counted from (90 kHz, unwrapped): the first video PES's, or where
    /// audio went on alone (see [`AUDIO_ALONE_AFTER_MS`]).
    first: Option<i64>,
    /// The first audio DTS seen while video was awaited.
    audio_first: Option<i64>,
    /// Audio PES that completed before the first video PES (a video PES completes one frame
    /// late): converted once the video has started the clock (bounded by [`EARLY_AUDIO`]).
    early_audio: std::collections::VecDeque<Pes>,
    /// The clock was started by audio alone (the video stayed away), or audio frames went out
    /// while no video was declared (a stream that began as audio alone and whose video joins
    /// later): audio is not held.
    audio_alone: bool,
    /// The time of the first frame this conversion timed (ms): audio is held for
    /// [`AUDIO_ALONE_AFTER_MS`] from there, also on another conversion's clock.
    began: Option<u32>,
    /// Frames skipped (codec not carried, or before the decoder configuration).
    pub skipped: u64,
}

impl FromTs {
    /// A conversion timed on `clock` (from [`FromTs::clock`] of another conversion of the same
    /// stream, or an RTMP source's, see `ToTs`): its times are unwrapped near `clock.last`, so it
    /// may start up to half the 33-bit period (13 h) before or after that.
    pub fn on_clock(clock: Clock) -> Self {
        FromTs {
            first: Some(clock.first),
            clock: Unwrapper::near(clock.last),
            ..FromTs::default()
        }
    }

    /// Bytes held for the PES being gathered (video and audio; at most 16 MiB each): what the
    /// conversion holds of the stream besides its output.
    pub fn holding(&self) -> usize {
        self.video.data.capacity() + self.audio.data.capacity()
    }

    /// The clock its tags are timed on, once it has begun.
    pub fn clock(&self) -> Option<Clock> {
        Some(Clock {
            first: self.first?,
            last: self.clock.last()?,
        })
    }

    /// Looks at whole packets; appends the tags that completed.
    pub fn feed(&mut self, packets: &[u8], out: &mut Vec<Tag>) {
        for p in packets.chunks_exact(PACKET) {
            let Some(h) = header(p) else { continue };
            if !h.has_payload {
                continue;
            }
            let payload = &p[h.payload_start..];
            if h.pid == 0 {
                let mut found = None;
                self.pat
                    .push(h.pusi, payload, |s| found = pat_pmt_pid(s).or(found));
                if found.is_some() && found != self.pmt_pid {
                    self.pmt = Sections::default();
                    self.pmt_pid = found;
                }
            } else if Some(h.pid) == self.pmt_pid {
                let mut streams = None;
                self.pmt.push(h.pusi, payload, |s| {
                    streams = pmt_streams(s).or(streams.take())
                });
                if let Some(streams) = streams {
                    self.program(&streams, out);
                }
            } else if Some(h.pid) == self.video_pid {
                self.collect(true, h.pusi, payload, out);
            } else if Some(h.pid) == self.audio_pid {
                self.collect(false, h.pusi, payload, out);
            }
        }
    }

    /// The PMT: its first video and first audio stream. A conversion that runs across a
    /// publisher's sessions (a DVR viewer's) may see the next session declare them on other PIDs
    /// or with another codec: it follows. The frame still held from the stream before (a video
    /// PES has no length: it ends when the next begins) goes out first, as what it was; a new
    /// codec starts without the old one's configuration.
    fn program(&mut self, streams: &[Stream], out: &mut Vec<Tag>) {
        let video = streams.iter().find(|s| {
            matches!(
                (s.stream_type, s.registration.as_ref()),
                (0x1b | 0x24, _) | (0x06, Some(b"HEVC"))
            )
        });
        if let Some(v) = video {
            let hevc = v.stream_type != 0x1b;
            if self.video_pid != Some(v.pid) || self.hevc != hevc {
                self.flush(true, out);
                if self.hevc != hevc {
                    (self.vps, self.config_sent) = (None, None);
                    (self.sps, self.pps) = (Sets::default(), Sets::default());
                }
                self.video_pid = Some(v.pid);
                self.hevc = hevc;
            }
        }
        let audio = streams.iter().find(|s| {
            matches!(
                (s.stream_type, s.registration.as_ref()),
                (0x0f, _) | (0x06, Some(b"Opus"))
            )
        });
        if let Some(a) = audio {
            let opus = a.stream_type == 0x06;
            if self.audio_pid != Some(a.pid) || self.opus != opus {
                self.flush(false, out);
                if self.opus != opus {
                    (self.asc_sent, self.opus_sent, self.opus_pre_skip) = (None, None, 0);
                }
                self.audio_pid = Some(a.pid);
                self.opus = opus;
            }
        }
    }

    /// The frame held for `video` (or audio), out as it is.
    fn flush(&mut self, video: bool, out: &mut Vec<Tag>) {
        let held = std::mem::take(self.pes(video));
        if !held.data.is_empty() {
            self.emit(video, held, out);
        }
    }

    fn pes(&mut self, video: bool) -> &mut Pes {
        if video {
            &mut self.video
        } else {
            &mut self.audio
        }
    }

    fn collect(&mut self, video: bool, start: bool, payload: &[u8], out: &mut Vec<Tag>) {
        let declared = |body: usize| {
            let n = usize::from(u16::from_be_bytes([payload[4], payload[5]]));
            (n.saturating_sub(body.saturating_sub(6)), n >= SPLIT_LENGTH)
        };
        let head = pes_header(payload).filter(|_| start);
        let goes_on = head.is_some_and(|(pts, _, body)| {
            pts.is_none()
                && video
                && self.video.pts.is_some()
                && !self.begins_access_unit(&payload[body..])
        });
        if let (Some((_, _, body)), true) = (head, goes_on) {
            // A video PES without a time that does not begin with an access unit delimiter:
            // the rest of the frame before it (a muxer that splits a large frame over PES
            // packets of bounded length times only the first).
            let (rest, bounded) = declared(body);
            let pes = &mut self.video;
            pes.expected = if rest > 0 { pes.data.len() + rest } else { 0 };
            pes.bounded = bounded;
            self.gather(true, &payload[body..]);
        } else if start {
            let done = std::mem::take(self.pes(video));
            if !done.data.is_empty() {
                self.emit(video, done, out);
            }
            let Some((pts, dts, body)) = head else {
                return;
            };
            let (expected, bounded) = declared(body);
            let pes = self.pes(video);
            (pes.expected, pes.bounded) = (expected, bounded);
            pes.pts = pts;
            pes.dts = dts.or(pts);
            pes.data.extend_from_slice(&payload[body..]);
        } else {
            if self.pes(video).pts.is_none() {
                return; // no PES start seen yet
            }
            self.gather(video, payload);
        }
        let pes = self.pes(video);
        // A video PES declared at the bound ends where the next begins: the next may be the
        // rest of its frame, without a time.
        if pes.expected > 0 && pes.data.len() >= pes.expected && !(video && pes.bounded) {
            let done = std::mem::take(pes);
            self.emit(video, done, out);
        }
    }

    /// `bytes` added to the PES being gathered (dropped, with it, past [`MAX_PES`]).
    fn gather(&mut self, video: bool, bytes: &[u8]) {
        let pes = self.pes(video);
        pes.data.extend_from_slice(bytes);
        if pes.data.len() > MAX_PES {
            *pes = Pes::default();
            self.skipped += 1;
        }
    }

    /// Whether video PES data begins with an access unit delimiter (a new frame).
    fn begins_access_unit(&self, data: &[u8]) -> bool {
        let coded = data.starts_with(&[0, 0, 1]) || data.starts_with(&[0, 0, 0, 1]);
        coded
            && nal::annex_b(data)
                .next()
                .is_some_and(|unit| match self.hevc {
                    false => unit.first().is_some_and(|b| b & 0x1f == 9),
                    true => unit.first().is_some_and(|b| (b >> 1) & 0x3f == 35),
                })
    }

    fn emit(&mut self, video: bool, pes: Pes, out: &mut Vec<Tag>) {
        let (Some(pts), Some(dts)) = (pes.pts, pes.dts) else {
            return;
        };
        let t = self.clock.unwrap(dts);
        if !video && self.first.is_none() && self.video_pid.is_some() {
            // Audio before any video: it does not start the clock (the video keyframe that
            // follows may be earlier than it), unless the video stays away.
            let waited = t.saturating_sub(*self.audio_first.get_or_insert(t));
            if waited < i64::from(AUDIO_ALONE_AFTER_MS) * 90 {
                // Kept newest first: the oldest is what the video's clock would drop anyway.
                self.early_audio.push_back(pes);
                let held = |q: &std::collections::VecDeque<Pes>| {
                    q.iter().map(|p| p.data.len()).sum::<usize>()
                };
                while self.early_audio.len() > EARLY_AUDIO.0
                    || (self.early_audio.len() > 1 && held(&self.early_audio) > EARLY_AUDIO.1)
                {
                    self.early_audio.pop_front();
                    self.skipped += 1;
                }
                return;
            }
            self.audio_alone = true;
        }
        let first = *self.first.get_or_insert(t);
        let early = std::mem::take(&mut self.early_audio);
        // 90 kHz ticks from the first; an audio PES may begin before it (its earlier frames are
        // dropped, so that no two frames share a time).
        let at = t.saturating_sub(first);
        self.began.get_or_insert(ms_of(at));
        // PTS after DTS by less than half the 33-bit period (a wrap between them included);
        // one before it (invalid: a frame shown before it is decoded) is shown at its decode
        // time, not 2.3 hours on.
        let ahead = pts.0.wrapping_sub(dts.0) & (Ts90k::WRAP - 1);
        let ahead = if ahead > Ts90k::WRAP / 2 { 0 } else { ahead };
        let cts = (ahead / 90).min(0x7f_ffff) as u32;
        if video {
            self.video_frame(&pes.data, ms_of(at), cts, out);
        } else if self.opus {
            self.opus_packets(&pes.data, at, out);
        } else {
            self.audio_frames(&pes.data, at, out);
        }
        // The audio that completed before the clock started, on it now (what began before the
        // first video frame is dropped).
        for pes in early {
            self.emit(false, pes, out);
        }
    }

    /// The video decoder configuration record of the parameter sets seen, and the tag that
    /// carries it.
    fn video_config(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let (sps, pps) = (self.sps.first()?, self.pps.first()?);
        if self.hevc {
            let record = nal::hevc_config(self.vps.as_ref()?, sps, pps)?;
            // Enhanced RTMP: IsExHeader, keyframe, packet type 0 (sequence start), FourCC.
            let mut tag = vec![0x90, b'h', b'v', b'c', b'1'];
            tag.extend_from_slice(&record);
            return Some((record, tag));
        }
        if sps.len() < 4 {
            return None;
        }
        // Profile, constraints and level of the first SPS; every SPS and PPS, each after its
        // length (the sets are bounded in number and length, see [`Sets::keep`]).
        let mut c = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe0 | self.sps.len() as u8];
        for (n, sets) in [&self.sps, &self.pps].into_iter().enumerate() {
            if n == 1 {
                c.push(self.pps.len() as u8);
            }
            for unit in sets.all() {
                c.extend_from_slice(&u16::try_from(unit.len()).ok()?.to_be_bytes());
                c.extend_from_slice(unit);
            }
        }
        let mut tag = vec![0x17, 0, 0, 0, 0];
        tag.extend_from_slice(&c);
        Some((c, tag))
    }

    fn video_frame(&mut self, data: &[u8], ms: u32, cts: u32, out: &mut Vec<Tag>) {
        let mut key = false;
        let cts = [(cts >> 16) as u8, (cts >> 8) as u8, cts as u8];
        // Legacy AVC: frame type and codec, packet type 1, composition time. Enhanced HEVC:
        // IsExHeader, frame type, packet type 1 (coded frames), FourCC, composition time.
        let mut body = match self.hevc {
            false => vec![0, 1, cts[0], cts[1], cts[2]],
            true => vec![0, b'h', b'v', b'c', b'1', cts[0], cts[1], cts[2]],
        };
        let head = body.len();
        for unit in nal::annex_b(data) {
            let Some(&b) = unit.first() else { continue };
            // The parameter set a unit is (VPS, SPS, PPS), whether it is left out, and whether
            // it is a keyframe's.
            let (param, skip, irap) = match self.hevc {
                false => match b & 0x1f {
                    7 => (Some(Param::Sps), false, false),
                    8 => (Some(Param::Pps), false, false),
                    // An access unit delimiter is not carried in FLV.
                    t => (None, t == 9, t == 5),
                },
                true => match (b >> 1) & 0x3f {
                    32 => (Some(Param::Vps), false, false),
                    33 => (Some(Param::Sps), false, false),
                    34 => (Some(Param::Pps), false, false),
                    t => (None, t == 35, (16..=21).contains(&t)),
                },
            };
            if let Some(kind) = param {
                let id = if self.hevc {
                    Some(0)
                } else {
                    sets::avc_id(unit)
                };
                match (kind, id) {
                    (Param::Vps, _) => self.vps = Some(unit.to_vec()),
                    (Param::Sps, Some(id)) => self.sps.keep(id, unit),
                    (Param::Pps, Some(id)) => self.pps.keep(id, unit),
                    _ => {}
                }
            } else if !skip {
                key |= irap;
                body.extend_from_slice(&(unit.len() as u32).to_be_bytes());
                body.extend_from_slice(unit);
            }
        }
        if let Some((record, tag)) = self.video_config() {
            if self.config_sent.as_ref() != Some(&record) {
                out.push(Tag {
                    video: true,
                    sequence: true,
                    keyframe: false,
                    ms,
                    body: tag,
                });
                self.config_sent = Some(record);
            }
        }
        if self.config_sent.is_none() || body.len() == head {
            self.skipped += 1;
            return;
        }
        body[0] = match (self.hevc, key) {
            (false, true) => 0x17,
            (false, false) => 0x27,
            (true, true) => 0x91,
            (true, false) => 0xa1,
        };
        out.push(Tag {
            video: true,
            sequence: false,
            keyframe: key,
            ms,
            body,
        });
    }

    /// Opus packets out of their TS control headers, each a tag (after an `OpusHead` when the
    /// channels change), timed from the PES's by the packets before it.
    fn opus_packets(&mut self, data: &[u8], at: i64, out: &mut Vec<Tag>) {
        let ms = ms_of(at);
        let hold = self.holds_audio(ms);
        for p in opus::packets(data) {
            let (at_us, packet) = (p.at_us, p.data);
            if let Some(trim) = p.start_trim.filter(|_| self.opus_sent.is_none()) {
                self.opus_pre_skip = trim;
            }
            // A stereo encoder sends mono packets at low bitrates: the channels only ever grow
            // (a stereo decoder plays mono packets), so the configuration does not flip.
            let channels = opus::channels(packet);
            if self.opus_sent.is_none_or(|sent| channels > sent) {
                // Enhanced audio: SoundFormat 9, packet type 0 (sequence start), FourCC, then
                // the identification header (RFC 7845 §5.1, little-endian): version 1, the
                // channels, the pre-skip (the first packet's start trim), 48 kHz, no gain,
                // mapping family 0.
                let mut body = vec![0x90, b'O', b'p', b'u', b's'];
                body.extend_from_slice(b"OpusHead");
                body.extend_from_slice(&[1, channels]);
                body.extend_from_slice(&self.opus_pre_skip.to_le_bytes());
                body.extend_from_slice(&48_000u32.to_le_bytes());
                body.extend_from_slice(&[0, 0, 0]);
                out.push(Tag {
                    video: false,
                    sequence: true,
                    keyframe: false,
                    ms,
                    body,
                });
                self.opus_sent = Some(channels);
            }
            let packet_at =
                at.saturating_add(i64::try_from(at_us).unwrap_or(i64::MAX).saturating_mul(9) / 100);
            if hold || packet_at < 0 {
                self.skipped += 1;
                continue;
            }
            self.audio_alone |= self.video_pid.is_none();
            let mut body = vec![0x91, b'O', b'p', b'u', b's'];
            body.extend_from_slice(packet);
            out.push(Tag {
                video: false,
                sequence: false,
                keyframe: false,
                ms: ms_of(packet_at),
                body,
            });
        }
    }

    /// Whether audio at `ms` waits for the video's configuration (see [`AUDIO_ALONE_AFTER_MS`]).
    fn holds_audio(&self, ms: u32) -> bool {
        self.video_pid.is_some()
            && self.config_sent.is_none()
            && !self.audio_alone
            && ms < self.began.unwrap_or(0).saturating_add(AUDIO_ALONE_AFTER_MS)
    }

    fn audio_frames(&mut self, mut data: &[u8], at: i64, out: &mut Vec<Tag>) {
        let mut n = 0i64;
        let ms = ms_of(at);
        let hold = self.holds_audio(ms);
        while data.len() >= 7 && data[0] == 0xff && data[1] & 0xf0 == 0xf0 {
            let head = if data[1] & 1 == 1 { 7 } else { 9 };
            let len = (usize::from(data[3] & 3) << 11)
                | (usize::from(data[4]) << 3)
                | usize::from(data[5] >> 5);
            if len < head || len > data.len() {
                break;
            }
            let object = (data[2] >> 6) + 1;
            let freq = (data[2] >> 2) & 0x0f;
            let chan = ((data[2] & 1) << 2) | (data[3] >> 6);
            let asc = [(object << 3) | (freq >> 1), ((freq & 1) << 7) | (chan << 3)];
            if self.asc_sent != Some(asc) {
                out.push(Tag {
                    video: false,
                    sequence: true,
                    keyframe: false,
                    ms,
                    body: vec![0xaf, 0, asc[0], asc[1]],
                });
                self.asc_sent = Some(asc);
            }
            // 1024 samples per AAC frame: later frames of the PES are that much later.
            let rate = RATES.get(usize::from(freq)).copied().unwrap_or(48000);
            let frame_at = at.saturating_add(n * 1024 * 90_000 / i64::from(rate));
            if hold || frame_at < 0 {
                self.skipped += 1;
                n += 1;
                data = &data[len..];
                continue;
            }
            self.audio_alone |= self.video_pid.is_none();
            let mut body = vec![0xaf, 1];
            body.extend_from_slice(&data[head..len]);
            out.push(Tag {
                video: false,
                sequence: false,
                keyframe: false,
                ms: ms_of(frame_at),
                body,
            });
            n += 1;
            data = &data[len..];
        }
    }
}

/// The kinds of parameter set.
enum Param {
    Vps,
    Sps,
    Pps,
}

#[cfg(test)]
mod split_tests;
#[cfg(test)]
mod tests;
