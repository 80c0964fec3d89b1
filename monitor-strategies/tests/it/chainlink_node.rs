//! The Chainlink node monitor against local test servers replaying `chainlink/metrics.txt` (with
//! fail-over across Prometheus URLs, one of them down) and serving `chainid/chains_mini.json`, every
//! error path, and the Chainlink node and contracts planners.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use monitor_core::config::ConfigMessage;
use monitor_core::{Monitor, MonitorableType, PeriodGroup, Planner, RawDataKey};
use monitor_strategies::testing::{refused_url, BodyMode, Reply, TestServer};
use monitor_strategies::{
    registry, ChainlinkNodeMonitor, ChainlinkNodesPlanner, StrategySettings, Target,
};
use monitor_strategies::{ChainlinkContractsPlanner, ChainlinkNodeConfig};

use crate::common;

fn metrics_fixture() -> String {
    common::fixture("chainlink/metrics.txt")
}

fn chains_fixture() -> String {
    common::fixture("chainid/chains_mini.json")
}

/// A server with `/metrics` (the fixture) and `/chains_mini.json`.
async fn chainlink_server() -> TestServer {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok(metrics_fixture()));
    server.route("/chains_mini.json", Reply::json(chains_fixture()));
    server
}

fn config(urls: &[String]) -> ChainlinkNodeConfig {
    ChainlinkNodeConfig {
        node_id: "node_cl_1".to_owned(),
        parent_id: "chain_eth".to_owned(),
        node_name: "chainlink_1".to_owned(),
        node_prometheus_urls: urls.to_vec(),
        monitor_prometheus: true,
    }
}

fn monitor(urls: &[String], chain_list_url: &str) -> ChainlinkNodeMonitor {
    let settings = StrategySettings::default().with_request_timeout(Duration::from_millis(500));
    ChainlinkNodeMonitor::new(
        config(urls),
        settings.http(Target::Monitored, PeriodGroup::Node).unwrap(),
        settings.http(Target::Public, PeriodGroup::Node).unwrap(),
        chain_list_url,
    )
    .unwrap()
}

async fn round(m: &mut ChainlinkNodeMonitor) -> Value {
    let mut publications = m.round().await.unwrap();
    assert_eq!(publications.len(), 1);
    let p = publications.remove(0);
    assert_eq!(p.routing_key, RawDataKey::ChainlinkNode);
    let body = p.body.as_object().unwrap();
    assert_eq!(body.keys().collect::<Vec<_>>(), ["prometheus"]);
    body["prometheus"].clone()
}

/// The monitor's meta_data after a round that last used `last_source` (`time` near now).
fn meta(last_source: &str) -> Value {
    json!({"monitor_name": "Node monitor (chainlink_1)", "node_name": "chainlink_1",
           "last_source_used": last_source, "node_id": "node_cl_1", "node_parent_id": "chain_eth",
           "time": null})
}

fn check_meta(meta_data: &Value, last_source: &str) {
    common::check_meta(meta_data, &meta(last_source));
}

fn error_of(envelope: &Value, last_source: &str) -> (u64, String) {
    common::error_of(envelope, &meta(last_source))
}

#[tokio::test]
async fn fixture_with_fail_over_gives_panics_numbers() {
    let server = chainlink_server().await;
    let down = refused_url("/metrics").await.unwrap();
    let up = server.url("/metrics");
    let mut m = monitor(
        &[down.clone(), up.clone()],
        &server.url("/chains_mini.json"),
    );
    assert_eq!(m.last_source_used(), down);

    let envelope = round(&mut m).await;
    let result = &envelope["result"];
    check_meta(&result["meta_data"], &up);
    // The numbers of fixtures/SOURCES.md (counters found under their `_total` names).
    assert_eq!(
        result["data"].to_string(),
        concat!(
            r#"{"head_tracker_current_head":15985432.0,"head_tracker_heads_received_total":84213.0,"#,
            r#""max_unconfirmed_blocks":0.0,"process_start_time_seconds":1668497852.41,"#,
            r#""tx_manager_num_gas_bumps_total":57.0,"tx_manager_gas_bump_exceeds_limit_total":0.0,"#,
            r#""unconfirmed_transactions":1.0,"#,
            r#""gas_updater_set_gas_price":{"percentile":"60%","price":32000000000.0},"#,
            r#""balance":{"address":"0x0E4B07e9175686DaE5014743503E5D8ADa8E55A3","balance":2.3401873340598,"symbol":"ETH"},"#,
            r#""run_status_update_total_errors":3}"#
        )
    );
    assert_eq!(server.hits("/chains_mini.json"), 1);
    assert_eq!(m.last_source_used(), up);

    // Second round: the working source is tried first, the symbol is not looked up again.
    let envelope = round(&mut m).await;
    assert_eq!(envelope["result"]["data"]["balance"]["symbol"], "ETH");
    assert_eq!(server.hits("/metrics"), 2);
    assert_eq!(server.hits("/chains_mini.json"), 1);
}

