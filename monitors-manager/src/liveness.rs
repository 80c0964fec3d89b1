//! The supervisor's bookkeeping: which supervised monitors run, which are dead, what they did.
//!
//! A supervisor registers each monitor it runs ([`Liveness::register`]) and reports what happens to
//! it: a new incarnation starting, the strategy built or failing to build, rounds finishing, a
//! death (panic, hang, unexpected end). From that the registry answers:
//!
//! * the manager heartbeat ([`Liveness::heartbeat`]): `dead_processes` lists every monitor that
//!   died since the previous heartbeat (each death reported once, even though the supervisor
//!   restarted it at once) and every monitor currently failing to build or waiting to be restarted;
//!   `running_processes` lists the others. Both are sorted component names;
//! * whether a monitor is hung ([`Liveness::hung_deadline`]): no round finished within the allowed
//!   time since the last finished round (or the start of the incarnation). Time spent waiting for a
//!   permit to start a round (the manager bounds rounds in flight) does not count: a monitor
//!   starved by the bound is not hung;
//! * a status report for metrics and benchmarks ([`Liveness::report`]).
//!
//! **Round counts are kept here only**, once: per monitor in its entry, and, when a monitor is
//! unregistered, folded into the manager-wide "retired" counts, so that the manager's totals
//! ([`Liveness::report`]) are the retired counts plus the sum over registered monitors. An update
//! for a key that is no longer registered (a supervisor being stopped may still report once) changes
//! no state but still counts in the totals.
//!
//! Instants are [`tokio::time::Instant`]s, so all of this follows paused time in tests. An
//! unregistered monitor is no longer reported anywhere but in the totals.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use monitor_core::envelope::ManagerHeartbeat;
use tokio::time::Instant;

/// Identifies one registered monitor (one spec instance; a restart after a config change registers a
/// new key, a restart after a death keeps it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskKey(u64);

impl std::fmt::Display for TaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "task-{}", self.0)
    }
}

/// Where a monitor's current incarnation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Registered or restarted; the strategy is not built yet.
    Starting,
    /// Built and running rounds.
    Running,
    /// The strategy fails to build; retried with backoff (reported dead).
    Failing,
    /// Died (panic, hang, unexpected end) and waiting to be restarted (reported dead).
    Dead,
}

impl TaskState {
    /// Lower-case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Failing => "failing",
            TaskState::Dead => "dead",
        }
    }
}

/// The status of one monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskStatus {
    /// Its key.
    pub key: TaskKey,
    /// PANIC's component name.
    pub component_name: String,
    /// A free label given at registration (the manager uses `<routing key>/<planner>/<id>`).
    pub label: String,
    /// Its period (the fixed rate of its rounds).
    pub period: Duration,
    /// Current state.
    pub state: TaskState,
    /// Rounds that returned `Ok`.
    pub rounds_ok: u64,
    /// Rounds that returned `Err`.
    pub rounds_err: u64,
    /// Rounds cut off by the round timeout.
    pub rounds_timed_out: u64,
    /// Deaths (panics, hangs, unexpected ends) since registration.
    pub deaths: u64,
    /// Failed build attempts since registration.
    pub build_failures: u64,
    /// When the last round finished (`Ok` or `Err`).
    pub last_round_at: Option<Instant>,
}

/// How many monitors are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Starting or running.
    pub running: usize,
    /// Failing to build.
    pub failing: usize,
    /// Dead, waiting for a restart.
    pub dead: usize,
}

/// What monitors did: per monitor in its entry, manager-wide in [`Report::totals`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) rounds_ok: u64,
    pub(crate) rounds_err: u64,
    pub(crate) rounds_timed_out: u64,
    pub(crate) deaths: u64,
    pub(crate) build_failures: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.rounds_ok += other.rounds_ok;
        self.rounds_err += other.rounds_err;
        self.rounds_timed_out += other.rounds_timed_out;
        self.deaths += other.deaths;
        self.build_failures += other.build_failures;
    }
}

