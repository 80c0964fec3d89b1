//! [`RateBudget`]: one request budget shared by every monitor that calls the same rate-limited
//! API (GitHub's REST API: 60 requests an hour unauthenticated, 5,000 with a token).
//!
//! The budget learns from every response:
//!
//! * `X-RateLimit-Remaining` / `X-RateLimit-Reset` (UNIX seconds): requests left in the window and
//!   when it ends. Between responses the budget counts the requests it lets through, so monitors
//!   whose rounds fall together cannot all spend the last request;
//! * `Retry-After` (seconds or an HTTP date): no request before then, whatever the counters say;
//! * a `429` without any of these: one minute, as GitHub's documentation asks for rate-limit
//!   answers that do not say how long to wait. A `403` without them is not treated as a rate
//!   limit (GitHub also answers `403` for permission problems).
//!
//! When the remaining count is 0 (until the reset) or a `Retry-After` is running,
//! [`RateBudget::try_acquire`] refuses with a [`RateLimitWait`] and the caller does not call the
//! API. Waits are capped at [`MAX_WAIT`], so a bogus header cannot silence monitors for days.
//! Time is the wall clock (the reset header is a UNIX time); every method takes `now` so that the
//! logic is testable without sleeping.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

/// The longest wait any header can impose (GitHub's window is one hour).
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(3600);

/// The wait after a rate-limit answer that does not say how long to wait.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// Why the budget refuses a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// `X-RateLimit-Remaining` reached 0; the window resets at the deadline.
    Exhausted,
    /// A `Retry-After` (or a rate-limit answer without one: [`DEFAULT_WAIT`]).
    RetryAfter,
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitReason::Exhausted => "rate limit exhausted until the window resets",
            WaitReason::RetryAfter => "rate limited: the API asked to retry later",
        })
    }
}

/// A refusal: no request before `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitWait {
    /// The earliest time a request may be made.
    pub until: SystemTime,
    /// Why.
    pub reason: WaitReason,
}

impl RateLimitWait {
    /// `until` as float UNIX seconds (for logs).
    pub fn until_unix(&self) -> f64 {
        unix_secs(self.until)
    }

