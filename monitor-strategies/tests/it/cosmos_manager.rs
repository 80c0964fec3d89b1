//! A Cosmos chain run by the real `MonitorsManager` on the in-memory bus: a `nodes_config`
//! message in on `config`; `node.cosmos` bodies for the validator and its sentry, the chain's
//! `network.cosmos` body, worker heartbeats and the `cosmos.nodes` / `cosmos.chains` monitorables
//! out; then `{}` removes everything. Real time (fake nodes on local HTTP servers), short periods.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{next_json, Running};
use monitor_core::keys::{HEALTH_CHECK_EXCHANGE, MONITORABLE_EXCHANGE, RAW_DATA_EXCHANGE};
use monitor_core::PeriodGroup;
use monitor_strategies::StrategySettings;
use monitors_manager::ManagerSettings;

use crate::cosmos::common::{FakeNode, Sdk, Tm, H, VALOPER};

const KEY: &str = "chains.cosmos.cosmoshub.nodes_config";

/// A v1 `nodes_config` section (the union of every node field).
fn section(id: &str, name: &str, url: &str, validator: bool) -> Value {
    json!({
        "id": id, "parent_id": "chain_cosmoshub", "name": name, "node_ws_url": "",
        "exporter_url": "", "monitor_system": "false", "monitor_node": "true",
        "is_validator": validator.to_string(), "is_archive_node": "false",
        "use_as_data_source": (!validator).to_string(), "stash_address": "",
        "governance_addresses": "", "monitor_network": "true", "cosmos_rest_url": url,
        "monitor_cosmos_rest": "true", "tendermint_rpc_url": url, "monitor_tendermint_rpc": "true",
        "operator_address": if validator { VALOPER } else { "" }, "monitor_prometheus": "true",
        "prometheus_url": format!("{url}/metrics"), "node_prometheus_urls": "", "evm_nodes_urls": "",
        "weiwatchers_url": "", "monitor_contracts": "false"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosmos_chain_runs_through_the_manager() {
    let validator = FakeNode::start(Sdk::V047, Tm::V038).await;
    let sentry = FakeNode::start(Sdk::V047, Tm::V038).await;

    let strategies = StrategySettings::default()
        .with_group_timeout(PeriodGroup::Node, Duration::from_secs(2))
        .with_group_timeout(PeriodGroup::Network, Duration::from_secs(2));
    let settings = ManagerSettings {
        periods: [
            (PeriodGroup::Node, Duration::from_secs(1)),
            (PeriodGroup::Network, Duration::from_secs(1)),
        ]
        .into_iter()
        .collect(),
        max_phase_spread: Duration::from_millis(200),
        ..ManagerSettings::default()
    };
    let running = Running::start(strategies, settings).await;

    let mut nodes = running
        .capture("test_node_cosmos", RAW_DATA_EXCHANGE, "node.cosmos")
        .await;
    let mut network = running
        .capture("test_network_cosmos", RAW_DATA_EXCHANGE, "network.cosmos")
        .await;
    let mut monitorables = running
        .capture("test_monitorables", MONITORABLE_EXCHANGE, "cosmos.*")
        .await;
    let mut heartbeats = running
        .capture("test_heartbeats", HEALTH_CHECK_EXCHANGE, "heartbeat.worker")
        .await;

    running.config(KEY, &json!({
            "node_validator": section("node_validator", "kestrel-validator-01", &validator.url(), true),
            "node_sentry": section("node_sentry", "kestrel-sentry-01", &sentry.url(), false),
        }),
    )
    .await;

    // Monitorables: both nodes, and the chain.
    let mut lists = BTreeMap::new();
    while lists.len() < 2 {
        let (key, body) = next_json(&mut monitorables).await;
        if key == "cosmos.nodes" || key == "cosmos.chains" {
            lists.insert(key, body);
        }
    }
    let mut node_sources: Vec<String> = lists["cosmos.nodes"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["source_id"].as_str().unwrap().to_owned())
        .collect();
    node_sources.sort();
    assert_eq!(node_sources, ["node_sentry", "node_validator"]);
    assert_eq!(
        lists["cosmos.chains"]["sources"],
        json!([{"chain_id": "chain_cosmoshub", "chain_name": "cosmoshub",
                "source_id": "chain_cosmoshub", "source_name": "cosmos cosmoshub"}])
    );

    // One body of each node: the validator's history comes from the synced sentry.
    let mut bodies = BTreeMap::new();
    while bodies.len() < 2 {
        let (_, body) = next_json(&mut nodes).await;
        let name = body["prometheus"]["result"]["meta_data"]["node_name"]
            .as_str()
            .unwrap()
            .to_owned();
        bodies.insert(name, body);
    }
    let v = &bodies["kestrel-validator-01"];
    assert_eq!(
        v["tendermint_rpc"]["result"]["data"],
        json!({"is_syncing": false, "historical": [{"height": H, "active_in_prev_block": true,
               "signed_prev_block": true, "slashed": true, "slashed_amount": 62_500_000_000u64}]})
    );
    assert_eq!(
        v["cosmos_rest"]["result"]["data"],
        json!({"bond_status": "unbonding", "jailed": true})
    );
    let s = &bodies["kestrel-sentry-01"];
    assert_eq!(
        s["tendermint_rpc"]["result"]["data"],
        json!({"is_syncing": false, "historical": []})
    );
    assert!(sentry.hits_prefix("/block_results") >= 1);
    assert_eq!(validator.hits_prefix("/block_results"), 0);

    let (_, body) = next_json(&mut network).await;
    assert_eq!(
        body["cosmos_rest"]["result"]["meta_data"]["monitor_name"],
        "Cosmos Network Monitor (cosmoshub)"
    );
    assert_eq!(
        body["cosmos_rest"]["result"]["data"]["proposals"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let (_, hb) = next_json(&mut heartbeats).await;
        let name = hb["component_name"].as_str().unwrap().to_owned();
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "Cosmos Network Monitor (cosmoshub)",
            "Node monitor (kestrel-sentry-01)",
            "Node monitor (kestrel-validator-01)"
        ]
    );

    // `{}`: everything under the key goes, and the lists are emptied.
    running.config(KEY, &json!({})).await;
    let mut emptied = BTreeMap::new();
    while !(emptied.contains_key("cosmos.nodes") && emptied.contains_key("cosmos.chains")) {
        let (key, body) = next_json(&mut monitorables).await;
        // `cosmos.systems` (from the same message) is published too.
        if body["sources"] == json!([]) {
            emptied.insert(key, ());
        }
    }

    running.stop().await;
}
