//! The health checker on the in-memory bus, storing into the machine's real Redis (a unique
//! namespace per test, deleted at the end) or into a memory sink.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use heartbeat::health_checker::{
    run_health_checker, run_heartbeat_handler, run_ping_publisher, HealthCheckerSettings,
    HeartbeatSink, MemoryHeartbeatSink, RedisHeartbeatSink, SinkError, HEARTBEAT_HANDLER_NAME,
    PING_PUBLISHER_NAME,
};
use monitor_bus::declare_bound_queue;
use monitor_bus::{Bus, MemoryBus};
use monitor_bus::{StuckBus, StuckPublishes};
use monitor_core::keys::HEALTH_CHECK_EXCHANGE;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const REDIS_URL: &str = "redis://127.0.0.1:6379/";
const QUEUE: &str = "test_heartbeat_handler_queue";

fn settings(ping_interval: Duration) -> HealthCheckerSettings {
    HealthCheckerSettings {
        ping_interval,
        queue: QUEUE.to_owned(),
        retry_min: Duration::from_millis(5),
        retry_max: Duration::from_millis(50),
        ..HealthCheckerSettings::default()
    }
}

/// A unique Redis namespace, its keys deleted on drop (even when the test fails).
struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Ns(format!(
            "test_hc_{tag}_{}_{nanos}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    fn conn(&self) -> redis::Connection {
        redis::Client::open(REDIS_URL)
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap()
    }

    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.0))
            .query(&mut self.conn())
            .unwrap();
        keys.sort();
        keys
    }

    fn get(&self, component: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(format!("{}:c1_{component}", self.0))
            .query(&mut self.conn())
            .unwrap()
    }

    fn ttl(&self, component: &str) -> i64 {
        redis::cmd("TTL")
            .arg(format!("{}:c1_{component}", self.0))
            .query(&mut self.conn())
            .unwrap()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let cleanup = || -> redis::RedisResult<()> {
            let mut conn = redis::Client::open(REDIS_URL)?
                .get_connection_with_timeout(Duration::from_secs(2))?;
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", self.0))
                .query(&mut conn)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(keys).query::<i64>(&mut conn)?;
            }
            Ok(())
        };
        if let Err(e) = cleanup() {
            eprintln!("could not clean up namespace {}: {e}", self.0);
        }
    }
}

/// Wait (at most 30 s: a hang is a failure) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_queue(bus: &MemoryBus, queue: &str) {
    eventually("the handler's queue", || bus.queue_len(queue).is_some()).await;
}

async fn drained(bus: &MemoryBus) {
    eventually("the heartbeat queue to drain", || {
        bus.queue_len(QUEUE) == Some(0) && bus.unacked_len(QUEUE) == Some(0)
    })
    .await;
}

