//! The manager on the machine's real RabbitMQ, in a vhost of its own: a config in, monitorables,
//! raw data and worker heartbeats out, a ping answered, a clean shutdown.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use monitor_bus::testing::rabbitmqctl_output as rabbitmqctl;
pub(crate) use monitor_bus::testing::Vhost;
use monitor_bus::{declare_bound_queue, AmqpBus, AmqpSettings};
use monitor_bus::{Bus, BusError, Consumer, Delivery};
use monitor_core::envelope::{ManagerHeartbeat, MonitorableMessage};
use monitor_core::keys::{
    CONFIG_EXCHANGE, HEALTH_CHECK_EXCHANGE, MONITORABLE_EXCHANGE, RAW_DATA_EXCHANGE,
};
use monitor_core::PeriodGroup;
use monitors_manager::{ManagerSettings, MonitorsManager};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::harness::{test_settings, FakePlanner, Probe};

const PATIENCE: Duration = Duration::from_secs(20);

async fn next(consumer: &mut Consumer, what: &str) -> Delivery {
    tokio::time::timeout(PATIENCE, consumer.next())
        .await
        .unwrap_or_else(|_| panic!("no {what} in time"))
        .unwrap_or_else(|| panic!("consumer of {what} ended"))
}

async fn next_json(consumer: &mut Consumer, what: &str) -> (String, Value) {
    let d = next(consumer, what).await;
    let key = d.routing_key.clone();
    let body = serde_json::from_slice(&d.body).unwrap();
    // The forced disconnection closes this test's own connection too: a delivery received just
    // before it can no longer be acked (it is redelivered), which is not the manager's failure.
    match d.ack().await {
        Ok(()) | Err(BusError::AckFailed(_)) => {}
        Err(e) => panic!("ack failed: {e}"),
    }
    (key, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_on_rabbitmq_end_to_end() {
    let vhost = Vhost::create("manager-it");
    let bus = Arc::new(
        AmqpBus::connect(AmqpSettings {
            connection_name: "monitors-manager-it".to_owned(),
            ..AmqpSettings::new(vhost.url())
        })
        .await
        .expect("RabbitMQ must be running on 127.0.0.1:5672"),
    );
    let bus_dyn: Arc<dyn Bus> = bus.clone();
    declare_bound_queue(&*bus, "it_raw", RAW_DATA_EXCHANGE, &["#"])
        .await
        .unwrap();
    declare_bound_queue(
        &*bus,
        "it_worker_hb",
        HEALTH_CHECK_EXCHANGE,
        &["heartbeat.worker"],
    )
    .await
    .unwrap();
    declare_bound_queue(
        &*bus,
        "it_manager_hb",
        HEALTH_CHECK_EXCHANGE,
        &["heartbeat.manager"],
    )
    .await
    .unwrap();
    declare_bound_queue(&*bus, "it_monitorables", MONITORABLE_EXCHANGE, &["#"])
        .await
        .unwrap();
    let mut raw = bus.consume("it_raw", 0).await.unwrap();
    let mut worker_hb = bus.consume("it_worker_hb", 0).await.unwrap();
    let mut manager_hb = bus.consume("it_manager_hb", 0).await.unwrap();
    let mut monitorables = bus.consume("it_monitorables", 0).await.unwrap();

    let probe = Probe::default();
    let settings = ManagerSettings {
        periods: [(PeriodGroup::System, Duration::from_secs(1))]
            .into_iter()
            .collect(),
        shutdown_grace: Duration::from_secs(5),
        ..test_settings()
    };
    let manager = MonitorsManager::new(bus_dyn, vec![FakePlanner::systems(&probe)], settings);
    let status = manager.status_handle();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(manager.run(shutdown.clone()));

    // Publish the config once the manager declared the exchange and bound its queue (mandatory
    // publishes fail until then).
    let body = json!({"a": {"id": "a", "parent_id": "GENERAL", "name": "a", "monitor": "true"}});
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let sent = bus
            .publish(
                CONFIG_EXCHANGE,
                "general.systems_config",
                Bytes::from(body.to_string()),
            )
            .await;
        match sent {
            Ok(()) => break,
            Err(BusError::Unroutable { .. } | BusError::NoSuchExchange(_))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("publishing the config: {e}"),
        }
    }

    let (key, m) = next_json(&mut monitorables, "monitorables").await;
    assert_eq!(key, "general.systems");
    let m: MonitorableMessage = serde_json::from_value(m).unwrap();
    assert_eq!(m.manager_name, "Monitors Manager");
    assert_eq!(m.sources.len(), 1);
    assert_eq!(m.sources[0].source_id, "a");
    assert_eq!(m.sources[0].chain_name, "general");

    let (key, data) = next_json(&mut raw, "raw data").await;
    assert_eq!(key, "system");
    assert_eq!(data["result"]["data"]["id"], "a");
    let (key, hb) = next_json(&mut worker_hb, "worker heartbeat").await;
    assert_eq!(key, "heartbeat.worker");
    assert_eq!(hb["component_name"], "Fake monitor (a)");
    assert_eq!(hb["is_alive"], true);

    bus.publish(HEALTH_CHECK_EXCHANGE, "ping", Bytes::from_static(b"ping"))
        .await
        .unwrap();
    let (key, hb) = next_json(&mut manager_hb, "manager heartbeat").await;
    assert_eq!(key, "heartbeat.manager");
    let hb: ManagerHeartbeat = serde_json::from_value(hb).unwrap();
    assert_eq!(hb.component_name, "Monitors Manager");
    assert_eq!(hb.running_processes, ["Fake monitor (a)"]);
    assert!(hb.dead_processes.is_empty());

    shutdown.cancel();
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the manager stops within its grace")
        .unwrap()
        .unwrap();
    assert!(status.status().rounds_ok >= 1);
    bus.close().await;
}

/// Publish `body` on the config exchange, retrying while the manager's queue is not bound yet or
/// the connection is being re-established.
async fn publish_config(bus: &AmqpBus, routing_key: &str, body: Bytes) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match bus
            .publish(CONFIG_EXCHANGE, routing_key, body.clone())
            .await
        {
            Ok(()) => return,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("publishing the config: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("publishing the config: {e}"),
        }
    }
}

