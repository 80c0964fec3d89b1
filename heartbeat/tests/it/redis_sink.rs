//! The health checker storing into the machine's real Redis (a unique namespace per test, deleted at
//! the end): real time, waiting for conditions with a deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use heartbeat::health_checker::{
    run_health_checker, run_heartbeat_handler, run_ping_publisher, RedisHeartbeatSink,
    HEARTBEAT_HANDLER_NAME, PING_PUBLISHER_NAME,
};
use monitor_bus::declare_bound_queue;
use monitor_bus::{Bus, MemoryBus};
use monitor_core::keys::HEALTH_CHECK_EXCHANGE;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::helpers::{drained, eventually, publish, settings, wait_queue, QUEUE};

pub(crate) const REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// A unique Redis namespace, its keys deleted on drop (even when the test fails).
pub(crate) struct Ns(pub(crate) String);

impl Ns {
    pub(crate) fn new(tag: &str) -> Self {
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

    pub(crate) fn get(&self, component: &str) -> Option<String> {
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
