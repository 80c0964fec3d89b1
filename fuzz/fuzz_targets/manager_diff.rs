//! Structure-aware: an arbitrary sequence of config messages (a routing key from a small set, a
//! body built from sections, or raw bytes) fed to a real `MonitorsManager` on a `MemoryBus`
//! (tokio current-thread runtime, paused time) with three fake planners (two section-local, so
//! the manager re-plans only the sections that changed, one planned whole). After each message,
//! checks the manager's running set against a model of the diff:
//!
//! * a body that does not parse changes nothing;
//! * otherwise, for every planner accepting the key, the monitors running for (the key's
//!   canonical routing key, planner) are exactly the plan's ids (the first of duplicate ids
//!   kept), so `{}` leaves none under that key;
//! * a monitor whose fingerprint did not change keeps running (same task key); one whose
//!   fingerprint changed is restarted (new task key);
//! * no panic, and `run` returns `Ok` at shutdown.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arbitrary::Arbitrary;
use async_trait::async_trait;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use monitor_bus::{Bus, MemoryBus};
use monitor_core::envelope::MonitorableSource;
use monitor_core::keys::{ConfigType, CONFIG_EXCHANGE, MONITORS_EXCHANGES};
use monitor_core::plan::{
    fingerprint, plan_by_section, MonitorSpec, Monitorable, PeriodGroup, Plan, Planner,
    SectionPlanner,
};
use monitor_core::{
    ConfigError, ConfigKey, ConfigMessage, Monitor, MonitorableType, PanicError, Publication,
    RoundError, Section,
};
use monitors_manager::{ManagerSettings, MonitorsManager, StatusHandle, TaskKey};
use tokio_util::sync::CancellationToken;

/// Routing keys the manager's queue is bound to; the third is the first's bucket.
const KEYS: [&str; 6] = [
    "general.systems_config",
    "chains.cosmos.hub.systems_config",
    "chains.general.general.systems_config",
    "chains.cosmos.hub.nodes_config",
    "chains.substrate.dot.nodes_config",
    "general.github_repos_config",
];

#[derive(Debug, Arbitrary)]
struct SectionInput {
    id: u8,
    name: Option<u8>,
    monitor: Option<u8>,
    extra: Option<u8>,
    fail_build: bool,
    not_a_string: bool,
}

#[derive(Debug, Arbitrary)]
enum Body {
    Sections(Vec<SectionInput>),
    Empty,
    OnlyDefault,
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Message {
    key: u8,
    body: Body,
}

fn render(body: &Body) -> Vec<u8> {
    match body {
        Body::Empty => b"{}".to_vec(),
        Body::OnlyDefault => br#"{"DEFAULT": {"monitor": "true"}}"#.to_vec(),
        Body::Raw(bytes) => bytes.clone(),
        Body::Sections(sections) => {
            let mut map = serde_json::Map::new();
            for s in sections.iter().take(12) {
                let id = format!("s{}", s.id % 8);
                let mut fields = serde_json::Map::new();
                fields.insert("id".into(), id.clone().into());
                if let Some(n) = s.name {
                    fields.insert("name".into(), format!("n{}", n % 4).into());
                }
                if let Some(m) = s.monitor {
                    let text = ["true", "false", "Yes", "no"][usize::from(m % 4)];
                    fields.insert("monitor".into(), text.into());
                }
                if let Some(e) = s.extra {
                    fields.insert("extra".into(), format!("{}", e % 3).into());
                }
                if s.fail_build {
                    fields.insert("fail".into(), "yes".into());
                }
                if s.not_a_string {
                    fields.insert("list".into(), serde_json::json!([1]));
                }
                map.insert(id, serde_json::Value::Object(fields));
            }
            serde_json::Value::Object(map).to_string().into_bytes()
        }
    }
}

struct FakeMonitor(String);

#[async_trait]
impl Monitor for FakeMonitor {
    fn name(&self) -> &str {
        &self.0
    }

    async fn round(&mut self) -> Result<Vec<Publication>, RoundError> {
        Ok(Vec::new())
    }
}

/// One monitor per section with `name` and `monitor` true; a section with field `dup` = the id
/// of another gives a duplicate id. Section-local when `local` (the manager then re-plans only
/// the sections that changed since the key's last message; the model is the same).
struct FakePlanner {
    name: &'static str,
    config_type: ConfigType,
    /// Accepts only keys of this base chain, if any.
    base_chain: Option<&'static str>,
    local: bool,
}

impl Planner for FakePlanner {
    fn name(&self) -> &'static str {
        self.name
    }

    fn accepts(&self, key: &ConfigKey) -> bool {
        key.config_type == self.config_type && self.base_chain.is_none_or(|b| key.base_chain == b)
    }

    fn monitorable_types(&self, _key: &ConfigKey) -> Vec<MonitorableType> {
        vec![MonitorableType::Systems]
    }

    fn plan(&self, message: &ConfigMessage) -> Plan {
        plan_by_section(self, message)
    }

