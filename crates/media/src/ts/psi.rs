//! PSI sections (PAT, PMT) gathered from the packets of one PID, whole and checked by their
//! CRC_32 (ISO/IEC 13818-1 §2.4.4).
//!
//! ```text
//! packet with PUSI: pointer_field | end of the section before (pointer bytes) | section... | 0xFF stuffing
//! packet without:   more of the section begun before
//! section:          table_id | syntax(1) 0 rr section_length(12) | ... | CRC_32
//! ```
//! A section longer than one packet (a PMT with many streams or descriptors) continues in the
//! PID's next packets. What is gathered is bounded by the 12-bit section_length (4 KiB); a
//! section whose CRC does not match is dropped, as is one cut short by the next section's start.
//! A muxer that never writes a right CRC (there are such) is taken at its word after
//! [`TRUST_AFTER`] sections in a row without one, as ffmpeg does; once a PID has shown a right
//! CRC, a wrong one is always dropped.

use super::mux::crc32_mpeg2;

/// The longest section there can be: the 3-byte head and a 12-bit section_length.
const MAX_SECTION: usize = 3 + 0xfff;

/// The most packets one section takes (with the pointer field, 184 bytes of payload each).
pub const SECTION_PACKETS: usize = (1 + MAX_SECTION).div_ceil(184);

/// Whole sections in a row whose CRC does not match, on a PID that never had one that does,
/// after which they are taken anyway.
pub const TRUST_AFTER: u32 = 8;

/// One PID's sections being gathered.
#[derive(Debug, Default, Clone)]
pub struct Sections {
    /// The section begun and not yet whole (empty: none).
    buf: Vec<u8>,
    /// A section with a matching CRC came by.
    crc_seen: bool,
    /// Sections in a row whose CRC did not match.
    crc_wrong: u32,
}

impl Sections {
    /// One packet's payload of this PID (`pusi`: a section begins in it, after the pointer
    /// field). Calls `whole` with each section it completes whose CRC_32 matches.
    pub fn push(&mut self, pusi: bool, payload: &[u8], mut whole: impl FnMut(&[u8])) {
        self.push_marked(pusi, payload, |s, _| whole(s));
    }

    /// Whether a section begun in an earlier packet is being gathered.
    pub fn gathering(&self) -> bool {
        !self.buf.is_empty()
    }

    /// [`Sections::push`], telling `whole` also whether each section began in this packet
    /// (`false`: in an earlier one, ended here).
    pub fn push_marked(&mut self, pusi: bool, payload: &[u8], whole: impl FnMut(&[u8], bool)) {
        let mut whole = whole;
        let mut earlier = |s: &[u8]| whole(s, false);
        if !pusi {
            if !self.buf.is_empty() {
                self.take(payload, &mut earlier);
            }
            return;
        }
        let Some((&pointer, after)) = payload.split_first() else {
            self.buf.clear();
            return;
        };
        let Some((end_of_last, mut rest)) = after.split_at_checked(usize::from(pointer)) else {
            self.buf.clear();
            return;
        };
        if !self.buf.is_empty() {
            self.take(end_of_last, &mut earlier);
            // Whatever did not complete with the bytes the pointer gave is cut short.
            self.buf.clear();
        }
        let mut here = |s: &[u8]| whole(s, true);
        // Sections beginning in this packet, until stuffing.
        while rest.first().is_some_and(|&b| b != 0xff) {
            self.buf.clear();
            rest = self.take(rest, &mut here);
        }
    }

    /// Adds what the section begun needs of `data`; returns the rest.
    fn take<'a>(&mut self, data: &'a [u8], whole: &mut impl FnMut(&[u8])) -> &'a [u8] {
        let head = 3usize.saturating_sub(self.buf.len()).min(data.len());
        let (h, data) = data.split_at(head);
        self.buf.extend_from_slice(h);
        let Some(&[_, hi, lo]) = self.buf.get(..3) else {
            return data;
        };
        let len = 3 + (usize::from(hi & 0x0f) << 8 | usize::from(lo));
        debug_assert!(len <= MAX_SECTION);
        let want = len.saturating_sub(self.buf.len()).min(data.len());
        let (body, rest) = data.split_at(want);
        self.buf.extend_from_slice(body);
        if self.buf.len() >= len {
            // With its CRC, a section's CRC_32 is 0.
            if len >= 3 + 4 {
                if crc32_mpeg2(&self.buf) == 0 {
                    (self.crc_seen, self.crc_wrong) = (true, 0);
                    whole(&self.buf);
                } else {
                    self.crc_wrong = self.crc_wrong.saturating_add(1);
                    if !self.crc_seen && self.crc_wrong >= TRUST_AFTER {
                        whole(&self.buf);
                    }
                }
            }
            self.buf.clear();
        }
        rest
    }
}

