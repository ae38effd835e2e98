//! The HTTP-FLV viewer (`--output flv`): `GET /live/{stream}.flv`, the chunked body checked for
//! structure ([`FlvCheck`]: the FLV header, every tag's PreviousTagSize and type) rather than
//! continuity counters, and the first video keyframe noted.

use crate::http::follow_body;
use crate::report::{Shared, ViewerStats};
use anyhow::Result;
use media::flv::wire::classify;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use tokio::time::Instant;

/// An HTTP-FLV viewer: checks the FLV header and every tag's framing (PreviousTagSize), and
/// notes the first video keyframe.
pub async fn viewer(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    stream: &str,
    read_size: usize,
    st: &ViewerStats,
    sh: &Shared,
) -> Result<()> {
    let start = Instant::now();
    let mut check = FlvCheck::new(start);
    let path = format!("/live/{stream}.flv");
    follow_body(addr, bind, &path, read_size, st, sh, |d| check.feed(d, st)).await
}

/// The FLV parser's window: a tag header, then `skip` body bytes, then PreviousTagSize. Each
/// structural fault (not `FLV`, a PreviousTagSize that is not the last tag's size, a tag type
/// other than audio, video or script) counts as a gap.
struct FlvCheck {
    head: Vec<u8>,
    /// How many bytes of header to gather: the file header first, then 15 (PreviousTagSize and
    /// a tag header).
    need_header: usize,
    /// What the next PreviousTagSize must say.
    last_tag: usize,
    /// Tag body bytes still to pass over.
    skip: usize,
    in_file_header: bool,
    /// When the request was sent.
    start: Instant,
}

impl FlvCheck {
    fn new(start: Instant) -> Self {
        FlvCheck {
            head: Vec::with_capacity(16),
            need_header: 9,
            last_tag: 0,
            skip: 0,
            in_file_header: true,
            start,
        }
    }

    /// Checks one span of body bytes.
    fn feed(&mut self, mut d: &[u8], st: &ViewerStats) {
        while !d.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(d.len());
                self.skip -= n;
                d = &d[n..];
                continue;
            }
            let head = &mut self.head;
            let n = (self.need_header - head.len()).min(d.len());
            head.extend_from_slice(&d[..n]);
            d = &d[n..];
            if head.len() < self.need_header {
                continue;
            }
            if self.in_file_header {
                if &head[..3] != b"FLV" {
                    st.gaps.fetch_add(1, Relaxed);
                }
                self.in_file_header = false;
            } else {
                // PreviousTagSize of the last tag (4), then this tag's header (11).
                let prev = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
                if prev as usize != self.last_tag {
                    st.gaps.fetch_add(1, Relaxed);
                }
                let size = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
                self.last_tag = 11 + size;
                if head[4] == 9 && size > 0 && st.first_keyframe_us.load(Relaxed) == 0 {
                    // The body's first two bytes decide; peek when present.
                    if classify(true, d).keyframe {
                        st.first_keyframe_us
                            .store(self.start.elapsed().as_micros().max(1) as u64, Relaxed);
                    }
                }
                if !matches!(head[4], 8 | 9 | 18) {
                    st.gaps.fetch_add(1, Relaxed);
                }
                self.skip = size;
            }
            head.clear();
            // Next: PreviousTagSize (after the file header: PreviousTagSize0), then a tag header.
            self.need_header = 15;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PreviousTagSize `prev`, then a tag of `kind` with `body`.
    fn tag(prev: u32, kind: u8, body: &[u8]) -> Vec<u8> {
        let mut t = prev.to_be_bytes().to_vec();
        let n = (body.len() as u32).to_be_bytes();
        t.extend_from_slice(&[kind, n[1], n[2], n[3], 0, 0, 0, 0, 0, 0, 0]);
        t.extend_from_slice(body);
        t
    }

    /// A file header, a script tag, a video keyframe and an audio tag.
    fn file() -> Vec<u8> {
        let mut f = b"FLV\x01\x05\x00\x00\x00\x09".to_vec();
        f.extend(tag(0, 18, b"meta"));
        f.extend(tag(11 + 4, 9, &[0x17, 1, 0, 0, 0, 0xaa]));
        f.extend(tag(11 + 6, 8, &[0xaf, 1, 0x21]));
        f
    }

    fn check(input: &[u8], step: usize) -> ViewerStats {
        let st = ViewerStats::default();
        let mut c = FlvCheck::new(Instant::now());
        for span in input.chunks(step) {
            c.feed(span, &st);
        }
        st
    }

    #[test]
    fn a_well_formed_file_has_no_gaps_in_any_cut() {
        let f = file();
        for step in 1..=f.len() {
            assert_eq!(check(&f, step).gaps.load(Relaxed), 0, "spans of {step}");
        }
        // In one piece the keyframe's body is there to peek at.
        assert!(check(&f, f.len()).first_keyframe_us.load(Relaxed) > 0);
    }

    #[test]
    fn a_wrong_previous_tag_size_is_a_gap() {
        let mut f = file();
        // The video tag's PreviousTagSize (just after the 9-byte header and the 19-byte script
        // tag with its own PreviousTagSize0).
        f[9 + 4 + 11 + 4 + 3] = 99;
        assert_eq!(check(&f, f.len()).gaps.load(Relaxed), 1);
    }

    #[test]
    fn not_flv_and_an_unknown_tag_type_are_gaps() {
        let mut f = b"XYZ\x01\x05\x00\x00\x00\x09".to_vec();
        f.extend(tag(0, 7, b"?"));
        assert_eq!(check(&f, 1).gaps.load(Relaxed), 2);
    }
}
