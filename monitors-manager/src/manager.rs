//! The manager's main loop: config messages in, supervised monitors out, pings answered.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use monitor_bus::{declare_bound_queue, publish_json, Delivery};
use monitor_bus::{Bus, BusError, StallWatch, Watched};
use monitor_core::envelope::MonitorableSource;
use monitor_core::keys::{
    HEALTH_CHECK_EXCHANGE, MANAGER_CONFIG_BINDINGS, MONITORABLE_EXCHANGE, MONITORS_EXCHANGES,
    PING_ROUTING_KEY,
};
use monitor_core::plan::{fingerprint, MonitorSpec, Plan, Planner};
use monitor_core::RawConfig;
use monitor_core::{
    ConfigError, ConfigKey, ConfigMessage, MonitorableKey, MonitorableType, PeriodGroup,
};
use tokio::sync::Semaphore;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::inflight::RoundPermits;
use crate::liveness::{Liveness, TaskKey};
use crate::publisher::{self, Outbox};
use crate::schedule::phase;
use crate::settings::ManagerSettings;
use crate::status::{Counters, StatusHandle};
use crate::supervisor::{supervise, MonitorCtx, Shared};
use monitor_bus::ratelimit::LogLimiter;
use monitor_bus::warn_limited;

/// Lines per kind (or per config routing key) and minute of the manager's repeated warnings.
const WARN_BURST: u32 = 5;

/// Why [`MonitorsManager::run`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The settings cannot be used.
    #[error("invalid manager settings: {0}")]
    Settings(String),
    /// Two planners share a name (the name keys the running specs).
    #[error("two planners are named `{0}`")]
    DuplicatePlanner(String),
    /// Declaring the exchanges and queues or starting to consume failed.
    #[error("setting up the manager's exchanges and queues failed")]
    Setup(#[source] BusError),
    /// A queue the manager consumes stopped delivering (the bus was closed or the queue deleted).
    #[error("queue `{0}` stopped delivering")]
    ConsumerClosed(String),
}

