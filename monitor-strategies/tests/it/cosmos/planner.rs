//! The Cosmos node and network planners.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use monitor_core::config::ConfigMessage;
use monitor_core::{
    ConfigError, ConfigKey, ConfigType, MonitorableType, PeriodGroup, Plan, Planner,
};
use monitor_strategies::{network_data_sources, node_data_sources, parse_nodes};
use monitor_strategies::{registry, CosmosNetworkPlanner, CosmosNodesPlanner, StrategySettings};

const KEY: &str = "chains.cosmos.cosmoshub.nodes_config";

/// A v1 `nodes_config` section (the union of every node field).
fn section(id: &str, validator: bool, data_source: bool) -> Value {
    json!({
        "id": id, "parent_id": "chain_cosmoshub", "name": format!("name_{id}"), "node_ws_url": "",
        "exporter_url": "", "monitor_system": "false", "monitor_node": "true",
        "is_validator": validator.to_string(), "is_archive_node": "false",
        "use_as_data_source": data_source.to_string(), "stash_address": "", "governance_addresses": "",
        "monitor_network": "true", "cosmos_rest_url": format!("http://{id}:1317"),
        "monitor_cosmos_rest": "true", "tendermint_rpc_url": format!("http://{id}:26657"),
        "monitor_tendermint_rpc": "true", "operator_address": "", "monitor_prometheus": "false",
        "prometheus_url": "", "node_prometheus_urls": "", "evm_nodes_urls": "", "weiwatchers_url": "",
        "monitor_contracts": "false"
    })
}

fn message(sections: &[(&str, Value)]) -> ConfigMessage {
    let mut body = serde_json::Map::new();
    for (id, s) in sections {
        body.insert((*id).to_owned(), s.clone());
    }
    ConfigMessage::parse(KEY, Value::Object(body).to_string().as_bytes()).unwrap()
}

fn nodes_planner() -> CosmosNodesPlanner {
    CosmosNodesPlanner::new(Arc::new(StrategySettings::default()))
}

fn network_planner() -> CosmosNetworkPlanner {
    CosmosNetworkPlanner::new(Arc::new(StrategySettings::default()))
}

fn fingerprints(plan: &Plan) -> BTreeMap<String, u64> {
    plan.specs
        .iter()
        .map(|s| (s.id.clone(), s.fingerprint))
        .collect()
}

/// Five nodes in message order: v1 (validator, source), s1 (sentry, source), v2 (validator,
/// source), s2 (sentry, source), x (sentry, not a source).
fn five() -> Vec<(&'static str, Value)> {
    vec![
        ("v1", section("v1", true, true)),
        ("s1", section("s1", false, true)),
        ("v2", section("v2", true, true)),
        ("s2", section("s2", false, true)),
        ("x", section("x", false, false)),
    ]
}

#[test]
fn data_sources_non_validators_then_validators_then_self() {
    let (nodes, errors) = parse_nodes(&message(&five()));
    assert!(errors.is_empty());
    let ids = |id: &str| -> Vec<String> {
        let (_, own) = nodes.iter().find(|(i, _)| i == id).unwrap();
        node_data_sources(&nodes, id, own)
            .into_iter()
            .map(|n| n.node_id)
            .collect()
    };
    assert_eq!(ids("v1"), ["s1", "s2", "v2", "v1"]);
    assert_eq!(ids("s2"), ["s1", "v1", "v2", "s2"]);
    assert_eq!(ids("x"), ["s1", "s2", "v1", "v2", "x"]);
    let network: Vec<String> = network_data_sources(&nodes)
        .into_iter()
        .map(|n| n.node_id)
        .collect();
    assert_eq!(network, ["s1", "s2", "v1", "v2"]);
}

