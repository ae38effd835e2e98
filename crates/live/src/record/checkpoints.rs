//! Where each keyframe of a recorded stream went: its ring sequence number, when it arrived, and
//! the recording file and offset it was written at. A DVR viewer that asks for a time older than
//! the ring starts from the recording at the checkpoint at or before that time, reads the files
//! on to the newest checkpoint the ring still holds, and follows the ring from there: no gap, no
//! overlap.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// One keyframe, written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Its unit's sequence number in the stream's TS ring.
    pub seq: u64,
    /// When it arrived, on the live clock.
    pub arrived: Duration,
    /// The title id of the file it was written to.
    pub file: Arc<str>,
    /// Where its unit starts in that file.
    pub offset: u64,
    /// The PAT and PMT a reader starting here needs first (shared while they do not change).
    pub psi: Bytes,
}

/// How many checkpoints a stream keeps by default: four and a half hours of one-second GOPs. A
/// TS checkpoint holds its own copy of the PAT and PMT (their continuity counters differ from one
/// keyframe to the next): about 0.5 KB each...
pub const MAX: usize = 1 << 14;

/// ...and at most this many bytes of them a stream (a PMT may run over many packets: the oldest
/// checkpoints go first past it).
pub const MAX_PSI_BYTES: usize = 8 << 20;

/// Whether two checkpoints hold the same PAT/PMT allocation (not only equal bytes).
fn shared(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

/// A run of one file's bytes: `[start, end)`, or to the file's end when `end` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub file: Arc<str>,
    pub start: u64,
    pub end: Option<u64>,
}

/// A stream's checkpoints, oldest first, at most `max` of them (the oldest go first).
#[derive(Debug)]
pub struct Checkpoints {
    list: VecDeque<Checkpoint>,
    max: usize,
    /// Bytes of their PAT and PMT (counted once for a run of checkpoints that share them: an
    /// fMP4 recording's init segment).
    psi_bytes: usize,
}

impl Default for Checkpoints {
    fn default() -> Self {
        Checkpoints::new(MAX)
    }
}

impl Checkpoints {
    pub fn new(max: usize) -> Self {
        Checkpoints {
            list: VecDeque::new(),
            max: max.max(1),
            psi_bytes: 0,
        }
    }

    pub fn push(&mut self, c: Checkpoint) {
        if !self.list.back().is_some_and(|l| shared(&l.psi, &c.psi)) {
            self.psi_bytes += c.psi.len();
        }
        self.list.push_back(c);
        while self.list.len() > self.max || (self.list.len() > 1 && self.psi_bytes > MAX_PSI_BYTES)
        {
            if let Some(old) = self.list.pop_front() {
                // (The run it began goes on from the next one, counted.)
                if !self.list.front().is_some_and(|f| shared(&f.psi, &old.psi)) {
                    self.psi_bytes -= old.psi.len();
                }
            }
        }
    }

