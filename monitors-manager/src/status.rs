//! The manager's status snapshot (for `/metrics`, the benchmarks and tests).
//!
//! Every count is kept once: what monitors did (rounds, deaths, build failures) by the
//! supervisor's bookkeeping (`liveness`), per monitor and in total; what the manager and the
//! publishing did (rounds in flight, publishes, worker heartbeats, config messages, pings) by
//! the manager-wide `Counters`; what the outbox holds and dropped by the outbox.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::liveness::{Liveness, Report};
pub use crate::liveness::{StateCounts, TaskKey, TaskState, TaskStatus};
use crate::publisher::Outbox;

/// Manager-wide counters that no monitor's entry keeps, bumped by the manager and the monitor
/// tasks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) rounds_in_flight: AtomicU64,
    pub(crate) slow_monitors: AtomicU64,
    pub(crate) rounds_cut_off: AtomicU64,
    pub(crate) publishes_ok: AtomicU64,
    pub(crate) publishes_failed: AtomicU64,
    pub(crate) publishes_unroutable: AtomicU64,
    pub(crate) heartbeats_failed: AtomicU64,
    pub(crate) worker_heartbeats: AtomicU64,
    pub(crate) config_messages: AtomicU64,
    pub(crate) config_errors: AtomicU64,
    pub(crate) pings: AtomicU64,
    /// The bound on main-pool rounds in flight now (see `inflight`).
    pub(crate) round_permits: Arc<AtomicU64>,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A point-in-time view of the manager.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerStatus {
    /// Monitors by state.
    pub states: StateCounts,
    /// Rounds that returned `Ok`.
    pub rounds_ok: u64,
    /// Rounds that returned `Err` (processing errors).
    pub rounds_err: u64,
    /// Rounds cut off by their timeout.
    pub rounds_timed_out: u64,
    /// Rounds running now (main pool and slow lane).
    pub rounds_in_flight: u64,
    /// Monitors in the slow lane now (their last round was slow or timed out).
    pub slow_monitors: u64,
    /// Rounds cut off at their slow threshold because the slow lane was full (also counted in
    /// `rounds_timed_out`).
    pub rounds_cut_off: u64,
    /// Raw-data messages published.
    pub publishes_ok: u64,
    /// Raw-data publishes that failed (the rest of that round and its heartbeat were skipped).
    pub publishes_failed: u64,
    /// Raw-data messages no queue was bound for (dropped by the broker; not an error: the rest
    /// of the round and its heartbeat are still published).
    pub publishes_unroutable: u64,
    /// Worker heartbeats published (delivered or unroutable).
    pub worker_heartbeats: u64,
    /// Worker heartbeats whose publish failed.
    pub heartbeats_failed: u64,
    /// Messages (data and heartbeats) in the manager's outbox now: queued or being published.
    pub outbox_messages: u64,
    /// Bytes the outbox holds now (bodies, routing keys and a fixed overhead per message), at most
    /// [`ManagerSettings::outbox_bytes`](crate::ManagerSettings::outbox_bytes).
    pub outbox_bytes: u64,
    /// Messages dropped, oldest first, because the outbox was full (whole rounds at a time).
    pub outbox_dropped: u64,
    /// Bytes of those messages.
    pub outbox_dropped_bytes: u64,
    /// Messages still in the outbox when the grace period of a shutdown ended (not published, or
    /// not known to be).
    pub outbox_lost_at_shutdown: u64,
    /// Failed strategy builds.
    pub build_failures: u64,
    /// Monitor deaths (panics, hangs, unexpected ends).
    pub deaths: u64,
    /// Config messages handled.
    pub config_messages: u64,
    /// Config messages or sections that could not be used.
    pub config_errors: u64,
    /// Pings answered.
    pub pings: u64,
    /// Every monitor, in start order.
    pub monitors: Vec<TaskStatus>,
}

/// How many monitors of one kind run: one planner's monitors of one period (see
/// [`ManagerStatus::by_kind`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KindCount {
    /// The planner's name (PANIC's monitor type as the planners name it: `systems`, …).
    pub planner: String,
    /// Their period.
    pub period: std::time::Duration,
    /// How many.
    pub monitors: usize,
}

impl ManagerStatus {
    /// The monitors per planner and period, sorted by planner name: what the manager runs, in the
    /// planners' own words (the manager names no chain). The planner is read from the manager's
    /// labels, `<routing key>/<planner>/<id>`; a monitor with another label counts under `?`.
    pub fn by_kind(&self) -> Vec<KindCount> {
        let mut counts: std::collections::BTreeMap<(String, std::time::Duration), usize> =
            std::collections::BTreeMap::new();
        for m in &self.monitors {
            let planner = m.label.split('/').nth(1).unwrap_or("?").to_owned();
            *counts.entry((planner, m.period)).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|((planner, period), monitors)| KindCount {
                planner,
                period,
                monitors,
            })
            .collect()
    }

    /// The monitors with this component name (several keys may run one name).
    pub fn monitors_named(&self, component_name: &str) -> Vec<&TaskStatus> {
        self.monitors
            .iter()
            .filter(|m| m.component_name == component_name)
            .collect()
    }
}

/// A cheap, cloneable handle that reads the status of a manager (running or not).
#[derive(Debug, Clone)]
pub struct StatusHandle {
    pub(crate) counters: Arc<Counters>,
    pub(crate) liveness: Arc<Liveness>,
    pub(crate) outbox: Arc<Outbox>,
}

impl StatusHandle {
    /// The bound on rounds in flight in the main pool now (it follows the monitors' rate of
    /// rounds, between [`ManagerSettings::max_in_flight`](crate::ManagerSettings::max_in_flight)
    /// and [`ManagerSettings::max_in_flight_cap`](crate::ManagerSettings::max_in_flight_cap);
    /// 0 before the manager runs).
    pub fn round_permits(&self) -> u64 {
        self.counters.round_permits.load(Ordering::Relaxed)
    }

    /// Rounds in flight now (main pool and slow lane), without building the whole status.
    pub fn rounds_in_flight(&self) -> u64 {
        self.counters.rounds_in_flight.load(Ordering::Relaxed)
    }

    /// The status now.
    pub fn status(&self) -> ManagerStatus {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let Report {
            states,
            totals,
            monitors,
        } = self.liveness.report();
        let outbox = self.outbox.counts();
        ManagerStatus {
            states,
            rounds_ok: totals.rounds_ok,
            rounds_err: totals.rounds_err,
            rounds_timed_out: totals.rounds_timed_out,
            rounds_in_flight: get(&c.rounds_in_flight),
            slow_monitors: get(&c.slow_monitors),
            rounds_cut_off: get(&c.rounds_cut_off),
            publishes_ok: get(&c.publishes_ok),
            publishes_failed: get(&c.publishes_failed),
            publishes_unroutable: get(&c.publishes_unroutable),
            worker_heartbeats: get(&c.worker_heartbeats),
            heartbeats_failed: get(&c.heartbeats_failed),
            outbox_messages: outbox.messages,
            outbox_bytes: outbox.bytes,
            outbox_dropped: outbox.dropped,
            outbox_dropped_bytes: outbox.dropped_bytes,
            outbox_lost_at_shutdown: outbox.lost_at_shutdown,
            build_failures: totals.build_failures,
            deaths: totals.deaths,
            config_messages: get(&c.config_messages),
            config_errors: get(&c.config_errors),
            pings: get(&c.pings),
            monitors,
        }
    }
}
