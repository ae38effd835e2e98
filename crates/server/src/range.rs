//! `Range: bytes=...` (RFC 9110 §14) resolved against an entity length. Sans-I/O.
//!
//! Inside the server every byte range is half-open (`start..end`); HTTP's inclusive `first-last`
//! appears only when parsing and when writing `Content-Range`.

use std::fmt;

/// A half-open byte range `start..end`, never empty once resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// The value of a `Content-Range` header for this range of an entity of `total` bytes.
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end - 1, total)
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end.saturating_sub(1))
    }
}

/// One `range-spec` as written (RFC 9110 §14.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// `first-last`
    Closed(u64, u64),
    /// `first-`
    From(u64),
    /// `-suffix`
    Suffix(u64),
}

/// How a request's `Range` header applies to an entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// No usable `Range` header (absent, not `bytes`, or syntactically invalid: §14.2 says ignore
    /// it), or ranges that add up to the whole entity: send the whole entity, 200.
    Full,
    /// Ranges to send, sorted, with overlapping and adjacent ones merged: 206.
    Partial(Vec<ByteRange>),
    /// None of the ranges overlaps the entity, or too many ranges: 416.
    Unsatisfiable,
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses a `Range` value. `None` means "ignore the header": an unknown unit or invalid syntax
/// (including `last < first`, which §14.1.1 calls invalid).
pub fn parse(value: &str) -> Option<Vec<Spec>> {
    let (unit, set) = value.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for part in set.split(',') {
        let part = part.trim_matches([' ', '\t']);
        if part.is_empty() {
            // RFC 9110 §5.6.1: empty list elements are allowed and ignored.
            continue;
        }
        let (a, b) = part.split_once('-')?;
        let spec = match (a.is_empty(), b.is_empty()) {
            (true, true) => return None,
            (true, false) => Spec::Suffix(number(b)?),
            (false, true) => Spec::From(number(a)?),
            (false, false) => {
                let (first, last) = (number(a)?, number(b)?);
                if last < first {
                    return None;
                }
                Spec::Closed(first, last)
            }
        };
        specs.push(spec);
    }
    (!specs.is_empty()).then_some(specs)
}

/// Resolves parsed specs against an entity of `len` bytes. More than `max_parts` specs is refused
/// (416), as RFC 9110 §15.5.17 allows for "an excessive number of small or overlapping ranges".
pub fn resolve(specs: &[Spec], len: u64, max_parts: usize) -> Resolution {
    if specs.len() > max_parts {
        return Resolution::Unsatisfiable;
    }
    let mut ranges: Vec<ByteRange> = specs
        .iter()
        .filter_map(|s| {
            let (start, end) = match *s {
                Spec::Closed(f, l) => (f, l.saturating_add(1).min(len)),
                Spec::From(f) => (f, len),
                Spec::Suffix(n) => (len.saturating_sub(n), len),
            };
            (start < end).then_some(ByteRange { start, end })
        })
        .collect();
    if ranges.is_empty() {
        return Resolution::Unsatisfiable;
    }
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    if merged.len() == 1 && merged[0].start == 0 && merged[0].end == len {
        return Resolution::Full;
    }
    Resolution::Partial(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &str, len: u64) -> Resolution {
        match parse(v) {
            None => Resolution::Full,
            Some(s) => resolve(&s, len, 100),
        }
    }

    fn part(pairs: &[(u64, u64)]) -> Resolution {
        Resolution::Partial(
            pairs
                .iter()
                .map(|&(start, end)| ByteRange { start, end })
                .collect(),
        )
    }

    #[test]
    fn single_suffix_open() {
        assert_eq!(r("bytes=0-499", 1000), part(&[(0, 500)]));
        assert_eq!(r("bytes=500-", 1000), part(&[(500, 1000)]));
        assert_eq!(r("bytes=-200", 1000), part(&[(800, 1000)]));
        assert_eq!(r("bytes=990-5000", 1000), part(&[(990, 1000)]));
        assert_eq!(r("bytes=-5000", 1000), Resolution::Full);
        assert_eq!(r("BYTES = 1-1", 1000), part(&[(1, 2)]));
        assert_eq!(r("bytes=0-", 1000), Resolution::Full);
    }

    #[test]
    fn multi_merges_and_sorts() {
        assert_eq!(r("bytes=500-599,0-99", 1000), part(&[(0, 100), (500, 600)]));
        assert_eq!(r("bytes=0-99,50-149, 150-199", 1000), part(&[(0, 200)]));
        assert_eq!(r("bytes=0-499,500-", 1000), Resolution::Full);
        assert_eq!(r("bytes=0-0,2000-3000", 1000), part(&[(0, 1)]));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(r("bytes=1000-", 1000), Resolution::Unsatisfiable);
        assert_eq!(r("bytes=-0", 1000), Resolution::Unsatisfiable);
        assert_eq!(r("bytes=0-", 0), Resolution::Unsatisfiable);
        let many: Vec<String> = (0..101).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
        assert_eq!(
            r(&format!("bytes={}", many.join(",")), 1000),
            Resolution::Unsatisfiable
        );
    }

    #[test]
    fn invalid_syntax_is_ignored() {
        for v in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=5-1",
            "items=0-1",
            "bytes=1-2-3",
            "bytes=--1",
            "bytes=0x10-",
            "bytes= ,",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(parse(v), None, "{v}");
        }
    }

    #[test]
    fn random_specs_resolve_inside_the_entity() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..10_000 {
            let len = rng.u64(0..5000);
            let specs: Vec<Spec> = (0..rng.usize(1..6))
                .map(|_| match rng.u8(0..3) {
                    0 => {
                        let a = rng.u64(0..6000);
                        Spec::Closed(a, a + rng.u64(0..3000))
                    }
                    1 => Spec::From(rng.u64(0..6000)),
                    _ => Spec::Suffix(rng.u64(0..6000)),
                })
                .collect();
            if let Resolution::Partial(rs) = resolve(&specs, len, 100) {
                for w in rs.windows(2) {
                    assert!(w[0].end < w[1].start, "sorted, disjoint, not adjacent");
                }
                for x in &rs {
                    assert!(x.start < x.end && x.end <= len);
                }
            }
        }
    }
}
