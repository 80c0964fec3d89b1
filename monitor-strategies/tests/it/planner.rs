use std::sync::Arc;

use serde_json::{json, Value};

use monitor_core::config::ConfigMessage;
use monitor_core::{
    ConfigError, ConfigKey, ConfigType, MonitorableType, PeriodGroup, Plan, Planner,
};
use monitor_strategies::testing::{Reply, TestServer};
use monitor_strategies::{registry, StrategySettings, SystemsPlanner};

fn planner() -> SystemsPlanner {
    SystemsPlanner::new(Arc::new(StrategySettings::default()))
}

fn system(id: &str, parent: &str, name: &str, url: &str, monitor: &str) -> Value {
    json!({"id": id, "parent_id": parent, "name": name, "exporter_url": url, "monitor_system": monitor})
}

fn plan(routing_key: &str, body: &Value) -> Plan {
    let message = ConfigMessage::parse(routing_key, body.to_string().as_bytes()).unwrap();
    crate::common::plan_checked(&planner(), &message)
}

#[test]
fn general_systems_config() {
    let body = json!({
        "DEFAULT": {},
        "system_1": system("system_1", "GENERAL", "validator_host", "http://10.0.0.5:9100/metrics", "true"),
        "system_2": system("system_2", "GENERAL", "sentry", "http://10.0.0.6:9100/metrics", "True"),
    });
    let plan = plan("general.systems_config", &body);
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    assert_eq!(plan.specs.len(), 2);
    let spec = &plan.specs[0];
    assert_eq!(spec.id, "system_1");
    assert_eq!(spec.component_name, "System monitor (validator_host)");
    assert_eq!(spec.group, PeriodGroup::System);
    assert_eq!(spec.monitorables.len(), 1);
    let m = &spec.monitorables[0];
    assert_eq!(m.base_chain, "general");
    assert_eq!(m.monitorable_type, MonitorableType::Systems);
    assert_eq!(m.source.chain_id, "GENERAL");
    assert_eq!(m.source.chain_name, "general");
    assert_eq!(m.source.source_id, "system_1");
    assert_eq!(m.source.source_name, "validator_host");
    assert_eq!(plan.specs[1].component_name, "System monitor (sentry)");
}

#[test]
fn chain_systems_config() {
    let body =
        json!({"s": system("s", "chain_cosmoshub", "host", "https://1.2.3.4:9100/metrics", "yes")});
    let plan = plan("chains.cosmos.cosmoshub.systems_config", &body);
    assert_eq!(plan.specs.len(), 1);
    let m = &plan.specs[0].monitorables[0];
    assert_eq!(m.base_chain, "cosmos");
    assert_eq!(m.source.chain_name, "cosmoshub");
    assert_eq!(m.source.chain_id, "chain_cosmoshub");
    // Chainlink chains have systems_config too.
    let plan = self::plan("chains.chainlink.ethereum.systems_config", &body);
    assert_eq!(plan.specs.len(), 1);
    assert_eq!(plan.specs[0].monitorables[0].base_chain, "chainlink");
}

/// A v1 `nodes_config` section: the union of every node field.
fn node(id: &str, name: &str, url: &str, monitor_system: &str) -> Value {
    json!({
        "id": id, "parent_id": "chain_1", "name": name, "node_ws_url": "", "exporter_url": url,
        "monitor_system": monitor_system, "monitor_node": "true", "is_validator": "true",
        "is_archive_node": "false", "use_as_data_source": "true", "stash_address": "",
        "governance_addresses": "", "monitor_network": "false", "cosmos_rest_url": "",
        "monitor_cosmos_rest": "false", "tendermint_rpc_url": "", "monitor_tendermint_rpc": "false",
        "operator_address": "", "monitor_prometheus": "false", "prometheus_url": "",
        "node_prometheus_urls": "", "evm_nodes_urls": "", "weiwatchers_url": "", "monitor_contracts": "false"
    })
}

#[test]
fn cosmos_and_substrate_nodes_double_as_systems() {
    let body = json!({
        "node_a": node("node_a", "validator", "http://10.0.0.1:9100/metrics", "true"),
        "node_b": node("node_b", "sentry", "http://10.0.0.2:9100/metrics", "false"),
    });
    for base in ["cosmos", "substrate"] {
        let key = format!("chains.{base}.mychain.nodes_config");
        let plan = plan(&key, &body);
        assert!(plan.errors.is_empty());
        assert_eq!(plan.specs.len(), 1, "{base}");
        let spec = &plan.specs[0];
        assert_eq!(spec.id, "node_a");
        assert_eq!(spec.component_name, "System monitor (validator)");
        assert_eq!(spec.monitorables[0].base_chain, base);
        assert_eq!(spec.monitorables[0].source.chain_name, "mychain");
        assert_eq!(
            spec.monitorables[0].monitorable_type,
            MonitorableType::Systems
        );
    }
}

