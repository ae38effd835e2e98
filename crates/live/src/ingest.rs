//! From received packets to units, sans-I/O: continuity fixed up across publisher sessions
//! ([`media::ts::Restamp`]), cut at video keyframes ([`media::ts::Splitter`]), and pushed to the
//! ring and the HLS segmenter as slices of the one `Bytes` the packets were received into.

use crate::hls::Segmenter;
use crate::ring::Ring;
use bytes::{Bytes, BytesMut};
use media::time::{Ts90k, Unwrapper};
use media::ts::{Cut, Restamp, Splitter, PACKET};
use std::time::Duration;

/// What one publisher session (and the ones that continue it) keeps between reads.
#[derive(Debug, Default)]
pub struct Ingest {
    splitter: Splitter,
    restamp: Restamp,
    cuts: Vec<Cut>,
    /// The latest PAT packet and the packets of the latest whole PMT (slices of received
    /// units): a PMT may run over a few packets (at most `media::ts::psi::SECTION_PACKETS` are kept). A late
    /// viewer gets these; the PMT being received goes in `pmt_next` until it is whole.
    pat: Option<Bytes>,
    pmt: Vec<Bytes>,
    pmt_next: Vec<Bytes>,
    pub keyframes: u64,
    pub units: u64,
    /// The keyframes' PTS, unwrapped, and the first one: the stream's clock (restamped, so it
    /// runs on across publisher sessions).
    key_times: Unwrapper,
    first_key: Option<i64>,
    /// The clock the stream's FLV conversion runs on, once one ran (kept across sessions).
    flv_clock: Option<media::flv::Clock>,
    /// A video PES not known yet as a keyframe or not ([`Cut::Undecided`]): its bytes so far
    /// (slices of the runs received), kept back from the ring until a later run decides.
    held: Option<Held>,
}

/// Bytes kept back while a PES start is undecided, at most [`HELD_MAX`].
#[derive(Debug)]
struct Held {
    units: Vec<Bytes>,
    pts: Option<Ts90k>,
    /// The PAT/PMT before it: a viewer's first packets if it is a keyframe.
    psi: Vec<Bytes>,
}

/// The most bytes kept back for an undecided PES (its IDR is within `media::ts::SCAN_LIMIT`
/// bytes of its video, but audio and other streams come between): past it, it is not a
/// keyframe.
const HELD_MAX: usize = 256 << 10;

impl Ingest {
    /// A publisher came back: its packets are rewritten to continue the stream, and its PAT/PMT
    /// are followed afresh.
    pub fn new_session(&mut self) {
        self.restamp.new_session();
        self.splitter = Splitter::default();
    }

    pub fn sessions(&self) -> u64 {
        self.restamp.sessions() + 1
    }

