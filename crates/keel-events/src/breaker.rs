//! The circuit breaker of one endpoint: it stops the relay hammering a destination that
//! keeps failing, then lets a single trial through now and then to see if it is back.
//!
//! ```text
//!            5 consecutive failures              cool-down over: allow() lets one trial
//! Closed ───────────────────────────▶ Open ─────────────────────────────────▶ HalfOpen
//!   ▲                                  ▲                                         │
//!   │                                  └────── trial fails: cool-down doubles ───┤
//!   └──────────────────── trial succeeds: cool-down back to 30 s ────────────────┘
//! ```
//!
//! Defaults ([`BreakerConfig::default`]): open after 5 consecutive failures; first
//! cool-down 30 s, doubling after each failed trial (30 s, 1 min, 2 min, 4 min, 8 min)
//! up to 10 min; a trial that never reports back is written off after 60 s (longer than
//! a webhook's request timeout) and another one is allowed.
//!
//! The relay owns the breaker (one per endpoint, behind its own lock): it asks
//! [`Breaker::allow`] before an attempt, reports the attempt's end with
//! [`Breaker::record_success`] or [`Breaker::record_failure`], and defers without
//! counting an attempt the breaker refused (until [`Breaker::blocked_until`]). What
//! counts as a failure is the relay's call (a 5xx, a timeout, a refused connection).
//! Any success closes the breaker; failures reported while it is open (attempts that
//! were already in flight) are counted but do not push the cool-down back. Time is
//! passed in, so the breaker is a pure state machine.

use std::time::{Duration, Instant};

/// The breaker's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker (at least 1).
    pub failure_threshold: u32,
    /// The first cool-down: how long an opened breaker refuses attempts.
    pub cool_down: Duration,
    /// The longest cool-down, however many trials failed.
    pub max_cool_down: Duration,
    /// How long a half-open trial may go unreported before another is allowed.
    pub trial_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
            max_cool_down: Duration::from_secs(10 * 60),
            trial_timeout: Duration::from_secs(60),
        }
    }
}

/// The breaker's state, as metrics report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Attempts flow.
    Closed,
    /// Attempts are refused until the cool-down is over.
    Open,
    /// One trial attempt is in flight; others wait for its outcome.
    HalfOpen,
}

impl BreakerState {
    /// The gauge value, by severity: closed 0, half-open 1, open 2.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }

    /// A label: `closed`, `half_open`, `open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { trial_started: Instant },
}

/// One endpoint's circuit breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: State,
    consecutive_failures: u32,
    /// The cool-down the next opening will use.
    cool_down: Duration,
}

impl Default for Breaker {
    fn default() -> Self {
        Self::new(BreakerConfig::default())
    }
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        let config = BreakerConfig {
            failure_threshold: config.failure_threshold.max(1),
            max_cool_down: config.max_cool_down.max(config.cool_down),
            ..config
        };
        Self {
            config,
            state: State::Closed,
            consecutive_failures: 0,
            cool_down: config.cool_down,
        }
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The state as of the last call (an open breaker whose cool-down is over stays
    /// `Open` until [`Breaker::allow`] lets its trial through).
    pub fn state(&self) -> BreakerState {
        match self.state {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The cool-down the next opening will use.
    pub fn cool_down(&self) -> Duration {
        self.cool_down
    }

    /// Until when [`Breaker::allow`] refuses: the end of the cool-down (open) or of
    /// the trial's timeout (half-open); `None` when closed.
    pub fn blocked_until(&self) -> Option<Instant> {
        match self.state {
            State::Closed => None,
            State::Open { until } => Some(until),
            State::HalfOpen { trial_started } => Some(trial_started + self.config.trial_timeout),
        }
    }

    /// May an attempt go now? Closed: yes. Open: no, until the cool-down is over; then
    /// yes, once (the trial), and the breaker is half-open. Half-open: no while the
    /// trial is out (yes again, as a new trial, once it has gone unreported for the
    /// trial timeout).
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            State::Closed => true,
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen { trial_started: now };
                true
            }
            State::Open { .. } => false,
            State::HalfOpen { trial_started }
                if now >= trial_started + self.config.trial_timeout =>
            {
                self.state = State::HalfOpen { trial_started: now };
                true
            }
            State::HalfOpen { .. } => false,
        }
    }

    /// An attempt succeeded: the breaker closes and forgets past failures.
    pub fn record_success(&mut self) {
        self.state = State::Closed;
        self.consecutive_failures = 0;
        self.cool_down = self.config.cool_down;
    }

