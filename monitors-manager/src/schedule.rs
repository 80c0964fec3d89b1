//! When a monitor's rounds start: a fixed rate per period group, each monitor at its own phase.
//!
//! * **Phase.** A monitor's phase is a stable hash of its component name and spec id modulo its
//!   *phase window* ([`phase`]); its rounds tick at `epoch + phase + k × period`, where `epoch` is
//!   when the manager started the monitor. A restart after a death or a hang keeps the epoch and
//!   the phase (the monitor keeps its slot); a monitor whose config changed is started anew.
//! * **Window.** The window grows with the number of monitors in the monitor's period group:
//!   `clamp(phase_spread_per_monitor × n, min_phase_spread, min(period, max_phase_spread))`
//!   ([`ManagerSettings::phase_window`](crate::ManagerSettings::phase_window); defaults 10 ms,
//!   1 s, 60 s), where `n` counts the group's monitors once the config message that starts the
//!   monitor is applied (those of every other key and planner, plus every spec of this plan). So
//!   a handful of monitors give their first data within a second of the config (the README's
//!   one system monitor), 1,000 system monitors spread over 10 s, and 6,000 or more over the
//!   full `min(period, 60 s)`, as before: a window sized for at most 100 first rounds a second
//!   until it reaches its cap. A monitor added later is sized the same way, by the group as it is
//!   then: beside 10,000 running system monitors it starts within 60 s, alone within 1 s.
//! * **Decided once.** The window (and so the phase) is decided when the monitor starts and is
//!   never revised: running monitors keep their slots when the group grows or shrinks, so the
//!   schedule of a monitor depends only on its name, its id, its start and the group's size then.
//!   The cost: when many small config messages arrive one after the other, the first monitors got
//!   small windows, so the first seconds see more rounds than a single message of the same
//!   monitors would give (harmonically more: the first second of 100 messages of 100 monitors
//!   holds about 5× the steady rate). The bound on rounds in flight still applies. And a handful
//!   of monitors whose first round is heavy (Substrate monitors decode the runtime metadata)
//!   now run those rounds together rather than seconds apart.
//!
//! PANIC's monitors polled at once on start, then slept a period after each round; see
//! `docs/DECISIONS.md` (scheduling).

use std::time::Duration;

use tokio::time::Instant;

/// The phase of a monitor within `window` (millisecond resolution): the offset from the monitor's
/// epoch at which its rounds tick, `fingerprint(&(component_name, id)) mod window` in milliseconds.
/// The manager's window is
/// [`ManagerSettings::phase_window(group, n)`](crate::ManagerSettings::phase_window) with `n` the
/// group's monitors when the monitor starts; public so that a harness can compute the grid the
/// manager ticks on.
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
    use monitor_core::PeriodGroup;

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

    fn system_phases(n: usize, window: Duration) -> Vec<Duration> {
        (0..n)
            .map(|i| {
                let id = format!("system_{i}");
                phase(&format!("System monitor ({id})"), &id, window)
            })
            .collect()
    }

    #[test]
    fn the_window_grows_with_the_group() {
        let s = crate::ManagerSettings::default();
        let g = PeriodGroup::System; // 60 s
        assert_eq!(s.phase_window(g, 1), Duration::from_secs(1));
        assert_eq!(s.phase_window(g, 5), Duration::from_secs(1));
        assert_eq!(s.phase_window(g, 100), Duration::from_secs(1));
        assert_eq!(s.phase_window(g, 1_000), Duration::from_secs(10));
        assert_eq!(s.phase_window(g, 6_000), Duration::from_secs(60));
        assert_eq!(s.phase_window(g, 10_000), Duration::from_secs(60));
        assert_eq!(s.phase_window(g, usize::MAX), Duration::from_secs(60));
        // Node monitors (10 s): capped by the period.
        assert_eq!(
            s.phase_window(PeriodGroup::Node, 10_000),
            Duration::from_secs(10)
        );
        // GitHub (3600 s): capped by max_phase_spread.
        assert_eq!(
            s.phase_window(PeriodGroup::Github, 1_000_000),
            Duration::from_secs(60)
        );
        // A period below the floor: the period wins.
        let fast = crate::ManagerSettings {
            periods: [(g, Duration::from_millis(200))].into_iter().collect(),
            ..crate::ManagerSettings::default()
        };
        assert_eq!(fast.phase_window(g, 1), Duration::from_millis(200));
    }

    #[test]
    fn a_handful_start_within_a_second() {
        let s = crate::ManagerSettings::default();
        let window = s.phase_window(PeriodGroup::System, 5);
        for p in system_phases(5, window) {
            assert!(p < Duration::from_secs(1), "{p:?}");
        }
    }

    #[test]
    fn ten_thousand_monitors_still_spread_over_the_full_window() {
        let s = crate::ManagerSettings::default();
        let window = s.phase_window(PeriodGroup::System, 10_000);
        assert_eq!(window, Duration::from_secs(60));
        let phases = system_phases(10_000, window);
        // Per second of the window: about 10,000 / 60 = 167 first rounds, never a pile-up.
        let mut per_second = [0usize; 60];
        for p in &phases {
            assert!(*p < window);
            per_second[usize::try_from(p.as_secs()).unwrap()] += 1;
        }
        let (min, max) = (
            *per_second.iter().min().unwrap(),
            *per_second.iter().max().unwrap(),
        );
        assert!(min >= 120 && max <= 220, "{per_second:?}");
        // The last second of the window is used as much as the first.
        assert!(per_second[59] >= 120, "{per_second:?}");
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