    pub fn video_codec(&self) -> Option<&'static str> {
        self.splitter.video_codec()
    }

    pub fn audio_codecs(&self) -> &[&'static str] {
        self.splitter.audio_codecs()
    }

    /// Rewrites whole packets in place and finds where they can be cut; returns them frozen, to
    /// be published with [`Ingest::commit`]. Needs no lock on the stream.
    pub fn prepare(&mut self, mut packets: BytesMut) -> Result<Bytes, media::Error> {
        self.restamp.apply(&mut packets);
        self.cuts.clear();
        self.splitter.feed(&packets, &mut self.cuts)?;
        for c in &self.cuts {
            if let Cut::Keyframe { pts: Some(pts), .. } | Cut::EarlierKeyframe { pts: Some(pts) } =
                c
            {
                let t = self.key_times.unwrap(*pts);
                self.first_key.get_or_insert(t);
            }
        }
        Ok(packets.freeze())
    }

    /// The clock a TS source's FLV tags are timed on (`media::flv::FromTs::on_clock`): the one
    /// its conversion ran on ([`Ingest::kept_flv_clock`]); before any did, 1 s before the
    /// stream's first keyframe is 0 ms, so that every frame the stream ever had (and its
    /// recording holds) has a time. The TS is restamped, so a publisher that comes back
    /// continues it.
    pub fn flv_clock(&self) -> Option<media::flv::Clock> {
        self.flv_clock.or_else(|| {
            Some(media::flv::Clock {
                first: self.first_key?.saturating_sub(90_000),
                last: self.key_times.last()?,
            })
        })
    }

    /// Keeps the clock the stream's FLV conversion runs on now.
    pub fn kept_flv_clock(&mut self, clock: Option<media::flv::Clock>) {
        if clock.is_some() {
            self.flv_clock = clock;
        }
    }

    /// Bytes kept back for a PES not yet known as a keyframe or not (at most 256 KiB): what the
    /// memory budget counts besides the receive buffer.
    pub fn holding(&self) -> usize {
        self.held
            .as_ref()
            .map_or(0, |h| h.units.iter().map(Bytes::len).sum())
    }

    /// What the current session's timestamps are shifted by (`media::ts::Restamp::offset`).
    pub fn restamp_offset(&self) -> u64 {
        self.restamp.offset()
    }

    /// The session's bytes kept back for an undecided PES go out as they are (its publisher
    /// went: nothing will decide it).
    pub fn flush(&mut self, ring: &mut Ring, hls: &mut Segmenter, now: Duration) {
        self.splitter.forget_undecided();
        if let Some(held) = self.held.take() {
            for unit in held.units {
                self.emit(unit, None, ring, hls, now);
            }
        }
    }

    /// Publishes what `prepare` returned: one unit per run that starts at a keyframe (or
    /// continues the previous one), each a slice of `data`.
    pub fn commit(&mut self, data: Bytes, ring: &mut Ring, hls: &mut Segmenter, now: Duration) {
        let mut start = 0;
        // For the run being collected when it starts at a keyframe: its PTS, and the PAT/PMT
        // seen before that keyframe (not later ones inside the run).
        let mut key: Option<(Option<Ts90k>, Vec<Bytes>)> = None;
        let cuts = std::mem::take(&mut self.cuts);
        if let Some(mut held) = self.held.take() {
            let still = matches!(cuts.first(), Some(Cut::Undecided { earlier: true, .. }));
            let kept: usize = held.units.iter().map(Bytes::len).sum();
            if still && kept + data.len() <= HELD_MAX {
                // Kept back whole: its tables are followed all the same.
                for cut in &cuts {
                    self.psi(cut, &data);
                }
                held.units.push(data);
                self.held = Some(held);
                self.cuts = cuts;
                return;
            }
            if still {
                // Too long undecided: not a keyframe, and this run is not kept back either.
                self.splitter.forget_undecided();
            }
            let keyframe = matches!(cuts.first(), Some(Cut::EarlierKeyframe { .. }));
            for (i, unit) in held.units.into_iter().enumerate() {
                let key = (keyframe && i == 0).then(|| (held.pts, held.psi.clone()));
                self.emit(unit, key, ring, hls, now);
            }
        }
        for cut in &cuts {
            match *cut {
                Cut::Pat(_) | Cut::Pmt(_) | Cut::PmtMore(_) | Cut::PmtWhole(_) => {
                    self.psi(cut, &data);
                }
                Cut::Keyframe { at, pts } => {
                    if at > start {
                        self.emit(data.slice(start..at), key.take(), ring, hls, now);
                    }
                    start = at;
                    key = Some((pts, self.pat.iter().chain(&self.pmt).cloned().collect()));
                }
                // Decided above; an earlier PES still undecided keeps this whole run back.
                Cut::EarlierKeyframe { .. } | Cut::Undecided { earlier: true, .. } => {}
                Cut::Undecided { at, pts, .. } => {
                    if at > start {
                        self.emit(data.slice(start..at), key.take(), ring, hls, now);
                    }
                    let psi = self.pat.iter().chain(&self.pmt).cloned().collect();
                    self.held = Some(Held {
                        units: vec![data.slice(at..)],
                        pts,
                        psi,
                    });
                    start = data.len();
                }
            }
        }
        if start < data.len() {
            self.emit(data.slice(start..), key, ring, hls, now);
        }
        self.cuts = cuts;
    }

    /// The PAT or PMT packets a cut names in `data`: the tables a viewer starting at a
    /// keyframe gets first.
    fn psi(&mut self, cut: &Cut, data: &Bytes) {
        match *cut {
            Cut::Pat(at) => self.pat = Some(data.slice(at..at + PACKET)),
            Cut::Pmt(at) => {
                self.pmt_next.clear();
                self.pmt_next.push(data.slice(at..at + PACKET));
            }
            Cut::PmtMore(at)
                if (1..media::ts::psi::SECTION_PACKETS).contains(&self.pmt_next.len()) =>
            {
                self.pmt_next.push(data.slice(at..at + PACKET));
            }
            Cut::PmtWhole(_) => self.pmt = std::mem::take(&mut self.pmt_next),
            _ => {}
        }
    }

    fn emit(
        &mut self,
        unit: Bytes,
        key: Option<(Option<Ts90k>, Vec<Bytes>)>,
        ring: &mut Ring,
        hls: &mut Segmenter,
        now: Duration,
    ) {
        self.units += 1;
        match key {
            Some((pts, psi)) => {
                self.keyframes += 1;
                let seq = ring.push_keyframe(unit.clone(), psi.clone(), now);
                hls.push_keyframe(unit, &psi, pts, now, seq);
            }
            None => {
                hls.push(unit.clone(), now);
                ring.push(unit, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::HlsLimits;
    use crate::ring::{Limits, Step, Viewer, ViewerPolicy};

    fn demo() -> Vec<u8> {
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/clip.ts")).unwrap()
    }

    /// The demo clip as a muxer that marks no random access writes it.
    fn unmarked() -> Vec<u8> {
        let mut data = demo();
        for p in data.chunks_exact_mut(PACKET) {
            if p[3] & 0x20 != 0 && p[4] > 0 {
                p[5] &= !0x40;
            }
        }
        data
    }

    /// `data` through an ingest in reads of `read` bytes (whole packets go in, as the slab
    /// hands them out), then the session's end.
    fn ingested(data: &[u8], read: usize) -> (Ingest, Ring, Segmenter) {
        let mut ring = Ring::new(Limits {
            max_bytes: 64 << 20,
            max_age: Duration::from_secs(3600),
        });
        let mut hls = Segmenter::new(HlsLimits::default());
        let mut ingest = Ingest::default();
        let mut pending = BytesMut::new();
        for (i, chunk) in data.chunks(read).enumerate() {
            pending.extend_from_slice(chunk);
            let whole = pending.len() / PACKET * PACKET;
            let packets = pending.split_to(whole);
            let frozen = ingest.prepare(packets).unwrap();
            ingest.commit(frozen, &mut ring, &mut hls, Duration::from_millis(i as u64));
        }
        ingest.flush(&mut ring, &mut hls, Duration::from_secs(3600));
        (ingest, ring, hls)
    }

    /// The ring is the input, concatenated, and its keyframe units start exactly at the
    /// index's keyframe offsets, each with the PAT and PMT before it.
    fn assert_ring_is_input_cut_at_keyframes(ring: &Ring, data: &[u8]) -> Vec<u64> {
        let all: Vec<u8> = ring.units().flat_map(|u| u.data.iter().copied()).collect();
        assert!(all == data, "the ring is the input");
        let mut off = 0u64;
        let mut keys = Vec::new();
        for u in ring.units() {
            if u.keyframe {
                keys.push(off);
                assert_eq!(u.psi.len(), 2, "PAT and PMT kept for it");
                assert_eq!(u.psi[0][1] & 0x1f, 0, "PAT first");
                // The latest PAT and PMT packets before it (their counters included).
                let before = &data[..off as usize];
                for table in &u.psi {
                    let pid = media::ts::header(table).unwrap().pid;
                    let last = before
                        .chunks_exact(PACKET)
                        .rev()
                        .find(|p| media::ts::header(p).is_some_and(|h| h.pid == pid && h.pusi));
                    assert_eq!(last, Some(&table[..]), "the latest of pid {pid} at {off}");
                }
            }
            off += u.data.len() as u64;
        }
        let info = media::ts::index(data).unwrap();
        let want: Vec<u64> = info.keyframes.iter().map(|k| k.offset).collect();
        assert_eq!(keys, want);
        want
    }

    /// A muxer that marks no random access, and reads that end right after the first packet
    /// of a keyframe's PES (its IDR in the next): the PES is kept back until the next read
    /// decides it, and is a keyframe unit all the same.
    #[test]
    fn a_keyframe_whose_idr_comes_in_the_next_read_starts_a_unit() {
        let data = unmarked();
        for read in [PACKET, 2 * PACKET, 7_001] {
            let (ingest, ring, _) = ingested(&data, read);
            let keys = assert_ring_is_input_cut_at_keyframes(&ring, &data);
            assert_eq!(ingest.keyframes as usize, keys.len(), "reads of {read}");
        }
    }

    /// What is kept back undecided is counted (for the memory budget): every byte received is
    /// in the ring or counted as kept back, after every read.
    #[test]
    fn the_bytes_kept_back_are_counted() {
        let data = unmarked();
        let mut ring = Ring::new(Limits {
            max_bytes: 64 << 20,
            max_age: Duration::from_secs(3600),
        });
        let mut hls = Segmenter::new(HlsLimits::default());
        let mut ingest = Ingest::default();
        let (mut fed, mut most) = (0, 0);
        for packet in data.chunks(PACKET) {
            let frozen = ingest.prepare(BytesMut::from(packet)).unwrap();
            ingest.commit(frozen, &mut ring, &mut hls, Duration::ZERO);
            fed += packet.len();
            let in_ring: usize = ring.units().map(|u| u.data.len()).sum();
            assert_eq!(in_ring + ingest.holding(), fed);
            most = most.max(ingest.holding());
        }
        assert!(most > 0, "something was kept back");
    }

    /// A PAT that comes while a PES is kept back undecided is the one the next keyframe's
    /// viewers get first.
    #[test]
    fn tables_that_come_while_a_pes_is_kept_back_are_followed() {
        let data = unmarked();
        let keys: Vec<usize> = media::ts::index(&data)
            .unwrap()
            .keyframes
            .iter()
            .map(|k| k.offset as usize / PACKET)
            .collect();
        let pat = data
            .chunks_exact(PACKET)
            .find(|p| media::ts::header(p).unwrap().pid == 0)
            .unwrap()
            .to_vec();
        // No PAT between the first two keyframes but one, right after the first one's PES
        // began (its counter marks it).
        let mut packets: Vec<Vec<u8>> = data.chunks_exact(PACKET).map(<[u8]>::to_vec).collect();
        for p in &mut packets[keys[0]..keys[1]] {
            if media::ts::header(p).unwrap().pid == 0 {
                (p[1], p[2]) = (0x1f, 0xff);
            }
        }
        let mut marked = pat.clone();
        marked[3] = (marked[3] & 0xf0) | 0x0a;
        packets.insert(keys[0] + 1, marked);
        let data: Vec<u8> = packets.concat();
        let (_, ring, _) = ingested(&data, PACKET);
        assert_ring_is_input_cut_at_keyframes(&ring, &data);
    }

    #[test]
    fn units_start_at_keyframes_and_a_late_viewer_gets_psi_then_a_keyframe() {
        let data = demo();
        let info = media::ts::index(&data).unwrap();
        let (ingest, ring, mut hls) = ingested(&data, 7_001);
        assert_eq!(ingest.keyframes as usize, info.keyframes.len());
        let want = assert_ring_is_input_cut_at_keyframes(&ring, &data);
        let mut v = Viewer::default();
        let policy = ViewerPolicy {
            max_skips: 3,
            skip_period: Duration::from_secs(10),
            max_batch_bytes: 1 << 30,
            max_batch_units: 1 << 20,
        };
        match v.step(&ring, Duration::ZERO, &policy) {
            Step::Send { parts, .. } => {
                let bytes: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
                let last = *want.last().unwrap() as usize;
                assert_eq!(
                    &bytes[..188],
                    &ring.get(ring.last_keyframe().unwrap()).unwrap().psi[0][..]
                );
                assert_eq!(
                    &bytes[376..],
                    &data[last..],
                    "then the last keyframe onwards"
                );
                // The PAT/PMT sent first are the ones just before the keyframe: the stream's next
                // PAT and PMT continue their counters.
                let mut last = std::collections::HashMap::new();
                for p in bytes.chunks_exact(PACKET) {
                    let h = media::ts::header(p).unwrap();
                    if let Some(prev) = last.insert(h.pid, h.cc) {
                        if h.has_payload {
                            assert_eq!(h.cc, (prev + 1) & 15, "pid {}", h.pid);
                        }
                    }
                }
                // What the viewer got is a valid TS that indexes from its first keyframe.
                let got = media::ts::index(&bytes).unwrap();
                assert_eq!(got.keyframes[0].offset, 376);
            }
            other => panic!("{other:?}"),
        }
        hls.end();
        assert!(!hls.is_empty());
        let seg = hls.get(0).unwrap();
        let bytes: Vec<u8> = seg.parts.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(media::ts::index(&bytes).unwrap().keyframes[0].offset, 376);
    }

    #[test]
    fn bad_packets_are_refused_before_anything_is_published() {
        let mut ingest = Ingest::default();
        let mut bad = BytesMut::from(&[0u8; PACKET * 2][..]);
        bad[0] = 0x47;
        assert!(ingest.prepare(bad).is_err());
    }
}
