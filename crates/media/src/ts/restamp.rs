//! Continuity across publisher sessions: a stream that is published again (a reconnect, or a file
//! sent in a loop) restarts its continuity counters and timestamps, which players take for packet
//! loss and a jump back in time. [`Restamp`] rewrites each new session's packets in place so the
//! output continues the previous session: per PID the continuity counter goes on from the last one
//! sent, and every PTS, DTS and PCR is shifted by one offset (modulo 2^33) that puts the new
//! session's first timestamp just after the latest one already sent.

use super::{header, timestamp, PACKET};
use crate::time::Ts90k;

/// The gap left between the last timestamp of one session and the first of the next (40 ms, one
/// frame at 25 fps).
const GAP: u64 = 3600;

#[derive(Debug, Clone, Copy)]
struct Pid {
    pid: u16,
    /// The last continuity counter written out.
    last_cc: u8,
    /// Added (mod 16) to this PID's counters in the current session; `None` until its first packet.
    cc_add: Option<u8>,
}

/// Rewrites continuity counters and timestamps so that sessions follow each other seamlessly.
#[derive(Debug, Default, Clone)]
pub struct Restamp {
    pids: Vec<Pid>,
    /// Added (mod 2^33) to every timestamp in the current session; `None` until its first one.
    offset: Option<u64>,
    /// The latest timestamp written out (PTS, DTS or PCR base).
    latest: Option<u64>,
    sessions: u64,
}

impl Restamp {
    /// A rewriter that shifts every timestamp by `offset` (mod 2^33) and leaves the counters as
    /// they are: one stream's packets put on another's timeline.
    pub fn shifted_by(offset: u64) -> Self {
        Restamp {
            offset: Some(offset % Ts90k::WRAP),
            ..Restamp::default()
        }
    }

    /// The next packets' counters continue, per PID, from the last ones written (a new muxer's,
    /// which start from 0); the timestamps' shift stays as it is.
    pub fn continue_counters(&mut self) {
        for p in &mut self.pids {
            p.cc_add = None;
        }
    }

    /// Starts a new session: the next packets continue the counters and timestamps of the last.
    pub fn new_session(&mut self) {
        self.sessions += 1;
        self.offset = None;
        for p in &mut self.pids {
            p.cc_add = None;
        }
    }

    /// What the current session's timestamps are shifted by (mod 2^33; 0 before its first).
    pub fn offset(&self) -> u64 {
        self.offset.unwrap_or(0)
    }

    /// How many sessions there were before the current one.
    pub fn sessions(&self) -> u64 {
        self.sessions
    }

    /// Rewrites whole packets in place. Packets that do not parse are left as they are (the
    /// caller's splitter rejects them).
    pub fn apply(&mut self, packets: &mut [u8]) {
        for p in packets.chunks_exact_mut(PACKET) {
            let Some(h) = header(p) else { continue };
            if h.pid == 0x1fff {
                continue;
            }
            self.continuity(p, h.pid, h.cc, h.has_payload);
            // PCR in the adaptation field.
            if p[3] & 0x20 != 0 && p[4] >= 7 && p[5] & 0x10 != 0 {
                let b = &p[6..12];
                let base = u64::from(b[0]) << 25
                    | u64::from(b[1]) << 17
                    | u64::from(b[2]) << 9
                    | u64::from(b[3]) << 1
                    | u64::from(b[4]) >> 7;
                let out = self.shift(base);
                p[6] = (out >> 25) as u8;
                p[7] = (out >> 17) as u8;
                p[8] = (out >> 9) as u8;
                p[9] = (out >> 1) as u8;
                p[10] = (p[10] & 0x7f) | (((out & 1) as u8) << 7);
            }
            // PTS and DTS at the start of a PES.
            if h.pusi && h.has_payload {
                let pes = &mut p[h.payload_start..];
                if pes.len() >= 9 && pes[..3] == [0, 0, 1] && has_pes_header(pes[3]) {
                    let flags = pes[7] >> 6;
                    if flags & 0b10 != 0 && pes.len() >= 14 {
                        self.rewrite(&mut pes[9..14]);
                    }
                    if flags == 0b11 && pes.len() >= 19 {
                        self.rewrite(&mut pes[14..19]);
                    }
                }
            }
        }
    }

