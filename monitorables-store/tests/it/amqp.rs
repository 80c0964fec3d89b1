//! Two store services, each with its own RabbitMQ connection and its own Redis connection, consume
//! one input queue on the real broker (a private vhost, deleted at the end) and merge into one base
//! chain at once: nothing is lost, and every write is followed by a heartbeat.
//!
//! Each (manager, type) sends exactly one message: two consumers on one queue may apply two messages
//! of the same key out of order (as two PANIC stores would), so only independent messages have a
//! defined final document.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{msg, normalize, src, RedisNs};
use monitor_bus::testing::{rabbitmqctl, Vhost};
use monitor_bus::Bus;
use monitor_bus::{declare_bound_queue, publish_json, AmqpBus};
use monitor_core::keys::{
    HEALTH_CHECK_EXCHANGE, HEARTBEAT_WORKER_ROUTING_KEY, MONITORABLE_EXCHANGE,
};
use monitor_core::{MonitorableKey, MonitorableType, WorkerHeartbeat};
use monitorables_store::{
    merge, run_store_service, Document, MonitorablesStore, StoreServiceSettings,
};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_on_rabbitmq_lose_nothing() {
    let vhost = tokio::task::spawn_blocking(|| Vhost::create("store-it"))
        .await
        .unwrap();
    let ns = RedisNs::new("amqp");
    let queue = "monitorable_store_input_queue";

    // Heartbeat listener, declared before the services start.
    let listener = vhost.bus("test-listener").await;
    declare_bound_queue(
        &listener,
        "test_store_heartbeats",
        HEALTH_CHECK_EXCHANGE,
        &[HEARTBEAT_WORKER_ROUTING_KEY],
    )
    .await
    .unwrap();
    let mut heartbeats = listener.consume("test_store_heartbeats", 0).await.unwrap();

    let shutdown = CancellationToken::new();
    let mut services = Vec::new();
    for i in 0..2 {
        let bus: Arc<dyn Bus> = Arc::new(vhost.bus(&format!("test-store-{i}")).await);
        let store: Arc<dyn MonitorablesStore> = Arc::new(ns.store());
        let settings = StoreServiceSettings {
            queue: queue.to_owned(),
            prefetch: 10,
            ..StoreServiceSettings::default()
        };
        services.push(tokio::spawn(run_store_service(
            bus,
            store,
            settings,
            shutdown.clone(),
        )));
    }

    let publisher = vhost.bus("test-publisher").await;
    publisher
        .declare_exchange(MONITORABLE_EXCHANGE)
        .await
        .unwrap();
    declare_bound_queue(&publisher, queue, MONITORABLE_EXCHANGE, &["*.*"])
        .await
        .unwrap();
    let types = [
        MonitorableType::Systems,
        MonitorableType::Nodes,
        MonitorableType::Chains,
    ];
    let mut expected = Document::new();
    let mut sent = 0;
    for m in 0..20 {
        for (ti, t) in types.iter().enumerate() {
            let sources = (0..1 + (m + ti) % 3)
                .map(|i| {
                    let chain = format!("c{}", (m + i) % 5);
                    src(
                        &chain,
                        &format!("chain {chain}"),
                        &format!("m{m}_t{ti}_s{i}"),
                        &format!("source {i}"),
                    )
                })
                .chain(std::iter::once(src("shared", "shared", "common", "common")))
                .collect();
            let message = msg(&format!("Manager {m}"), sources);
            let key = MonitorableKey::new("cosmos", *t);
            merge(&mut expected, *t, &message);
            publish_json(
                &publisher,
                MONITORABLE_EXCHANGE,
                &key.routing_key(),
                &message,
            )
            .await
            .unwrap();
            sent += 1;
        }
    }

    // Every message is followed by one heartbeat.
    let mut received = 0;
    while received < sent {
        let d = tokio::time::timeout(Duration::from_secs(30), heartbeats.next())
            .await
            .expect("heartbeats stopped coming")
            .expect("heartbeat consumer ended");
        let hb: WorkerHeartbeat = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(hb.component_name, "Monitorable Store");
        d.ack().await.unwrap();
        received += 1;
    }

    let store = ns.store();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = store.load("cosmos").await.unwrap();
        if normalize(&got) == normalize(&expected) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "document never matched: {}",
            got.to_json()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    shutdown.cancel();
    for s in services {
        tokio::time::timeout(Duration::from_secs(30), s)
            .await
            .expect("service did not stop")
            .unwrap()
            .unwrap();
    }
    publisher.delete_queue(queue).await.unwrap();
}

