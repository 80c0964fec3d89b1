//! The store service on the in-memory bus, with `MemoryStore` (paused time: these tests only wait
//! for time to pass) and with `RedisStore` (real time, waiting for conditions with a deadline).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{drained, eventually, msg, src, RedisNs};
use async_trait::async_trait;
use bytes::Bytes;
use monitor_bus::{declare_bound_queue, publish_json};
use monitor_bus::{Bus, Consumer, MemoryBus};
use monitor_bus::{StuckBus, StuckPublishes};
use monitor_core::envelope::MonitorableMessage;
use monitor_core::keys::{
    HEALTH_CHECK_EXCHANGE, HEARTBEAT_WORKER_ROUTING_KEY, MONITORABLE_EXCHANGE,
};
use monitor_core::{MonitorableKey, WorkerHeartbeat};
use monitorables_store::{
    run_store_service, Document, MemoryStore, MonitorablesStore, StoreError, StoreServiceSettings,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const QUEUE: &str = "test_monitorable_store_input_queue";
const HB_QUEUE: &str = "test_store_heartbeats";

fn settings() -> StoreServiceSettings {
    StoreServiceSettings {
        queue: QUEUE.to_owned(),
        retry_min: Duration::from_millis(5),
        retry_max: Duration::from_millis(50),
        ..StoreServiceSettings::default()
    }
}

struct Running {
    bus: MemoryBus,
    heartbeats: Consumer,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

async fn start(store: Arc<dyn MonitorablesStore>) -> Running {
    let bus = MemoryBus::new();
    declare_bound_queue(
        &bus,
        HB_QUEUE,
        HEALTH_CHECK_EXCHANGE,
        &[HEARTBEAT_WORKER_ROUTING_KEY],
    )
    .await
    .unwrap();
    let heartbeats = bus.consume(HB_QUEUE, 0).await.unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let bus: Arc<dyn Bus> = Arc::new(bus.clone());
        let shutdown = shutdown.clone();
        async move {
            run_store_service(bus, store, settings(), shutdown)
                .await
                .unwrap();
        }
    });
    // The service declares its queue; wait for it so publishes are routable.
    eventually("the service to declare its queue", || {
        bus.queue_len(QUEUE).is_some()
    })
    .await;
    Running {
        bus,
        heartbeats,
        shutdown,
        task,
    }
}

impl Running {
    async fn publish(&self, key: &str, m: &MonitorableMessage) {
        publish_json(&self.bus, MONITORABLE_EXCHANGE, key, m)
            .await
            .unwrap();
    }

    async fn publish_raw(&self, key: &str, body: &'static [u8]) {
        self.bus
            .publish(MONITORABLE_EXCHANGE, key, Bytes::from_static(body))
            .await
            .unwrap();
    }

    /// Heartbeats received (acks them): waits up to 30 s for each of the `expected` ones, then
    /// counts any more that come within 50 ms.
    async fn heartbeat_count(&mut self, expected: usize) -> usize {
        let mut n = 0;
        loop {
            let wait = if n < expected {
                Duration::from_secs(30)
            } else {
                Duration::from_millis(50)
            };
            let Ok(Some(d)) = tokio::time::timeout(wait, self.heartbeats.next()).await else {
                break;
            };
            let hb: WorkerHeartbeat = serde_json::from_slice(&d.body).unwrap();
            assert_eq!(hb.component_name, "Monitorable Store");
            assert!(hb.is_alive);
            assert!(hb.timestamp > 0.0);
            d.ack().await.unwrap();
            n += 1;
        }
        n
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("service did not stop")
            .unwrap();
    }
}