/// Raw data from system `id`, skipping other systems' (acked).
async fn raw_from(raw: &mut Consumer, id: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no raw data from {id}"
        );
        let (_, data) = next_json(raw, "raw data").await;
        if data["result"]["data"]["id"] == id {
            return;
        }
    }
}

/// The broker force-closes the manager's connection while monitors run: afterwards the manager
/// still consumes configs (a new monitor starts), answers pings, and raw data keeps flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_survives_a_forced_disconnection() {
    let vhost = Vhost::create("manager-it");
    let bus = Arc::new(
        AmqpBus::connect(AmqpSettings {
            connection_name: "monitors-manager-fault".to_owned(),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            ..AmqpSettings::new(vhost.url())
        })
        .await
        .expect("RabbitMQ must be running on 127.0.0.1:5672"),
    );
    let bus_dyn: Arc<dyn Bus> = bus.clone();
    declare_bound_queue(&*bus, "it_raw", RAW_DATA_EXCHANGE, &["#"])
        .await
        .unwrap();
    declare_bound_queue(
        &*bus,
        "it_manager_hb",
        HEALTH_CHECK_EXCHANGE,
        &["heartbeat.manager"],
    )
    .await
    .unwrap();
    let mut raw = bus.consume("it_raw", 0).await.unwrap();
    let mut manager_hb = bus.consume("it_manager_hb", 0).await.unwrap();

    let probe = Probe::default();
    let settings = ManagerSettings {
        periods: [(PeriodGroup::System, Duration::from_secs(1))]
            .into_iter()
            .collect(),
        shutdown_grace: Duration::from_secs(5),
        ..test_settings()
    };
    let manager = MonitorsManager::new(bus_dyn, vec![FakePlanner::systems(&probe)], settings);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(manager.run(shutdown.clone()));

    let section =
        |id: &str| json!({"id": id, "parent_id": "GENERAL", "name": id, "monitor": "true"});
    let one = json!({"a": section("a")});
    publish_config(&bus, "general.systems_config", Bytes::from(one.to_string())).await;
    raw_from(&mut raw, "a").await;

    for round in 1..=2u64 {
        let out = rabbitmqctl(&["close_all_connections", "-p", vhost.name(), "fault test"]);
        assert!(out.status.success(), "close_all_connections: {out:?}");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while bus.reconnections() < round {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the bus never reconnected"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            !task.is_finished(),
            "the manager stopped after a disconnection"
        );

        // A new config after the reconnection: its new monitor starts.
        let id = format!("new{round}");
        let mut sections = serde_json::Map::new();
        sections.insert("a".to_owned(), section("a"));
        for r in 1..=round {
            sections.insert(format!("new{r}"), section(&format!("new{r}")));
        }
        publish_config(
            &bus,
            "general.systems_config",
            Bytes::from(Value::Object(sections).to_string()),
        )
        .await;
        raw_from(&mut raw, &id).await;
        raw_from(&mut raw, "a").await;

        // Pings are still answered, listing every monitor.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            bus.publish(HEALTH_CHECK_EXCHANGE, "ping", Bytes::from_static(b"ping"))
                .await
                .unwrap();
            let (_, hb) = next_json(&mut manager_hb, "manager heartbeat").await;
            let hb: ManagerHeartbeat = serde_json::from_value(hb).unwrap();
            if hb.running_processes.len() == 1 + round as usize {
                assert!(hb
                    .running_processes
                    .contains(&format!("Fake monitor ({id})")));
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "heartbeat: {hb:?}");
        }
    }

    shutdown.cancel();
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the manager stops within its grace")
        .unwrap()
        .unwrap();
    bus.close().await;
}
