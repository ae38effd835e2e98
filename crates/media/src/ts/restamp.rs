//! Continuity across publisher sessions: a stream that is published again (a reconnect, or a file
//! sent in a loop) restarts its continuity counters and timestamps, which players take for packet
//! loss and a jump back in time. [`Restamp`] rewrites each new session's packets in place so the
//! output continues the previous session: per PID the continuity counter goes on from the last one
//! sent, and every PTS, DTS and PCR is shifted by one offset (modulo 2^33) that puts the new
//! session's first timestamp just after the latest one already sent.
//!
//! The same within a session: a publisher whose timestamps jump (`cat a.ts b.ts | curl -T -`, an
//! encoder restarted behind a relay that keeps the upload open) would otherwise give a segment
//! of 26 hours (a step back read forward across the 33-bit wrap) or of the jump's length. A
//! decode time (or PCR) of the reference PID (the first to carry a PCR: the program's clock)
//! more than [`BACK`] behind its last one, or more than [`AHEAD`] past the latest of the
//! stream, starts a new timeline the same way: the shift changes so that it follows on just
//! after the latest (other PIDs then land on their own, the shift being one for the whole
//! stream). Only the reference decides: sparse PIDs (data, subtitles) have gaps, and the
//! programs of a multi-program stream clocks of their own, that are not jumps.

use super::{header, timestamp, PACKET};
use crate::time::Ts90k;

/// The gap left between the last timestamp of one session and the first of the next (40 ms, one
/// frame at 25 fps).
const GAP: u64 = 3600;
/// A PID's decode time (DTS, or PTS without one; or its PCR) this far behind its last one is a
/// jump to another timeline (1 s: decode times only go forward).
const BACK: u64 = 90_000;
/// A timestamp this far past the latest of the stream is a jump (10 s).
const AHEAD: u64 = 10 * 90_000;

#[derive(Debug, Clone, Copy, Default)]
struct Pid {
    seen: bool,
    /// The last continuity counter written out.
    last_cc: u8,
    /// Added (mod 16) to this PID's counters in the current session; `None` until its first packet.
    cc_add: Option<u8>,
    /// The last decode time and PCR written out on this PID.
    last_decode: Option<u64>,
    last_pcr: Option<u64>,
}

/// Which timestamp of a packet is checked against its PID's last.
#[derive(Clone, Copy)]
enum Clock {
    Decode,
    Pcr,
}