#[test]
fn chainlink_nodes_config_is_ignored() {
    let p = planner();
    let key = ConfigKey::chain("chainlink", "ethereum", ConfigType::NodesConfig);
    assert!(!p.accepts(&key));
    let body = json!({"node_a": node("node_a", "cl", "http://10.0.0.1:9100/metrics", "true")});
    let plan = plan("chains.chainlink.ethereum.nodes_config", &body);
    assert!(plan.specs.is_empty());
    assert!(plan.errors.is_empty());
}

#[test]
fn accepted_keys_and_monitorable_types() {
    let p = planner();
    assert_eq!(p.name(), "systems");
    assert!(p.accepts(&ConfigKey::general(ConfigType::SystemsConfig)));
    assert!(p.accepts(&ConfigKey::chain(
        "substrate",
        "polkadot",
        ConfigType::SystemsConfig
    )));
    assert!(!p.accepts(&ConfigKey::general(ConfigType::NodesConfig)));
    assert!(!p.accepts(&ConfigKey::general(ConfigType::GithubReposConfig)));
    assert!(!p.accepts(&ConfigKey::chain(
        "chainlink",
        "eth",
        ConfigType::EvmNodesConfig
    )));
    assert_eq!(
        p.monitorable_types(&ConfigKey::general(ConfigType::SystemsConfig)),
        [MonitorableType::Systems]
    );
    let planners = registry(StrategySettings::default());
    assert!(planners.iter().any(|p| p.name() == "systems"));
}

#[test]
fn disabled_section_plans_nothing_and_empty_message_plans_nothing() {
    let body = json!({"s": system("s", "GENERAL", "h", "http://h:9100/metrics", "false")});
    assert!(plan("general.systems_config", &body).specs.is_empty());
    let plan = plan("general.systems_config", &json!({}));
    assert!(plan.specs.is_empty() && plan.errors.is_empty());
}

#[test]
fn missing_field_is_an_error_while_other_sections_plan() {
    for field in ["id", "parent_id", "name", "exporter_url", "monitor_system"] {
        let mut broken = system("bad", "GENERAL", "h", "http://h:9100/metrics", "true");
        broken.as_object_mut().unwrap().remove(field);
        let body = json!({
            "good_1": system("good_1", "GENERAL", "a", "http://a:9100/metrics", "true"),
            "bad": broken,
            "good_2": system("good_2", "GENERAL", "b", "http://b:9100/metrics", "true"),
        });
        let plan = plan("general.systems_config", &body);
        let ids: Vec<&str> = plan.specs.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["good_1", "good_2"], "{field}");
        assert_eq!(plan.errors.len(), 1);
        assert_eq!(
            plan.errors[0],
            ConfigError::MissingField {
                routing_key: "general.systems_config".to_owned(),
                section: "bad".to_owned(),
                field: field.to_owned(),
            }
        );
    }
}

#[test]
fn fingerprint_changes_iff_a_used_field_changes() {
    let base = node("n", "validator", "http://10.0.0.1:9100/metrics", "true");
    let print = |v: &Value| {
        let plan = plan("chains.cosmos.hub.nodes_config", &json!({ "n": v }));
        plan.specs[0].fingerprint
    };
    let original = print(&base);
    assert_eq!(print(&base.clone()), original, "stable");
    for (field, value) in [
        ("id", "n2"),
        ("parent_id", "chain_2"),
        ("name", "other"),
        ("exporter_url", "http://10.0.0.9:9100/metrics"),
    ] {
        let mut changed = base.clone();
        changed[field] = json!(value);
        assert_ne!(print(&changed), original, "{field}");
    }
    // Fields the system monitor does not use: no restart.
    for (field, value) in [
        ("monitor_system", "yes"),
        ("is_validator", "false"),
        ("cosmos_rest_url", "http://x:1317"),
        ("monitor_node", "false"),
    ] {
        let mut changed = base.clone();
        changed[field] = json!(value);
        assert_eq!(print(&changed), original, "{field}");
    }
}

#[tokio::test]
async fn built_monitor_runs_a_round() {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok(crate::node_exporter_fixture()));
    let body =
        json!({"s": system("s", "GENERAL", "validator_host", &server.url("/metrics"), "true")});
    let plan = plan("general.systems_config", &body);
    let mut monitor = (plan.specs[0].build)().unwrap();
    assert_eq!(monitor.name(), "System monitor (validator_host)");
    let publications = monitor.round().await.unwrap();
    let meta = &publications[0].body["result"]["meta_data"];
    assert_eq!(meta["system_id"], "s");
    assert_eq!(meta["system_parent_id"], "GENERAL");
    assert_eq!(server.hits("/metrics"), 1);
}

/// The planners whose plan is per section (their messages may be re-planned section by section:
/// `Planner::section_local`); the node planners that read every node of a chain are not.
#[test]
fn section_local_planners_of_the_registry() {
    let planners = registry(StrategySettings::default());
    let local: Vec<&str> = planners
        .iter()
        .filter(|p| p.section_local().is_some())
        .map(|p| p.name())
        .collect();
    assert_eq!(
        local,
        [
            "systems",
            "github",
            "dockerhub",
            "chainlink_nodes",
            "evm_nodes"
        ]
    );
}