/// Everything [`Liveness`] knows, taken under one lock.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    /// Monitors by state.
    pub(crate) states: StateCounts,
    /// Counts of every monitor since the manager started (registered or not).
    pub(crate) totals: Counts,
    /// Every registered monitor, in registration order.
    pub(crate) monitors: Vec<TaskStatus>,
}

#[derive(Debug)]
struct Entry {
    component_name: Arc<str>,
    label: Arc<str>,
    period: Duration,
    state: TaskState,
    /// Start of the hang clock: the last finished round or the start of the incarnation, moved
    /// forward by the time spent waiting for a round permit.
    last_progress: Instant,
    /// Set while the monitor waits for a round permit.
    waiting_since: Option<Instant>,
    /// A death not yet reported in a heartbeat.
    unreported_death: bool,
    counts: Counts,
    last_round_at: Option<Instant>,
}

impl Entry {
    fn status(&self, key: TaskKey) -> TaskStatus {
        TaskStatus {
            key,
            component_name: self.component_name.to_string(),
            label: self.label.to_string(),
            period: self.period,
            state: self.state,
            rounds_ok: self.counts.rounds_ok,
            rounds_err: self.counts.rounds_err,
            rounds_timed_out: self.counts.rounds_timed_out,
            deaths: self.counts.deaths,
            build_failures: self.counts.build_failures,
            last_round_at: self.last_round_at,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    next_key: u64,
    entries: BTreeMap<TaskKey, Entry>,
    /// Counts of unregistered monitors (and of updates that arrived after unregistering).
    retired: Counts,
}

/// The registry of supervised monitors. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    inner: Mutex<Inner>,
}

impl Liveness {
    /// An empty registry.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update below leaves the maps consistent, so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Apply `f` to `key`'s entry; `count` to its counts, or to the retired counts when `key` is no
    /// longer registered (so that the totals count every report once).
    fn update(&self, key: TaskKey, count: impl FnOnce(&mut Counts), f: impl FnOnce(&mut Entry)) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        match inner.entries.get_mut(&key) {
            Some(entry) => {
                count(&mut entry.counts);
                f(entry);
            }
            None => count(&mut inner.retired),
        }
    }

    /// Register a monitor (state [`TaskState::Starting`]).
    pub(crate) fn register(
        &self,
        component_name: Arc<str>,
        label: Arc<str>,
        period: Duration,
    ) -> TaskKey {
        let mut inner = self.lock();
        inner.next_key += 1;
        let key = TaskKey(inner.next_key);
        inner.entries.insert(
            key,
            Entry {
                component_name,
                label,
                period,
                state: TaskState::Starting,
                last_progress: Instant::now(),
                waiting_since: None,
                unreported_death: false,
                counts: Counts::default(),
                last_round_at: None,
            },
        );
        key
    }

    /// Forget a monitor (stopped or removed): it is no longer reported anywhere, not even a death
    /// that was not reported yet; its counts stay in the totals. Returns whether it was registered.
    pub(crate) fn unregister(&self, key: TaskKey) -> bool {
        let mut inner = self.lock();
        match inner.entries.remove(&key) {
            Some(entry) => {
                inner.retired.add(&entry.counts);
                true
            }
            None => false,
        }
    }

    /// A new incarnation starts (first start or restart): state [`TaskState::Starting`], hang clock
    /// reset.
    pub(crate) fn incarnation_started(&self, key: TaskKey) {
        self.update(
            key,
            |_| {},
            |e| {
                e.state = TaskState::Starting;
                e.last_progress = Instant::now();
                e.waiting_since = None;
            },
        );
    }

    /// The strategy was built: state [`TaskState::Running`], hang clock reset.
    pub(crate) fn built(&self, key: TaskKey) {
        self.update(
            key,
            |_| {},
            |e| {
                e.state = TaskState::Running;
                e.last_progress = Instant::now();
            },
        );
    }

    /// Building the strategy failed: state [`TaskState::Failing`] (reported dead until it builds).
    pub(crate) fn build_failed(&self, key: TaskKey) {
        self.update(
            key,
            |c| c.build_failures += 1,
            |e| {
                e.state = TaskState::Failing;
                e.last_progress = Instant::now();
            },
        );
    }