/// The MonitorsManager: runs what its planners plan for the config messages it receives.
pub struct MonitorsManager {
    bus: Arc<dyn Bus>,
    planners: Vec<Arc<dyn Planner>>,
    settings: ManagerSettings,
    liveness: Arc<Liveness>,
    counters: Arc<Counters>,
    outbox: Arc<Outbox>,
    /// Stalls of the config and ping consumers (each restarted).
    consumer_stalls: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for MonitorsManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorsManager")
            .field(
                "planners",
                &self.planners.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// One running spec.
struct Running {
    spec: Arc<MonitorSpec>,
    ctx: Arc<MonitorCtx>,
}

/// Where a text of a message is: a range of its body (no copy), or owned (an id with escapes).
enum Text {
    In(usize, usize),
    Own(Box<[u8]>),
}

impl Text {
    /// `part` of `body`: its range when it is a subslice of `body`, else a copy.
    fn of(body: &[u8], part: &[u8]) -> Text {
        let start = (part.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
        match start.checked_add(part.len()) {
            Some(end) if end <= body.len() => Text::In(start, end),
            _ => Text::Own(part.into()),
        }
    }

    /// The bytes, `body` being the message's body.
    fn get<'a>(&'a self, body: &'a [u8]) -> &'a [u8] {
        match self {
            Text::In(start, end) => body.get(*start..*end).unwrap_or_default(),
            Text::Own(bytes) => bytes,
        }
    }
}

/// One section of a routing key's last message and what reading and planning it gave (see
/// [`SectionMemo`]).
struct MemoEntry {
    /// The section id.
    id: Text,
    /// The section's JSON text.
    raw: Text,
    /// Whether the outcome may be taken for the same text again (not when a planner panicked).
    remembered: bool,
    /// Whether `outcome` has errors to log (most have none: not looked at then).
    has_errors: bool,
    outcome: SectionOutcome,
}

/// A section read and planned.
enum SectionOutcome {
    /// Not an object of strings (a [`ConfigError::BadSection`]).
    Rejected(ConfigError),
    /// The plan of the section by each planner accepting the key (all section-local), in the
    /// registry's order.
    Planned(Box<[Result<Option<Arc<MonitorSpec>>, ConfigError>]>),
}

/// The sections of the last message of one routing key whose planners are all section-local
/// ([`Planner::section_local`]), in its order, with what reading and planning each gave. A
/// section of the next message whose id and JSON text are the same is neither read nor planned
/// again: its reading is a function of (routing key, id, text) ([`monitor_core::RawSection::parse`])
/// and its plan a function of (key, section) (the section-local contract), so the remembered
/// outcome is the one a full reading and planning would give. Sections absent from the message
/// are forgotten. The sections are matched in order (the usual message repeats the last one's
/// order), by id through an index only where the order differs.
struct SectionMemo {
    /// The run's generation of the last message applied through this memo.
    generation: u64,
    /// The last message's body (the [`Text`]s are ranges of it).
    body: bytes::Bytes,
    /// Its sections, in its order.
    entries: Vec<MemoEntry>,
    /// Per planner: the specs of the remembered outcomes by spec id.
    ids: Vec<HashMap<String, Vec<Arc<MonitorSpec>>>>,
    /// Per planner: how many ids of `ids` have several specs (duplicate spec ids).
    repeated: Vec<usize>,
}

impl SectionMemo {
    fn new(planners: usize) -> Self {
        SectionMemo {
            generation: 0,
            body: bytes::Bytes::new(),
            entries: Vec::new(),
            ids: (0..planners).map(|_| HashMap::new()).collect(),
            repeated: vec![0; planners],
        }
    }
}

/// Count `outcome`'s specs in a memo's `ids` and `repeated`.
fn memo_add(
    ids: &mut [HashMap<String, Vec<Arc<MonitorSpec>>>],
    repeated: &mut [usize],
    outcome: &SectionOutcome,
) {
    let SectionOutcome::Planned(plans) = outcome else {
        return;
    };
    for ((plan, ids), repeated) in plans.iter().zip(ids).zip(repeated) {
        if let Ok(Some(spec)) = plan {
            let specs = ids.entry(spec.id.clone()).or_default();
            specs.push(Arc::clone(spec));
            if specs.len() == 2 {
                *repeated += 1;
            }
        }
    }
}

/// Forget `outcome`'s specs in a memo's `ids` and `repeated`, each also pushed to `removed` (per
/// planner).
fn memo_remove(
    ids: &mut [HashMap<String, Vec<Arc<MonitorSpec>>>],
    repeated: &mut [usize],
    outcome: &SectionOutcome,
    removed: &mut [Vec<Arc<MonitorSpec>>],
) {
    let SectionOutcome::Planned(plans) = outcome else {
        return;
    };
    for (((plan, ids), repeated), removed) in plans.iter().zip(ids).zip(repeated).zip(removed) {
        let Ok(Some(spec)) = plan else {
            continue;
        };
        removed.push(Arc::clone(spec));
        let Some(specs) = ids.get_mut(&spec.id) else {
            continue;
        };
        if let Some(i) = specs.iter().position(|s| Arc::ptr_eq(s, spec)) {
            specs.swap_remove(i);
            if specs.len() == 1 {
                *repeated = repeated.saturating_sub(1);
            }
            if specs.is_empty() {
                ids.remove(&spec.id);
            }
        }
    }
}

/// Bucket of running specs: (config routing key, planner name).
type BucketKey = (String, &'static str);

/// A [`MonitorableMessage`](monitor_core::envelope::MonitorableMessage) serialised from borrowed sources (the same JSON; no copy of every
/// running monitor's entry per config message).
#[derive(serde::Serialize)]
struct BorrowedMonitorableMessage<'a> {
    manager_name: &'a str,
    sources: Vec<&'a MonitorableSource>,
}

enum Event {
    Shutdown,
    Config(Option<Delivery>),
    Ping(Option<Delivery>),
    /// A consumer stalled (logged and counted by its watch): consume its queue again.
    Stalled(&'static str),
    Reaped(Result<(tokio::task::Id, TaskKey), JoinError>),
}

/// The state of a running manager.
struct Run {
    /// Whether the config stream is declared (config state kept in RabbitMQ).
    config_stream: bool,
    /// The last config body per routing key (what a snapshot writes).
    latest_configs: BTreeMap<String, bytes::Bytes>,
    /// Config traffic since the last snapshot (bytes, with a per-message allowance).
    since_snapshot: u64,
    /// Configs applied from the stream at boot: the first live copy of each (same key, same body,
    /// also in the live queue) is not applied a second time.
    restored: BTreeMap<String, bytes::Bytes>,
    shared: Arc<Shared>,
    settings: ManagerSettings,
    manager_name: String,
    planners: Vec<Arc<dyn Planner>>,
    running: BTreeMap<BucketKey, HashMap<String, Running>>,
    /// Per routing key (as received) whose planners are all section-local: its last message's
    /// sections and their outcomes.
    section_memos: HashMap<String, SectionMemo>,
    /// Buckets whose running specs are exactly the diff of a [`SectionMemo`]'s outcomes: the
    /// routing key (as received) and memo generation of the last diff, cleared by any other diff.
    synced: HashMap<BucketKey, (String, u64)>,
    /// Counts the messages applied section by section (every [`SectionMemo`] generation).
    generation: u64,
    /// Running monitors per period group (every start counted, every stop uncounted).
    group_counts: BTreeMap<PeriodGroup, usize>,
    /// The last monitorables message body (and its count of sources) per (lowercase base chain,
    /// type): published again as it is while no diff changes what the running specs account for
    /// (cleared by any such change).
    monitorables_cache: HashMap<(String, MonitorableType), (bytes::Bytes, usize)>,
    supervisors: JoinSet<TaskKey>,
    supervisor_ids: HashMap<tokio::task::Id, TaskKey>,
    /// Graceful stop of every monitor (a child of the caller's token).
    tasks_shutdown: CancellationToken,
    /// The publisher task (one; owned here, awaited at shutdown).
    publisher: JoinSet<()>,
    /// Asks the publisher to flush the outbox and return.
    publisher_finish: CancellationToken,
    /// Stops the publisher at once.
    publisher_stop: CancellationToken,
}

impl MonitorsManager {
    /// A manager on `bus`, running what `planners` plan.
    pub fn new(
        bus: Arc<dyn Bus>,
        planners: Vec<Arc<dyn Planner>>,
        settings: ManagerSettings,
    ) -> Self {
        let outbox = Arc::new(Outbox::new(settings.outbox_bytes));
        MonitorsManager {
            bus,
            planners,
            settings,
            liveness: Arc::new(Liveness::new()),
            counters: Arc::new(Counters::default()),
            outbox,
            consumer_stalls: Arc::default(),
        }
    }

    /// A counter of the config and ping consumers' stalls (each logged and restarted), usable
    /// while the manager runs.
    pub fn consumer_stalls(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.consumer_stalls)
    }

    /// A handle reading this manager's status, usable while it runs.
    pub fn status_handle(&self) -> StatusHandle {
        StatusHandle {
            counters: Arc::clone(&self.counters),
            liveness: Arc::clone(&self.liveness),
            outbox: Arc::clone(&self.outbox),
        }
    }

    /// Run until `shutdown` is cancelled: then stop consuming, start no new round, let rounds in
    /// flight finish within the grace period (abort the rest), and return `Ok`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ManagerError> {
        self.settings.validate().map_err(ManagerError::Settings)?;
        let mut names = BTreeSet::new();
        for p in &self.planners {
            if !names.insert(p.name()) {
                return Err(ManagerError::DuplicatePlanner(p.name().to_owned()));
            }
        }
        let bus = &*self.bus;
        let configs_queue = self.settings.configs_queue();
        let heartbeat_queue = self.settings.heartbeat_queue();
        let set_up = async {
            for exchange in MONITORS_EXCHANGES {
                bus.declare_exchange(exchange).await?;
            }
            declare_bound_queue(
                bus,
                &configs_queue,
                monitor_core::keys::CONFIG_EXCHANGE,
                &MANAGER_CONFIG_BINDINGS,
            )
            .await?;
            declare_bound_queue(
                bus,
                &heartbeat_queue,
                HEALTH_CHECK_EXCHANGE,
                &[PING_ROUTING_KEY],
            )
            .await?;
            if self.settings.declare_monitorable_store_queue {
                declare_bound_queue(
                    bus,
                    monitor_core::keys::MONITORABLE_STORE_INPUT_QUEUE,
                    MONITORABLE_EXCHANGE,
                    &[monitor_core::keys::MONITORABLE_BINDING],
                )
                .await?;
            }
            let configs = bus
                .consume(&configs_queue, self.settings.config_prefetch)
                .await?;
            let pings = bus.consume(&heartbeat_queue, 0).await?;
            Ok::<_, BusError>((configs, pings))
        };
        // Declaring waits for the broker while it is away: shutdown must not wait for it.
        let Some(set_up) = shutdown.run_until_cancelled(set_up).await else {
            tracing::info!("monitors manager stopped before it was set up");
            return Ok(());
        };
        let (mut configs, mut pings) = set_up.map_err(ManagerError::Setup)?;
        let Some(config_stream) = shutdown
            .run_until_cancelled(declare_config_stream(bus))
            .await
        else {
            tracing::info!("monitors manager stopped before it was set up");
            return Ok(());
        };

        let manager_name = self.settings.effective_manager_name();
        tracing::info!(
            manager = %manager_name,
            configs_queue,
            heartbeat_queue,
            planners = ?names,
            max_in_flight = self.settings.max_in_flight,
            max_in_flight_cap = self.settings.max_in_flight_cap,
            round_budget = ?self.settings.round_budget,
            slow_in_flight = self.settings.slow_in_flight,
            outbox_bytes = self.settings.outbox_bytes,
            "monitors manager started"
        );
        let publisher_finish = CancellationToken::new();
        let publisher_stop = CancellationToken::new();
        let mut publisher = JoinSet::new();
        publisher.spawn(publisher::run(
            Arc::clone(&self.bus),
            Arc::clone(&self.outbox),
            Arc::clone(&self.counters),
            publisher_finish.clone(),
            publisher_stop.clone(),
        ));
        let mut run = Run {
            config_stream,
            latest_configs: BTreeMap::new(),
            since_snapshot: 0,
            restored: BTreeMap::new(),
            shared: Arc::new(Shared {
                bus: Arc::clone(&self.bus),
                permits: Arc::new(RoundPermits::new(
                    &self.settings,
                    Arc::clone(&self.counters.round_permits),
                )),
                slow_permits: Arc::new(Semaphore::new(self.settings.slow_in_flight)),
                liveness: Arc::clone(&self.liveness),
                counters: Arc::clone(&self.counters),
                outbox: Arc::clone(&self.outbox),
                limiter: LogLimiter::per_minute(WARN_BURST),
                hung: TaskTracker::new(),
            }),
            manager_name,
            settings: self.settings,
            planners: self.planners,
            running: BTreeMap::new(),
            section_memos: HashMap::new(),
            synced: HashMap::new(),
            generation: 0,
            group_counts: BTreeMap::new(),
            monitorables_cache: HashMap::new(),
            supervisors: JoinSet::new(),
            supervisor_ids: HashMap::new(),
            tasks_shutdown: shutdown.child_token(),
            publisher,
            publisher_finish,
            publisher_stop,
        };

        // Restore the config state from the stream before consuming live configs.
        if run.config_stream && shutdown.run_until_cancelled(run.restore()).await.is_none() {
            drop(configs);
            drop(pings);
            run.shutdown().await;
            tracing::info!("monitors manager stopped");
            return Ok(());
        }
        let config_watch = StallWatch::new(configs_queue.clone(), CONSUMER_STALL_AFTER)
            .with_counter(Arc::clone(&self.consumer_stalls));
        let ping_watch = StallWatch::new(heartbeat_queue.clone(), CONSUMER_STALL_AFTER)
            .with_counter(Arc::clone(&self.consumer_stalls));
        let result = loop {
            // Shutdown first, then configs before pings: a config never waits behind a stream of
            // pings (each ping's heartbeat can take a second or more while the outbox drains a
            // backlog after an outage).
            let event = tokio::select! {
                biased;
                () = shutdown.cancelled() => Event::Shutdown,
                watched = config_watch.next(&mut configs) => match watched {
                    Watched::Delivery(d) => Event::Config(Some(d)),
                    Watched::Ended => Event::Config(None),
                    Watched::Stalled => Event::Stalled("configs"),
                },
                watched = ping_watch.next(&mut pings) => match watched {
                    Watched::Delivery(d) => Event::Ping(Some(d)),
                    Watched::Ended => Event::Ping(None),
                    Watched::Stalled => Event::Stalled("pings"),
                },
                Some(joined) = run.supervisors.join_next_with_id(), if !run.supervisors.is_empty() => {
                    Event::Reaped(joined)
                }
            };
            match event {
                Event::Shutdown => break Ok(()),
                // Handling publishes (monitorables, the manager heartbeat), which waits for the
                // broker while it is away: shutdown must not wait for it. A config message cut
                // short is not acked and comes back to the next start.
                Event::Config(Some(delivery)) => {
                    if shutdown
                        .run_until_cancelled(run.handle_config(delivery))
                        .await
                        .is_none()
                    {
                        break Ok(());
                    }
                }
                Event::Config(None) => break Err(ManagerError::ConsumerClosed(configs_queue)),
                Event::Ping(Some(delivery)) => {
                    // Pings already waiting are acked and answered by this one heartbeat: after
                    // an outage the health checker's pings do not queue a heartbeat each.
                    let mut waiting = vec![delivery];
                    while let Ok(Some(d)) =
                        tokio::time::timeout(std::time::Duration::ZERO, pings.next()).await
                    {
                        waiting.push(d);
                    }
                    if shutdown
                        .run_until_cancelled(run.handle_pings(waiting))
                        .await
                        .is_none()
                    {
                        break Ok(());
                    }
                }
                Event::Ping(None) => break Err(ManagerError::ConsumerClosed(heartbeat_queue)),
                Event::Reaped(joined) => run.reaped(joined),
                Event::Stalled(which) => {
                    // Dropping the stalled consumer hands its unacked deliveries back.
                    let (queue, prefetch, slot) = if which == "pings" {
                        (&heartbeat_queue, 0, &mut pings)
                    } else {
                        (&configs_queue, run.settings.config_prefetch, &mut configs)
                    };
                    let again = bus.consume(queue, prefetch);
                    match shutdown.run_until_cancelled(again).await {
                        None => break Ok(()),
                        Some(Ok(c)) => *slot = c,
                        Some(Err(e)) => break Err(ManagerError::Setup(e)),
                    }
                }
            }
        };
        // Stop consuming: unacked config messages go back to the queue.
        drop(configs);
        drop(pings);
        run.shutdown().await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "monitors manager stopped");
        } else {
            tracing::info!("monitors manager stopped");
        }
        result
    }
}

