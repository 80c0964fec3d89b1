//! What every approach records per round: schedule lateness into one histogram, rounds and their
//! outcomes, publishes. Only rounds whose scheduled tick falls in the measurement window count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use monitor_core::{Publication, RoundError};

use super::BenchError;

/// Largest lateness the histogram resolves (one hour, in microseconds); larger values saturate.
const MAX_LATENESS_US: u64 = 3_600_000_000;

/// The measurement window: `[start, end)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// First instant measured (the end of the warm-up).
    pub(crate) start: Instant,
    /// First instant no longer measured.
    pub(crate) end: Instant,
}

impl Window {
    /// Whether `t` is inside.
    pub(crate) fn contains(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }
}

/// A fixed-rate grid of ticks shared by the approaches the harness schedules itself: monitor `i`
/// of `n` ticks at `epoch + i × period / n + k × period` (phases spread evenly over the period).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    /// Origin of every tick.
    pub(crate) epoch: Instant,
    /// The period.
    pub(crate) period: Duration,
    /// Number of monitors.
    pub(crate) n: usize,
}

impl Grid {
    /// Monitor `i`'s phase.
    pub(crate) fn phase(&self, i: usize) -> Duration {
        let n = self.n.max(1) as u128;
        let nanos = self.period.as_nanos() * (i as u128 % n) / n;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Monitor `i`'s first tick at or after `now`.
    pub(crate) fn first_tick(&self, i: usize, now: Instant) -> Instant {
        next_tick_at_or_after(self.epoch + self.phase(i), self.period, now)
    }
}

/// The first tick of the grid `origin + k × period` (k ≥ 0) at or after `now`.
pub(crate) fn next_tick_at_or_after(origin: Instant, period: Duration, now: Instant) -> Instant {
    if now <= origin || period.is_zero() {
        return origin.max(now);
    }
    let since = now.duration_since(origin).as_nanos();
    let p = period.as_nanos();
    let k = since.div_ceil(p);
    origin + Duration::from_nanos(u64::try_from(k * p).unwrap_or(u64::MAX))
}

/// The last tick of the grid `origin + k × period` (k ≥ 0) at or before `t` (`origin` if `t` is
/// earlier).
pub(crate) fn tick_at_or_before(origin: Instant, period: Duration, t: Instant) -> Instant {
    if t <= origin || period.is_zero() {
        return origin;
    }
    let since = t.duration_since(origin).as_nanos();
    let p = period.as_nanos();
    let k = since / p;
    origin + Duration::from_nanos(u64::try_from(k * p).unwrap_or(u64::MAX))
}

/// The tick of the grid `origin + k × period` (k ≥ 0) nearest to `t`: for rounds that may start
/// slightly before the grid as the caller knows it (its origin being an estimate), and are never
/// late by half a period.
pub(crate) fn nearest_tick(origin: Instant, period: Duration, t: Instant) -> Instant {
    if t <= origin || period.is_zero() {
        return origin;
    }
    let since = t.duration_since(origin).as_nanos();
    let p = period.as_nanos();
    let k = (since + p / 2) / p;
    origin + Duration::from_nanos(u64::try_from(k * p).unwrap_or(u64::MAX))
}

/// Counters and the lateness histogram of one run (or one worker process).
#[derive(Debug)]
pub(crate) struct Recorder {
    /// The measurement window.
    pub(crate) window: Window,
    lateness_us: Mutex<Histogram<u64>>,
    /// Rounds started in the window.
    pub(crate) rounds: AtomicU64,
    /// `result` envelopes those rounds returned.
    pub(crate) results: AtomicU64,
    /// `error` envelopes those rounds returned (the target failed: the work was not the same).
    pub(crate) error_envelopes: AtomicU64,
    /// Rounds that returned `Err` (processing errors).
    pub(crate) round_errors: AtomicU64,
    /// Raw-data publishes that failed.
    pub(crate) publish_failures: AtomicU64,
    /// Raw-data messages the sink received in the window.
    pub(crate) received: AtomicU64,
    /// Heartbeats the sink received in the window.
    pub(crate) heartbeats: AtomicU64,
}

impl Recorder {
    /// A recorder for `window`.
    pub(crate) fn new(window: Window) -> Result<Self, BenchError> {
        Ok(Recorder {
            window,
            lateness_us: Mutex::new(new_histogram()?),
            rounds: AtomicU64::new(0),
            results: AtomicU64::new(0),
            error_envelopes: AtomicU64::new(0),
            round_errors: AtomicU64::new(0),
            publish_failures: AtomicU64::new(0),
            received: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
        })
    }