#[test]
fn node_specs() {
    let plan = nodes_planner().plan(&message(&five()));
    assert!(plan.errors.is_empty());
    let ids: Vec<&str> = plan.specs.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["v1", "s1", "v2", "s2", "x"]);
    let spec = &plan.specs[0];
    assert_eq!(spec.component_name, "Node monitor (name_v1)");
    assert_eq!(spec.group, PeriodGroup::Node);
    assert_eq!(spec.monitorables.len(), 1);
    let m = &spec.monitorables[0];
    assert_eq!(m.base_chain, "cosmos");
    assert_eq!(m.monitorable_type, MonitorableType::Nodes);
    assert_eq!(m.source.chain_id, "chain_cosmoshub");
    assert_eq!(m.source.chain_name, "cosmoshub");
    assert_eq!(m.source.source_id, "v1");
    assert_eq!(m.source.source_name, "name_v1");
    let monitor = (spec.build)().unwrap();
    assert_eq!(monitor.name(), "Node monitor (name_v1)");
}

#[test]
fn start_conditions() {
    let mut off = section("a", false, true);
    off["monitor_node"] = json!("false");
    let mut no_source = section("b", false, true);
    no_source["monitor_cosmos_rest"] = json!("false");
    no_source["monitor_tendermint_rpc"] = json!("false");
    let mut prometheus_only = no_source.clone();
    prometheus_only["id"] = json!("c");
    prometheus_only["monitor_prometheus"] = json!("True");
    let plan = nodes_planner().plan(&message(&[
        ("a", off),
        ("b", no_source),
        ("c", prometheus_only),
    ]));
    let ids: Vec<&str> = plan.specs.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["c"]);
}

#[test]
fn missing_field_is_reported_and_others_still_plan() {
    let mut broken = section("v1", true, true);
    broken.as_object_mut().unwrap().remove("operator_address");
    let mut sections = five();
    sections[0].1 = broken;
    let plan = nodes_planner().plan(&message(&sections));
    assert_eq!(plan.errors.len(), 1);
    assert!(matches!(
        &plan.errors[0],
        ConfigError::MissingField { section, field, .. } if section == "v1" && field == "operator_address"
    ));
    let ids: Vec<&str> = plan.specs.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["s1", "v2", "s2", "x"]);
}

#[test]
fn only_monitors_whose_inputs_changed_restart() {
    let before = fingerprints(&nodes_planner().plan(&message(&five())));
    // Same message again: nothing restarts.
    assert_eq!(
        before,
        fingerprints(&nodes_planner().plan(&message(&five())))
    );

    // x is nobody's data source: changing its URL restarts x only.
    let mut sections = five();
    sections[4].1["cosmos_rest_url"] = json!("http://x-new:1317");
    let after = fingerprints(&nodes_planner().plan(&message(&sections)));
    let changed: Vec<&String> = before.keys().filter(|k| before[*k] != after[*k]).collect();
    assert_eq!(changed, ["x"]);

    // x becomes a data source: every other monitor's sources change, and x's own config.
    let mut sections = five();
    sections[4].1["use_as_data_source"] = json!("true");
    let after = fingerprints(&nodes_planner().plan(&message(&sections)));
    assert!(before.keys().all(|k| before[k] != after[k]));

    // v2 stops being monitored but stays a data source: its spec goes, the others keep running.
    let mut sections = five();
    sections[2].1["monitor_node"] = json!("false");
    let after = fingerprints(&nodes_planner().plan(&message(&sections)));
    assert!(!after.contains_key("v2"));
    assert!(after.iter().all(|(k, v)| before[k] == *v));

    // v2 stops being a data source: its own monitor and those it served restart; x too (it had
    // v2 among its sources).
    let mut sections = five();
    sections[2].1["use_as_data_source"] = json!("false");
    let after = fingerprints(&nodes_planner().plan(&message(&sections)));
    assert!(before.keys().all(|k| before[k] != after[k]));
}