async fn publish(bus: &MemoryBus, key: &str, body: &str) {
    bus.publish(HEALTH_CHECK_EXCHANGE, key, body.as_bytes().to_vec().into())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_stores_heartbeats_verbatim_in_redis() {
    let ns = Ns::new("verbatim");
    let sink = Arc::new(RedisHeartbeatSink::open(REDIS_URL, &ns.0).unwrap());
    let bus = MemoryBus::new();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_heartbeat_handler(
        Arc::new(bus.clone()),
        sink,
        settings(Duration::from_secs(3600)),
        shutdown.clone(),
    ));
    wait_queue(&bus, QUEUE).await;

    // PANIC's Python formatting (", " and ": ") must survive byte for byte.
    let worker = r#"{"component_name": "System monitor (validator_host)", "is_alive": true, "timestamp": 1672531200.123}"#;
    let manager = r#"{"component_name": "Monitors Manager", "running_processes": ["System monitor (a)"], "dead_processes": [], "timestamp": 1672531200.5}"#;
    publish(&bus, "heartbeat.worker", worker).await;
    publish(&bus, "heartbeat.manager", manager).await;
    // Not stored: bad JSON, no or non-string component_name, a routing key that is no heartbeat.
    publish(&bus, "heartbeat.worker", "{not json").await;
    publish(&bus, "heartbeat.worker", r#"{"is_alive": true}"#).await;
    publish(&bus, "heartbeat.worker", r#"{"component_name": 7}"#).await;
    publish(&bus, "heartbeat.other", r#"{"component_name": "Other"}"#).await;
    drained(&bus).await;

    assert_eq!(
        ns.get("System monitor (validator_host)").as_deref(),
        Some(worker)
    );
    assert_eq!(ns.get("Monitors Manager").as_deref(), Some(manager));
    assert_eq!(ns.ttl("Monitors Manager"), -1, "no TTL");
    eventually("the handler's own heartbeat", || {
        ns.get(HEARTBEAT_HANDLER_NAME).is_some()
    })
    .await;
    let own: Value = serde_json::from_str(&ns.get(HEARTBEAT_HANDLER_NAME).unwrap()).unwrap();
    assert_eq!(own["component_name"], HEARTBEAT_HANDLER_NAME);
    assert!(own["timestamp"].as_f64().unwrap() > 0.0);
    assert_eq!(
        ns.keys(),
        vec![
            format!("{}:c1_Heartbeat Handler", ns.0),
            format!("{}:c1_Monitors Manager", ns.0),
            format!("{}:c1_System monitor (validator_host)", ns.0),
        ]
    );

    // A newer heartbeat replaces the older one.
    let newer = r#"{"component_name": "Monitors Manager", "running_processes": [], "dead_processes": ["System monitor (a)"], "timestamp": 1672531230.5}"#;
    publish(&bus, "heartbeat.manager", newer).await;
    drained(&bus).await;
    eventually("the newer heartbeat", || {
        ns.get("Monitors Manager").as_deref() == Some(newer)
    })
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// A sink that fails while `down` is set.
#[derive(Default)]
struct Switchable {
    inner: MemoryHeartbeatSink,
    down: AtomicBool,
    failures: AtomicU64,
}

#[async_trait]
impl HeartbeatSink for Switchable {
    async fn store(&self, component: &str, json: &str) -> Result<(), SinkError> {
        if self.down.load(Ordering::SeqCst) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(SinkError::Unavailable("test: down".into()));
        }
        self.inner.store(component, json).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_writes_are_kept_and_retried() {
    let sink = Arc::new(Switchable::default());
    sink.down.store(true, Ordering::SeqCst);
    let bus = MemoryBus::new();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_heartbeat_handler(
        Arc::new(bus.clone()),
        sink.clone(),
        settings(Duration::from_secs(3600)),
        shutdown.clone(),
    ));
    wait_queue(&bus, QUEUE).await;
    let bodies: Vec<String> = (0..5)
        .map(|i| {
            format!(r#"{{"component_name": "Worker {i}", "is_alive": true, "timestamp": {i}.5}}"#)
        })
        .collect();
    for b in &bodies {
        publish(&bus, "heartbeat.worker", b).await;
    }
    // Acked although not stored (PANIC acks always), and kept.
    drained(&bus).await;
    eventually("failed writes", || {
        sink.failures.load(Ordering::SeqCst) >= 5
    })
    .await;
    assert!(sink.inner.all().is_empty());

    // The store comes back; no new message is needed for the kept heartbeats to be written.
    sink.down.store(false, Ordering::SeqCst);
    eventually("kept heartbeats to be written", || {
        sink.inner.all().len() == 6
    })
    .await;
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(
            sink.inner.get(&format!("Worker {i}")).as_deref(),
            Some(b.as_str())
        );
    }
    assert!(sink.inner.get(HEARTBEAT_HANDLER_NAME).is_some());

    // Down again: the next message's write fails; back up, the next message also flushes the
    // kept one.
    sink.down.store(true, Ordering::SeqCst);
    let failures = sink.failures.load(Ordering::SeqCst);
    publish(
        &bus,
        "heartbeat.worker",
        r#"{"component_name": "Late", "timestamp": 9.0}"#,
    )
    .await;
    eventually("a failed write", || {
        sink.failures.load(Ordering::SeqCst) > failures
    })
    .await;
    sink.down.store(false, Ordering::SeqCst);
    publish(
        &bus,
        "heartbeat.worker",
        r#"{"component_name": "Later", "timestamp": 10.0}"#,
    )
    .await;
    eventually("both written", || {
        sink.inner.get("Late").is_some() && sink.inner.get("Later").is_some()
    })
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_publisher_pings_raw_and_heartbeats() {
    let ns = Ns::new("ping");
    let sink = Arc::new(RedisHeartbeatSink::open(REDIS_URL, &ns.0).unwrap());
    let bus = MemoryBus::new();
    declare_bound_queue(&bus, "test_ping_listener", HEALTH_CHECK_EXCHANGE, &["ping"])
        .await
        .unwrap();
    let mut pings = bus.consume("test_ping_listener", 0).await.unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_ping_publisher(
        Arc::new(bus.clone()),
        sink,
        settings(Duration::from_millis(20)),
        shutdown.clone(),
    ));
    for _ in 0..3 {
        let d = tokio::time::timeout(Duration::from_secs(30), pings.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&d.body[..], b"ping", "raw body, not JSON");
        assert_eq!(d.routing_key, "ping");
        d.ack().await.unwrap();
    }
    eventually("the ping publisher's heartbeat", || {
        ns.get(PING_PUBLISHER_NAME).is_some()
    })
    .await;
    let hb: Value = serde_json::from_str(&ns.get(PING_PUBLISHER_NAME).unwrap()).unwrap();
    assert_eq!(hb["component_name"], PING_PUBLISHER_NAME);
    assert!(hb["timestamp"].as_f64().unwrap() > 0.0);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_ping_still_heartbeats() {
    let sink = Arc::new(MemoryHeartbeatSink::new());
    let bus = MemoryBus::new();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_ping_publisher(
        Arc::new(bus.clone()),
        sink.clone(),
        settings(Duration::from_millis(20)),
        shutdown.clone(),
    ));
    eventually("the ping publisher's heartbeat", || {
        sink.get(PING_PUBLISHER_NAME).is_some()
    })
    .await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Both halves together: the ping reaches a listener that answers with a heartbeat, which ends up
/// in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checker_round_trip() {
    let ns = Ns::new("roundtrip");
    let sink = Arc::new(RedisHeartbeatSink::open(REDIS_URL, &ns.0).unwrap());
    let bus = MemoryBus::new();
    declare_bound_queue(
        &bus,
        "test_component_ping",
        HEALTH_CHECK_EXCHANGE,
        &["ping"],
    )
    .await
    .unwrap();
    let mut pings = bus.consume("test_component_ping", 0).await.unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_health_checker(
        Arc::new(bus.clone()),
        sink,
        settings(Duration::from_millis(50)),
        shutdown.clone(),
    ));
    wait_queue(&bus, QUEUE).await;
    // A component answering the first ping.
    let ping = tokio::time::timeout(Duration::from_secs(30), pings.next())
        .await
        .unwrap()
        .unwrap();
    ping.ack().await.unwrap();
    let answer = r#"{"component_name": "Monitors Manager", "running_processes": [], "dead_processes": [], "timestamp": 1.0}"#;
    publish(&bus, "heartbeat.manager", answer).await;
    eventually("the manager heartbeat in redis", || {
        ns.get("Monitors Manager").as_deref() == Some(answer)
    })
    .await;
    eventually("both own heartbeats", || {
        ns.get(PING_PUBLISHER_NAME).is_some() && ns.get(HEARTBEAT_HANDLER_NAME).is_some()
    })
    .await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Shutdown while the health checker waits for an absent broker (declaring at start, or publishing
/// a ping): it still returns.
#[tokio::test]
async fn shutdown_does_not_wait_for_an_absent_broker() {
    for stuck_declare in [true, false] {
        let bus: Arc<dyn Bus> = Arc::new(
            StuckBus::new(MemoryBus::new())
                .with_stuck_declarations(stuck_declare)
                .with_stuck_publishes(StuckPublishes::All),
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_health_checker(
            bus,
            Arc::new(MemoryHeartbeatSink::new()),
            settings(Duration::from_millis(10)),
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .unwrap_or_else(|_| panic!("the checker hung (stuck_declare: {stuck_declare})"))
            .unwrap()
            .unwrap();
    }
}
