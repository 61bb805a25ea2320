//! The retry schedule of a delivery: when to try again after a failed attempt, with
//! exponential backoff, jitter and the destination's `Retry-After`, and when to give up
//! (the delivery becomes a dead letter: kept, listed, retryable by hand).
//!
//! The default schedule spans about three days, like the Standard Webhooks example
//! schedule (Svix's is similar and shorter), but starts with short steps so a
//! destination that blinked (a deploy, a restart) gets the event within seconds:
//!
//! | attempt | after the previous one | since the first attempt (no jitter) |
//! |--------:|-----------------------:|------------------------------------:|
//! |       1 |            immediately |                                   0 |
//! |       2 |                    5 s |                                 5 s |
//! |       3 |                   30 s |                                35 s |
//! |       4 |                  2 min |                          2 min 35 s |
//! |       5 |                 10 min |                         12 min 35 s |
//! |       6 |                 30 min |                         42 min 35 s |
//! |       7 |                    1 h |                      1 h 42 min 35 s |
//! |       8 |                    3 h |                      4 h 42 min 35 s |
//! |       9 |                    6 h |                     10 h 42 min 35 s |
//! |      10 |                   12 h |                     22 h 42 min 35 s |
//! |      11 |                   24 h |                     46 h 42 min 35 s |
//! |      12 |                   24 h |                     70 h 42 min 35 s |
//!
//! After the 12th failed attempt the delivery is dead-lettered.
//!
//! - **Jitter**: every delay is scaled by a factor in `[0.8, 1.2]` (±20 %) drawn from the
//!   caller's random value, so that deliveries that failed together (an outage) do not
//!   all come back at the same instant. The last attempt lands 56.6 h to 84.9 h after
//!   the first.
//! - **`Retry-After`**: a floor, never a shortcut. The next attempt waits at least what
//!   the destination asked (capped at 24 h, so a destination cannot park an event for
//!   longer than the schedule's longest step) and at least the jittered schedule delay
//!   (a destination answering `Retry-After: 0` is still backed off). It takes no jitter
//!   (it is an explicit instruction) and does not grant extra attempts: every attempt
//!   counts, and the schedule still ends after the last one.
//! - Attempts the circuit breaker holds back are not attempts: the relay defers them
//!   without counting (see [`crate::breaker`]).

use std::time::Duration;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;

/// The default delays before attempts 2, 3, …: the table above.
pub const DEFAULT_DELAYS: [Duration; 11] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * MINUTE),
    Duration::from_secs(10 * MINUTE),
    Duration::from_secs(30 * MINUTE),
    Duration::from_secs(HOUR),
    Duration::from_secs(3 * HOUR),
    Duration::from_secs(6 * HOUR),
    Duration::from_secs(12 * HOUR),
    Duration::from_secs(24 * HOUR),
    Duration::from_secs(24 * HOUR),
];

/// The default jitter: ±20 % of each delay.
pub const DEFAULT_JITTER: f64 = 0.2;

/// The longest `Retry-After` honoured; longer ones are cut to this.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * HOUR);

/// When to try a failed delivery again, and when to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter: f64,
    max_retry_after: Duration,
}

impl Default for RetrySchedule {
    /// The documented schedule: [`DEFAULT_DELAYS`], ±20 % jitter, `Retry-After` up
    /// to 24 h.
    fn default() -> Self {
        Self::new(DEFAULT_DELAYS.to_vec())
    }
}

