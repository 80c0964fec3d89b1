//! Liveness bookkeeping for a manager's heartbeat: which supervised monitors run, which are dead.
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
//! * a status snapshot for metrics and benchmarks ([`Liveness::snapshot`], [`Liveness::counts`]).
//!
//! Instants are [`tokio::time::Instant`]s, so all of this follows paused time in tests. An
//! unregistered monitor is no longer reported anywhere; updates for an unknown key are ignored (a
//! supervisor that is being stopped may still report once).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use monitor_core::envelope::{now_unix, ManagerHeartbeat};
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

#[derive(Debug)]
struct Entry {
    component_name: String,
    label: String,
    state: TaskState,
    /// Start of the hang clock: the last finished round or the start of the incarnation, moved
    /// forward by the time spent waiting for a round permit.
    last_progress: Instant,
    /// Set while the monitor waits for a round permit.
    waiting_since: Option<Instant>,
    /// A death not yet reported in a heartbeat.
    unreported_death: bool,
    rounds_ok: u64,
    rounds_err: u64,
    rounds_timed_out: u64,
    deaths: u64,
    build_failures: u64,
    last_round_at: Option<Instant>,
}

impl Entry {
    fn status(&self, key: TaskKey) -> TaskStatus {
        TaskStatus {
            key,
            component_name: self.component_name.clone(),
            label: self.label.clone(),
            state: self.state,
            rounds_ok: self.rounds_ok,
            rounds_err: self.rounds_err,
            rounds_timed_out: self.rounds_timed_out,
            deaths: self.deaths,
            build_failures: self.build_failures,
            last_round_at: self.last_round_at,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    next_key: u64,
    entries: BTreeMap<TaskKey, Entry>,
}

/// The registry of supervised monitors. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug, Default)]
pub struct Liveness {
    inner: Mutex<Inner>,
}

impl Liveness {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update below leaves the maps consistent, so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, key: TaskKey, f: impl FnOnce(&mut Entry)) {
        if let Some(entry) = self.lock().entries.get_mut(&key) {
            f(entry);
        }
    }

    /// Register a monitor (state [`TaskState::Starting`]).
    pub fn register(&self, component_name: &str, label: &str) -> TaskKey {
        let mut inner = self.lock();
        inner.next_key += 1;
        let key = TaskKey(inner.next_key);
        inner.entries.insert(
            key,
            Entry {
                component_name: component_name.to_owned(),
                label: label.to_owned(),
                state: TaskState::Starting,
                last_progress: Instant::now(),
                waiting_since: None,
                unreported_death: false,
                rounds_ok: 0,
                rounds_err: 0,
                rounds_timed_out: 0,
                deaths: 0,
                build_failures: 0,
                last_round_at: None,
            },
        );
        key
    }

    /// Forget a monitor (stopped or removed): it is no longer reported anywhere, not even a death
    /// that was not reported yet. Returns whether it was registered.
    pub fn unregister(&self, key: TaskKey) -> bool {
        self.lock().entries.remove(&key).is_some()
    }

    /// Whether `key` is registered.
    pub fn contains(&self, key: TaskKey) -> bool {
        self.lock().entries.contains_key(&key)
    }

    /// A new incarnation starts (first start or restart): state [`TaskState::Starting`], hang clock
    /// reset.
    pub fn incarnation_started(&self, key: TaskKey) {
        self.update(key, |e| {
            e.state = TaskState::Starting;
            e.last_progress = Instant::now();
            e.waiting_since = None;
        });
    }

    /// The strategy was built: state [`TaskState::Running`], hang clock reset.
    pub fn built(&self, key: TaskKey) {
        self.update(key, |e| {
            e.state = TaskState::Running;
            e.last_progress = Instant::now();
        });
    }

    /// Building the strategy failed: state [`TaskState::Failing`] (reported dead until it builds).
    pub fn build_failed(&self, key: TaskKey) {
        self.update(key, |e| {
            e.state = TaskState::Failing;
            e.build_failures += 1;
            e.last_progress = Instant::now();
        });
    }

    /// The monitor starts waiting for a round permit (the hang clock stops).
    pub fn waiting_for_permit(&self, key: TaskKey) {
        self.update(key, |e| e.waiting_since = Some(Instant::now()));
    }

    /// The monitor got its round permit (the hang clock resumes, shifted by the time waited).
    pub fn permit_acquired(&self, key: TaskKey) {
        self.update(key, |e| {
            if let Some(since) = e.waiting_since.take() {
                let now = Instant::now();
                e.last_progress = (e.last_progress + now.saturating_duration_since(since)).min(now);
            }
        });
    }

    /// A round finished (`ok`: it returned `Ok`): hang clock reset.
    pub fn round_finished(&self, key: TaskKey, ok: bool) {
        self.update(key, |e| {
            let now = Instant::now();
            if ok {
                e.rounds_ok += 1;
            } else {
                e.rounds_err += 1;
            }
            e.last_round_at = Some(now);
            e.last_progress = now;
            e.waiting_since = None;
        });
    }

    /// A round was cut off by its timeout (does not reset the hang clock).
    pub fn round_timed_out(&self, key: TaskKey) {
        self.update(key, |e| e.rounds_timed_out += 1);
    }

    /// The monitor died (panic, hang, unexpected end): state [`TaskState::Dead`] until the next
    /// incarnation starts; the death is listed in the next heartbeat.
    pub fn died(&self, key: TaskKey) {
        self.update(key, |e| {
            e.state = TaskState::Dead;
            e.deaths += 1;
            e.unreported_death = true;
            e.waiting_since = None;
        });
    }

    /// When the monitor counts as hung if no round finishes before: the hang clock plus
    /// `allowed` (a build that never returns counts too). `None` when the question does not apply:
    /// unknown key, failing to build (already reported dead), dead, or waiting for a round permit.
    pub fn hung_deadline(&self, key: TaskKey, allowed: Duration) -> Option<Instant> {
        let inner = self.lock();
        let e = inner.entries.get(&key)?;
        let applies = matches!(e.state, TaskState::Starting | TaskState::Running);
        if !applies || e.waiting_since.is_some() {
            return None;
        }
        Some(e.last_progress + allowed)
    }

    /// The manager heartbeat now, and mark every reported death as reported.
    pub fn heartbeat(&self, component_name: &str) -> ManagerHeartbeat {
        let mut inner = self.lock();
        let mut running = Vec::new();
        let mut dead = Vec::new();
        for e in inner.entries.values_mut() {
            let is_dead =
                e.unreported_death || matches!(e.state, TaskState::Failing | TaskState::Dead);
            e.unreported_death = false;
            if is_dead {
                dead.push(e.component_name.clone());
            } else {
                running.push(e.component_name.clone());
            }
        }
        running.sort();
        dead.sort();
        ManagerHeartbeat {
            component_name: component_name.to_owned(),
            running_processes: running,
            dead_processes: dead,
            timestamp: now_unix(),
        }
    }

    /// The status of one monitor.
    pub fn status(&self, key: TaskKey) -> Option<TaskStatus> {
        self.lock().entries.get(&key).map(|e| e.status(key))
    }

    /// Counts per state.
    pub fn counts(&self) -> StateCounts {
        let inner = self.lock();
        let mut c = StateCounts::default();
        for e in inner.entries.values() {
            match e.state {
                TaskState::Starting | TaskState::Running => c.running += 1,
                TaskState::Failing => c.failing += 1,
                TaskState::Dead => c.dead += 1,
            }
        }
        c
    }

    /// The status of every registered monitor, by key (registration order).
    pub fn snapshot(&self) -> Vec<TaskStatus> {
        self.lock()
            .entries
            .iter()
            .map(|(key, e)| e.status(*key))
            .collect()
    }

    /// Number of registered monitors.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no monitor is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deaths_are_reported_once_and_failing_while_failing() {
        let l = Liveness::new();
        let a = l.register("System monitor (a)", "a");
        let b = l.register("System monitor (b)", "b");
        let c = l.register("System monitor (c)", "c");
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
            l.counts(),
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
        let a = l.register("A", "a");
        l.died(a);
        assert!(l.unregister(a));
        assert!(!l.unregister(a));
        l.round_finished(a, true); // ignored
        let hb = l.heartbeat("m");
        assert!(hb.running_processes.is_empty());
        assert!(hb.dead_processes.is_empty());
        assert!(l.snapshot().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn hang_clock_ignores_permit_waits() {
        let l = Liveness::new();
        let a = l.register("A", "a");
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
        let a = l.register("A", "general.systems_config/systems/a");
        l.built(a);
        l.round_finished(a, true);
        l.round_finished(a, true);
        l.round_finished(a, false);
        l.round_timed_out(a);
        let s = &l.snapshot()[0];
        assert_eq!(s.label, "general.systems_config/systems/a");
        assert_eq!((s.rounds_ok, s.rounds_err, s.rounds_timed_out), (2, 1, 1));
        assert_eq!(s.last_round_at, Some(Instant::now()));
        assert_eq!(s.state, TaskState::Running);
    }
}
