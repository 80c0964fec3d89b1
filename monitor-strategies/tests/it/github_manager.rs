//! The GitHub and DockerHub planners run by the real `MonitorsManager` on the in-memory bus: config
//! messages in on `config`, envelopes out on `raw_data`, worker heartbeats, monitorables. Real
//! time (the strategies talk to a local HTTP server), short periods.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use serde_json::{json, Value};

use crate::common::{fixture, next_json, Running};
use monitor_core::keys::{HEALTH_CHECK_EXCHANGE, MONITORABLE_EXCHANGE, RAW_DATA_EXCHANGE};
use monitor_core::PeriodGroup;
use monitor_strategies::testing::{Reply, TestServer};
use monitor_strategies::StrategySettings;
use monitors_manager::ManagerSettings;

const RELEASES: &str = "/repos/docker/docker-py/releases";
const TAGS: &str = "/v2/repositories/prom/node-exporter/tags";
const TAGS_PAGE2: &str = "/v2/repositories/prom/node-exporter/tags?page=2";

/// The manager with GitHub and DockerHub pointed at `server`, periods of 1 s.
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
    Running::start(strategies, settings).await
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

    let running = start(&server).await;
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
    let running = start(&server).await;
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
