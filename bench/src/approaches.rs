//! The five ways of running N system monitors, each doing the same round (GET the exporter,
//! parse, build the envelope, publish to `raw_data`) at a fixed rate:
//!
//! * [`Approach::Processes`]: one OS process per monitorable (as PANIC); `bench worker` children;
//! * [`Approach::Threads`]: one OS thread per monitorable, each with a current-thread runtime and
//!   its own HTTP client;
//! * [`Approach::Manager`]: our `MonitorsManager` for real, fed a `general.systems_config` message
//!   over the bus, lateness recorded by a thin planner wrapper ([`TimedPlanner`]);
//! * [`Approach::Queue`]: a scheduler pushing due monitors into a bounded channel drained by W
//!   worker tasks;
//! * [`Approach::Bare`]: one plain tokio task per monitorable with an interval loop and nothing
//!   else (no supervision, in-flight bound, heartbeats or status): the baseline of the CPU target.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use monitor_bus::Bus;
use monitor_bus::{declare_bound_queue, publish_json};
use monitor_core::config::ConfigMessage;
use monitor_core::keys::{CONFIG_EXCHANGE, MANAGER_CONFIG_BINDINGS};
use monitor_core::plan::{BuildFn, MonitorSpec, Plan, Planner, SectionPlanner};
use monitor_core::{
    ConfigError, ConfigKey, Monitor, MonitorableType, PeriodGroup, Publication, RoundError, Section,
};
use monitor_strategies::{StrategySettings, SystemConfig, SystemMonitor, SystemsPlanner, Target};
use monitors_manager::{ManagerSettings, MonitorsManager};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::record::{nearest_tick, next_tick_at_or_after, tick_at_or_before, Grid, Recorder};
use super::sink::publish_round;
use super::BenchError;

/// One way of running the monitors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Approach {
    /// One OS process per monitorable.
    Processes,
    /// One OS thread per monitorable.
    Threads,
    /// One tokio task per monitorable: the `MonitorsManager`.
    Manager,
    /// A bounded work queue with W workers.
    Queue,
    /// A bare tokio loop per monitorable, without the manager.
    Bare,
}

impl Approach {
    /// Every approach, in table order.
    pub(crate) const ALL: [Approach; 5] = [
        Approach::Processes,
        Approach::Threads,
        Approach::Manager,
        Approach::Queue,
        Approach::Bare,
    ];

    /// The CLI name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Approach::Processes => "processes",
            Approach::Threads => "threads",
            Approach::Manager => "manager",
            Approach::Queue => "queue",
            Approach::Bare => "bare",
        }
    }
}

impl fmt::Display for Approach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Approach {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Approach::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!("unknown approach `{s}` (processes, threads, manager, queue, bare)")
            })
    }
}

/// What one run gives every approach.
pub(crate) struct RunCtx {
    /// The exporter URL.
    pub(crate) url: String,
    /// Number of monitorables.
    pub(crate) size: usize,
    /// The schedule grid (approaches other than the manager).
    pub(crate) grid: Grid,
    /// Where rounds are counted.
    pub(crate) recorder: Arc<Recorder>,
    /// Where rounds publish.
    pub(crate) bus: Arc<dyn Bus>,
    /// Strategy settings (shared HTTP client) of the in-process approaches.
    pub(crate) settings: StrategySettings,
    /// Worker tasks of the queue approach.
    pub(crate) workers: usize,
    /// Child processes whose memory and CPU count (processes approach).
    pub(crate) pids: Arc<Mutex<Vec<u32>>>,
    /// Remarks for the report (spawn failures, …).
    pub(crate) notes: Arc<Mutex<Vec<String>>>,
}

impl RunCtx {
    pub(crate) fn note(&self, note: String) {
        tracing::warn!("{note}");
        self.notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(note);
    }
}

/// What an approach reports besides the recorder.
#[derive(Debug, Default)]
pub(crate) struct Started {
    /// Monitors actually started.
    pub(crate) running: usize,
    /// Time taken to start them.
    pub(crate) startup: Duration,
    /// The manager's own counters at the end, for cross-checking.
    pub(crate) manager: Option<serde_json::Value>,
}

/// Strategy settings for the bench: request timeout below the period (as the manager requires).
pub(crate) fn strategy_settings(period: Duration) -> StrategySettings {
    let timeout = period.mul_f64(0.8).min(Duration::from_secs(10));
    StrategySettings::default()
        .with_request_timeout(timeout)
        .with_group_timeout(PeriodGroup::System, timeout)
}