    /// Forgets the checkpoints in files that `keep` says are gone (retention removed them).
    pub fn retain_files(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.list.retain(|c| keep(&c.file));
        let mut before: Option<&Bytes> = None;
        self.psi_bytes = 0;
        for c in &self.list {
            if !before.is_some_and(|b| shared(b, &c.psi)) {
                self.psi_bytes += c.psi.len();
            }
            before = Some(&c.psi);
        }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&Checkpoint> {
        self.list.get(i)
    }

    /// When the oldest arrived.
    pub fn oldest(&self) -> Option<Duration> {
        self.list.front().map(|c| c.arrived)
    }

    /// The newest checkpoint that arrived at or before `at`.
    pub fn at(&self, at: Duration) -> Option<usize> {
        self.list
            .partition_point(|c| c.arrived <= at)
            .checked_sub(1)
    }

    /// The checkpoint of the keyframe unit `seq`.
    pub fn by_seq(&self, seq: u64) -> Option<usize> {
        let i = self.list.partition_point(|c| c.seq < seq);
        (self.list.get(i)?.seq == seq).then_some(i)
    }

    /// The newest checkpoint for which `in_ring` holds (its unit is still in the ring).
    pub fn newest_where(&self, mut in_ring: impl FnMut(u64) -> bool) -> Option<usize> {
        (0..self.list.len())
            .rev()
            .find(|&i| in_ring(self.list[i].seq))
    }

    /// The bytes from checkpoint `from` up to checkpoint `to` (not included), file by file, each
    /// file from its first keyframe: what the recorder wrote before it there repeats what was
    /// already sent. `in_band`: the stream carries those headers itself (TS: its PAT and PMT,
    /// whose continuity counters must not repeat); otherwise (fMP4: the init segment) a file
    /// that begins with different ones is read from its start.
    pub fn pieces(&self, from: usize, to: usize, in_band: bool) -> Vec<Piece> {
        let mut out: Vec<Piece> = Vec::new();
        if to <= from || to >= self.list.len() {
            return out;
        }
        for i in from..=to {
            let c = &self.list[i];
            match out.last_mut() {
                Some(p) if p.file == c.file => {}
                last => {
                    if let Some(p) = last {
                        p.end = None; // the previous file, to its end
                    }
                    // From the file's first keyframe, unless it begins with an init segment
                    // the reader does not have yet.
                    let changed = !in_band && i > from && self.list[i - 1].psi != c.psi;
                    out.push(Piece {
                        file: c.file.clone(),
                        start: if changed { 0 } else { c.offset },
                        end: None,
                    });
                }
            }
            if i == to {
                if let Some(p) = out.last_mut() {
                    p.end = Some(c.offset);
                }
            }
        }
        out.retain(|p| p.end != Some(p.start));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(seq: u64, secs: u64, file: &str, offset: u64) -> Checkpoint {
        Checkpoint {
            seq,
            arrived: Duration::from_secs(secs),
            file: file.into(),
            offset,
            psi: Bytes::from_static(b"PSI"),
        }
    }

    /// A publisher whose PMT runs over 23 packets: the checkpoints hold at most
    /// [`MAX_PSI_BYTES`] of PAT and PMT copies, the newest kept.
    #[test]
    fn the_psi_copies_checkpoints_hold_are_bounded_in_bytes() {
        let mut c = Checkpoints::default();
        let big = 24 * 188;
        for seq in 0..MAX as u64 {
            let mut k = cp(seq, seq, "f", seq * 1000);
            k.psi = Bytes::from(vec![0x47; big]);
            c.push(k);
        }
        assert!(c.len() * big <= MAX_PSI_BYTES, "{} kept", c.len());
        assert!(c.len() >= MAX_PSI_BYTES / big - 1);
        assert_eq!(c.list.back().map(|k| k.seq), Some(MAX as u64 - 1));
        // One init segment shared by every checkpoint (an fMP4 recording's) counts once.
        let mut c = Checkpoints::default();
        let init = Bytes::from(vec![0u8; 3 << 10]);
        for seq in 0..MAX as u64 {
            let mut k = cp(seq, seq, "f", seq * 1000);
            k.psi = init.clone();
            c.push(k);
        }
        assert_eq!(c.len(), MAX);
        c.retain_files(|_| true);
        assert_eq!(c.psi_bytes, 3 << 10);
    }

    fn piece(file: &str, start: u64, end: Option<u64>) -> Piece {
        Piece {
            file: file.into(),
            start,
            end,
        }
    }

    fn three_files() -> Checkpoints {
        let mut c = Checkpoints::new(100);
        for (i, (f, off)) in [
            ("a", 3),
            ("a", 50),
            ("b", 3),
            ("b", 40),
            ("c", 3),
            ("c", 70),
        ]
        .into_iter()
        .enumerate()
        {
            c.push(cp(10 + i as u64, i as u64 * 2, f, off));
        }
        c
    }

    #[test]
    fn a_time_finds_the_keyframe_at_or_before_it() {
        let c = three_files();
        assert_eq!(c.at(Duration::from_secs(0)), Some(0));
        assert_eq!(c.at(Duration::from_secs(5)), Some(2));
        assert_eq!(c.at(Duration::from_secs(100)), Some(5));
        let mut late = Checkpoints::new(4);
        late.push(cp(1, 10, "a", 0));
        assert_eq!(late.at(Duration::from_secs(9)), None);
        assert_eq!(c.newest_where(|seq| seq <= 13), Some(3));
        assert_eq!(c.newest_where(|_| false), None);
        assert_eq!(
            (c.by_seq(12), c.by_seq(9), c.by_seq(16)),
            (Some(2), None, None)
        );
    }

    #[test]
    fn pieces_run_from_one_keyframe_across_files_to_another() {
        let c = three_files();
        assert_eq!(
            c.pieces(1, 3, true),
            [piece("a", 50, None), piece("b", 3, Some(40))]
        );
        assert_eq!(
            c.pieces(0, 5, true),
            [
                piece("a", 3, None),
                piece("b", 3, None),
                piece("c", 3, Some(70))
            ]
        );
        assert_eq!(c.pieces(2, 3, true), [piece("b", 3, Some(40))]);
        // Up to the first keyframe of the next file: the previous file to its end.
        assert_eq!(c.pieces(1, 2, true), [piece("a", 50, None)]);
        assert!(c.pieces(3, 3, true).is_empty());
        assert!(c.pieces(4, 2, true).is_empty());
        assert!(c.pieces(0, 9, true).is_empty());
    }

    #[test]
    fn a_file_that_begins_with_a_new_init_segment_is_read_from_its_start() {
        let mut c = three_files();
        let mut changed = cp(20, 20, "d", 5);
        changed.psi = Bytes::from_static(b"NEW!!");
        c.push(changed);
        c.push(cp(21, 22, "d", 60));
        assert_eq!(
            c.pieces(5, 7, false),
            [piece("c", 70, None), piece("d", 0, Some(60))]
        );
        // TS: the stream carries its PAT and PMT itself (their counters change every time).
        assert_eq!(
            c.pieces(5, 7, true),
            [piece("c", 70, None), piece("d", 5, Some(60))]
        );
    }

    #[test]
    fn the_oldest_go_past_the_limit_and_removed_files_are_forgotten() {
        let mut c = Checkpoints::new(3);
        for i in 0..5 {
            c.push(cp(i, i, if i < 3 { "a" } else { "b" }, i));
        }
        assert_eq!((c.len(), c.oldest()), (3, Some(Duration::from_secs(2))));
        c.retain_files(|f| f != "a");
        assert_eq!((c.len(), c.get(0).map(|c| c.seq)), (2, Some(3)));
    }
}
