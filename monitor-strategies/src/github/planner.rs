//! The GitHub planner (spec §1.6): each section of `general.github_repos_config` and
//! `chains.*.*.github_repos_config` with `monitor_repo` true → a GitHub monitor; monitorables
//! `github_repos`. Every monitor shares the settings' token and rate budget.

use std::sync::Arc;

use monitor_core::config::ConfigMessage;
use monitor_core::plan::SectionPlanner;
use monitor_core::{
    ConfigError, ConfigKey, ConfigType, MonitorSpec, MonitorableType, PeriodGroup, Plan, Planner,
    Section,
};

use super::monitor::{
    component_name, normalise_repo_name, releases_url, GithubMonitor, GithubRepoConfig,
};
use crate::plan_util::{build_http, monitor_spec, monitorable, plan_sections};
use crate::settings::{StrategySettings, Target};

/// GitHub monitors from `general.github_repos_config` and `chains.*.*.github_repos_config`
/// (fields `id`, `parent_id`, `repo_name`, `monitor_repo`; a missing field is a plan error, an
/// enabled section with a blank `repo_name` too).
#[derive(Debug, Clone)]
pub struct GithubPlanner {
    settings: Arc<StrategySettings>,
}

impl GithubPlanner {
    /// A planner whose monitors use `settings` (and share its GitHub budget).
    pub fn new(settings: Arc<StrategySettings>) -> Self {
        GithubPlanner { settings }
    }
}

impl SectionPlanner for GithubPlanner {
    fn plan_section(
        &self,
        key: &ConfigKey,
        section: &Section,
    ) -> Result<Option<MonitorSpec>, ConfigError> {
        let repo_id = section.str("id")?;
        let parent_id = section.str("parent_id")?;
        let repo_name = section.str("repo_name")?;
        let monitor_repo = section.bool("monitor_repo")?;
        if !monitor_repo {
            return Ok(None);
        }
        if repo_name.trim().trim_matches('/').is_empty() {
            return Err(section.bad("repo_name", "is empty"));
        }
        let normalised = normalise_repo_name(repo_name);
        let config = GithubRepoConfig {
            repo_id: repo_id.to_owned(),
            parent_id: parent_id.to_owned(),
            releases_url: releases_url(&self.settings.github.releases_template, &normalised),
            repo_name: normalised.clone(),
        };
        let component = component_name(&normalised);
        let source_name = normalised
            .strip_suffix('/')
            .unwrap_or(&normalised)
            .to_owned();
        let settings = Arc::clone(&self.settings);
        Ok(Some(monitor_spec(
            self.name(),
            section.id.clone(),
            component,
            PeriodGroup::Github,
            vec![monitorable(
                key,
                MonitorableType::GithubRepos,
                parent_id,
                &section.id,
                source_name,
            )],
            config,
            move |config, component| {
                let http = build_http(&settings, Target::Public, PeriodGroup::Github, component)?;
                Ok(GithubMonitor::new(
                    config.clone(),
                    http,
                    settings.github.token.clone(),
                    Arc::clone(&settings.github.rate_budget),
                ))
            },
        )))
    }
}

impl Planner for GithubPlanner {
    fn name(&self) -> &'static str {
        "github"
    }

    fn accepts(&self, key: &ConfigKey) -> bool {
        key.config_type == ConfigType::GithubReposConfig
    }

    fn monitorable_types(&self, _key: &ConfigKey) -> Vec<MonitorableType> {
        vec![MonitorableType::GithubRepos]
    }

    fn plan(&self, message: &ConfigMessage) -> Plan {
        plan_sections(self, message)
    }

    fn section_local(&self) -> Option<&dyn SectionPlanner> {
        Some(self)
    }
}
