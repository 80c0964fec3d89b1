//! The planners of `chains.cosmos.*.nodes_config` (spec §1.6): one [`CosmosNodeMonitor`] per
//! monitored node ([`CosmosNodesPlanner`]) and one [`CosmosNetworkMonitor`] per chain
//! ([`CosmosNetworkPlanner`]). The node's system monitor comes from
//! [`crate::SystemsPlanner`].
//!
//! Data sources are computed from every valid section of the message; what a monitor reads of
//! them is part of the typed config it is built from (`NodeBuild`, `NetworkBuild`), and so of its
//! fingerprint: toggling `use_as_data_source` on node A restarts the monitors whose data-source
//! list changed, and only those.

use std::sync::Arc;

use monitor_core::config::ConfigMessage;
use monitor_core::{
    ConfigError, ConfigKey, ConfigType, MonitorableType, PeriodGroup, Plan, Planner, Section,
};

use super::network::{self, CosmosNetworkMonitor};
use super::node::{self, CosmosNodeMonitor};
use super::{CosmosDataSource, CosmosNodeConfig, CosmosRestSource};
use crate::plan_util::{
    build_http, data_sources, monitor_spec, monitorable, parse_sections, DataSourceRole,
};
use crate::settings::{StrategySettings, Target};

/// The base chain these planners handle.
pub(crate) const COSMOS: &str = "cosmos";

impl DataSourceRole for CosmosNodeConfig {
    fn use_as_data_source(&self) -> bool {
        self.use_as_data_source
    }
    fn is_validator(&self) -> bool {
        self.is_validator
    }
}

/// Reads a section's Cosmos node fields (all required, spec §3.3 "Node MM cosmos").
pub(crate) fn node_config(section: &Section) -> Result<CosmosNodeConfig, ConfigError> {
    Ok(CosmosNodeConfig {
        node_id: section.str("id")?.to_owned(),
        parent_id: section.str("parent_id")?.to_owned(),
        node_name: section.str("name")?.to_owned(),
        monitor_node: section.bool("monitor_node")?,
        monitor_prometheus: section.bool("monitor_prometheus")?,
        prometheus_url: section.str("prometheus_url")?.to_owned(),
        monitor_cosmos_rest: section.bool("monitor_cosmos_rest")?,
        cosmos_rest_url: section.str("cosmos_rest_url")?.to_owned(),
        monitor_tendermint_rpc: section.bool("monitor_tendermint_rpc")?,
        tendermint_rpc_url: section.str("tendermint_rpc_url")?.to_owned(),
        is_validator: section.bool("is_validator")?,
        use_as_data_source: section.bool("use_as_data_source")?,
        is_archive_node: section.bool("is_archive_node")?,
        operator_address: section.str("operator_address")?.to_owned(),
    })
}

/// The valid node sections of a message (section id, config), in message order, and the errors
/// of the others.
pub fn parse_nodes(message: &ConfigMessage) -> (Vec<(String, CosmosNodeConfig)>, Vec<ConfigError>) {
    parse_sections(message, node_config)
}

/// PANIC's data sources for the node of section `own_id`: every other section with
/// `use_as_data_source`, non-validators first then validators (each in message order), then the
/// node itself.
pub fn node_data_sources(
    nodes: &[(String, CosmosNodeConfig)],
    own_id: &str,
    own: &CosmosNodeConfig,
) -> Vec<CosmosNodeConfig> {
    data_sources(nodes, Some((own_id, own)))
        .into_iter()
        .cloned()
        .collect()
}

/// PANIC's network data sources: sections with `use_as_data_source`, non-validators first then
/// validators (no "self").
pub fn network_data_sources(nodes: &[(String, CosmosNodeConfig)]) -> Vec<CosmosNodeConfig> {
    data_sources(nodes, None).into_iter().cloned().collect()
}

/// What a Cosmos node monitor is built from (and so fingerprinted by): the node's whole config
/// and what it reads of each data source, in preference order (the node itself last).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct NodeBuild {
    node: CosmosNodeConfig,
    data_sources: Vec<CosmosDataSource>,
}

/// What the Cosmos network monitor is built from (and so fingerprinted by): the chain and what
/// it reads of each data source (name and REST URL), in order; the order of the list carries the
/// validator grouping.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct NetworkBuild {
    parent_id: String,
    sub_chain: String,
    data_sources: Vec<CosmosRestSource>,
}

fn accepts_key(key: &ConfigKey) -> bool {
    key.config_type == ConfigType::NodesConfig && !key.is_general() && key.base_chain == COSMOS
}

/// Cosmos node monitors from `chains.cosmos.*.nodes_config`: a node is monitored iff
/// `monitor_node` and at least one of `monitor_prometheus`, `monitor_cosmos_rest`,
/// `monitor_tendermint_rpc`.
#[derive(Debug, Clone)]
pub struct CosmosNodesPlanner {
    settings: Arc<StrategySettings>,
}

