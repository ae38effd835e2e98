//! An edge's pull of one stream from its origins (`zerocast serve --origin URL`), sans-I/O: the
//! decisions of [`Relay`] on the live clock (which origin to try next and when, when to give up,
//! when the pull stops for want of viewers) and the upstream's response head ([`head`]). The
//! shell (crates/server/src/edge/) connects, reads the origin's `.ts` into the edge's own ring,
//! and asks.
//!
//! ```text
//!  start ──try origin 0, 1, … at once──> none has it: give up (the viewer gets 404/502)
//!    │ connected: streaming ──upstream lost──> every origin in turn, backing off
//!    │                                          (200 ms doubling to 2 s) until the grace is
//!    │                                          over: give up (the stream ends)
//!    └ no viewer and no HLS request for `idle` (any time): stop
//! ```

pub mod head;

use std::time::Duration;

/// The least an attempt after a lost upstream waits for its origin ([`Relay::patience`]).
const MIN_PATIENCE: Duration = Duration::from_secs(1);
/// The last attempt after a lost upstream comes this long before the grace ends.
const GRACE_MARGIN: Duration = Duration::from_millis(100);
/// A connection that streamed at least this long was a real one: its loss starts a new grace
/// and is retried at once. One that ended sooner (an origin that answers 200 and closes, or sends
/// what cannot be published) counts as a failed attempt: backoff, within the first loss's grace.
pub const STEADY: Duration = Duration::from_secs(2);

/// How an edge pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// The pull stops this long after the stream's last viewer left (and no HLS request came).
    pub idle: Duration,
    /// How long a lost upstream is retried before the stream ends (the publisher grace).
    pub grace: Duration,
    /// The first wait between rounds of attempts, doubled per round up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            idle: Duration::from_secs(10),
            grace: Duration::from_secs(10),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(2),
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Connect to origin number `origin` (in the configured order) at `at`.
    Try { origin: usize, at: Duration },
    /// Stop pulling.
    GiveUp,
}

/// One stream's pull, on the live clock.
#[derive(Debug, Clone)]
pub struct Relay {
    config: RelayConfig,
    origins: usize,
    /// The origin the last attempt went to.
    current: usize,
    /// Attempts that failed since the last connection (or the start).
    failed: usize,
    /// When the upstream was lost, and not since connected steadily.
    lost_at: Option<Duration>,
    /// When the connection now streaming began.
    connected_at: Option<Duration>,
    connected_once: bool,
    /// When the stream last had a viewer.
    last_seen: Duration,
}

impl Relay {
    /// A pull that begins at `now` (a viewer asked for the stream), with `origins` origins (at
    /// least one).
    pub fn new(origins: usize, config: RelayConfig, now: Duration) -> Self {
        Relay {
            config,
            origins: origins.max(1),
            current: 0,
            failed: 0,
            lost_at: None,
            connected_at: None,
            connected_once: false,
            last_seen: now,
        }
    }

    /// The first attempt: the first origin, at once.
    pub fn first(&self, now: Duration) -> Attempt {
        self.first_from(0, now)
    }

    /// The first attempt at origin `origin` (the one the edge last streamed from: an origin
    /// that hangs is not waited for by every new pull), at once; a round still asks them all.
    pub fn first_from(&self, origin: usize, now: Duration) -> Attempt {
        Attempt::Try {
            origin: origin % self.origins,
            at: now,
        }
    }

    /// Whether the pull has streamed from an origin at some point.
    pub fn connected_once(&self) -> bool {
        self.connected_once
    }

    /// The attempt at origin `origin` connected at `now` and is streaming.
    pub fn connected(&mut self, origin: usize, now: Duration) {
        self.current = origin;
        self.connected_at = Some(now);
        self.connected_once = true;
    }

    /// The attempt at origin `origin` failed at `now` (unreachable, refused, no such stream).
    pub fn failed(&mut self, origin: usize, now: Duration) -> Attempt {
        self.current = origin;
        self.failed += 1;
        let next = (origin + 1) % self.origins;
        if !self.failed.is_multiple_of(self.origins) {
            // The next origin of this round, at once.
            return self.unless_over(
                Attempt::Try {
                    origin: next,
                    at: now,
                },
                now,
            );
        }
        if !self.connected_once {
            // Every origin was asked once and none has the stream.
            return Attempt::GiveUp;
        }
        let rounds = self.failed / self.origins;
        let shift = u32::try_from(rounds - 1).unwrap_or(u32::MAX).min(16);
        let wait = self
            .config
            .backoff_min
            .saturating_mul(1 << shift)
            .min(self.config.backoff_max);
        self.unless_over(
            Attempt::Try {
                origin: next,
                at: now.saturating_add(wait),
            },
            now,
        )
    }

