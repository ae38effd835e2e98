//! Exact media time.
//!
//! A [`MediaTime`] is a count of ticks over a timescale (`ticks / scale` seconds), compared exactly
//! by cross-multiplication, so a keyframe at 1001/30000 s is never missed by a rounding error. A
//! [`FrameRate`] is a rational (`30000/1001`). [`Ts90k`] is the 33-bit MPEG-TS clock.

use std::cmp::Ordering;
use std::fmt;

/// `ticks / scale` seconds, exact.
#[derive(Debug, Clone, Copy)]
pub struct MediaTime {
    pub ticks: i64,
    pub scale: u32,
}

impl MediaTime {
    pub const ZERO: MediaTime = MediaTime { ticks: 0, scale: 1 };

    /// A time in ticks of `scale`; a zero scale is treated as 1 so the type can never divide by 0.
    pub fn new(ticks: i64, scale: u32) -> Self {
        MediaTime {
            ticks,
            scale: scale.max(1),
        }
    }

    pub fn as_secs_f64(self) -> f64 {
        self.ticks as f64 / f64::from(self.scale)
    }

    /// The same instant in another timescale, rounded to the nearest tick.
    pub fn rescale(self, scale: u32) -> i64 {
        let scale = scale.max(1);
        let num = i128::from(self.ticks) * i128::from(scale);
        let den = i128::from(self.scale);
        let rounded = if num >= 0 {
            (num + den / 2) / den
        } else {
            (num - den / 2) / den
        };
        rounded.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    fn cross(self, other: MediaTime) -> (i128, i128) {
        (
            i128::from(self.ticks) * i128::from(other.scale),
            i128::from(other.ticks) * i128::from(self.scale),
        )
    }
}

impl PartialEq for MediaTime {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = self.cross(*other);
        a == b
    }
}
impl Eq for MediaTime {}
impl PartialOrd for MediaTime {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for MediaTime {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = self.cross(*other);
        a.cmp(&b)
    }
}

impl fmt::Display for MediaTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}", self.as_secs_f64())
    }
}

/// Frames per second as a reduced rational, `num / den` (for example `30000/1001`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRate {
    pub num: u32,
    pub den: u32,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Rates that broadcast and web video actually use; measured rates close to one are snapped to it.
const COMMON_RATES: [(u32, u32); 12] = [
    (24000, 1001),
    (24, 1),
    (25, 1),
    (30000, 1001),
    (30, 1),
    (48, 1),
    (50, 1),
    (60000, 1001),
    (60, 1),
    (15, 1),
    (12, 1),
    (120, 1),
];

impl FrameRate {
    /// `num/den`, reduced; `None` for a zero numerator or denominator.
    pub fn new(num: u64, den: u64) -> Option<Self> {
        if num == 0 || den == 0 {
            return None;
        }
        let g = gcd(num, den);
        let (n, d) = (num / g, den / g);
        if n > u64::from(u32::MAX) || d > u64::from(u32::MAX) {
            return Self::from_f64(num as f64 / den as f64);
        }
        Some(FrameRate {
            num: n as u32,
            den: d as u32,
        })
    }

    /// The rate of frames lasting `delta` ticks of `timescale`, snapped to a common rate when within
    /// 0.05% of one (timestamps in milliseconds cannot express 1/24 s exactly).
    pub fn from_frame_duration(timescale: u64, delta: u64) -> Option<Self> {
        let exact = Self::new(timescale, delta)?;
        // No video runs faster; a track that says so has no usable rate (as `from_f64`).
        if exact.as_f64() > 10_000.0 {
            return None;
        }
        Some(exact.snapped())
    }

    /// A rate from a float, snapped to a common rate or rounded to 1/1000 fps.
    pub fn from_f64(fps: f64) -> Option<Self> {
        if !fps.is_finite() || fps <= 0.0 || fps > 10_000.0 {
            return None;
        }
        Self::new((fps * 1000.0).round() as u64, 1000).map(Self::snapped)
    }

