//! The MPEG-TS viewer (`--output ts`, the default): `GET /live/{stream}.ts`, the chunked body
//! read with kernel receive timestamps, and each packet checked ([`TsCheck`]): continuity
//! counters per PID (a skip shows as a gap), the first keyframe, and latency marks.

use crate::http::{get, Dechunk};
use crate::publish::{read_mark, MARK_PID};
use crate::report::{Shared, ViewerStats};
use crate::stamp::{arrival_stamps, now_us, read_stamped};
use anyhow::Result;
use media::ts::{Cut, Splitter, PACKET};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use tokio::time::Instant;

/// Only the first gap is described on stderr.
static GAP_REPORTED: AtomicBool = AtomicBool::new(false);

/// Watches `/live/{stream}.ts` until told to stop or the server ends it.
pub async fn viewer(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    stream: &str,
    read_size: usize,
    st: &ViewerStats,
    sh: &Shared,
) -> Result<()> {
    let start = Instant::now();
    let (s, mut buf, mut from, mut to) =
        get(addr, bind, &format!("/live/{stream}.ts"), read_size).await?;
    arrival_stamps(&s)?;
    // The kernel receive time of the latest bytes read (none for what came with the head).
    let mut arrival: Option<u64> = None;
    let mut body = Dechunk::default();
    let mut pkt = [0u8; PACKET];
    let mut fill = 0;
    let mut check = TsCheck::new(start);
    loop {
        let done = body.feed(&buf[from..to], |mut d| {
            st.bytes.fetch_add(d.len() as u64, Relaxed);
            // Whole packets are checked in place; only a packet split across reads (or
            // chunks) is assembled in `pkt`.
            if fill > 0 {
                let n = (PACKET - fill).min(d.len());
                pkt[fill..fill + n].copy_from_slice(&d[..n]);
                fill += n;
                d = &d[n..];
                if fill == PACKET {
                    fill = 0;
                    check.packet(&pkt, st, sh, arrival);
                }
            }
            let mut whole = d.chunks_exact(PACKET);
            for p in &mut whole {
                let p: &[u8; PACKET] = p.try_into().expect("chunks_exact");
                check.packet(p, st, sh, arrival);
            }
            let rest = whole.remainder();
            pkt[fill..fill + rest.len()].copy_from_slice(rest);
            fill += rest.len();
        })?;
        if done {
            st.ended.store(true, Relaxed);
            return Ok(());
        }
        if sh.stop.load(Relaxed) {
            return Ok(());
        }
        let (n, at) = read_stamped(&s, &mut buf).await?;
        if n == 0 {
            st.ended.store(true, Relaxed);
            return Ok(());
        }
        (from, to, arrival) = (0, n, at);
    }
}

/// What a TS viewer checks packet by packet.
struct TsCheck {
    /// The last continuity counter per PID.
    cc: Vec<(u16, u8)>,
    /// Looks for the first keyframe; dropped once found.
    splitter: Option<Splitter>,
    cuts: Vec<Cut>,
    /// When the request was sent.
    start: Instant,
}

impl TsCheck {
    fn new(start: Instant) -> Self {
        TsCheck {
            cc: Vec::new(),
            splitter: Some(Splitter::default()),
            cuts: Vec::new(),
            start,
        }
    }

    fn packet(&mut self, p: &[u8; PACKET], st: &ViewerStats, sh: &Shared, arrival: Option<u64>) {
        let Self {
            cc,
            splitter,
            cuts,
            start,
        } = self;
        let start = *start;
        let Some(h) = media::ts::header(p) else {
            st.gaps.fetch_add(1, Relaxed);
            return;
        };
        if h.has_payload {
            match cc.iter_mut().find(|(pid, _)| *pid == h.pid) {
                Some((_, last)) => {
                    if h.cc != (*last + 1) & 0x0f {
                        st.gaps.fetch_add(1, Relaxed);
                        if !GAP_REPORTED.swap(true, Relaxed) {
                            eprintln!(
                                "first gap: pid {:#x} cc {} after {} at {:?}",
                                h.pid,
                                h.cc,
                                last,
                                start.elapsed()
                            );
                        }
                    }
                    *last = h.cc;
                }
                None => cc.push((h.pid, h.cc)),
            }
        }
        if h.pid == MARK_PID {
            if let Some(sent) = read_mark(p) {
                let us = |t: u64| t.saturating_sub(sent).min(u64::from(u32::MAX)) as u32;
                sh.latencies_us.lock().unwrap().push(us(now_us()));
                if let Some(a) = arrival {
                    sh.arrivals_us.lock().unwrap().push(us(a));
                }
            }
        }
        if let Some(sp) = splitter {
            cuts.clear();
            if sp.feed(p, cuts).is_ok() && cuts.iter().any(|c| matches!(c, Cut::Keyframe { .. })) {
                st.first_keyframe_us
                    .store(start.elapsed().as_micros().max(1) as u64, Relaxed);
                *splitter = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::mark;

    /// A payload-only packet on `pid` with continuity counter `cc` (a PID not in any PMT, so
    /// the keyframe search ignores it).
    fn packet(pid: u16, cc: u8) -> [u8; PACKET] {
        let mut p = [0xffu8; PACKET];
        p[..4].copy_from_slice(&[0x47, (pid >> 8) as u8, pid as u8, 0x10 | cc]);
        p
    }

    fn run(packets: &[[u8; PACKET]], arrival: Option<u64>) -> (ViewerStats, Shared) {
        let (st, sh) = (ViewerStats::default(), Shared::default());
        let mut check = TsCheck::new(Instant::now());
        for p in packets {
            check.packet(p, &st, &sh, arrival);
        }
        (st, sh)
    }

    #[test]
    fn continuous_counters_wrapping_are_no_gap() {
        let ps: Vec<_> = (0..40u8).map(|i| packet(0x100, i & 0x0f)).collect();
        let (st, _) = run(&ps, None);
        assert_eq!(st.gaps.load(Relaxed), 0);
    }

    #[test]
    fn a_skipped_packet_is_one_gap_per_pid() {
        // PID 0x100: 0 1 2 4 5 (one skip); PID 0x101: 7 8 9 (continuous, interleaved).
        let ps = [
            packet(0x100, 0),
            packet(0x101, 7),
            packet(0x100, 1),
            packet(0x101, 8),
            packet(0x100, 2),
            packet(0x100, 4),
            packet(0x101, 9),
            packet(0x100, 5),
        ];
        let (st, _) = run(&ps, None);
        assert_eq!(st.gaps.load(Relaxed), 1);
    }

    #[test]
    fn a_packet_without_sync_is_a_gap() {
        let mut bad = packet(0x100, 1);
        bad[0] = 0;
        let (st, _) = run(&[packet(0x100, 0), bad, packet(0x100, 1)], None);
        assert_eq!(st.gaps.load(Relaxed), 1);
    }

    #[test]
    fn a_mark_gives_a_latency_and_an_arrival() {
        let sent = now_us() - 5_000;
        let (st, sh) = run(&[mark(sent, 0), mark(sent, 1)], Some(sent + 2_000));
        assert_eq!(st.gaps.load(Relaxed), 0);
        let lat = sh.latencies_us.lock().unwrap().clone();
        assert_eq!(lat.len(), 2);
        assert!(lat.iter().all(|&l| l >= 5_000), "{lat:?}");
        assert_eq!(*sh.arrivals_us.lock().unwrap(), [2_000, 2_000]);
    }
}