impl RetrySchedule {
    /// A schedule with these delays before attempts 2, 3, … (`delays.len() + 1`
    /// attempts in all; empty: one attempt, then dead letter), the default jitter and
    /// `Retry-After` cap.
    pub fn new(delays: Vec<Duration>) -> Self {
        Self {
            delays,
            jitter: DEFAULT_JITTER,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }

    /// The jitter as a fraction of each delay, clamped to `[0, 1]` (0: none).
    pub fn with_jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// The longest `Retry-After` honoured.
    pub fn with_max_retry_after(mut self, cap: Duration) -> Self {
        self.max_retry_after = cap;
        self
    }

    /// The delays before attempts 2, 3, …, without jitter.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// How many attempts a delivery gets before it is dead-lettered.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }

    /// How long to wait before the next attempt, after `attempt` attempts (the one
    /// that just failed included; 0: none yet, so the first goes immediately);
    /// `retry_after`: the destination's `Retry-After`, if it sent one; `rng_value`: a
    /// uniform random value in `[0, 1)` (clamped; NaN means no jitter) that picks the
    /// jitter. `None`: attempts are exhausted, dead-letter the delivery.
    pub fn next_delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng_value: f64,
    ) -> Option<Duration> {
        let Some(index) = attempt.checked_sub(1) else {
            return Some(Duration::ZERO);
        };
        let base = *self.delays.get(usize::try_from(index).ok()?)?;
        let r = if rng_value.is_nan() {
            0.5
        } else {
            rng_value.clamp(0.0, 1.0)
        };
        let factor = 1.0 + self.jitter * (2.0 * r - 1.0);
        // Whole milliseconds: exact, readable delays in the deliveries table and logs.
        let millis = (base.as_millis() as f64 * factor).round();
        let jittered = if millis < u64::MAX as f64 {
            Duration::from_millis(millis as u64)
        } else {
            Duration::MAX
        };
        let floor = retry_after.map_or(Duration::ZERO, |asked| asked.min(self.max_retry_after));
        Some(jittered.max(floor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_default_schedule_is_the_documented_table() {
        let s = RetrySchedule::default();
        assert_eq!(s.max_attempts(), 12);
        // (delay before the attempt, time since the first one), as in the module docs.
        let table = [
            (5, 5),
            (30, 35),
            (2 * 60, 2 * 60 + 35),
            (10 * 60, 12 * 60 + 35),
            (30 * 60, 42 * 60 + 35),
            (3600, 3600 + 42 * 60 + 35),
            (3 * 3600, 4 * 3600 + 42 * 60 + 35),
            (6 * 3600, 10 * 3600 + 42 * 60 + 35),
            (12 * 3600, 22 * 3600 + 42 * 60 + 35),
            (24 * 3600, 46 * 3600 + 42 * 60 + 35),
            (24 * 3600, 70 * 3600 + 42 * 60 + 35),
        ];
        let mut total = Duration::ZERO;
        for (i, (delay, since_first)) in table.into_iter().enumerate() {
            let attempt = u32::try_from(i).unwrap() + 1;
            let d = s.next_delay(attempt, None, 0.5).unwrap();
            assert_eq!(d, secs(delay), "after attempt {attempt}");
            total += d;
            assert_eq!(total, secs(since_first), "attempt {}", attempt + 1);
        }
        assert_eq!(s.next_delay(12, None, 0.5), None);
        assert_eq!(s.next_delay(u32::MAX, None, 0.5), None);
        // Exponential-ish: every step at least as long as the previous one.
        assert!(s.delays().windows(2).all(|w| w[0] <= w[1]));
        // The last attempt lands 56.6 h to 84.9 h after the first.
        let span = |r: f64| {
            (1..12)
                .map(|a| s.next_delay(a, None, r).unwrap())
                .sum::<Duration>()
        };
        assert_eq!(span(0.5), secs(254_555));
        assert_eq!(span(0.0), secs(203_644)); // 56.57 h
        assert_eq!(span(1.0), secs(305_466)); // 84.85 h
    }

    #[test]
    fn the_first_attempt_is_immediate() {
        assert_eq!(
            RetrySchedule::default().next_delay(0, None, 0.9),
            Some(Duration::ZERO)
        );
        assert_eq!(
            RetrySchedule::default().next_delay(0, Some(secs(60)), 0.9),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn jitter_is_plus_or_minus_twenty_percent_of_the_step() {
        let s = RetrySchedule::default();
        assert_eq!(s.next_delay(2, None, 0.0), Some(secs(24)));
        assert_eq!(s.next_delay(2, None, 0.25), Some(secs(27)));
        assert_eq!(s.next_delay(2, None, 0.75), Some(secs(33)));
        assert_eq!(s.next_delay(2, None, 1.0), Some(secs(36)));
        // Out-of-range values are clamped, NaN means none.
        assert_eq!(s.next_delay(2, None, -3.0), Some(secs(24)));
        assert_eq!(s.next_delay(2, None, 7.0), Some(secs(36)));
        assert_eq!(s.next_delay(2, None, f64::NAN), Some(secs(30)));
        for attempt in 1..12 {
            let base = s.delays()[usize::try_from(attempt - 1).unwrap()];
            for i in 0..100 {
                let r = f64::from(i) / 100.0;
                let d = s.next_delay(attempt, None, r).unwrap();
                assert!(
                    d >= base * 4 / 5 && d <= base * 6 / 5,
                    "{attempt} {r} {d:?}"
                );
            }
        }
        // Without jitter the table is exact whatever the random value.
        let none = RetrySchedule::default().with_jitter(0.0);
        assert_eq!(none.next_delay(3, None, 0.0), Some(secs(120)));
        assert_eq!(none.next_delay(3, None, 1.0), Some(secs(120)));
        let clamped = RetrySchedule::default().with_jitter(5.0);
        assert_eq!(clamped.next_delay(3, None, 0.0), Some(Duration::ZERO));
        assert_eq!(clamped.next_delay(3, None, 1.0), Some(secs(240)));
    }

    #[test]
    fn retry_after_is_a_capped_floor() {
        let s = RetrySchedule::default();
        // Longer than the step: honoured exactly (no jitter on it).
        assert_eq!(s.next_delay(1, Some(secs(120)), 0.0), Some(secs(120)));
        assert_eq!(s.next_delay(1, Some(secs(120)), 1.0), Some(secs(120)));
        // Shorter than the step: the schedule wins.
        assert_eq!(s.next_delay(4, Some(secs(1)), 0.5), Some(secs(600)));
        assert_eq!(s.next_delay(4, Some(Duration::ZERO), 0.0), Some(secs(480)));
        // Between the jittered and the plain step: the larger.
        assert_eq!(s.next_delay(2, Some(secs(33)), 0.0), Some(secs(33)));
        assert_eq!(s.next_delay(2, Some(secs(33)), 1.0), Some(secs(36)));
        // Capped at 24 h.
        assert_eq!(
            s.next_delay(1, Some(secs(7 * 24 * 3600)), 0.5),
            Some(secs(24 * 3600))
        );
        assert_eq!(
            s.next_delay(1, Some(Duration::MAX), 0.5),
            Some(secs(24 * 3600))
        );
        let short_cap = RetrySchedule::default().with_max_retry_after(secs(60));
        assert_eq!(
            short_cap.next_delay(1, Some(secs(3600)), 0.5),
            Some(secs(60))
        );
        // A schedule step longer than the cap still applies.
        assert_eq!(
            s.next_delay(11, Some(secs(48 * 3600)), 1.0),
            Some(secs(103_680))
        );
        // No extra attempts.
        assert_eq!(s.next_delay(12, Some(secs(10)), 0.5), None);
    }

    #[test]
    fn custom_schedules() {
        let fast = RetrySchedule::new(vec![Duration::from_millis(10), Duration::from_millis(20)]);
        assert_eq!(fast.max_attempts(), 3);
        assert_eq!(
            fast.next_delay(1, None, 0.5),
            Some(Duration::from_millis(10))
        );
        assert_eq!(
            fast.next_delay(2, None, 0.0),
            Some(Duration::from_millis(16))
        );
        assert_eq!(fast.next_delay(3, None, 0.5), None);
        let once = RetrySchedule::new(vec![]);
        assert_eq!(once.max_attempts(), 1);
        assert_eq!(once.next_delay(1, Some(secs(1)), 0.5), None);
        // Huge steps saturate instead of panicking.
        let huge = RetrySchedule::new(vec![Duration::MAX]);
        assert_eq!(huge.next_delay(1, None, 1.0), Some(Duration::MAX));
    }
}
