//! A stream's publisher lifecycle, sans-I/O: who may publish, what a dropped connection means,
//! and when the shell must wake up to move it on. Time is passed in (`now`, the same live clock
//! the ring uses); every method returns what to do and, where it matters, when to come back.
//!
//! ```text
//!            begin (new stream)
//!                  |
//!                  v       end(Dropped)              deadline passes
//!   begin -->  [ Live ] ---------------> [ Reconnecting until t+grace ] ----------+
//!   (409)       ^   |                        |  begin within the grace           |
//!               |   | end(Clean|Refused)     |  (generation+1, stream goes on)   |
//!               |   v                        v                                   v
//!               |  [ Ended at t ] <----------------------------------------------+
//!               |       |  linger passes: the registry forgets the stream
//!               +-------+  begin: a new stream of the same name replaces it
//! ```
//! A session is named by its generation: the end of an earlier session (a publisher whose task
//! finished after a newer one took over) changes nothing.

use std::time::Duration;

/// Where a stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A publisher is connected.
    Live,
    /// The publisher's connection dropped; it may come back until `until`.
    Reconnecting { until: Duration },
    /// No publisher any more; the stream is listed until `until`.
    Ended { until: Duration },
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Live => "live",
            State::Reconnecting { .. } => "reconnecting",
            State::Ended { .. } => "ended",
        }
    }
}

/// How a publisher session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The body (or RTMP publish) ended properly: the stream ends now.
    Clean,
    /// The connection dropped (why): the publisher may come back within the grace period.
    Dropped(String),
    /// The publisher sent something unacceptable (why): the stream ends now.
    Refused(String),
}

/// What `begin` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// A publisher within the grace period: the stream continues as this generation.
    Continue { generation: u64 },
    /// The stream has ended: a new stream of the same name takes its place.
    Replace,
    /// The stream has a publisher.
    Busy,
}

/// What an event did, for the shell to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changed (a stale session, or an event that does not apply).
    None,
    /// Now reconnecting: wake the viewers (they keep waiting) and come back at `wake_at`.
    Reconnecting { wake_at: Duration },
    /// Now ended, for this reason: wake the viewers (they drain and finish), end HLS, and come
    /// back at `wake_at` to forget the stream.
    Ended { reason: String, wake_at: Duration },
    /// The linger is over: the registry forgets the stream.
    Forget,
}

/// The lifecycle settings.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a dropped publisher may take to come back.
    pub grace: Duration,
    /// How long an ended stream stays listed.
    pub linger: Duration,
}

#[derive(Debug, Clone)]
pub struct Lifecycle {
    state: State,
    generation: u64,
    sessions: u64,
    session_started: Duration,
    /// Why the last session dropped, while reconnecting.
    dropped: Option<String>,
    end_reason: Option<String>,
    timing: Timing,
}

