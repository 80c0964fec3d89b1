//! Issue #13 (3), against the machine's real RabbitMQ: the manager talks to the broker through a
//! TCP proxy written here (127.0.0.1 only) that blackholes its connection for 5 s, then refuses
//! and drops every connection for 30 s, while 500 monitors publish every 2 s. Nothing is killed
//! as hung, the manager resumes within 5 s of the proxy passing traffic again, and every round is
//! delivered (the outbox holds them all).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use monitor_bus::{declare_bound_queue, AmqpBus, AmqpSettings, Bus};
use monitor_core::keys::{CONFIG_EXCHANGE, RAW_DATA_EXCHANGE};
use monitor_core::PeriodGroup;
use monitors_manager::{ManagerSettings, MonitorsManager, StatusHandle};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::amqp::Vhost;
use crate::harness::{test_settings, FakePlanner, Probe};
use monitor_bus::testing::{Proxy, ProxyMode};

const MONITORS: usize = 500;
/// 250 rounds a second: 500 messages a second in steady state, a backlog of 15,000 after 30 s.
const PERIOD: Duration = Duration::from_secs(2);

/// Wait until `cond` holds, at most `patience` (real time); returns how long it took.
async fn within(what: &str, patience: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < patience, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

async fn resumes(status: &StatusHandle, what: &str) -> Duration {
    let before = status.status().publishes_ok;
    within(what, Duration::from_secs(15), || {
        status.status().publishes_ok > before + 100
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_then_dropped_broker_connection_kills_nothing_and_loses_nothing() {
    let vhost = Vhost::create("manager-outage");
    // The test's own connection goes straight to the broker.
    let direct = Arc::new(
        AmqpBus::connect(AmqpSettings::new(vhost.url()))
            .await
            .expect("RabbitMQ must be running on 127.0.0.1:5672"),
    );
    declare_bound_queue(&*direct, "it_raw", RAW_DATA_EXCHANGE, &["#"])
        .await
        .unwrap();

    let proxy = Proxy::start().await;
    // The default reconnection backoff (capped at 2 s): resuming within 5 s needs no tuning.
    let through_proxy = AmqpBus::connect(AmqpSettings {
        connection_name: "monitors-manager-outage-it".to_owned(),
        ..AmqpSettings::new(proxy.url(&vhost.url()))
    })
    .await
    .unwrap();
    let probe = Probe::default();
    let settings = ManagerSettings {
        // Hung after 3 × 2 s + 2 s without a finished round: far shorter than the outage.
        periods: [(PeriodGroup::System, PERIOD)].into_iter().collect(),
        shutdown_grace: Duration::from_secs(10),
        ..test_settings()
    };
    let manager = MonitorsManager::new(
        Arc::new(through_proxy),
        vec![FakePlanner::systems(&probe)],
        settings,
    );
    let status = manager.status_handle();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(manager.run(shutdown.clone()));

    let mut body = serde_json::Map::new();
    for i in 0..MONITORS {
        let id = format!("m{i:03}");
        body.insert(id.clone(), json!({"id": id, "name": id, "monitor": "true"}));
    }
    let body = Bytes::from(Value::Object(body).to_string());
    let deadline = Instant::now() + Duration::from_secs(20);
    while direct
        .publish(CONFIG_EXCHANGE, "general.systems_config", body.clone())
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the manager never bound its queue"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    within("all monitors to publish", Duration::from_secs(20), || {
        status.status().publishes_ok >= 2 * MONITORS as u64
    })
    .await;

    // 5 s of blackhole.
    proxy.set(ProxyMode::Blackhole);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(status.status().deaths, 0, "hung kills during the blackhole");
    proxy.set(ProxyMode::Pass);
    let took = resumes(&status, "publishing to resume after the blackhole").await;
    assert!(took <= Duration::from_secs(5), "resumed after {took:?}");

    // 30 s of dropped and refused connections.
    proxy.set(ProxyMode::Refuse);
    let rounds_before = status.status().rounds_ok;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let during = status.status();
    assert_eq!(during.deaths, 0, "hung kills during the outage");
    assert!(
        during.rounds_ok >= rounds_before + (MONITORS as u64) * 12,
        "monitors kept polling: {rounds_before} then {}",
        during.rounds_ok
    );
    assert!(during.outbox_messages > 0);
    proxy.set(ProxyMode::Pass);
    let took = resumes(&status, "publishing to resume after the outage").await;
    assert!(took <= Duration::from_secs(5), "resumed after {took:?}");
    let mut last = Instant::now();
    within("the outbox to catch up", Duration::from_secs(45), || {
        let s = status.status();
        if last.elapsed() > Duration::from_secs(2) {
            last = Instant::now();
            eprintln!(
                "outbox {} messages, {} published",
                s.outbox_messages, s.publishes_ok
            );
        }
        s.outbox_messages <= 2 * MONITORS as u64
    })
    .await;

    shutdown.cancel();
    task.await.unwrap().unwrap();
    let end = status.status();
    assert_eq!(end.deaths, 0);
    assert_eq!(end.outbox_dropped, 0);
    assert_eq!(end.outbox_lost_at_shutdown, 0);
    assert_eq!(end.publishes_failed, 0, "{end:?}");

    // Every round, delivered (at least once: a publish whose confirm was lost is sent again).
    let mut raw = direct.consume("it_raw", 0).await.unwrap();
    let mut rounds: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut received = 0u64;
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(3), raw.next()).await {
        let v: Value = serde_json::from_slice(&d.body).unwrap();
        let data = &v["result"]["data"];
        rounds
            .entry(data["id"].as_str().unwrap().to_owned())
            .or_default()
            .insert(data["round"].as_u64().unwrap());
        received += 1;
    }
    assert_eq!(rounds.len(), MONITORS);
    let distinct: u64 = rounds.values().map(|r| r.len() as u64).sum();
    for (id, r) in &rounds {
        let max = *r.iter().next_back().unwrap();
        assert_eq!(r.len() as u64, max, "{id}: rounds missing");
    }
    assert_eq!(distinct, end.rounds_ok, "received {received}");
    drop(raw);
    direct.close().await;
    drop(proxy);
}
