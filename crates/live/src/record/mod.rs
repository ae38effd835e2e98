//! Recording a live stream to files, sans-I/O: where a file starts and what it is called
//! ([`Rotation`], [`file_name`]), which finished files retention removes ([`retention`]), and the
//! seek index of a file that is still being written, grown from the bytes as they are written
//! ([`index::Growing`]). The server's shell (crates/server/src/record/) follows the stream's
//! MPEG-TS ring, writes, renames and deletes.

pub mod checkpoints;
pub mod index;
pub mod retention;

use crate::llhls::wallclock::{parse_rfc3339_ms, rfc3339_ms};
use crate::ring::{Ring, Unit};
use std::time::Duration;

/// A recorder's cursor in a stream's ring: every unit in order from the oldest the ring holds
/// when it starts. Unlike a viewer it never jumps ahead on purpose; a recorder so far behind that
/// the ring dropped units before it took them is told how many it lost.
#[derive(Debug, Default)]
pub struct Follow {
    next: Option<u64>,
}

/// What one [`Follow::take`] returns.
#[derive(Debug, Default)]
pub struct Taken {
    /// The units, in order (shared bytes: cloning a unit copies no media).
    pub units: Vec<Unit>,
    /// Units that left the ring before they were taken, just before `units`.
    pub lost: u64,
}

impl Follow {
    /// The units after the cursor, at most `max_bytes` of them (at least one when there is one).
    pub fn take(&mut self, ring: &Ring, max_bytes: usize) -> Taken {
        let first = ring.first_seq();
        let (start, lost) = match self.next {
            Some(n) if n >= first => (n, 0),
            Some(n) => (first, first - n),
            None => (first, 0),
        };
        let mut units = Vec::new();
        let mut bytes = 0;
        let mut seq = start;
        while let Some(u) = ring.get(seq) {
            if !units.is_empty() && bytes + u.len() > max_bytes {
                break;
            }
            bytes += u.len();
            units.push(u.clone());
            seq += 1;
        }
        self.next = Some(seq);
        Taken { units, lost }
    }

    /// Units between the cursor and the newest one.
    pub fn lag(&self, ring: &Ring) -> u64 {
        ring.end_seq()
            .saturating_sub(self.next.unwrap_or(ring.first_seq()))
    }
}

/// What a recording file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The stream's MPEG-TS ring as ingested (or as muxed from RTMP): no remux.
    #[default]
    Ts,
    /// The stream's fragmented MP4 (CMAF) ring: its init segment, then its fragments.
    Fmp4,
}

impl Format {
    /// The file name extension.
    pub fn ext(self) -> &'static str {
        match self {
            Format::Ts => "ts",
            Format::Fmp4 => "mp4",
        }
    }
}

/// When a recording moves on to a new file: only ever at a keyframe, once the file holds
/// `segment` of stream time or `max_bytes`, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub segment: Duration,
    pub max_bytes: u64,
}

/// The file being written, as far as rotation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    /// When its first unit arrived, on the live clock.
    pub started: Duration,
    pub bytes: u64,
}

impl Rotation {
    /// Whether a unit that arrived at `arrived` starts a new file before it is written. `open`:
    /// the file being written, if any. A file only ever starts at a keyframe, so nothing is
    /// written until the first one.
    pub fn starts_file(&self, open: Option<Open>, keyframe: bool, arrived: Duration) -> bool {
        match open {
            None => keyframe,
            Some(f) => {
                keyframe
                    && (arrived.saturating_sub(f.started) >= self.segment
                        || f.bytes >= self.max_bytes)
            }
        }
    }
}

/// A recording file's name: its first frame's arrival (UTC, to the millisecond, ISO 8601 basic
/// format, so names sort by time and need no escaping in a URL), then `.ext`:
/// `20261126T135500.250Z.ts`.
pub fn file_name(started_unix_ms: u64, ext: &str) -> String {
    let t = rfc3339_ms(started_unix_ms);
    let basic: String = t.chars().filter(|c| *c != '-' && *c != ':').collect();
    format!("{basic}.{ext}")
}

