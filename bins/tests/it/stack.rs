//! The whole stack on the machine's real RabbitMQ and Redis, with the real binaries: `panic-config`
//! publishes a config folder, `monitors-manager` runs it, `monitorables-store` and `health-checker`
//! write Redis. One vhost and one Redis namespace per test, removed at the end.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{
    node_exporter_fixture, spawn_service, write_systems, TempDir, Vhost, PATIENCE, REDIS_URL,
};
use monitor_bus::{declare_bound_queue, AmqpBus, AmqpSettings};
use monitor_bus::{Bus, Consumer};
use monitor_core::keys::{HEALTH_CHECK_EXCHANGE, RAW_DATA_EXCHANGE};
use monitor_strategies::testing::{Reply, TestServer};
use redis::AsyncCommands;
use serde_json::Value;

fn spawn(bin: &str, args: &[&str]) -> tokio::process::Child {
    spawn_service(bin, args, "1")
}

async fn next_json(consumer: &mut Consumer) -> (String, Value) {
    let d = tokio::time::timeout(PATIENCE, consumer.next())
        .await
        .expect("a message in time")
        .expect("consumer open");
    let key = d.routing_key.clone();
    let v = serde_json::from_slice(&d.body).unwrap_or(Value::Null);
    d.ack().await.unwrap();
    (key, v)
}

