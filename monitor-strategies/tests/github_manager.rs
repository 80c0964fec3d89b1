//! The GitHub and DockerHub planners run by the real `MonitorsManager` on the in-memory bus: config
//! messages in on `config`, envelopes out on `raw_data`, worker heartbeats, monitorables. Real
//! time (the strategies talk to a local HTTP server), short periods.

// Unwrap and expect are fine in tests (helpers included, which clippy's test exemption misses).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::FutureExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use monitor_bus::{Bus, Consumer, MemoryBus};
use monitor_core::keys::{
    CONFIG_EXCHANGE, HEALTH_CHECK_EXCHANGE, MONITORABLE_EXCHANGE, MONITORS_EXCHANGES,
    RAW_DATA_EXCHANGE,
};
use monitor_core::PeriodGroup;
use monitor_strategies::testing::{Reply, TestServer};
use monitor_strategies::{registry, StrategySettings};
use monitors_manager::{ManagerError, ManagerSettings, MonitorsManager};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures");
const RELEASES: &str = "/repos/docker/docker-py/releases";
const TAGS: &str = "/v2/repositories/prom/node-exporter/tags";
const TAGS_PAGE2: &str = "/v2/repositories/prom/node-exporter/tags?page=2";
/// Generous bound on waiting for a message; never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(30);

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{path}")).unwrap()
}

/// A manager running the strategies' registry on a memory bus.
struct Running {
    bus: MemoryBus,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ManagerError>>,
}

impl Running {
    async fn start(server: &TestServer) -> Running {
        let mut strategies = StrategySettings::default()
            .with_group_timeout(PeriodGroup::Github, Duration::from_millis(800))
            .with_group_timeout(PeriodGroup::Dockerhub, Duration::from_millis(800));
        strategies.github.releases_template = server.url("/repos/{}releases");
        strategies.dockerhub.tags_template = server.url("/v2/repositories/{}/{}/tags");
        let settings = ManagerSettings {
            periods: [
                (PeriodGroup::Github, Duration::from_secs(1)),
                (PeriodGroup::Dockerhub, Duration::from_secs(1)),
            ]
            .into_iter()
            .collect(),
            ..ManagerSettings::default()
        };
        let bus = MemoryBus::new();
        for exchange in MONITORS_EXCHANGES {
            bus.declare_exchange(exchange).await.unwrap();
        }
        let manager = MonitorsManager::new(Arc::new(bus.clone()), registry(strategies), settings);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(manager.run(shutdown.clone()));
        Running {
            bus,
            shutdown,
            task,
        }
    }

    async fn capture(&self, queue: &str, exchange: &str, key: &str) -> Consumer {
        self.bus.declare_queue(queue).await.unwrap();
        self.bus.bind_queue(queue, exchange, key).await.unwrap();
        self.bus.consume(queue, 0).await.unwrap()
    }