/// When the recording in the file named `name` (a bare name, no directories) began, in Unix
/// milliseconds; `None` for a name [`file_name`] did not make.
pub fn started(name: &str) -> Option<u64> {
    let (stem, ext) = name.rsplit_once('.')?;
    // A recording's (an operator's sidecar named the same way is not one: retention and
    // uploads leave it alone).
    if !matches!(ext, "ts" | "mp4") {
        return None;
    }
    // YYYYMMDDTHHMMSS.mmmZ, ASCII (so the slices below fall on character boundaries).
    let b = stem.as_bytes();
    if b.len() != 20 || !stem.is_ascii() || b[8] != b'T' || b[15] != b'.' || b[19] != b'Z' {
        return None;
    }
    let ext = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &stem[0..4],
        &stem[4..6],
        &stem[6..8],
        &stem[9..11],
        &stem[11..13],
        &stem[13..19]
    );
    parse_rfc3339_ms(&ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_file_starts_only_at_a_keyframe_after_the_segment_length_or_the_size() {
        let r = Rotation {
            segment: S(10),
            max_bytes: 1000,
        };
        assert!(!r.starts_file(None, false, S(0)), "never mid-GOP");
        assert!(r.starts_file(None, true, S(0)));
        let open = Open {
            started: S(5),
            bytes: 10,
        };
        assert!(!r.starts_file(Some(open), true, S(14)));
        assert!(
            !r.starts_file(Some(open), false, S(16)),
            "waits for a keyframe"
        );
        assert!(r.starts_file(Some(open), true, S(15)));
        let big = Open {
            bytes: 1000,
            ..open
        };
        assert!(r.starts_file(Some(big), true, S(6)));
        assert!(!r.starts_file(Some(big), false, S(6)));
    }

    /// A ring of 10 bytes, and what three units cost beyond theirs.
    fn ring() -> Ring {
        Ring::new(crate::ring::Limits {
            max_bytes: 10 + 3 * crate::ring::UNIT_OVERHEAD,
            max_age: S(60),
        })
    }

    #[test]
    fn the_cursor_takes_every_unit_once_in_order_and_counts_what_it_lost() {
        let mut r = ring();
        let mut f = Follow::default();
        assert!(f.take(&r, 100).units.is_empty());
        r.push_keyframe(bytes::Bytes::from_static(b"abc"), Vec::new(), S(0));
        r.push(bytes::Bytes::from_static(b"de"), S(0));
        assert_eq!(f.lag(&r), 2);
        let t = f.take(&r, 3);
        assert_eq!((t.units.len(), t.lost), (1, 0), "bounded by bytes");
        let t = f.take(&r, 1);
        assert_eq!((t.units.len(), t.lost), (1, 0), "at least one unit");
        assert_eq!(&t.units[0].data[..], b"de");
        assert_eq!(f.lag(&r), 0);
        // Four more units of 3 bytes: the 10-byte ring keeps the last three.
        for _ in 0..4 {
            r.push(bytes::Bytes::from_static(b"fgh"), S(1));
        }
        let t = f.take(&r, 100);
        assert_eq!((t.units.len(), t.lost), (3, 1));
        assert!(f.take(&r, 100).units.is_empty());
    }

    #[test]
    fn names_sort_by_time_and_give_their_start_back() {
        let a = file_name(1_795_741_262_345, "ts");
        assert_eq!(a, "20261127T010102.345Z.ts");
        assert_eq!(started(&a), Some(1_795_741_262_345));
        let b = file_name(1_795_741_262_346, "ts");
        assert!(a < b);
        assert_eq!(
            started(&file_name(951_782_400_000, "mp4")),
            Some(951_782_400_000)
        );
        // Found by the fuzzer: a name of the right length with a multi-byte character.
        assert_eq!(started("2026\0\u{168}6T135500.250Z.t\u{1}\0\0`s"), None);
        assert_eq!(started("2026\u{e9}\u{e9}6T135500.250Z.ts"), None);
        for bad in [
            "",
            "x.ts",
            "20261127T010102.345Z.jpg",
            "20261127T010102.345Z.json",
            "20261127T010102.345Z",
            "20261127X010102.345Z.ts",
            "2026112yT010102.345Z.ts",
            "20261327T010102.345Z.ts",
        ] {
            assert_eq!(started(bad), None, "{bad}");
        }
    }
}
