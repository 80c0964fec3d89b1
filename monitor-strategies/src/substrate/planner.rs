//! The planners of `chains.substrate.*.nodes_config` (spec §1.6): one [`SubstrateNodeMonitor`]
//! per node with `monitor_node` ([`SubstrateNodesPlanner`], monitorables `substrate.nodes`) and one
//! [`SubstrateNetworkMonitor`] per chain with `monitor_network` ([`SubstrateNetworkPlanner`],
//! monitorables `substrate.chains`). The node's system monitor comes from
//! [`crate::SystemsPlanner`].
//!
//! What a monitor reads of its data sources (name, websocket URL, archive flag) is part of the
//! typed config it is built from, and so of its fingerprint: it restarts only when that changes
//! (toggling `use_as_data_source` on node A restarts the monitors whose source list changed).

use std::sync::Arc;

use monitor_core::config::ConfigMessage;
use monitor_core::{
    ConfigError, ConfigKey, ConfigType, MonitorableType, PeriodGroup, Plan, Planner, Section,
};

use super::network::{self, SubstrateNetworkMonitor};
use super::node::{self, SubstrateNodeMonitor};
use super::{SubstrateDataSource, SubstrateNodeConfig};
use crate::plan_util::{data_sources, monitor_spec, monitorable, parse_sections, DataSourceRole};
use crate::settings::StrategySettings;

/// The base chain these planners handle.
pub(crate) const SUBSTRATE: &str = "substrate";

impl DataSourceRole for SubstrateNodeConfig {
    fn use_as_data_source(&self) -> bool {
        self.use_as_data_source
    }
    fn is_validator(&self) -> bool {
        self.is_validator
    }
}

/// Reads a section's Substrate node fields (spec §3.3 "substrate").
pub(crate) fn node_config(section: &Section) -> Result<SubstrateNodeConfig, ConfigError> {
    Ok(SubstrateNodeConfig {
        node_id: section.str("id")?.to_owned(),
        parent_id: section.str("parent_id")?.to_owned(),
        node_name: section.str("name")?.to_owned(),
        node_ws_url: section.str("node_ws_url")?.trim().to_owned(),
        monitor_node: section.bool("monitor_node")?,
        is_validator: section.bool("is_validator")?,
        is_archive_node: section.bool("is_archive_node")?,
        use_as_data_source: section.bool("use_as_data_source")?,
        stash_address: section.str("stash_address")?.trim().to_owned(),
    })
}

/// The valid Substrate node sections of a message (section id, config), in message order, and
/// the errors of the others.
pub fn parse_substrate_nodes(
    message: &ConfigMessage,
) -> (Vec<(String, SubstrateNodeConfig)>, Vec<ConfigError>) {
    parse_sections(message, node_config)
}

/// PANIC's data sources of node `own_id`: every other section with `use_as_data_source`,
/// non-validators first then validators (each in message order), then the node itself.
pub fn substrate_node_data_sources(
    nodes: &[(String, SubstrateNodeConfig)],
    own_id: &str,
    own: &SubstrateNodeConfig,
) -> Vec<SubstrateDataSource> {
    data_sources(nodes, Some((own_id, own)))
        .into_iter()
        .map(SubstrateDataSource::from)
        .collect()
}

