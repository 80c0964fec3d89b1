//! The EVM node monitor against the local test server replaying the `evm/` JSON-RPC fixtures,
//! every error path, and the EVM nodes planner.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use monitor_core::config::ConfigMessage;
use monitor_core::{Monitor, MonitorableType, PeriodGroup, Planner, RawDataKey};
use monitor_strategies::testing::{refused_url, BodyMode, RecordedRequest, Reply, TestServer};
use monitor_strategies::{
    ConnectionLimits, EvmNodeConfig, EvmNodeMonitor, EvmNodesPlanner, StrategySettings,
};

use crate::common::{self, check_meta};

fn fixture(name: &str) -> String {
    common::fixture(&format!("evm/{name}"))
}

fn method_of(request: &RecordedRequest) -> String {
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    body["method"].as_str().unwrap().to_owned()
}

/// A JSON-RPC server answering `eth_blockNumber` and `eth_syncing` with fixtures.
async fn node(syncing_fixture: &'static str) -> TestServer {
    let server = TestServer::start().await.unwrap();
    let block = fixture("eth_blockNumber.json");
    let syncing = fixture(syncing_fixture);
    server.route_fn("/", move |request| match method_of(request).as_str() {
        "eth_blockNumber" => Reply::json(block.clone()),
        "eth_syncing" => Reply::json(syncing.clone()),
        _ => Reply::json(
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"the method does not exist"}}"#,
        ),
    });
    server
}

fn settings() -> StrategySettings {
    let mut s = StrategySettings::default();
    s.evm.request_timeout = Duration::from_millis(300);
    s
}

fn monitor(url: &str) -> EvmNodeMonitor {
    let http = settings().evm_http(PeriodGroup::Node).unwrap();
    EvmNodeMonitor::new(
        EvmNodeConfig {
            node_id: "evm_1".to_owned(),
            parent_id: "chain_eth".to_owned(),
            node_name: "geth_1".to_owned(),
            node_http_url: url.to_owned(),
        },
        http,
    )
}

async fn one_round(url: &str) -> Value {
    let mut m = monitor(url);
    assert_eq!(m.name(), "Node monitor (geth_1)");
    common::one_body(&mut m, RawDataKey::EvmNode).await
}

/// Beyond the hosts that keep connections alive, a round still uses one connection for both of
/// its calls (the first leaves it open, the second closes it); with `max_held` 0, one per call.
#[tokio::test]
async fn a_round_holds_one_connection_for_both_calls_beyond_the_kept_hosts() {
    for (max_held, per_round) in [(16, 1), (0, 2)] {
        let kept = node("eth_syncing_false.json").await;
        let other = node("eth_syncing_false.json").await;
        let mut s = settings();
        s.connections = ConnectionLimits {
            max_kept_hosts: 1,
            max_held,
            ..ConnectionLimits::default()
        };
        let http = s.evm_http(PeriodGroup::Node).unwrap();
        let config = |url: String| EvmNodeConfig {
            node_id: "evm_1".to_owned(),
            parent_id: "chain_eth".to_owned(),
            node_name: "geth_1".to_owned(),
            node_http_url: url,
        };
        // The first host takes the only keep-alive place.
        let mut first = EvmNodeMonitor::new(config(kept.url("/")), http.clone());
        let body = common::one_body(&mut first, RawDataKey::EvmNode).await;
        assert!(body.get("result").is_some(), "{body}");
        let mut m = EvmNodeMonitor::new(config(other.url("/")), http);
        for _ in 0..3 {
            let body = common::one_body(&mut m, RawDataKey::EvmNode).await;
            assert_eq!(
                body["result"]["data"]["current_height"], 15_985_432,
                "{body}"
            );
        }
        assert_eq!(other.connections(), 3 * per_round, "max_held {max_held}");
        let closes: Vec<bool> = other
            .requests()
            .iter()
            .map(|r| r.header("connection") == Some("close"))
            .collect();
        let expected: Vec<bool> = (0..6).map(|i| per_round == 2 || i % 2 == 1).collect();
        assert_eq!(closes, expected, "max_held {max_held}");
        // The kept host's one connection stays open, with no `Connection: close`.
        assert_eq!(kept.connections(), 1);
    }
}

