//! The EVM node planner (spec §1.6): each section of `chains.*.*.evm_nodes_config` with
//! `monitor_node` true → an EVM node monitor; monitorables `nodes`.

use std::sync::Arc;

use monitor_core::config::{ConfigError, ConfigMessage};
use monitor_core::plan::SectionPlanner;
use monitor_core::{
    ConfigKey, ConfigType, MonitorSpec, MonitorableType, PeriodGroup, Plan, Planner, Section,
};

use super::monitor::{node_component_name, EvmNodeConfig, EvmNodeMonitor};
use crate::plan_util::{connection_error, monitor_spec, monitorable, plan_sections};
use crate::settings::StrategySettings;

/// EVM node monitors from `chains.*.*.evm_nodes_config`.
#[derive(Debug, Clone)]
pub struct EvmNodesPlanner {
    settings: Arc<StrategySettings>,
}

impl EvmNodesPlanner {
    /// A planner whose monitors use `settings`.
    pub fn new(settings: Arc<StrategySettings>) -> Self {
        EvmNodesPlanner { settings }
    }
}

impl SectionPlanner for EvmNodesPlanner {
    fn plan_section(
        &self,
        key: &ConfigKey,
        section: &Section,
    ) -> Result<Option<MonitorSpec>, ConfigError> {
        let config = EvmNodeConfig {
            node_id: section.str("id")?.to_owned(),
            parent_id: section.str("parent_id")?.to_owned(),
            node_name: section.str("name")?.to_owned(),
            node_http_url: section.str("node_http_url")?.to_owned(),
        };
        if !section.bool("monitor_node")? {
            return Ok(None);
        }
        let component = node_component_name(&config.node_name);
        let settings = Arc::clone(&self.settings);
        Ok(Some(monitor_spec(
            self.name(),
            section.id.clone(),
            component,
            PeriodGroup::Node,
            vec![monitorable(
                key,
                MonitorableType::Nodes,
                &config.parent_id,
                &section.id,
                &config.node_name,
            )],
            config,
            move |config, component| {
                let http = settings
                    .evm_http(PeriodGroup::Node)
                    .map_err(connection_error(component))?;
                Ok(EvmNodeMonitor::new(config.clone(), http))
            },
        )))
    }
}

impl Planner for EvmNodesPlanner {
    fn name(&self) -> &'static str {
        "evm_nodes"
    }

    fn accepts(&self, key: &ConfigKey) -> bool {
        key.config_type == ConfigType::EvmNodesConfig && !key.is_general()
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
