//! The health checker on the real RabbitMQ (a vhost of its own, deleted at the end) and the real
//! Redis, under a load of heartbeats while its connection is force-closed again and again and the
//! broker refuses it for a while (the vhost's permissions withdrawn, as a broker that is down): the
//! `c1_` keys keep moving afterwards, and shutdown returns, also in the middle of an outage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use heartbeat::health_checker::{run_health_checker, HealthCheckerSettings, RedisHeartbeatSink};
use monitor_bus::{AmqpBus, Bus};
use monitor_core::keys::HEALTH_CHECK_EXCHANGE;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::redis_sink::{Ns, REDIS_URL};
use monitor_bus::testing::{rabbitmqctl, Vhost};

/// How many components send heartbeats (the 500 monitors).
const COMPONENTS: u64 = 500;

fn component(i: u64) -> String {
    format!("System monitor (m{i})")
}

/// The round recorded in `component`'s stored heartbeat, if any.
fn stored_round(ns: &Ns, i: u64) -> Option<u64> {
    let text = ns.get(&component(i))?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["round"].as_u64()
}

/// Publishes a heartbeat of every component per round, as fast as the broker confirms, until
/// `stop`; returns how many rounds were started. `round` is the current round.
async fn load(bus: Arc<AmqpBus>, round: Arc<AtomicU64>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let r = round.fetch_add(1, Ordering::SeqCst) + 1;
        for i in 0..COMPONENTS {
            let body = serde_json::json!({
                "component_name": component(i), "is_alive": true, "round": r, "timestamp": 1.0,
            })
            .to_string();
            let publish = bus.publish(HEALTH_CHECK_EXCHANGE, "heartbeat.worker", body.into());
            // Publishes wait in the outbox while the broker is away; errors (outbox full) are
            // the load's loss, not the checker's.
            if stop.run_until_cancelled(publish).await.is_none() {
                return;
            }
        }
    }
}

async fn eventually(what: &str, patience: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + patience;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every component's key holds a round after `after`.
async fn all_moved_past(ns: &Ns, after: u64, what: &str) {
    eventually(what, Duration::from_secs(90), || {
        (0..COMPONENTS).all(|i| stored_round(ns, i).is_some_and(|r| r > after))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_handler_keeps_consuming_across_outages_under_load() {
    let vhost = Vhost::create("test-hc-outage");
    let ns = Ns::new("outage");
    let checker_bus = Arc::new(
        vhost
            .bus_with("health checker", Duration::from_millis(500))
            .await,
    );
    let load_bus = Arc::new(vhost.bus_with("load", Duration::from_millis(500)).await);
    let sink = Arc::new(RedisHeartbeatSink::open(REDIS_URL, &ns.0).unwrap());
    let settings = HealthCheckerSettings {
        ping_interval: Duration::from_millis(500),
        queue: "test_heartbeat_handler_queue".to_owned(),
        retry_min: Duration::from_millis(50),
        retry_max: Duration::from_millis(500),
        ..HealthCheckerSettings::default()
    };
    let shutdown = CancellationToken::new();
    let checker = tokio::spawn(run_health_checker(
        checker_bus.clone() as Arc<dyn Bus>,
        sink,
        settings,
        shutdown.clone(),
    ));
    // The queue exists once the handler consumes.
    eventually("the handler's queue", Duration::from_secs(30), || {
        rabbitmqctl(&["list_queues", "-p", vhost.name(), "name"])
            .contains("test_heartbeat_handler_queue")
    })
    .await;

    let round = Arc::new(AtomicU64::new(0));
    let stop_load = CancellationToken::new();
    let loader = tokio::spawn(load(load_bus.clone(), round.clone(), stop_load.clone()));
    all_moved_past(&ns, 0, "the first round in Redis").await;

    // Force-closed connections under load, then the broker refusing the vhost for a while.
    for _ in 0..6 {
        let before = checker_bus.reconnections();
        vhost.close_connections().await;
        eventually("the checker to reconnect", Duration::from_secs(30), || {
            checker_bus.reconnections() > before && checker_bus.is_connected()
        })
        .await;
    }
    for _ in 0..2 {
        let before = checker_bus.reconnections();
        vhost.down().await;
        eventually("the checker to notice", Duration::from_secs(30), || {
            !checker_bus.is_connected()
        })
        .await;
        // Let the outage last a few of the checker's reconnection attempts.
        let attempts_deadline = Instant::now() + Duration::from_secs(3);
        eventually("the outage to last", Duration::from_secs(30), || {
            Instant::now() >= attempts_deadline
        })
        .await;
        vhost.up().await;
        eventually("the checker to reconnect", Duration::from_secs(30), || {
            checker_bus.reconnections() > before && checker_bus.is_connected()
        })
        .await;
    }

    // After the outages every key moves again.
    let now = round.load(Ordering::SeqCst);
    all_moved_past(&ns, now, "every c1_ key to move after the outages").await;

    // Shutdown in the middle of an outage returns.
    vhost.down().await;
    eventually("the checker to notice", Duration::from_secs(30), || {
        !checker_bus.is_connected()
    })
    .await;
    shutdown.cancel();
    stop_load.cancel();
    tokio::time::timeout(Duration::from_secs(30), checker)
        .await
        .expect("the health checker must stop on shutdown mid-outage")
        .unwrap()
        .unwrap();
    loader.await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), checker_bus.close())
        .await
        .expect("closing the bus mid-outage");
    tokio::time::timeout(Duration::from_secs(30), load_bus.close())
        .await
        .expect("closing the bus mid-outage");
    vhost.up().await;
}
