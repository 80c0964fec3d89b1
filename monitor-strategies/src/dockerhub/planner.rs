//! The DockerHub planner (spec §1.6): each section of `general.dockerhub_repos_config` and
//! `chains.*.*.dockerhub_repos_config` with `monitor_repo` true → a DockerHub monitor;
//! monitorables `dockerhub_repos`.

use std::sync::Arc;

use monitor_core::config::ConfigMessage;
use monitor_core::plan::SectionPlanner;
use monitor_core::{
    ConfigError, ConfigKey, ConfigType, MonitorSpec, MonitorableType, PeriodGroup, Plan, Planner,
    Section,
};

use super::monitor::{component_name, tags_url, DockerHubMonitor, DockerHubRepoConfig};
use crate::plan_util::{build_http, monitor_spec, monitorable, plan_sections};
use crate::settings::{StrategySettings, Target};

/// What a DockerHub monitor is built from (and so fingerprinted by): the repository and the page
/// cap (the cap is a setting, fingerprinted as well since it changes what a round publishes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RepoBuild {
    repo: DockerHubRepoConfig,
    max_pages: usize,
}

/// DockerHub monitors from `general.dockerhub_repos_config` and
/// `chains.*.*.dockerhub_repos_config` (fields `id`, `parent_id`, `repo_namespace`, `repo_name`,
/// `monitor_repo`; a missing field is a plan error, an enabled section with a blank namespace or
/// name too).
#[derive(Debug, Clone)]
pub struct DockerHubPlanner {
    settings: Arc<StrategySettings>,
}

impl DockerHubPlanner {
    /// A planner whose monitors use `settings`.
    pub fn new(settings: Arc<StrategySettings>) -> Self {
        DockerHubPlanner { settings }
    }
}

impl SectionPlanner for DockerHubPlanner {
    fn plan_section(
        &self,
        key: &ConfigKey,
        section: &Section,
    ) -> Result<Option<MonitorSpec>, ConfigError> {
        let repo_id = section.str("id")?;
        let parent_id = section.str("parent_id")?;
        let repo_namespace = section.str("repo_namespace")?;
        let repo_name = section.str("repo_name")?;
        let monitor_repo = section.bool("monitor_repo")?;
        if !monitor_repo {
            return Ok(None);
        }
        section.non_empty("repo_namespace")?;
        section.non_empty("repo_name")?;
        let config = DockerHubRepoConfig {
            repo_id: repo_id.to_owned(),
            parent_id: parent_id.to_owned(),
            repo_namespace: repo_namespace.to_owned(),
            repo_name: repo_name.to_owned(),
            tags_url: tags_url(
                &self.settings.dockerhub.tags_template,
                repo_namespace,
                repo_name,
            ),
        };
        let component = component_name(repo_namespace, repo_name);
        let settings = Arc::clone(&self.settings);
        Ok(Some(monitor_spec(
            self.name(),
            section.id.clone(),
            component,
            PeriodGroup::Dockerhub,
            vec![monitorable(
                key,
                MonitorableType::DockerhubRepos,
                parent_id,
                &section.id,
                format!("{repo_namespace}/{repo_name}"),
            )],
            RepoBuild {
                repo: config,
                max_pages: self.settings.dockerhub.max_pages,
            },
            move |build, component| {
                let http =
                    build_http(&settings, Target::Public, PeriodGroup::Dockerhub, component)?;
                Ok(DockerHubMonitor::new(
                    build.repo.clone(),
                    http,
                    build.max_pages,
                ))
            },
        )))
    }
}

impl Planner for DockerHubPlanner {
    fn name(&self) -> &'static str {
        "dockerhub"
    }

    fn accepts(&self, key: &ConfigKey) -> bool {
        key.config_type == ConfigType::DockerhubReposConfig
    }

    fn monitorable_types(&self, _key: &ConfigKey) -> Vec<MonitorableType> {
        vec![MonitorableType::DockerhubRepos]
    }

    fn plan(&self, message: &ConfigMessage) -> Plan {
        plan_sections(self, message)
    }

    fn section_local(&self) -> Option<&dyn SectionPlanner> {
        Some(self)
    }
}
