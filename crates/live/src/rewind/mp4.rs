//! An `.mp4` DVR viewer's conversion (see the module above): the TS to FLV tags on the stream's
//! FLV clock, as for `.flv`, then fragments by a [`Fragmenter`] of its own that starts with the
//! stream's tracks. The stream's fMP4 output is made the same way from the same tags
//! (`MediaOutputs`), so the viewer's fragments are the ring's but for their sequence numbers and
//! `prft`s (and, from an RTMP source, the bytes of some frames).
//!
//! Where it joins: right after the ring's fragment that carries the same frames as the last
//! fragment sent: the same video frame (time, keyframe or not) and the same audio frames (the
//! first one's time, how many; [`fragment_runs`]). Audio and video times only rise along the
//! ring, so everything before that fragment was sent and nothing after it was. A fragment
//! without a frame of each track the stream has is not a join: which frames of the missing track
//! the ring put before or after it is not known (an RTMP source's order differs from its TS's:
//! a large video frame comes out of the TS only when the next one begins). And only where the
//! ring's init segment then declares the tracks the viewer's declares: when its bytes differ (an
//! RTMP publisher's decoder configuration, rebuilt from the TS), the ring's is sent first, so
//! the ring's frames play with it.

use super::{Index, Seq, Tags, LOOK_BACK_MS};
use crate::ring::Ring;
use bytes::Bytes;
use media::cmaf::{
    fragment_runs, init_tracks, read_prft, Anchor, AudioTrack, Event, Fragmenter, VideoTrack,
};
use media::flv::{Clock, Tag};

/// Per track (video, audio): the first sample's decode time and the number of samples.
type Runs = [Option<(u64, u32)>; 2];

/// One fragment of the fMP4 ring, as far as the join needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Indexed {
    seq: u64,
    ms: u64,
    key: bool,
    runs: Runs,
    /// The ring's init segment its fragments play with from here (`None`: not seen yet).
    init: Option<Bytes>,
}

impl Seq for Indexed {
    fn seq(&self) -> u64 {
        self.seq
    }
}

/// A DVR viewer's own TS to fMP4 conversion, and where it joins the fMP4 ring.
#[derive(Debug)]
pub struct Mp4Rewind {
    tags: Tags,
    fragmenter: Fragmenter<Bytes>,
    events: Vec<Event<Bytes>>,
    /// The fMP4 ring's fragments, as far as [`Mp4Rewind::index`] has seen them.
    index: Index<Indexed>,
    /// The ring's init segment as of its last unit indexed.
    ring_init: Option<Bytes>,
    /// The init segment last sent.
    sent_init: Option<Bytes>,
}

impl Mp4Rewind {
    /// A conversion on the stream's FLV clock (`MediaOutputs::flv_clock`) whose fragmenter
    /// starts with the stream's tracks (`MediaOutputs::tracks`), on the stream's fMP4 timeline
    /// (`MediaOutputs::anchor`: past the 32-bit wrap of the timestamps, the fragments' times
    /// are the ring's): fragments start at the first keyframe, without waiting for the audio
    /// configuration to come by again. (Where the stream's timestamps stepped back between the
    /// viewer's start and the anchor, its times differ from the ring's: it converts on.)
    pub fn new(
        clock: Clock,
        tracks: (Option<VideoTrack>, Option<AudioTrack>),
        anchor: Anchor,
    ) -> Self {
        let mut fragmenter = Fragmenter::anchored(anchor);
        if let Some(v) = tracks.0 {
            fragmenter.video_config(v);
        }
        if let Some(a) = tracks.1 {
            fragmenter.audio_config(a);
        }
        Mp4Rewind {
            tags: Tags::new(clock),
            fragmenter,
            events: Vec::new(),
            index: Index::default(),
            ring_init: None,
            sent_init: None,
        }
    }

