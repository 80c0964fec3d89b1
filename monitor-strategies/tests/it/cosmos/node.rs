//! The Cosmos node monitor against fake nodes.

use serde_json::{json, Value};

use monitor_core::{ErrorCode, RawDataKey};
use monitor_strategies::testing::{refused_url, BodyMode, Reply};
use monitor_strategies::{CosmosNodeConfig, CosmosNodeMonitor};
use monitor_strategies::{RestCall, SdkGeneration};

use super::common::*;

/// PANIC's expected historical entry for H (SOURCES.md).
fn expected_entry_h() -> Value {
    json!({"height": H, "active_in_prev_block": true, "signed_prev_block": true,
           "slashed": true, "slashed_amount": 62_500_000_000u64})
}

/// One round; the single `node.cosmos` body.
async fn round(monitor: &mut CosmosNodeMonitor) -> Value {
    let body = crate::common::one_body(monitor, RawDataKey::CosmosNode).await;
    let keys = crate::common::keys(&body);
    assert_eq!(keys, ["prometheus", "cosmos_rest", "tendermint_rpc"]);
    body
}

fn monitor(config: CosmosNodeConfig, sources: Vec<CosmosNodeConfig>) -> CosmosNodeMonitor {
    CosmosNodeMonitor::new(config, sources, http()).unwrap()
}

/// [`monitor`] with [`patient_http`]: no catch-up is cut short by its time budget.
fn patient_monitor(config: CosmosNodeConfig, sources: Vec<CosmosNodeConfig>) -> CosmosNodeMonitor {
    CosmosNodeMonitor::new(config, sources, patient_http()).unwrap()
}

/// Checks the meta_data of `config`'s monitor, followed by the `extra` keys (any value).
fn check_meta(meta: &Value, config: &CosmosNodeConfig, extra: &[&str]) {
    let mut expected = json!({
        "monitor_name": format!("Node monitor ({})", config.node_name),
        "node_name": config.node_name,
        "node_id": config.node_id,
        "node_parent_id": config.parent_id,
        "time": null,
        "is_validator": config.is_validator,
        "operator_address": config.operator_address,
    });
    for key in extra {
        expected[*key] = Value::Null;
    }
    crate::common::check_meta(meta, &expected);
}