    fn continuity(&mut self, p: &mut [u8], pid: u16, cc: u8, payload: bool) {
        let i = match self.pids.iter().position(|e| e.pid == pid) {
            Some(i) => i,
            None => {
                self.pids.push(Pid {
                    pid,
                    last_cc: cc,
                    cc_add: Some(0),
                });
                return;
            }
        };
        let e = &mut self.pids[i];
        let add = *e.cc_add.get_or_insert_with(|| {
            // The counter goes up by one with each payload packet, and repeats otherwise.
            let want = (e.last_cc + u8::from(payload)) & 0x0f;
            want.wrapping_sub(cc) & 0x0f
        });
        let out = (cc + add) & 0x0f;
        p[3] = (p[3] & 0xf0) | out;
        e.last_cc = out;
    }

    fn shift(&mut self, ts: u64) -> u64 {
        let offset = *self.offset.get_or_insert_with(|| match self.latest {
            Some(latest) => (latest + GAP + Ts90k::WRAP - ts) % Ts90k::WRAP,
            None => 0,
        });
        let out = (ts + offset) % Ts90k::WRAP;
        // "Latest" in wrapping order: a value less than half the clock ahead is later.
        let later = self
            .latest
            .is_none_or(|l| (out + Ts90k::WRAP - l) % Ts90k::WRAP < Ts90k::WRAP / 2);
        if later {
            self.latest = Some(out);
        }
        out
    }

    fn rewrite(&mut self, field: &mut [u8]) {
        let out = self.shift(timestamp(field).0);
        // Keep the 4-bit prefix and the marker bits.
        field[0] = (field[0] & 0xf1) | (((out >> 30) as u8 & 0x07) << 1);
        field[1] = (out >> 22) as u8;
        field[2] = (((out >> 15) as u8) << 1) | (field[2] & 1);
        field[3] = (out >> 7) as u8;
        field[4] = ((out as u8) << 1) | (field[4] & 1);
    }
}

/// Stream ids whose PES packets carry the optional header with PTS/DTS (ISO/IEC 13818-1 2.4.3.7).
fn has_pes_header(stream_id: u8) -> bool {
    !matches!(
        stream_id,
        0xbc | 0xbe | 0xbf | 0xf0 | 0xf1 | 0xf2 | 0xf8 | 0xff
    )
}

#[cfg(test)]
mod tests {
    use super::super::{pes_header, PACKET};
    use super::*;
    use std::collections::HashMap;

    fn clip() -> Vec<u8> {
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/clip.ts")).unwrap()
    }

    /// Per packet: PID, CC, has payload, and the PTS/DTS/PCR it carries.
    fn facts(data: &[u8]) -> Vec<(u16, u8, bool, Vec<u64>)> {
        data.chunks_exact(PACKET)
            .map(|p| {
                let h = header(p).unwrap();
                let mut ts = Vec::new();
                if p[3] & 0x20 != 0 && p[4] >= 7 && p[5] & 0x10 != 0 {
                    let b = &p[6..11];
                    ts.push(
                        u64::from(b[0]) << 25
                            | u64::from(b[1]) << 17
                            | u64::from(b[2]) << 9
                            | u64::from(b[3]) << 1
                            | u64::from(b[4]) >> 7,
                    );
                }
                if h.pusi && h.pid != 0 {
                    if let Some((pts, dts, _)) = pes_header(&p[h.payload_start..]) {
                        ts.extend(pts.map(|t| t.0));
                        ts.extend(dts.map(|t| t.0));
                    }
                }
                (h.pid, h.cc, h.has_payload, ts)
            })
            .collect()
    }