impl CosmosNodesPlanner {
    /// A planner whose monitors use `settings`.
    pub fn new(settings: Arc<StrategySettings>) -> Self {
        CosmosNodesPlanner { settings }
    }
}

impl Planner for CosmosNodesPlanner {
    fn name(&self) -> &'static str {
        "cosmos_nodes"
    }

    fn accepts(&self, key: &ConfigKey) -> bool {
        accepts_key(key)
    }

    fn monitorable_types(&self, _key: &ConfigKey) -> Vec<MonitorableType> {
        vec![MonitorableType::Nodes]
    }

    fn plan(&self, message: &ConfigMessage) -> Plan {
        let mut plan = Plan::default();
        if !self.accepts(&message.key) {
            return plan;
        }
        let (nodes, errors) = parse_nodes(message);
        plan.errors = errors;
        for (id, config) in &nodes {
            let any_source = config.monitor_prometheus
                || config.monitor_cosmos_rest
                || config.monitor_tendermint_rpc;
            if !config.monitor_node || !any_source {
                continue;
            }
            let build = NodeBuild {
                node: config.clone(),
                data_sources: node_data_sources(&nodes, id, config)
                    .iter()
                    .map(CosmosDataSource::from)
                    .collect(),
            };
            let component = node::component_name(&config.node_name);
            let settings = Arc::clone(&self.settings);
            plan.specs.push(monitor_spec(
                self.name(),
                id.clone(),
                component,
                PeriodGroup::Node,
                vec![monitorable(
                    &message.key,
                    MonitorableType::Nodes,
                    &config.parent_id,
                    id,
                    config.node_name.clone(),
                )],
                build,
                move |build, component| {
                    let http =
                        build_http(&settings, Target::Monitored, PeriodGroup::Node, component)?;
                    CosmosNodeMonitor::new(build.node.clone(), build.data_sources.clone(), http)
                },
            ));
        }
        plan
    }
}

/// The Cosmos network monitor of a chain from `chains.cosmos.*.nodes_config`: started iff every
/// valid section has the same `parent_id` and the same `monitor_network`, and it is true.
#[derive(Debug, Clone)]
pub struct CosmosNetworkPlanner {
    settings: Arc<StrategySettings>,
}

impl CosmosNetworkPlanner {
    /// A planner whose monitors use `settings`.
    pub fn new(settings: Arc<StrategySettings>) -> Self {
        CosmosNetworkPlanner { settings }
    }
}

impl Planner for CosmosNetworkPlanner {
    fn name(&self) -> &'static str {
        "cosmos_network"
    }

    fn accepts(&self, key: &ConfigKey) -> bool {
        accepts_key(key)
    }

    fn monitorable_types(&self, _key: &ConfigKey) -> Vec<MonitorableType> {
        vec![MonitorableType::Chains]
    }

    fn plan(&self, message: &ConfigMessage) -> Plan {
        let mut plan = Plan::default();
        if !self.accepts(&message.key) {
            return plan;
        }
        let mut nodes = Vec::new();
        let mut monitor_network = Vec::new();
        for section in &message.sections {
            match node_config(section).and_then(|c| Ok((c, section.bool("monitor_network")?))) {
                Ok((config, network)) => {
                    monitor_network.push(network);
                    nodes.push((section.id.clone(), config));
                }
                Err(e) => plan.errors.push(e),
            }
        }
        let Some((_, first)) = nodes.first() else {
            return plan;
        };
        let parent_id = first.parent_id.clone();
        let same_parent = nodes.iter().all(|(_, n)| n.parent_id == parent_id);
        let same_network = monitor_network.iter().all(|m| *m == monitor_network[0]);
        if !same_parent || !same_network {
            tracing::warn!(
                key = %message.key.routing_key(),
                same_parent, same_network,
                "cosmos network monitor not started: parent_id or monitor_network differ between sections"
            );
            return plan;
        }
        if !monitor_network[0] {
            return plan;
        }
        let sub_chain = message.key.sub_chain.clone();
        let chain = message.key.chain_name();
        let component = network::component_name(&sub_chain);
        let monitorables = vec![monitorable(
            &message.key,
            MonitorableType::Chains,
            &parent_id,
            &parent_id,
            chain.clone(),
        )];
        let build = NetworkBuild {
            parent_id,
            sub_chain,
            data_sources: network_data_sources(&nodes)
                .iter()
                .map(CosmosRestSource::from)
                .collect(),
        };
        let settings = Arc::clone(&self.settings);
        plan.specs.push(monitor_spec(
            self.name(),
            chain,
            component,
            PeriodGroup::Network,
            monitorables,
            build,
            move |build, component| {
                let http = build_http(
                    &settings,
                    Target::Monitored,
                    PeriodGroup::Network,
                    component,
                )?;
                CosmosNetworkMonitor::new(
                    &build.parent_id,
                    &build.sub_chain,
                    build.data_sources.clone(),
                    http,
                )
            },
        ));
        plan
    }
}