    /// Notes the fMP4 ring's fragments not seen before and forgets those that left it.
    pub fn index(&mut self, mp4: &Ring) {
        if self.index.misses(mp4) {
            // An init segment may have gone by unseen: known again at the next keyframe.
            self.ring_init = None;
        }
        let ring_init = &mut self.ring_init;
        self.index.refresh(mp4, |seq, unit| {
            // A new init segment is a unit of its own; a keyframe carries the one in effect.
            if unit.data.get(4..8) == Some(b"ftyp") {
                *ring_init = Some(unit.data.clone());
                return None;
            }
            if let Some(init) = unit.psi.first().filter(|_| unit.keyframe) {
                *ring_init = Some(init.clone());
            }
            let (ms, at) = read_prft(&unit.data)?;
            let runs = fragment_runs(&unit.data[at..]).ok()?;
            Some(Indexed {
                seq,
                ms,
                key: unit.keyframe,
                runs,
                init: ring_init.clone(),
            })
        });
    }

    /// See [`super::Rewind::realign`].
    pub fn realign(&mut self) {
        self.tags.realign();
    }

    /// Converts TS bytes (cut anywhere) to an init segment and fragments (head, then samples),
    /// appended to `out`. Returns the fMP4 ring unit to go on at, as [`super::Rewind::feed`].
    pub fn feed(&mut self, ts: &[u8], out: &mut Vec<Bytes>) -> Option<u64> {
        let mut tags = std::mem::take(&mut self.tags);
        let joined = tags.feed(ts, |t| self.tag(t, out));
        self.tags = tags;
        joined
    }

    /// One tag: the fragments it completes out, the join checked after each.
    fn tag(&mut self, t: Tag, out: &mut Vec<Bytes>) -> Option<u64> {
        let body = Bytes::from(t.body);
        // A frame that cannot be read leaves the tracks as they were (as the stream's own
        // fragmenter does).
        let sample = |start: usize| body.slice(start..);
        let _ = self
            .fragmenter
            .tag(t.video, t.ms, &body, sample, &mut self.events);
        for e in std::mem::take(&mut self.events) {
            match e {
                Event::Init(init) => {
                    let init = Bytes::from(init);
                    self.sent_init = Some(init.clone());
                    out.push(init);
                }
                Event::Fragment {
                    head,
                    data,
                    keyframe,
                    ms,
                    ..
                } => {
                    let joined = self.join(&head, ms, keyframe);
                    out.push(Bytes::from(head));
                    out.extend(data);
                    if let Some((seq, init)) = joined {
                        out.extend(init);
                        return Some(seq);
                    }
                }
            }
        }
        None
    }

    /// The ring unit after the one that carries the frames of the fragment `head` (at `ms`),
    /// if the ring goes on from there with exactly what was not sent; and the ring's init
    /// segment where it differs from the one sent (to send before the ring's fragments).
    fn join(&self, head: &[u8], ms: u64, key: bool) -> Option<(u64, Option<Bytes>)> {
        let runs = fragment_runs(head).ok()?;
        let sent = self.sent_init.as_ref()?;
        let tracks = init_tracks(sent).ok()?;
        if runs
            .iter()
            .zip(tracks)
            .any(|(run, has)| has && run.is_none())
        {
            return None;
        }
        let floor = ms.saturating_sub(u64::from(LOOK_BACK_MS));
        let (i, u) = self
            .index
            .iter()
            .enumerate()
            .rev()
            .take_while(|(_, u)| u.ms >= floor)
            .find(|(_, u)| u.ms == ms && u.key == key && u.runs == runs)?;
        let init = u.init.as_ref()?;
        if init == sent {
            return Some((u.seq + 1, None));
        }
        // Another init segment: a player takes the frames after it from a keyframe on (MSE
        // drops the others until one comes), so the ring must go on with one.
        let keyframe_next = self
            .index
            .get(i + 1)
            .is_some_and(|n| n.key && n.seq == u.seq + 1);
        (keyframe_next && init_tracks(init).ok()? == tracks)
            .then(|| (u.seq + 1, Some(init.clone())))
    }
}

#[cfg(test)]
mod tests;
