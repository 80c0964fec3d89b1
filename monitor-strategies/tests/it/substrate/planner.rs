//! The Substrate planners: which sections plan monitors, PANIC's data-source order, restarts
//! only when what a monitor uses changes, `substrate.nodes` / `substrate.chains` monitorables,
//! and a planned monitor running a round against a replayed node.

use std::sync::Arc;

use serde_json::{json, Value};

use monitor_core::config::ConfigMessage;
use monitor_core::{ConfigKey, ConfigType, MonitorableType, Plan, Planner};
use monitor_strategies::{
    registry, StrategySettings, SubstrateNetworkPlanner, SubstrateNodesPlanner,
};

use super::Replay;

const KEY: &str = "chains.substrate.polkadot.nodes_config";

#[allow(clippy::too_many_arguments)]
fn node(id: &str, url: &str, monitor: bool, validator: bool, source: bool, archive: bool) -> Value {
    json!({
        "id": id, "parent_id": "chain_polkadot", "name": format!("name_{id}"),
        "node_ws_url": url, "exporter_url": "", "monitor_system": "false",
        "monitor_node": monitor.to_string(), "is_validator": validator.to_string(),
        "is_archive_node": archive.to_string(), "use_as_data_source": source.to_string(),
        "stash_address": "5C5sJnAedLpnBCnvjAV3Fg31FpvUvEvvWzcsooYwBW8dNsTt",
        "governance_addresses": "5D4UtXUDHE4ces21ubbMmwsRgf4YWSzD44NnRTg58mkSvg43",
        "monitor_network": "true",
        "cosmos_rest_url": "", "monitor_cosmos_rest": "false",
    })
}

fn plan(p: &dyn Planner, body: &Value) -> Plan {
    p.plan(&ConfigMessage::parse(KEY, body.to_string().as_bytes()).unwrap())
}

fn planners() -> (SubstrateNodesPlanner, SubstrateNetworkPlanner) {
    let s = Arc::new(StrategySettings::default());
    (
        SubstrateNodesPlanner::new(Arc::clone(&s)),
        SubstrateNetworkPlanner::new(s),
    )
}

#[test]
fn substrate_planners_accept_substrate_nodes_configs() {
    let (n, w) = planners();
    let key = ConfigKey::chain("substrate", "polkadot", ConfigType::NodesConfig);
    assert!(n.accepts(&key) && w.accepts(&key));
    assert!(!n.accepts(&ConfigKey::chain("cosmos", "hub", ConfigType::NodesConfig)));
    assert!(!n.accepts(&ConfigKey::general(ConfigType::NodesConfig)));
    assert_eq!(n.monitorable_types(&key), [MonitorableType::Nodes]);
    assert_eq!(w.monitorable_types(&key), [MonitorableType::Chains]);
    let names: Vec<&str> = registry(StrategySettings::default())
        .iter()
        .map(|p| p.name())
        .collect();
    assert!(names.contains(&"substrate_nodes") && names.contains(&"substrate_network"));
}

#[test]
fn substrate_nodes_plan_per_monitored_node_and_restart_on_used_changes() {
    let (n, w) = planners();
    let body = json!({
        "a": node("a", "ws://a:9944", true, true, true, false),
        "b": node("b", "ws://b:9944", false, false, true, true),
        "c": node("c", "ws://c:9944", true, false, false, false),
    });
    let p = plan(&n, &body);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    let ids: Vec<&str> = p.specs.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(p.specs[0].component_name, "Node monitor (name_a)");
    let m = &p.specs[0].monitorables[0];
    assert_eq!(m.base_chain, "substrate");
    assert_eq!(m.monitorable_type, MonitorableType::Nodes);
    assert_eq!(m.source.chain_name, "polkadot");

    // b's exporter URL is not used by the node monitors: no restart.
    let mut changed = body.clone();
    changed["b"]["exporter_url"] = json!("http://b:9100/metrics");
    let q = plan(&n, &changed);
    assert_eq!(p.specs[0].fingerprint, q.specs[0].fingerprint);
    // b stops being a data source: a's and c's sources change.
    changed["b"]["use_as_data_source"] = json!("false");
    let q = plan(&n, &changed);
    assert_ne!(p.specs[0].fingerprint, q.specs[0].fingerprint);
    assert_ne!(p.specs[1].fingerprint, q.specs[1].fingerprint);

    // Network: one per chain, restarted when the governance addresses change.
    let net = plan(&w, &body);
    assert_eq!(net.specs.len(), 1);
    assert_eq!(
        net.specs[0].component_name,
        "Substrate Network Monitor (polkadot)"
    );
    assert_eq!(
        net.specs[0].monitorables[0].monitorable_type,
        MonitorableType::Chains
    );
    assert_eq!(
        net.specs[0].monitorables[0].source.source_id,
        "chain_polkadot"
    );
    let mut gov = body.clone();
    for id in ["a", "b", "c"] {
        gov[id]["governance_addresses"] = json!("");
    }
    assert_ne!(
        plan(&w, &gov).specs[0].fingerprint,
        net.specs[0].fingerprint
    );
    // Sections that disagree on monitor_network: nothing planned, as PANIC.
    let mut split = body.clone();
    split["c"]["monitor_network"] = json!("false");
    assert!(plan(&w, &split).specs.is_empty());
    // A missing field is an error for that section only.
    let mut bad = body.clone();
    bad["c"].as_object_mut().unwrap().remove("node_ws_url");
    let p = plan(&n, &bad);
    assert_eq!(p.specs.len(), 1);
    assert_eq!(p.errors.len(), 1);
}

#[tokio::test]
async fn substrate_planned_monitors_run_a_round() {
    let replay = Replay::start("substrate-dev", "validator").await;
    let (n, w) = planners();
    let body = json!({"v": node("v", &replay.url(), true, true, true, true)});
    let spec = plan(&n, &body).specs.remove(0);
    let mut monitor = (spec.build)().unwrap();
    let p = monitor.round().await.unwrap();
    let data = &p[0].body["websocket"]["result"]["data"];
    assert_eq!(data["current_era"], 10, "{}", p[0].body);
    let spec = plan(&w, &body).specs.remove(0);
    let mut monitor = (spec.build)().unwrap();
    let p = monitor.round().await.unwrap();
    assert_eq!(
        p[0].body["websocket"]["result"]["data"]["referendum_count"],
        2
    );
}

/// `examples/config/chains/substrate/polkadot/nodes_config.ini` read as PANIC's config manager
/// sends it (sections of `key = value` strings).
#[test]
fn substrate_example_config_plans_a_node_and_a_network_monitor() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/config/chains/substrate/polkadot/nodes_config.ini"
    ))
    .unwrap();
    let mut body = serde_json::Map::new();
    let mut current = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            body.insert(name.to_owned(), json!({}));
            current = Some(name.to_owned());
        } else if let (Some(c), Some((k, v))) = (&current, line.split_once('=')) {
            body[c.as_str()][k.trim()] = json!(v.trim());
        }
    }
    let (n, w) = planners();
    let nodes = plan(&n, &Value::Object(body.clone()));
    assert!(nodes.errors.is_empty(), "{:?}", nodes.errors);
    assert_eq!(nodes.specs.len(), 1);
    assert_eq!(
        nodes.specs[0].component_name,
        "Node monitor (polkadot_validator)"
    );
    let network = plan(&w, &Value::Object(body));
    assert_eq!(network.specs.len(), 1);
}