/// The monitor's meta_data (`time` near now).
fn meta() -> Value {
    json!({"monitor_name": "Node monitor (geth_1)", "node_name": "geth_1", "node_id": "evm_1",
           "node_parent_id": "chain_eth", "time": null})
}

fn error_of(body: &Value) -> (u64, String) {
    common::error_of(body, &meta())
}

#[tokio::test]
async fn synced_node_from_fixtures() {
    let server = node("eth_syncing_false.json").await;
    let body = one_round(&server.url("/")).await;
    check_meta(&body["result"]["meta_data"], &meta());
    assert_eq!(
        body["result"]["data"],
        json!({"current_height": 15_985_432, "syncing": false})
    );
    // Both calls are JSON-RPC 2.0 POSTs.
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for (request, method) in requests.iter().zip(["eth_blockNumber", "eth_syncing"]) {
        assert_eq!(request.method, "POST");
        assert_eq!(request.header("content-type"), Some("application/json"));
        let sent: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(sent["jsonrpc"], "2.0");
        assert_eq!(sent["method"], method);
        assert_eq!(sent["params"], json!([]));
    }
}

#[tokio::test]
async fn syncing_object_is_true() {
    let server = node("eth_syncing_true.json").await;
    let body = one_round(&server.url("/")).await;
    assert_eq!(body["result"]["data"]["syncing"], true);
    assert!(body["result"]["data"]["current_height"].is_u64());
}

#[tokio::test]
async fn refused_is_5015() {
    let body = one_round(&refused_url("/").await.unwrap()).await;
    assert_eq!(
        error_of(&body),
        (5015, "Node geth_1 is unreachable".to_owned())
    );
}

#[tokio::test]
async fn silent_node_is_5015_after_the_evm_timeout() {
    let server = TestServer::start().await.unwrap();
    server.route("/", Reply::no_response());
    let body = one_round(&server.url("/")).await;
    assert_eq!(error_of(&body).0, 5015);
}

#[tokio::test]
async fn invalid_url_is_5009() {
    let body = one_round("localhost:8545").await;
    assert_eq!(
        error_of(&body),
        (5009, "Invalid URL 'localhost:8545'".to_owned())
    );
}

async fn read_error(reply: Reply) -> (u64, String) {
    let server = TestServer::start().await.unwrap();
    server.route("/", reply);
    error_of(&one_round(&server.url("/")).await)
}