    /// The upstream connection was lost at `now` (dropped, timed out, bad input): after a
    /// steady connection, the same origin first, at once, then the others; after a short one,
    /// as a failed attempt (see [`STEADY`]).
    pub fn lost(&mut self, now: Duration) -> Attempt {
        let steady = self
            .connected_at
            .take()
            .is_some_and(|at| now.saturating_sub(at) >= STEADY);
        if !steady {
            self.lost_at.get_or_insert(now);
            return self.failed(self.current, now);
        }
        self.lost_at = Some(now);
        self.failed = 0;
        self.unless_over(
            Attempt::Try {
                origin: self.current,
                at: now,
            },
            now,
        )
    }

    /// How long the attempt made at `now` may wait for its origin (to connect and answer) after
    /// an upstream was lost: what is left of the grace, or half of it where other origins could
    /// still be asked in it, so that an origin that takes connections and never answers does
    /// not use the grace up before a good one is asked. `None`: nothing was lost (the shell's
    /// own limits apply).
    pub fn patience(&self, now: Duration) -> Option<Duration> {
        let lost = self.lost_at?;
        let left = lost.saturating_add(self.config.grace).saturating_sub(now);
        let share = if self.origins > 1 { left / 2 } else { left };
        // The last attempt comes just before the grace ends: it still gets time to be answered.
        Some(share.max(MIN_PATIENCE))
    }

    /// Gives up when the grace since the upstream was lost is over, or nobody watches.
    fn unless_over(&self, attempt: Attempt, now: Duration) -> Attempt {
        if self.idle(now) {
            return Attempt::GiveUp;
        }
        let Some(lost) = self.lost_at else {
            return attempt;
        };
        // The last attempt comes a little before the stream's grace ends (the registry ends the
        // stream then), so that an origin back late in the grace still continues it.
        let deadline = lost
            .saturating_add(self.config.grace)
            .saturating_sub(GRACE_MARGIN);
        if now >= deadline {
            return Attempt::GiveUp;
        }
        match attempt {
            Attempt::Try { origin, at } => Attempt::Try {
                origin,
                at: at.min(deadline),
            },
            Attempt::GiveUp => Attempt::GiveUp,
        }
    }

    /// Tells whether the stream had a viewer (or an HLS request) since the last call, at `now`.
    pub fn seen(&mut self, active: bool, now: Duration) {
        if active {
            self.last_seen = self.last_seen.max(now);
        }
    }