/// `ts` with each PMT declaring `extra` private streams (with a 20-byte descriptor each) before
/// its own, so that it runs over several packets (each further packet right after the first).
#[cfg(test)]
pub(crate) fn with_long_pmt(ts: &[u8], extra: u16) -> Vec<u8> {
    use super::{first_section, header, pat_pmt_pid, PACKET};
    let first_payload = |p: &[u8]| header(p).map(|h| (h, p[h.payload_start..].to_vec()));
    let pmt_pid = ts
        .chunks_exact(PACKET)
        .filter_map(first_payload)
        .find(|(h, _)| h.pid == 0 && h.pusi)
        .and_then(|(_, pl)| first_section(&pl).and_then(pat_pmt_pid))
        .expect("a PAT");
    let mut out = Vec::with_capacity(ts.len() * 2);
    let mut cc = 0u8;
    for p in ts.chunks_exact(PACKET) {
        let Some((h, pl)) = first_payload(p).filter(|(h, _)| h.pid == pmt_pid && h.pusi) else {
            out.extend_from_slice(p);
            continue;
        };
        let s = first_section(&pl).expect("a PMT");
        let info = 12 + usize::from(u16::from_be_bytes([s[10] & 0x0f, s[11]]));
        let mut body = s[3..info].to_vec();
        for i in 0..extra {
            let pid = 0x1e00 + i;
            body.extend_from_slice(&[0x06, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 22, 0x80, 20]);
            body.extend_from_slice(&[0xaa; 20]);
        }
        body.extend_from_slice(&s[info..s.len() - 4]);
        let len = body.len() + 4;
        let mut section = vec![0x02, 0xb0 | (len >> 8) as u8, len as u8];
        section.extend_from_slice(&body);
        let crc = crc32_mpeg2(&section);
        section.extend_from_slice(&crc.to_be_bytes());
        let mut payload = vec![0];
        payload.extend_from_slice(&section);
        for (i, chunk) in payload.chunks(184).enumerate() {
            let pusi = if i == 0 { 0x40 } else { 0 };
            out.extend_from_slice(&[0x47, pusi | (h.pid >> 8) as u8, h.pid as u8, 0x10 | cc]);
            out.extend_from_slice(chunk);
            out.resize(out.len() + 184 - chunk.len(), 0xff);
            cc = (cc + 1) & 0x0f;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A section of `table_id` with `body` and a right CRC.
    fn section(table_id: u8, body: &[u8]) -> Vec<u8> {
        let len = body.len() + 4;
        let mut s = vec![table_id, 0xb0 | (len >> 8) as u8, len as u8];
        s.extend_from_slice(body);
        let crc = crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        s
    }

    /// `s` as packet payloads of 184 bytes: the first with a pointer field of 0, stuffed.
    fn payloads(s: &[u8]) -> Vec<(bool, Vec<u8>)> {
        let mut with_pointer = vec![0];
        with_pointer.extend_from_slice(s);
        with_pointer
            .chunks(184)
            .enumerate()
            .map(|(i, c)| {
                let mut p = c.to_vec();
                p.resize(184, 0xff);
                (i == 0, p)
            })
            .collect()
    }

    fn gather(s: &mut Sections, payloads: &[(bool, Vec<u8>)]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (pusi, p) in payloads {
            s.push(*pusi, p, |w| out.push(w.to_vec()));
        }
        out
    }

    #[test]
    fn a_section_in_one_packet_is_whole_at_once() {
        let pmt = section(2, &[7; 40]);
        assert_eq!(gather(&mut Sections::default(), &payloads(&pmt)), [pmt]);
    }

    #[test]
    fn a_section_over_several_packets_is_whole_with_its_last() {
        let pmt = section(2, &(0..=255).cycle().take(700).collect::<Vec<u8>>());
        let p = payloads(&pmt);
        assert_eq!(p.len(), 4);
        let mut s = Sections::default();
        assert!(gather(&mut s, &p[..3]).is_empty());
        assert_eq!(gather(&mut s, &p[3..]), [pmt]);
    }

    #[test]
    fn a_section_with_a_wrong_crc_is_dropped_and_the_next_is_taken() {
        let good = section(2, &[1; 30]);
        let mut bad = good.clone();
        bad[10] ^= 1;
        let mut s = Sections::default();
        assert!(gather(&mut s, &payloads(&bad)).is_empty());
        assert_eq!(gather(&mut s, &payloads(&good)), [good]);
    }

    #[test]
    fn a_muxer_that_never_writes_a_right_crc_is_taken_at_its_word_after_a_few_tables() {
        let mut bad = section(2, &[1; 30]);
        bad[10] ^= 1;
        let mut s = Sections::default();
        let mut taken = Vec::new();
        for _ in 0..TRUST_AFTER + 2 {
            taken.push(!gather(&mut s, &payloads(&bad)).is_empty());
        }
        let n = TRUST_AFTER as usize;
        assert!(taken[..n - 1].iter().all(|t| !t) && taken[n - 1..].iter().all(|t| *t));
        // One that has shown a right CRC: a wrong one is never taken.
        let good = section(2, &[1; 30]);
        let mut s = Sections::default();
        assert_eq!(gather(&mut s, &payloads(&good)), [good]);
        for _ in 0..TRUST_AFTER + 2 {
            assert!(gather(&mut s, &payloads(&bad)).is_empty());
        }
    }

    #[test]
    fn the_pointer_field_ends_the_last_section_and_others_follow_in_one_packet() {
        let (a, b, c) = (
            section(2, &[3; 250]),
            section(2, &[4; 10]),
            section(2, &[5; 20]),
        );
        let first = payloads(&a);
        // The second packet: the pointer past a's end, then b and c, then stuffing.
        let done = 183;
        let tail = &a[done..];
        let mut second = vec![tail.len() as u8];
        second.extend_from_slice(tail);
        second.extend_from_slice(&b);
        second.extend_from_slice(&c);
        second.resize(184, 0xff);
        let mut s = Sections::default();
        let got = gather(&mut s, &[first[0].clone(), (true, second)]);
        assert_eq!(got, [a, b, c]);
    }

    #[test]
    fn a_section_cut_short_by_the_next_start_is_dropped() {
        let long = section(2, &[6; 400]);
        let short = section(2, &[8; 12]);
        let mut s = Sections::default();
        let mut p = payloads(&long);
        p.truncate(1);
        p.extend(payloads(&short));
        assert_eq!(gather(&mut s, &p), [short]);
    }

    #[test]
    fn continuations_without_a_beginning_and_bad_pointers_give_nothing() {
        let mut s = Sections::default();
        let got = gather(
            &mut s,
            &[
                (false, vec![2, 0xb0, 10, 1, 2, 3]),
                (true, vec![200, 1, 2]),
                (true, vec![]),
            ],
        );
        assert!(got.is_empty());
    }

    #[test]
    fn a_long_pmt_declares_every_stream_once_gathered() {
        use crate::ts::{header, pmt_streams, PACKET};
        let data =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/clip.ts")).unwrap();
        let long = with_long_pmt(&data, 30);
        let mut s = Sections::default();
        let mut declared = Vec::new();
        let mut packets = 0;
        for p in long.chunks_exact(PACKET) {
            let h = header(p).unwrap();
            if h.pid == 0x1000 {
                packets += 1;
                s.push(h.pusi, &p[h.payload_start..], |w| {
                    declared.push(pmt_streams(w).unwrap())
                });
            }
        }
        assert!(!declared.is_empty() && packets >= 3 * declared.len());
        for streams in declared {
            assert_eq!(streams.len(), 32);
            let own: Vec<u8> = streams[30..].iter().map(|s| s.stream_type).collect();
            assert_eq!(
                own,
                [0x1b, 0x0f],
                "ffmpeg's H.264 and AAC, after the 30 added"
            );
        }
    }

    #[test]
    fn random_payloads_never_panic_and_stay_bounded() {
        let mut rng = fastrand::Rng::with_seed(14);
        let mut s = Sections::default();
        for _ in 0..20_000 {
            let n = rng.usize(0..=184);
            let p: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
            s.push(rng.bool(), &p, |w| assert!(w.len() <= MAX_SECTION));
            assert!(s.buf.len() <= MAX_SECTION);
        }
    }
}
