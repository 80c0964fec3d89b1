//! The planners of the Chainlink family (spec §1.6, Node and Contract Monitors Managers):
//!
//! * [`ChainlinkNodesPlanner`]: each section of `chains.chainlink.*.nodes_config` with
//!   `monitor_node` and `monitor_prometheus` true → a Chainlink node monitor (an empty URL list
//!   still plans it; its build then fails with 5014 and is retried, as PANIC's child looped);
//! * [`ChainlinkContractsPlanner`]: one contracts monitor per `chains.chainlink.*.nodes_config`
//!   from the tuple {parent_id, weiwatchers_url, evm_nodes_urls, valid node configs}: the first
//!   three must be identical across the sections, the valid node configs are the sections with
//!   `monitor_contracts` and `monitor_prometheus` true and a non-empty Prometheus URL list
//!   (`monitor_node` is not consulted, as in PANIC). Its fingerprint is the tuple, so the monitor
//!   restarts only when the tuple changes.
//!
//! Monitorables: `nodes` for node monitors; the contracts monitor contributes `nodes`
//! (one per node config) and `chains` (source id = parent_id, name `chainlink <sub>`). Chainlink
//! systems come from `systems_config` only (see [`crate::SystemsPlanner`]).
//!
//! Difference from PANIC: a section with a missing field is reported and left out; PANIC aborted
//! the whole message.

use std::sync::Arc;

use monitor_core::config::{ConfigError, ConfigMessage};
use monitor_core::plan::Monitorable;
use monitor_core::plan::SectionPlanner;
use monitor_core::{
    ConfigKey, ConfigType, MonitorSpec, MonitorableType, PeriodGroup, Plan, Planner, Section,
};

use crate::chainlink::contracts::{
    component_name as contracts_component_name, ChainlinkContractsConfig, ChainlinkContractsMonitor,
};
use crate::chainlink::node::{ChainlinkNodeConfig, ChainlinkNodeMonitor};
use crate::evm::monitor::node_component_name;
use crate::plan_util::{build_http, connection_error, monitor_spec, monitorable, plan_sections};
use crate::settings::{StrategySettings, Target};

/// The base chain of Chainlink configs.
pub(crate) const CHAINLINK: &str = "chainlink";

fn node_monitorable(key: &ConfigKey, parent_id: &str, id: &str, name: &str) -> Monitorable {
    monitorable(key, MonitorableType::Nodes, parent_id, id, name)
}

fn is_chainlink_nodes(key: &ConfigKey) -> bool {
    key.config_type == ConfigType::NodesConfig
        && !key.is_general()
        && key.base_chain.eq_ignore_ascii_case(CHAINLINK)
}

/// The fields of a Chainlink node section the planners read.
struct NodeSection {
    config: ChainlinkNodeConfig,
    monitor_node: bool,
}

fn read_node_section(section: &Section) -> Result<NodeSection, ConfigError> {
    Ok(NodeSection {
        config: ChainlinkNodeConfig {
            node_id: section.str("id")?.to_owned(),
            parent_id: section.str("parent_id")?.to_owned(),
            node_name: section.str("name")?.to_owned(),
            node_prometheus_urls: section.list("node_prometheus_urls", true)?,
            monitor_prometheus: section.bool("monitor_prometheus")?,
        },
        monitor_node: section.bool("monitor_node")?,
    })
}

/// Chainlink node monitors from `chains.chainlink.*.nodes_config`.
#[derive(Debug, Clone)]
pub struct ChainlinkNodesPlanner {
    settings: Arc<StrategySettings>,
}

impl ChainlinkNodesPlanner {
    /// A planner whose monitors use `settings`.
    pub fn new(settings: Arc<StrategySettings>) -> Self {
        ChainlinkNodesPlanner { settings }
    }
}

impl SectionPlanner for ChainlinkNodesPlanner {
    fn plan_section(
        &self,
        key: &ConfigKey,
        section: &Section,
    ) -> Result<Option<MonitorSpec>, ConfigError> {
        let NodeSection {
            config,
            monitor_node,
        } = read_node_section(section)?;
        if !(monitor_node && config.monitor_prometheus) {
            return Ok(None);
        }
        let component = node_component_name(&config.node_name);
        let settings = Arc::clone(&self.settings);
        Ok(Some(monitor_spec(
            self.name(),
            section.id.clone(),
            component,
            PeriodGroup::Node,
            vec![node_monitorable(
                key,
                &config.parent_id,
                &section.id,
                &config.node_name,
            )],
            config,
            move |config, component| {
                let http = build_http(&settings, Target::Monitored, PeriodGroup::Node, component)?;
                let public = build_http(&settings, Target::Public, PeriodGroup::Node, component)?;
                ChainlinkNodeMonitor::new(
                    config.clone(),
                    http,
                    public,
                    &settings.chainlink.chain_list_url,
                )
            },
        )))
    }
}

