//! The GitHub strategy against the local test server replaying `shared/fixtures/github`, every
//! error path, the shared rate budget, the token, and the GitHub planner.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use monitor_core::config::ConfigMessage;
use monitor_core::{ConfigError, Monitor, MonitorableType, PeriodGroup, Plan, Planner, RawDataKey};
use monitor_strategies::testing::{refused_url, BodyMode, Reply, TestServer};
use monitor_strategies::{registry, GithubPlanner, StrategySettings, Target};
use monitor_strategies::{releases_url, GithubMonitor, GithubRepoConfig};

use crate::common::{self, check_meta};

const PATH: &str = "/repos/docker/docker-py/releases";
const NAME: &str = "GitHub monitor (docker docker-py)";

fn fixture(name: &str) -> String {
    common::fixture(&format!("github/{name}"))
}

/// What PANIC gives for `releases.json` (computed with Python from the fixture).
const EXPECTED_DATA: &str = r#"{"0":{"release_name":"3.1.3","tag_name":"3.1.3"},"1":{"release_name":"3.1.1","tag_name":"3.1.1"},"2":{"release_name":"3.1.0","tag_name":"3.1.0"},"3":{"release_name":"3.0.1","tag_name":"3.0.1"},"4":{"release_name":"3.0.0","tag_name":"3.0.0"},"5":{"release_name":"2.6.1","tag_name":"2.6.1"},"6":{"release_name":"2.7.0","tag_name":"2.7.0"},"7":{"release_name":"2.6.0","tag_name":"2.6.0"},"8":{"release_name":"2.5.1","tag_name":"2.5.1"},"9":{"release_name":"2.5.0","tag_name":"2.5.0"},"10":{"release_name":"2.4.2","tag_name":"2.4.2"},"11":{"release_name":"2.4.0","tag_name":"2.4.0"},"12":{"release_name":"2.3.0","tag_name":"2.3.0"},"13":{"release_name":"2.2.1","tag_name":"2.2.1"},"14":{"release_name":"2.2.0","tag_name":"2.2.0"},"15":{"release_name":"2.1.0","tag_name":"2.1.0"},"16":{"release_name":"2.0.2","tag_name":"2.0.2"},"17":{"release_name":"2.0.1","tag_name":"2.0.1"},"18":{"release_name":"2.0.0","tag_name":"2.0.0"},"19":{"release_name":"1.10.6","tag_name":"1.10.6"},"20":{"release_name":"1.10.5","tag_name":"1.10.5"},"21":{"release_name":"1.10.4","tag_name":"1.10.4"},"22":{"release_name":"1.10.1","tag_name":"1.10.1"},"23":{"release_name":"1.10.2","tag_name":"1.10.2"},"24":{"release_name":"1.10.3","tag_name":"1.10.3"},"25":{"release_name":"1.10.0","tag_name":"1.10.0"},"26":{"release_name":"1.9.0","tag_name":"1.9.0"},"27":{"release_name":"1.8.1","tag_name":"1.8.1"},"28":{"release_name":"1.8.0","tag_name":"1.8.0"},"29":{"release_name":"1.7.2","tag_name":"1.7.2"}}"#;

/// Settings whose releases template points at `server` (fresh settings: a budget of their own).
fn settings_for(server: &TestServer) -> StrategySettings {
    let mut s = StrategySettings::default().with_request_timeout(Duration::from_millis(500));
    s.github.releases_template = server.url("/repos/{}releases");
    s
}

fn monitor_for(repo: &str, url: &str, settings: &StrategySettings) -> GithubMonitor {
    GithubMonitor::new(
        GithubRepoConfig {
            repo_id: "repo_1".to_owned(),
            parent_id: "GENERAL".to_owned(),
            repo_name: repo.to_owned(),
            releases_url: url.to_owned(),
        },
        settings.http(Target::Public, PeriodGroup::Github).unwrap(),
        settings.github.token.clone(),
        Arc::clone(&settings.github.rate_budget),
    )
}

fn monitor(settings: &StrategySettings) -> GithubMonitor {
    let url = releases_url(&settings.github.releases_template, "docker/docker-py/");
    monitor_for("docker/docker-py/", &url, settings)
}