/// The section a config error is about, if any.
fn section_of(error: &ConfigError) -> Option<&str> {
    match error {
        ConfigError::BadSection { section, .. }
        | ConfigError::MissingField { section, .. }
        | ConfigError::BadField { section, .. } => Some(section),
        _ => None,
    }
}

impl Run {
    async fn handle_config(&mut self, delivery: Delivery) {
        let routing_key = delivery.routing_key.clone();
        if self
            .restored
            .remove(&routing_key)
            .is_some_and(|restored| restored == delivery.body)
        {
            // Applied (and counted) from the config stream at boot: this is its copy in the live
            // queue.
            tracing::debug!(routing_key, "config already restored from the stream");
            if let Err(e) = delivery.ack().await {
                tracing::debug!(routing_key, error = %e, "acking a config message failed");
            }
            return;
        }
        Counters::bump(&self.shared.counters.config_messages);
        let size = delivery.body.len();
        let max = self.settings.max_config_bytes;
        if size <= max {
            let body = delivery.body.clone();
            self.note_config(&routing_key, &body).await;
        }
        if size > max {
            Counters::bump(&self.shared.counters.config_errors);
            warn_limited!(
                self.shared.limiter,
                &format!("config {routing_key}"),
                routing_key,
                size,
                max,
                "config message ignored: its body is larger than the limit"
            );
        } else {
            self.parse_and_apply(&routing_key, &delivery.body).await;
        }
        // Always acked, whatever happened (PANIC's rule: a bad config is never requeued).
        if let Err(e) = delivery.ack().await {
            warn_limited!(self.shared.limiter, "config ack", routing_key, error = %e,
                "acking a config message failed");
        }
    }

    /// Apply one config body: section by section when every planner accepting its key is
    /// section-local (only the sections that changed since the key's last message are read and
    /// planned), else (or when the body is not a plain object of sections) read and planned whole.
    /// Both give the same monitors, errors and monitorables.
    async fn parse_and_apply(&mut self, routing_key: &str, body: &bytes::Bytes) {
        if let Some(planners) = self.section_local_planners(routing_key) {
            if self.apply_sections(routing_key, body, &planners).await {
                return;
            }
        }
        match ConfigMessage::parse(routing_key, body) {
            Ok(message) => self.apply(&message).await,
            Err(e) => {
                Counters::bump(&self.shared.counters.config_errors);
                warn_limited!(self.shared.limiter, &format!("config {routing_key}"),
                    routing_key, error = %e, "config message ignored");
            }
        }
    }

    /// The planners accepting `routing_key`'s key when there are some and all are section-local.
    fn section_local_planners(&self, routing_key: &str) -> Option<Vec<Arc<dyn Planner>>> {
        let key = ConfigKey::parse(routing_key).ok()?;
        let accepting: Vec<Arc<dyn Planner>> = self
            .planners
            .iter()
            .filter(|p| p.accepts(&key))
            .cloned()
            .collect();
        let all_local = accepting.iter().all(|p| p.section_local().is_some());
        (!accepting.is_empty() && all_local).then_some(accepting)
    }