    fn snapped(self) -> Self {
        let fps = self.as_f64();
        for (n, d) in COMMON_RATES {
            let c = f64::from(n) / f64::from(d);
            if ((fps - c) / c).abs() < 0.0005 {
                return FrameRate { num: n, den: d };
            }
        }
        self
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// The whole number of frames that a timecode counts per second (30 for 29.97).
    pub fn nominal(self) -> u32 {
        (self.as_f64().round() as u32).max(1)
    }

    /// Frames dropped from the count at each minute in SMPTE 12M drop-frame timecode, for the NTSC
    /// rates 30000/1001 (2) and 60000/1001 (4); `None` where drop-frame does not exist.
    pub fn drop_frames(self) -> Option<u32> {
        match (self.num, self.den) {
            (30000, 1001) => Some(2),
            (60000, 1001) => Some(4),
            _ => None,
        }
    }

    /// The start time of frame `n`: `n * den / num` seconds.
    pub fn frame_time(self, n: u64) -> MediaTime {
        let ticks = (u128::from(n) * u128::from(self.den)).min(i64::MAX as u128) as i64;
        MediaTime::new(ticks, self.num)
    }

    /// The frame that contains `t`, rounded to the nearest frame.
    pub fn frame_at(self, t: MediaTime) -> u64 {
        let num = i128::from(t.ticks) * i128::from(self.num);
        let den = i128::from(t.scale) * i128::from(self.den);
        ((num + den / 2) / den).max(0) as u64
    }
}

impl fmt::Display for FrameRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// A 33-bit MPEG-TS presentation/decoding timestamp in 90 kHz ticks, as it appears in a PES header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ts90k(pub u64);

impl Ts90k {
    pub const HZ: u32 = 90_000;
    /// The clock wraps after 2^33 ticks (about 26.5 hours).
    pub const WRAP: u64 = 1 << 33;
}

/// Turns a sequence of wrapping 33-bit timestamps into a monotonic-ish 64-bit timeline: each value is
/// placed at the unwrapped position nearest the previous one, so a stream that crosses the wrap point
/// (or starts just before it) keeps increasing.
#[derive(Debug, Default, Clone)]
pub struct Unwrapper {
    last: Option<i64>,
}

impl Unwrapper {
    /// An unwrapper whose next time lands in the period nearest `last` (an unwrapped time): one
    /// that goes on from another's clock.
    pub fn near(last: i64) -> Self {
        Unwrapper { last: Some(last) }
    }

    /// The last time unwrapped.
    pub fn last(&self) -> Option<i64> {
        self.last
    }

    pub fn unwrap(&mut self, ts: Ts90k) -> i64 {
        let raw = (ts.0 % Ts90k::WRAP) as i64;
        let out = match self.last {
            None => raw,
            Some(last) => {
                let wrap = Ts90k::WRAP as i64;
                let base = last - last.rem_euclid(wrap);
                // Three candidates around the previous value's period; take the nearest.
                // (Saturating: a stream whose every time jumps half a period ahead climbs by
                // 2^32 each, and must not overflow however long it does.)
                let base = base.saturating_add(raw);
                [base.saturating_sub(wrap), base, base.saturating_add(wrap)]
                    .into_iter()
                    .min_by_key(|c| c.abs_diff(last))
                    .unwrap_or(raw)
            }
        };
        self.last = Some(out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_comparison_across_timescales() {
        let a = MediaTime::new(1001, 30000);
        let b = MediaTime::new(3003, 90000);
        assert_eq!(a, b);
        assert!(MediaTime::new(1, 3) < MediaTime::new(333_334, 1_000_000));
    }

    #[test]
    fn frame_rates_snap_and_reduce() {
        assert_eq!(
            FrameRate::new(30000, 1001).unwrap().to_string(),
            "30000/1001"
        );
        assert_eq!(
            FrameRate::from_frame_duration(90000, 3003)
                .unwrap()
                .to_string(),
            "30000/1001"
        );
        assert_eq!(
            FrameRate::from_frame_duration(12288, 512)
                .unwrap()
                .to_string(),
            "24/1"
        );
        // 1000 Hz timestamps: 42 ms frames are not exactly 24 fps.
        assert_eq!(
            FrameRate::from_f64(23.976).unwrap().to_string(),
            "24000/1001"
        );
        assert!(FrameRate::new(0, 1).is_none());
        assert!(FrameRate::from_f64(f64::NAN).is_none());
    }

    #[test]
    fn unwraps_33_bit_timestamps() {
        let mut u = Unwrapper::default();
        let near_end = Ts90k::WRAP - 90_000;
        assert_eq!(u.unwrap(Ts90k(near_end)), near_end as i64);
        assert_eq!(u.unwrap(Ts90k(10)), Ts90k::WRAP as i64 + 10);
        // A B-frame slightly earlier still lands just before, not a whole period away.
        assert_eq!(
            u.unwrap(Ts90k(Ts90k::WRAP - 3000)),
            Ts90k::WRAP as i64 - 3000
        );
    }
}