/// The monitored system `i`.
pub(crate) fn system_config(i: usize, url: &str) -> SystemConfig {
    SystemConfig {
        system_id: format!("bench_system_{i}"),
        parent_id: "GENERAL".to_owned(),
        system_name: format!("bench_{i}"),
        exporter_url: url.to_owned(),
    }
}

/// A System monitor for system `i` using `settings`' client.
pub(crate) fn system_monitor(
    i: usize,
    url: &str,
    settings: &StrategySettings,
) -> Result<SystemMonitor, BenchError> {
    let http = settings
        .http(Target::Monitored, PeriodGroup::System)
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    Ok(SystemMonitor::new(system_config(i, url), http))
}

/// One round at `tick`: lateness, the round, its outcome, its publishes.
async fn timed_round<M: Monitor>(
    monitor: &mut M,
    tick: Instant,
    recorder: &Recorder,
    bus: &dyn Bus,
) {
    let start = Instant::now();
    let counted = recorder.round_started(tick, start);
    let outcome = monitor.round().await;
    if counted {
        recorder.round_finished(&outcome);
    }
    if let Ok(publications) = &outcome {
        publish_round(bus, publications, recorder).await;
    }
}

/// The fixed-rate loop of monitor `i` until `stop_at` (no round starts at or after it); missed
/// ticks are skipped, a round never overlaps itself.
pub(crate) async fn monitor_loop<M: Monitor>(
    i: usize,
    mut monitor: M,
    grid: Grid,
    recorder: &Recorder,
    bus: &dyn Bus,
    stop_at: Instant,
) {
    let origin = grid.epoch + grid.phase(i);
    let mut tick = grid.first_tick(i, Instant::now());
    while tick < stop_at {
        tokio::time::sleep_until(tick.into()).await;
        timed_round(&mut monitor, tick, recorder, bus).await;
        let after = (tick + grid.period).max(Instant::now());
        tick = next_tick_at_or_after(origin, grid.period, after);
    }
}

/// Run `approach` until the window ends.
pub(crate) async fn run(approach: Approach, ctx: Arc<RunCtx>) -> Result<Started, BenchError> {
    match approach {
        Approach::Bare => bare(ctx).await,
        Approach::Threads => threads(ctx).await,
        Approach::Queue => queue(ctx).await,
        Approach::Manager => manager(ctx).await,
        Approach::Processes => processes(ctx).await,
    }
}

async fn bare(ctx: Arc<RunCtx>) -> Result<Started, BenchError> {
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..ctx.size {
        let monitor = system_monitor(i, &ctx.url, &ctx.settings)?;
        let ctx = Arc::clone(&ctx);
        tasks.spawn(async move {
            let stop = ctx.recorder.window.end;
            monitor_loop(i, monitor, ctx.grid, &ctx.recorder, &*ctx.bus, stop).await;
        });
    }
    let startup = t0.elapsed();
    while tasks.join_next().await.is_some() {}
    Ok(Started {
        running: ctx.size,
        startup,
        manager: None,
    })
}

async fn threads(ctx: Arc<RunCtx>) -> Result<Started, BenchError> {
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(ctx.size);
    for i in 0..ctx.size {
        let thread_ctx = Arc::clone(&ctx);
        let spawned = std::thread::Builder::new()
            .name(format!("monitor-{i}"))
            .spawn(move || thread_main(i, &thread_ctx));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                ctx.note(format!(
                    "threads: spawning thread {} of {} failed ({e}); running {i}",
                    i + 1,
                    ctx.size
                ));
                break;
            }
        }
    }
    let running = handles.len();
    let startup = t0.elapsed();
    let failures: Vec<String> = tokio::task::spawn_blocking(move || {
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("the thread panicked".to_owned()),
            })
            .collect()
    })
    .await
    .map_err(|e| BenchError::Setup(format!("joining threads: {e}")))?;
    if let Some(first) = failures.first() {
        ctx.note(format!(
            "threads: {} of {running} threads could not run their monitor, e.g. {first}",
            failures.len()
        ));
    }
    Ok(Started {
        running: running - failures.len(),
        startup,
        manager: None,
    })
}