impl Lifecycle {
    /// A new stream whose first publisher starts now (generation 0).
    pub fn new(timing: Timing, now: Duration) -> Self {
        Lifecycle {
            state: State::Live,
            generation: 0,
            sessions: 1,
            session_started: now,
            dropped: None,
            end_reason: None,
            timing,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_live(&self) -> bool {
        self.state == State::Live
    }

    pub fn is_ended(&self) -> bool {
        matches!(self.state, State::Ended { .. })
    }

    /// Publisher sessions so far (reconnects + 1).
    pub fn sessions(&self) -> u64 {
        self.sessions
    }

    /// When the current session started (while live).
    pub fn session_started(&self) -> Duration {
        self.session_started
    }

    pub fn end_reason(&self) -> Option<&str> {
        self.end_reason.as_deref()
    }

    /// A publisher asks for the stream.
    pub fn begin(&mut self, now: Duration) -> Begin {
        match self.state {
            State::Live => Begin::Busy,
            State::Ended { .. } => Begin::Replace,
            State::Reconnecting { .. } => {
                self.state = State::Live;
                self.generation += 1;
                self.sessions += 1;
                self.session_started = now;
                self.dropped = None;
                Begin::Continue {
                    generation: self.generation,
                }
            }
        }
    }

    /// Session `generation` ended. An earlier session's end, or an end after the stream was
    /// already given up, changes nothing.
    pub fn end(&mut self, generation: u64, end: End, now: Duration) -> Transition {
        if generation != self.generation || self.state != State::Live {
            return Transition::None;
        }
        match end {
            End::Dropped(why) => {
                let until = now.saturating_add(self.timing.grace);
                self.state = State::Reconnecting { until };
                self.dropped = Some(why);
                Transition::Reconnecting { wake_at: until }
            }
            End::Clean => self.finish("publisher finished".into(), now),
            End::Refused(why) => self.finish(format!("publisher refused: {why}"), now),
        }
    }

    /// Moves the lifecycle on once its deadline has passed: a publisher that did not come back
    /// ends the stream; an ended stream's linger runs out.
    pub fn poll(&mut self, now: Duration) -> Transition {
        match self.state {
            State::Reconnecting { until } if now >= until => {
                let why = self.dropped.take().unwrap_or_default();
                let grace = self.timing.grace;
                self.finish(
                    format!("publisher gone ({why}) and did not come back within {grace:?}"),
                    now,
                )
            }
            State::Ended { until } if now >= until => Transition::Forget,
            _ => Transition::None,
        }
    }

    /// The server is stopping: a stream that is live, or waiting for its publisher to come
    /// back, ends now (its recordings are finished, its playlists end), whatever its publisher
    /// does after.
    pub fn shut_down(&mut self, now: Duration) -> Transition {
        match self.state {
            State::Ended { .. } => Transition::None,
            State::Live | State::Reconnecting { .. } => {
                self.finish("the server is shutting down".into(), now)
            }
        }
    }

    /// When `poll` has something to do next.
    pub fn deadline(&self) -> Option<Duration> {
        match self.state {
            State::Live => None,
            State::Reconnecting { until } | State::Ended { until } => Some(until),
        }
    }

    fn finish(&mut self, reason: String, now: Duration) -> Transition {
        let until = now.saturating_add(self.timing.linger);
        self.state = State::Ended { until };
        self.dropped = None;
        self.end_reason = Some(reason.clone());
        Transition::Ended {
            reason,
            wake_at: until,
        }
    }
}

/// Ingest above a rate is slowed by not reading (TCP pushes back on the publisher): a token
/// bucket that starts full with `burst` worth of the rate.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Bytes per second.
    rate: u64,
    burst: Duration,
    started: Duration,
}

impl RateLimit {
    /// `bits_per_second` (at least 8), allowing `burst` worth of it ahead at any time.
    pub fn new(bits_per_second: u64, burst: Duration, now: Duration) -> Self {
        RateLimit {
            rate: (bits_per_second / 8).max(1),
            burst,
            started: now,
        }
    }

    /// How long to wait before reading more, having received `received` bytes since the start
    /// and made `made` bytes of output from them (an RTMP publisher's TS, whose keyframes each
    /// repeat the stream's parameter sets, up to 16 KiB: a keyframe of a few bytes makes
    /// kilobytes). Output up to twice the input is free (TS costs a tenth more than what it
    /// carries); past that, the output is what is held to the rate, so that a publisher cannot
    /// make the server write far more than it sends.
    pub fn wait_made(&self, received: u64, made: u64, now: Duration) -> Option<Duration> {
        self.wait(received.max(made / 2), now)
    }

    /// How long to wait before reading more, having received `received` bytes since the start.
    pub fn wait(&self, received: u64, now: Duration) -> Option<Duration> {
        let elapsed = now.saturating_sub(self.started) + self.burst;
        let allowed = (self.rate as f64 * elapsed.as_secs_f64()) as u64;
        (received > allowed)
            .then(|| Duration::from_secs_f64((received - allowed) as f64 / self.rate as f64))
    }
}

/// The input bitrate over the last whole window (1 s), for the API.
#[derive(Debug, Clone, Copy)]
pub struct Bitrate {
    window: Duration,
    since: Duration,
    at: u64,
    bps: u64,
}

impl Bitrate {
    pub fn new(window: Duration, now: Duration) -> Self {
        Bitrate {
            window,
            since: now,
            at: 0,
            bps: 0,
        }
    }

    /// Bits per second over the last complete window.
    pub fn bps(&self) -> u64 {
        self.bps
    }

    /// `total`: bytes received so far, at `now`.
    pub fn update(&mut self, total: u64, now: Duration) {
        let elapsed = now.saturating_sub(self.since);
        if elapsed >= self.window && !elapsed.is_zero() {
            self.bps = (total.saturating_sub(self.at) as f64 * 8.0 / elapsed.as_secs_f64()) as u64;
            self.since = now;
            self.at = total;
        }
    }
}

/// Wake-up batching: viewers are woken at most once per `period`, and at once when `urgent`
/// (a keyframe, a video frame). Per-write kernel cost dominates fan-out, so fewer, larger
/// writes are cheaper (docs/benchmarks.md).
#[derive(Debug, Clone, Copy)]
pub struct Batch {
    period: Duration,
    last: Option<Duration>,
}

impl Batch {
    pub fn new(period: Duration) -> Self {
        Batch { period, last: None }
    }

