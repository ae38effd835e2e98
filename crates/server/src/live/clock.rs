//! The live clock's wall-clock side: the NTP timestamp (what MP4 `prft` boxes carry) of a time
//! on the live clock, and back. The live clock itself is monotonic ([`Live::now`]); its epoch's
//! wall clock is read at start, and read again only when the system clock was stepped (by
//! more than [`STEP`]: NTP setting the time of a machine that booted without it, `date -s`,
//! a resume from suspend), so that recordings are named, kept and sought by the right time
//! while the slewing of the clock moves no timestamp and no delay.

use super::Live;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// A difference between the system clock and the live clock's wall clock past which the
/// system clock was stepped (NTP units: 2 s).
const STEP: u64 = 2 << 32;

impl Live {
    /// The wall clock at a time on the live clock, NTP format (seconds since 1900 in the high
    /// 32 bits, a binary fraction in the low ones).
    pub(crate) fn ntp(&self, at: Duration) -> u64 {
        ntp_at(self.epoch(), at)
    }

    /// The time on the live clock of an NTP timestamp that [`Live::ntp`] made; `None` for one
    /// before the clock began.
    pub(crate) fn at_ntp(&self, ntp: u64) -> Option<Duration> {
        since(self.epoch(), ntp)
    }

    /// The live-clock time of a wall-clock time (Unix milliseconds); `None` before the clock
    /// began.
    pub(crate) fn at_wall(&self, unix_ms: u64) -> Option<Duration> {
        let epoch = live::llhls::wallclock::ntp_to_unix_ms(self.epoch())?;
        unix_ms.checked_sub(epoch).map(Duration::from_millis)
    }

    /// The wall clock when the live clock began: the one read at start, or, once the system
    /// clock was stepped, the one it gives now.
    fn epoch(&self) -> u64 {
        let epoch = self.epoch_ntp.load(Relaxed);
        let Some(moved) = stepped(epoch, self.now(), ntp_now()) else {
            return epoch;
        };
        if self
            .epoch_ntp
            .compare_exchange(epoch, moved, Relaxed, Relaxed)
            .is_ok()
        {
            let by = moved.wrapping_sub(epoch) as i64 as f64 / (1u64 << 32) as f64;
            tracing::warn!(
                seconds = by,
                "the system clock was stepped: wall-clock times (recordings' names, program date-times) follow it"
            );
        }
        moved
    }
}

/// The epoch that puts `at` on the wall clock `wall`, when the one given puts it more than
/// [`STEP`] away (`None`: the clock was not stepped).
fn stepped(epoch: u64, at: Duration, wall: u64) -> Option<u64> {
    let off = wall.wrapping_sub(ntp_at(epoch, at)) as i64;
    (off.unsigned_abs() > STEP).then(|| epoch.wrapping_add(off as u64))
}

/// The NTP timestamp `at` after `epoch` (one).
fn ntp_at(epoch: u64, at: Duration) -> u64 {
    let secs = at.as_secs() << 32;
    let frac = (u64::from(at.subsec_nanos()) << 32) / 1_000_000_000;
    epoch.wrapping_add(secs | frac)
}

/// How long after `epoch` the NTP timestamp `ntp` is; `None` if it is before. (Across the end
/// of NTP's era 0, in 2036, as well: the timestamps wrap, the difference does not.)
pub(crate) fn since(epoch: u64, ntp: u64) -> Option<Duration> {
    let d = ntp.wrapping_sub(epoch);
    if d >> 63 != 0 {
        return None;
    }
    // The fraction is under 2^32, so the product is under 2^62.
    let nanos = ((d & 0xffff_ffff) * 1_000_000_000) >> 32;
    Some(Duration::new(d >> 32, u32::try_from(nanos).ok()?))
}

/// The wall clock now as an NTP timestamp.
pub(super) fn ntp_now() -> u64 {
    // Seconds from 1900 (NTP's era 0) to 1970.
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ((d.as_secs() + UNIX_TO_NTP) << 32) | ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_on_the_live_clock_comes_back_from_its_ntp_timestamp_within_a_nanosecond() {
        let epoch = ntp_now();
        for at in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(1_234_567),
            Duration::new(86_400 * 400, 999_999_999),
        ] {
            let back = since(epoch, ntp_at(epoch, at)).unwrap();
            let off = back.abs_diff(at);
            assert!(
                off <= Duration::from_nanos(1),
                "{at:?} came back as {back:?}"
            );
        }
        // Before the clock began.
        assert_eq!(since(epoch, epoch - 1), None);
        // Across the end of NTP's era 0.
        let end = u64::MAX - (1 << 32) + 1;
        assert_eq!(since(end, 1 << 31), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn a_step_of_the_system_clock_moves_the_epoch_and_a_slew_does_not() {
        let epoch = ntp_now();
        let at = Duration::from_secs(600);
        let wall = ntp_at(epoch, at);
        // Within a second or so either way: the same epoch.
        assert_eq!(stepped(epoch, at, wall + (1 << 31)), None);
        assert_eq!(stepped(epoch, at, wall - (1 << 32)), None);
        // A day on (a machine that booted with its clock behind) and an hour back.
        let day = 86_400u64 << 32;
        let moved = stepped(epoch, at, wall + day).unwrap();
        assert_eq!(ntp_at(moved, at), wall + day);
        let moved = stepped(epoch, at, wall - (3_600 << 32)).unwrap();
        assert_eq!(ntp_at(moved, at), wall - (3_600 << 32));
        assert_eq!(stepped(moved, at, wall - (3_600 << 32)), None);
    }
}