/// The `(code, message)` of a source's error envelope.
fn error_of(body: &Value, source: &str) -> (u16, String) {
    let e = &body[source]["error"];
    assert!(body[source].get("result").is_none(), "{body}");
    (
        u16::try_from(e["code"].as_u64().unwrap()).unwrap(),
        e["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn validator_on_every_generation_gives_panics_data() {
    for (sdk, tm, generation) in [
        (Sdk::V039, Tm::V034, SdkGeneration::V039),
        // 0.40–0.45 and 0.46+ share the staking route: the newest generation answers first.
        (Sdk::V045, Tm::V037, SdkGeneration::V046),
        (Sdk::V047, Tm::V038, SdkGeneration::V046),
    ] {
        let node = FakeNode::start(sdk, tm).await;
        let config = validator_config(&node.url());
        let mut m = monitor(config.clone(), vec![config.clone()]);
        let body = round(&mut m).await;

        let prometheus = &body["prometheus"]["result"];
        check_meta(&prometheus["meta_data"], &config, &[]);
        assert_eq!(
            prometheus["data"].to_string(),
            r#"{"tendermint_consensus_latest_block_height":12840052.0,"tendermint_consensus_validator_power":1250000.0}"#
        );

        let rest = &body["cosmos_rest"]["result"];
        check_meta(&rest["meta_data"], &config, &[]);
        assert_eq!(
            rest["data"],
            json!({"bond_status": "unbonding", "jailed": true}),
            "{sdk:?}"
        );

        let tendermint = &body["tendermint_rpc"]["result"];
        check_meta(
            &tendermint["meta_data"],
            &config,
            &["is_mev_tendermint_node"],
        );
        assert_eq!(tendermint["meta_data"]["is_mev_tendermint_node"], false);
        assert_eq!(
            tendermint["data"],
            json!({"is_syncing": false, "historical": [expected_entry_h()]}),
            "{sdk:?} {tm:?}"
        );
        assert_eq!(m.tendermint_state().last_height, Some(H));
        assert_eq!(
            m.tendermint_state().consensus_address.as_deref(),
            Some(CONSENSUS)
        );
        assert_eq!(
            m.sdk_memory().get(&node.url(), RestCall::Validator),
            Some(generation),
            "{sdk:?}"
        );

        // The next round asks no route the node lacks: what worked is remembered.
        let probes_after_first = node.failed_probes(sdk);
        let body = round(&mut m).await;
        assert_eq!(node.failed_probes(sdk), probes_after_first, "{sdk:?}");
        // Nothing new on the chain: an empty history, the last height unchanged.
        assert_eq!(
            body["tendermint_rpc"]["result"]["data"]["historical"],
            json!([])
        );
        assert_eq!(
            body["cosmos_rest"]["result"]["data"]["bond_status"],
            "unbonding"
        );
        assert_eq!(m.tendermint_state().last_height, Some(H));
    }
}

#[tokio::test]
async fn history_follows_the_chain_across_rounds() {
    let node = FakeNode::start(Sdk::V047, Tm::V038).await;
    let config = validator_config(&node.url());
    let mut m = monitor(config.clone(), vec![config]);
    round(&mut m).await;
    node.set_height(H + 3);
    let body = round(&mut m).await;
    let historical = body["tendermint_rpc"]["result"]["data"]["historical"]
        .as_array()
        .unwrap()
        .clone();
    let heights: Vec<u64> = historical
        .iter()
        .map(|e| e["height"].as_u64().unwrap())
        .collect();
    assert_eq!(heights, [H + 3, H + 2, H + 1]);
    for e in &historical {
        assert_eq!(e["active_in_prev_block"], true);
        assert_eq!(e["signed_prev_block"], true);
        assert_eq!(e["slashed"], false);
        assert_eq!(e["slashed_amount"], Value::Null);
    }
    assert_eq!(m.tendermint_state().last_height, Some(H + 3));
    // Each height asked once: validators at h−1, block and block_results at h.
    let asked = |path: &str, h: u64| {
        node.server
            .requests()
            .iter()
            .filter(|r| r.path == path && query_u64(r, "height") == Some(h))
            .count()
    };
    for h in H + 1..=H + 3 {
        assert_eq!(asked("/validators", h - 1), 1);
        assert_eq!(asked("/block", h), 1);
        assert_eq!(asked("/block_results", h), 1);
    }
}

#[tokio::test]
async fn catch_up_windows_pruned_and_archive() {
    // Pruned source (the node itself): at most 89 heights after a long gap. Up to 900 requests
    // in one round: the time budget of a catch-up must not cut it short on a loaded machine.
    let node = FakeNode::start(Sdk::V047, Tm::V037).await;
    let config = validator_config(&node.url());
    let mut m = patient_monitor(config.clone(), vec![config.clone()]);
    round(&mut m).await;
    node.set_height(H + 200);
    let body = round(&mut m).await;
    let historical = body["tendermint_rpc"]["result"]["data"]["historical"]
        .as_array()
        .unwrap();
    assert_eq!(historical.len(), 89);
    assert_eq!(historical[0]["height"], H + 200);
    assert_eq!(historical[88]["height"], H + 112);

    // Archive source: at most 300 heights.
    let archive = FakeNode::start(Sdk::V047, Tm::V037).await;
    let mut archive_config = node_config("node_archive", "kestrel-archive", &archive.url());
    archive_config.is_archive_node = true;
    let mut m = patient_monitor(config.clone(), vec![archive_config, config]);
    round(&mut m).await;
    archive.set_height(H + 400);
    let body = round(&mut m).await;
    let historical = body["tendermint_rpc"]["result"]["data"]["historical"]
        .as_array()
        .unwrap();
    assert_eq!(historical.len(), 300);
    assert_eq!(historical[0]["height"], H + 400);
    assert_eq!(historical[299]["height"], H + 101);
    // The history came from the archive node, not from the validator.
    assert_eq!(node.hits_prefix("/validators"), 89 + 1);
    assert_eq!(archive.hits_prefix("/block_results"), 1 + 300);
}

#[tokio::test]
async fn data_sources_syncing_sentry_skipped_archive_preferred() {
    let validator = FakeNode::start(Sdk::V045, Tm::V034).await;
    let sentry = FakeNode::start(Sdk::V045, Tm::V034).await;
    sentry.set_syncing(true);
    let archive = FakeNode::start(Sdk::V045, Tm::V034).await;
    let config = validator_config(&validator.url());
    let sentry_config = node_config("node_sentry", "kestrel-sentry-02", &sentry.url());
    let mut archive_config = node_config("node_archive", "kestrel-archive", &archive.url());
    archive_config.is_archive_node = true;
    let mut m = monitor(
        config.clone(),
        vec![sentry_config, archive_config, config.clone()],
    );
    let body = round(&mut m).await;
    assert_eq!(body["cosmos_rest"]["result"]["data"]["jailed"], true);
    assert_eq!(
        body["tendermint_rpc"]["result"]["data"]["historical"],
        json!([expected_entry_h()])
    );
    // The sentry was asked whether it is synced, nothing else.
    assert_eq!(sentry.hits_prefix("/cosmos/staking"), 0);
    assert_eq!(sentry.hits_prefix("/block"), 0);
    // The validator answered its own checks only; the archive node served the data.
    assert_eq!(validator.hits_prefix("/cosmos/staking"), 0);
    assert_eq!(validator.hits_prefix("/validators"), 0);
    assert_eq!(archive.hits_prefix("/cosmos/staking"), 1);
    assert_eq!(archive.hits_prefix("/validators"), 1);
}

#[tokio::test]
async fn validators_are_read_page_by_page() {
    let node = FakeNode::start(Sdk::V047, Tm::V034).await;
    // The monitored validator is third by power: on page 2 of pages of 2.
    node.validators_page_size
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let config = validator_config(&node.url());
    let mut m = monitor(config.clone(), vec![config]);
    let body = round(&mut m).await;
    assert_eq!(
        body["tendermint_rpc"]["result"]["data"]["historical"],
        json!([expected_entry_h()])
    );
    let pages: Vec<Option<u64>> = node
        .server
        .requests()
        .iter()
        .filter(|r| r.path == "/validators")
        .map(|r| query_u64(r, "page"))
        .collect();
    assert_eq!(pages, [Some(1), Some(2)]);
}

#[tokio::test]
async fn non_validator_defaults() {
    let node = FakeNode::start(Sdk::V047, Tm::V038).await;
    let config = node_config("node_sentry", "sentry", &node.url());
    let mut m = monitor(config.clone(), vec![config.clone()]);
    let body = round(&mut m).await;
    check_meta(&body["cosmos_rest"]["result"]["meta_data"], &config, &[]);
    assert_eq!(
        body["cosmos_rest"]["result"]["data"],
        json!({"bond_status": "unbonded", "jailed": false})
    );
    assert_eq!(
        body["tendermint_rpc"]["result"]["data"],
        json!({"is_syncing": false, "historical": []})
    );
    assert_eq!(node.hits_prefix("/validators"), 0);
    assert_eq!(node.hits_prefix("/cosmos/staking"), 0);
}

#[tokio::test]
async fn disabled_sources_are_empty_objects() {
    let node = FakeNode::start(Sdk::V047, Tm::V038).await;
    let mut config = validator_config(&node.url());
    config.monitor_prometheus = false;
    config.monitor_tendermint_rpc = false;
    let mut m = monitor(config.clone(), vec![config]);
    let body = round(&mut m).await;
    assert_eq!(body["prometheus"], json!({}));
    assert_eq!(body["tendermint_rpc"], json!({}));
    assert!(body["cosmos_rest"].get("result").is_some());
    assert_eq!(
        node.hits_prefix("/metrics") + node.hits_prefix("/status"),
        0
    );
}

#[tokio::test]
async fn consensus_address_survives_and_never_leaks() {
    let node = FakeNode::start(Sdk::V047, Tm::V034).await;
    let config = validator_config(&node.url());
    let mut m = monitor(config.clone(), vec![config]);
    round(&mut m).await;
    // The node now reports no consensus key (e.g. a remote signer disconnected) and the chain
    // moved on: the remembered address is still used, and it never appears in the data.
    let mut status = fixture_json("tendermint/status.json");
    status["result"]["validator_info"]["address"] = json!("");
    node.server
        .route("/status", Reply::json(status.to_string()));
    node.set_height(H + 1);
    let body = round(&mut m).await;
    let data = &body["tendermint_rpc"]["result"]["data"];
    assert_eq!(
        data,
        &json!({"is_syncing": false, "historical": [{"height": H + 1, "active_in_prev_block": true,
            "signed_prev_block": true, "slashed": false, "slashed_amount": null}]})
    );
    assert!(!body.to_string().contains("consensus_hex_address"));

    // A validator whose consensus address was never known: not active, not signed (PANIC).
    let node = FakeNode::start(Sdk::V047, Tm::V034).await;
    node.server
        .route("/status", Reply::json(status.to_string()));
    let config = validator_config(&node.url());
    let mut m = monitor(config.clone(), vec![config]);
    let body = round(&mut m).await;
    assert_eq!(
        body["tendermint_rpc"]["result"]["data"],
        json!({"is_syncing": false, "historical": [{"height": H, "active_in_prev_block": false,
            "signed_prev_block": false, "slashed": false, "slashed_amount": null}]})
    );
    assert!(!body.to_string().contains("consensus_hex_address"));
}

#[tokio::test]
async fn mev_tendermint_peering() {
    let node = FakeNode::start(Sdk::V047, Tm::V034).await;
    let mut status = fixture_json("tendermint/status.json");
    status["result"]["mev_info"] = json!({"is_peered_with_relayer": true});
    node.server
        .route("/status", Reply::json(status.to_string()));
    let config = node_config("node_sentry", "sentry", &node.url());
    let mut m = monitor(config.clone(), vec![config]);
    let body = round(&mut m).await;
    let result = &body["tendermint_rpc"]["result"];
    assert_eq!(result["meta_data"]["is_mev_tendermint_node"], true);
    assert_eq!(
        result["data"],
        json!({"is_syncing": false, "is_peered_with_sentinel": true, "historical": []})
    );
}

#[tokio::test]
async fn empty_data_sources_is_5017() {
    let config = validator_config("http://127.0.0.1:1");
    let err = CosmosNodeMonitor::new(config, Vec::<CosmosNodeConfig>::new(), http()).unwrap_err();
    assert_eq!(err.code, ErrorCode::ComponentNotGivenEnoughDataSources);
    assert_eq!(
        err.message,
        "Node monitor (kestrel-validator-01) was not given enough data sources. data_sources is empty."
    );
}

#[tokio::test]
async fn prometheus_errors() {
    let node = FakeNode::start(Sdk::V047, Tm::V034).await;
    let mut config = validator_config(&node.url());
    config.monitor_cosmos_rest = false;
    config.monitor_tendermint_rpc = false;
    let cases: Vec<(Reply, u16)> = vec![
        (
            Reply::ok(fixture("tendermint/metrics.txt")).mode(BodyMode::Truncated(100)),
            5005,
        ),
        (Reply::ok("not prometheus {{{"), 5005),
        (Reply::ok("tendermint_consensus_validator_power 1\n"), 5003),
    ];
    for (reply, code) in cases {
        node.server.route("/metrics", reply);
        let mut m = monitor(config.clone(), vec![config.clone()]);
        let body = round(&mut m).await;
        let (got, message) = error_of(&body, "prometheus");
        assert_eq!(got, code, "{message}");
        check_meta(&body["prometheus"]["error"]["meta_data"], &config, &[]);
    }
    let (_, message) = {
        node.server.route(
            "/metrics",
            Reply::ok("tendermint_consensus_validator_power 1\n"),
        );
        let mut m = monitor(config.clone(), vec![config.clone()]);
        error_of(&round(&mut m).await, "prometheus")
    };
    assert_eq!(
        message,
        format!(
            "Could not find metric tendermint_consensus_latest_block_height at endpoint {}",
            config.prometheus_url
        )
    );
    // No validator power: the node is not in the set, int 0 as PANIC.
    node.server.route(
        "/metrics",
        Reply::ok("tendermint_consensus_latest_block_height{chain_id=\"x\"} 5\n"),
    );
    let mut m = monitor(config.clone(), vec![config.clone()]);
    let body = round(&mut m).await;
    assert_eq!(
        body["prometheus"]["result"]["data"].to_string(),
        r#"{"tendermint_consensus_latest_block_height":5.0,"tendermint_consensus_validator_power":0}"#
    );
    // Down and bad URL.
    let mut down = config.clone();
    down.prometheus_url = refused_url("/metrics").await.unwrap();
    let mut m = monitor(down.clone(), vec![down]);
    assert_eq!(
        error_of(&round(&mut m).await, "prometheus"),
        (5015, "Node kestrel-validator-01 is unreachable".to_owned())
    );
    let mut bad = config.clone();
    bad.prometheus_url = "localhost:26660/metrics".to_owned();
    let mut m = monitor(bad.clone(), vec![bad]);
    assert_eq!(
        error_of(&round(&mut m).await, "prometheus"),
        (5009, "Invalid URL 'localhost:26660/metrics'".to_owned())
    );
}

/// A validator config with only `cosmos_rest` on.
fn rest_only(url: &str) -> CosmosNodeConfig {
    let mut c = validator_config(url);
    c.monitor_prometheus = false;
    c.monitor_tendermint_rpc = false;
    c
}

#[tokio::test]
async fn cosmos_rest_errors() {
    // The node itself down, a bad URL, an unreadable answer, an API error.
    let refused = refused_url("").await.unwrap();
    let c = rest_only(&refused);
    let mut m = monitor(c.clone(), vec![c]);
    assert_eq!(error_of(&round(&mut m).await, "cosmos_rest").0, 5015);

    let c = rest_only("ftp://node:1317");
    let mut m = monitor(c.clone(), vec![c]);
    assert_eq!(error_of(&round(&mut m).await, "cosmos_rest").0, 5009);

    let node = FakeNode::start(Sdk::V047, Tm::V034).await;
    node.server.route(
        "/cosmos/base/tendermint/v1beta1/syncing",
        Reply::json("{\"syncing\": false}  ").mode(BodyMode::Truncated(3)),
    );
    let c = rest_only(&node.url());
    let mut m = monitor(c.clone(), vec![c.clone()]);
    assert_eq!(error_of(&round(&mut m).await, "cosmos_rest").0, 5005);

    node.server.route(
        "/cosmos/base/tendermint/v1beta1/syncing",
        Reply::status(500, fixture("cosmos_rest/error_v039.json")),
    );
    let mut m = monitor(c.clone(), vec![c.clone()]);
    assert_eq!(
        error_of(&round(&mut m).await, "cosmos_rest"),
        (
            5024,
            "Cosmos Rest Server call syncing failed. Error: validator does not exist".to_owned()
        )
    );

    // A server with none of the routes of any generation: 5023.
    let empty = monitor_strategies::testing::TestServer::start()
        .await
        .unwrap();
    let c = rest_only(&empty.url(""));
    let mut m = monitor(c.clone(), vec![c]);
    let (code, message) = error_of(&round(&mut m).await, "cosmos_rest");
    assert_eq!(code, 5023);
    assert!(message.starts_with("PANIC cannot obtain Rest data for kestrel-validator-01"));
    // Every generation was tried once on the syncing route (two share `/syncing`).
    assert_eq!(empty.hits("/syncing"), 2);
    assert_eq!(empty.hits("/cosmos/base/tendermint/v1beta1/syncing"), 1);

    // No synced data source (the only one, the node itself, is syncing): 5019.
    let node = FakeNode::start(Sdk::V045, Tm::V034).await;
    node.set_syncing(true);
    let c = rest_only(&node.url());
    let mut m = monitor(c.clone(), vec![c.clone()]);
    assert_eq!(
        error_of(&round(&mut m).await, "cosmos_rest"),
        (
            5019,
            "Node monitor (kestrel-validator-01) could not access any synced indirect Cosmos REST node."
                .to_owned()
        )
    );

    // The data source refuses the validator query (connection closed): 5026; API error: 5024.
    let source = FakeNode::start(Sdk::V045, Tm::V034).await;
    let source_config = node_config("node_source", "source", &source.url());
    source.server.route(
        &format!("/cosmos/staking/v1beta1/validators/{VALOPER}"),
        Reply::ok("").mode(BodyMode::Close),
    );
    let node = FakeNode::start(Sdk::V045, Tm::V034).await;
    let c = rest_only(&node.url());
    let mut m = monitor(c.clone(), vec![source_config.clone(), c.clone()]);
    let (code, message) = error_of(&round(&mut m).await, "cosmos_rest");
    assert_eq!(code, 5026, "{message}");
    assert!(
        message.starts_with(
            "Node monitor (kestrel-validator-01) cannot connect with data source source."
        ),
        "{message}"
    );
    source.server.route(
        &format!("/cosmos/staking/v1beta1/validators/{VALOPER}"),
        Reply::status(
            500,
            r#"{"code": 5, "message": "validator not found", "details": []}"#,
        ),
    );
    let mut m = monitor(c.clone(), vec![source_config, c]);
    assert_eq!(error_of(&round(&mut m).await, "cosmos_rest").0, 5024);
}

/// A validator config with only `tendermint_rpc` on.
fn tm_only(url: &str) -> CosmosNodeConfig {
    let mut c = validator_config(url);
    c.monitor_prometheus = false;
    c.monitor_cosmos_rest = false;
    c
}

#[tokio::test]
async fn tendermint_rpc_errors() {
    let refused = refused_url("").await.unwrap();
    let c = tm_only(&refused);
    let mut m = monitor(c.clone(), vec![c]);
    assert_eq!(
        error_of(&round(&mut m).await, "tendermint_rpc"),
        (5015, "Node kestrel-validator-01 is unreachable".to_owned())
    );

    let c = tm_only("not a url");
    let mut m = monitor(c.clone(), vec![c]);
    assert_eq!(error_of(&round(&mut m).await, "tendermint_rpc").0, 5009);

    let node = FakeNode::start(Sdk::V047, Tm::V034).await;
    let c = tm_only(&node.url());
    let cases: Vec<(Reply, u16)> = vec![
        (
            Reply::json(fixture("tendermint/status.json")).mode(BodyMode::Truncated(50)),
            5005,
        ),
        (
            Reply::json(fixture("tendermint/error_height_not_available.json")),
            5030,
        ),
        (Reply::status(404, "404 page not found"), 5029),
        (
            Reply::json(r#"{"jsonrpc": "2.0", "id": -1, "result": {"node_info": {}}}"#),
            5029,
        ),
        (Reply::json("<html>"), 5029),
    ];
    for (reply, code) in cases {
        node.server.route("/status", reply);
        let mut m = monitor(c.clone(), vec![c.clone()]);
        let (got, message) = error_of(&round(&mut m).await, "tendermint_rpc");
        assert_eq!(got, code, "{message}");
    }

    // No synced source: 5019.
    let node = FakeNode::start(Sdk::V047, Tm::V034).await;
    node.set_syncing(true);
    let c = tm_only(&node.url());
    let mut m = monitor(c.clone(), vec![c]);
    assert_eq!(
        error_of(&round(&mut m).await, "tendermint_rpc"),
        (
            5019,
            "Node monitor (kestrel-validator-01) could not access any synced archive/indirect Tendermint RPC node."
                .to_owned()
        )
    );

    // A pruned source without the height: 5030 with the node's message.
    let node = FakeNode::start(Sdk::V047, Tm::V034).await;
    let c = tm_only(&node.url());
    node.server.route(
        "/block_results",
        Reply::json(fixture("tendermint/error_height_not_available.json")),
    );
    let mut m = monitor(c.clone(), vec![c.clone()]);
    assert_eq!(
        error_of(&round(&mut m).await, "tendermint_rpc"),
        (
            5030,
            "Tendermint RPC call block_results failed. Error: Internal error: height 12000000 is not available, lowest height is 12477172"
                .to_owned()
        )
    );
    // The adjusted last height was kept: the next round retries H only.
    assert_eq!(m.tendermint_state().last_height, Some(H - 1));

    // The data source closes the connection on /validators: 5026. Unknown event list: 5029.
    let source = FakeNode::start(Sdk::V047, Tm::V034).await;
    source
        .server
        .route("/validators", Reply::ok("").mode(BodyMode::Close));
    let source_config = node_config("node_source", "source", &source.url());
    let node = FakeNode::start(Sdk::V047, Tm::V034).await;
    let c = tm_only(&node.url());
    let mut m = monitor(c.clone(), vec![source_config.clone(), c.clone()]);
    assert_eq!(error_of(&round(&mut m).await, "tendermint_rpc").0, 5026);
    source.server.route(
        "/validators",
        Reply::json(validators_page(H - 1, 1, 100).to_string()),
    );
    source.server.route(
        "/block_results",
        Reply::json(r#"{"jsonrpc": "2.0", "id": -1, "result": {"height": "12840052"}}"#),
    );
    let mut m = monitor(c.clone(), vec![source_config, c]);
    assert_eq!(error_of(&round(&mut m).await, "tendermint_rpc").0, 5029);
}

#[tokio::test]
async fn sources_fail_independently() {
    let node = FakeNode::start(Sdk::V047, Tm::V034).await;
    node.server.route("/status", Reply::status(404, "nope"));
    let config = validator_config(&node.url());
    let mut m = monitor(config.clone(), vec![config]);
    let body = round(&mut m).await;
    assert!(body["prometheus"].get("result").is_some());
    assert!(body["cosmos_rest"].get("result").is_some());
    assert_eq!(error_of(&body, "tendermint_rpc").0, 5029);
}

#[tokio::test]
async fn silent_node_is_down_not_a_hang() {
    let node = FakeNode::start(Sdk::V047, Tm::V034).await;
    node.server.route("/status", Reply::no_response());
    node.server.route("/metrics", Reply::no_response());
    let config = validator_config(&node.url());
    let mut m = CosmosNodeMonitor::new(config.clone(), vec![config], short_http()).unwrap();
    let body = round(&mut m).await;
    assert_eq!(error_of(&body, "prometheus").0, 5015);
    assert_eq!(error_of(&body, "tendermint_rpc").0, 5015);
}

#[tokio::test]
async fn long_catch_up_is_bounded_and_resumes() {
    let node = FakeNode::start(Sdk::V047, Tm::V034).await;
    let config = validator_config(&node.url());
    let http = monitor_strategies::StrategySettings::default()
        .with_request_timeout(std::time::Duration::from_secs(2))
        .http(
            monitor_strategies::Target::Monitored,
            monitor_core::PeriodGroup::Node,
        )
        .unwrap();
    let mut m = CosmosNodeMonitor::new(config.clone(), vec![config], http).unwrap();
    round(&mut m).await;
    node.set_height(H + 20);
    // Heights past H + 8 (the second batch) never answer: the first batch is published, the
    // round ends at its time budget (before the requests' own timeout) instead of failing.
    node.server.route_fn("/block_results", |r| {
        let h = query_u64(r, "height").unwrap();
        if h > H + 8 {
            Reply::no_response()
        } else {
            Reply::json(block_results_at(h, Tm::V034).to_string())
        }
    });
    let body = round(&mut m).await;
    let heights: Vec<u64> = body["tendermint_rpc"]["result"]["data"]["historical"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["height"].as_u64().unwrap())
        .collect();
    assert_eq!(heights, (H + 1..=H + 8).rev().collect::<Vec<_>>());
    assert_eq!(m.tendermint_state().last_height, Some(H + 8));
    // The node answers again: the next round resumes at H + 9.
    node.server.route_fn("/block_results", |r| {
        let h = query_u64(r, "height").unwrap();
        Reply::json(block_results_at(h, Tm::V034).to_string())
    });
    let body = round(&mut m).await;
    let historical = body["tendermint_rpc"]["result"]["data"]["historical"]
        .as_array()
        .unwrap();
    assert_eq!(historical.len(), 12);
    assert_eq!(historical[0]["height"], H + 20);
    assert_eq!(historical[11]["height"], H + 9);
    assert_eq!(m.tendermint_state().last_height, Some(H + 20));
}

/// A hostile or broken node reporting the largest height there is: rounds go on (no overflow of
/// `last + 1`), the second round has nothing new to look at.
#[tokio::test]
async fn height_at_u64_max_is_not_an_overflow() {
    let node = FakeNode::start(Sdk::V047, Tm::V038).await;
    node.set_height(u64::MAX);
    let config = tm_only(&node.url());
    let mut m = monitor(config.clone(), vec![config]);
    let body = round(&mut m).await;
    let heights: Vec<u64> = body["tendermint_rpc"]["result"]["data"]["historical"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["height"].as_u64().unwrap())
        .collect();
    assert_eq!(heights, [u64::MAX]);
    assert_eq!(m.tendermint_state().last_height, Some(u64::MAX));
    let body = round(&mut m).await;
    assert_eq!(
        body["tendermint_rpc"]["result"]["data"]["historical"],
        json!([])
    );
}

/// Validator pages whose `count`s add up beyond 64 bits are an error envelope, not an overflow.
#[tokio::test]
async fn validator_counts_beyond_u64_are_not_an_overflow() {
    let node = FakeNode::start(Sdk::V047, Tm::V038).await;
    node.server.route_fn("/validators", move |r| {
        let h = query_u64(r, "height").unwrap();
        let mut page = validators_page(h, 1, 100);
        page["result"]["count"] = json!(u64::MAX.to_string());
        page["result"]["total"] = json!(u64::MAX.to_string());
        if query_u64(r, "page") == Some(1) {
            page["result"]["count"] = json!("1");
        }
        Reply::json(page.to_string())
    });
    let config = tm_only(&node.url());
    let mut m = monitor(config.clone(), vec![config]);
    let body = round(&mut m).await;
    // Page 2 completes the count (saturated at the total): the history is read.
    assert!(
        body["tendermint_rpc"]["result"]["data"]["historical"].is_array(),
        "{body}"
    );
    assert_eq!(node.hits_prefix("/validators"), 2);
}