    /// [`Run::apply`] for a key whose `planners` (every planner accepting it) are section-local,
    /// with the key's [`SectionMemo`]: a section whose id and text are those of the key's last
    /// message takes its remembered outcome; the others are read and planned. The same logs,
    /// counters, diffs and monitorables as `apply`, in the same order. `false`, with nothing
    /// applied, when the body must be read whole ([`RawConfig`]'s contract).
    async fn apply_sections(
        &mut self,
        routing_key: &str,
        body: &bytes::Bytes,
        planners: &[Arc<dyn Planner>],
    ) -> bool {
        let Some(split) = RawConfig::split(routing_key, body) else {
            return false;
        };
        let key = &split.key;
        let canonical = key.routing_key();
        let np = planners.len();
        let mut memo = self
            .section_memos
            .remove(routing_key)
            .filter(|m| m.ids.len() == np)
            .unwrap_or_else(|| SectionMemo::new(np));
        self.generation += 1;
        let generation = self.generation;
        // Per planner: whether its bucket runs exactly the diff of the memo's last message, with
        // no duplicate spec id (then only what changed needs a look).
        let was_synced: Vec<bool> = planners
            .iter()
            .zip(&memo.repeated)
            .map(|(planner, repeated)| {
                *repeated == 0
                    && memo.generation > 0
                    && self
                        .synced
                        .get(&(canonical.clone(), planner.name()))
                        .is_some_and(|(rk, g)| rk == routing_key && *g == memo.generation)
            })
            .collect();
        let n = split.sections.len();
        let mut rejected: Vec<ConfigError> = Vec::new();
        let mut errors: Vec<Vec<ConfigError>> = planners.iter().map(|_| Vec::new()).collect();
        // Per planner: the specs of the sections read and planned now (message order), and those
        // of the sections changed or gone.
        let mut fresh: Vec<Vec<Arc<MonitorSpec>>> = planners.iter().map(|_| Vec::new()).collect();
        let mut removed: Vec<Vec<Arc<MonitorSpec>>> = planners.iter().map(|_| Vec::new()).collect();
        let mut panicked = vec![false; np];
        let log_of = |outcome: &SectionOutcome,
                      rejected: &mut Vec<ConfigError>,
                      errors: &mut [Vec<ConfigError>]| match outcome {
            SectionOutcome::Rejected(e) => rejected.push(e.clone()),
            SectionOutcome::Planned(plans) => {
                for (plan, errors) in plans.iter().zip(errors) {
                    if let Err(e) = plan {
                        errors.push(e.clone());
                    }
                }
            }
        };
        let old_body = std::mem::take(&mut memo.body);
        let mut old: Vec<Option<MemoEntry>> = std::mem::take(&mut memo.entries)
            .into_iter()
            .map(Some)
            .collect();
        // Old position by id, built at the first section out of the old order.
        let mut by_id: Option<HashMap<Vec<u8>, usize>> = None;
        let mut cursor = 0usize;
        let mut entries: Vec<MemoEntry> = Vec::with_capacity(n);
        for section in &split.sections {
            let id = section.id.as_bytes();
            let raw = section.raw.as_bytes();
            let same_id = |p: usize| {
                old.get(p)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| e.id.get(&old_body) == id)
            };
            let found = (cursor..cursor.saturating_add(3))
                .find(|&p| same_id(p))
                .or_else(|| {
                    by_id
                        .get_or_insert_with(|| {
                            old.iter()
                                .enumerate()
                                .filter_map(|(p, e)| {
                                    e.as_ref().map(|e| (e.id.get(&old_body).to_vec(), p))
                                })
                                .collect()
                        })
                        .get(id)
                        .copied()
                });
            let previous = found.and_then(|p| {
                cursor = p + 1;
                old.get_mut(p).and_then(Option::take)
            });
            let new_id = Text::of(body, id);
            match previous {
                Some(mut entry) if entry.remembered && entry.raw.get(&old_body) == raw => {
                    entry.id = new_id;
                    entry.raw = Text::of(body, raw);
                    if entry.has_errors {
                        log_of(&entry.outcome, &mut rejected, &mut errors);
                    }
                    entries.push(entry);
                    continue;
                }
                Some(entry) if entry.remembered => {
                    memo_remove(
                        &mut memo.ids,
                        &mut memo.repeated,
                        &entry.outcome,
                        &mut removed,
                    );
                }
                Some(_) | None => {}
            }
            let Some(read) = section.parse(routing_key) else {
                // Read whole instead; nothing remembered for this key (and no bucket synced).
                return false;
            };
            let mut remembered = true;
            let outcome = match read {
                Err(bad) => SectionOutcome::Rejected(bad),
                Ok(parsed) => SectionOutcome::Planned(
                    planners
                        .iter()
                        .zip(&mut panicked)
                        .map(|(planner, panicked)| {
                            // Every one is section-local (`section_local_planners`).
                            let Some(local) = planner.section_local() else {
                                return Ok(None);
                            };
                            // A planner is outside code: a panic in it must not take the
                            // manager down.
                            let plan = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                local.plan_section(key, &parsed)
                            }));
                            match plan {
                                Ok(plan) => plan.map(|spec| spec.map(Arc::new)),
                                Err(_) => {
                                    *panicked = true;
                                    remembered = false;
                                    Ok(None)
                                }
                            }
                        })
                        .collect(),
                ),
            };
            log_of(&outcome, &mut rejected, &mut errors);
            if let SectionOutcome::Planned(plans) = &outcome {
                for (plan, fresh) in plans.iter().zip(&mut fresh) {
                    if let Ok(Some(spec)) = plan {
                        fresh.push(Arc::clone(spec));
                    }
                }
            }
            if remembered {
                memo_add(&mut memo.ids, &mut memo.repeated, &outcome);
            }
            let has_errors = match &outcome {
                SectionOutcome::Rejected(_) => true,
                SectionOutcome::Planned(plans) => plans.iter().any(Result::is_err),
            };
            entries.push(MemoEntry {
                id: new_id,
                raw: Text::of(body, raw),
                remembered,
                has_errors,
                outcome,
            });
        }
        // The sections gone.
        for entry in old.into_iter().flatten() {
            if entry.remembered {
                memo_remove(
                    &mut memo.ids,
                    &mut memo.repeated,
                    &entry.outcome,
                    &mut removed,
                );
            }
        }
        memo.body = body.clone();
        memo.entries = entries;
        memo.generation = generation;
        // The whole plan of the planners whose bucket is not synced (or has duplicate ids). A
        // section not remembered (a planner panicked on it) is not counted in `ids`: the whole
        // plan for every planner then, and none synced after.
        let any_panicked = panicked.iter().any(|p| *p);
        let fast: Vec<bool> = was_synced
            .iter()
            .zip(&memo.repeated)
            .map(|(synced, repeated)| *synced && *repeated == 0 && !any_panicked)
            .collect();
        let mut whole: Vec<Option<Vec<Arc<MonitorSpec>>>> = Vec::with_capacity(np);
        for j in 0..np {
            if fast.get(j).copied().unwrap_or(false) || panicked.get(j).copied().unwrap_or(false) {
                whole.push(None);
                continue;
            }
            let mut specs = Vec::with_capacity(n);
            for entry in &memo.entries {
                if let SectionOutcome::Planned(plans) = &entry.outcome {
                    if let Some(Ok(Some(spec))) = plans.get(j) {
                        specs.push(Arc::clone(spec));
                    }
                }
            }
            whole.push(Some(specs));
        }
        let planned = fresh.iter().map(Vec::len).sum::<usize>();
        self.section_memos.insert(routing_key.to_owned(), memo);

        for error in &rejected {
            self.log_config_error(&canonical, None, error);
        }
        let mut types = BTreeSet::new();
        for (j, planner) in planners.iter().enumerate() {
            types.extend(planner.monitorable_types(key));
            let bucket: BucketKey = (canonical.clone(), planner.name());
            if panicked.get(j).copied().unwrap_or(false) {
                self.synced.remove(&bucket);
                Counters::bump(&self.shared.counters.config_errors);
                tracing::error!(
                    routing_key = canonical,
                    planner = planner.name(),
                    "planner panicked: its monitors for this key are left as they were"
                );
                continue;
            }
            for error in errors.get(j).into_iter().flatten() {
                self.log_config_error(&canonical, Some(planner.name()), error);
            }
            match whole.get_mut(j).and_then(Option::take) {
                Some(specs) => self.diff(&canonical, planner.name(), specs),
                None => {
                    let fresh = fresh.get_mut(j).map(std::mem::take).unwrap_or_default();
                    let removed = removed.get_mut(j).map(std::mem::take).unwrap_or_default();
                    self.diff_changed(&canonical, planner.name(), fresh, removed);
                }
            }
            if any_panicked {
                self.synced.remove(&bucket);
            } else {
                self.synced
                    .insert(bucket, (routing_key.to_owned(), generation));
            }
        }
        self.publish_monitorables(&key.base_chain, &types).await;
        tracing::debug!(
            routing_key,
            sections = n,
            planned,
            "config applied section by section (unchanged sections remembered)"
        );
        true
    }

    fn log_config_error(&self, routing_key: &str, planner: Option<&str>, error: &ConfigError) {
        Counters::bump(&self.shared.counters.config_errors);
        warn_limited!(
            self.shared.limiter,
            &format!("config {routing_key}"),
            routing_key,
            section = section_of(error).unwrap_or(""),
            planner = planner.unwrap_or(""),
            error = %error,
            "config section not applied"
        );
    }

    async fn apply(&mut self, message: &ConfigMessage) {
        let routing_key = message.key.routing_key();
        for rejected in &message.rejected {
            self.log_config_error(&routing_key, None, rejected);
        }
        let mut types = BTreeSet::new();
        let mut accepted = false;
        for planner in self.planners.clone() {
            if !planner.accepts(&message.key) {
                continue;
            }
            accepted = true;
            types.extend(planner.monitorable_types(&message.key));
            // A planner is outside code: a panic in it must not take the manager down.
            let plan: Plan =
                match std::panic::catch_unwind(AssertUnwindSafe(|| planner.plan(message))) {
                    Ok(plan) => plan,
                    Err(_) => {
                        Counters::bump(&self.shared.counters.config_errors);
                        tracing::error!(
                            routing_key,
                            planner = planner.name(),
                            "planner panicked: its monitors for this key are left as they were"
                        );
                        continue;
                    }
                };
            for error in &plan.errors {
                self.log_config_error(&routing_key, Some(planner.name()), error);
            }
            let specs = plan.specs.into_iter().map(Arc::new).collect();
            self.diff(&routing_key, planner.name(), specs);
        }
        if accepted {
            self.publish_monitorables(&message.key.base_chain, &types)
                .await;
        } else {
            tracing::debug!(routing_key, "no planner accepts this key");
        }
    }

    fn in_shard(&self, routing_key: &str, id: &str) -> bool {
        match self.settings.shard {
            None => true,
            Some(shard) => {
                fingerprint(&(routing_key, id)) % u64::from(shard.count) == u64::from(shard.index)
            }
        }
    }

    /// Apply one planner's plan for one key: start new ids, stop missing ones, restart changed ones.
    ///
    /// Linear in the plan: hash lookups by id, the running specs updated in place (an unchanged
    /// monitor only takes the new spec's monitorables and names; a spec that is the very one it
    /// runs, remembered from the key's last message, costs nothing more than its lookups).
    fn diff(&mut self, routing_key: &str, planner: &'static str, specs: Vec<Arc<MonitorSpec>>) {
        let bucket: BucketKey = (routing_key.to_owned(), planner);
        self.synced.remove(&bucket);
        let mut current = self.running.remove(&bucket).unwrap_or_default();
        // Whether what the running specs account for (their monitorables) changes.
        let mut monitorables_changed = false;
        // Which specs are wanted (in this shard, the first of an id), and the running monitors
        // that are not: stopped first.
        let mut keep = Vec::with_capacity(specs.len());
        {
            let mut wanted: HashSet<&str> = HashSet::with_capacity(specs.len());
            for spec in &specs {
                let kept = if !self.in_shard(routing_key, &spec.id) {
                    tracing::debug!(
                        routing_key,
                        planner,
                        id = spec.id,
                        "spec belongs to another shard"
                    );
                    false
                } else if !wanted.insert(spec.id.as_str()) {
                    warn_limited!(
                        self.shared.limiter,
                        &format!("config {routing_key}"),
                        routing_key,
                        planner,
                        id = spec.id,
                        "duplicate spec id, first kept"
                    );
                    false
                } else {
                    true
                };
                keep.push(kept);
            }
            let mut gone: Vec<String> = current
                .keys()
                .filter(|id| !wanted.contains(id.as_str()))
                .cloned()
                .collect();
            gone.sort_unstable();
            for id in gone {
                monitorables_changed |= self.stop_removed(&mut current, routing_key, planner, &id);
            }
        }
        let wanted = specs
            .into_iter()
            .zip(keep)
            .filter_map(|(spec, kept)| kept.then_some(spec));
        let wanted: Vec<Arc<MonitorSpec>> = wanted.collect();
        // `bucket` is out of `running`: the others are the rest. Sized at the first start.
        let mut windows: Option<BTreeMap<PeriodGroup, std::time::Duration>> = None;
        for spec in &wanted {
            monitorables_changed |=
                self.apply_wanted(&mut current, routing_key, planner, spec, |this| {
                    this.window(&mut windows, &wanted, spec.group)
                });
        }
        if !current.is_empty() {
            self.running.insert(bucket, current);
        }
        if monitorables_changed {
            self.monitorables_cache.clear();
        }
    }

    /// [`Run::diff`] of a bucket that runs exactly the diff of its key's last remembered plan,
    /// given only what changed: `fresh`, the specs of the sections read and planned now (message
    /// order), and `removed`, those of the sections changed or gone. Both plans have no duplicate
    /// spec id, so every other spec of the plan is the one running (nothing to do) and the result
    /// is the full diff's: the removed ids not planned again are stopped (sorted), then each
    /// fresh spec in this shard is started, restarted or kept as the full diff would. Costs
    /// lookups for what changed only.
    fn diff_changed(
        &mut self,
        routing_key: &str,
        planner: &'static str,
        fresh: Vec<Arc<MonitorSpec>>,
        removed: Vec<Arc<MonitorSpec>>,
    ) {
        let bucket: BucketKey = (routing_key.to_owned(), planner);
        let mut current = self.running.remove(&bucket).unwrap_or_default();
        let mut monitorables_changed = false;
        let mut wanted: Vec<Arc<MonitorSpec>> = Vec::with_capacity(fresh.len());
        for spec in fresh {
            if self.in_shard(routing_key, &spec.id) {
                wanted.push(spec);
            } else {
                tracing::debug!(
                    routing_key,
                    planner,
                    id = spec.id,
                    "spec belongs to another shard"
                );
            }
        }
        let planned: HashSet<&str> = wanted.iter().map(|s| s.id.as_str()).collect();
        let mut gone: Vec<&str> = removed
            .iter()
            .map(|s| s.id.as_str())
            .filter(|id| !planned.contains(id) && current.contains_key(*id))
            .collect();
        gone.sort_unstable();
        gone.dedup();
        // The groups once the plan is applied (what `phase_windows` counts): every running
        // monitor, less the stopped and replaced ones, plus the wanted ones.
        let mut counts = self.group_counts.clone();
        let replaced = wanted.iter().filter_map(|s| current.get(&s.id));
        let leaving = gone.iter().filter_map(|id| current.get(*id));
        for running in replaced.chain(leaving) {
            if let Some(c) = counts.get_mut(&running.spec.group) {
                *c = c.saturating_sub(1);
            }
        }
        for spec in &wanted {
            *counts.entry(spec.group).or_default() += 1;
        }
        let windows: BTreeMap<PeriodGroup, std::time::Duration> = counts
            .into_iter()
            .map(|(group, n)| (group, self.settings.phase_window(group, n)))
            .collect();
        let window = |group: PeriodGroup| windows.get(&group).copied().unwrap_or_default();
        for id in gone {
            monitorables_changed |= self.stop_removed(&mut current, routing_key, planner, id);
        }
        for spec in &wanted {
            monitorables_changed |=
                self.apply_wanted(&mut current, routing_key, planner, spec, |_| {
                    window(spec.group)
                });
        }
        if !current.is_empty() {
            self.running.insert(bucket, current);
        }
        if monitorables_changed {
            self.monitorables_cache.clear();
        }
        // The counts kept are the counts of what runs (checked in debug builds: the tests).
        debug_assert_eq!(self.group_counts, self.counted_groups());
    }

    /// Stops the running monitor `id` of `current`, no longer planned; whether there was one.
    fn stop_removed(
        &mut self,
        current: &mut HashMap<String, Running>,
        routing_key: &str,
        planner: &'static str,
        id: &str,
    ) -> bool {
        let Some(running) = current.remove(id) else {
            return false;
        };
        tracing::info!(
            routing_key,
            planner,
            id,
            component = running.spec.component_name,
            "monitor removed: stopping"
        );
        self.stop(running);
        true
    }

    /// One wanted spec of a diff against `current` (the bucket's running monitors): the very
    /// spec it runs (a remembered section) is left alone; one with the same fingerprint keeps
    /// running and takes the new spec's monitorables and names; one whose fingerprint changed is
    /// restarted, a new one started, each with the phase window `window` gives. Whether what the
    /// running specs account for (their monitorables) changed.
    fn apply_wanted(
        &mut self,
        current: &mut HashMap<String, Running>,
        routing_key: &str,
        planner: &'static str,
        spec: &Arc<MonitorSpec>,
        window: impl FnOnce(&Self) -> std::time::Duration,
    ) -> bool {
        match current.get_mut(&spec.id) {
            Some(running) if Arc::ptr_eq(&running.spec, spec) => false,
            Some(running) if spec.fingerprint == running.spec.fingerprint => {
                let changed = running.spec.monitorables != spec.monitorables;
                running.spec = Arc::clone(spec);
                changed
            }
            Some(_) => {
                tracing::info!(
                    routing_key,
                    planner,
                    id = spec.id,
                    component = spec.component_name,
                    "config changed: restarting monitor"
                );
                let mut changed = false;
                if let Some(old) = current.remove(&spec.id) {
                    changed = old.spec.monitorables != spec.monitorables;
                    self.stop(old);
                }
                let w = window(self);
                let started = self.start(routing_key, planner, Arc::clone(spec), w);
                current.insert(spec.id.clone(), started);
                changed
            }
            None => {
                tracing::info!(
                    routing_key,
                    planner,
                    id = spec.id,
                    component = spec.component_name,
                    "starting monitor"
                );
                let w = window(self);
                let started = self.start(routing_key, planner, Arc::clone(spec), w);
                current.insert(spec.id.clone(), started);
                true
            }
        }
    }

    /// Running monitors per period group, counted.
    fn counted_groups(&self) -> BTreeMap<PeriodGroup, usize> {
        let mut counts: BTreeMap<PeriodGroup, usize> = BTreeMap::new();
        for running in self.running.values().flat_map(HashMap::values) {
            *counts.entry(running.spec.group).or_default() += 1;
        }
        counts
    }

    /// The phase window of each period group once `wanted` joins what the other buckets run (the
    /// bucket being diffed is out of `running`): sized by the group's monitors in the other
    /// buckets plus the wanted ones (see `schedule`).
    fn phase_windows(
        &self,
        wanted: &[Arc<MonitorSpec>],
    ) -> BTreeMap<PeriodGroup, std::time::Duration> {
        let mut counts: BTreeMap<PeriodGroup, usize> = BTreeMap::new();
        let others = self
            .running
            .values()
            .flat_map(|specs| specs.values().map(|r| &r.spec));
        for spec in others.chain(wanted) {
            *counts.entry(spec.group).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(group, n)| (group, self.settings.phase_window(group, n)))
            .collect()
    }

    /// The phase window of `group` (see [`Run::phase_windows`]), the windows computed at the
    /// first call of a diff.
    fn window(
        &self,
        windows: &mut Option<BTreeMap<PeriodGroup, std::time::Duration>>,
        wanted: &[Arc<MonitorSpec>],
        group: PeriodGroup,
    ) -> std::time::Duration {
        let windows = windows.get_or_insert_with(|| self.phase_windows(wanted));
        // Every wanted spec's group is counted, so the lookup always finds it.
        windows.get(&group).copied().unwrap_or_default()
    }

    fn start(
        &mut self,
        routing_key: &str,
        planner: &'static str,
        spec: Arc<MonitorSpec>,
        window: std::time::Duration,
    ) -> Running {
        let label: Arc<str> = Arc::from(format!("{routing_key}/{planner}/{}", spec.id));
        let component_name: Arc<str> = Arc::from(spec.component_name.as_str());
        let period = self.settings.period(spec.group);
        let key =
            self.shared
                .liveness
                .register(Arc::clone(&component_name), Arc::clone(&label), period);
        let ctx = Arc::new(MonitorCtx {
            key,
            component_name,
            label,
            build: Arc::clone(&spec.build),
            period,
            epoch: Instant::now(),
            phase: phase(&spec.component_name, &spec.id, window),
            round_timeout: self.settings.round_timeout(spec.group),
            slow_after: self.settings.slow_after(spec.group),
            slow: std::sync::atomic::AtomicBool::new(false),
            hung_after: self.settings.hung_after(spec.group),
            backoff: self.settings.restart_backoff,
            shared: Arc::clone(&self.shared),
            shutdown: self.tasks_shutdown.clone(),
            kill: CancellationToken::new(),
        });
        self.spawn_supervisor(&ctx);
        *self.group_counts.entry(spec.group).or_default() += 1;
        Running { spec, ctx }
    }

    fn spawn_supervisor(&mut self, ctx: &Arc<MonitorCtx>) {
        let handle = self.supervisors.spawn(supervise(Arc::clone(ctx)));
        self.supervisor_ids.insert(handle.id(), ctx.key);
    }

    /// Stop a monitor at once; it is no longer reported anywhere.
    fn stop(&mut self, running: Running) {
        if let Some(c) = self.group_counts.get_mut(&running.spec.group) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                self.group_counts.remove(&running.spec.group);
            }
        }
        running.ctx.kill.cancel();
        self.shared.liveness.unregister(running.ctx.key);
    }

    fn find(&self, key: TaskKey) -> Option<&Running> {
        self.running
            .values()
            .flat_map(HashMap::values)
            .find(|r| r.ctx.key == key)
    }

    /// A supervisor ended: normal after a stop; a panicking supervisor (a bug) is respawned.
    fn reaped(&mut self, joined: Result<(tokio::task::Id, TaskKey), JoinError>) {
        match joined {
            Ok((id, _key)) => {
                self.supervisor_ids.remove(&id);
            }
            Err(e) => {
                let key = self.supervisor_ids.remove(&e.id());
                tracing::error!(error = %e, "a monitor supervisor failed");
                let ctx = key.and_then(|k| self.find(k)).map(|r| Arc::clone(&r.ctx));
                if let Some(ctx) = ctx {
                    if !ctx.kill.is_cancelled() && !self.tasks_shutdown.is_cancelled() {
                        self.shared.liveness.died(ctx.key);
                        self.spawn_supervisor(&ctx);
                    }
                }
            }
        }
    }

    async fn publish_monitorables(&mut self, base_chain: &str, types: &BTreeSet<MonitorableType>) {
        let base = base_chain.to_lowercase();
        for &monitorable_type in types {
            let key = MonitorableKey::new(&base, monitorable_type).routing_key();
            let cache_key = (base.clone(), monitorable_type);
            let (body, count) = match self.monitorables_cache.get(&cache_key) {
                Some(cached) => cached.clone(),
                None => match self.monitorables_body(&base, monitorable_type) {
                    Ok(fresh) => {
                        self.monitorables_cache.insert(cache_key, fresh.clone());
                        fresh
                    }
                    Err(e) => {
                        warn_limited!(
                            self.shared.limiter,
                            "monitorables publish failed",
                            routing_key = key,
                            error = %e,
                            "encoding monitorables failed"
                        );
                        continue;
                    }
                },
            };
            match self
                .shared
                .bus
                .publish(MONITORABLE_EXCHANGE, &key, body)
                .await
            {
                Ok(()) => tracing::debug!(routing_key = key, count, "monitorables published"),
                Err(BusError::Unroutable { .. }) => tracing::debug!(
                    routing_key = key,
                    count,
                    "monitorables unroutable (no store bound), dropped"
                ),
                Err(e) => warn_limited!(
                    self.shared.limiter,
                    "monitorables publish failed",
                    routing_key = key,
                    error = %e,
                    "publishing monitorables failed"
                ),
            }
        }
    }

    /// The monitorables message of (lowercase `base`, `monitorable_type`): every source of the
    /// running specs, sorted and deduplicated, and how many.
    fn monitorables_body(
        &self,
        base: &str,
        monitorable_type: MonitorableType,
    ) -> Result<(bytes::Bytes, usize), serde_json::Error> {
        // `to_lowercase` of a monitorable's base chain only when it is not ASCII.
        let same_base = |chain: &str| {
            if chain.is_ascii() {
                chain.eq_ignore_ascii_case(base)
            } else {
                chain.to_lowercase() == base
            }
        };
        let mut sources: Vec<&MonitorableSource> = self
            .running
            .values()
            .flat_map(HashMap::values)
            .flat_map(|r| r.spec.monitorables.iter())
            .filter(|m| m.monitorable_type == monitorable_type && same_base(&m.base_chain))
            .map(|m| &m.source)
            .collect();
        sources.sort_unstable();
        sources.dedup();
        let count = sources.len();
        let message = BorrowedMonitorableMessage {
            manager_name: &self.manager_name,
            sources,
        };
        Ok((bytes::Bytes::from(serde_json::to_vec(&message)?), count))
    }

    /// Count and ack the pings waiting, then answer them with one manager heartbeat.
    async fn handle_pings(&mut self, pings: Vec<Delivery>) {
        for delivery in pings {
            Counters::bump(&self.shared.counters.pings);
            if let Err(e) = delivery.ack().await {
                warn_limited!(self.shared.limiter, "ping ack", error = %e, "acking a ping failed");
            }
        }
        let heartbeat = self.shared.liveness.heartbeat(&self.manager_name);
        match heartbeat::publish_manager_heartbeat(&*self.shared.bus, &heartbeat).await {
            Ok(published) => tracing::debug!(
                running = heartbeat.running_processes.len(),
                dead = heartbeat.dead_processes.len(),
                ?published,
                "manager heartbeat sent"
            ),
            Err(e) => warn_limited!(
                self.shared.limiter,
                "manager heartbeat failed",
                error = %e,
                "publishing the manager heartbeat failed"
            ),
        }
    }

    /// Graceful stop of every monitor within the grace period, then abort the rest; then flush the
    /// outbox and wait (within what is left of the grace period) for hung incarnations aborted
    /// earlier, and report those that have not ended.
    async fn shutdown(&mut self) {
        self.tasks_shutdown.cancel();
        let grace = self.settings.shutdown_grace;
        let deadline = Instant::now() + grace;
        let supervisors = &mut self.supervisors;
        let drained = tokio::time::timeout_at(deadline, async {
            while supervisors.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                ?grace,
                remaining = self.supervisors.len(),
                "grace period over: aborting rounds still in flight"
            );
            for running in self.running.values().flat_map(HashMap::values) {
                running.ctx.kill.cancel();
            }
            self.supervisors.shutdown().await;
        }
        for running in self.running.values().flat_map(HashMap::values) {
            self.shared.liveness.unregister(running.ctx.key);
        }
        self.running.clear();
        self.group_counts.clear();
        self.synced.clear();
        self.monitorables_cache.clear();
        self.supervisor_ids.clear();
        // Rounds are over: flush what they left in the outbox within the grace period, then stop
        // the publisher (it counts and reports what it could not publish).
        self.publisher_finish.cancel();
        let publisher = &mut self.publisher;
        let flushed = tokio::time::timeout_at(deadline, async {
            while publisher.join_next().await.is_some() {}
        })
        .await;
        if flushed.is_err() {
            self.publisher_stop.cancel();
            while self.publisher.join_next().await.is_some() {}
        }
        let hung = &self.shared.hung;
        hung.close();
        if tokio::time::timeout_at(deadline, hung.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                still_hung = hung.len(),
                "hung incarnations aborted earlier have not ended (stuck in blocking code?); \
                 they end when that code returns"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Config state kept in RabbitMQ: the config stream.
// ---------------------------------------------------------------------------------------------

/// The log queue (RabbitMQ: a stream) bound to `config` with the manager's config keys, shared by
/// every manager and shard: each reads it from its start at boot and applies the last config per
/// routing key, so a restarted manager or a late shard runs the same monitors without anyone
/// republishing. See `docs/RELIABILITY.md` (config persistence).
pub(crate) const CONFIG_STREAM: &str = "monitors_manager_config_stream";

/// The config stream's retention: it keeps at least its newest 256 MiB (minus a 16 MiB segment),
/// with no age limit. A manager re-writes the compacted state (a snapshot, one entry per key) at
/// boot and after every [`SNAPSHOT_EVERY_BYTES`] of config traffic, so the newest complete
/// snapshot is always far inside the retained part: retention never removes the last config of
/// a key while a manager runs.
pub(crate) const CONFIG_STREAM_RETENTION: monitor_bus::LogRetention = monitor_bus::LogRetention {
    max_bytes: 256 * 1024 * 1024,
    segment_bytes: 16 * 1024 * 1024,
};

/// Config traffic (bodies, routing keys and a per-message allowance) after which the compacted
/// state is written to the stream again: a quarter of the retention.
pub(crate) const SNAPSHOT_EVERY_BYTES: u64 = CONFIG_STREAM_RETENTION.max_bytes / 4;

/// Per-message allowance of stream overhead when counting config traffic.
const STREAM_ENTRY_OVERHEAD: u64 = 256;

/// Reading the stream at boot ends when nothing more came for this long.
const RESTORE_IDLE: std::time::Duration = std::time::Duration::from_millis(500);

/// Bound of writing one snapshot entry.
const SNAPSHOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Prefetch of the stream reader.
const RESTORE_PREFETCH: u16 = 500;

/// The manager's config and ping consumers are restarted when stalled for this long.
const CONSUMER_STALL_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// One snapshot entry `{"snapshot_of": <routing key>, "body": <config body as text>}`: a copy of
/// the last config of a key, written by a manager to the stream only (default exchange), never to
/// `config`.
fn snapshot_entry(routing_key: &str, body: &str) -> serde_json::Value {
    serde_json::json!({ "snapshot_of": routing_key, "body": body })
}

/// The (routing key, body) of a snapshot entry.
fn parse_snapshot_entry(body: &[u8]) -> Result<(String, String), String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    match (v.get("snapshot_of"), v.get("body")) {
        (Some(serde_json::Value::String(k)), Some(serde_json::Value::String(b))) => {
            Ok((k.clone(), b.clone()))
        }
        _ => Err("not a snapshot entry".to_owned()),
    }
}

/// What the stream says the last config of each key is: per key, the last original message (as
/// published on `config`) if one is still retained, else the last snapshot entry. Originals win
/// over snapshots because a snapshot may race with a newer publish (a snapshot written just after
/// a publish the writer had not seen yet); retention removes the oldest first, so when no
/// original of a key is left, the newest snapshot has the newest value.
#[derive(Debug, Default)]
struct Compacted {
    originals: BTreeMap<String, (u64, bytes::Bytes)>,
    snapshots: BTreeMap<String, (u64, bytes::Bytes)>,
    seq: u64,
    read: u64,
}

impl Compacted {
    fn take(&mut self, delivery: &Delivery) {
        self.seq += 1;
        self.read += 1;
        if delivery.routing_key == CONFIG_STREAM {
            match parse_snapshot_entry(&delivery.body) {
                Ok((key, body)) => {
                    self.snapshots
                        .insert(key, (self.seq, bytes::Bytes::from(body.into_bytes())));
                }
                Err(e) => tracing::warn!(error = %e, "config stream: snapshot entry ignored"),
            }
        } else {
            self.originals.insert(
                delivery.routing_key.clone(),
                (self.seq, delivery.body.clone()),
            );
        }
    }

    /// The last config per key, in stream order.
    fn into_latest(self) -> Vec<(String, bytes::Bytes)> {
        let mut latest: BTreeMap<String, (u64, bytes::Bytes)> = self.snapshots;
        latest.extend(self.originals);
        let mut v: Vec<(u64, String, bytes::Bytes)> = latest
            .into_iter()
            .map(|(k, (seq, body))| (seq, k, body))
            .collect();
        v.sort_by_key(|(seq, _, _)| *seq);
        v.into_iter().map(|(_, k, b)| (k, b)).collect()
    }
}

/// Declare the config stream bound to `config` (`false`, logged, when the bus cannot: the manager
/// then runs as before, with no state kept).
async fn declare_config_stream(bus: &dyn Bus) -> bool {
    let declared = async {
        bus.declare_log_queue(CONFIG_STREAM, CONFIG_STREAM_RETENTION)
            .await?;
        for key in MANAGER_CONFIG_BINDINGS {
            bus.bind_queue(CONFIG_STREAM, monitor_core::keys::CONFIG_EXCHANGE, key)
                .await?;
        }
        Ok::<_, BusError>(())
    };
    match declared.await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(stream = CONFIG_STREAM, error = %e,
                "config stream unavailable: configs are not kept across restarts");
            false
        }
    }
}