#[tokio::test]
async fn fail_over_back_and_forth() {
    let a = chainlink_server().await;
    let b = chainlink_server().await;
    let (ua, ub) = (a.url("/metrics"), b.url("/metrics"));
    let mut m = monitor(&[ua.clone(), ub.clone()], &a.url("/chains_mini.json"));

    check_meta(&round(&mut m).await["result"]["meta_data"], &ua);
    // A goes down: B answers and becomes the last used.
    a.route("/metrics", Reply::ok("").mode(BodyMode::Close));
    check_meta(&round(&mut m).await["result"]["meta_data"], &ub);
    assert_eq!(b.hits("/metrics"), 1);
    // A is back: B keeps being used while it answers.
    a.route("/metrics", Reply::ok(metrics_fixture()));
    check_meta(&round(&mut m).await["result"]["meta_data"], &ub);
    assert_eq!(b.hits("/metrics"), 2);
    // B goes down: the list is walked from the start, A answers.
    b.route("/metrics", Reply::ok("").mode(BodyMode::Close));
    check_meta(&round(&mut m).await["result"]["meta_data"], &ua);
}

#[tokio::test]
async fn all_sources_down_is_5015() {
    let d1 = refused_url("/metrics").await.unwrap();
    let d2 = refused_url("/metrics").await.unwrap();
    let mut m = monitor(&[d1.clone(), d2], "http://127.0.0.1:1/chains");
    let envelope = round(&mut m).await;
    assert_eq!(
        error_of(&envelope, &d1),
        (5015, "Node chainlink_1 is unreachable".to_owned())
    );
}

#[tokio::test]
async fn reachable_source_with_a_missing_metric_is_5003_and_becomes_last_used() {
    let server = TestServer::start().await.unwrap();
    let text: String = metrics_fixture()
        .lines()
        .filter(|l| !l.starts_with("head_tracker_current_head"))
        .map(|l| format!("{l}\n"))
        .collect();
    server.route("/metrics", Reply::ok(text));
    let down = refused_url("/metrics").await.unwrap();
    let url = server.url("/metrics");
    let mut m = monitor(&[down, url.clone()], &server.url("/chains_mini.json"));
    let envelope = round(&mut m).await;
    assert_eq!(
        error_of(&envelope, &url),
        (
            5003,
            format!("Could not find metric head_tracker_current_head at endpoint {url}")
        )
    );
    assert_eq!(m.last_source_used(), url);
}

