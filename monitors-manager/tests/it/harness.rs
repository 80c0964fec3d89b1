//! Test planners, fake strategies and a harness running a manager on a `MemoryBus` with paused time.
//!
//! A [`FakePlanner`] plans one fake monitor per enabled section of the config types it accepts.
//! Section fields drive the fake strategy:
//! * `name` (required: a missing name is a plan error), `monitor` (`true` = enabled, required);
//! * `parent_id` (chain id in monitorables, default `GENERAL`);
//! * `behaviour`: `ok` (default: one `system` publication per round), `two` (a `system` then a
//!   `github` publication), `err` (round returns `Err`), `panic` (every round panics), `panic_first`
//!   (the first build's rounds panic), `hang` (every round hangs), `hang_first` (the first build's
//!   rounds hang), `panic_build` (the build panics), `sleep` (round sleeps `round_secs` seconds), `fail_build` (build fails
//!   `fail_builds` times, default forever);
//! * `source_name`: the monitorable's source name (default `name`), not in the fingerprint;
//! * `spec_id`: the spec's id (default the section id: two sections may plan the same id);
//! * `plan`: `panic` makes the planner panic on the section;
//! * any other field only changes the fingerprint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use monitor_bus::{Bus, Consumer, MemoryBus};
use monitor_core::envelope::MonitorableSource;
use monitor_core::keys::{
    ConfigType, CONFIG_EXCHANGE, HEALTH_CHECK_EXCHANGE, MONITORABLE_EXCHANGE, MONITORS_EXCHANGES,
    RAW_DATA_EXCHANGE,
};
use monitor_core::plan::{
    fingerprint, plan_by_section, MonitorSpec, Monitorable, PeriodGroup, Plan, Planner,
    SectionPlanner,
};
use monitor_core::{
    ConfigError, ConfigKey, ConfigMessage, Monitor, MonitorableType, PanicError, Publication,
    RawDataKey, RoundError, Section,
};
use monitors_manager::{
    Backoff, ManagerError, ManagerSettings, ManagerStatus, MonitorsManager, StatusHandle,
};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What one fake monitor id went through (across all its builds).
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    pub(crate) builds: u32,
    pub(crate) rounds_started: u32,
    pub(crate) rounds_finished: u32,
    pub(crate) round_starts: Vec<Instant>,
}

#[derive(Debug, Default)]
struct ProbeInner {
    by_id: HashMap<String, Stats>,
    in_flight: usize,
    max_in_flight: usize,
}

/// Shared observations of every fake monitor of a test.
#[derive(Debug, Default, Clone)]
pub(crate) struct Probe(Arc<Mutex<ProbeInner>>);

impl Probe {
    fn with<R>(&self, f: impl FnOnce(&mut ProbeInner) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }

    pub(crate) fn stats(&self, id: &str) -> Stats {
        self.with(|p| p.by_id.get(id).cloned().unwrap_or_default())
    }

    pub(crate) fn max_in_flight(&self) -> usize {
        self.with(|p| p.max_in_flight)
    }

    fn built(&self, id: &str) -> u32 {
        self.with(|p| {
            let s = p.by_id.entry(id.to_owned()).or_default();
            s.builds += 1;
            s.builds
        })
    }

    fn round_started(&self, id: &str) -> InFlightGuard {
        self.with(|p| {
            let s = p.by_id.entry(id.to_owned()).or_default();
            s.rounds_started += 1;
            s.round_starts.push(Instant::now());
            p.in_flight += 1;
            p.max_in_flight = p.max_in_flight.max(p.in_flight);
        });
        InFlightGuard(self.clone())
    }

    fn round_finished(&self, id: &str) {
        self.with(|p| p.by_id.entry(id.to_owned()).or_default().rounds_finished += 1);
    }
}

/// Decrements the in-flight count however the round ends (returns, is cancelled, panics).
struct InFlightGuard(Probe);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.with(|p| p.in_flight -= 1);
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Behaviour {
    Ok,
    Two,
    Err,
    Panic,
    PanicFirst,
    Hang,
    HangFirst,
    Sleep(Duration),
    FailBuild(u32),
    PanicBuild,
}

struct FakeMonitor {
    name: String,
    id: String,
    behaviour: Behaviour,
    incarnation: u32,
    round: u64,
    probe: Probe,
}

#[async_trait]
impl Monitor for FakeMonitor {
    fn name(&self) -> &str {
        &self.name
    }