#[tokio::test]
async fn unreadable_and_bad_answers_are_5005() {
    let expected = (
        5005,
        "Node monitor (geth_1) experienced errors when reading data from geth_1".to_owned(),
    );
    let block = fixture("eth_blockNumber.json");
    for reply in [
        // Truncated body.
        Reply::json(block.clone()).mode(BodyMode::Truncated(10)),
        // Not JSON (an HTML error page).
        Reply::status(502, "<html>bad gateway</html>"),
        // JSON-RPC error object.
        Reply::json(
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"header not found"}}"#,
        ),
        // Neither result nor error.
        Reply::json(r#"{"jsonrpc":"2.0","id":1}"#),
        // Not an object.
        Reply::json("[1,2]"),
        // A result of the wrong shape.
        Reply::json(r#"{"jsonrpc":"2.0","id":1,"result":12}"#),
        Reply::json(r#"{"jsonrpc":"2.0","id":1,"result":"0xnothex"}"#),
        Reply::json(Bytes::from_static(b"\xff\xfe")),
    ] {
        assert_eq!(read_error(reply.clone()).await, expected, "{reply:?}");
    }
}

#[tokio::test]
async fn bad_syncing_answer_is_5005() {
    let server = TestServer::start().await.unwrap();
    let block = fixture("eth_blockNumber.json");
    server.route_fn("/", move |request| match method_of(request).as_str() {
        "eth_blockNumber" => Reply::json(block.clone()),
        _ => Reply::json(r#"{"jsonrpc":"2.0","id":2,"result":"yes"}"#),
    });
    let body = one_round(&server.url("/")).await;
    assert_eq!(error_of(&body).0, 5005);
}

fn evm_section(id: &str, name: &str, url: &str, monitor: &str) -> Value {
    json!({"id": id, "parent_id": "chain_eth", "name": name, "node_http_url": url, "monitor_node": monitor})
}

#[test]
fn planner_starts_monitored_evm_nodes() {
    let planner = EvmNodesPlanner::new(Arc::new(StrategySettings::default()));
    let body = json!({
        "DEFAULT": {},
        "evm_1": evm_section("evm_1", "geth_1", "http://10.0.0.1:8545", "true"),
        "evm_2": evm_section("evm_2", "geth_2", "http://10.0.0.2:8545", "false"),
        "evm_3": {"id": "evm_3", "parent_id": "chain_eth", "name": "no url", "monitor_node": "true"},
    });
    let message = ConfigMessage::parse(
        "chains.chainlink.ethereum.evm_nodes_config",
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert!(planner.accepts(&message.key));
    let plan = crate::common::plan_checked(&planner, &message);
    assert_eq!(plan.specs.len(), 1);
    assert_eq!(plan.errors.len(), 1, "{:?}", plan.errors);
    let spec = &plan.specs[0];
    assert_eq!(spec.id, "evm_1");
    assert_eq!(spec.component_name, "Node monitor (geth_1)");
    assert_eq!(spec.group, PeriodGroup::Node);
    let m = &spec.monitorables[0];
    assert_eq!(m.base_chain, "chainlink");
    assert_eq!(m.monitorable_type, MonitorableType::Nodes);
    assert_eq!(m.source.chain_id, "chain_eth");
    assert_eq!(m.source.chain_name, "ethereum");
    assert_eq!(m.source.source_id, "evm_1");
    assert_eq!(m.source.source_name, "geth_1");
    let built = (spec.build)().unwrap();
    assert_eq!(built.name(), "Node monitor (geth_1)");

    // A changed URL changes the fingerprint; the same config keeps it.
    let again = crate::common::plan_checked(&planner, &message);
    assert_eq!(again.specs[0].fingerprint, spec.fingerprint);
    let body2 = json!({"evm_1": evm_section("evm_1", "geth_1", "http://10.0.0.9:8545", "true")});
    let message2 = ConfigMessage::parse(
        "chains.chainlink.ethereum.evm_nodes_config",
        body2.to_string().as_bytes(),
    )
    .unwrap();
    assert_ne!(
        crate::common::plan_checked(&planner, &message2).specs[0].fingerprint,
        spec.fingerprint
    );

    // Other config types are not its business.
    let other = ConfigMessage::parse("chains.chainlink.ethereum.nodes_config", b"{}").unwrap();
    assert!(!planner.accepts(&other.key));
    let general = ConfigMessage::parse("general.systems_config", b"{}").unwrap();
    assert!(!planner.accepts(&general.key));
}

#[tokio::test]
async fn planned_monitor_uses_the_evm_timeout() {
    // The registry's EVM planner builds monitors with the 2 s default (capped by the group).
    let s = StrategySettings::default();
    assert_eq!(s.evm.request_timeout, Duration::from_secs(2));
    assert_eq!(
        s.evm_http(PeriodGroup::Node).unwrap().timeout(),
        Duration::from_secs(2)
    );
    let capped = s.with_group_timeout(PeriodGroup::Node, Duration::from_secs(1));
    assert_eq!(
        capped.evm_http(PeriodGroup::Node).unwrap().timeout(),
        Duration::from_secs(1)
    );
}
