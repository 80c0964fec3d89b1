//! The DockerHub strategy against the local test server replaying `shared/fixtures/dockerhub`
//! (two pages), every error path, the page cap, and the DockerHub planner.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use monitor_core::config::ConfigMessage;
use monitor_core::{ConfigError, Monitor, MonitorableType, PeriodGroup, Plan, Planner, RawDataKey};
use monitor_strategies::testing::{refused_url, BodyMode, Reply, TestServer};
use monitor_strategies::{tags_url, DockerHubMonitor, DockerHubRepoConfig};
use monitor_strategies::{DockerHubPlanner, StrategySettings, Target};

use crate::common::{self, check_meta};

const PATH: &str = "/v2/repositories/prom/node-exporter/tags";
const PAGE2: &str = "/v2/repositories/prom/node-exporter/tags?page=2";
const NAME: &str = "DockerHub monitor (prom node-exporter)";
const REAL_NEXT: &str = "https://hub.docker.com/v2/repositories/prom/node-exporter/tags?page=2";

fn fixture(name: &str) -> String {
    common::fixture(&format!("dockerhub/{name}"))
}

/// What PANIC gives for the two pages (computed with Python from the fixtures).
const EXPECTED_DATA: &str = r#"{"0":{"tag_name":"latest","last_updated":1669720007.785765},"1":{"tag_name":"v1.5.0","last_updated":1669719953.107911},"2":{"tag_name":"master","last_updated":1669653669.33402},"3":{"tag_name":"v1.4.1","last_updated":1669281150.511784},"4":{"tag_name":"v1.4.0","last_updated":1664032811.902213},"5":{"tag_name":"v1.4.0-rc.0","last_updated":1663675424.41239},"6":{"tag_name":"v1.3.1","last_updated":1638364791.650012},"7":{"tag_name":"v1.3.0","last_updated":1637232448.011245},"8":{"tag_name":"v1.2.2","last_updated":1628265897.22314},"9":{"tag_name":"v1.2.1","last_updated":1628163082.8499},"10":{"tag_name":"v1.2.0","last_updated":1626357756.377745},"11":{"tag_name":"v1.1.2","last_updated":1614957069.531029},"12":{"tag_name":"v1.1.1","last_updated":1613147630.004417},"13":{"tag_name":"v1.1.0","last_updated":1612555121.770033}}"#;

fn settings_for(server: &TestServer) -> StrategySettings {
    let mut s = StrategySettings::default().with_request_timeout(Duration::from_millis(500));
    s.dockerhub.tags_template = server.url("/v2/repositories/{}/{}/tags");
    s
}

fn monitor_for(url: &str, settings: &StrategySettings) -> DockerHubMonitor {
    DockerHubMonitor::new(
        DockerHubRepoConfig {
            repo_id: "docker_1".to_owned(),
            parent_id: "GENERAL".to_owned(),
            repo_namespace: "prom".to_owned(),
            repo_name: "node-exporter".to_owned(),
            tags_url: url.to_owned(),
        },
        settings
            .http(Target::Public, PeriodGroup::Dockerhub)
            .unwrap(),
        settings.dockerhub.max_pages,
    )
}

fn hub_monitor(settings: &StrategySettings) -> DockerHubMonitor {
    let url = tags_url(&settings.dockerhub.tags_template, "prom", "node-exporter");
    monitor_for(&url, settings)
}

/// The two fixture pages, `next` pointing at the test server.
fn serve_fixture(server: &TestServer) {
    let page1 = fixture("tags_page1.json");
    assert!(page1.contains(REAL_NEXT));
    server.route(
        PATH,
        Reply::json(page1.replace(REAL_NEXT, &server.url(PAGE2))),
    );
    server.route(PAGE2, Reply::json(fixture("tags_page2.json")));
}

/// The monitor's meta_data (`time` near now).
fn meta() -> Value {
    json!({"monitor_name": NAME, "repo_namespace": "prom", "repo_name": "node-exporter",
           "repo_id": "docker_1", "repo_parent_id": "GENERAL", "time": null})
}

async fn one_body(monitor: &mut DockerHubMonitor) -> Value {
    common::one_body(monitor, RawDataKey::Dockerhub).await
}

fn assert_error(body: Value, code: u64, message: &str) {
    common::assert_error(&meta(), body, code, message);
}

const EMPTY_5020: &str = "API call came back empty, repo probably does not exist.";