    async fn round(&mut self) -> Result<Vec<Publication>, RoundError> {
        let _guard = self.probe.round_started(&self.id);
        self.round += 1;
        let body = json!({"result": {"meta_data": {"monitor_name": self.name}, "data": {"id": self.id, "round": self.round}}});
        let out = match &self.behaviour {
            Behaviour::Ok | Behaviour::FailBuild(_) | Behaviour::PanicBuild => {
                Ok(vec![Publication::new(RawDataKey::System, body)])
            }
            Behaviour::Two => Ok(vec![
                Publication::new(RawDataKey::System, body.clone()),
                Publication::new(RawDataKey::Github, body),
            ]),
            Behaviour::Err => Err(RoundError::new("processing error")),
            Behaviour::Panic => panic!("fake strategy bug in {}", self.id),
            Behaviour::PanicFirst if self.incarnation == 1 => {
                panic!("fake strategy bug in {}", self.id)
            }
            Behaviour::Hang => std::future::pending().await,
            Behaviour::HangFirst if self.incarnation == 1 => std::future::pending().await,
            Behaviour::Sleep(d) => {
                tokio::time::sleep(*d).await;
                Ok(vec![Publication::new(RawDataKey::System, body)])
            }
            Behaviour::PanicFirst | Behaviour::HangFirst => {
                Ok(vec![Publication::new(RawDataKey::System, body)])
            }
        };
        self.probe.round_finished(&self.id);
        out
    }
}

/// Plans fake monitors for the config types it accepts. Section-local (see
/// `Planner::section_local`) unless built `whole`; a section with `plan` = `panic` makes it panic.
pub(crate) struct FakePlanner {
    pub(crate) name: &'static str,
    pub(crate) config_type: ConfigType,
    pub(crate) monitorable_type: MonitorableType,
    pub(crate) group: PeriodGroup,
    pub(crate) probe: Probe,
    /// Whether it says it is section-local (the plan is the same either way).
    pub(crate) section_local: bool,
}

impl FakePlanner {
    pub(crate) fn systems(probe: &Probe) -> Arc<dyn Planner> {
        Arc::new(Self::fake_systems(probe, true))
    }

    fn fake_systems(probe: &Probe, section_local: bool) -> FakePlanner {
        FakePlanner {
            name: "fake_systems",
            config_type: ConfigType::SystemsConfig,
            monitorable_type: MonitorableType::Systems,
            group: PeriodGroup::System,
            probe: probe.clone(),
            section_local,
        }
    }

    pub(crate) fn nodes(probe: &Probe) -> Arc<dyn Planner> {
        Arc::new(FakePlanner {
            name: "fake_nodes",
            config_type: ConfigType::NodesConfig,
            monitorable_type: MonitorableType::Nodes,
            group: PeriodGroup::Node,
            probe: probe.clone(),
            section_local: true,
        })
    }

    /// The systems planner that is not section-local: every message is read and planned whole.
    pub(crate) fn systems_whole(probe: &Probe) -> Arc<dyn Planner> {
        Arc::new(Self::fake_systems(probe, false))
    }
}

impl Planner for FakePlanner {
    fn name(&self) -> &'static str {
        self.name
    }

    fn accepts(&self, key: &ConfigKey) -> bool {
        key.config_type == self.config_type
    }

    fn monitorable_types(&self, _key: &ConfigKey) -> Vec<MonitorableType> {
        vec![self.monitorable_type]
    }

    fn plan(&self, message: &ConfigMessage) -> Plan {
        plan_by_section(self, message)
    }

    fn section_local(&self) -> Option<&dyn SectionPlanner> {
        if self.section_local {
            Some(self)
        } else {
            None
        }
    }
}

