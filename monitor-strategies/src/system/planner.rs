//! The systems planner (spec §1.6): which system monitors a config message asks for.

use std::sync::Arc;

use monitor_core::config::ConfigMessage;
use monitor_core::plan::SectionPlanner;
use monitor_core::{
    ConfigKey, ConfigType, MonitorSpec, MonitorableType, PeriodGroup, Plan, Planner, Section,
};

use super::monitor::{component_name, SystemConfig, SystemMonitor};
use crate::plan_util::{build_http, monitor_spec, monitorable, plan_sections};
use crate::settings::{StrategySettings, Target};

/// Base chains whose `nodes_config` sections double as systems (spec §1.6). Chainlink systems come
/// from their own `systems_config`, so a Chainlink `nodes_config` plans no system.
pub(crate) const NODE_SYSTEM_BASE_CHAINS: [&str; 2] = ["cosmos", "substrate"];

/// System monitors from `general.systems_config`, `chains.*.*.systems_config`, and the node
/// sections of `chains.<cosmos|substrate>.*.nodes_config`.
#[derive(Debug, Clone)]
pub struct SystemsPlanner {
    settings: Arc<StrategySettings>,
}

impl SystemsPlanner {
    /// A planner whose monitors use `settings`.
    pub fn new(settings: Arc<StrategySettings>) -> Self {
        SystemsPlanner { settings }
    }
}

impl SectionPlanner for SystemsPlanner {
    /// One section: `Ok(None)` when the system is not monitored.
    fn plan_section(
        &self,
        key: &ConfigKey,
        section: &Section,
    ) -> Result<Option<MonitorSpec>, monitor_core::ConfigError> {
        let system_id = section.str("id")?;
        let parent_id = section.str("parent_id")?;
        let name = section.str("name")?;
        let exporter_url = section.str("exporter_url")?;
        let monitor_system = section.bool("monitor_system")?;
        if !monitor_system {
            return Ok(None);
        }
        let config = SystemConfig {
            system_id: system_id.to_owned(),
            parent_id: parent_id.to_owned(),
            system_name: name.to_owned(),
            exporter_url: exporter_url.to_owned(),
        };
        let component = component_name(name);
        let settings = Arc::clone(&self.settings);
        Ok(Some(monitor_spec(
            self.name(),
            section.id.clone(),
            component,
            PeriodGroup::System,
            vec![monitorable(
                key,
                MonitorableType::Systems,
                parent_id,
                &section.id,
                name,
            )],
            config,
            move |config, component| {
                let http =
                    build_http(&settings, Target::Monitored, PeriodGroup::System, component)?;
                Ok(SystemMonitor::new(config.clone(), http))
            },
        )))
    }
}

impl Planner for SystemsPlanner {
    fn name(&self) -> &'static str {
        "systems"
    }

    fn accepts(&self, key: &ConfigKey) -> bool {
        match key.config_type {
            ConfigType::SystemsConfig => true,
            ConfigType::NodesConfig => {
                !key.is_general() && NODE_SYSTEM_BASE_CHAINS.contains(&key.base_chain.as_str())
            }
            _ => false,
        }
    }

    fn monitorable_types(&self, _key: &ConfigKey) -> Vec<MonitorableType> {
        vec![MonitorableType::Systems]
    }

    fn plan(&self, message: &ConfigMessage) -> Plan {
        plan_sections(self, message)
    }

    fn section_local(&self) -> Option<&dyn SectionPlanner> {
        Some(self)
    }
}