/// PANIC's network data sources: sections with `use_as_data_source`, non-validators first then
/// validators (no "self").
pub fn substrate_network_data_sources(
    nodes: &[(String, SubstrateNodeConfig)],
) -> Vec<SubstrateDataSource> {
    data_sources(nodes, None)
        .into_iter()
        .map(SubstrateDataSource::from)
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct NodeBuild {
    node: SubstrateNodeConfig,
    data_sources: Vec<SubstrateDataSource>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct NetworkBuild {
    parent_id: String,
    sub_chain: String,
    governance_addresses: Vec<String>,
    data_sources: Vec<SubstrateDataSource>,
}

fn accepts_key(key: &ConfigKey) -> bool {
    key.config_type == ConfigType::NodesConfig && !key.is_general() && key.base_chain == SUBSTRATE
}

/// Substrate node monitors from `chains.substrate.*.nodes_config`: a node is monitored iff
/// `monitor_node`.
#[derive(Debug, Clone)]
pub struct SubstrateNodesPlanner {
    settings: Arc<StrategySettings>,
}

impl SubstrateNodesPlanner {
    /// A planner whose monitors use `settings` (and its shared websocket pool).
    pub fn new(settings: Arc<StrategySettings>) -> Self {
        SubstrateNodesPlanner { settings }
    }
}

impl Planner for SubstrateNodesPlanner {
    fn name(&self) -> &'static str {
        "substrate_nodes"
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
        let (nodes, errors) = parse_substrate_nodes(message);
        plan.errors = errors;
        for (id, config) in &nodes {
            if !config.monitor_node {
                continue;
            }
            let build = NodeBuild {
                node: config.clone(),
                data_sources: substrate_node_data_sources(&nodes, id, config),
            };
            let settings = Arc::clone(&self.settings);
            plan.specs.push(monitor_spec(
                self.name(),
                id.clone(),
                node::component_name(&config.node_name),
                PeriodGroup::Node,
                vec![monitorable(
                    &message.key,
                    MonitorableType::Nodes,
                    &config.parent_id,
                    id,
                    config.node_name.clone(),
                )],
                build,
                move |build, _component| {
                    SubstrateNodeMonitor::new(
                        build.node.clone(),
                        build.data_sources.clone(),
                        &settings.substrate.pool,
                        settings.request_timeout_for(PeriodGroup::Node),
                    )
                },
            ));
        }
        plan
    }
}

/// The Substrate network monitor of a chain from `chains.substrate.*.nodes_config`: started iff
/// every valid section has the same `parent_id`, `monitor_network` and `governance_addresses`,
/// and `monitor_network` is true.
#[derive(Debug, Clone)]
pub struct SubstrateNetworkPlanner {
    settings: Arc<StrategySettings>,
}

impl SubstrateNetworkPlanner {
    /// A planner whose monitors use `settings` (and its shared websocket pool).
    pub fn new(settings: Arc<StrategySettings>) -> Self {
        SubstrateNetworkPlanner { settings }
    }
}

impl Planner for SubstrateNetworkPlanner {
    fn name(&self) -> &'static str {
        "substrate_network"
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
        let mut chain_fields = Vec::new();
        for section in &message.sections {
            let parsed = node_config(section).and_then(|c| {
                Ok((
                    c,
                    section.bool("monitor_network")?,
                    section.list("governance_addresses", true)?,
                ))
            });
            match parsed {
                Ok((config, network, governance)) => {
                    chain_fields.push((config.parent_id.clone(), network, governance));
                    nodes.push((section.id.clone(), config));
                }
                Err(e) => plan.errors.push(e),
            }
        }
        let Some((parent_id, monitor_network, governance)) = chain_fields.first().cloned() else {
            return plan;
        };
        if chain_fields
            .iter()
            .any(|f| f != &(parent_id.clone(), monitor_network, governance.clone()))
        {
            tracing::warn!(
                key = %message.key.routing_key(),
                "substrate network monitor not started: parent_id, monitor_network or \
                 governance_addresses differ between sections"
            );
            return plan;
        }
        if !monitor_network {
            return plan;
        }
        let sub_chain = message.key.sub_chain.clone();
        let chain = message.key.chain_name();
        let monitorables = vec![monitorable(
            &message.key,
            MonitorableType::Chains,
            &parent_id,
            &parent_id,
            chain.clone(),
        )];
        let build = NetworkBuild {
            parent_id,
            sub_chain: sub_chain.clone(),
            governance_addresses: governance,
            data_sources: substrate_network_data_sources(&nodes),
        };
        let settings = Arc::clone(&self.settings);
        plan.specs.push(monitor_spec(
            self.name(),
            chain,
            network::component_name(&sub_chain),
            PeriodGroup::Network,
            monitorables,
            build,
            move |build, _component| {
                SubstrateNetworkMonitor::new(
                    &build.parent_id,
                    &build.sub_chain,
                    build.governance_addresses.clone(),
                    build.data_sources.clone(),
                    &settings.substrate.pool,
                    settings.request_timeout_for(PeriodGroup::Network),
                )
            },
        ));
        plan
    }
}