impl Run {
    /// Read the config stream from its start and apply the last config of each key; log how many
    /// configs and monitors were restored; write the compacted state back (a snapshot).
    async fn restore(&mut self) {
        let bus = Arc::clone(&self.shared.bus);
        let mut reader = match bus.consume_log(CONFIG_STREAM, RESTORE_PREFETCH).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(stream = CONFIG_STREAM, error = %e,
                    "config stream cannot be read: nothing restored");
                return;
            }
        };
        let mut compacted = Compacted::default();
        while let Ok(Some(d)) = tokio::time::timeout(RESTORE_IDLE, reader.next()).await {
            compacted.take(&d);
            if let Err(e) = d.ack().await {
                tracing::debug!(error = %e, "config stream: ack failed");
            }
        }
        drop(reader);
        let read = compacted.read;
        let latest = compacted.into_latest();
        let configs = latest.len();
        for (routing_key, body) in &latest {
            if body.len() > self.settings.max_config_bytes {
                tracing::warn!(
                    routing_key,
                    size = body.len(),
                    "restored config ignored: too large"
                );
                continue;
            }
            // Counted as a config message (and its errors as errors) of this process.
            Counters::bump(&self.shared.counters.config_messages);
            self.parse_and_apply(routing_key, body).await;
            self.latest_configs
                .insert(routing_key.clone(), body.clone());
            self.restored.insert(routing_key.clone(), body.clone());
        }

        let monitors: usize = self.running.values().map(HashMap::len).sum();
        tracing::info!(
            stream = CONFIG_STREAM,
            messages_read = read,
            configs,
            monitors,
            "config state restored: {configs} configs, {monitors} monitors"
        );
        self.write_snapshot().await;
    }

    /// Count one live config message towards the next snapshot; keep it as the last of its key.
    async fn note_config(&mut self, routing_key: &str, body: &bytes::Bytes) {
        if !self.config_stream {
            return;
        }
        self.latest_configs
            .insert(routing_key.to_owned(), body.clone());
        self.since_snapshot += body.len() as u64 + routing_key.len() as u64 + STREAM_ENTRY_OVERHEAD;
        if self.since_snapshot >= SNAPSHOT_EVERY_BYTES {
            self.write_snapshot().await;
        }
    }

    /// Write the last config of every key to the stream (default exchange: the stream only).
    async fn write_snapshot(&mut self) {
        if !self.config_stream || self.latest_configs.is_empty() {
            self.since_snapshot = 0;
            return;
        }
        let mut written = 0usize;
        for (key, body) in &self.latest_configs {
            let Ok(text) = std::str::from_utf8(body) else {
                continue;
            };
            let entry = snapshot_entry(key, text);
            // Bounded: while the broker is away the snapshot waits for the next config message.
            let publish = publish_json(&*self.shared.bus, "", CONFIG_STREAM, &entry);
            match tokio::time::timeout(SNAPSHOT_TIMEOUT, publish).await {
                Ok(Ok(())) => written += 1,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "config stream: snapshot not written; retried later");
                    self.since_snapshot = SNAPSHOT_EVERY_BYTES;
                    return;
                }
                Err(_) => {
                    tracing::warn!("config stream: snapshot timed out; retried later");
                    self.since_snapshot = SNAPSHOT_EVERY_BYTES;
                    return;
                }
            }
        }
        self.since_snapshot = 0;
        tracing::debug!(entries = written, "config stream: snapshot written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_core::envelope::MonitorableMessage;

    #[test]
    fn borrowed_monitorable_message_is_the_same_json() {
        let source = |i: u32| MonitorableSource {
            chain_id: format!("chain_{i}"),
            chain_name: "general".to_owned(),
            source_id: format!("id \"{i}\""),
            source_name: format!("name é {i}"),
        };
        let owned = MonitorableMessage {
            manager_name: "Manager".to_owned(),
            sources: (0..3).map(source).collect(),
        };
        let borrowed = BorrowedMonitorableMessage {
            manager_name: &owned.manager_name,
            sources: owned.sources.iter().collect(),
        };
        assert_eq!(
            serde_json::to_string(&borrowed).unwrap(),
            serde_json::to_string(&owned).unwrap()
        );
        let empty = BorrowedMonitorableMessage {
            manager_name: "m",
            sources: Vec::new(),
        };
        assert_eq!(
            serde_json::to_string(&empty).unwrap(),
            r#"{"manager_name":"m","sources":[]}"#
        );
    }
}