/// One monitor thread: its own current-thread runtime and HTTP client (PANIC's processes each had
/// their own `requests` session too).
fn thread_main(i: usize, ctx: &RunCtx) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("thread {i}: building its runtime: {e}"))?;
    let settings = strategy_settings(ctx.grid.period);
    let monitor = system_monitor(i, &ctx.url, &settings).map_err(|e| format!("thread {i}: {e}"))?;
    rt.block_on(monitor_loop(
        i,
        monitor,
        ctx.grid,
        &ctx.recorder,
        &*ctx.bus,
        ctx.recorder.window.end,
    ));
    // Stay alive past the window end: the sampler reads every thread's CPU time then.
    let linger = ctx.recorder.window.end + Duration::from_secs(1);
    rt.block_on(async move { tokio::time::sleep_until(linger.into()).await });
    Ok(())
}

/// A due round handed to a queue worker (the monitor travels with it and comes back).
struct Job {
    index: usize,
    tick: Instant,
    monitor: SystemMonitor,
}

async fn queue(ctx: Arc<RunCtx>) -> Result<Started, BenchError> {
    let t0 = Instant::now();
    let workers = ctx.workers.max(1);
    let mut monitors: Vec<Option<SystemMonitor>> = Vec::with_capacity(ctx.size);
    let mut due = BinaryHeap::with_capacity(ctx.size);
    let now = Instant::now();
    for i in 0..ctx.size {
        monitors.push(Some(system_monitor(i, &ctx.url, &ctx.settings)?));
        due.push(Reverse((ctx.grid.first_tick(i, now), i)));
    }
    let (job_tx, job_rx) = mpsc::channel::<Job>(workers * 2);
    let job_rx = Arc::new(tokio::sync::Mutex::new(job_rx));
    let (back_tx, mut back_rx) = mpsc::unbounded_channel::<(usize, SystemMonitor)>();
    let mut pool = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let job_rx = Arc::clone(&job_rx);
        let back_tx = back_tx.clone();
        let ctx = Arc::clone(&ctx);
        pool.spawn(async move {
            loop {
                let job = job_rx.lock().await.recv().await;
                let Some(mut job) = job else { return };
                timed_round(&mut job.monitor, job.tick, &ctx.recorder, &*ctx.bus).await;
                if back_tx.send((job.index, job.monitor)).is_err() {
                    return;
                }
            }
        });
    }
    drop(back_tx);
    let startup = t0.elapsed();
    let stop = ctx.recorder.window.end;
    let period = ctx.grid.period;
    let mut skipped: u64 = 0;
    loop {
        // Take back every monitor whose round finished.
        while let Ok((i, m)) = back_rx.try_recv() {
            if let Some(slot) = monitors.get_mut(i) {
                *slot = Some(m);
            }
        }
        let Some(Reverse((tick, i))) = due.peek().copied() else {
            break;
        };
        if tick >= stop {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep_until(tick.into()) => {}
            back = back_rx.recv() => {
                if let Some((i, m)) = back {
                    if let Some(slot) = monitors.get_mut(i) {
                        *slot = Some(m);
                    }
                }
                continue;
            }
        }
        due.pop();
        let origin = ctx.grid.epoch + ctx.grid.phase(i);
        let after = (tick + period).max(Instant::now());
        due.push(Reverse((next_tick_at_or_after(origin, period, after), i)));
        match monitors.get_mut(i).and_then(Option::take) {
            Some(monitor) => {
                // Bounded: when every worker is busy and the channel full, the scheduler waits
                // here, and the wait shows up as lateness.
                if job_tx
                    .send(Job {
                        index: i,
                        tick,
                        monitor,
                    })
                    .await
                    .is_err()
                {
                    break;
                }
            }
            // Its previous round is still queued or running: skip this tick.
            None => skipped += 1,
        }
    }
    drop(job_tx);
    while pool.join_next().await.is_some() {}
    if skipped > 0 {
        ctx.note(format!(
            "queue: {skipped} ticks skipped (previous round still running)"
        ));
    }
    Ok(Started {
        running: ctx.size,
        startup,
        manager: None,
    })
}

/// Rounds of the manager's monitors as the wrapper saw them, for the lateness estimate.
#[derive(Debug, Default)]
pub(crate) struct ManagerRounds {
    /// Per counted round: lateness against the grid anchored at `t0` (an upper bound), µs.
    pub(crate) late_t0_us: Vec<u64>,
}

