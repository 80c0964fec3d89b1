//! Shutdown, settings validation and sharding.

use std::sync::Arc;
use std::time::Duration;

use monitor_bus::{Bus, MemoryBus};
use monitor_bus::{StuckBus, StuckPublishes};
use monitor_core::envelope::MonitorableMessage;
use monitors_manager::{ManagerError, ManagerSettings, MonitorsManager, Shard};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::harness::{
    monitorable_capture, names, raw_capture, test_settings, FakePlanner, Harness, Probe,
};

const GENERAL: &str = "general.systems_config";

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_lets_rounds_in_flight_finish_and_publish() {
    let probe = Probe::default();
    let settings = ManagerSettings {
        shutdown_grace: Duration::from_secs(30),
        ..test_settings()
    };
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], settings).await;
    let mut raw = raw_capture(&h.bus, "raw").await;
    let body = json!({"slow": {"id": "slow", "name": "slow", "monitor": "true",
        "behaviour": "sleep", "round_secs": "5"}});
    h.config(GENERAL, &body.to_string()).await;
    h.wait_for("a round to start", || {
        probe.stats("slow").rounds_started == 1
    })
    .await;
    assert_eq!(probe.stats("slow").rounds_finished, 0);

    h.stop().await.unwrap();
    let slow = probe.stats("slow");
    assert_eq!(slow.rounds_finished, 1, "the round in flight finished");
    assert_eq!(slow.rounds_started, 1, "no new round after shutdown");
    let got = raw.drain().await;
    assert_eq!(got.len(), 1, "its data was published: {got:?}");
    assert!(h.status().monitors.is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_aborts_rounds_still_running_after_the_grace_period() {
    let probe = Probe::default();
    let settings = ManagerSettings {
        shutdown_grace: Duration::from_secs(2),
        ..test_settings()
    };
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], settings).await;
    let body = json!({
        "slow": {"id": "slow", "name": "slow", "monitor": "true", "behaviour": "sleep", "round_secs": "8"},
        "failing": {"id": "failing", "name": "failing", "monitor": "true", "behaviour": "fail_build"},
    });
    h.config(GENERAL, &body.to_string()).await;
    h.wait_for("a round to start", || {
        probe.stats("slow").rounds_started == 1
    })
    .await;
    h.stop().await.unwrap();
    assert_eq!(
        probe.stats("slow").rounds_finished,
        0,
        "aborted after the grace"
    );
    assert_eq!(h.status().rounds_in_flight, 0);
    // Nothing runs any more.
    let builds = probe.stats("failing").builds;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(probe.stats("failing").builds, builds);
    assert_eq!(probe.stats("slow").rounds_started, 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_nothing_running_returns_at_once() {
    let mut h = Harness::start(vec![], test_settings()).await;
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn invalid_settings_and_duplicate_planners_are_errors() {
    let bus = Arc::new(MemoryBus::new());
    let probe = Probe::default();
    let bad = ManagerSettings {
        max_in_flight: 0,
        ..test_settings()
    };
    let err = MonitorsManager::new(bus.clone(), vec![], bad)
        .run(CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, ManagerError::Settings(_)), "{err}");

    let err = MonitorsManager::new(
        bus.clone(),
        vec![FakePlanner::systems(&probe), FakePlanner::systems(&probe)],
        test_settings(),
    )
    .run(CancellationToken::new())
    .await
    .unwrap_err();
    assert!(
        matches!(err, ManagerError::DuplicatePlanner(ref n) if n == "fake_systems"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deleted_config_queue_ends_the_manager_with_an_error() {
    let probe = Probe::default();
    let mut h = Harness::start(vec![FakePlanner::systems(&probe)], test_settings()).await;
    monitor_bus::Bus::delete_queue(&h.bus, &h.settings.configs_queue())
        .await
        .unwrap();
    let err = h.task.take().unwrap().await.unwrap().unwrap_err();
    assert!(matches!(err, ManagerError::ConsumerClosed(_)), "{err}");
}

#[tokio::test(start_paused = true)]
async fn shards_split_the_specs_between_managers() {
    let bus = MemoryBus::new();
    let probe = Probe::default();
    let shard = |index| ManagerSettings {
        shard: Some(Shard { index, count: 2 }),
        // No queue suffix: each shard gets its own config and ping queues by itself.
        ..test_settings()
    };
    let mut cap = monitorable_capture(&bus, "monitorables").await;
    let mut h0 = Harness::start_on(bus.clone(), vec![FakePlanner::systems(&probe)], shard(0)).await;
    let mut h1 = Harness::start_on(bus.clone(), vec![FakePlanner::systems(&probe)], shard(1)).await;

    let mut body = serde_json::Map::new();
    for i in 0..20 {
        let id = format!("s{i:02}");
        body.insert(id.clone(), json!({"id": id, "name": id, "monitor": "true"}));
    }
    let body = serde_json::Value::Object(body).to_string();
    // One publish reaches both shards' queues; each handles it.
    h0.config(GENERAL, &body).await;
    let status1 = h1.status.clone();
    h1.wait_for("shard 1 to handle the config", || {
        status1.status().config_messages == 1
    })
    .await;

    let n0 = names(&h0.status());
    let n1 = names(&h1.status());
    assert!(!n0.is_empty() && !n1.is_empty(), "{n0:?} {n1:?}");
    assert_eq!(n0.len() + n1.len(), 20);
    assert!(n0.iter().all(|n| !n1.contains(n)));

    let mut by_manager: Vec<(String, usize)> = cap
        .drain()
        .await
        .into_iter()
        .map(|c| {
            let m: MonitorableMessage = serde_json::from_value(c.body).unwrap();
            (m.manager_name, m.sources.len())
        })
        .collect();
    by_manager.sort();
    assert_eq!(
        by_manager,
        [
            ("Monitors Manager (shard 0/2)".to_owned(), n0.len()),
            ("Monitors Manager (shard 1/2)".to_owned(), n1.len()),
        ]
    );
    h0.stop().await.unwrap();
    h1.stop().await.unwrap();
}

/// Shutdown while the manager waits to publish (the broker went away after a ping or a config
/// arrived): `run` still returns within its grace.
#[tokio::test(start_paused = true)]
async fn shutdown_does_not_wait_for_a_publish_to_an_absent_broker() {
    use monitor_core::keys::{CONFIG_EXCHANGE, HEALTH_CHECK_EXCHANGE, MONITORABLE_EXCHANGE};
    for (exchange, send_to, key, body) in [
        (
            HEALTH_CHECK_EXCHANGE,
            HEALTH_CHECK_EXCHANGE,
            "ping",
            "ping".to_owned(),
        ),
        (
            MONITORABLE_EXCHANGE,
            CONFIG_EXCHANGE,
            GENERAL,
            json!({"a": {"id": "a", "name": "a", "monitor": "true"}}).to_string(),
        ),
    ] {
        let probe = Probe::default();
        let inner = MemoryBus::new();
        let bus = Arc::new(
            StuckBus::new(inner.clone())
                .with_stuck_publishes(StuckPublishes::To(exchange.to_owned())),
        );
        let settings = ManagerSettings {
            shutdown_grace: Duration::from_secs(5),
            ..test_settings()
        };
        let manager = MonitorsManager::new(bus, vec![FakePlanner::systems(&probe)], settings);
        let status = manager.status_handle();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(manager.run(shutdown.clone()));
        // Wait until the manager consumes, then send what makes it publish.
        let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if inner
                .publish(send_to, key, bytes::Bytes::from(body.clone()))
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < give_up,
                "the manager never bound"
            );
        }
        let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
        while status.status().pings + status.status().config_messages == 0 {
            assert!(tokio::time::Instant::now() < give_up, "nothing handled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(600), task)
            .await
            .unwrap_or_else(|_| panic!("the manager hung in a publish to `{exchange}`"))
            .unwrap()
            .unwrap();
    }
}

/// Shutdown while the manager declares its queues on an absent broker: `run` returns `Ok`.
#[tokio::test(start_paused = true)]
async fn shutdown_during_setup_on_an_absent_broker() {
    let probe = Probe::default();
    let bus = Arc::new(StuckBus::new(MemoryBus::new()).with_stuck_declarations(true));
    let manager = MonitorsManager::new(bus, vec![FakePlanner::systems(&probe)], test_settings());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(manager.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(600), task)
        .await
        .expect("the manager hung declaring on an absent broker")
        .unwrap()
        .unwrap();
}