/// The monitor's meta_data (`time` near now).
fn meta() -> Value {
    json!({"monitor_name": NAME, "repo_name": "docker/docker-py/", "repo_id": "repo_1",
           "repo_parent_id": "GENERAL", "time": null})
}

/// One round that publishes exactly one `github` body.
async fn one_body(monitor: &mut GithubMonitor) -> Value {
    common::one_body(monitor, RawDataKey::Github).await
}

/// Asserts an error envelope with `code` and `message`.
fn assert_error(body: Value, code: u64, message: &str) {
    common::assert_error(&meta(), body, code, message);
}

fn in_secs(secs: u64) -> String {
    (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + secs)
        .to_string()
}

#[tokio::test]
async fn releases_fixture_gives_panics_data() {
    let server = TestServer::start().await.unwrap();
    server.route(
        PATH,
        Reply::json(fixture("releases.json"))
            .header("x-ratelimit-remaining", "59")
            .header("x-ratelimit-reset", &in_secs(3600)),
    );
    let settings = settings_for(&server);
    let mut monitor = monitor(&settings);
    assert_eq!(monitor.name(), NAME);
    let mut body = one_body(&mut monitor).await;
    assert!(body.get("result").is_some(), "not a result: {body}");
    let result = body.get_mut("result").unwrap();
    check_meta(&result["meta_data"], &meta());
    assert_eq!(result["data"].to_string(), EXPECTED_DATA);
    let keys: Vec<&String> = result.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["meta_data", "data"]);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.target, PATH);
    assert!(request
        .header("user-agent")
        .unwrap()
        .starts_with("panic-monitors/"));
    assert_eq!(
        request.header("accept"),
        Some("application/vnd.github+json")
    );
    assert_eq!(request.header("authorization"), None);
    // The budget learnt the window (and counts down from it).
    assert_eq!(settings.github.rate_budget.snapshot().remaining, Some(59));
}