#[tokio::test]
async fn two_pages_give_panics_data() {
    let server = TestServer::start().await.unwrap();
    serve_fixture(&server);
    let settings = settings_for(&server);
    let mut monitor = hub_monitor(&settings);
    assert_eq!(monitor.name(), NAME);
    let mut body = one_body(&mut monitor).await;
    assert!(body.get("result").is_some(), "not a result: {body}");
    let result = body.get_mut("result").unwrap();
    check_meta(&result["meta_data"], &meta());
    assert_eq!(result["data"].to_string(), EXPECTED_DATA);
    let targets: Vec<String> = server.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, [PATH, PAGE2]);
    for r in server.requests() {
        assert!(r
            .header("user-agent")
            .unwrap()
            .starts_with("panic-monitors/"));
    }
}

#[tokio::test]
async fn relative_next_is_resolved() {
    let server = TestServer::start().await.unwrap();
    server.route(
        PATH,
        Reply::json(
            json!({"count": 2, "next": "tags?page=2", "results": [
                {"name": "a", "last_updated": "2022-11-29T11:06:47.785765Z"}]})
            .to_string(),
        ),
    );
    server.route(
        PAGE2,
        Reply::json(
            json!({"count": 2, "next": null, "results": [{"name": "b", "last_updated": null}]})
                .to_string(),
        ),
    );
    let mut monitor = hub_monitor(&settings_for(&server));
    let body = one_body(&mut monitor).await;
    assert_eq!(
        body["result"]["data"],
        json!({"0": {"tag_name": "a", "last_updated": 1669720007.785765},
               "1": {"tag_name": "b", "last_updated": null}})
    );
}

#[tokio::test]
async fn unparsable_or_missing_fields_give_null() {
    let server = TestServer::start().await.unwrap();
    server.route(
        PATH,
        Reply::json(
            json!({"count": 3, "next": null, "results": [
                {"name": "odd", "last_updated": "last tuesday"},
                {"last_updated": "2021-02-05T19:58:41.770033Z"},
                {"name": "v1", "last_updated": 12}]})
            .to_string(),
        ),
    );
    let mut monitor = hub_monitor(&settings_for(&server));
    let body = one_body(&mut monitor).await;
    assert_eq!(
        body["result"]["data"].to_string(),
        r#"{"0":{"tag_name":"odd","last_updated":null},"1":{"tag_name":null,"last_updated":1612555121.770033},"2":{"tag_name":"v1","last_updated":null}}"#
    );
}

#[tokio::test]
async fn empty_repository_is_5020() {
    let server = TestServer::start().await.unwrap();
    server.route(PATH, Reply::json(fixture("empty.json")));
    let mut monitor = hub_monitor(&settings_for(&server));
    assert_error(one_body(&mut monitor).await, 5020, EMPTY_5020);
}

#[tokio::test]
async fn not_found_is_5020_not_a_crash() {
    let server = TestServer::start().await.unwrap();
    server.route(PATH, Reply::status(404, fixture("not_found.json")));
    let mut monitor = hub_monitor(&settings_for(&server));
    assert_error(one_body(&mut monitor).await, 5020, EMPTY_5020);
}