    fn section_local(&self) -> Option<&dyn SectionPlanner> {
        if self.local {
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
        let component_name = format!("Fake ({name})");
        let fail = section.opt_str("fail").is_some();
        let monitor_name = component_name.clone();
        // Names collide across sections (n0..n3): the id is what keys a monitor; the name
        // gives duplicate ids when the planner keys by name (`nodes` does, as a planner
        // keyed by a non-unique field would).
        let id = if self.config_type == ConfigType::NodesConfig {
            name.clone()
        } else {
            section.id.clone()
        };
        Ok(Some(MonitorSpec {
            id,
            component_name,
            group: PeriodGroup::System,
            monitorables: vec![Monitorable {
                base_chain: key.base_chain.clone(),
                monitorable_type: MonitorableType::Systems,
                source: MonitorableSource {
                    chain_id: "GENERAL".to_owned(),
                    chain_name: key.sub_chain.clone(),
                    source_id: section.id.clone(),
                    source_name: name,
                },
            }],
            fingerprint: fingerprint(&section.fields),
            build: Arc::new(move || {
                if fail {
                    Err(PanicError::invalid_url("not a url"))
                } else {
                    Ok(Box::new(FakeMonitor(monitor_name.clone())) as Box<dyn Monitor>)
                }
            }),
        }))
    }
}

fn planners() -> Vec<Arc<dyn Planner>> {
    vec![
        Arc::new(FakePlanner {
            name: "systems",
            config_type: ConfigType::SystemsConfig,
            base_chain: None,
            local: true,
        }),
        // Duplicate ids (keyed by name): planned whole for Cosmos, section by section for
        // Substrate.
        Arc::new(FakePlanner {
            name: "nodes",
            config_type: ConfigType::NodesConfig,
            base_chain: Some("cosmos"),
            local: false,
        }),
        Arc::new(FakePlanner {
            name: "nodes_local",
            config_type: ConfigType::NodesConfig,
            base_chain: Some("substrate"),
            local: true,
        }),
    ]
}

/// The model: per label `<routing key>/<planner>/<id>`, the fingerprint.
type Model = BTreeMap<String, u64>;

fn apply_model(model: &mut Model, planners: &[Arc<dyn Planner>], key: &str, body: &[u8]) {
    let Ok(message) = ConfigMessage::parse(key, body) else {
        return;
    };
    let routing_key = message.key.routing_key();
    for planner in planners {
        if !planner.accepts(&message.key) {
            continue;
        }
        let prefix = format!("{routing_key}/{}/", planner.name());
        model.retain(|label, _| !label.starts_with(&prefix));
        for spec in planner.plan(&message).specs {
            model
                .entry(format!("{prefix}{}", spec.id))
                .or_insert(spec.fingerprint);
        }
        if message.is_removal() {
            assert!(!model.keys().any(|l| l.starts_with(&prefix)));
        }
    }
}

fn running(status: &StatusHandle) -> BTreeMap<String, TaskKey> {
    let monitors = status.status().monitors;
    let map: BTreeMap<String, TaskKey> =
        monitors.iter().map(|m| (m.label.clone(), m.key)).collect();
    assert_eq!(
        map.len(),
        monitors.len(),
        "two monitors share a label: {monitors:#?}"
    );
    map
}

async fn wait_handled(bus: &MemoryBus, status: &StatusHandle, queue: &str, n: u64) {
    for _ in 0..100_000 {
        if status.status().config_messages >= n
            && bus.unacked_len(queue) == Some(0)
            && bus.queue_len(queue) == Some(0)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("config message {n} was not handled");
}

async fn run(messages: Vec<Message>) {
    let bus = MemoryBus::new();
    for exchange in MONITORS_EXCHANGES {
        bus.declare_exchange(exchange).await.expect("exchange");
    }
    let settings = ManagerSettings::default();
    let queue = settings.configs_queue();
    let planners = planners();
    let manager = MonitorsManager::new(Arc::new(bus.clone()), planners.clone(), settings);
    let status = manager.status_handle();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(manager.run(shutdown.clone()));
    for _ in 0..100_000 {
        if bus.queue_len(&queue).is_some() && bus.unacked_len(&queue).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(1)).await;

    let mut model = Model::new();
    let mut before = running(&status);
    let mut fingerprints = Model::new();
    for (n, message) in messages.iter().take(16).enumerate() {
        let key = KEYS[usize::from(message.key) % KEYS.len()];
        let body = render(&message.body);
        bus.publish(CONFIG_EXCHANGE, key, Bytes::from(body.clone()))
            .await
            .expect("publish");
        wait_handled(&bus, &status, &queue, n as u64 + 1).await;
        apply_model(&mut model, &planners, key, &body);
        let after = running(&status);
        let labels: Vec<&String> = after.keys().collect();
        let expected: Vec<&String> = model.keys().collect();
        assert_eq!(
            labels, expected,
            "after message {n} ({key}): running != plans"
        );
        for (label, task) in &after {
            let (Some(old_task), Some(old_fp)) = (before.get(label), fingerprints.get(label))
            else {
                continue;
            };
            let same = model.get(label) == Some(old_fp);
            assert_eq!(
                old_task == task,
                same,
                "{label}: restarted iff its fingerprint changed (message {n})"
            );
        }
        before = after;
        fingerprints = model.clone();
    }
    shutdown.cancel();
    let result = task.await.expect("manager task");
    assert!(result.is_ok(), "run ended with {result:?}");
}

fuzz_target!(|messages: Vec<Message>| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(run(messages));
});