#[tokio::test]
async fn optional_metrics_may_be_absent() {
    let server = chainlink_server().await;
    let text: String = metrics_fixture()
        .lines()
        .filter(|l| {
            !l.contains("tx_manager_")
                && !l.contains("gas_updater_set_gas_price")
                && !l.contains("run_status_update_total")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    server.route("/metrics", Reply::ok(text));
    let mut m = monitor(&[server.url("/metrics")], &server.url("/chains_mini.json"));
    let data = round(&mut m).await["result"]["data"].clone();
    assert_eq!(data["tx_manager_num_gas_bumps_total"], Value::Null);
    assert_eq!(data["tx_manager_gas_bump_exceeds_limit_total"], Value::Null);
    assert_eq!(data["gas_updater_set_gas_price"], Value::Null);
    assert_eq!(data["run_status_update_total_errors"], 0);
}

#[tokio::test]
async fn truncated_body_is_5005_naming_the_source() {
    let server = TestServer::start().await.unwrap();
    server.route(
        "/metrics",
        Reply::ok(metrics_fixture()).mode(BodyMode::Truncated(100)),
    );
    let url = server.url("/metrics");
    let mut m = monitor(std::slice::from_ref(&url), "http://127.0.0.1:1/chains");
    let envelope = round(&mut m).await;
    assert_eq!(
        error_of(&envelope, &url),
        (
            5005,
            format!("Node monitor (chainlink_1) experienced errors when reading data from {url}")
        )
    );
}

#[tokio::test]
async fn invalid_url_is_5009() {
    let mut m = monitor(
        &["localhost:6688/metrics".to_owned()],
        "http://127.0.0.1:1/c",
    );
    let envelope = round(&mut m).await;
    assert_eq!(
        error_of(&envelope, "localhost:6688/metrics"),
        (5009, "Invalid URL 'localhost:6688/metrics'".to_owned())
    );
}

#[tokio::test]
async fn not_prometheus_text_is_a_round_error() {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok("<html><body>login</body></html>"));
    let mut m = monitor(&[server.url("/metrics")], "http://127.0.0.1:1/c");
    assert!(m.round().await.is_err());
}

#[tokio::test]
async fn symbol_stays_empty_and_is_retried_until_found() {
    let server = chainlink_server().await;
    // evmChainID 999 is not in the list.
    server.route(
        "/metrics",
        Reply::ok(metrics_fixture().replace("evmChainID=\"1\"", "evmChainID=\"999\"")),
    );
    let mut m = monitor(&[server.url("/metrics")], &server.url("/chains_mini.json"));
    let data = round(&mut m).await["result"]["data"].clone();
    assert_eq!(data["balance"]["symbol"], "");
    assert_eq!(server.hits("/chains_mini.json"), 1);
    // Not found is not "done": the next round asks again.
    round(&mut m).await;
    assert_eq!(server.hits("/chains_mini.json"), 2);
    // The chain list down: still a result, symbol empty.
    server.route("/chains_mini.json", Reply::status(503, "unavailable"));
    let data = round(&mut m).await["result"]["data"].clone();
    assert_eq!(data["balance"]["symbol"], "");
    // The chain appears in the list (137 is Polygon): found once, then not asked again.
    server.route(
        "/metrics",
        Reply::ok(metrics_fixture().replace("evmChainID=\"1\"", "evmChainID=\"137\"")),
    );
    server.route("/chains_mini.json", Reply::json(chains_fixture()));
    let data = round(&mut m).await["result"]["data"].clone();
    assert_eq!(data["balance"]["symbol"], "POL");
    let hits = server.hits("/chains_mini.json");
    round(&mut m).await;
    assert_eq!(server.hits("/chains_mini.json"), hits);
}

#[test]
fn empty_url_list_is_5014_at_build() {
    let settings = StrategySettings::default();
    let err = ChainlinkNodeMonitor::new(
        config(&[]),
        settings.http(Target::Monitored, PeriodGroup::Node).unwrap(),
        settings.http(Target::Public, PeriodGroup::Node).unwrap(),
        "http://x",
    )
    .unwrap_err();
    assert_eq!(err.code.code(), 5014);
    assert_eq!(
        err.message,
        "Enabled source prometheus is empty for node chainlink_1"
    );
}

#[tokio::test]
async fn prometheus_disabled_sends_an_empty_source() {
    let settings = StrategySettings::default();
    let mut cfg = config(&[]);
    cfg.monitor_prometheus = false;
    let mut m = ChainlinkNodeMonitor::new(
        cfg,
        settings.http(Target::Monitored, PeriodGroup::Node).unwrap(),
        settings.http(Target::Public, PeriodGroup::Node).unwrap(),
        "http://x",
    )
    .unwrap();
    assert_eq!(round(&mut m).await, json!({}));
}

// ---- planners ----

#[allow(clippy::too_many_arguments)]
fn node_section(
    id: &str,
    name: &str,
    urls: &str,
    monitor_node: &str,
    monitor_prometheus: &str,
    monitor_contracts: &str,
    evm_urls: &str,
    weiwatchers: &str,
) -> Value {
    json!({
        "id": id, "parent_id": "chain_eth", "name": name,
        "node_ws_url": "", "exporter_url": "", "monitor_system": "false",
        "monitor_node": monitor_node, "is_validator": "false", "is_archive_node": "false",
        "use_as_data_source": "false", "stash_address": "", "governance_addresses": "",
        "monitor_network": "false", "cosmos_rest_url": "", "monitor_cosmos_rest": "false",
        "tendermint_rpc_url": "", "monitor_tendermint_rpc": "false", "operator_address": "",
        "monitor_prometheus": monitor_prometheus, "prometheus_url": "",
        "node_prometheus_urls": urls, "evm_nodes_urls": evm_urls,
        "weiwatchers_url": weiwatchers, "monitor_contracts": monitor_contracts
    })
}

const KEY: &str = "chains.chainlink.ethereum.nodes_config";
const WW: &str = "https://weiwatchers.com/feeds-mainnet.json";
const EVM: &str = "http://10.0.0.1:8545,http://10.0.0.2:8545";

fn message(body: &Value) -> ConfigMessage {
    ConfigMessage::parse(KEY, body.to_string().as_bytes()).unwrap()
}

fn standard_body() -> Value {
    json!({
        "n1": node_section("n1", "cl_1", "http://10.0.1.1:6688/metrics, http://10.0.1.2:6688/metrics,", "true", "true", "true", EVM, WW),
        "n2": node_section("n2", "cl_2", "", "true", "true", "true", EVM, WW),
        "n3": node_section("n3", "cl_3", "http://10.0.3.1:6688/metrics", "false", "true", "true", EVM, WW),
        "n4": node_section("n4", "cl_4", "http://10.0.4.1:6688/metrics", "true", "false", "true", EVM, WW),
    })
}

#[test]
fn node_planner() {
    let planner = ChainlinkNodesPlanner::new(Arc::new(StrategySettings::default()));
    let plan = crate::common::plan_checked(&planner, &message(&standard_body()));
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    // monitor_node and monitor_prometheus both true: n1 and n2 (empty list → 5014 at build).
    let ids: Vec<&str> = plan.specs.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["n1", "n2"]);
    let n1 = &plan.specs[0];
    assert_eq!(n1.component_name, "Node monitor (cl_1)");
    assert_eq!(n1.group, PeriodGroup::Node);
    let m = &n1.monitorables[0];
    assert_eq!(
        (
            m.base_chain.as_str(),
            m.monitorable_type,
            m.source.source_id.as_str()
        ),
        ("chainlink", MonitorableType::Nodes, "n1")
    );
    assert_eq!(m.source.chain_name, "ethereum");
    assert!((n1.build)().is_ok());
    assert_eq!((plan.specs[1].build)().err().unwrap().code.code(), 5014);

    // Cosmos nodes are not Chainlink nodes.
    let cosmos = ConfigMessage::parse("chains.cosmos.hub.nodes_config", b"{}").unwrap();
    assert!(!planner.accepts(&cosmos.key));
}