    /// Whether nobody has watched for the idle time: the pull stops.
    pub fn idle(&self, now: Duration) -> bool {
        now.saturating_sub(self.last_seen) >= self.config.idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn relay(origins: usize) -> Relay {
        Relay::new(origins, RelayConfig::default(), Duration::ZERO)
    }

    fn try_at(origin: usize, at: u64) -> Attempt {
        Attempt::Try { origin, at: ms(at) }
    }

    fn ms(n: u64) -> Duration {
        MS * n as u32
    }

    #[test]
    fn after_a_loss_an_attempt_waits_half_the_grace_left_while_other_origins_remain() {
        let mut r = relay(2);
        assert_eq!(r.patience(ms(0)), None, "a first pull: the shell's limits");
        r.connected(0, ms(0));
        assert_eq!(r.lost(ms(5_000)), try_at(0, 5_000));
        // Grace 10 s: half for this origin.
        assert_eq!(r.patience(ms(5_000)), Some(ms(5_000)));
        r.seen(true, ms(9_000));
        assert_eq!(r.failed(0, ms(10_000)), try_at(1, 10_000));
        assert_eq!(r.patience(ms(10_000)), Some(ms(2_500)));
        // The last attempt, 100 ms before the grace ends, still gets a second.
        assert_eq!(r.patience(ms(14_900)), Some(ms(1_000)));
        let mut one = relay(1);
        one.connected(0, ms(0));
        one.lost(ms(5_000));
        assert_eq!(one.patience(ms(5_000)), Some(ms(10_000)));
    }

    #[test]
    fn every_origin_is_asked_once_before_the_first_connection_gives_up() {
        let mut r = relay(3);
        assert_eq!(r.first(ms(0)), try_at(0, 0));
        assert_eq!(r.failed(0, ms(5)), try_at(1, 5));
        assert_eq!(r.failed(1, ms(9)), try_at(2, 9));
        assert_eq!(r.failed(2, ms(12)), Attempt::GiveUp);
    }

    #[test]
    fn a_later_origin_that_has_the_stream_is_kept() {
        let mut r = relay(2);
        assert_eq!(r.failed(0, ms(1)), try_at(1, 1));
        r.connected(1, ms(1));
        assert!(r.connected_once());
        // Lost after streaming a while: the origin that served it first, at once.
        r.seen(true, ms(5000));
        assert_eq!(r.lost(ms(5000)), try_at(1, 5000));
    }

    #[test]
    fn a_lost_upstream_is_retried_round_by_round_with_growing_waits() {
        let mut r = relay(2);
        r.connected(0, ms(0));
        r.seen(true, ms(1000));
        assert_eq!(r.lost(ms(2000)), try_at(0, 2000));
        assert_eq!(r.failed(0, ms(2000)), try_at(1, 2000));
        // A round over: 200 ms, then 400 ms, then 800 ms...
        assert_eq!(r.failed(1, ms(2001)), try_at(0, 2201));
        assert_eq!(r.failed(0, ms(2201)), try_at(1, 2201));
        assert_eq!(r.failed(1, ms(2202)), try_at(0, 2602));
        r.failed(0, ms(2602));
        assert_eq!(r.failed(1, ms(2603)), try_at(0, 3403));
    }

    #[test]
    fn waits_stop_growing_at_the_maximum() {
        let mut r = relay(1);
        r.connected(0, ms(0));
        r.seen(true, ms(3000));
        r.lost(ms(3000));
        let mut now = ms(3000);
        let mut waits = Vec::new();
        for _ in 0..6 {
            // Someone still watches.
            r.seen(true, now);
            match r.failed(0, now) {
                Attempt::Try { at, .. } => {
                    waits.push((at - now).as_millis());
                    now = at;
                }
                Attempt::GiveUp => break,
            }
        }
        assert_eq!(waits, [200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn a_lost_upstream_gives_up_once_the_grace_is_over() {
        let config = RelayConfig {
            grace: Duration::from_secs(3),
            ..RelayConfig::default()
        };
        let mut r = Relay::new(1, config, ms(0));
        r.connected(0, ms(0));
        r.seen(true, ms(3000));
        r.lost(ms(3000));
        let mut now = ms(3000);
        let mut last = now;
        loop {
            r.seen(true, now);
            match r.failed(0, now) {
                Attempt::Try { at, .. } => {
                    assert!(at - ms(3000) < Duration::from_secs(3), "{at:?}");
                    last = at;
                    now = at;
                }
                Attempt::GiveUp => break,
            }
        }
        assert_eq!(last, ms(5900), "retried until just before the grace ends");
    }

    #[test]
    fn a_connection_resets_the_backoff() {
        let mut r = relay(1);
        r.connected(0, ms(0));
        r.seen(true, ms(3000));
        r.lost(ms(3000));
        let next = |r: &mut Relay, now: u64| {
            r.seen(true, ms(now));
            r.failed(0, ms(now))
        };
        assert_eq!(next(&mut r, 3000), try_at(0, 3200));
        assert_eq!(next(&mut r, 3200), try_at(0, 3600));
        r.connected(0, ms(3600));
        r.seen(true, ms(9000));
        assert_eq!(r.lost(ms(9000)), try_at(0, 9000));
        assert_eq!(next(&mut r, 9000), try_at(0, 9200));
    }

    #[test]
    fn a_connection_that_ends_at_once_backs_off_within_the_first_grace() {
        // An origin that answers 200 and closes at once, again and again.
        let mut r = relay(1);
        let mut now = ms(0);
        let mut tries = 0;
        loop {
            r.connected(0, now);
            r.seen(true, now);
            tries += 1;
            match r.lost(now) {
                Attempt::Try { at, .. } => {
                    assert!(at > now, "never at once after a short session");
                    now = at;
                }
                Attempt::GiveUp => break,
            }
        }
        // 200 + 400 + 800 + 1600 + 2000 ms, then the last try just before the 10 s grace.
        assert!((5..=10).contains(&tries), "{tries} tries");
        assert!(now < ms(10_000), "{now:?}");
    }

    #[test]
    fn the_pull_is_idle_after_the_idle_time_without_viewers() {
        let mut r = relay(1);
        r.connected(0, ms(0));
        r.seen(true, ms(1000));
        r.seen(false, ms(5000));
        assert!(!r.idle(ms(10_999)));
        assert!(r.idle(ms(11_000)));
        // A viewer came back in time.
        r.seen(true, ms(10_500));
        assert!(!r.idle(ms(11_000)));
    }

    #[test]
    fn a_stream_nobody_watches_is_not_retried() {
        let mut r = relay(2);
        r.connected(0, ms(0));
        assert_eq!(r.lost(ms(20_000)), Attempt::GiveUp);
    }

    #[test]
    fn a_stale_seen_does_not_move_the_clock_back() {
        let mut r = relay(1);
        r.seen(true, ms(9000));
        r.seen(true, ms(3000));
        assert!(!r.idle(ms(18_999)));
    }
}
