//! The manager's main loop: config messages in, supervised monitors out, pings answered.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use monitor_bus::{declare_bound_queue, publish_json, Delivery};
use monitor_bus::{Bus, BusError};
use monitor_core::envelope::{MonitorableMessage, MonitorableSource};
use monitor_core::keys::{
    HEALTH_CHECK_EXCHANGE, MANAGER_CONFIG_BINDINGS, MONITORABLE_EXCHANGE, MONITORS_EXCHANGES,
    PING_ROUTING_KEY,
};
use monitor_core::plan::{fingerprint, MonitorSpec, Plan, Planner};
use monitor_core::{ConfigError, ConfigMessage, MonitorableKey, MonitorableType};
use tokio::sync::Semaphore;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::liveness::{Liveness, TaskKey};
use crate::publisher::{self, Outbox};
use crate::ratelimit::{warn_limited, LogLimiter};
use crate::schedule::phase;
use crate::settings::ManagerSettings;
use crate::status::{Counters, StatusHandle};
use crate::supervisor::{supervise, MonitorCtx, Shared};

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
    spec: MonitorSpec,
    ctx: Arc<MonitorCtx>,
}

/// Bucket of running specs: (config routing key, planner name).
type BucketKey = (String, &'static str);

enum Event {
    Shutdown,
    Config(Option<Delivery>),
    Ping(Option<Delivery>),
    Reaped(Result<(tokio::task::Id, TaskKey), JoinError>),
}

/// The state of a running manager.
struct Run {
    shared: Arc<Shared>,
    settings: ManagerSettings,
    manager_name: String,
    planners: Vec<Arc<dyn Planner>>,
    running: BTreeMap<BucketKey, BTreeMap<String, Running>>,
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
        }
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

        let manager_name = self.settings.effective_manager_name();
        tracing::info!(
            manager = %manager_name,
            configs_queue,
            heartbeat_queue,
            planners = ?names,
            max_in_flight = self.settings.max_in_flight,
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
            shared: Arc::new(Shared {
                bus: Arc::clone(&self.bus),
                permits: Arc::new(Semaphore::new(self.settings.max_in_flight)),
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
            supervisors: JoinSet::new(),
            supervisor_ids: HashMap::new(),
            tasks_shutdown: shutdown.child_token(),
            publisher,
            publisher_finish,
            publisher_stop,
        };

        let result = loop {
            let event = tokio::select! {
                biased;
                () = shutdown.cancelled() => Event::Shutdown,
                delivery = pings.next() => Event::Ping(delivery),
                delivery = configs.next() => Event::Config(delivery),
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
                    if shutdown
                        .run_until_cancelled(run.handle_ping(delivery))
                        .await
                        .is_none()
                    {
                        break Ok(());
                    }
                }
                Event::Ping(None) => break Err(ManagerError::ConsumerClosed(heartbeat_queue)),
                Event::Reaped(joined) => run.reaped(joined),
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
        Counters::bump(&self.shared.counters.config_messages);
        let routing_key = delivery.routing_key.clone();
        let size = delivery.body.len();
        let max = self.settings.max_config_bytes;
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

    async fn parse_and_apply(&mut self, routing_key: &str, body: &[u8]) {
        match ConfigMessage::parse(routing_key, body) {
            Ok(message) => self.apply(&message).await,
            Err(e) => {
                Counters::bump(&self.shared.counters.config_errors);
                warn_limited!(self.shared.limiter, &format!("config {routing_key}"),
                    routing_key, error = %e, "config message ignored");
            }
        }
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
            self.diff(&routing_key, planner.name(), plan.specs);
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
    fn diff(&mut self, routing_key: &str, planner: &'static str, specs: Vec<MonitorSpec>) {
        let mut wanted: BTreeMap<String, MonitorSpec> = BTreeMap::new();
        for spec in specs {
            if !self.in_shard(routing_key, &spec.id) {
                tracing::debug!(
                    routing_key,
                    planner,
                    id = spec.id,
                    "spec belongs to another shard"
                );
                continue;
            }
            if wanted.contains_key(&spec.id) {
                warn_limited!(
                    self.shared.limiter,
                    &format!("config {routing_key}"),
                    routing_key,
                    planner,
                    id = spec.id,
                    "duplicate spec id, first kept"
                );
                continue;
            }
            wanted.insert(spec.id.clone(), spec);
        }
        let bucket: BucketKey = (routing_key.to_owned(), planner);
        let current = self.running.remove(&bucket).unwrap_or_default();
        let mut next = BTreeMap::new();
        for (id, mut running) in current {
            match wanted.remove(&id) {
                Some(spec) if spec.fingerprint == running.spec.fingerprint => {
                    // Unchanged: keep it running (take the new spec's monitorables and names).
                    running.spec = spec;
                    next.insert(id, running);
                }
                Some(spec) => {
                    tracing::info!(
                        routing_key,
                        planner,
                        id,
                        component = spec.component_name,
                        "config changed: restarting monitor"
                    );
                    self.stop(running);
                    let started = self.start(routing_key, planner, spec);
                    next.insert(id, started);
                }
                None => {
                    tracing::info!(
                        routing_key,
                        planner,
                        id,
                        component = running.spec.component_name,
                        "monitor removed: stopping"
                    );
                    self.stop(running);
                }
            }
        }
        for (id, spec) in wanted {
            tracing::info!(
                routing_key,
                planner,
                id,
                component = spec.component_name,
                "starting monitor"
            );
            let started = self.start(routing_key, planner, spec);
            next.insert(id, started);
        }
        if !next.is_empty() {
            self.running.insert(bucket, next);
        }
    }

    fn start(&mut self, routing_key: &str, planner: &'static str, spec: MonitorSpec) -> Running {
        let label = format!("{routing_key}/{planner}/{}", spec.id);
        let key = self.shared.liveness.register(&spec.component_name, &label);
        let period = self.settings.period(spec.group);
        let ctx = Arc::new(MonitorCtx {
            key,
            component_name: spec.component_name.clone(),
            component_name_shared: Arc::from(spec.component_name.as_str()),
            label,
            build: Arc::clone(&spec.build),
            period,
            epoch: Instant::now(),
            phase: phase(
                &spec.component_name,
                &spec.id,
                self.settings.phase_window(spec.group),
            ),
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
        Running { spec, ctx }
    }

    fn spawn_supervisor(&mut self, ctx: &Arc<MonitorCtx>) {
        let handle = self.supervisors.spawn(supervise(Arc::clone(ctx)));
        self.supervisor_ids.insert(handle.id(), ctx.key);
    }

    /// Stop a monitor at once; it is no longer reported anywhere.
    fn stop(&mut self, running: Running) {
        running.ctx.kill.cancel();
        self.shared.liveness.unregister(running.ctx.key);
    }

    fn find(&self, key: TaskKey) -> Option<&Running> {
        self.running
            .values()
            .flat_map(BTreeMap::values)
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

    async fn publish_monitorables(&self, base_chain: &str, types: &BTreeSet<MonitorableType>) {
        let base = base_chain.to_lowercase();
        for &monitorable_type in types {
            let mut sources: Vec<MonitorableSource> = self
                .running
                .values()
                .flat_map(BTreeMap::values)
                .flat_map(|r| r.spec.monitorables.iter())
                .filter(|m| {
                    m.monitorable_type == monitorable_type && m.base_chain.to_lowercase() == base
                })
                .map(|m| m.source.clone())
                .collect();
            sources.sort();
            sources.dedup();
            let key = MonitorableKey::new(&base, monitorable_type).routing_key();
            let count = sources.len();
            let message = MonitorableMessage {
                manager_name: self.manager_name.clone(),
                sources,
            };
            match publish_json(&*self.shared.bus, MONITORABLE_EXCHANGE, &key, &message).await {
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

    async fn handle_ping(&mut self, delivery: Delivery) {
        Counters::bump(&self.shared.counters.pings);
        if let Err(e) = delivery.ack().await {
            warn_limited!(self.shared.limiter, "ping ack", error = %e, "acking a ping failed");
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
            for running in self.running.values().flat_map(BTreeMap::values) {
                running.ctx.kill.cancel();
            }
            self.supervisors.shutdown().await;
        }
        for running in self.running.values().flat_map(BTreeMap::values) {
            self.shared.liveness.unregister(running.ctx.key);
        }
        self.running.clear();
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