/// Poll Redis until `key` satisfies `pred` (None = key absent).
async fn wait_redis(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    what: &str,
    pred: impl Fn(Option<&Value>) -> bool,
) -> Option<Value> {
    let start = Instant::now();
    loop {
        let raw: Option<String> = conn.get(key).await.unwrap();
        let v = raw.as_deref().map(|s| serde_json::from_str(s).unwrap());
        if pred(v.as_ref()) {
            return v;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "{key}: {what}; last seen {v:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn source_ids(doc: Option<&Value>, chain_id: &str) -> Vec<String> {
    doc.and_then(|d| d[chain_id]["systems"].as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn write_chain_systems(cfg: &Path, sub: &str, systems: &[(&str, &str, &str)]) {
    let mut text = String::new();
    for (id, name, url) in systems {
        text.push_str(&format!(
            "[{id}]\nid = {id}\nparent_id = chain_{sub}\nname = {name}\nexporter_url = {url}\nmonitor_system = true\n\n"
        ));
    }
    let path = cfg.join(format!("chains/cosmos/{sub}/systems_config.ini"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn config_to_raw_data_heartbeats_and_redis() {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok(node_exporter_fixture()));
    let url = server.url("/metrics");
    let vhost = Vhost::create("panic-bins");
    let amqp = vhost.url();
    let ns = format!("panic_test_{}", crate::common::unique());
    let dir = TempDir::new("panic-stack");
    let cfg = dir.0.join("config");
    write_systems(
        &cfg.join("general/systems_config.ini"),
        &[("sys_g", "general_host", &url)],
    );
    write_chain_systems(
        &cfg,
        "hub_a",
        &[("sys_a1", "a1", &url), ("sys_a2", "a2", &url)],
    );
    write_chain_systems(&cfg, "hub_b", &[("sys_b1", "b1", &url)]);

    // Test-side listeners: raw data and heartbeats.
    let bus = Arc::new(
        AmqpBus::connect(AmqpSettings {
            connection_name: "stack test".to_owned(),
            ..AmqpSettings::new(amqp.clone())
        })
        .await
        .expect("RabbitMQ on 127.0.0.1:5672"),
    );
    declare_bound_queue(bus.as_ref(), "test_raw", RAW_DATA_EXCHANGE, &["system"])
        .await
        .unwrap();
    declare_bound_queue(
        bus.as_ref(),
        "test_hb",
        HEALTH_CHECK_EXCHANGE,
        &["heartbeat.worker"],
    )
    .await
    .unwrap();
    let mut raw = bus.consume("test_raw", 50).await.unwrap();
    let mut hb = bus.consume("test_hb", 50).await.unwrap();

    // The services.
    let _store = spawn(
        env!("CARGO_BIN_EXE_monitorables-store"),
        &[
            "--amqp-url",
            &amqp,
            "--redis-url",
            REDIS_URL,
            "--namespace",
            &ns,
        ],
    );
    let _checker = spawn(
        env!("CARGO_BIN_EXE_health-checker"),
        &[
            "--amqp-url",
            &amqp,
            "--redis-url",
            REDIS_URL,
            "--namespace",
            &ns,
            "--ping-interval",
            "1s",
        ],
    );
    let manager = spawn(
        env!("CARGO_BIN_EXE_monitors-manager"),
        &["--amqp-url", &amqp],
    );
    // panic-config declares the manager's queue, so the order of start does not matter.
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_panic-config"))
        .args(["--amqp-url", &amqp, "--config-dir", cfg.to_str().unwrap()])
        .status()
        .await
        .unwrap();
    assert!(status.success());

    // Raw data: the system envelope with SOURCES.md's numbers, and worker heartbeats.
    let (key, v) = next_json(&mut raw).await;
    assert_eq!(key, "system");
    assert_eq!(
        v["result"]["data"]["system_ram_usage"],
        serde_json::json!(37.92),
        "{v}"
    );
    // Worker heartbeats come from the store too: wait for a monitor's.
    loop {
        let (key, v) = next_json(&mut hb).await;
        assert_eq!(key, "heartbeat.worker");
        assert_eq!(v["is_alive"], true);
        if v["component_name"]
            .as_str()
            .unwrap_or("")
            .starts_with("System monitor (")
        {
            break;
        }
    }

    // Redis holds exactly what the manager runs, per base chain.
    let client = redis::Client::open(REDIS_URL).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let cosmos_key = format!("{ns}:monitorables:cosmos");
    let general_key = format!("{ns}:monitorables:general");
    let doc = wait_redis(&mut conn, &cosmos_key, "both hubs", |d| {
        source_ids(d, "chain_hub_a").len() == 2 && source_ids(d, "chain_hub_b").len() == 1
    })
    .await
    .unwrap();
    assert_eq!(doc["chain_hub_a"]["chain_name"], "hub_a");
    assert_eq!(doc["chain_hub_a"]["systems"]["sys_a1"]["name"], "a1");
    assert_eq!(
        doc["chain_hub_a"]["systems"]["sys_a1"]["manager_names"],
        serde_json::json!(["Monitors Manager"])
    );
    wait_redis(&mut conn, &general_key, "general host", |d| {
        source_ids(d, "GENERAL") == ["sys_g"]
    })
    .await;

    // The manager answers the health checker's pings; Redis holds its heartbeat.
    let hb_key = format!("{ns}:c1_Monitors Manager");
    let mh = wait_redis(
        &mut conn,
        &hb_key,
        "manager heartbeat with 4 monitors",
        |d| {
            d.and_then(|d| d["running_processes"].as_array())
                .is_some_and(|r| r.len() == 4)
        },
    )
    .await
    .unwrap();
    let running: Vec<&str> = mh["running_processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        running.contains(&"System monitor (a1)")
            && running.contains(&"System monitor (general_host)")
    );
    assert_eq!(mh["dead_processes"], serde_json::json!([]));
    // Worker heartbeats are stored too.
    wait_redis(
        &mut conn,
        &format!("{ns}:c1_System monitor (b1)"),
        "worker heartbeat",
        |d| d.is_some_and(|d| d["is_alive"] == true),
    )
    .await;

    // One system removed from hub_a: it disappears from Redis.
    write_chain_systems(&cfg, "hub_a", &[("sys_a1", "a1", &url)]);
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_panic-config"))
        .args(["--amqp-url", &amqp, "--config-dir", cfg.to_str().unwrap()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    wait_redis(&mut conn, &cosmos_key, "sys_a2 gone", |d| {
        source_ids(d, "chain_hub_a") == ["sys_a1"] && source_ids(d, "chain_hub_b") == ["sys_b1"]
    })
    .await;

    // `{}` for hub_b (its file deleted, published as PANIC did): its entry goes.
    let publisher = AmqpBus::connect(AmqpSettings::new(amqp.clone()))
        .await
        .unwrap();
    publisher
        .publish(
            monitor_core::keys::CONFIG_EXCHANGE,
            "chains.cosmos.hub_b.systems_config",
            bytes::Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
    wait_redis(&mut conn, &cosmos_key, "hub_b gone", |d| {
        d.is_some_and(|d| d.get("chain_hub_b").is_none())
            && source_ids(d, "chain_hub_a") == ["sys_a1"]
    })
    .await;

    // Clean up Redis; processes are killed on drop, the vhost deleted.
    drop(manager);
    let keys: Vec<String> = conn.keys(format!("{ns}:*")).await.unwrap();
    if !keys.is_empty() {
        let _: () = conn.del(keys).await.unwrap();
    }
    publisher.close().await;
    bus.close().await;
}

#[tokio::test]
async fn two_shards_share_the_work_on_one_rabbitmq() {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok(node_exporter_fixture()));
    let url = server.url("/metrics");
    let vhost = Vhost::create("panic-bins");
    let amqp = vhost.url();
    let dir = TempDir::new("panic-shards");
    let cfg = dir.0.join("config");
    let names: Vec<String> = (0..12).map(|i| format!("host{i:02}")).collect();
    let systems: Vec<(String, String, String)> = names
        .iter()
        .map(|n| (format!("sys_{n}"), n.clone(), url.clone()))
        .collect();
    let refs: Vec<(&str, &str, &str)> = systems
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    write_systems(&cfg.join("general/systems_config.ini"), &refs);

    let bus = AmqpBus::connect(AmqpSettings::new(amqp.clone()))
        .await
        .unwrap();
    declare_bound_queue(
        &bus,
        "test_mh",
        HEALTH_CHECK_EXCHANGE,
        &["heartbeat.manager"],
    )
    .await
    .unwrap();
    let mut mh = bus.consume("test_mh", 50).await.unwrap();

    // The config is published before the shards start: their queues keep it.
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_panic-config"))
        .args([
            "--amqp-url",
            &amqp,
            "--config-dir",
            cfg.to_str().unwrap(),
            "--shards",
            "2",
        ])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let _s0 = spawn(
        env!("CARGO_BIN_EXE_monitors-manager"),
        &["--amqp-url", &amqp, "--shard", "0/2"],
    );
    let _s1 = spawn(
        env!("CARGO_BIN_EXE_monitors-manager"),
        &["--amqp-url", &amqp, "--shard", "1/2"],
    );

    // Ping until both shards' heartbeats together list every system exactly once.
    let start = Instant::now();
    let mut latest: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    loop {
        bus.publish(
            HEALTH_CHECK_EXCHANGE,
            "ping",
            bytes::Bytes::from_static(b"ping"),
        )
        .await
        .ok();
        while let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(500), mh.next()).await {
            let v: Value = serde_json::from_slice(&d.body).unwrap();
            d.ack().await.unwrap();
            let running = v["running_processes"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect();
            latest.insert(v["component_name"].as_str().unwrap().to_owned(), running);
        }
        let mut all: Vec<String> = latest.values().flatten().cloned().collect();
        all.sort();
        let expected: Vec<String> = names
            .iter()
            .map(|n| format!("System monitor ({n})"))
            .collect();
        if latest.len() == 2 && all == expected {
            assert!(
                latest.contains_key("Monitors Manager (shard 0/2)"),
                "{latest:?}"
            );
            assert!(
                latest.contains_key("Monitors Manager (shard 1/2)"),
                "{latest:?}"
            );
            assert!(
                latest.values().all(|r| !r.is_empty()),
                "both shards work: {latest:?}"
            );
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "shards never covered every system once: {latest:?}"
        );
    }
    bus.close().await;
}