async fn applies_valid_and_drops_invalid(store: Arc<dyn MonitorablesStore>) {
    let mut svc = start(store.clone()).await;
    svc.publish(
        "cosmos.systems",
        &msg(
            "System Monitors Manager",
            vec![src("c1", "cosmoshub", "s1", "validator")],
        ),
    )
    .await;
    // Invalid routing keys and bodies: acked, nothing written, no heartbeat.
    let bad = msg("Bad", vec![src("x", "x", "x", "x")]);
    for key in ["newbasechain.invalid", ".nodes", "cosmos."] {
        svc.publish(key, &bad).await;
    }
    svc.publish_raw("substrate.nodes", b"not json").await;
    svc.publish_raw("substrate.nodes", br#"{"manager_name": "Bad"}"#)
        .await;
    svc.publish_raw(
        "substrate.nodes",
        br#"{"manager_name": "Bad", "sources": [{"chain_id": "c"}]}"#,
    )
    .await;
    svc.publish(
        "General.github_repos",
        &msg(
            "GitHub Monitors Manager",
            vec![src("general", "general", "r1", "SimplyVC/panic")],
        ),
    )
    .await;
    drained(&svc.bus, QUEUE).await;

    assert_eq!(svc.heartbeat_count(2).await, 2);
    assert_eq!(
        store.base_chains().await.unwrap(),
        vec!["cosmos".to_owned(), "general".to_owned()]
    );
    let cosmos = store.load("cosmos").await.unwrap();
    assert_eq!(
        cosmos.chain("c1").unwrap().systems["s1"].manager_names,
        vec!["System Monitors Manager"]
    );
    let general = store.load("general").await.unwrap();
    assert_eq!(
        general.chain("general").unwrap().github_repos["r1"].name,
        "SimplyVC/panic"
    );

    // Removing the system removes the chain.
    svc.publish("cosmos.systems", &msg("System Monitors Manager", vec![]))
        .await;
    drained(&svc.bus, QUEUE).await;
    assert!(store.load("cosmos").await.unwrap().is_empty());
    assert_eq!(svc.heartbeat_count(1).await, 1);
    svc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn memory_store_applies_valid_and_drops_invalid() {
    applies_valid_and_drops_invalid(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_applies_valid_and_drops_invalid() {
    let ns = RedisNs::new("service");
    applies_valid_and_drops_invalid(Arc::new(ns.store())).await;
}

/// A store that is unavailable for its first `failures` applies, then delegates.
struct Flaky {
    inner: MemoryStore,
    failures: usize,
    calls: AtomicUsize,
}

#[async_trait]
impl MonitorablesStore for Flaky {
    async fn apply(&self, key: &MonitorableKey, m: &MonitorableMessage) -> Result<(), StoreError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(StoreError::Unavailable("test: store away".into()));
        }
        self.inner.apply(key, m).await
    }
    async fn load(&self, base_chain: &str) -> Result<Document, StoreError> {
        self.inner.load(base_chain).await
    }
    async fn base_chains(&self) -> Result<Vec<String>, StoreError> {
        self.inner.base_chains().await
    }
}

#[tokio::test(start_paused = true)]
async fn unavailable_store_is_retried_without_losing_the_message() {
    let flaky = Arc::new(Flaky {
        inner: MemoryStore::new(),
        failures: 5,
        calls: AtomicUsize::new(0),
    });
    let mut svc = start(flaky.clone()).await;
    svc.publish(
        "cosmos.nodes",
        &msg(
            "Node Monitors Manager",
            vec![src("c1", "hub", "n1", "node")],
        ),
    )
    .await;
    drained(&svc.bus, QUEUE).await;
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 6);
    assert_eq!(svc.heartbeat_count(1).await, 1);
    assert_eq!(
        flaky
            .load("cosmos")
            .await
            .unwrap()
            .chain("c1")
            .unwrap()
            .nodes
            .len(),
        1
    );
    svc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_unavailable_requeues_the_message() {
    let flaky = Arc::new(Flaky {
        inner: MemoryStore::new(),
        failures: usize::MAX,
        calls: AtomicUsize::new(0),
    });
    let mut svc = start(flaky.clone()).await;
    svc.publish(
        "cosmos.nodes",
        &msg(
            "Node Monitors Manager",
            vec![src("c1", "hub", "n1", "node")],
        ),
    )
    .await;
    // Wait until it has been tried a few times, and check it is held unacked meanwhile.
    eventually("three tries", || flaky.calls.load(Ordering::SeqCst) >= 3).await;
    assert_eq!(svc.bus.unacked_len(QUEUE), Some(1));
    assert_eq!(svc.heartbeat_count(0).await, 0);
    let bus = svc.bus.clone();
    svc.stop().await;
    assert_eq!(
        bus.queue_len(QUEUE),
        Some(1),
        "message handed back to the queue"
    );
    assert_eq!(bus.unacked_len(QUEUE), Some(0));
}

/// A store reporting a corrupt document: PANIC logs, acks and sends no heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_redis_document_is_acked_without_heartbeat() {
    let ns = RedisNs::new("corrupt");
    let store = ns.store();
    let client = redis::Client::open(crate::common::REDIS_URL).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SET")
        .arg(store.key("cosmos"))
        .arg("[not a document")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert!(matches!(
        store.load("cosmos").await,
        Err(StoreError::Corrupt { .. })
    ));
    let mut svc = start(Arc::new(store.clone())).await;
    svc.publish(
        "cosmos.nodes",
        &msg(
            "Node Monitors Manager",
            vec![src("c1", "hub", "n1", "node")],
        ),
    )
    .await;
    svc.publish(
        "substrate.nodes",
        &msg(
            "Node Monitors Manager",
            vec![src("c2", "dot", "n2", "node")],
        ),
    )
    .await;
    drained(&svc.bus, QUEUE).await;
    assert_eq!(
        svc.heartbeat_count(1).await,
        1,
        "only the good write heartbeats"
    );
    let raw: String = redis::cmd("GET")
        .arg(store.key("cosmos"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(raw, "[not a document", "corrupt document left for a person");
    svc.stop().await;
}

/// Shutdown while the service waits for an absent broker (declaring at start, or publishing its
/// heartbeat after a message): it still returns.
#[tokio::test(start_paused = true)]
async fn shutdown_does_not_wait_for_an_absent_broker() {
    for stuck_declare in [true, false] {
        let inner = MemoryBus::new();
        let store = Arc::new(MemoryStore::new());
        let bus: Arc<dyn Bus> = Arc::new(
            StuckBus::new(inner.clone())
                .with_stuck_declarations(stuck_declare)
                .with_stuck_publishes(StuckPublishes::To(HEALTH_CHECK_EXCHANGE.to_owned())),
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_store_service(
            bus,
            store.clone(),
            settings(),
            shutdown.clone(),
        ));
        if !stuck_declare {
            // A message applied: the service then waits to publish its heartbeat.
            let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
            let m = msg(
                "Monitors Manager",
                vec![src("GENERAL", "general", "s1", "one")],
            );
            while publish_json(&inner, MONITORABLE_EXCHANGE, "general.systems", &m)
                .await
                .is_err()
            {
                assert!(tokio::time::Instant::now() < give_up, "never bound");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            while store.load("general").await.unwrap().is_empty() {
                assert!(tokio::time::Instant::now() < give_up, "never applied");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .unwrap_or_else(|_| panic!("the service hung (stuck_declare: {stuck_declare})"))
            .unwrap()
            .unwrap();
    }
}
