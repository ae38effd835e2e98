//! The HTTP-fMP4 viewer (`--output mp4`): `GET /live/{stream}.mp4`, the chunked body checked for
//! box structure ([`BoxCheck`]: `ftyp` and `moov` first, then `moof`/`mdat` pairs (a `prft` or
//! an inline init segment allowed between them), every box size within bounds), the first
//! fragment noted as the first keyframe (a viewer starts at a keyframe fragment), and each
//! fragment's `prft` (the wall clock when zerocast's ingest received the frame) read as a
//! latency mark: ingest to read, on this machine's clock.

use crate::http::follow_body;
use crate::report::{Shared, ViewerStats};
use crate::stamp::now_us;
use anyhow::Result;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use tokio::time::Instant;

/// An HTTP-fMP4 viewer.
pub async fn viewer(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    stream: &str,
    read_size: usize,
    st: &ViewerStats,
    sh: &Shared,
) -> Result<()> {
    let start = Instant::now();
    let mut check = BoxCheck::new(start);
    let path = format!("/live/{stream}.mp4");
    follow_body(addr, bind, &path, read_size, st, sh, |d| {
        check.feed(d, st, sh)
    })
    .await
}

/// Largest box a live fragment stream should carry (a fragment is one frame).
const MAX_BOX: u64 = 64 << 20;

/// Top-level boxes, one header (size, type) at a time; each structural fault (a box of an
/// unexpected type, a size below 8 or above [`MAX_BOX`], not `ftyp` first) counts as a gap.
pub(crate) struct BoxCheck {
    head: Vec<u8>,
    /// Body bytes of the current box still to pass over.
    skip: u64,
    boxes: u64,
    start: Instant,
    /// The body of a `prft` being gathered.
    prft: Option<Vec<u8>>,
    /// When the request these boxes answer was sent (wall clock, µs; LL-HLS parts): marks of
    /// frames that reached the ingest after it are also counted as a waiting request's.
    pub(crate) asked_at_us: Option<u64>,
}

impl BoxCheck {
    fn new(start: Instant) -> Self {
        BoxCheck {
            head: Vec::with_capacity(8),
            skip: 0,
            boxes: 0,
            start,
            prft: None,
            asked_at_us: None,
        }
    }

    /// For a stream of fragments whose init segment came elsewhere (LL-HLS parts).
    pub(crate) fn after_init(start: Instant) -> Self {
        BoxCheck {
            boxes: 1,
            ..BoxCheck::new(start)
        }
    }

    pub(crate) fn feed(&mut self, mut d: &[u8], st: &ViewerStats, sh: &Shared) {
        while !d.is_empty() {
            if let Some(p) = &mut self.prft {
                // Version and flags, track id, NTP time, media time.
                let n = (24 - p.len()).min(d.len());
                p.extend_from_slice(&d[..n]);
                d = &d[n..];
                self.skip -= n as u64;
                if p.len() == 24 {
                    let ntp = u64::from_be_bytes(p[8..16].try_into().unwrap_or_default());
                    let sent = ntp_to_unix_us(ntp);
                    let us = now_us().saturating_sub(sent).min(u64::from(u32::MAX)) as u32;
                    sh.latencies_us.lock().unwrap().push(us);
                    if self.asked_at_us.is_some_and(|a| sent >= a) {
                        sh.waiting_us.lock().unwrap().push(us);
                    }
                    self.prft = None;
                }
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(d.len() as u64);
                self.skip -= n;
                d = &d[n as usize..];
                continue;
            }
            let n = (8 - self.head.len()).min(d.len());
            self.head.extend_from_slice(&d[..n]);
            d = &d[n..];
            if self.head.len() < 8 {
                continue;
            }
            let size = u64::from(u32::from_be_bytes([
                self.head[0],
                self.head[1],
                self.head[2],
                self.head[3],
            ]));
            let kind = [self.head[4], self.head[5], self.head[6], self.head[7]];
            let expected = if self.boxes == 0 {
                kind == *b"ftyp"
            } else {
                matches!(
                    &kind,
                    b"ftyp" | b"moov" | b"moof" | b"mdat" | b"prft" | b"styp"
                )
            };
            if !expected || !(8..=MAX_BOX).contains(&size) {
                st.gaps.fetch_add(1, Relaxed);
            }
            if &kind == b"moof" && st.first_keyframe_us.load(Relaxed) == 0 {
                st.first_keyframe_us
                    .store(self.start.elapsed().as_micros().max(1) as u64, Relaxed);
            }
            self.boxes += 1;
            self.skip = size.saturating_sub(8);
            if &kind == b"prft" && size == 32 {
                self.prft = Some(Vec::with_capacity(24));
            }
            self.head.clear();
        }
    }
}

/// Microseconds since 1970 of an NTP timestamp (seconds since 1900, 32-bit fraction).
fn ntp_to_unix_us(ntp: u64) -> u64 {
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let secs = (ntp >> 32).saturating_sub(UNIX_TO_NTP);
    let frac = ((ntp & 0xffff_ffff) * 1_000_000) >> 32;
    secs * 1_000_000 + frac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(kind: &[u8; 4], body: usize) -> Vec<u8> {
        let mut b = ((8 + body) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.resize(8 + body, 0xab);
        b
    }

    fn check(input: &[u8], step: usize) -> ViewerStats {
        check_with(input, step).0
    }

    fn check_with(input: &[u8], step: usize) -> (ViewerStats, Shared) {
        let (st, sh) = (ViewerStats::default(), Shared::default());
        let mut c = BoxCheck::new(Instant::now());
        for span in input.chunks(step) {
            c.feed(span, &st, &sh);
        }
        (st, sh)
    }

    #[test]
    fn a_prft_gives_the_latency_from_ingest_in_any_cut() {
        // Received 0.25 s ago (NTP format).
        let at = now_us() - 250_000;
        let ntp = ((at / 1_000_000 + 2_208_988_800) << 32) | (((at % 1_000_000) << 32) / 1_000_000);
        let mut p = 32u32.to_be_bytes().to_vec();
        p.extend_from_slice(b"prft");
        p.extend_from_slice(&[1, 0, 0, 8, 0, 0, 0, 1]);
        p.extend_from_slice(&ntp.to_be_bytes());
        p.extend_from_slice(&0u64.to_be_bytes());
        let mut f = bx(b"ftyp", 8);
        f.extend(p);
        f.extend(bx(b"moof", 8));
        for step in 1..=f.len() {
            let (st, sh) = check_with(&f, step);
            assert_eq!(st.gaps.load(Relaxed), 0);
            let l = sh.latencies_us.lock().unwrap();
            assert_eq!(l.len(), 1, "spans of {step}");
            assert!((250_000..1_000_000).contains(&l[0]), "{}", l[0]);
        }
    }

    #[test]
    fn init_then_fragments_have_no_gaps_in_any_cut_and_note_the_first_fragment() {
        let mut f = bx(b"ftyp", 16);
        f.extend(bx(b"moov", 40));
        for _ in 0..3 {
            f.extend(bx(b"moof", 30));
            f.extend(bx(b"mdat", 50));
        }
        for step in 1..=f.len() {
            let st = check(&f, step);
            assert_eq!(st.gaps.load(Relaxed), 0, "spans of {step}");
            assert!(st.first_keyframe_us.load(Relaxed) > 0);
        }
    }

    #[test]
    fn a_stream_that_is_not_mp4_is_a_gap() {
        let mut f = bx(b"moof", 4);
        f.extend(bx(b"junk", 4));
        assert_eq!(check(&f, 3).gaps.load(Relaxed), 2);
    }
}
