//! An `.mp4` DVR viewer's conversion (see the module above): the TS to FLV tags on the stream's
//! FLV clock, as for `.flv`, then fragments by a [`Fragmenter`] of its own that starts with the
//! stream's tracks. The stream's fMP4 output is made the same way from the same tags
//! (`MediaOutputs`), so the viewer's fragments are the ring's but for their sequence numbers and
//! `prft`s (and, from an RTMP source, the bytes of some frames).
//!
//! Where it joins: right after the ring's fragment that carries the same frames as the last
//! fragment sent: the same video frame (time, keyframe or not) and the same audio frames (the
//! first one's time, how many; [`fragment_runs`]). Audio and video times only rise along the
//! ring, so everything before that fragment was sent and nothing after it was. A fragment with
//! no audio frame of a stream with audio is not a join: which audio the ring put after it is
//! not known.

use super::{Packets, INDEXED, LOOK_BACK_MS};
use crate::ring::Ring;
use bytes::Bytes;
use media::cmaf::{fragment_runs, read_prft, AudioTrack, Event, Fragmenter, VideoTrack};
use media::flv::{Clock, FromTs, Tag};
use std::collections::VecDeque;

/// Per track (video, audio): the first sample's decode time and the number of samples.
type Runs = [Option<(u64, u32)>; 2];

/// One fragment of the fMP4 ring, as far as the join needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Indexed {
    seq: u64,
    ms: u64,
    key: bool,
    runs: Runs,
}

/// A DVR viewer's own TS to fMP4 conversion, and where it joins the fMP4 ring.
#[derive(Debug)]
pub struct Mp4Rewind {
    conv: FromTs,
    packets: Packets,
    tags: Vec<Tag>,
    fragmenter: Fragmenter<Bytes>,
    events: Vec<Event<Bytes>>,
    /// The fMP4 ring's fragments, oldest first, as far as [`Mp4Rewind::index`] has seen them.
    index: VecDeque<Indexed>,
    /// The ring's next unit to index.
    indexed_to: u64,
}

impl Mp4Rewind {
    /// A conversion on the stream's FLV clock (`MediaOutputs::flv_clock`) whose fragmenter
    /// starts with the stream's tracks (`MediaOutputs::tracks`): fragments start at the first
    /// keyframe, without waiting for the audio configuration to come by again.
    pub fn new(clock: Clock, tracks: (Option<VideoTrack>, Option<AudioTrack>)) -> Self {
        let mut fragmenter = Fragmenter::default();
        if let Some(v) = tracks.0 {
            fragmenter.video_config(v);
        }
        if let Some(a) = tracks.1 {
            fragmenter.audio_config(a);
        }
        Mp4Rewind {
            conv: FromTs::on_clock(clock),
            packets: Packets::default(),
            tags: Vec::new(),
            fragmenter,
            events: Vec::new(),
            index: VecDeque::new(),
            indexed_to: 0,
        }
    }

    /// Notes the fMP4 ring's fragments not seen before and forgets those that left it.
    pub fn index(&mut self, mp4: &Ring) {
        let first = mp4.first_seq();
        while self.index.front().is_some_and(|u| u.seq < first) {
            self.index.pop_front();
        }
        let from = self
            .indexed_to
            .max(first)
            .max(mp4.end_seq().saturating_sub(INDEXED as u64));
        for seq in from..mp4.end_seq() {
            let Some(unit) = mp4.get(seq) else {
                continue;
            };
            // Init segments have no prft.
            let Some((ms, at)) = read_prft(&unit.data) else {
                continue;
            };
            let Ok(runs) = fragment_runs(&unit.data[at..]) else {
                continue;
            };
            self.index.push_back(Indexed {
                seq,
                ms,
                key: unit.keyframe,
                runs,
            });
        }
        while self.index.len() > INDEXED {
            self.index.pop_front();
        }
        self.indexed_to = mp4.end_seq();
    }

    /// See [`super::Rewind::realign`].
    pub fn realign(&mut self) {
        self.packets.realign();
    }

    /// Converts TS bytes (cut anywhere) to an init segment and fragments (head, then samples),
    /// appended to `out`. Returns the fMP4 ring unit to go on at, as [`super::Rewind::feed`].
    pub fn feed(&mut self, ts: &[u8], out: &mut Vec<Bytes>) -> Option<u64> {
        let mut packets = std::mem::take(&mut self.packets);
        let joined = packets.feed(ts, |p| self.packet(p, out));
        self.packets = packets;
        joined
    }

    /// One packet: its fragments out, the join checked after each.
    fn packet(&mut self, packet: &[u8], out: &mut Vec<Bytes>) -> Option<u64> {
        self.tags.clear();
        self.conv.feed(packet, &mut self.tags);
        for t in std::mem::take(&mut self.tags) {
            let body = Bytes::from(t.body);
            // A frame that cannot be read leaves the tracks as they were (as the stream's own
            // fragmenter does).
            let sample = |start: usize| body.slice(start..);
            let _ = self
                .fragmenter
                .tag(t.video, t.ms, &body, sample, &mut self.events);
            for e in std::mem::take(&mut self.events) {
                match e {
                    Event::Init(init) => out.push(Bytes::from(init)),
                    Event::Fragment {
                        head,
                        data,
                        keyframe,
                        ms,
                        ..
                    } => {
                        let joined = self.join(&head, u64::from(ms), keyframe);
                        out.push(Bytes::from(head));
                        out.extend(data);
                        if joined.is_some() {
                            return joined;
                        }
                    }
                }
            }
        }
        None
    }

    /// The ring unit after the one that carries the frames of the fragment `head` (at `ms`),
    /// if the ring goes on from there with exactly what was not sent.
    fn join(&self, head: &[u8], ms: u64, key: bool) -> Option<u64> {
        let runs = fragment_runs(head).ok()?;
        if runs[1].is_none() && self.fragmenter.tracks().1.is_some() {
            return None;
        }
        let floor = ms.saturating_sub(u64::from(LOOK_BACK_MS));
        self.index
            .iter()
            .rev()
            .take_while(|u| u.ms >= floor)
            .find(|u| u.ms == ms && u.key == key && u.runs == runs)
            .map(|u| u.seq + 1)
    }
}

#[cfg(test)]
mod tests;