#[tokio::test]
async fn a_page_without_results_is_5020() {
    let server = TestServer::start().await.unwrap();
    server.route(
        PATH,
        Reply::json(json!({"count": 14, "next": server.url(PAGE2), "results": []}).to_string()),
    );
    server.route(PAGE2, Reply::json(r#"{"message": "page not found"}"#));
    let mut monitor = hub_monitor(&settings_for(&server));
    assert_error(one_body(&mut monitor).await, 5020, EMPTY_5020);
}

#[tokio::test]
async fn refused_connection_is_5021_with_the_tags_url() {
    let url = refused_url(PATH).await.unwrap();
    let mut monitor = monitor_for(&url, &StrategySettings::default());
    assert_error(
        one_body(&mut monitor).await,
        5021,
        &format!("Cannot access Dockerhub page {url}"),
    );
}

#[tokio::test]
async fn timeout_on_a_later_page_is_5021_with_the_tags_url() {
    let server = TestServer::start().await.unwrap();
    serve_fixture(&server);
    server.route(PAGE2, Reply::no_response());
    let settings = settings_for(&server);
    let mut monitor = hub_monitor(&settings);
    assert_error(
        one_body(&mut monitor).await,
        5021,
        &format!("Cannot access Dockerhub page {}", server.url(PATH)),
    );
}

#[tokio::test]
async fn truncated_body_is_5005() {
    let server = TestServer::start().await.unwrap();
    server.route(
        PATH,
        Reply::json(fixture("tags_page1.json")).mode(BodyMode::Truncated(200)),
    );
    let settings = settings_for(&server);
    let mut monitor = hub_monitor(&settings);
    assert_error(
        one_body(&mut monitor).await,
        5005,
        &format!(
            "{NAME} experienced errors when reading data from {}",
            server.url(PATH)
        ),
    );
}

#[tokio::test]
async fn invalid_json_is_5012() {
    let server = TestServer::start().await.unwrap();
    server.route(PATH, Reply::json(r#"{"count": 14, "next": "#));
    let mut monitor = hub_monitor(&settings_for(&server));
    assert_error(
        one_body(&mut monitor).await,
        5012,
        "EOF while parsing a value at line 1 column 22",
    );
}

#[tokio::test]
async fn server_error_with_a_non_json_body_on_page_two_is_5012() {
    let server = TestServer::start().await.unwrap();
    serve_fixture(&server);
    server.route(
        PAGE2,
        Reply::status(500, "<html>Internal Server Error</html>"),
    );
    let mut monitor = hub_monitor(&settings_for(&server));
    assert_error(
        one_body(&mut monitor).await,
        5012,
        "expected value at line 1 column 1",
    );
}

#[tokio::test]
async fn next_elsewhere_is_not_followed() {
    let server = TestServer::start().await.unwrap();
    let elsewhere = TestServer::start().await.unwrap();
    elsewhere.route(PAGE2, Reply::json(fixture("tags_page2.json")));
    let settings = settings_for(&server);
    let reading_error = format!(
        "{NAME} experienced errors when reading data from {}",
        server.url(PATH)
    );
    for next in [
        elsewhere.url(PAGE2),
        REAL_NEXT.to_owned(),
        server.url(PAGE2).replace("127.0.0.1", "localhost"),
        "ftp://127.0.0.1/x".to_owned(),
    ] {
        let page1 = fixture("tags_page1.json").replace(REAL_NEXT, &next);
        server.route(PATH, Reply::json(page1));
        let mut monitor = hub_monitor(&settings);
        assert_error(one_body(&mut monitor).await, 5005, &reading_error);
    }
    assert_eq!(elsewhere.requests().len(), 0);
    assert_eq!(server.hits(PAGE2), 0);
    // A `next` that is not a string.
    server.route(
        PATH,
        Reply::json(json!({"count": 1, "next": 2, "results": []}).to_string()),
    );
    let mut monitor = hub_monitor(&settings);
    assert_error(one_body(&mut monitor).await, 5005, &reading_error);
}

#[tokio::test]
async fn page_cap_stops_endless_pagination() {
    let server = TestServer::start().await.unwrap();
    let settings = settings_for(&server).with_dockerhub_max_pages(3);
    // Every page points at itself.
    let looping = json!({"count": 100, "next": server.url(PATH),
                         "results": [{"name": "t", "last_updated": "2021-02-05T19:58:41Z"}]});
    server.route(PATH, Reply::json(looping.to_string()));
    let mut monitor = hub_monitor(&settings);
    assert_error(
        one_body(&mut monitor).await,
        5005,
        &format!(
            "{NAME} experienced errors when reading data from {}",
            server.url(PATH)
        ),
    );
    assert_eq!(server.hits(PATH), 3);
    // The fixture's two pages fit in a cap of 2.
    serve_fixture(&server);
    let settings = settings_for(&server).with_dockerhub_max_pages(2);
    let mut monitor = hub_monitor(&settings);
    assert!(one_body(&mut monitor).await.get("result").is_some());
}

#[tokio::test]
async fn invalid_template_is_5009() {
    let mut monitor = monitor_for("hub.docker.com/prom/tags", &StrategySettings::default());
    assert_error(
        one_body(&mut monitor).await,
        5009,
        "Invalid URL 'hub.docker.com/prom/tags'",
    );
}

// ---------------------------------------------------------------------------------------------
// The planner.

fn repo(id: &str, parent: &str, ns: &str, name: &str, monitor: &str) -> Value {
    json!({"id": id, "parent_id": parent, "repo_namespace": ns, "repo_name": name,
           "monitor_repo": monitor})
}

fn plan_with(settings: StrategySettings, routing_key: &str, body: &Value) -> Plan {
    let message = ConfigMessage::parse(routing_key, body.to_string().as_bytes()).unwrap();
    crate::common::plan_checked(&DockerHubPlanner::new(Arc::new(settings)), &message)
}

fn plan(routing_key: &str, body: &Value) -> Plan {
    plan_with(StrategySettings::default(), routing_key, body)
}

#[test]
fn general_and_chain_dockerhub_repos_config() {
    let body = json!({
        "DEFAULT": {},
        "d1": repo("d1", "GENERAL", "prom", "node-exporter", "true"),
        "d2": repo("d2", "GENERAL", "library", "nginx", "false"),
    });
    let plan = plan("general.dockerhub_repos_config", &body);
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    assert_eq!(plan.specs.len(), 1);
    let spec = &plan.specs[0];
    assert_eq!(spec.id, "d1");
    assert_eq!(spec.component_name, NAME);
    assert_eq!(spec.group, PeriodGroup::Dockerhub);
    let m = &spec.monitorables[0];
    assert_eq!(m.base_chain, "general");
    assert_eq!(m.monitorable_type, MonitorableType::DockerhubRepos);
    assert_eq!(m.source.chain_id, "GENERAL");
    assert_eq!(m.source.chain_name, "general");
    assert_eq!(m.source.source_id, "d1");
    assert_eq!(m.source.source_name, "prom/node-exporter");
    assert!((spec.build)().is_ok());

    let body = json!({"d": repo("d", "chain_eth", "smartcontract", "chainlink", "true")});
    let plan = self::plan("chains.chainlink.ethereum.dockerhub_repos_config", &body);
    let m = &plan.specs[0].monitorables[0];
    assert_eq!(m.base_chain, "chainlink");
    assert_eq!(m.source.chain_name, "ethereum");
    assert_eq!(m.source.chain_id, "chain_eth");
    assert_eq!(m.source.source_name, "smartcontract/chainlink");

    let planner = DockerHubPlanner::new(Arc::new(StrategySettings::default()));
    let message =
        ConfigMessage::parse("general.github_repos_config", body.to_string().as_bytes()).unwrap();
    assert!(!planner.accepts(&message.key));
    assert!(crate::common::plan_checked(&planner, &message)
        .specs
        .is_empty());
    let message = ConfigMessage::parse("general.dockerhub_repos_config", b"{}").unwrap();
    assert!(crate::common::plan_checked(&planner, &message)
        .specs
        .is_empty());
    assert_eq!(
        planner.monitorable_types(&message.key),
        [MonitorableType::DockerhubRepos]
    );
}

#[test]
fn missing_or_blank_fields_are_plan_errors() {
    let mut missing = repo("a", "GENERAL", "prom", "x", "true");
    missing.as_object_mut().unwrap().remove("repo_namespace");
    let body = json!({
        "a": missing,
        "b": repo("b", "GENERAL", "", "x", "true"),
        "c": repo("c", "GENERAL", "prom", " ", "true"),
        "d": repo("d", "GENERAL", "", "", "false"),
        "e": repo("e", "GENERAL", "prom", "ok", "true"),
    });
    let plan = plan("general.dockerhub_repos_config", &body);
    assert_eq!(plan.specs.len(), 1);
    assert_eq!(plan.specs[0].id, "e");
    assert_eq!(plan.errors.len(), 3, "{:?}", plan.errors);
    assert!(
        matches!(&plan.errors[0], ConfigError::MissingField { section, field, .. }
        if section == "a" && field == "repo_namespace")
    );
    assert!(
        matches!(&plan.errors[1], ConfigError::BadField { section, field, .. }
        if section == "b" && field == "repo_namespace")
    );
    assert!(
        matches!(&plan.errors[2], ConfigError::BadField { section, field, .. }
        if section == "c" && field == "repo_name")
    );
}

#[test]
fn fingerprints_follow_the_used_fields() {
    let print = |ns: &str, name: &str, id: &str, extra: &str| {
        let mut r = repo(id, "GENERAL", ns, name, "true");
        r["unused"] = json!(extra);
        plan("general.dockerhub_repos_config", &json!({ "r": r })).specs[0].fingerprint
    };
    let base = print("prom", "x", "r", "1");
    assert_eq!(base, print("prom", "x", "r", "2"));
    assert_ne!(base, print("prom", "y", "r", "1"));
    assert_ne!(base, print("other", "x", "r", "1"));
    assert_ne!(base, print("prom", "x", "r2", "1"));
    let r = json!({"r": repo("r", "GENERAL", "prom", "x", "true")});
    assert_ne!(
        base,
        plan_with(
            StrategySettings::default().with_dockerhub_max_pages(5),
            "general.dockerhub_repos_config",
            &r
        )
        .specs[0]
            .fingerprint
    );
}

#[tokio::test]
async fn a_planned_monitor_reads_the_fixture() {
    let server = TestServer::start().await.unwrap();
    serve_fixture(&server);
    let body = json!({"docker_1": repo("docker_1", "GENERAL", "prom", "node-exporter", "true")});
    let plan = plan_with(
        settings_for(&server),
        "general.dockerhub_repos_config",
        &body,
    );
    let mut monitor = (plan.specs[0].build)().unwrap();
    let publications = monitor.round().await.unwrap();
    let body = publications[0].body.clone();
    check_meta(&body["result"]["meta_data"], &meta());
    assert_eq!(body["result"]["data"].to_string(), EXPECTED_DATA);
}
