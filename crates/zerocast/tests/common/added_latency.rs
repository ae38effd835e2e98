//! How much later than the first fast viewer each fast viewer got a packet: the latency the
//! server's fan-out (and whatever disturbs it) adds, apart from the source's own pacing. Each
//! viewer notes when packets carrying a PCR arrived (one in [`EVERY`], keyed by publisher
//! session and PCR); afterwards each note is compared with the earliest arrival of the same
//! packet at any viewer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One PCR packet in this many is noted (bounds the memory of a long soak).
pub const EVERY: u64 = 8;
/// Bins of 0.25 ms up to 2 s; the last one holds everything later.
const BIN_NANOS: u64 = 250_000;
const BINS: usize = 8_000;

/// Added latencies of many packets.
#[derive(Debug, Clone)]
pub struct Histogram {
    bins: Vec<u64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            bins: vec![0; BINS],
        }
    }
}

impl Histogram {
    fn add(&mut self, d: Duration) {
        let i = (d.as_nanos() / u128::from(BIN_NANOS)).min(BINS as u128 - 1) as usize;
        self.bins[i] += 1;
    }

    pub fn count(&self) -> u64 {
        self.bins.iter().sum()
    }

    /// The `q` quantile (0..=1), to the bin's upper edge.
    pub fn quantile(&self, q: f64) -> Duration {
        let n = self.count();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((n - 1) as f64 * q).round() as u64;
        let mut seen = 0;
        for (i, c) in self.bins.iter().enumerate() {
            seen += c;
            if seen > rank {
                return Duration::from_nanos((i as u64 + 1) * BIN_NANOS);
            }
        }
        Duration::from_nanos(BINS as u64 * BIN_NANOS)
    }
}

/// One viewer's notes: (publisher session, PCR base) -> arrival.
#[derive(Debug, Default)]
pub struct Arrivals {
    session: u32,
    last_pcr: Option<u64>,
    pub notes: Vec<(u32, u64, Instant)>,
}

impl Arrivals {
    /// A packet with a PCR (its 33-bit base, 90 kHz) arrived at `at`.
    pub fn pcr(&mut self, pcr: u64, at: Instant, discontinuity: bool) {
        // A new publisher session: a discontinuity, or PCRs that start over. (A forward jump is
        // a viewer skipped ahead: the same session, so its packets still compare.)
        if let Some(last) = self.last_pcr {
            if discontinuity || pcr < last {
                self.session += 1;
            }
        }
        self.last_pcr = Some(pcr);
        // The same packets at every viewer: chosen by a hash of the PCR.
        if pcr.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32 < u64::from(u32::MAX) / EVERY {
            self.notes.push((self.session, pcr, at));
        }
    }
}

/// Each viewer's lateness against the first arrival of the same packet anywhere; packets that
/// only one viewer noted are left out (nothing to compare with).
pub fn added(viewers: &[&Arrivals]) -> Histogram {
    let mut first: HashMap<(u32, u64), (Instant, u32)> = HashMap::new();
    for v in viewers {
        for &(s, p, at) in &v.notes {
            let e = first.entry((s, p)).or_insert((at, 0));
            e.0 = e.0.min(at);
            e.1 += 1;
        }
    }
    let mut h = Histogram::default();
    for v in viewers {
        for &(s, p, at) in &v.notes {
            let (earliest, n) = first[&(s, p)];
            if n > 1 {
                h.add(at - earliest);
            }
        }
    }
    h
}
