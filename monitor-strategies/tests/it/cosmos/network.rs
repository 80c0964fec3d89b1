//! The Cosmos network monitor against fake nodes.

use serde_json::{json, Value};

use monitor_core::{ErrorCode, RawDataKey};
use monitor_strategies::testing::{refused_url, BodyMode, Reply, TestServer};
use monitor_strategies::{CosmosNetworkMonitor, CosmosNodeConfig};
use monitor_strategies::{RestCall, SdkGeneration};

use super::common::*;

fn monitor(sources: Vec<CosmosNodeConfig>) -> CosmosNetworkMonitor {
    CosmosNetworkMonitor::new("chain_cosmoshub", "cosmoshub", sources, http()).unwrap()
}

async fn round(m: &mut CosmosNetworkMonitor) -> Value {
    let body = crate::common::one_body(m, RawDataKey::CosmosNetwork).await;
    let keys = crate::common::keys(&body);
    assert_eq!(keys, ["cosmos_rest"]);
    let inner = body["cosmos_rest"]
        .get("result")
        .or_else(|| body["cosmos_rest"].get("error"))
        .unwrap();
    crate::common::check_meta(
        &inner["meta_data"],
        &json!({"monitor_name": "Cosmos Network Monitor (cosmoshub)",
                "parent_id": "chain_cosmoshub", "chain_name": "cosmoshub", "time": null}),
    );
    body
}

/// PANIC's normalisation of the three fixture proposals (75 passed, 76 rejected, 77 voting).
fn expected_proposals() -> Value {
    let mut page1 = fixture_json("cosmos_rest/proposals_page1.json")["proposals"]
        .as_array()
        .unwrap()
        .clone();
    page1.extend(
        fixture_json("cosmos_rest/proposals_page2.json")["proposals"]
            .as_array()
            .unwrap()
            .clone(),
    );
    let statuses = ["passed", "rejected", "voting_period"];
    Value::Array(
        page1
            .iter()
            .zip(statuses)
            .map(|(p, status)| {
                json!({
                    "proposal_id": p["proposal_id"], "title": p["content"]["title"],
                    "description": p["content"]["description"], "status": status,
                    "final_tally_result": p["final_tally_result"], "submit_time": p["submit_time"],
                    "deposit_end_time": p["deposit_end_time"], "total_deposit": p["total_deposit"],
                    "voting_start_time": p["voting_start_time"], "voting_end_time": p["voting_end_time"],
                })
            })
            .collect(),
    )
}

#[tokio::test]
async fn proposals_on_every_generation() {
    for (sdk, generation) in [
        (Sdk::V039, SdkGeneration::V039),
        (Sdk::V045, SdkGeneration::V040),
        (Sdk::V047, SdkGeneration::V046),
    ] {
        let node = FakeNode::start(sdk, Tm::V034).await;
        let mut m = monitor(vec![node_config("node_a", "a", &node.url())]);
        let body = round(&mut m).await;
        assert_eq!(
            body["cosmos_rest"]["result"]["data"],
            json!({"proposals": expected_proposals()}),
            "{sdk:?}"
        );
        assert_eq!(
            m.sdk_memory().get(&node.url(), RestCall::Proposals),
            Some(generation)
        );
        let probes = node.failed_probes(sdk);
        round(&mut m).await;
        assert_eq!(node.failed_probes(sdk), probes, "{sdk:?}: probing again");
    }
}

#[tokio::test]
async fn every_page_is_read() {
    let node = FakeNode::start(Sdk::V045, Tm::V034).await;
    let mut m = monitor(vec![node_config("node_a", "a", &node.url())]);
    round(&mut m).await;
    let targets: Vec<String> = node
        .server
        .requests()
        .iter()
        .filter(|r| r.path == "/cosmos/gov/v1beta1/proposals")
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(
        targets,
        [
            "/cosmos/gov/v1beta1/proposals",
            "/cosmos/gov/v1beta1/proposals?pagination.key=AAAAAAAAAE0%3D"
        ]
    );
}

