//! Rate-limited warnings: the one helper for log lines that can repeat once per round or once per
//! message (the manager's unroutable and failed publishes, config errors, round timeouts and
//! outbox drops; the health checker's and the store's per-message failures).
//!
//! A [`LogLimiter`] lets through at most `burst` lines per key in each window (a minute by
//! default); the rest are suppressed and *counted*, and the next line let through for that key
//! carries `suppressed = <count>` (what was left out since the previous line for that key). Keys
//! are bounded ([`MAX_KEYS`]): past that many distinct keys, new keys share one overflow key, so a
//! flood of distinct routing keys cannot grow the map or the log. Time is [`tokio::time::Instant`]
//! (paused time in tests).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Distinct keys a limiter tracks; beyond that new keys share [`OVERFLOW_KEY`].
pub const MAX_KEYS: usize = 1024;
/// The key shared by keys beyond [`MAX_KEYS`].
pub const OVERFLOW_KEY: &str = "(other keys)";

#[derive(Debug)]
struct Window {
    start: Instant,
    emitted: u32,
    suppressed: u64,
}

/// Lets through at most `burst` lines per key per window, counting the rest.
#[derive(Debug)]
pub struct LogLimiter {
    window: Duration,
    burst: u32,
    keys: Mutex<HashMap<String, Window>>,
}

impl LogLimiter {
    /// At most `burst` lines per key per `window`.
    pub fn new(window: Duration, burst: u32) -> Self {
        LogLimiter {
            window,
            burst: burst.max(1),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// One line per key per minute.
    pub fn per_minute(burst: u32) -> Self {
        Self::new(Duration::from_secs(60), burst)
    }

    /// Whether a line for `key` may be logged now: `Some(suppressed)` (lines left out for this key
    /// since the last one let through) or `None` (suppress it; it is counted).
    pub fn check(&self, key: &str) -> Option<u64> {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let key = if keys.contains_key(key) || keys.len() < MAX_KEYS {
            key
        } else {
            OVERFLOW_KEY
        };
        let w = keys.entry(key.to_owned()).or_insert(Window {
            start: now,
            emitted: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(w.start) >= self.window {
            w.start = now;
            w.emitted = 0;
        }
        if w.emitted < self.burst {
            w.emitted += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            None
        }
    }
}

/// `tracing::warn!` through a [`LogLimiter`]: `warn_limited!(limiter, key, fields…, "message")`
/// logs with `suppressed` added, or counts the line as suppressed.
#[macro_export]
macro_rules! warn_limited {
    ($limiter:expr, $key:expr, $($rest:tt)+) => {
        if let Some(suppressed) = $limiter.check($key) {
            $crate::__tracing::warn!(suppressed, $($rest)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bursts_per_key_then_counts_what_it_suppressed() {
        let l = LogLimiter::per_minute(2);
        assert_eq!(l.check("a"), Some(0));
        assert_eq!(l.check("a"), Some(0));
        assert_eq!(l.check("a"), None);
        assert_eq!(l.check("a"), None);
        assert_eq!(l.check("b"), Some(0), "keys are independent");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            l.check("a"),
            Some(2),
            "the next line says what was left out"
        );
        assert_eq!(l.check("a"), Some(0));
        assert_eq!(l.check("a"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn distinct_keys_are_bounded() {
        let l = LogLimiter::per_minute(1);
        for i in 0..MAX_KEYS {
            assert_eq!(l.check(&format!("k{i}")), Some(0));
        }
        assert_eq!(
            l.check("one more"),
            Some(0),
            "the overflow key's first line"
        );
        assert_eq!(l.check("and another"), None, "shares the overflow key");
        assert_eq!(l.keys.lock().unwrap().len(), MAX_KEYS + 1);
    }
}