impl ManagerRounds {
    /// The upper bound's p99, ms (see [`TimedPlanner`]).
    pub(crate) fn upper_p99_ms(&mut self) -> f64 {
        let mut upper = std::mem::take(&mut self.late_t0_us);
        upper.sort_unstable();
        let p99 = upper
            .get((upper.len() * 99 / 100).min(upper.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0);
        p99 as f64 / 1000.0
    }
}

/// Every build the wrapped planner's monitors made: first builds (a monitor started) and rebuilds
/// (a monitor restarted: its config changed, or it died).
#[derive(Debug, Default)]
pub(crate) struct BuildLog {
    /// Monitors built at least once.
    pub(crate) first_builds: std::sync::atomic::AtomicUsize,
    /// When the latest first build happened.
    pub(crate) last_first_build: Mutex<Option<Instant>>,
    /// Builds after a monitor's first of the same spec, and builds of a spec replacing another
    /// of the same id: `(spec id, when)`.
    pub(crate) rebuilds: Mutex<Vec<(String, Instant)>>,
    /// Spec ids ever built (to tell a new spec of a known id, a restart, from a new monitor).
    seen: Mutex<std::collections::HashSet<String>>,
}

impl BuildLog {
    fn built(&self, id: &str, first_of_spec: bool) {
        let now = Instant::now();
        let known = !self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned());
        if first_of_spec && !known {
            self.first_builds
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *self
                .last_first_build
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(now);
        } else {
            self.rebuilds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((id.to_owned(), now));
        }
    }