    /// The monitor starts waiting for a round permit (the hang clock stops).
    pub(crate) fn waiting_for_permit(&self, key: TaskKey) {
        self.update(key, |_| {}, |e| e.waiting_since = Some(Instant::now()));
    }

    /// The monitor got its round permit (the hang clock resumes, shifted by the time waited).
    pub(crate) fn permit_acquired(&self, key: TaskKey) {
        self.update(
            key,
            |_| {},
            |e| {
                if let Some(since) = e.waiting_since.take() {
                    let now = Instant::now();
                    e.last_progress =
                        (e.last_progress + now.saturating_duration_since(since)).min(now);
                }
            },
        );
    }

    /// A round finished (`ok`: it returned `Ok`): hang clock reset.
    pub(crate) fn round_finished(&self, key: TaskKey, ok: bool) {
        self.update(
            key,
            |c| {
                if ok {
                    c.rounds_ok += 1;
                } else {
                    c.rounds_err += 1;
                }
            },
            |e| {
                let now = Instant::now();
                e.last_round_at = Some(now);
                e.last_progress = now;
                e.waiting_since = None;
            },
        );
    }

    /// A round was cut off by its timeout (does not reset the hang clock).
    pub(crate) fn round_timed_out(&self, key: TaskKey) {
        self.update(key, |c| c.rounds_timed_out += 1, |_| {});
    }

    /// The monitor died (panic, hang, unexpected end): state [`TaskState::Dead`] until the next
    /// incarnation starts; the death is listed in the next heartbeat.
    pub(crate) fn died(&self, key: TaskKey) {
        self.update(
            key,
            |c| c.deaths += 1,
            |e| {
                e.state = TaskState::Dead;
                e.unreported_death = true;
                e.waiting_since = None;
            },
        );
    }

    /// Rounds of `key` that returned `Ok` since registration (0 when unknown).
    pub(crate) fn rounds_ok(&self, key: TaskKey) -> u64 {
        self.lock()
            .entries
            .get(&key)
            .map_or(0, |e| e.counts.rounds_ok)
    }

    /// When the monitor counts as hung if no round finishes before: the hang clock plus
    /// `allowed` (a build that never returns counts too). `None` when the question does not apply:
    /// unknown key, failing to build (already reported dead), dead, or waiting for a round permit.
    pub(crate) fn hung_deadline(&self, key: TaskKey, allowed: Duration) -> Option<Instant> {
        let inner = self.lock();
        let e = inner.entries.get(&key)?;
        let applies = matches!(e.state, TaskState::Starting | TaskState::Running);
        if !applies || e.waiting_since.is_some() {
            return None;
        }
        Some(e.last_progress + allowed)
    }

    /// The manager heartbeat now (built by [`heartbeat::manager_heartbeat`]), and mark every
    /// reported death as reported.
    pub(crate) fn heartbeat(&self, component_name: &str) -> ManagerHeartbeat {
        let mut inner = self.lock();
        let mut running = Vec::new();
        let mut dead = Vec::new();
        for e in inner.entries.values_mut() {
            let is_dead =
                e.unreported_death || matches!(e.state, TaskState::Failing | TaskState::Dead);
            e.unreported_death = false;
            if is_dead {
                dead.push(e.component_name.to_string());
            } else {
                running.push(e.component_name.to_string());
            }
        }
        drop(inner);
        heartbeat::manager_heartbeat(component_name, running, dead)
    }

