//! Capped exponential backoff with optional jitter, shared by every retry loop of the workspace
//! (the bus reconnecting, the manager restarting monitors, the health checker and the
//! monitorables store waiting for Redis or the bus).
//!
//! [`Backoff`] is the policy: retry `n` (0-based) waits `min(max, initial · 2ⁿ)`, scaled by a
//! random factor in `[1 - jitter, 1]`. [`Retry`] is a loop's state over it: the delays of the
//! attempts so far, reset after a success, and a sleep that gives way to shutdown.

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

/// Capped exponential backoff with jitter (a policy; see [`Backoff::delay`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay of the first retry.
    pub initial: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Fraction of the delay that is randomised, `0.0..=1.0` (0 = deterministic, for tests); a
    /// value outside is clamped, NaN means none.
    pub jitter: f64,
}

impl Default for Backoff {
    /// 1 s doubling up to 60 s, half of each delay randomised.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The smallest first delay [`Backoff::new`] accepts (a zero delay would spin).
    pub const MIN_INITIAL: Duration = Duration::from_millis(1);

    /// A deterministic backoff from `initial` (at least [`Backoff::MIN_INITIAL`]) to `max` (at
    /// least the first delay).
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Self::MIN_INITIAL);
        Backoff {
            initial,
            max: max.max(initial),
            jitter: 0.0,
        }
    }

    /// The same backoff with `jitter` (see [`Backoff::jitter`]).
    pub fn with_jitter(self, jitter: f64) -> Self {
        Backoff { jitter, ..self }
    }

    /// The delay before retry `attempt` (0-based) without jitter: `min(max, initial · 2^attempt)`,
    /// exact and saturating.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let mut delay = self.initial;
        // At most ~100 doublings before the cap is reached (or none when `initial` is zero).
        for _ in 0..attempt {
            if delay.is_zero() || delay >= self.max {
                break;
            }
            delay = delay.saturating_mul(2);
        }
        delay.min(self.max)
    }

    /// The delay before retry `attempt` (0-based): [`Backoff::ceiling`] scaled by a random factor
    /// in `[1 - jitter, 1]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter > 0.0 {
            let scale = 1.0 - rand::rng().random_range(0.0..=jitter);
            ceiling.mul_f64(scale)
        } else {
            ceiling
        }
    }

    /// A retry loop's state over this policy, at its first attempt.
    pub fn retry(self) -> Retry {
        Retry {
            policy: self,
            attempt: 0,
        }
    }
}

/// The state of one retry loop: how many attempts have failed since the last success.
#[derive(Debug, Clone)]
pub struct Retry {
    policy: Backoff,
    attempt: u32,
}

impl Retry {
    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The ceiling of the next delay (the delay itself when there is no jitter), for logs.
    pub fn current(&self) -> Duration {
        self.policy.ceiling(self.attempt)
    }

    /// The next delay; the one after it is longer (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.policy.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Sleeps the next delay; `false` if `shutdown` came first.
    pub async fn sleep(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next_delay();
        shutdown
            .run_until_cancelled(tokio::time::sleep(delay))
            .await
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            jitter: 0.0,
        };
        assert_eq!(b.delay(0), Duration::from_secs(1));
        assert_eq!(b.delay(3), Duration::from_secs(8));
        assert_eq!(b.delay(5), Duration::from_secs(32));
        assert_eq!(b.delay(6), Duration::from_secs(60));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
        let ms = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let delays: Vec<u64> = (0..6).map(|n| ms.delay(n).as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn the_cap_bounds_even_the_first_delay_and_zero_stays_zero() {
        let b = Backoff {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(1),
            jitter: 0.0,
        };
        assert_eq!(b.delay(0), Duration::from_secs(1));
        let zero = Backoff {
            initial: Duration::ZERO,
            ..b
        };
        assert_eq!(zero.delay(u32::MAX), Duration::ZERO);
        let huge = Backoff {
            initial: Duration::from_secs(u64::MAX / 2),
            max: Duration::MAX,
            jitter: 0.0,
        };
        assert_eq!(huge.delay(10), Duration::MAX);
    }

    #[test]
    fn new_keeps_the_delays_positive_and_ordered() {
        let b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(b.initial, Backoff::MIN_INITIAL);
        assert_eq!(b.max, Backoff::MIN_INITIAL);
        assert_eq!(b.jitter, 0.0);
        let b = Backoff::new(Duration::from_secs(3), Duration::from_secs(1));
        assert_eq!(
            (b.initial, b.max),
            (Duration::from_secs(3), Duration::from_secs(3))
        );
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60)).with_jitter(0.5);
        for attempt in 0..20 {
            let full = b.ceiling(attempt);
            let d = b.delay(attempt);
            assert!(d <= full && d >= full / 2, "{attempt}: {d:?} vs {full:?}");
        }
        for jitter in [f64::NAN, -1.0] {
            let b = b.with_jitter(jitter);
            assert_eq!(b.delay(2), Duration::from_secs(4), "{jitter}");
        }
        let wild = b.with_jitter(7.0);
        for attempt in 0..20 {
            assert!(wild.delay(attempt) <= wild.ceiling(attempt));
        }
    }

    #[test]
    fn a_retry_walks_the_delays_and_resets() {
        let mut r = Backoff::new(Duration::from_millis(10), Duration::from_millis(40)).retry();
        assert_eq!(r.current(), Duration::from_millis(10));
        let walked: Vec<u64> = (0..4).map(|_| r.next_delay().as_millis() as u64).collect();
        assert_eq!(walked, [10, 20, 40, 40]);
        assert_eq!(r.current(), Duration::from_millis(40));
        r.reset();
        assert_eq!(r.next_delay(), Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_sleep_gives_way_to_shutdown() {
        let shutdown = CancellationToken::new();
        let mut r = Backoff::new(Duration::from_secs(1), Duration::from_secs(8)).retry();
        assert!(r.sleep(&shutdown).await);
        assert_eq!(r.current(), Duration::from_secs(2));
        shutdown.cancel();
        assert!(!r.sleep(&shutdown).await);
    }
}