/// Rewrites continuity counters and timestamps so that sessions follow each other seamlessly.
#[derive(Debug, Default, Clone)]
pub struct Restamp {
    /// Indexed by PID (grown to the largest seen, at most 8,192 entries): a lookup per packet
    /// costs the same whatever the PIDs a publisher sends.
    pids: Vec<Pid>,
    /// Leave jumps within a session as they are (a stream put on another's timeline, whose
    /// timestamps are already continuous).
    keep_jumps: bool,
    /// The PID whose timestamps tell a jump: the first that carried a PCR.
    reference: Option<u16>,
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
            keep_jumps: true,
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
            // PCR in the adaptation field.
            if p[3] & 0x20 != 0 && p[4] >= 7 && p[5] & 0x10 != 0 {
                let b = &p[6..12];
                let base = u64::from(b[0]) << 25
                    | u64::from(b[1]) << 17
                    | u64::from(b[2]) << 9
                    | u64::from(b[3]) << 1
                    | u64::from(b[4]) >> 7;
                self.reference.get_or_insert(h.pid);
                self.follow(h.pid, Clock::Pcr, base);
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
                    let pts =
                        (flags & 0b10 != 0 && pes.len() >= 14).then(|| timestamp(&pes[9..14]));
                    let dts = (flags == 0b11 && pes.len() >= 19).then(|| timestamp(&pes[14..19]));
                    if let Some(decode) = dts.or(pts) {
                        self.follow(h.pid, Clock::Decode, decode.0);
                    }
                    if pts.is_some() {
                        self.rewrite(&mut pes[9..14]);
                    }
                    if dts.is_some() {
                        self.rewrite(&mut pes[14..19]);
                    }
                }
            }
            // After the timestamps: a jump they showed continues the counters from here too.
            self.continuity(p, h.pid, h.cc, h.has_payload);
        }
    }

    /// The PID's entry (PIDs are 13 bits: at most 8,192 entries).
    fn pid(&mut self, pid: u16) -> &mut Pid {
        let i = usize::from(pid & 0x1fff);
        if self.pids.len() <= i {
            self.pids.resize(i + 1, Pid::default());
        }
        &mut self.pids[i]
    }

    /// Checks a decode time or PCR (as it came in) against where its PID and the stream are, and
    /// starts a new timeline when it jumped (the module's comment); notes it as the PID's last.
    fn follow(&mut self, pid: u16, clock: Clock, ts: u64) {
        let keep = self.keep_jumps || self.reference != Some(pid);
        let (offset, latest) = (self.offset, self.latest);
        let e = self.pid(pid);
        let last = match clock {
            Clock::Decode => e.last_decode,
            Clock::Pcr => e.last_pcr,
        };
        let mut out = offset.map(|o| (ts + o) % Ts90k::WRAP);
        if let (Some(o), false) = (out, keep) {
            let behind = last.is_some_and(|l| {
                (l + Ts90k::WRAP - o) % Ts90k::WRAP > BACK
                    && (l + Ts90k::WRAP - o) % Ts90k::WRAP < Ts90k::WRAP / 2
            });
            let ahead = latest.is_some_and(|l| {
                let d = (o + Ts90k::WRAP - l) % Ts90k::WRAP;
                d > AHEAD && d < Ts90k::WRAP / 2
            });
            if behind || ahead {
                // A new timeline: it follows on just after the latest, and the counters go on
                // from the last ones, as for a new session.
                self.offset = None;
                self.continue_counters();
                out = Some(self.shift(ts));
            }
        }
        let e = self.pid(pid);
        let slot = match clock {
            Clock::Decode => &mut e.last_decode,
            Clock::Pcr => &mut e.last_pcr,
        };
        *slot = out.or(*slot);
    }

    fn continuity(&mut self, p: &mut [u8], pid: u16, cc: u8, payload: bool) {
        let e = self.pid(pid);
        if !e.seen {
            *e = Pid {
                seen: true,
                last_cc: cc,
                cc_add: Some(0),
                ..*e
            };
            return;
        }
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

    /// All the timestamps of `data`, in packet order.
    fn stamps(data: &[u8]) -> Vec<u64> {
        facts(data).into_iter().flat_map(|f| f.3).collect()
    }

    /// What a player checks across the join of `first` and `second`: the second's timestamps
    /// begin just after the first's latest, keep their own spacing, and counters run on.
    fn assert_follows(first: &[u8], second: &[u8], src: &[u8]) {
        let max1 = stamps(first).into_iter().max().unwrap();
        let (ts2, src_ts) = (stamps(second), stamps(src));
        let min2 = *ts2.iter().min().unwrap();
        assert!(
            min2 > max1 && min2 - max1 < 2 * 90_000,
            "{max1} then {min2}"
        );
        let offset = ts2[0].wrapping_sub(src_ts[0]);
        assert!(ts2
            .iter()
            .zip(&src_ts)
            .all(|(a, b)| a.wrapping_sub(*b) == offset));
        let mut last_cc: HashMap<u16, u8> = HashMap::new();
        for (pid, cc, _, _) in facts(first) {
            last_cc.insert(pid, cc);
        }
        // Of the PIDs that carry timestamps (the tables sent before the first timestamp of
        // the new timeline cannot know of it).
        let mut seen = HashMap::new();
        for (pid, cc, payload, ts) in facts(second) {
            if !ts.is_empty() && seen.insert(pid, ()).is_none() {
                assert_eq!(cc, (last_cc[&pid] + u8::from(payload)) & 0x0f, "pid {pid}");
            }
        }
    }

    /// `cat a.ts a.ts | curl -T -`: the second copy's timestamps start over within one session.
    #[test]
    fn a_step_back_within_a_session_starts_a_timeline_that_follows_on() {
        let data = clip();
        let (mut first, mut second) = (data.clone(), data.clone());
        let mut r = Restamp::default();
        r.apply(&mut first);
        r.apply(&mut second);
        assert_follows(&first, &second, &data);
    }

    /// The same stream, its timestamps an hour later from its middle on (an encoder restarted
    /// behind a relay).
    #[test]
    fn a_jump_forward_within_a_session_starts_a_timeline_that_follows_on() {
        let data = clip();
        let half = data.len() / PACKET / 2 * PACKET;
        let mut later = data[half..].to_vec();
        Restamp::shifted_by(3600 * 90_000).apply(&mut later);
        let (mut first, mut second) = (data[..half].to_vec(), later.clone());
        let mut r = Restamp::default();
        r.apply(&mut first);
        r.apply(&mut second);
        let max1 = stamps(&first).into_iter().max().unwrap();
        let min2 = stamps(&second).into_iter().min().unwrap();
        assert!(min2 < max1 + 2 * 90_000, "{max1} then {min2}");
        // Nothing jumps back either: from the join on the timestamps are the source's, shifted.
        let (ts2, src) = (stamps(&second), stamps(&later));
        let offset = ts2[0].wrapping_sub(src[0]);
        assert!(ts2
            .iter()
            .zip(&src)
            .all(|(a, b)| a.wrapping_sub(*b) == offset));
    }

    /// A PID on a clock of its own (another program of a multi-program stream), an hour ahead:
    /// only the reference PID (the one with the PCR) tells jumps, so nothing is re-based and
    /// the stream passes as it came (it used to jump back and forth at every packet).
    #[test]
    fn a_pid_on_a_clock_of_its_own_is_not_a_jump() {
        let mut data = clip();
        let pcr_pid = data
            .chunks_exact(PACKET)
            .find(|p| p[3] & 0x20 != 0 && p[4] >= 7 && p[5] & 0x10 != 0)
            .map(|p| header(p).unwrap().pid)
            .unwrap();
        let mut hour = Restamp::shifted_by(3600 * 90_000);
        for p in data.chunks_exact_mut(PACKET) {
            let h = header(p).unwrap();
            if h.pid != pcr_pid && h.pusi && h.pid > 0x20 {
                hour.apply(p);
            }
        }
        let mut out = data.clone();
        Restamp::default().apply(&mut out);
        assert_eq!(stamps(&out), stamps(&data));
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