    /// An attempt failed. Closed: the threshold-th consecutive failure opens the
    /// breaker. Half-open: the trial failed; open again with twice the cool-down
    /// (capped). Open: counted only.
    pub fn record_failure(&mut self, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        match self.state {
            State::Closed if self.consecutive_failures >= self.config.failure_threshold => {
                self.open(now);
            }
            State::Closed | State::Open { .. } => {}
            State::HalfOpen { .. } => {
                self.cool_down = self
                    .cool_down
                    .saturating_mul(2)
                    .min(self.config.max_cool_down);
                self.open(now);
            }
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = State::Open {
            until: now + self.cool_down,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn opens_after_five_consecutive_failures() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.blocked_until(), None);
        for _ in 0..4 {
            assert!(b.allow(t0));
            b.record_failure(t0);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        // A success in between starts the count again.
        b.record_success();
        assert_eq!(b.consecutive_failures(), 0);
        for i in 1..=5 {
            assert!(b.allow(t0));
            b.record_failure(t0);
            let want = if i < 5 {
                BreakerState::Closed
            } else {
                BreakerState::Open
            };
            assert_eq!(b.state(), want, "after failure {i}");
        }
        assert_eq!(b.blocked_until(), Some(t0 + secs(30)));
        assert!(!b.allow(t0));
        assert!(!b.allow(t0 + secs(29)));
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn one_trial_after_the_cool_down_then_closed_on_success() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        for _ in 0..5 {
            b.record_failure(t0);
        }
        let t1 = t0 + secs(30);
        assert!(b.allow(t1), "the trial");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.allow(t1), "only one trial at a time");
        assert!(!b.allow(t1 + secs(59)));
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.consecutive_failures(), 0);
        assert!(b.allow(t1) && b.allow(t1));
    }

    #[test]
    fn failed_trials_double_the_cool_down_up_to_ten_minutes() {
        let mut now = Instant::now();
        let mut b = Breaker::default();
        for _ in 0..5 {
            b.record_failure(now);
        }
        let mut cool_downs = vec![b.blocked_until().unwrap() - now];
        for _ in 0..7 {
            now = b.blocked_until().unwrap();
            assert!(!b.allow(now - Duration::from_millis(1)));
            assert!(b.allow(now));
            b.record_failure(now);
            assert_eq!(b.state(), BreakerState::Open);
            cool_downs.push(b.blocked_until().unwrap() - now);
        }
        assert_eq!(
            cool_downs,
            [30, 60, 120, 240, 480, 600, 600, 600].map(secs).to_vec()
        );
        // Success resets the cool-down: the next opening is 30 s again.
        now = b.blocked_until().unwrap();
        assert!(b.allow(now));
        b.record_success();
        assert_eq!(b.cool_down(), secs(30));
        for _ in 0..5 {
            b.record_failure(now);
        }
        assert_eq!(b.blocked_until(), Some(now + secs(30)));
    }

    #[test]
    fn an_unreported_trial_is_written_off_after_its_timeout() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        for _ in 0..5 {
            b.record_failure(t0);
        }
        let t1 = t0 + secs(30);
        assert!(b.allow(t1));
        assert_eq!(b.blocked_until(), Some(t1 + secs(60)));
        assert!(!b.allow(t1 + secs(59)));
        assert!(b.allow(t1 + secs(60)), "a new trial");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.allow(t1 + secs(61)));
        // The lost trial did not double the cool-down.
        assert_eq!(b.cool_down(), secs(30));
    }

    #[test]
    fn late_results_while_open() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        for _ in 0..5 {
            b.record_failure(t0);
        }
        // Failures of attempts already in flight are counted, but do not extend the
        // cool-down.
        b.record_failure(t0 + secs(10));
        assert_eq!(b.consecutive_failures(), 6);
        assert_eq!(b.blocked_until(), Some(t0 + secs(30)));
        // A success is proof the endpoint works: closed.
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn gauge_values_and_labels() {
        assert_eq!(BreakerState::Closed.gauge(), 0);
        assert_eq!(BreakerState::HalfOpen.gauge(), 1);
        assert_eq!(BreakerState::Open.gauge(), 2);
        assert_eq!(BreakerState::HalfOpen.as_str(), "half_open");
    }

    #[test]
    fn custom_config_is_sanitized() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerConfig {
            failure_threshold: 0,
            cool_down: secs(10),
            max_cool_down: secs(1),
            trial_timeout: secs(5),
        });
        assert_eq!(b.config().failure_threshold, 1);
        assert_eq!(b.config().max_cool_down, secs(10));
        b.record_failure(t0);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.allow(t0 + secs(10)));
        b.record_failure(t0 + secs(10));
        assert_eq!(
            b.blocked_until(),
            Some(t0 + secs(20)),
            "capped at the first cool-down"
        );
    }
}