impl SectionPlanner for FakePlanner {
    fn plan_section(
        &self,
        key: &ConfigKey,
        section: &Section,
    ) -> Result<Option<MonitorSpec>, ConfigError> {
        let (name, enabled) = match (section.non_empty("name"), section.bool("monitor")) {
            (Ok(n), Ok(e)) => (n.to_owned(), e),
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        if !enabled {
            return Ok(None);
        }
        if section.opt_str("plan") == Some("panic") {
            panic!("fake planner bug in {}", section.id);
        }
        let behaviour = match section.opt_str("behaviour").unwrap_or("ok") {
            "ok" => Behaviour::Ok,
            "two" => Behaviour::Two,
            "err" => Behaviour::Err,
            "panic" => Behaviour::Panic,
            "panic_first" => Behaviour::PanicFirst,
            "hang" => Behaviour::Hang,
            "hang_first" => Behaviour::HangFirst,
            "sleep" => Behaviour::Sleep(Duration::from_secs(
                section
                    .opt_str("round_secs")
                    .unwrap_or("1")
                    .parse()
                    .unwrap(),
            )),
            "panic_build" => Behaviour::PanicBuild,
            "fail_build" => Behaviour::FailBuild(
                section
                    .opt_str("fail_builds")
                    .map_or(u32::MAX, |n| n.parse().unwrap()),
            ),
            other => return Err(section.bad("behaviour", format!("unknown `{other}`"))),
        };
        let component_name = format!("Fake monitor ({name})");
        let source = MonitorableSource {
            chain_id: section.opt_str("parent_id").unwrap_or("GENERAL").to_owned(),
            chain_name: key.sub_chain.clone(),
            source_id: section.id.clone(),
            source_name: section.opt_str("source_name").unwrap_or(&name).to_owned(),
        };
        let probe = self.probe.clone();
        let id = section.id.clone();
        let monitor_name = component_name.clone();
        Ok(Some(MonitorSpec {
            id: section.opt_str("spec_id").unwrap_or(&section.id).to_owned(),
            component_name,
            group: self.group,
            monitorables: vec![Monitorable {
                base_chain: key.base_chain.clone(),
                monitorable_type: self.monitorable_type,
                source,
            }],
            // `source_name` only renames the monitorable: not a restart.
            fingerprint: fingerprint(
                &section
                    .fields
                    .iter()
                    .filter(|(k, _)| k.as_str() != "source_name")
                    .collect::<Vec<_>>(),
            ),
            build: Arc::new(move || {
                let incarnation = probe.built(&id);
                if behaviour == Behaviour::PanicBuild {
                    panic!("fake constructor bug in {id}");
                }
                if let Behaviour::FailBuild(n) = behaviour {
                    if incarnation <= n {
                        return Err(PanicError::invalid_url("not a url"));
                    }
                }
                Ok(Box::new(FakeMonitor {
                    name: monitor_name.clone(),
                    id: id.clone(),
                    behaviour: behaviour.clone(),
                    incarnation,
                    round: 0,
                    probe: probe.clone(),
                }) as Box<dyn Monitor>)
            }),
        }))
    }
}

/// Settings for tests: short periods, no jitter.
pub(crate) fn test_settings() -> ManagerSettings {
    ManagerSettings {
        periods: [
            (PeriodGroup::System, Duration::from_secs(10)),
            (PeriodGroup::Node, Duration::from_secs(10)),
        ]
        .into_iter()
        .collect(),
        restart_backoff: Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            jitter: 0.0,
        },
        ..ManagerSettings::default()
    }
}

/// One message read from a capture queue.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub(crate) exchange: String,
    pub(crate) routing_key: String,
    pub(crate) body: Value,
}

/// A queue the test reads what the manager publishes from.
pub(crate) struct Capture {
    consumer: Consumer,
}

impl Capture {
    pub(crate) async fn new(bus: &MemoryBus, queue: &str, bindings: &[(&str, &str)]) -> Self {
        bus.declare_queue(queue).await.unwrap();
        for (exchange, key) in bindings {
            bus.declare_exchange(exchange).await.unwrap();
            bus.bind_queue(queue, exchange, key).await.unwrap();
        }
        Capture {
            consumer: bus.consume(queue, 0).await.unwrap(),
        }
    }

    /// Everything delivered so far (acked).
    pub(crate) async fn drain(&mut self) -> Vec<Captured> {
        let mut out = Vec::new();
        // Unconstrained: tokio's cooperative budget would make `next` pending after ~128
        // deliveries in one go, and the drain would stop early.
        while let Some(Some(d)) = tokio::task::unconstrained(self.consumer.next()).now_or_never() {
            let body = serde_json::from_slice(&d.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&d.body).into_owned()));
            out.push(Captured {
                exchange: d.exchange.clone(),
                routing_key: d.routing_key.clone(),
                body,
            });
            d.ack().await.unwrap();
        }
        out
    }
}

/// A manager running on a memory bus.
pub(crate) struct Harness {
    pub(crate) bus: MemoryBus,
    pub(crate) status: StatusHandle,
    pub(crate) shutdown: CancellationToken,
    pub(crate) task: Option<JoinHandle<Result<(), ManagerError>>>,
    pub(crate) settings: ManagerSettings,
    published_configs: u64,
}

impl Harness {
    pub(crate) async fn start(planners: Vec<Arc<dyn Planner>>, settings: ManagerSettings) -> Self {
        Self::start_on(MemoryBus::new(), planners, settings).await
    }

    pub(crate) async fn start_on(
        bus: MemoryBus,
        planners: Vec<Arc<dyn Planner>>,
        settings: ManagerSettings,
    ) -> Self {
        let manager_bus: Arc<dyn Bus> = Arc::new(bus.clone());
        Self::start_through(bus, manager_bus, planners, settings).await
    }