    #[test]
    fn the_first_session_is_untouched() {
        let data = clip();
        let mut out = data.clone();
        let mut r = Restamp::default();
        r.apply(&mut out[..PACKET * 50]);
        r.apply(&mut out[PACKET * 50..]);
        assert_eq!(out, data);
    }

    #[test]
    fn a_second_session_continues_counters_and_timestamps() {
        let data = clip();
        let mut out = data.clone();
        let mut r = Restamp::default();
        r.apply(&mut out);
        // The publisher comes back and sends the same file again from the start.
        let mut again = data.clone();
        r.new_session();
        r.apply(&mut again);
        let first = facts(&out);
        let second = facts(&again);
        let mut last_cc: HashMap<u16, u8> = HashMap::new();
        for (pid, cc, _, _) in first.iter() {
            last_cc.insert(*pid, *cc);
        }
        // Continuity: each PID's first counter in session two follows its last in session one.
        let mut seen = HashMap::new();
        for (pid, cc, payload, _) in second.iter() {
            if seen.insert(*pid, ()).is_none() {
                let want = (last_cc[pid] + u8::from(*payload)) & 0x0f;
                assert_eq!(*cc, want, "pid {pid}");
            }
        }
        // Within session two the counters still step as in the source.
        let src = facts(&data);
        let mut prev: HashMap<u16, (u8, u8)> = HashMap::new();
        for (s, t) in src.iter().zip(&second) {
            if let Some((ps, pt)) = prev.insert(s.0, (s.1, t.1)) {
                assert_eq!(s.1.wrapping_sub(ps) & 15, t.1.wrapping_sub(pt) & 15);
            }
        }
        // Timestamps: every one in session two is later than the latest of session one, and the
        // differences between them are unchanged.
        let max1 = first
            .iter()
            .flat_map(|f| f.3.iter().copied())
            .max()
            .unwrap();
        let ts2: Vec<u64> = second.iter().flat_map(|f| f.3.iter().copied()).collect();
        let src_ts: Vec<u64> = src.iter().flat_map(|f| f.3.iter().copied()).collect();
        assert_eq!(ts2.len(), src_ts.len());
        let min2 = *ts2.iter().min().unwrap();
        assert!(
            min2 > max1,
            "session two starts after session one ({min2} > {max1})"
        );
        assert!(min2 - max1 < 2 * 90_000, "and not long after");
        let offset = ts2[0] - src_ts[0];
        assert!(ts2.iter().zip(&src_ts).all(|(a, b)| a - b == offset));
        // The bytes apart from counters and timestamps are untouched.
        assert_eq!(again.len(), data.len());
        assert_eq!(
            again.chunks_exact(PACKET).map(|p| p[0]).collect::<Vec<_>>(),
            data.chunks_exact(PACKET).map(|p| p[0]).collect::<Vec<_>>()
        );
    }

    #[test]
    fn timestamps_shift_across_the_33_bit_wrap() {
        // A session whose latest timestamp is just below the wrap.
        let mut r = Restamp {
            latest: Some(Ts90k::WRAP - 100),
            ..Restamp::default()
        };
        r.new_session();
        let out = r.shift(5_000);
        assert_eq!(out, (Ts90k::WRAP - 100 + GAP) % Ts90k::WRAP);
        assert_eq!(r.shift(5_100), (out + 100) % Ts90k::WRAP);
        assert_eq!(r.latest, Some((out + 100) % Ts90k::WRAP));
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut r = Restamp::default();
        for i in 0..2000 {
            let mut d: Vec<u8> = (0..PACKET * 3).map(|_| rng.u8(..)).collect();
            for k in (0..d.len()).step_by(PACKET) {
                d[k] = super::super::SYNC;
            }
            if i % 10 == 0 {
                r.new_session();
            }
            r.apply(&mut d);
        }
    }
}