    /// Counts per state, manager-wide counts and the status of every registered monitor (by key,
    /// i.e. registration order), all from one moment.
    pub(crate) fn report(&self) -> Report {
        let inner = self.lock();
        let mut states = StateCounts::default();
        let mut totals = inner.retired;
        let mut monitors = Vec::with_capacity(inner.entries.len());
        for (key, e) in &inner.entries {
            match e.state {
                TaskState::Starting | TaskState::Running => states.running += 1,
                TaskState::Failing => states.failing += 1,
                TaskState::Dead => states.dead += 1,
            }
            totals.add(&e.counts);
            monitors.push(e.status(*key));
        }
        Report {
            states,
            totals,
            monitors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deaths_are_reported_once_and_failing_while_failing() {
        let l = Liveness::new();
        let a = l.register(
            "System monitor (a)".into(),
            "a".into(),
            Duration::from_secs(60),
        );
        let b = l.register(
            "System monitor (b)".into(),
            "b".into(),
            Duration::from_secs(60),
        );
        let c = l.register(
            "System monitor (c)".into(),
            "c".into(),
            Duration::from_secs(60),
        );
        l.built(a);
        l.built(b);
        l.build_failed(c);
        l.died(b);
        l.incarnation_started(b);
        l.built(b);

        let hb = l.heartbeat("Monitors Manager");
        assert_eq!(hb.component_name, "Monitors Manager");
        assert_eq!(hb.running_processes, ["System monitor (a)"]);
        assert_eq!(
            hb.dead_processes,
            ["System monitor (b)", "System monitor (c)"]
        );

        let hb = l.heartbeat("Monitors Manager");
        assert_eq!(
            hb.running_processes,
            ["System monitor (a)", "System monitor (b)"]
        );
        assert_eq!(hb.dead_processes, ["System monitor (c)"]);

        assert_eq!(
            l.report().states,
            StateCounts {
                running: 2,
                failing: 1,
                dead: 0
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unregistered_monitors_vanish_even_with_an_unreported_death() {
        let l = Liveness::new();
        let a = l.register("A".into(), "a".into(), Duration::from_secs(60));
        l.died(a);
        assert!(l.unregister(a));
        assert!(!l.unregister(a));
        l.round_finished(a, true); // ignored
        let hb = l.heartbeat("m");
        assert!(hb.running_processes.is_empty());
        assert!(hb.dead_processes.is_empty());
        let report = l.report();
        assert!(report.monitors.is_empty());
        // The death and the late round still count in the totals, once each.
        assert_eq!((report.totals.deaths, report.totals.rounds_ok), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn hang_clock_ignores_permit_waits() {
        let l = Liveness::new();
        let a = l.register("A".into(), "a".into(), Duration::from_secs(60));
        let allowed = Duration::from_secs(40);
        let t0 = Instant::now();
        assert_eq!(l.hung_deadline(a, allowed), Some(t0 + allowed), "building");
        l.built(a);
        assert_eq!(l.hung_deadline(a, allowed), Some(t0 + allowed));

        tokio::time::advance(Duration::from_secs(5)).await;
        l.waiting_for_permit(a);
        tokio::time::advance(Duration::from_secs(100)).await;
        assert_eq!(l.hung_deadline(a, allowed), None, "waiting for a permit");
        l.permit_acquired(a);
        // The 100 s waited are not counted.
        assert_eq!(
            l.hung_deadline(a, allowed),
            Some(t0 + Duration::from_secs(100) + allowed)
        );

        l.round_timed_out(a);
        assert_eq!(
            l.hung_deadline(a, allowed),
            Some(t0 + Duration::from_secs(100) + allowed),
            "a timed-out round is no progress"
        );
        l.round_finished(a, false);
        assert_eq!(l.hung_deadline(a, allowed), Some(Instant::now() + allowed));

        l.build_failed(a);
        assert_eq!(l.hung_deadline(a, allowed), None, "failing is not hung");
    }

    #[tokio::test(start_paused = true)]
    async fn snapshot_counts_rounds() {
        let l = Liveness::new();
        let a = l.register(
            "A".into(),
            "general.systems_config/systems/a".into(),
            Duration::from_secs(60),
        );
        l.built(a);
        l.round_finished(a, true);
        l.round_finished(a, true);
        l.round_finished(a, false);
        l.round_timed_out(a);
        let report = l.report();
        let s = &report.monitors[0];
        assert_eq!(s.label, "general.systems_config/systems/a");
        assert_eq!((s.rounds_ok, s.rounds_err, s.rounds_timed_out), (2, 1, 1));
        assert_eq!(s.last_round_at, Some(Instant::now()));
        assert_eq!(s.state, TaskState::Running);
        assert_eq!(
            (
                report.totals.rounds_ok,
                report.totals.rounds_err,
                report.totals.rounds_timed_out
            ),
            (2, 1, 1)
        );
    }
}