#[tokio::test]
async fn null_release_names_stay_null() {
    let server = TestServer::start().await.unwrap();
    server.route(
        PATH,
        Reply::json(r#"[{"name": null, "tag_name": "v2"}, {"name": "One", "tag_name": "v1"}]"#),
    );
    let mut monitor = monitor(&settings_for(&server));
    let body = one_body(&mut monitor).await;
    assert_eq!(
        body["result"]["data"],
        json!({"0": {"release_name": null, "tag_name": "v2"}, "1": {"release_name": "One", "tag_name": "v1"}})
    );
}

#[tokio::test]
async fn token_is_sent_as_bearer_and_never_shown() {
    let server = TestServer::start().await.unwrap();
    server.route(PATH, Reply::json("[]"));
    let settings = settings_for(&server).with_github_token(Some("ghp_s3cr3tT0ken"));
    let mut monitor = monitor(&settings);
    let body = one_body(&mut monitor).await;
    assert_eq!(body["result"]["data"], json!({}));
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Bearer ghp_s3cr3tT0ken")
    );
    for shown in [
        format!("{settings:?}"),
        format!("{settings:#?}"),
        format!("{monitor:?}"),
        body.to_string(),
    ] {
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
    assert!(format!("{settings:?}").contains("<redacted>"));
    // A blank token is no token.
    let settings = settings_for(&server).with_github_token(Some("  "));
    assert!(settings.github.token.is_none());
}

#[tokio::test]
async fn not_found_is_5007_with_githubs_message() {
    let server = TestServer::start().await.unwrap();
    server.route(PATH, Reply::status(404, fixture("not_found.json")));
    let mut monitor = monitor(&settings_for(&server));
    let body = one_body(&mut monitor).await;
    assert_error(body, 5007, "Error in API Call: Not Found");
}

#[tokio::test]
async fn rate_limited_403_is_5007_then_the_shared_budget_blocks_until_reset() {
    let server = TestServer::start().await.unwrap();
    server.route(
        PATH,
        Reply::status(403, fixture("rate_limited.json"))
            .header("content-type", "application/json")
            .header("x-ratelimit-limit", "60")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", &in_secs(3)),
    );
    let other_path = "/repos/SimplyVC/panic/releases";
    server.route(other_path, Reply::json("[]"));
    let settings = settings_for(&server);
    let mut first = monitor(&settings);
    let mut other = monitor_for("SimplyVC/panic/", &server.url(other_path), &settings);

    let body = one_body(&mut first).await;
    assert_error(
        body,
        5007,
        "Error in API Call: API rate limit exceeded for 70.71.146.59. (But here's the good news: \
         Authenticated requests get a higher rate limit. Check out the documentation for more \
         details.)",
    );
    assert_eq!(server.hits(PATH), 1);

    // The budget is spent: neither this monitor nor another one calls the API or publishes.
    assert_eq!(first.round().await.unwrap(), vec![]);
    assert_eq!(other.round().await.unwrap(), vec![]);
    assert_eq!(other.round().await.unwrap(), vec![]);
    assert_eq!(server.hits(PATH), 1);
    assert_eq!(server.hits(other_path), 0);

    // After the reset the monitors call again (polled: no assumption on how long it takes).
    let mut resumed = None;
    for _ in 0..200 {
        let publications = other.round().await.unwrap();
        if !publications.is_empty() {
            resumed = Some(publications);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let publications = resumed.expect("the budget never reopened");
    assert_eq!(publications[0].body["result"]["data"], json!({}));
    assert_eq!(server.hits(other_path), 1);
    assert_eq!(server.hits(PATH), 1);
}

#[tokio::test]
async fn retry_after_blocks_every_monitor() {
    let server = TestServer::start().await.unwrap();
    server.route(
        PATH,
        Reply::status(
            429,
            r#"{"message":"You have exceeded a secondary rate limit."}"#,
        )
        .header("retry-after", "120"),
    );
    let settings = settings_for(&server);
    let mut monitor = monitor(&settings);
    let body = one_body(&mut monitor).await;
    assert_error(
        body,
        5007,
        "Error in API Call: You have exceeded a secondary rate limit.",
    );
    let mut other = monitor_for(
        "a/b/",
        &server.url("/repos/a/b/releases"),
        &settings.clone(),
    );
    assert_eq!(other.round().await.unwrap(), vec![]);
    assert_eq!(monitor.round().await.unwrap(), vec![]);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn the_budget_counts_requests_between_answers() {
    let server = TestServer::start().await.unwrap();
    server.route(
        PATH,
        Reply::json("[]")
            .header("x-ratelimit-remaining", "1")
            .header("x-ratelimit-reset", &in_secs(600)),
    );
    let settings = settings_for(&server);
    let mut monitor = monitor(&settings);
    // Unknown budget: goes; the answer says 1 left.
    assert_eq!(one_body(&mut monitor).await["result"]["data"], json!({}));
    // Spends the last one.
    assert_eq!(one_body(&mut monitor).await["result"]["data"], json!({}));
    assert_eq!(server.hits(PATH), 2);
    // The answer said 1 left before this request: none now, until the reset.
    assert_eq!(monitor.round().await.unwrap(), vec![]);
    assert_eq!(server.hits(PATH), 2);
}

#[tokio::test]
async fn server_error_with_a_non_json_body_is_5012() {
    let server = TestServer::start().await.unwrap();
    server.route(PATH, Reply::status(500, "Internal Server Error"));
    let mut monitor = monitor(&settings_for(&server));
    let body = one_body(&mut monitor).await;
    assert_error(body, 5012, "expected value at line 1 column 1");
}

#[tokio::test]
async fn invalid_json_is_5012_with_the_decoders_message() {
    let server = TestServer::start().await.unwrap();
    server.route(PATH, Reply::json(r#"[{"name": "v1", "tag_name": "#));
    let mut monitor = monitor(&settings_for(&server));
    let body = one_body(&mut monitor).await;
    assert_error(body, 5012, "EOF while parsing a value at line 1 column 28");
}

#[tokio::test]
async fn timeout_is_5006_with_the_releases_url() {
    let server = TestServer::start().await.unwrap();
    server.route(PATH, Reply::no_response());
    let settings = settings_for(&server);
    let url = server.url(PATH);
    let mut monitor = monitor(&settings);
    let body = one_body(&mut monitor).await;
    assert_error(body, 5006, &format!("Cannot access GitHub page {url}"));
}

#[tokio::test]
async fn refused_connection_is_5006() {
    let url = refused_url(PATH).await.unwrap();
    let settings = StrategySettings::default();
    let mut monitor = monitor_for("docker/docker-py/", &url, &settings);
    let body = one_body(&mut monitor).await;
    assert_error(body, 5006, &format!("Cannot access GitHub page {url}"));
}

#[tokio::test]
async fn truncated_body_is_5005_with_the_releases_url() {
    let server = TestServer::start().await.unwrap();
    server.route(
        PATH,
        Reply::json(fixture("releases.json")).mode(BodyMode::Truncated(100)),
    );
    let settings = settings_for(&server);
    let url = server.url(PATH);
    let mut monitor = monitor(&settings);
    let body = one_body(&mut monitor).await;
    assert_error(
        body,
        5005,
        &format!("{NAME} experienced errors when reading data from {url}"),
    );
}

#[tokio::test]
async fn invalid_template_is_5009() {
    let settings = StrategySettings::default();
    let mut monitor = monitor_for("docker/docker-py/", "docker/docker-py/releases", &settings);
    let body = one_body(&mut monitor).await;
    assert_error(body, 5009, "Invalid URL 'docker/docker-py/releases'");
}

#[tokio::test]
async fn unexpected_json_is_a_round_error() {
    let server = TestServer::start().await.unwrap();
    let mut monitor = monitor(&settings_for(&server));
    for body in [
        r#"{"releases": []}"#,
        "[1, 2]",
        r#"[{"name": "no tag"}]"#,
        "7",
    ] {
        server.route(PATH, Reply::json(body));
        let err = monitor.round().await.unwrap_err();
        assert!(err.to_string().contains(PATH), "{err}");
    }
}

// ---------------------------------------------------------------------------------------------
// The planner.

fn repo(id: &str, parent: &str, name: &str, monitor: &str) -> Value {
    json!({"id": id, "parent_id": parent, "repo_name": name, "repo_namespace": "",
           "monitor_repo": monitor})
}

fn plan_with(settings: StrategySettings, routing_key: &str, body: &Value) -> Plan {
    let message = ConfigMessage::parse(routing_key, body.to_string().as_bytes()).unwrap();
    crate::common::plan_checked(&GithubPlanner::new(Arc::new(settings)), &message)
}

fn plan(routing_key: &str, body: &Value) -> Plan {
    plan_with(StrategySettings::default(), routing_key, body)
}

#[test]
fn general_github_repos_config() {
    let body = json!({
        "DEFAULT": {},
        "repo_1": repo("repo_1", "GENERAL", "SimplyVC/panic", "true"),
        "repo_2": repo("repo_2", "GENERAL", "cosmos/gaia/", "yes"),
        "repo_3": repo("repo_3", "GENERAL", "off/repo", "false"),
    });
    let plan = plan("general.github_repos_config", &body);
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    assert_eq!(plan.specs.len(), 2);
    let spec = &plan.specs[0];
    assert_eq!(spec.id, "repo_1");
    assert_eq!(spec.component_name, "GitHub monitor (SimplyVC panic)");
    assert_eq!(spec.group, PeriodGroup::Github);
    assert_eq!(spec.monitorables.len(), 1);
    let m = &spec.monitorables[0];
    assert_eq!(m.base_chain, "general");
    assert_eq!(m.monitorable_type, MonitorableType::GithubRepos);
    assert_eq!(m.source.chain_id, "GENERAL");
    assert_eq!(m.source.chain_name, "general");
    assert_eq!(m.source.source_id, "repo_1");
    assert_eq!(m.source.source_name, "SimplyVC/panic");
    assert_eq!(plan.specs[1].component_name, "GitHub monitor (cosmos gaia)");
    assert_eq!(
        plan.specs[1].monitorables[0].source.source_name,
        "cosmos/gaia"
    );
    assert!((spec.build)().is_ok());
}

#[test]
fn chain_github_repos_config() {
    let body = json!({"r": repo("r", "chain_cosmoshub", "cosmos/gaia", "true")});
    let plan = plan("chains.cosmos.cosmoshub.github_repos_config", &body);
    assert_eq!(plan.specs.len(), 1);
    let m = &plan.specs[0].monitorables[0];
    assert_eq!(m.base_chain, "cosmos");
    assert_eq!(m.source.chain_name, "cosmoshub");
    assert_eq!(m.source.chain_id, "chain_cosmoshub");
    // Other config types are not this planner's.
    let planner = GithubPlanner::new(Arc::new(StrategySettings::default()));
    for key in [
        "general.dockerhub_repos_config",
        "general.systems_config",
        "chains.cosmos.cosmoshub.nodes_config",
    ] {
        let message = ConfigMessage::parse(key, body.to_string().as_bytes()).unwrap();
        assert!(!planner.accepts(&message.key), "{key}");
        assert!(
            crate::common::plan_checked(&planner, &message)
                .specs
                .is_empty(),
            "{key}"
        );
    }
    let message = ConfigMessage::parse("general.github_repos_config", b"{}").unwrap();
    assert_eq!(
        planner.monitorable_types(&message.key),
        [MonitorableType::GithubRepos]
    );
}

#[test]
fn missing_or_blank_fields_are_plan_errors() {
    let mut missing = repo("a", "GENERAL", "x/y", "true");
    missing.as_object_mut().unwrap().remove("parent_id");
    let body = json!({
        "a": missing,
        "b": {"id": "b", "parent_id": "GENERAL", "repo_name": "x/y"},
        "c": repo("c", "GENERAL", " / ", "true"),
        "d": repo("d", "GENERAL", "", "false"),
        "e": repo("e", "GENERAL", "ok/repo", "true"),
    });
    let plan = plan("general.github_repos_config", &body);
    assert_eq!(plan.specs.len(), 1);
    assert_eq!(plan.specs[0].id, "e");
    assert_eq!(plan.errors.len(), 3, "{:?}", plan.errors);
    assert!(
        matches!(&plan.errors[0], ConfigError::MissingField { section, field, .. }
        if section == "a" && field == "parent_id")
    );
    assert!(
        matches!(&plan.errors[1], ConfigError::MissingField { section, field, .. }
        if section == "b" && field == "monitor_repo")
    );
    assert!(
        matches!(&plan.errors[2], ConfigError::BadField { section, field, .. }
        if section == "c" && field == "repo_name")
    );
}

#[test]
fn fingerprints_follow_the_used_fields() {
    let print = |name: &str, parent: &str, extra: &str| {
        let mut r = repo("r", parent, name, "true");
        r["unused"] = json!(extra);
        plan("general.github_repos_config", &json!({ "r": r })).specs[0].fingerprint
    };
    let base = print("a/b", "GENERAL", "1");
    assert_eq!(base, print("a/b", "GENERAL", "2"));
    // `a/b` and `a/b/` are the same repository once normalised.
    assert_eq!(base, print("a/b/", "GENERAL", "1"));
    assert_ne!(base, print("a/c", "GENERAL", "1"));
    assert_ne!(base, print("a/b", "chain_x", "1"));
    // The releases template is used too.
    let mut settings = StrategySettings::default();
    settings.github.releases_template = "http://mirror.example/{}releases".to_owned();
    let r = json!({"r": repo("r", "GENERAL", "a/b", "true")});
    assert_ne!(
        base,
        plan_with(settings, "general.github_repos_config", &r).specs[0].fingerprint
    );
}

#[tokio::test]
async fn planned_monitors_share_one_budget() {
    let server = TestServer::start().await.unwrap();
    server.route(
        "/repos/a/one/releases",
        Reply::status(403, fixture("rate_limited.json"))
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", &in_secs(600)),
    );
    server.route("/repos/a/two/releases", Reply::json("[]"));
    let body = json!({
        "one": repo("one", "GENERAL", "a/one", "true"),
        "two": repo("two", "GENERAL", "a/two", "true"),
    });
    let plan = plan_with(settings_for(&server), "general.github_repos_config", &body);
    let mut one = (plan.specs[0].build)().unwrap();
    let mut two = (plan.specs[1].build)().unwrap();
    let first = one.round().await.unwrap();
    assert_eq!(first[0].body["error"]["code"], 5007);
    assert_eq!(two.round().await.unwrap(), vec![]);
    assert_eq!(server.hits("/repos/a/two/releases"), 0);
}

#[test]
fn registry_has_the_github_and_dockerhub_planners() {
    let names: Vec<&str> = registry(StrategySettings::default())
        .iter()
        .map(|p| p.name())
        .collect();
    assert!(names.contains(&"github"), "{names:?}");
    assert!(names.contains(&"dockerhub"), "{names:?}");
}