/// The broker force-closes the store service's connection twice: after each reconnection it still
/// consumes, applies and heartbeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_survives_forced_disconnections() {
    let vhost = tokio::task::spawn_blocking(|| Vhost::create("store-it"))
        .await
        .unwrap();
    let ns = RedisNs::new("amqp-fault");
    let queue = "monitorable_store_input_queue";
    let listener = vhost.bus("test-listener").await;
    declare_bound_queue(
        &listener,
        "test_store_heartbeats",
        HEALTH_CHECK_EXCHANGE,
        &[HEARTBEAT_WORKER_ROUTING_KEY],
    )
    .await
    .unwrap();
    let mut heartbeats = listener.consume("test_store_heartbeats", 0).await.unwrap();
    let service_bus = Arc::new(vhost.bus("test-store").await);
    let store = ns.store();
    let shutdown = CancellationToken::new();
    let service = tokio::spawn(run_store_service(
        service_bus.clone(),
        Arc::new(ns.store()),
        StoreServiceSettings {
            queue: queue.to_owned(),
            ..StoreServiceSettings::default()
        },
        shutdown.clone(),
    ));

    for round in 0..3u64 {
        if round > 0 {
            let name = vhost.name().to_owned();
            tokio::task::spawn_blocking(move || {
                rabbitmqctl(&["close_all_connections", "-p", &name, "fault test"]);
            })
            .await
            .unwrap();
            let give_up = Instant::now() + Duration::from_secs(60);
            while service_bus.reconnections() < round || listener.reconnections() < round {
                assert!(Instant::now() < give_up, "no reconnection");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let id = format!("s{round}");
        let message = msg("Manager", vec![src("c", "chain c", &id, "source")]);
        let key = MonitorableKey::new("cosmos", MonitorableType::Systems);
        let give_up = Instant::now() + Duration::from_secs(60);
        // Unroutable until the service (re)declared its queue: retried.
        while publish_json(
            &listener,
            MONITORABLE_EXCHANGE,
            &key.routing_key(),
            &message,
        )
        .await
        .is_err()
        {
            assert!(Instant::now() < give_up, "cannot publish");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        loop {
            let doc = store.load("cosmos").await.unwrap();
            let stored = doc
                .chain("c")
                .map(|c| format!("{:?}", c.sources(MonitorableType::Systems)))
                .unwrap_or_default();
            if stored.contains(&format!("\"{id}\"")) {
                break;
            }
            assert!(
                Instant::now() < give_up,
                "round {round} never applied: {stored}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let d = tokio::time::timeout(Duration::from_secs(60), heartbeats.next())
            .await
            .expect("a heartbeat after the write")
            .expect("listener open");
        let hb: WorkerHeartbeat = serde_json::from_slice(&d.body).unwrap();
        assert!(hb.is_alive);
        d.ack().await.unwrap();
    }
    assert!(!service.is_finished());
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(60), service)
        .await
        .expect("the service stops")
        .unwrap()
        .unwrap();
    service_bus.close().await;
    listener.close().await;
}

/// Under a load of monitorable messages the broker force-closes the service's connection again and
/// again, then refuses its vhost for a while (permissions withdrawn, as a broker that is down): the
/// service keeps consuming afterwards (a message published after the outages is applied), and
/// shutdown returns in the middle of an outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_keeps_consuming_across_outages_under_load() {
    let vhost = tokio::task::spawn_blocking(|| Vhost::create("store-it"))
        .await
        .unwrap();
    let ns = RedisNs::new("amqp-outage");
    let queue = "monitorable_store_input_queue";
    let service_bus = Arc::new(vhost.bus("test-store").await);
    let load_bus = Arc::new(vhost.bus("test-load").await);
    load_bus
        .declare_exchange(MONITORABLE_EXCHANGE)
        .await
        .unwrap();
    declare_bound_queue(load_bus.as_ref(), queue, MONITORABLE_EXCHANGE, &["*.*"])
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let service = tokio::spawn(run_store_service(
        service_bus.clone(),
        Arc::new(ns.store()),
        StoreServiceSettings {
            queue: queue.to_owned(),
            prefetch: 50,
            ..StoreServiceSettings::default()
        },
        shutdown.clone(),
    ));
    let stop_load = CancellationToken::new();
    let loader = {
        let bus = load_bus.clone();
        let stop = stop_load.clone();
        tokio::spawn(async move {
            let key = MonitorableKey::new("cosmos", MonitorableType::Systems).routing_key();
            let mut i = 0u64;
            while !stop.is_cancelled() {
                i += 1;
                let message = msg(
                    &format!("Manager {}", i % 200),
                    vec![src("c", "chain c", &format!("load{}", i % 200), "source")],
                );
                let publish = publish_json(bus.as_ref(), MONITORABLE_EXCHANGE, &key, &message);
                // Errors (outbox full while the broker is away) are the load's loss.
                if stop.run_until_cancelled(publish).await.is_none() {
                    return;
                }
            }
        })
    };
    let ctl = |args: Vec<String>| async move {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            rabbitmqctl(&args);
        })
        .await
        .unwrap();
    };
    let close = vec![
        "close_all_connections".to_owned(),
        "-p".to_owned(),
        vhost.name().to_owned(),
        "fault test".to_owned(),
    ];
    let deny = vec![
        "clear_permissions".to_owned(),
        "-p".to_owned(),
        vhost.name().to_owned(),
        "guest".to_owned(),
    ];
    let allow: Vec<String> = [
        "set_permissions",
        "-p",
        vhost.name(),
        "guest",
        ".*",
        ".*",
        ".*",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let wait = |what: &'static str, bus: Arc<AmqpBus>, cond: fn(&AmqpBus, u64) -> bool, n: u64| async move {
        let give_up = Instant::now() + Duration::from_secs(60);
        while !cond(&bus, n) {
            assert!(Instant::now() < give_up, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let reconnected: fn(&AmqpBus, u64) -> bool = |b, n| b.reconnections() > n && b.is_connected();
    let disconnected: fn(&AmqpBus, u64) -> bool = |b, _| !b.is_connected();
    for _ in 0..5 {
        let before = service_bus.reconnections();
        ctl(close.clone()).await;
        wait("a reconnection", service_bus.clone(), reconnected, before).await;
    }
    let before = service_bus.reconnections();
    ctl(deny.clone()).await;
    ctl(close.clone()).await;
    wait("the outage", service_bus.clone(), disconnected, 0).await;
    let outage_end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < outage_end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ctl(allow.clone()).await;
    wait("a reconnection", service_bus.clone(), reconnected, before).await;

    // A message published after the outages is applied.
    let marker = msg("Marker", vec![src("c", "chain c", "marker", "source")]);
    let key = MonitorableKey::new("cosmos", MonitorableType::Systems);
    let give_up = Instant::now() + Duration::from_secs(60);
    while publish_json(
        load_bus.as_ref(),
        MONITORABLE_EXCHANGE,
        &key.routing_key(),
        &marker,
    )
    .await
    .is_err()
    {
        assert!(Instant::now() < give_up, "cannot publish the marker");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = ns.store();
    loop {
        let doc = store.load("cosmos").await.unwrap();
        let stored = doc
            .chain("c")
            .map(|c| format!("{:?}", c.sources(MonitorableType::Systems)))
            .unwrap_or_default();
        if stored.contains("\"marker\"") {
            break;
        }
        assert!(Instant::now() < give_up, "the marker was never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Shutdown in the middle of an outage returns.
    ctl(deny).await;
    ctl(close).await;
    wait("the outage", service_bus.clone(), disconnected, 0).await;
    shutdown.cancel();
    stop_load.cancel();
    tokio::time::timeout(Duration::from_secs(60), service)
        .await
        .expect("the service stops mid-outage")
        .unwrap()
        .unwrap();
    loader.await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), service_bus.close())
        .await
        .expect("the bus closes mid-outage");
    tokio::time::timeout(Duration::from_secs(60), load_bus.close())
        .await
        .expect("the bus closes mid-outage");
    ctl(allow).await;
}