    /// Whether to wake the viewers now.
    pub fn due(&mut self, urgent: bool, now: Duration) -> bool {
        let due = urgent
            || self
                .last
                .is_none_or(|t| now.saturating_sub(t) >= self.period);
        if due {
            self.last = Some(now);
        }
        due
    }
}

/// A viewer whose socket takes nothing for `limit` is dropped: each write must make progress
/// before `deadline`, which moves on whenever bytes are taken.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    limit: Duration,
    last_progress: Duration,
}

impl Stall {
    pub fn new(limit: Duration, now: Duration) -> Self {
        Stall {
            limit,
            last_progress: now,
        }
    }

    /// The socket took `n` bytes at `now`.
    pub fn wrote(&mut self, n: usize, now: Duration) {
        if n > 0 {
            self.last_progress = now;
        }
    }

    /// When the viewer is stalled if nothing more is taken.
    pub fn deadline(&self) -> Duration {
        self.last_progress.saturating_add(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publisher_whose_output_outgrows_its_input_is_held_to_its_output() {
        // 8 kbit/s: 1,000 bytes a second, 1 s ahead allowed.
        let r = RateLimit::new(8_000, Duration::from_secs(1), Duration::ZERO);
        let at = Duration::from_secs(1);
        // What a stream makes of what it sends (TS: a tenth more): its input decides.
        assert_eq!(r.wait_made(2_000, 2_200, at), None);
        assert_eq!(r.wait_made(3_000, 3_300, at), Some(Duration::from_secs(1)));
        // Tiny keyframes that each repeat 16 KiB of parameter sets: the output decides.
        assert_eq!(r.wait_made(600, 10_000, at), Some(Duration::from_secs(3)));
    }

    fn s(x: u64) -> Duration {
        Duration::from_secs(x)
    }

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    const TIMING: Timing = Timing {
        grace: Duration::from_secs(10),
        linger: Duration::from_secs(60),
    };

    #[test]
    fn a_shut_down_ends_a_stream_waiting_for_its_publisher_and_nothing_after_it_ends() {
        let mut l = Lifecycle::new(TIMING, s(0));
        l.end(0, End::Dropped("reset".into()), s(5));
        assert!(
            matches!(l.shut_down(s(6)), Transition::Ended { reason, .. } if reason.contains("shutting down"))
        );
        assert!(l.is_ended());
        assert_eq!(l.shut_down(s(7)), Transition::None);
        assert_eq!(
            l.end(0, End::Clean, s(8)),
            Transition::None,
            "the publisher's end after it"
        );
        let mut live = Lifecycle::new(TIMING, s(0));
        assert!(matches!(live.shut_down(s(1)), Transition::Ended { .. }));
    }

    #[test]
    fn a_second_publisher_on_a_live_stream_is_busy() {
        let mut l = Lifecycle::new(TIMING, s(0));
        assert_eq!(l.begin(s(1)), Begin::Busy);
        assert!(l.is_live());
        assert_eq!(l.sessions(), 1);
    }

    #[test]
    fn a_publisher_back_within_the_grace_continues_as_the_next_generation() {
        let mut l = Lifecycle::new(TIMING, s(0));
        assert_eq!(
            l.end(0, End::Dropped("reset".into()), s(5)),
            Transition::Reconnecting { wake_at: s(15) }
        );
        assert_eq!(l.state().name(), "reconnecting");
        assert_eq!(l.deadline(), Some(s(15)));
        assert_eq!(l.poll(s(14)), Transition::None, "not yet");
        assert_eq!(l.begin(ms(14_999)), Begin::Continue { generation: 1 });
        assert!(l.is_live());
        assert_eq!(l.sessions(), 2);
        assert_eq!(l.session_started(), ms(14_999));
        assert_eq!(l.deadline(), None);
        assert_eq!(l.poll(s(16)), Transition::None, "the old deadline is void");
    }

    #[test]
    fn a_publisher_that_does_not_come_back_ends_the_stream_at_the_deadline() {
        let mut l = Lifecycle::new(TIMING, s(0));
        l.end(0, End::Dropped("connection closed".into()), s(5));
        match l.poll(s(15)) {
            Transition::Ended { reason, wake_at } => {
                assert_eq!(
                    reason,
                    "publisher gone (connection closed) and did not come back within 10s"
                );
                assert_eq!(wake_at, s(75), "then it lingers");
            }
            other => panic!("{other:?}"),
        }
        assert!(l.is_ended());
        assert_eq!(
            l.begin(s(16)),
            Begin::Replace,
            "a new publisher starts a new stream"
        );
    }

    #[test]
    fn a_clean_end_or_a_refusal_ends_at_once_and_lingers() {
        let mut clean = Lifecycle::new(TIMING, s(0));
        assert_eq!(
            clean.end(0, End::Clean, s(3)),
            Transition::Ended {
                reason: "publisher finished".into(),
                wake_at: s(63)
            }
        );
        let mut refused = Lifecycle::new(TIMING, s(0));
        assert_eq!(
            refused.end(0, End::Refused("lost sync".into()), s(3)),
            Transition::Ended {
                reason: "publisher refused: lost sync".into(),
                wake_at: s(63)
            }
        );
        assert_eq!(refused.end_reason(), Some("publisher refused: lost sync"));
    }

    #[test]
    fn an_ended_stream_is_forgotten_when_the_linger_runs_out() {
        let mut l = Lifecycle::new(TIMING, s(0));
        l.end(0, End::Clean, s(3));
        assert_eq!(l.deadline(), Some(s(63)));
        assert_eq!(l.poll(s(62)), Transition::None);
        assert_eq!(l.poll(s(63)), Transition::Forget);
    }

    #[test]
    fn the_end_of_an_earlier_session_changes_nothing() {
        let mut l = Lifecycle::new(TIMING, s(0));
        l.end(0, End::Dropped("x".into()), s(1));
        assert_eq!(l.begin(s(2)), Begin::Continue { generation: 1 });
        // The first session's task finishes late, cleanly: the new session is unaffected.
        assert_eq!(l.end(0, End::Clean, s(3)), Transition::None);
        assert!(l.is_live());
        // And an end reported twice for the same session counts once.
        assert!(matches!(
            l.end(1, End::Clean, s(4)),
            Transition::Ended { .. }
        ));
        assert_eq!(l.end(1, End::Clean, s(5)), Transition::None);
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_the_rate() {
        // 8 Mbit/s = 1 MB/s, 2 s burst.
        let r = RateLimit::new(8_000_000, s(2), s(100));
        assert_eq!(r.wait(2_000_000, s(100)), None, "the burst at once");
        assert_eq!(
            r.wait(2_500_000, s(100)),
            Some(ms(500)),
            "half a second over"
        );
        assert_eq!(r.wait(2_500_000, ms(100_500)), None, "caught up");
        assert_eq!(
            r.wait(12_000_000, s(110)),
            None,
            "1 MB/s for 10 s, plus the burst"
        );
        assert_eq!(r.wait(13_000_000, s(110)), Some(s(1)));
    }

    #[test]
    fn the_bitrate_is_measured_over_whole_windows() {
        let mut b = Bitrate::new(s(1), s(0));
        b.update(100_000, ms(500));
        assert_eq!(b.bps(), 0, "no whole window yet");
        b.update(250_000, s(1));
        assert_eq!(b.bps(), 2_000_000);
        b.update(300_000, ms(2_000));
        assert_eq!(b.bps(), 400_000);
        b.update(300_000, ms(3_000));
        assert_eq!(b.bps(), 0, "nothing came in");
    }

    #[test]
    fn batches_wake_once_per_period_and_at_once_when_urgent() {
        let mut b = Batch::new(ms(100));
        assert!(b.due(false, ms(0)), "the first wakes");
        assert!(!b.due(false, ms(50)));
        assert!(b.due(true, ms(60)), "a keyframe wakes at once");
        assert!(!b.due(false, ms(159)));
        assert!(b.due(false, ms(160)));
    }

    #[test]
    fn a_viewer_that_takes_nothing_for_the_limit_is_stalled() {
        let mut st = Stall::new(s(15), s(0));
        assert_eq!(st.deadline(), s(15));
        st.wrote(0, s(10));
        assert_eq!(st.deadline(), s(15), "no progress, no extension");
        st.wrote(100, s(10));
        assert_eq!(st.deadline(), s(25));
    }
}
