//! When a monitor's rounds start: a fixed rate per period group, each monitor at its own phase.
//!
//! A monitor's phase is a stable hash of its component name and spec id modulo its phase window
//! (`min(period, max_phase_spread)`), so 10,000 monitors started together spread their rounds
//! instead of polling together, and a restarted monitor keeps its slot: ticks are at
//! `epoch + phase + k × period` where `epoch` is when the monitor was first started (so a monitor
//! added to a running manager gives its first data within its phase window).

use std::time::Duration;

use tokio::time::Instant;

/// The phase of a monitor within `window` (millisecond resolution): the offset from the monitor's
/// epoch at which its rounds tick, `fingerprint(&(component_name, id)) mod window` in milliseconds.
/// The manager uses `window = min(period, max_phase_spread)` (see
/// [`ManagerSettings::phase_window`](crate::ManagerSettings::phase_window)); public so that a
/// harness can compute the grid the manager ticks on.
pub fn phase(component_name: &str, id: &str, window: Duration) -> Duration {
    let millis = window.as_millis().max(1);
    let h = u128::from(monitor_core::plan::fingerprint(&(component_name, id)));
    let offset = h % millis;
    Duration::from_millis(u64::try_from(offset).unwrap_or(0))
}

/// The first tick at or after `now` on the grid `epoch + phase + k × period`.
pub(crate) fn first_tick(
    epoch: Instant,
    phase: Duration,
    period: Duration,
    now: Instant,
) -> Instant {
    let start = epoch + phase;
    if now <= start || period.is_zero() {
        return start.max(now);
    }
    let since = now.duration_since(start).as_nanos();
    let p = period.as_nanos();
    let k = since.div_ceil(p);
    let offset = k.saturating_mul(p);
    match u64::try_from(offset) {
        Ok(nanos) => start + Duration::from_nanos(nanos),
        Err(_) => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_stable_and_within_the_period() {
        let p = Duration::from_secs(60);
        let a = phase("System monitor (a)", "a", p);
        assert_eq!(a, phase("System monitor (a)", "a", p));
        assert!(a < p);
        let phases: std::collections::BTreeSet<_> = (0..100)
            .map(|i| phase(&format!("System monitor (s{i})"), &format!("s{i}"), p))
            .collect();
        // 100 monitors over 60,000 slots: almost all distinct.
        assert!(phases.len() > 90, "{}", phases.len());
    }

    #[tokio::test(start_paused = true)]
    async fn first_tick_is_on_the_grid() {
        let epoch = Instant::now();
        let period = Duration::from_secs(10);
        let phase = Duration::from_secs(3);
        assert_eq!(first_tick(epoch, phase, period, epoch), epoch + phase);
        let now = epoch + Duration::from_secs(4);
        assert_eq!(
            first_tick(epoch, phase, period, now),
            epoch + Duration::from_secs(13)
        );
        let now = epoch + Duration::from_secs(13);
        assert_eq!(first_tick(epoch, phase, period, now), now);
        let now = epoch + Duration::from_secs(27);
        assert_eq!(
            first_tick(epoch, phase, period, now),
            epoch + Duration::from_secs(33)
        );
    }
}