#[test]
fn contracts_planner() {
    let planner = ChainlinkContractsPlanner::new(Arc::new(StrategySettings::default()));
    let plan = crate::common::plan_checked(&planner, &message(&standard_body()));
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    assert_eq!(plan.specs.len(), 1);
    let spec = &plan.specs[0];
    assert_eq!(spec.id, "chainlink ethereum");
    assert_eq!(
        spec.component_name,
        "Chainlink Contracts Monitor (ethereum)"
    );
    assert_eq!(spec.group, PeriodGroup::ChainlinkContracts);
    // Valid nodes: contracts and prometheus on, URLs non-empty (monitor_node not consulted): n1, n3.
    let nodes: Vec<(&str, &str)> = spec
        .monitorables
        .iter()
        .filter(|m| m.monitorable_type == MonitorableType::Nodes)
        .map(|m| (m.source.source_id.as_str(), m.source.source_name.as_str()))
        .collect();
    assert_eq!(nodes, [("n1", "cl_1"), ("n3", "cl_3")]);
    let chains: Vec<_> = spec
        .monitorables
        .iter()
        .filter(|m| m.monitorable_type == MonitorableType::Chains)
        .collect();
    assert_eq!(chains.len(), 1);
    assert_eq!(chains[0].source.source_id, "chain_eth");
    assert_eq!(chains[0].source.chain_id, "chain_eth");
    assert_eq!(chains[0].source.source_name, "chainlink ethereum");
    assert_eq!(chains[0].base_chain, "chainlink");
    assert!((spec.build)().is_ok());
    assert_eq!(
        planner.monitorable_types(&message(&standard_body()).key),
        [MonitorableType::Nodes, MonitorableType::Chains]
    );

    // Unchanged tuple (even with other fields changed) → same fingerprint.
    let mut body = standard_body();
    body["n4"]["exporter_url"] = json!("http://changed:9100/metrics");
    body["n2"]["monitor_node"] = json!("false");
    assert_eq!(
        crate::common::plan_checked(&planner, &message(&body)).specs[0].fingerprint,
        spec.fingerprint
    );
    // A changed tuple member → another fingerprint.
    let mut body = standard_body();
    body["n3"]["name"] = json!("renamed");
    assert_ne!(
        crate::common::plan_checked(&planner, &message(&body)).specs[0].fingerprint,
        spec.fingerprint
    );

    // Non-identical weiwatchers URL or EVM list → no monitor.
    let mut body = standard_body();
    body["n2"]["weiwatchers_url"] = json!("https://other");
    assert!(crate::common::plan_checked(&planner, &message(&body))
        .specs
        .is_empty());
    let mut body = standard_body();
    body["n4"]["evm_nodes_urls"] = json!("http://10.0.0.1:8545");
    assert!(crate::common::plan_checked(&planner, &message(&body))
        .specs
        .is_empty());
    // No valid node → no monitor.
    let body = json!({"n2": node_section("n2", "cl_2", "", "true", "true", "true", EVM, WW)});
    assert!(crate::common::plan_checked(&planner, &message(&body))
        .specs
        .is_empty());
    // Empty message → nothing.
    assert!(crate::common::plan_checked(&planner, &message(&json!({})))
        .specs
        .is_empty());
    // Empty EVM list → planned, the build fails with 5017.
    let body = json!({"n1": node_section("n1", "cl_1", "http://a/metrics", "true", "true", "true", "", WW)});
    let plan = crate::common::plan_checked(&planner, &message(&body));
    let err = (plan.specs[0].build)().err().unwrap();
    assert_eq!(err.code.code(), 5017);
    assert_eq!(
        err.message,
        "Chainlink Contracts Monitor (ethereum) was not given enough data sources. evm_nodes is empty."
    );
    // A section with a missing field is reported and left out.
    let mut body = standard_body();
    body["n5"] = json!({"id": "n5"});
    let plan = crate::common::plan_checked(&planner, &message(&body));
    assert_eq!(plan.errors.len(), 1);
    assert_eq!(plan.specs[0].fingerprint, spec.fingerprint);
}