    /// A manager talking through `manager_bus` (a wrapper of `bus`: faults, gates), the test
    /// reading and publishing on `bus` directly.
    pub(crate) async fn start_through(
        bus: MemoryBus,
        manager_bus: Arc<dyn Bus>,
        planners: Vec<Arc<dyn Planner>>,
        settings: ManagerSettings,
    ) -> Self {
        for exchange in MONITORS_EXCHANGES {
            bus.declare_exchange(exchange).await.unwrap();
        }
        let manager = MonitorsManager::new(manager_bus, planners, settings.clone());
        let status = manager.status_handle();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(manager.run(shutdown.clone()));
        let queue = settings.configs_queue();
        let h = Harness {
            bus,
            status,
            shutdown,
            task: Some(task),
            settings,
            published_configs: 0,
        };
        let bus = h.bus.clone();
        h.wait_for("the manager to consume its queue", || {
            bus.queue_len(&queue).is_some() && bus.unacked_len(&queue).is_some()
        })
        .await;
        // Let the manager reach its consumers (declaring is synchronous on the memory bus).
        tokio::time::sleep(Duration::from_millis(1)).await;
        h
    }

    pub(crate) fn status(&self) -> ManagerStatus {
        self.status.status()
    }

    /// The main pool's bound on rounds in flight now.
    pub(crate) fn round_permits(&self) -> u64 {
        self.status.round_permits()
    }

    /// Publish a config message and wait until the manager handled it.
    pub(crate) async fn config(&mut self, routing_key: &str, body: &str) {
        self.config_bytes(routing_key, Bytes::from(body.to_owned()))
            .await;
    }

    /// Publish a config message of any bytes and wait until the manager handled and acked it.
    pub(crate) async fn config_bytes(&mut self, routing_key: &str, body: Bytes) {
        self.bus
            .publish(CONFIG_EXCHANGE, routing_key, body)
            .await
            .unwrap();
        self.published_configs += 1;
        let want = self.published_configs;
        let status = self.status.clone();
        self.wait_for("the config message to be handled", || {
            status.status().config_messages >= want
        })
        .await;
        // The ack follows the handling.
        let bus = self.bus.clone();
        let queue = self.settings.configs_queue();
        self.wait_for("the config message to be acked", || {
            bus.unacked_len(&queue) == Some(0) && bus.queue_len(&queue) == Some(0)
        })
        .await;
    }

    /// Send a ping and return the manager heartbeat that answers it.
    pub(crate) async fn ping(
        &self,
        capture: &mut Capture,
    ) -> monitor_core::envelope::ManagerHeartbeat {
        self.bus
            .publish(HEALTH_CHECK_EXCHANGE, "ping", Bytes::from_static(b"ping"))
            .await
            .unwrap();
        for _ in 0..1000 {
            for c in capture.drain().await {
                if c.routing_key == "heartbeat.manager" {
                    return serde_json::from_value(c.body).unwrap();
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("no manager heartbeat");
    }

    /// Advance (paused) time until `cond` holds, at most ten virtual minutes.
    pub(crate) async fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(600);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Let `d` of virtual time pass.
    pub(crate) async fn advance(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    /// Cancel and wait for `run` to return.
    pub(crate) async fn stop(&mut self) -> Result<(), ManagerError> {
        self.shutdown.cancel();
        self.task.take().unwrap().await.unwrap()
    }
}

/// The only monitor status with this component name.
pub(crate) fn monitor<'a>(
    status: &'a ManagerStatus,
    component_name: &str,
) -> &'a monitors_manager::TaskStatus {
    let found = status.monitors_named(component_name);
    assert_eq!(found.len(), 1, "{component_name}: {:#?}", status.monitors);
    found[0]
}

/// Component names of the running monitors, sorted.
pub(crate) fn names(status: &ManagerStatus) -> Vec<String> {
    let mut v: Vec<String> = status
        .monitors
        .iter()
        .map(|m| m.component_name.clone())
        .collect();
    v.sort();
    v
}

/// Declare a raw-data capture bound to every key.
pub(crate) async fn raw_capture(bus: &MemoryBus, queue: &str) -> Capture {
    Capture::new(bus, queue, &[(RAW_DATA_EXCHANGE, "#")]).await
}

/// Declare a monitorable capture bound to every key.
pub(crate) async fn monitorable_capture(bus: &MemoryBus, queue: &str) -> Capture {
    Capture::new(bus, queue, &[(MONITORABLE_EXCHANGE, "#")]).await
}

/// Declare a manager-heartbeat capture.
pub(crate) async fn manager_heartbeat_capture(bus: &MemoryBus, queue: &str) -> Capture {
    Capture::new(bus, queue, &[(HEALTH_CHECK_EXCHANGE, "heartbeat.manager")]).await
}
