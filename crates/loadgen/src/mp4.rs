//! The HTTP-fMP4 viewer (`--output mp4`): `GET /live/{stream}.mp4`, the chunked body checked for
//! box structure ([`BoxCheck`]: `ftyp` and `moov` first, then `moof`/`mdat` pairs (a `prft` or
//! an inline init segment allowed between them), every box size within bounds), and the first
//! fragment noted as the first keyframe (a viewer starts at a keyframe fragment).

use crate::http::{get, Dechunk};
use crate::report::{Shared, ViewerStats};
use anyhow::Result;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use tokio::io::AsyncReadExt;
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
    let (mut s, mut buf, mut from, mut to) =
        get(addr, bind, &format!("/live/{stream}.mp4"), read_size).await?;
    let mut body = Dechunk::default();
    let mut check = BoxCheck::new(start);
    loop {
        let done = body.feed(&buf[from..to], |d| {
            st.bytes.fetch_add(d.len() as u64, Relaxed);
            check.feed(d, st);
        })?;
        if done || sh.stop.load(Relaxed) {
            st.ended.store(done, Relaxed);
            return Ok(());
        }
        let n = s.read(&mut buf).await?;
        if n == 0 {
            st.ended.store(true, Relaxed);
            return Ok(());
        }
        (from, to) = (0, n);
    }
}

/// Largest box a live fragment stream should carry (a fragment is one frame).
const MAX_BOX: u64 = 64 << 20;

/// Top-level boxes, one header (size, type) at a time; each structural fault (a box of an
/// unexpected type, a size below 8 or above [`MAX_BOX`], not `ftyp` first) counts as a gap.
struct BoxCheck {
    head: Vec<u8>,
    /// Body bytes of the current box still to pass over.
    skip: u64,
    boxes: u64,
    start: Instant,
}

impl BoxCheck {
    fn new(start: Instant) -> Self {
        BoxCheck {
            head: Vec::with_capacity(8),
            skip: 0,
            boxes: 0,
            start,
        }
    }

    fn feed(&mut self, mut d: &[u8], st: &ViewerStats) {
        while !d.is_empty() {
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
            self.head.clear();
        }
    }
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
        let st = ViewerStats::default();
        let mut c = BoxCheck::new(Instant::now());
        for span in input.chunks(step) {
            c.feed(span, &st);
        }
        st
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
