//! What the test modules share: the fixtures, a round's single body, envelope checks and the
//! consumer helper of the tests that run the real manager.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use monitor_bus::{Bus, Consumer, MemoryBus};
use monitor_core::envelope::now_unix;
use monitor_core::keys::{CONFIG_EXCHANGE, MONITORS_EXCHANGES};
use monitor_core::{Monitor, RawDataKey};
use monitor_strategies::{registry, StrategySettings};
use monitors_manager::{ManagerError, ManagerSettings, MonitorsManager};

/// The shared fixture directory.
pub(crate) const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures");

/// Generous bound on waiting for a message; never a timing assertion.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// The fixture at `path` (relative to [`FIXTURES`]).
pub(crate) fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{path}")).unwrap()
}

/// The JSON fixture at `path` (relative to [`FIXTURES`]).
pub(crate) fn fixture_json(path: &str) -> Value {
    serde_json::from_str(&fixture(path)).unwrap()
}

/// The keys of a JSON object, in order.
pub(crate) fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

/// One round that publishes exactly one body, on `key`; the body.
pub(crate) async fn one_body(monitor: &mut impl Monitor, key: RawDataKey) -> Value {
    let publications = monitor.round().await.unwrap();
    assert_eq!(publications.len(), 1, "{publications:?}");
    assert_eq!(publications[0].routing_key, key);
    publications[0].body.clone()
}

/// Checks a `meta_data` object against `expected`: exactly its keys, in its order, and its values,
/// where a `null` in `expected` stands for any value; `time` must be a float UNIX time near now.
pub(crate) fn check_meta(meta: &Value, expected: &Value) {
    assert_eq!(keys(meta), keys(expected), "{meta}");
    for (key, want) in expected.as_object().unwrap() {
        if key == "time" {
            let time = meta["time"].as_f64().unwrap();
            assert!((time - now_unix()).abs() < 60.0, "{time}");
        } else if !want.is_null() {
            assert_eq!(&meta[key], want, "{key} in {meta}");
        }
    }
}

/// The `(code, message)` of an error envelope (`{"error": {meta_data, message, code}}`, exactly
/// those keys in that order), its meta data checked against `expected_meta` ([`check_meta`]).
pub(crate) fn error_of(envelope: &Value, expected_meta: &Value) -> (u64, String) {
    assert!(envelope.get("result").is_none(), "not an error: {envelope}");
    let error = &envelope["error"];
    assert_eq!(keys(error), ["meta_data", "message", "code"], "{error}");
    check_meta(&error["meta_data"], expected_meta);
    (
        error["code"].as_u64().unwrap(),
        error["message"].as_str().unwrap().to_owned(),
    )
}

/// Asserts an error envelope with `code` and `message` ([`error_of`]).
pub(crate) fn assert_error(expected_meta: &Value, envelope: Value, code: u64, message: &str) {
    let (got_code, got_message) = error_of(&envelope, expected_meta);
    assert_eq!(got_code, code, "{envelope}");
    assert_eq!(got_message, message, "{envelope}");
}

/// The next message's routing key and JSON body (acked), within [`PATIENCE`].
pub(crate) async fn next_json(consumer: &mut Consumer) -> (String, Value) {
    let delivery = tokio::time::timeout(PATIENCE, consumer.next())
        .await
        .expect("no message in time")
        .expect("consumer closed");
    let key = delivery.routing_key.clone();
    let body = serde_json::from_slice(&delivery.body).unwrap();
    delivery.ack().await.unwrap();
    (key, body)
}

/// A `MonitorsManager` running the strategies' registry on a fresh in-memory bus.
pub(crate) struct Running {
    pub(crate) bus: MemoryBus,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ManagerError>>,
}

impl Running {
    /// Declares the monitors' exchanges and starts the manager of `registry(strategies)`.
    pub(crate) async fn start(strategies: StrategySettings, settings: ManagerSettings) -> Running {
        let bus = MemoryBus::new();
        for exchange in MONITORS_EXCHANGES {
            bus.declare_exchange(exchange).await.unwrap();
        }
        let manager = MonitorsManager::new(Arc::new(bus.clone()), registry(strategies), settings);
        let shutdown = CancellationToken::new();
        // Owned by `Running`: stopped and awaited in `stop`.
        #[allow(clippy::disallowed_methods)]
        let task = tokio::spawn(manager.run(shutdown.clone()));
        Running {
            bus,
            shutdown,
            task,
        }
    }

    /// A consumer of a new queue `queue` bound to `exchange` with `key`.
    pub(crate) async fn capture(&self, queue: &str, exchange: &str, key: &str) -> Consumer {
        self.bus.declare_queue(queue).await.unwrap();
        self.bus.bind_queue(queue, exchange, key).await.unwrap();
        self.bus.consume(queue, 0).await.unwrap()
    }

    /// Publishes a config message once the manager's queue is bound (retrying unroutable).
    pub(crate) async fn config(&self, routing_key: &str, body: &Value) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match self
                .bus
                .publish(CONFIG_EXCHANGE, routing_key, Bytes::from(body.to_string()))
                .await
            {
                Ok(()) => return,
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("the manager never bound its config queue: {e}"),
            }
        }
    }

    /// Stops the manager and awaits its clean exit.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// The section-local contract of [`monitor_core::Planner::section_local`], checked on `message`:
/// when `planner` is section-local and accepts the key, its plan is `plan_section` over the
/// sections in order (same ids, names, groups, monitorables, fingerprints and errors), and
/// planning a section twice gives the same answer. Returns the plan.
pub(crate) fn plan_checked(
    planner: &dyn monitor_core::Planner,
    message: &monitor_core::ConfigMessage,
) -> monitor_core::Plan {
    let plan = planner.plan(message);
    let Some(local) = planner.section_local() else {
        return plan;
    };
    if !planner.accepts(&message.key) {
        assert!(plan.specs.is_empty() && plan.errors.is_empty());
        return plan;
    }
    let summary = |s: &monitor_core::MonitorSpec| {
        (
            s.id.clone(),
            s.component_name.clone(),
            s.group,
            s.monitorables.clone(),
            s.fingerprint,
        )
    };
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    for section in &message.sections {
        let once = local.plan_section(&message.key, section);
        let again = local.plan_section(&message.key, section);
        match (once, again) {
            (Ok(Some(a)), Ok(Some(b))) => {
                assert_eq!(summary(&a), summary(&b), "{section:?}");
                specs.push(summary(&a));
            }
            (Ok(None), Ok(None)) => {}
            (Err(a), Err(b)) => {
                assert_eq!(a, b, "{section:?}");
                errors.push(a);
            }
            (a, b) => panic!(
                "{} not deterministic on {section:?}: {a:?} / {b:?}",
                planner.name()
            ),
        }
    }
    assert_eq!(
        plan.specs.iter().map(summary).collect::<Vec<_>>(),
        specs,
        "{}: plan vs plan_section",
        planner.name()
    );
    assert_eq!(
        plan.errors,
        errors,
        "{}: plan vs plan_section",
        planner.name()
    );
    plan
}