    /// How long from `now` (zero when already past).
    pub fn remaining_from(&self, now: SystemTime) -> Duration {
        self.until.duration_since(now).unwrap_or(Duration::ZERO)
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct State {
    /// Requests left in the current window, as last reported and counted down since.
    remaining: Option<u64>,
    /// End of the current window.
    reset: Option<SystemTime>,
    /// No request before this (`Retry-After`, or an exhausted window without a reset time).
    retry_until: Option<SystemTime>,
}

/// A request budget shared by every monitor of one API (put it in an `Arc`).
#[derive(Debug, Default)]
pub struct RateBudget {
    state: Mutex<State>,
}

/// What the budget currently knows (for tests and status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSnapshot {
    /// Requests left in the window (None: unknown).
    pub remaining: Option<u64>,
    /// End of the window (None: unknown).
    pub reset: Option<SystemTime>,
    /// No request before this.
    pub retry_until: Option<SystemTime>,
}

impl RateBudget {
    /// An empty budget: requests allowed until a response says otherwise.
    pub fn new() -> Self {
        RateBudget::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere while holding it; the state is plain data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the budget knows now.
    pub fn snapshot(&self) -> BudgetSnapshot {
        let s = self.lock();
        BudgetSnapshot {
            remaining: s.remaining,
            reset: s.reset,
            retry_until: s.retry_until,
        }
    }

    /// Takes one request from the budget, or says until when to wait.
    pub fn try_acquire(&self, now: SystemTime) -> Result<(), RateLimitWait> {
        let mut s = self.lock();
        if let Some(until) = s.retry_until {
            if until > now {
                return Err(RateLimitWait {
                    until,
                    reason: WaitReason::RetryAfter,
                });
            }
            s.retry_until = None;
        }
        if let Some(reset) = s.reset {
            if reset <= now {
                // A new window: the count is unknown until the next response.
                s.reset = None;
                s.remaining = None;
            }
        }
        match (s.remaining, s.reset) {
            (Some(0), Some(reset)) => Err(RateLimitWait {
                until: reset,
                reason: WaitReason::Exhausted,
            }),
            (Some(n), _) => {
                s.remaining = Some(n.saturating_sub(1));
                Ok(())
            }
            (None, _) => Ok(()),
        }
    }

    /// Learns from a response's status and headers.
    pub fn record(&self, status: u16, headers: &HeaderMap, now: SystemTime) {
        let remaining = header_str(headers, "x-ratelimit-remaining").and_then(|v| v.parse().ok());
        let reset = header_str(headers, "x-ratelimit-reset")
            .and_then(|v| v.parse::<u64>().ok())
            .map(|secs| cap_after_epoch(Duration::from_secs(secs), now));
        let retry_after =
            header_str(headers, "retry-after").and_then(|v| parse_retry_after(v, now));

        let mut s = self.lock();
        let mut wait_until: Option<SystemTime> = retry_after;
        match (remaining, reset) {
            (Some(rem), Some(reset)) => {
                // Same window: keep the lower count (requests let through since this answer was
                // produced are not in it). New window: the server's count.
                s.remaining = Some(match (s.reset == Some(reset), s.remaining) {
                    (true, Some(local)) => local.min(rem),
                    _ => rem,
                });
                s.reset = Some(reset);
            }
            (Some(rem), None) => {
                if rem == 0 {
                    wait_until = wait_until.max(Some(now + DEFAULT_WAIT));
                }
            }
            (None, _) => {}
        }
        if status == 429 && remaining.is_none() && retry_after.is_none() {
            wait_until = wait_until.max(Some(now + DEFAULT_WAIT));
        }
        if let Some(until) = wait_until {
            s.retry_until = s.retry_until.max(Some(until));
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `Retry-After`: delay seconds or an HTTP date; capped at [`MAX_WAIT`].
fn parse_retry_after(value: &str, now: SystemTime) -> Option<SystemTime> {
    if let Ok(secs) = value.parse::<u64>() {
        return Some(now + Duration::from_secs(secs).min(MAX_WAIT));
    }
    let date = OffsetDateTime::parse(value, &Rfc2822).ok()?;
    let nanos = u64::try_from(date.unix_timestamp_nanos()).ok()?;
    Some(cap_after_epoch(Duration::from_nanos(nanos), now))
}

/// `UNIX_EPOCH + since_epoch`, at most `now + MAX_WAIT` (a time `SystemTime` cannot hold, which
/// `+` would panic on, is past the cap too).
fn cap_after_epoch(since_epoch: Duration, now: SystemTime) -> SystemTime {
    let cap = now + MAX_WAIT;
    UNIX_EPOCH
        .checked_add(since_epoch)
        .map_or(cap, |t| t.min(cap))
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn unknown_budget_allows() {
        let b = RateBudget::new();
        assert!(b.try_acquire(at(NOW)).is_ok());
        assert!(b.try_acquire(at(NOW)).is_ok());
        assert_eq!(b.snapshot().remaining, None);
    }

    #[test]
    fn counts_down_between_responses_and_waits_for_the_reset() {
        let b = RateBudget::new();
        let reset = (NOW + 100).to_string();
        b.record(
            200,
            &headers(&[
                ("X-RateLimit-Remaining", "2"),
                ("X-RateLimit-Reset", &reset),
            ]),
            at(NOW),
        );
        assert!(b.try_acquire(at(NOW)).is_ok());
        assert!(b.try_acquire(at(NOW)).is_ok());
        let wait = b.try_acquire(at(NOW + 1)).unwrap_err();
        assert_eq!(wait.until, at(NOW + 100));
        assert_eq!(wait.reason, WaitReason::Exhausted);
        assert_eq!(wait.remaining_from(at(NOW + 1)), Duration::from_secs(99));
        // A late answer of the same window with a higher count does not refill it.
        b.record(
            200,
            &headers(&[
                ("X-RateLimit-Remaining", "1"),
                ("X-RateLimit-Reset", &reset),
            ]),
            at(NOW + 2),
        );
        assert!(b.try_acquire(at(NOW + 2)).is_err());
        // After the reset, requests go again (count unknown until the next answer).
        assert!(b.try_acquire(at(NOW + 100)).is_ok());
        assert_eq!(b.snapshot().remaining, None);
    }

    #[test]
    fn rate_limited_403_blocks_until_reset() {
        let b = RateBudget::new();
        b.record(
            403,
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &(NOW + 30).to_string()),
            ]),
            at(NOW),
        );
        assert_eq!(b.try_acquire(at(NOW + 29)).unwrap_err().until, at(NOW + 30));
        assert!(b.try_acquire(at(NOW + 30)).is_ok());
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let b = RateBudget::new();
        b.record(429, &headers(&[("Retry-After", "5")]), at(NOW));
        let wait = b.try_acquire(at(NOW)).unwrap_err();
        assert_eq!(
            (wait.until, wait.reason),
            (at(NOW + 5), WaitReason::RetryAfter)
        );
        assert!(b.try_acquire(at(NOW + 5)).is_ok());

        let b = RateBudget::new();
        // NOW = 2023-11-14T22:13:20Z; ten seconds later.
        b.record(
            403,
            &headers(&[("retry-after", "Tue, 14 Nov 2023 22:13:30 GMT")]),
            at(NOW),
        );
        assert_eq!(b.try_acquire(at(NOW)).unwrap_err().until, at(NOW + 10));
    }

    #[test]
    fn a_429_without_headers_waits_a_minute_and_a_bare_403_does_not() {
        let b = RateBudget::new();
        b.record(403, &HeaderMap::new(), at(NOW));
        assert!(b.try_acquire(at(NOW)).is_ok());
        b.record(429, &HeaderMap::new(), at(NOW));
        assert_eq!(b.try_acquire(at(NOW)).unwrap_err().until, at(NOW + 60));
        // Remaining 0 without a reset time: a minute too.
        let b = RateBudget::new();
        b.record(200, &headers(&[("x-ratelimit-remaining", "0")]), at(NOW));
        assert_eq!(b.try_acquire(at(NOW)).unwrap_err().until, at(NOW + 60));
    }

    #[test]
    fn bogus_headers_are_ignored_or_capped() {
        let b = RateBudget::new();
        b.record(
            403,
            &headers(&[
                ("x-ratelimit-remaining", "-1"),
                ("x-ratelimit-reset", "soon"),
                ("retry-after", "later"),
            ]),
            at(NOW),
        );
        assert!(b.try_acquire(at(NOW)).is_ok());
        b.record(
            429,
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "99999999999"),
            ]),
            at(NOW),
        );
        assert_eq!(
            b.try_acquire(at(NOW)).unwrap_err().until,
            at(NOW) + MAX_WAIT
        );
        let b = RateBudget::new();
        b.record(429, &headers(&[("retry-after", "86400")]), at(NOW));
        assert_eq!(
            b.try_acquire(at(NOW)).unwrap_err().until,
            at(NOW) + MAX_WAIT
        );
    }

    /// A reset beyond what `SystemTime` can hold (`UNIX_EPOCH + u64::MAX s` overflows) is capped,
    /// not a panic of the monitor that read it.
    #[test]
    fn a_reset_beyond_the_representable_time_is_capped() {
        let b = RateBudget::new();
        b.record(
            403,
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "18446744073709551615"),
            ]),
            at(NOW),
        );
        assert_eq!(
            b.try_acquire(at(NOW)).unwrap_err().until,
            at(NOW) + MAX_WAIT
        );
    }
}
