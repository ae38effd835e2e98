//! A DVR viewer that rewinds into a recording or ring of another format than its own, sans-I/O.
//! Recordings are MPEG-TS or fMP4, never FLV, and a TS source's FLV and fMP4 outputs begin with
//! their first viewer, so an `.flv` viewer (or an `.mp4` one of a stream recorded as TS) that
//! rewinds past its own ring converts the TS it is sent (the recording from a keyframe, then the
//! TS ring) itself, timed on the clock of the stream's own conversion: every frame gets the
//! timestamp (and, from a TS source, the bytes) its output's ring gave it. As soon as that ring
//! holds exactly what comes next, the viewer leaves its conversion and goes on in the ring
//! ([`crate::Viewer::after`]): the per-viewer work lasts as long as the rewound part.
//!
//! An `.flv` viewer of a stream recorded as fMP4 reads that recording (then the fMP4 ring) back
//! into FLV tags instead (`media::cmaf::ToFlv`): the fMP4 was made of the FLV ring's tags, with
//! their times, so no clock is needed. (Where the publisher's timestamps stepped back, the fMP4
//! timeline went on rising instead: a viewer rewound to before that has times the FLV ring's do
//! not have, and converts on without joining it.) A `.ts` viewer of such a stream reads it back into TS
//! ([`TsRewind`], ts.rs), which never joins the TS ring.
//!
//! [`FlvRewind`] (flv.rs) joins the FLV ring after the same video tag; [`Mp4Rewind`] (mp4.rs)
//! makes fragments of those tags as the stream does and joins the fMP4 ring after the same
//! fragment.

mod flv;
mod mp4;
mod ts;

pub use flv::FlvRewind;
pub use mp4::Mp4Rewind;
pub use ts::TsRewind;

use crate::ring::{Ring, Unit};
use bytes::Bytes;
use media::flv::{Clock, FromTs, Tag};
use media::ts::PACKET;
use std::collections::VecDeque;

/// The most ring units indexed (the newest): about a minute of a stream's FLV tags or fMP4
/// fragments. A viewer further behind the live edge than that cannot join yet; one that reads
/// faster than real time gets there, one that reads in real time stays that far behind and
/// converts on (its output is the same).
const INDEXED: usize = 4096;

/// How far before the last frame sent the join looks for it in the index (ms): units are in
/// time order within this (audio and video interleave by less).
const LOOK_BACK_MS: u32 = 10_000;

/// A DVR viewer's conversion, to the format of the ring it joins.
#[derive(Debug)]
pub enum Rewind {
    Flv(Box<FlvRewind>),
    Mp4(Box<Mp4Rewind>),
    /// A `.ts` viewer of a stream recorded as fMP4 (ts.rs): it never joins.
    Ts(Box<TsRewind>),
}

impl Rewind {
    /// Notes the ring's units not seen before (the FLV ring, or the fMP4 one: the ring of the
    /// viewer's own output); cheap under the stream's read lock: only the new ones are read.
    pub fn index(&mut self, ring: &crate::ring::Ring) {
        match self {
            Rewind::Flv(r) => r.index(ring),
            Rewind::Mp4(r) => r.index(ring),
            Rewind::Ts(_) => {}
        }
    }

    /// The next bytes fed start at a packet boundary (a new stretch of the recording, or the TS
    /// ring): a packet cut short before them is dropped.
    pub fn realign(&mut self) {
        match self {
            Rewind::Flv(r) => r.realign(),
            Rewind::Mp4(r) => r.realign(),
            Rewind::Ts(r) => r.realign(),
        }
    }

    /// Converts TS bytes (cut anywhere), appending the output's bytes to `out`. Returns the ring
    /// unit to go on at once the ring (as indexed) holds exactly what was not sent: the rest of
    /// `ts` is not needed then, and this conversion is done.
    pub fn feed(&mut self, ts: &[u8], out: &mut Vec<Bytes>) -> Option<u64> {
        match self {
            Rewind::Flv(r) => r.feed(ts, out),
            Rewind::Mp4(r) => r.feed(ts, out),
            Rewind::Ts(r) => {
                r.feed(ts, out);
                None
            }
        }
    }
}

