//! A `.ts` DVR viewer of a stream recorded as fMP4 that reaches back past the TS ring: the fMP4
//! recording, then the fMP4 ring, read back into FLV tags (`media::cmaf::ToFlv`) and muxed to
//! MPEG-TS (`media::flv::ToTs`, PAT and PMT before each keyframe), with every timestamp put on
//! the stream's own TS timeline (its FLV clock, [`ToTs::shift_onto`]): the frames are where a
//! live `.ts` viewer sees them.
//!
//! It never joins the TS ring: the TS it makes carries the stream's frames but not its packets
//! (other PIDs, other packet boundaries and continuity counters), and a player cannot take a
//! switch of PIDs and counters in the middle of a stream. So this viewer converts for as long as
//! it watches: one copy of each frame into its tag and one into its packets, per viewer (AAC and
//! H.264/H.265; an Opus track is not carried, as for an RTMP source's TS).

use bytes::Bytes;
use media::cmaf::ToFlv;
use media::flv::{Clock, Tag, ToTs};
use media::ts::Restamp;

#[derive(Debug)]
pub struct TsRewind {
    tags: ToFlv,
    mux: ToTs,
    restamp: Restamp,
    scratch: Vec<Tag>,
    /// The newest sequence header of each track (video, audio).
    configs: [Option<Vec<u8>>; 2],
    /// The muxer has taken a frame (its streams are fixed).
    started: bool,
}

impl TsRewind {
    /// A conversion of the stream's fMP4 onto the TS timeline of its FLV clock
    /// (`MediaOutputs::flv_clock`).
    pub fn of_fmp4(clock: Clock) -> Self {
        TsRewind {
            tags: ToFlv::default(),
            mux: ToTs::default(),
            restamp: Restamp::shifted_by(ToTs::shift_onto(clock)),
            scratch: Vec::new(),
            configs: [None, None],
            started: false,
        }
    }

    /// The next bytes fed start a top-level box (a new stretch of the recording, or the ring).
    pub fn realign(&mut self) {
        self.tags.realign();
    }

    /// Converts fMP4 bytes (cut anywhere), appending whole TS packets to `out`.
    pub fn feed(&mut self, fmp4: &[u8], out: &mut Vec<Bytes>) {
        self.scratch.clear();
        self.tags.feed(fmp4, &mut self.scratch);
        let mut ts = Vec::new();
        for t in &self.scratch {
            if t.sequence {
                self.configs[usize::from(!t.video)] = Some(t.body.clone());
                if std::mem::take(&mut self.started) {
                    // A configuration after frames (`ToFlv` sends one only when it is new: a
                    // publisher that came back with another encoder, or with audio now). A
                    // muxer fixes its streams at its first frame, so a new one is given both
                    // tracks' configurations; its counters go on from the old one's.
                    self.mux = ToTs::default();
                    self.restamp.continue_counters();
                    for (i, c) in self.configs.iter().enumerate() {
                        if let Some(c) = c {
                            let _ = mux(&mut self.mux, i == 0, c, t.ms, &mut ts);
                        }
                    }
                    continue;
                }
            } else {
                self.started = true;
            }
            // A tag the muxer cannot take (no configuration yet, a codec TS does not carry
            // here) is counted by it and left out.
            let _ = mux(&mut self.mux, t.video, &t.body, t.ms, &mut ts);
        }
        if !ts.is_empty() {
            self.restamp.apply(&mut ts);
            out.push(Bytes::from(ts));
        }
    }
}