    /// Monitors started so far.
    pub(crate) fn started(&self) -> usize {
        self.first_builds.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The manager's planner for systems, wrapped: each built monitor records when its rounds start.
///
/// The manager ticks a monitor at `epoch + phase + k × period`, where `phase` is
/// `fingerprint(&(component, id)) mod window` in milliseconds, `window = min(period,
/// max_phase_spread)` (the manager's own [`monitors_manager::phase`]), and
/// `epoch` is the instant the manager started that monitor, just before spawning its supervisor.
/// The manager does not expose `epoch`; it lies between `t0` (taken just before `run` is called)
/// and the monitor's first build (its supervisor's first step). Lateness is measured against the
/// grid anchored at the first build (a lower bound: the delay between the manager starting the
/// monitor and its task first running is not seen); the grid anchored at `t0` gives an upper bound,
/// reported in the run's notes.
pub(crate) struct TimedPlanner {
    inner: Arc<dyn Planner>,
    /// Every build, for start-up and restart times.
    pub(crate) builds: Arc<BuildLog>,
    recorder: Arc<Recorder>,
    rounds: Arc<Mutex<ManagerRounds>>,
    t0: Instant,
    period: Duration,
    window: Duration,
    /// Size the window per message as the manager does (see [`TimedPlanner::sized_like`]).
    sizing: Option<Sizing>,
}

/// The manager's window rule, replayed: the group's monitors once the message is applied.
struct Sizing {
    settings: ManagerSettings,
    group: PeriodGroup,
    /// Specs planned per config key (base chain, sub chain, type): a later message of a key
    /// replaces its count.
    counts: Mutex<std::collections::BTreeMap<String, usize>>,
}

impl TimedPlanner {
    /// Wrap `spec`'s build: its monitor records its rounds on the grid of phase window `window`.
    fn timed(&self, spec: &mut MonitorSpec, window: Duration) {
        let phase = monitors_manager::phase(&spec.component_name, &spec.id, window);
        let inner_build = Arc::clone(&spec.build);
        let recorder = Arc::clone(&self.recorder);
        let rounds = Arc::clone(&self.rounds);
        let period = self.period;
        let t0 = self.t0;
        let first_build = Arc::new(std::sync::OnceLock::new());
        let builds = Arc::clone(&self.builds);
        let id = spec.id.clone();
        let build: BuildFn = Arc::new(move || {
            let mut first = false;
            let anchor = *first_build.get_or_init(|| {
                first = true;
                Instant::now()
            });
            builds.built(&id, first);
            let inner = inner_build()?;
            Ok(Box::new(TimedMonitor {
                inner,
                origin: anchor + phase,
                origin_t0: t0 + phase,
                period,
                recorder: Arc::clone(&recorder),
                rounds: Arc::clone(&rounds),
            }) as Box<dyn Monitor>)
        });
        spec.build = build;
    }

    /// Compute each message's phase window as the manager does, instead of the fixed one:
    /// `settings.phase_window(group, n)` with `n` the specs of every key planned so far (the
    /// latest message of each key) once this message's are counted. Exact when this is the
    /// manager's only planner and every spec is of `group`.
    pub(crate) fn sized_like(mut self, settings: &ManagerSettings, group: PeriodGroup) -> Self {
        self.sizing = Some(Sizing {
            settings: settings.clone(),
            group,
            counts: Mutex::default(),
        });
        self
    }

    /// Wraps a `SystemsPlanner` using `settings`; `window` is the manager's phase window.
    pub(crate) fn new(
        settings: StrategySettings,
        recorder: Arc<Recorder>,
        rounds: Arc<Mutex<ManagerRounds>>,
        t0: Instant,
        grid: (Duration, Duration),
    ) -> Self {
        Self::wrap(
            Arc::new(SystemsPlanner::new(Arc::new(settings))),
            recorder,
            rounds,
            t0,
            grid,
        )
    }

    /// Wraps any planner; `window` is the manager's phase window.
    pub(crate) fn wrap(
        inner: Arc<dyn Planner>,
        recorder: Arc<Recorder>,
        rounds: Arc<Mutex<ManagerRounds>>,
        t0: Instant,
        (period, window): (Duration, Duration),
    ) -> Self {
        TimedPlanner {
            inner,
            builds: Arc::default(),
            recorder,
            rounds,
            t0,
            period,
            window,
            sizing: None,
        }
    }
}

impl Planner for TimedPlanner {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn accepts(&self, key: &ConfigKey) -> bool {
        self.inner.accepts(key)
    }

    fn monitorable_types(&self, key: &ConfigKey) -> Vec<MonitorableType> {
        self.inner.monitorable_types(key)
    }

    fn plan(&self, message: &ConfigMessage) -> Plan {
        let mut plan = self.inner.plan(message);
        let window = self.sizing.as_ref().map_or(self.window, |s| {
            let mut counts = s.counts.lock().unwrap_or_else(|e| e.into_inner());
            let key = format!(
                "{}.{}.{:?}",
                message.key.base_chain, message.key.sub_chain, message.key.config_type
            );
            counts.insert(key, plan.specs.len());
            s.settings.phase_window(s.group, counts.values().sum())
        });
        for spec in &mut plan.specs {
            self.timed(spec, window);
        }
        plan
    }

    /// Section-local when the planner it wraps is and the window is fixed (no
    /// [`TimedPlanner::sized_like`]): the manager then re-plans only the sections that changed.
    fn section_local(&self) -> Option<&dyn SectionPlanner> {
        if self.sizing.is_none() && self.inner.section_local().is_some() {
            Some(self)
        } else {
            None
        }
    }
}

impl SectionPlanner for TimedPlanner {
    fn plan_section(
        &self,
        key: &ConfigKey,
        section: &Section,
    ) -> Result<Option<MonitorSpec>, ConfigError> {
        let Some(inner) = self.inner.section_local() else {
            return Ok(None);
        };
        let mut spec = inner.plan_section(key, section)?;
        if let Some(spec) = &mut spec {
            self.timed(spec, self.window);
        }
        Ok(spec)
    }
}

/// A monitor that records when its rounds start.
struct TimedMonitor {
    inner: Box<dyn Monitor>,
    /// The grid origin anchored at the first build.
    origin: Instant,
    /// The grid origin anchored at `t0`.
    origin_t0: Instant,
    period: Duration,
    recorder: Arc<Recorder>,
    rounds: Arc<Mutex<ManagerRounds>>,
}

#[async_trait]
impl Monitor for TimedMonitor {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn round(&mut self) -> Result<Vec<Publication>, RoundError> {
        let start = Instant::now();
        // The nearest tick: the true origin may be a little earlier than the first build.
        let tick = nearest_tick(self.origin, self.period, start);
        let counted = self.recorder.round_started(tick, start);
        if counted {
            let tick_t0 = tick_at_or_before(self.origin_t0, self.period, start);
            let late = start.duration_since(tick_t0).as_micros();
            self.rounds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .late_t0_us
                .push(u64::try_from(late).unwrap_or(u64::MAX));
        }
        let outcome = self.inner.round().await;
        if counted {
            self.recorder.round_finished(&outcome);
        }
        outcome
    }
}

/// The `general.systems_config` message for `n` systems at `url`.
pub(crate) fn systems_config(n: usize, url: &str) -> serde_json::Value {
    let mut sections = serde_json::Map::new();
    for i in 0..n {
        let c = system_config(i, url);
        sections.insert(
            c.system_id.clone(),
            serde_json::json!({
                "id": c.system_id,
                "parent_id": c.parent_id,
                "name": c.system_name,
                "exporter_url": c.exporter_url,
                "monitor_system": "true",
            }),
        );
    }
    serde_json::Value::Object(sections)
}

// Owns the manager task: `run` is awaited after the window.
#[allow(clippy::disallowed_methods)]
async fn manager(ctx: Arc<RunCtx>) -> Result<Started, BenchError> {
    let period = ctx.grid.period;
    let settings = ManagerSettings {
        periods: [(PeriodGroup::System, period)].into_iter().collect(),
        queue_suffix: "_bench".to_owned(),
        shutdown_grace: Duration::from_secs(5),
        ..ManagerSettings::default()
    };
    let bus = &*ctx.bus;
    declare_bound_queue(
        bus,
        &settings.configs_queue(),
        CONFIG_EXCHANGE,
        &MANAGER_CONFIG_BINDINGS,
    )
    .await?;
    let rounds = Arc::new(Mutex::new(ManagerRounds::default()));
    let t0 = Instant::now();
    let planner = TimedPlanner::new(
        ctx.settings.clone(),
        Arc::clone(&ctx.recorder),
        Arc::clone(&rounds),
        t0,
        (period, settings.phase_window(PeriodGroup::System, ctx.size)),
    );
    let manager = MonitorsManager::new(Arc::clone(&ctx.bus), vec![Arc::new(planner)], settings);
    let status = manager.status_handle();
    let token = CancellationToken::new();
    let run = tokio::spawn(manager.run(token.clone()));
    publish_json(
        bus,
        CONFIG_EXCHANGE,
        "general.systems_config",
        &systems_config(ctx.size, &ctx.url),
    )
    .await?;
    // Startup: until every monitor is registered as running.
    let deadline = ctx.recorder.window.end;
    let mut startup = None;
    let mut running = 0;
    while Instant::now() < deadline {
        running = running.max(status.status().states.running);
        if startup.is_none() && running >= ctx.size {
            startup = Some(t0.elapsed());
        }
        let step = if startup.is_none() {
            Duration::from_millis(20)
        } else {
            Duration::from_millis(500)
        };
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(step.min(left)).await;
        if run.is_finished() {
            break;
        }
    }
    token.cancel();
    match run.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(BenchError::Setup(format!("the manager failed: {e}"))),
        Err(e) => return Err(BenchError::Setup(format!("the manager task failed: {e}"))),
    }
    // The upper bound (see `TimedPlanner`).
    let mut upper =
        std::mem::take(&mut rounds.lock().unwrap_or_else(|e| e.into_inner()).late_t0_us);
    upper.sort_unstable();
    let p99 = upper
        .get((upper.len() * 99 / 100).min(upper.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0);
    ctx.note(format!(
        "manager: lateness is measured from each monitor's first build (a lower bound); from the \
         manager's start (an upper bound, which adds the time the manager took to start every \
         monitor, {:.0} ms here) p99 reads {:.2} ms",
        startup.unwrap_or_default().as_secs_f64() * 1000.0,
        p99 as f64 / 1000.0
    ));
    let s = status.status();
    if startup.is_none() {
        ctx.note(format!(
            "manager: only {running} of {} monitors were running",
            ctx.size
        ));
    }
    Ok(Started {
        running,
        startup: startup.unwrap_or_default(),
        manager: Some(serde_json::json!({
            "rounds_ok": s.rounds_ok,
            "rounds_err": s.rounds_err,
            "rounds_timed_out": s.rounds_timed_out,
            "publishes_ok": s.publishes_ok,
            "publishes_failed": s.publishes_failed,
            "worker_heartbeats": s.worker_heartbeats,
            "deaths": s.deaths,
            "build_failures": s.build_failures,
            "config_errors": s.config_errors,
        })),
    })
}

async fn processes(ctx: Arc<RunCtx>) -> Result<Started, BenchError> {
    super::run::spawn_workers(ctx).await
}