impl Planner for ChainlinkNodesPlanner {
    fn name(&self) -> &'static str {
        "chainlink_nodes"
    }

    fn accepts(&self, key: &ConfigKey) -> bool {
        is_chainlink_nodes(key)
    }

    fn monitorable_types(&self, _key: &ConfigKey) -> Vec<MonitorableType> {
        vec![MonitorableType::Nodes]
    }

    fn plan(&self, message: &ConfigMessage) -> Plan {
        plan_sections(self, message)
    }

    fn section_local(&self) -> Option<&dyn SectionPlanner> {
        Some(self)
    }
}

/// One Chainlink contracts monitor per chain from `chains.chainlink.*.nodes_config`.
#[derive(Debug, Clone)]
pub struct ChainlinkContractsPlanner {
    settings: Arc<StrategySettings>,
}

/// A contract-manager section: the chain-wide fields and, if valid, the node config.
struct ContractsSection {
    parent_id: String,
    weiwatchers_url: String,
    evm_nodes_urls: Vec<String>,
    node: Option<ChainlinkNodeConfig>,
}

fn read_contracts_section(section: &Section) -> Result<ContractsSection, ConfigError> {
    let NodeSection { config, .. } = read_node_section(section)?;
    let monitor_contracts = section.bool("monitor_contracts")?;
    let weiwatchers_url = section.str("weiwatchers_url")?.to_owned();
    let evm_nodes_urls = section.list("evm_nodes_urls", false)?;
    let valid =
        monitor_contracts && config.monitor_prometheus && !config.node_prometheus_urls.is_empty();
    Ok(ContractsSection {
        parent_id: config.parent_id.clone(),
        weiwatchers_url,
        evm_nodes_urls,
        node: valid.then_some(config),
    })
}

/// The value shared by every item, `None` if they differ (or there is none).
fn identical<T: PartialEq + Clone>(mut values: impl Iterator<Item = T>) -> Option<T> {
    let first = values.next()?;
    values.all(|v| v == first).then_some(first)
}

impl ChainlinkContractsPlanner {
    /// A planner whose monitors use `settings`.
    pub fn new(settings: Arc<StrategySettings>) -> Self {
        ChainlinkContractsPlanner { settings }
    }

    /// The monitor's inputs tuple, if it should run.
    pub fn contracts_config(
        key: &ConfigKey,
        sections: &[Section],
        errors: &mut Vec<ConfigError>,
    ) -> Option<ChainlinkContractsConfig> {
        let read: Vec<ContractsSection> = sections
            .iter()
            .filter_map(|s| match read_contracts_section(s) {
                Ok(r) => Some(r),
                Err(e) => {
                    errors.push(e);
                    None
                }
            })
            .collect();
        let parent_id = identical(read.iter().map(|r| &r.parent_id))?;
        let weiwatchers_url = identical(read.iter().map(|r| &r.weiwatchers_url))?;
        let evm_nodes_urls = identical(read.iter().map(|r| &r.evm_nodes_urls))?;
        let node_configs: Vec<ChainlinkNodeConfig> =
            read.iter().filter_map(|r| r.node.clone()).collect();
        if node_configs.is_empty() {
            return None;
        }
        Some(ChainlinkContractsConfig {
            sub_chain: key.sub_chain.clone(),
            parent_id: parent_id.clone(),
            weiwatchers_url: weiwatchers_url.clone(),
            evm_nodes_urls: evm_nodes_urls.clone(),
            node_configs,
        })
    }

    fn spec(&self, key: &ConfigKey, config: ChainlinkContractsConfig) -> MonitorSpec {
        let component = contracts_component_name(&key.sub_chain);
        let mut monitorables: Vec<Monitorable> = config
            .node_configs
            .iter()
            .map(|n| node_monitorable(key, &n.parent_id, &n.node_id, &n.node_name))
            .collect();
        monitorables.push(monitorable(
            key,
            MonitorableType::Chains,
            &config.parent_id,
            &config.parent_id,
            key.chain_name(),
        ));
        let settings = Arc::clone(&self.settings);
        monitor_spec(
            self.name(),
            key.chain_name(),
            component,
            PeriodGroup::ChainlinkContracts,
            monitorables,
            config,
            move |config, component| {
                let group = PeriodGroup::ChainlinkContracts;
                let prometheus = build_http(&settings, Target::Monitored, group, component)?;
                let public = build_http(&settings, Target::Public, group, component)?;
                let evm = settings
                    .evm_http(group)
                    .map_err(connection_error(component))?;
                ChainlinkContractsMonitor::new(config.clone(), prometheus, public, evm)
            },
        )
    }
}

impl Planner for ChainlinkContractsPlanner {
    fn name(&self) -> &'static str {
        "chainlink_contracts"
    }

    fn accepts(&self, key: &ConfigKey) -> bool {
        is_chainlink_nodes(key)
    }

    fn monitorable_types(&self, _key: &ConfigKey) -> Vec<MonitorableType> {
        vec![MonitorableType::Nodes, MonitorableType::Chains]
    }

    fn plan(&self, message: &ConfigMessage) -> Plan {
        let mut plan = Plan::default();
        if !self.accepts(&message.key) {
            return plan;
        }
        if let Some(config) =
            Self::contracts_config(&message.key, &message.sections, &mut plan.errors)
        {
            plan.specs.push(self.spec(&message.key, config));
        }
        plan
    }
}