    /// Publishes a config message once the manager's queue is bound (retrying unroutable).
    async fn config(&self, routing_key: &str, body: &Value) {
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

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// The next message's JSON body (acked).
async fn next_json(consumer: &mut Consumer) -> (String, Value) {
    let delivery = tokio::time::timeout(PATIENCE, consumer.next())
        .await
        .expect("no message in time")
        .expect("consumer closed");
    let key = delivery.routing_key.clone();
    let body = serde_json::from_slice(&delivery.body).unwrap();
    delivery.ack().await.unwrap();
    (key, body)
}

fn repo(id: &str, ns: &str, name: &str) -> Value {
    json!({"id": id, "parent_id": "GENERAL", "repo_namespace": ns, "repo_name": name,
           "monitor_repo": "true"})
}

#[tokio::test]
async fn github_and_dockerhub_configs_run_through_the_manager() {
    let server = TestServer::start().await.unwrap();
    server.route(RELEASES, Reply::json(fixture("github/releases.json")));
    let page1 = fixture("dockerhub/tags_page1.json").replace(
        "https://hub.docker.com/v2/repositories/prom/node-exporter/tags?page=2",
        &server.url(TAGS_PAGE2),
    );
    server.route(TAGS, Reply::json(page1));
    server.route(
        TAGS_PAGE2,
        Reply::json(fixture("dockerhub/tags_page2.json")),
    );

    let running = Running::start(&server).await;
    let mut github = running
        .capture("test_github", RAW_DATA_EXCHANGE, "github")
        .await;
    let mut dockerhub = running
        .capture("test_dockerhub", RAW_DATA_EXCHANGE, "dockerhub")
        .await;
    let mut monitorables = running
        .capture("test_monitorables", MONITORABLE_EXCHANGE, "general.*")
        .await;
    let mut heartbeats = running
        .capture("test_heartbeats", HEALTH_CHECK_EXCHANGE, "heartbeat.worker")
        .await;

    running
        .config(
            "general.github_repos_config",
            &json!({"DEFAULT": {}, "repo_1": repo("repo_1", "", "docker/docker-py")}),
        )
        .await;
    running
        .config(
            "general.dockerhub_repos_config",
            &json!({"docker_1": repo("docker_1", "prom", "node-exporter")}),
        )
        .await;

    let (key, body) = next_json(&mut monitorables).await;
    assert_eq!(key, "general.github_repos");
    assert_eq!(
        body["sources"],
        json!([{"chain_id": "GENERAL", "chain_name": "general", "source_id": "repo_1",
                "source_name": "docker/docker-py"}])
    );
    let (key, body) = next_json(&mut monitorables).await;
    assert_eq!(key, "general.dockerhub_repos");
    assert_eq!(
        body["sources"],
        json!([{"chain_id": "GENERAL", "chain_name": "general", "source_id": "docker_1",
                "source_name": "prom/node-exporter"}])
    );

    let (_, body) = next_json(&mut github).await;
    let result = &body["result"];
    assert_eq!(
        result["meta_data"]["monitor_name"],
        "GitHub monitor (docker docker-py)"
    );
    assert_eq!(result["meta_data"]["repo_name"], "docker/docker-py/");
    assert_eq!(result["meta_data"]["repo_id"], "repo_1");
    assert_eq!(result["meta_data"]["repo_parent_id"], "GENERAL");
    assert_eq!(result["data"].as_object().unwrap().len(), 30);
    assert_eq!(
        result["data"]["0"],
        json!({"release_name": "3.1.3", "tag_name": "3.1.3"})
    );

    let (_, body) = next_json(&mut dockerhub).await;
    let result = &body["result"];
    assert_eq!(
        result["meta_data"]["monitor_name"],
        "DockerHub monitor (prom node-exporter)"
    );
    assert_eq!(result["data"].as_object().unwrap().len(), 14);
    assert_eq!(
        result["data"]["0"].to_string(),
        r#"{"tag_name":"latest","last_updated":1669720007.785765}"#
    );

    // Worker heartbeats name both monitors.
    let mut names = std::collections::BTreeSet::new();
    while names.len() < 2 {
        let (_, hb) = next_json(&mut heartbeats).await;
        assert_eq!(hb["is_alive"], true);
        names.insert(hb["component_name"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "DockerHub monitor (prom node-exporter)",
            "GitHub monitor (docker docker-py)"
        ]
    );

    // `{}` removes the GitHub monitor: an empty monitorables list.
    running
        .config("general.github_repos_config", &json!({}))
        .await;
    let (key, body) = next_json(&mut monitorables).await;
    assert_eq!(key, "general.github_repos");
    assert_eq!(body["sources"], json!([]));
    running.stop().await;
}

#[tokio::test]
async fn a_rate_limited_monitor_sends_heartbeats_but_no_data_until_the_reset() {
    let server = TestServer::start().await.unwrap();
    let reset = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    server.route(
        RELEASES,
        Reply::status(403, fixture("github/rate_limited.json"))
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", &reset.to_string()),
    );
    let running = Running::start(&server).await;
    let mut github = running
        .capture("test_github", RAW_DATA_EXCHANGE, "github")
        .await;
    let mut heartbeats = running
        .capture("test_heartbeats", HEALTH_CHECK_EXCHANGE, "heartbeat.worker")
        .await;
    running
        .config(
            "general.github_repos_config",
            &json!({"repo_1": repo("repo_1", "", "docker/docker-py")}),
        )
        .await;

    let (_, body) = next_json(&mut github).await;
    assert_eq!(body["error"]["code"], 5007);
    // Three rounds, each with its heartbeat; only the first one published data.
    for _ in 0..3 {
        let (_, hb) = next_json(&mut heartbeats).await;
        assert_eq!(hb["component_name"], "GitHub monitor (docker docker-py)");
    }
    assert_eq!(server.hits(RELEASES), 1);
    // No second envelope: the skipped rounds published nothing but their heartbeats.
    assert!(github.next().now_or_never().is_none());
    running.stop().await;
}