#[tokio::test]
async fn first_synced_source_is_used() {
    let syncing = FakeNode::start(Sdk::V047, Tm::V034).await;
    syncing.set_syncing(true);
    let down = refused_url("").await.unwrap();
    let synced = FakeNode::start(Sdk::V047, Tm::V034).await;
    let mut no_url = node_config("node_x", "x", "");
    no_url.cosmos_rest_url = String::new();
    let mut m = monitor(vec![
        no_url,
        node_config("node_down", "down", &down),
        node_config("node_syncing", "syncing", &syncing.url()),
        node_config("node_synced", "synced", &synced.url()),
    ]);
    let body = round(&mut m).await;
    assert_eq!(
        body["cosmos_rest"]["result"]["data"]["proposals"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(syncing.hits_prefix("/cosmos/gov"), 0);
}

fn error_of(body: &Value) -> (u16, String) {
    let e = &body["cosmos_rest"]["error"];
    (
        u16::try_from(e["code"].as_u64().unwrap()).unwrap(),
        e["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn network_errors() {
    // None synced: 5019.
    let node = FakeNode::start(Sdk::V047, Tm::V034).await;
    node.set_syncing(true);
    let mut m = monitor(vec![node_config("node_a", "a", &node.url())]);
    assert_eq!(
        error_of(&round(&mut m).await),
        (
            5019,
            "Cosmos Network Monitor (cosmoshub) could not access any synced indirect Cosmos REST node."
                .to_owned()
        )
    );

    // Synced, but no proposals route of any generation: 5027.
    let node = FakeNode::start(Sdk::V047, Tm::V034).await;
    node.server.route(
        "/cosmos/gov/v1/proposals",
        Reply::status(404, "404 page not found"),
    );
    let mut m = monitor(vec![node_config("node_a", "a", &node.url())]);
    let (code, message) = error_of(&round(&mut m).await);
    assert_eq!(code, 5027);
    assert!(message.starts_with("PANIC cannot obtain network data"));

    // An unexpected proposal structure on every generation is also 5027 (PANIC's 5025 set).
    node.server.route(
        "/cosmos/gov/v1/proposals",
        Reply::json(r#"{"proposals": [{"id": "1"}], "pagination": null}"#),
    );
    let mut m = monitor(vec![node_config("node_a", "a", &node.url())]);
    assert_eq!(error_of(&round(&mut m).await).0, 5027);

    // The source closes the connection on proposals: 5026; API error: 5024; truncated: 5005.
    node.server.route(
        "/cosmos/gov/v1/proposals",
        Reply::ok("").mode(BodyMode::Close),
    );
    let mut m = monitor(vec![node_config("node_a", "a", &node.url())]);
    let (code, message) = error_of(&round(&mut m).await);
    assert_eq!(code, 5026);
    assert!(message
        .starts_with("Cosmos Network Monitor (cosmoshub) cannot connect with data source a."));
    node.server.route(
        "/cosmos/gov/v1/proposals",
        Reply::status(
            400,
            r#"{"code": 3, "message": "invalid request", "details": []}"#,
        ),
    );
    let mut m = monitor(vec![node_config("node_a", "a", &node.url())]);
    assert_eq!(
        error_of(&round(&mut m).await),
        (
            5024,
            "Cosmos Rest Server call proposals failed. Error: invalid request".to_owned()
        )
    );
    node.server.route(
        "/cosmos/gov/v1/proposals",
        Reply::json(fixture("cosmos_rest/proposals_page2.json")).mode(BodyMode::Truncated(10)),
    );
    let mut m = monitor(vec![node_config("node_a", "a", &node.url())]);
    assert_eq!(error_of(&round(&mut m).await).0, 5005);

    // A next_key that repeats is refused rather than looped on.
    node.server.route(
        "/cosmos/gov/v1/proposals",
        Reply::json(r#"{"proposals": [], "pagination": {"next_key": "AAAA"}}"#),
    );
    let mut m = monitor(vec![node_config("node_a", "a", &node.url())]);
    assert_eq!(error_of(&round(&mut m).await).0, 5027);
    assert!(node.server.hits("/cosmos/gov/v1/proposals") >= 2);

    // An empty server (everything 404): the syncing checks fail, no source: 5019.
    let empty = TestServer::start().await.unwrap();
    let mut m = monitor(vec![node_config("node_a", "a", &empty.url(""))]);
    assert_eq!(error_of(&round(&mut m).await).0, 5019);
}

#[test]
fn empty_data_sources_is_5017() {
    let err = CosmosNetworkMonitor::new("c", "cosmoshub", Vec::<CosmosNodeConfig>::new(), http())
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ComponentNotGivenEnoughDataSources);
    assert_eq!(
        err.message,
        "Cosmos Network Monitor (cosmoshub) was not given enough data sources. data_sources is empty."
    );
}