#[test]
fn registry_routes_chainlink_keys() {
    let planners = registry(StrategySettings::default());
    let accepting = |key: &str| -> Vec<&'static str> {
        let m = ConfigMessage::parse(key, b"{}").unwrap();
        planners
            .iter()
            .filter(|p| p.accepts(&m.key))
            .map(|p| p.name())
            .collect()
    };
    let nodes = accepting(KEY);
    assert!(nodes.contains(&"chainlink_nodes"));
    assert!(nodes.contains(&"chainlink_contracts"));
    // Chainlink systems come from systems_config only.
    assert!(!nodes.contains(&"systems"));
    assert!(accepting("chains.chainlink.ethereum.evm_nodes_config").contains(&"evm_nodes"));
}

/// Every event logged on the current thread while it is alive, as `field=value` text.
#[derive(Default)]
struct Captured(std::sync::Mutex<String>);

impl tracing::field::Visit for &Captured {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let mut text = self.0.lock().unwrap();
        let _ = write!(text, "{}={value:?} ", field.name());
    }
}

struct Capture(Arc<Captured>);

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        span.record(&mut &*self.0);
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut &*self.0);
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        event.record(&mut &*self.0);
        self.0 .0.lock().unwrap().push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn a_password_in_a_prometheus_url_is_published_and_logged_redacted() {
    let captured = Arc::new(Captured::default());
    let _logs = tracing::subscriber::set_default(Capture(Arc::clone(&captured)));
    let with_password = |url: &str| url.replacen("http://", "http://user:secret@", 1);
    let server = chainlink_server().await;
    let down = with_password(&refused_url("/metrics").await.unwrap());
    let up = with_password(&server.url("/metrics"));
    let mut m = monitor(
        &[down.clone(), up.clone()],
        &server.url("/chains_mini.json"),
    );
    let mut bodies = Vec::new();
    // A fail-over (logged at info) and a result naming the source used.
    let envelope = round(&mut m).await;
    let redacted = up.replacen(":secret@", ":***@", 1);
    check_meta(&envelope["result"]["meta_data"], &redacted);
    bodies.push(envelope);
    // An error envelope (5003 names the endpoint), then every source down (5015).
    server.route("/metrics", Reply::ok("# nothing here\n"));
    let envelope = round(&mut m).await;
    assert_eq!(error_of(&envelope, &redacted).0, 5003);
    bodies.push(envelope);
    server.route("/metrics", Reply::ok("").mode(BodyMode::Close));
    bodies.push(round(&mut m).await);
    // The URL is otherwise the one configured, and the monitor still holds it whole.
    assert_eq!(m.last_source_used(), up);
    for body in &bodies {
        let text = body.to_string();
        assert!(!text.contains("secret"), "{text}");
    }
    let logs = captured.0.lock().unwrap().clone();
    assert!(logs.contains("switched prometheus source"), "{logs}");
    assert!(logs.contains("user:***@"), "{logs}");
    assert!(!logs.contains("secret"), "{logs}");
}