    /// A round scheduled at `tick` started at `start`: `true` if it counts (tick in the window).
    pub(crate) fn round_started(&self, tick: Instant, start: Instant) -> bool {
        if !self.window.contains(tick) {
            return false;
        }
        let late = start.saturating_duration_since(tick);
        self.record_lateness_us(u64::try_from(late.as_micros()).unwrap_or(u64::MAX));
        self.rounds.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Record one lateness (microseconds) measured elsewhere (a worker process).
    pub(crate) fn record_lateness_us(&self, us: u64) {
        let mut h = self.lateness_us.lock().unwrap_or_else(|e| e.into_inner());
        h.saturating_record(us.min(MAX_LATENESS_US));
    }

    /// Count the outcome of a counted round.
    pub(crate) fn round_finished(&self, outcome: &Result<Vec<Publication>, RoundError>) {
        match outcome {
            Ok(publications) => {
                for p in publications {
                    if p.body.get("result").is_some() {
                        self.results.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.error_envelopes.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(_) => {
                self.round_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A message reached the sink now (`heartbeat`: on `health_check`, else on `raw_data`).
    pub(crate) fn received(&self, heartbeat: bool) {
        if self.window.contains(Instant::now()) {
            let c = if heartbeat {
                &self.heartbeats
            } else {
                &self.received
            };
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every recorded lateness (microseconds, at the histogram's resolution), to send elsewhere.
    pub(crate) fn lateness_values_us(&self) -> Vec<u64> {
        let h = self.lateness_us.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for v in h.iter_recorded() {
            for _ in 0..v.count_at_value() {
                out.push(v.value_iterated_to());
            }
        }
        out
    }

    /// Lateness summary.
    pub(crate) fn lateness(&self) -> Lateness {
        let h = self.lateness_us.lock().unwrap_or_else(|e| e.into_inner());
        Lateness::of(&h)
    }
}

/// A fresh lateness histogram (1 µs to 1 h, 3 significant digits).
pub(crate) fn new_histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, MAX_LATENESS_US, 3)
        .map_err(|e| BenchError::Setup(format!("lateness histogram: {e}")))
}

/// Lateness percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Lateness {
    /// Rounds measured.
    pub(crate) count: u64,
    /// Median.
    pub(crate) p50_ms: f64,
    /// 99th percentile.
    pub(crate) p99_ms: f64,
    /// Maximum.
    pub(crate) max_ms: f64,
}

impl Lateness {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Lateness::default();
        }
        Lateness {
            count: h.len(),
            p50_ms: h.value_at_quantile(0.50) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            max_ms: h.max() as f64 / 1000.0,
        }
    }
}

/// Converts between wall-clock milliseconds (shared with worker processes) and this process's
/// monotonic instants.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    instant: Instant,
    unix_ms: u128,
}

impl Clock {
    /// Now.
    pub(crate) fn now() -> Self {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Clock {
            instant: Instant::now(),
            unix_ms,
        }
    }

    /// The wall-clock milliseconds of `t`.
    pub(crate) fn to_unix_ms(self, t: Instant) -> u128 {
        if t >= self.instant {
            self.unix_ms + t.duration_since(self.instant).as_millis()
        } else {
            self.unix_ms
                .saturating_sub(self.instant.duration_since(t).as_millis())
        }
    }

    /// The instant of wall-clock milliseconds `ms`.
    pub(crate) fn to_instant(self, ms: u128) -> Instant {
        let d = |x: u128| Duration::from_millis(u64::try_from(x).unwrap_or(u64::MAX));
        if ms >= self.unix_ms {
            self.instant + d(ms - self.unix_ms)
        } else {
            self.instant
                .checked_sub(d(self.unix_ms - ms))
                .unwrap_or(self.instant)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_ticks() {
        let epoch = Instant::now();
        let g = Grid {
            epoch,
            period: Duration::from_secs(10),
            n: 4,
        };
        assert_eq!(g.phase(1), Duration::from_millis(2500));
        assert_eq!(g.first_tick(1, epoch), epoch + Duration::from_millis(2500));
        assert_eq!(
            g.first_tick(1, epoch + Duration::from_secs(3)),
            epoch + Duration::from_millis(12500)
        );
        assert_eq!(
            tick_at_or_before(
                epoch,
                Duration::from_secs(10),
                epoch + Duration::from_secs(25)
            ),
            epoch + Duration::from_secs(20)
        );
        let p = Duration::from_secs(10);
        assert_eq!(
            nearest_tick(epoch, p, epoch + Duration::from_millis(19_990)),
            epoch + Duration::from_secs(20)
        );
        assert_eq!(
            nearest_tick(epoch, p, epoch + Duration::from_millis(20_010)),
            epoch + Duration::from_secs(20)
        );
        assert_eq!(nearest_tick(epoch + p, p, epoch), epoch + p);
    }

    #[test]
    fn only_window_ticks_count() {
        let now = Instant::now();
        let r = Recorder::new(Window {
            start: now,
            end: now + Duration::from_secs(1),
        })
        .unwrap();
        assert!(!r.round_started(now - Duration::from_millis(1), now));
        assert!(r.round_started(now, now + Duration::from_millis(3)));
        assert!(!r.round_started(now + Duration::from_secs(1), now));
        let l = r.lateness();
        assert_eq!(l.count, 1);
        assert!((l.max_ms - 3.0).abs() < 0.01, "{l:?}");
    }
}