/// TS bytes cut anywhere, as whole packets.
#[derive(Debug, Default)]
struct Packets {
    /// The start of a packet cut off at the end of the bytes last fed.
    rest: Vec<u8>,
}

impl Packets {
    fn realign(&mut self) {
        self.rest.clear();
    }

    /// Hands each whole packet of what was fed so far to `each`, until one returns `Some`.
    fn feed(&mut self, mut ts: &[u8], mut each: impl FnMut(&[u8]) -> Option<u64>) -> Option<u64> {
        if !self.rest.is_empty() {
            let n = (PACKET - self.rest.len()).min(ts.len());
            self.rest.extend_from_slice(&ts[..n]);
            ts = &ts[n..];
            if self.rest.len() < PACKET {
                return None;
            }
            let packet = std::mem::take(&mut self.rest);
            if let Some(seq) = each(&packet) {
                return Some(seq);
            }
        }
        let mut packets = ts.chunks_exact(PACKET);
        for p in packets.by_ref() {
            if let Some(seq) = each(p) {
                return Some(seq);
            }
        }
        self.rest.extend_from_slice(packets.remainder());
        None
    }
}

/// A DVR viewer's TS, cut anywhere, as FLV tags on the stream's clock (what both conversions
/// start from).
#[derive(Debug, Default)]
struct Tags {
    conv: FromTs,
    packets: Packets,
    tags: Vec<Tag>,
}

impl Tags {
    fn new(clock: Clock) -> Self {
        Tags {
            conv: FromTs::on_clock(clock),
            ..Tags::default()
        }
    }

    fn realign(&mut self) {
        self.packets.realign();
    }

    /// Hands each tag of what was fed so far to `each`, until one returns `Some` (the rest of
    /// that packet's tags are dropped: the ring has them).
    fn feed(&mut self, ts: &[u8], mut each: impl FnMut(Tag) -> Option<u64>) -> Option<u64> {
        let Tags {
            conv,
            packets,
            tags,
        } = self;
        packets.feed(ts, |p| {
            tags.clear();
            conv.feed(p, tags);
            tags.drain(..).find_map(&mut each)
        })
    }
}

/// An indexed ring unit: its sequence number.
trait Seq {
    fn seq(&self) -> u64;
}

/// The newest units of a ring (at most [`INDEXED`]), oldest first, as far as a join needs them.
#[derive(Debug)]
struct Index<T> {
    units: VecDeque<T>,
    /// The ring's next unit to index.
    indexed_to: u64,
}

impl<T> Default for Index<T> {
    fn default() -> Self {
        Index {
            units: VecDeque::new(),
            indexed_to: 0,
        }
    }
}

impl<T: Seq> Index<T> {
    /// Notes the ring's units not seen before, as `read` makes them (`None`: not indexed; cheap
    /// under the stream's read lock: only the new ones are read), and forgets those that left it.
    fn refresh(&mut self, ring: &Ring, mut read: impl FnMut(u64, &Unit) -> Option<T>) {
        let first = ring.first_seq();
        while self.units.front().is_some_and(|u| u.seq() < first) {
            self.units.pop_front();
        }
        for seq in self.next(ring)..ring.end_seq() {
            if let Some(u) = ring.get(seq).and_then(|unit| read(seq, unit)) {
                self.units.push_back(u);
            }
        }
        while self.units.len() > INDEXED {
            self.units.pop_front();
        }
        self.indexed_to = ring.end_seq();
    }

    /// The first unit the next [`Index::refresh`] reads.
    fn next(&self, ring: &Ring) -> u64 {
        self.indexed_to
            .max(ring.first_seq())
            .max(ring.end_seq().saturating_sub(INDEXED as u64))
    }

    /// Whether the next [`Index::refresh`] passes over units it never read (they left the ring,
    /// or more than [`INDEXED`] came since the last one).
    fn misses(&self, ring: &Ring) -> bool {
        self.next(ring) > self.indexed_to
    }
}

impl<T> std::ops::Deref for Index<T> {
    type Target = VecDeque<T>;
    fn deref(&self) -> &VecDeque<T> {
        &self.units
    }
}