/// One tag body into the muxer.
fn mux(
    to: &mut ToTs,
    video: bool,
    body: &[u8],
    ms: u32,
    out: &mut Vec<u8>,
) -> Result<(), media::Error> {
    if video {
        to.video(body, ms, out)
    } else {
        to.audio(body, ms, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llhls::LlLimits;
    use crate::outputs::MediaOutputs;
    use crate::ring::Limits;
    use media::flv::{wire, FromTs};
    use media::ts::{Cut, Splitter, PACKET};
    use std::time::Duration;

    /// Keyframe PTS (90 kHz) of `ts`, and whether every PID's counters run on.
    fn keyframes_and_counters(ts: &[u8]) -> (Vec<u64>, bool) {
        let mut cuts = Vec::new();
        Splitter::default().feed(ts, &mut cuts).expect("splits");
        let keys = cuts
            .iter()
            .filter_map(|c| match c {
                Cut::Keyframe { pts: Some(p), .. } => Some(p.0),
                _ => None,
            })
            .collect();
        let mut last = std::collections::HashMap::new();
        let mut continuous = true;
        for p in ts.chunks_exact(PACKET) {
            let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
            let (cc, payload) = (p[3] & 0x0f, p[3] & 0x10 != 0);
            if let Some(prev) = last.insert(pid, cc) {
                continuous &= !payload || cc == (prev + 1) & 0x0f;
            }
        }
        (keys, continuous)
    }

    /// The demo's source TS, its fMP4 as the stream's outputs make it (init segment first; with
    /// its audio or not), and its FLV clock.
    fn demo_fmp4(with_audio: bool) -> (Vec<u8>, Vec<u8>, Clock) {
        let data = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/clip.ts"))
            .expect("demo/clip.ts");
        let ts = data[..data.len() / PACKET * PACKET].to_vec();
        let mut conv = FromTs::default();
        let limits = Limits {
            max_bytes: 64 << 20,
            max_age: Duration::from_secs(600),
        };
        let mut outputs = MediaOutputs::new(limits, LlLimits::default());
        let mut tags = Vec::new();
        for chunk in ts.chunks(PACKET * 7) {
            tags.clear();
            conv.feed(chunk, &mut tags);
            for t in tags.iter().filter(|t| t.video || with_audio) {
                let kind = wire::classify(t.video, &t.body);
                outputs.push(t.video, &t.body, t.ms, kind, Duration::ZERO, 0);
            }
        }
        let first = outputs.mp4.units().find(|u| u.keyframe);
        let first = first.expect("a keyframe");
        let mut fmp4: Vec<u8> = first.psi.iter().flat_map(|b| b.to_vec()).collect();
        for u in outputs.mp4.units().skip_while(|u| u.seq < first.seq) {
            fmp4.extend_from_slice(&u.data);
            u.more.iter().for_each(|m| fmp4.extend_from_slice(m));
        }
        (ts, fmp4, conv.clock().expect("the conversion began"))
    }

    #[test]
    fn the_streams_fmp4_comes_back_as_ts_with_its_keyframes_where_the_ts_has_them() {
        let (ts, fmp4, clock) = demo_fmp4(true);
        let mut r = TsRewind::of_fmp4(clock);
        let mut out = Vec::new();
        for piece in fmp4.chunks(1000) {
            r.feed(piece, &mut out);
        }
        let back: Vec<u8> = out.iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(back.len() % PACKET, 0);
        let (keys, continuous) = keyframes_and_counters(&back);
        assert!(continuous, "every PID's counters run on");
        // The source's keyframes from the first the fMP4 has, at the same PTS (within the
        // millisecond FLV times keep).
        let (source, _) = keyframes_and_counters(&ts);
        let at = source
            .iter()
            .position(|&k| k.abs_diff(keys[0]) <= 90)
            .expect("the first keyframe is the source's");
        assert!(keys.len() >= 3);
        for (k, s) in keys.iter().zip(&source[at..]) {
            assert!(k.abs_diff(*s) <= 90, "{k} against {s}");
        }
        assert_eq!(keys.len(), source.len() - at);
    }

    #[test]
    fn a_publisher_that_comes_back_with_audio_gets_a_new_muxer_whose_counters_go_on() {
        // Video alone, then the same stream with its audio (a publisher that came back with
        // another encoder setting, within the grace: one recording).
        let (_, fmp4, clock) = demo_fmp4(false);
        let (_, again, _) = demo_fmp4(true);
        let mut r = TsRewind::of_fmp4(clock);
        let mut out = Vec::new();
        r.feed(&fmp4, &mut out);
        let first: usize = out.iter().map(Bytes::len).sum();
        r.realign();
        r.feed(&again, &mut out);
        let all: Vec<u8> = out.iter().flat_map(|b| b.to_vec()).collect();
        let (keys, continuous) = keyframes_and_counters(&all);
        assert!(
            continuous,
            "every PID's counters run on across the new muxer"
        );
        let (before, _) = keyframes_and_counters(&all[..first]);
        let (after, _) = keyframes_and_counters(&all[first..]);
        assert_eq!(keys.len(), before.len() + after.len());
        assert!(before.len() >= 3 && after.len() >= 3);
        let audio_pes =
            |p: &[u8]| p[1] & 0x40 != 0 && p[4..].windows(4).any(|w| w == [0, 0, 1, 0xc0]);
        let audio = |b: &[u8]| b.chunks_exact(PACKET).filter(|p| audio_pes(p)).count();
        assert_eq!(audio(&all[..first]), 0);
        assert!(audio(&all[first..]) > 10, "the audio after it is muxed");
    }
}