#[test]
fn network_monitor_start_and_no_start() {
    let plan = network_planner().plan(&message(&five()));
    assert!(plan.errors.is_empty());
    assert_eq!(plan.specs.len(), 1);
    let spec = &plan.specs[0];
    assert_eq!(spec.id, "cosmos cosmoshub");
    assert_eq!(spec.component_name, "Cosmos Network Monitor (cosmoshub)");
    assert_eq!(spec.group, PeriodGroup::Network);
    let m = &spec.monitorables[0];
    assert_eq!(m.monitorable_type, MonitorableType::Chains);
    assert_eq!(m.base_chain, "cosmos");
    assert_eq!(m.source.chain_id, "chain_cosmoshub");
    assert_eq!(m.source.chain_name, "cosmoshub");
    assert_eq!(m.source.source_id, "chain_cosmoshub");
    assert_eq!(m.source.source_name, "cosmos cosmoshub");
    assert_eq!(
        (spec.build)().unwrap().name(),
        "Cosmos Network Monitor (cosmoshub)"
    );

    // monitor_network false everywhere, or different between sections, or different parents.
    for (field, value) in [
        ("monitor_network", "false"),
        ("monitor_network", "mixed"),
        ("parent_id", "mixed"),
    ] {
        let mut sections = five();
        for (i, (_, s)) in sections.iter_mut().enumerate() {
            s[field] = json!(if value == "mixed" {
                if i == 3 {
                    "other"
                } else {
                    s[field].as_str().unwrap()
                }
                .to_owned()
            } else {
                value.to_owned()
            });
        }
        let plan = network_planner().plan(&message(&sections));
        assert!(plan.specs.is_empty(), "{field} {value}");
    }

    // Data sources are in the fingerprint: a new source restarts the network monitor; a change
    // to a node that is not a source does not.
    let before = network_planner().plan(&message(&five())).specs[0].fingerprint;
    let mut sections = five();
    sections[4].1["prometheus_url"] = json!("http://x:26660/metrics");
    assert_eq!(
        network_planner().plan(&message(&sections)).specs[0].fingerprint,
        before
    );
    sections[4].1["use_as_data_source"] = json!("true");
    assert_ne!(
        network_planner().plan(&message(&sections)).specs[0].fingerprint,
        before
    );

    // No data source: still planned (PANIC starts it), its build fails with 5017.
    let sections: Vec<(&str, Value)> = vec![("x", section("x", false, false))];
    let plan = network_planner().plan(&message(&sections));
    let err = (plan.specs[0].build)().err().unwrap();
    assert_eq!(err.code.code(), 5017);
}

#[test]
fn only_cosmos_nodes_config() {
    for key in [
        ConfigKey::chain("substrate", "polkadot", ConfigType::NodesConfig),
        ConfigKey::chain("chainlink", "eth", ConfigType::NodesConfig),
        ConfigKey::chain("cosmos", "cosmoshub", ConfigType::SystemsConfig),
        ConfigKey::general(ConfigType::SystemsConfig),
    ] {
        assert!(!nodes_planner().accepts(&key), "{key}");
        assert!(!network_planner().accepts(&key), "{key}");
    }
    let key = ConfigKey::chain("cosmos", "cosmoshub", ConfigType::NodesConfig);
    assert!(nodes_planner().accepts(&key));
    assert!(network_planner().accepts(&key));
    assert_eq!(
        nodes_planner().monitorable_types(&key),
        [MonitorableType::Nodes]
    );
    assert_eq!(
        network_planner().monitorable_types(&key),
        [MonitorableType::Chains]
    );
    // An empty message plans nothing.
    let empty = ConfigMessage::parse(KEY, b"{}").unwrap();
    assert!(nodes_planner().plan(&empty).specs.is_empty());
    assert!(network_planner().plan(&empty).specs.is_empty());
    // Both are in the registry.
    let names: Vec<&str> = registry(StrategySettings::default())
        .iter()
        .map(|p| p.name())
        .collect();
    assert!(names.contains(&"cosmos_nodes") && names.contains(&"cosmos_network"));
}

/// The network monitor reads only its sources' names and REST URLs (in order): a source's
/// Tendermint URL or archive flag changing does not restart it; its REST URL does.
#[test]
fn network_fingerprint_covers_only_what_the_network_monitor_uses() {
    let before = network_planner().plan(&message(&five())).specs[0].fingerprint;
    let mut sections = five();
    sections[1].1["tendermint_rpc_url"] = json!("http://elsewhere:26657");
    sections[1].1["is_archive_node"] = json!("true");
    assert_eq!(
        network_planner().plan(&message(&sections)).specs[0].fingerprint,
        before
    );
    sections[1].1["cosmos_rest_url"] = json!("http://elsewhere:1317");
    assert_ne!(
        network_planner().plan(&message(&sections)).specs[0].fingerprint,
        before
    );
}
