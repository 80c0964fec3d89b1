//! The GitHub monitor (spec §4.2, PANIC's `monitors/github.py`) and its planner (spec §1.6): the
//! first page of a repository's releases per round.
//!
//! Outcomes of a round:
//! * success → `result` envelope on `github`, `data` index-keyed
//!   `{"0": {"release_name", "tag_name"}, …}` in API order (newest first; a release without a name
//!   keeps `null`, as the API gives it);
//! * GitHub unreachable or too slow → 5006 (releases URL); body unreadable → 5005 (source = the
//!   releases URL); a decoded JSON object with a `message` key (404 Not Found, 403 rate limit, …)
//!   → 5007 with GitHub's message; a body that is not JSON → 5012 with the decoder's message; an
//!   unusable releases URL (bad template) → 5009: `error` envelopes on `github`;
//! * JSON that is neither a list of releases nor an object with `message` → [`RoundError`]
//!   (nothing published, as PANIC's processing error);
//! * the shared GitHub budget ([`crate::rate_limit::RateBudget`]) is spent → **no request and
//!   nothing published** (`Ok(vec![])`). The manager then publishes only the worker heartbeat: the
//!   monitor is alive and deliberately waiting, so the health checker must not report it dead, and
//!   downstream sees no new data, as if the period were longer. The wait is logged at INFO once
//!   per monitor and window (and at DEBUG on the rounds skipped after that).
//!
//! Requests carry the client's `User-Agent` (GitHub refuses requests without one),
//! `Accept: application/vnd.github+json` and, when a token is configured
//! ([`crate::StrategySettings::github_token`]), `Authorization: Bearer <token>`. The token is
//! never logged: [`GithubToken`]'s `Debug` is redacted and the HTTP layer logs no headers.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tracing::{debug, info, warn};

use monitor_core::config::ConfigMessage;
use monitor_core::envelope::{envelope, MetaData};
use monitor_core::plan::fingerprint;
use monitor_core::{
    ConfigError, ConfigKey, ConfigType, Monitor, MonitorSpec, MonitorableType, PanicError,
    PeriodGroup, Plan, Planner, Publication, RawDataKey, RoundError, Section,
};

use crate::http::{Http, HttpErrorKind};
use crate::plan_util::{build_http, monitor_spec, monitorable, plan_sections};
use crate::rate_limit::RateBudget;
use crate::settings::{StrategySettings, Target};

/// A GitHub API token. `Debug` never shows it, and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct GithubToken(String);

impl GithubToken {
    /// A token; `None` when blank (an empty `GITHUB_TOKEN` means no token).
    pub fn new(token: impl Into<String>) -> Option<Self> {
        let token = token.into().trim().to_owned();
        if token.is_empty() {
            None
        } else {
            Some(GithubToken(token))
        }
    }

    /// The token itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for GithubToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GithubToken(<redacted>)")
    }
}

/// PANIC's normalisation: the repo name always ends with `/`.
pub fn normalise_repo_name(repo_name: &str) -> String {
    if repo_name.ends_with('/') {
        repo_name.to_owned()
    } else {
        format!("{repo_name}/")
    }
}

/// PANIC's component name: `GitHub monitor (owner repo)`, i.e. the normalised name with every `/`
/// replaced by a space and the last character dropped.
pub fn component_name(normalised_repo_name: &str) -> String {
    let mut spaced = normalised_repo_name.replace('/', " ");
    spaced.pop();
    format!("GitHub monitor ({spaced})")
}

/// The releases URL: the template with its first `{}` replaced by the normalised repo name
/// (`https://api.github.com/repos/{}releases` → `…/repos/owner/repo/releases`).
pub fn releases_url(template: &str, normalised_repo_name: &str) -> String {
    template.replacen("{}", normalised_repo_name, 1)
}

/// One repository to monitor (PANIC's `RepoConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GithubRepoConfig {
    /// `id`
    pub repo_id: String,
    /// `parent_id`
    pub parent_id: String,
    /// `repo_name`, normalised to end with `/`.
    pub repo_name: String,
    /// The releases URL.
    pub releases_url: String,
}

/// The GitHub monitor strategy.
#[derive(Debug)]
pub struct GithubMonitor {
    name: String,
    config: GithubRepoConfig,
    http: Http,
    token: Option<GithubToken>,
    budget: Arc<RateBudget>,
    /// The end of the wait last announced at INFO (so each wait is logged once).
    announced_wait: Option<SystemTime>,
}

impl GithubMonitor {
    /// A monitor for `config`, sending `token` if any, spending from the shared `budget`.
    pub fn new(
        config: GithubRepoConfig,
        http: Http,
        token: Option<GithubToken>,
        budget: Arc<RateBudget>,
    ) -> Self {
        GithubMonitor {
            name: component_name(&config.repo_name),
            config,
            http,
            token,
            budget,
            announced_wait: None,
        }
    }

    /// The config.
    pub fn config(&self) -> &GithubRepoConfig {
        &self.config
    }

    fn meta_data(&self) -> MetaData {
        MetaData::new(&self.name)
            .with("repo_name", self.config.repo_name.as_str())
            .with("repo_id", self.config.repo_id.as_str())
            .with("repo_parent_id", self.config.parent_id.as_str())
            .timed()
    }

    /// Retrieval: `Ok(Ok(decoded JSON))`, `Ok(Err(expected failure))`.
    async fn retrieve(&self) -> Result<Value, PanicError> {
        let url = &self.config.releases_url;
        let authorization = self
            .token
            .as_ref()
            .map(|t| format!("Bearer {}", t.expose()));
        let mut headers = vec![("accept", "application/vnd.github+json")];
        if let Some(value) = &authorization {
            headers.push(("authorization", value.as_str()));
        }
        let response = match self.http.get_with_headers(url, &headers).await {
            Ok(r) => r,
            Err(e) => {
                warn!(monitor = %self.name, url = %url, error = %e, "error when retrieving data");
                return Err(match e.kind {
                    HttpErrorKind::Down => PanicError::cannot_access_github_page(url),
                    HttpErrorKind::Read => PanicError::data_reading(&self.name, url),
                    HttpErrorKind::InvalidUrl => PanicError::invalid_url(url),
                });
            }
        };
        self.budget
            .record(response.status, &response.headers, SystemTime::now());
        let decoded: Value = serde_json::from_slice(&response.body).map_err(|e| {
            warn!(monitor = %self.name, url = %url, status = response.status, error = %e,
                "the GitHub answer is not JSON");
            PanicError::json_decode(&e.to_string())
        })?;
        if let Some(message) = decoded.as_object().and_then(|o| o.get("message")) {
            let message = match message {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            warn!(monitor = %self.name, url = %url, status = response.status, message = %message,
                "GitHub API call error");
            return Err(PanicError::github_api_call(&message));
        }
        Ok(decoded)
    }

    /// Whether the shared budget lets this round call the API (logging the wait when it does not).
    fn budget_allows(&mut self) -> bool {
        let now = SystemTime::now();
        match self.budget.try_acquire(now) {
            Ok(()) => {
                if self.announced_wait.take().is_some() {
                    info!(monitor = %self.name, "GitHub rate-limit wait over: monitoring resumes");
                }
                true
            }
            Err(wait) => {
                if self.announced_wait == Some(wait.until) {
                    debug!(monitor = %self.name, until = wait.until_unix(),
                        "GitHub rate limit: round skipped");
                } else {
                    info!(
                        monitor = %self.name,
                        reason = %wait.reason,
                        until = wait.until_unix(),
                        wait_secs = wait.remaining_from(now).as_secs(),
                        "GitHub rate limit: no request and nothing published until the wait is over"
                    );
                    self.announced_wait = Some(wait.until);
                }
                false
            }
        }
    }
}

#[async_trait]
impl Monitor for GithubMonitor {
    fn name(&self) -> &str {
        &self.name
    }

    async fn round(&mut self) -> Result<Vec<Publication>, RoundError> {
        if !self.budget_allows() {
            return Ok(vec![]);
        }
        let outcome = match self.retrieve().await {
            Ok(decoded) => Ok(process(&decoded)
                .map_err(|e| RoundError::new(format!("{}: {e}", self.config.releases_url)))?),
            Err(e) => Err(e),
        };
        if let Ok(data) = &outcome {
            debug!(monitor = %self.name, data = %data, "releases");
        }
        let body = envelope(self.meta_data(), outcome);
        Ok(vec![Publication::new(RawDataKey::Github, body)])
    }
}

/// PANIC's `_process_data_retrieval_successful`: the releases list → index-keyed `data`.
pub fn process(decoded: &Value) -> Result<Value, RoundError> {
    let releases = decoded.as_array().ok_or_else(|| {
        RoundError::new(format!(
            "expected a list of releases, got {}",
            json_kind(decoded)
        ))
    })?;
    let mut data = Map::new();
    for (i, release) in releases.iter().enumerate() {
        let release = release.as_object().ok_or_else(|| {
            RoundError::new(format!(
                "release {i} is {}, not an object",
                json_kind(release)
            ))
        })?;
        let tag_name = release
            .get("tag_name")
            .ok_or_else(|| RoundError::new(format!("release {i} has no `tag_name`")))?;
        let mut entry = Map::new();
        entry.insert(
            "release_name".to_owned(),
            release.get("name").cloned().unwrap_or(Value::Null),
        );
        entry.insert("tag_name".to_owned(), tag_name.clone());
        data.insert(i.to_string(), Value::Object(entry));
    }
    Ok(Value::Object(data))
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

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
            releases_url: releases_url(&self.settings.github_releases_template, &normalised),
            repo_name: normalised.clone(),
        };
        let component = component_name(&normalised);
        let source_name = normalised
            .strip_suffix('/')
            .unwrap_or(&normalised)
            .to_owned();
        let print = fingerprint(&("github", &section.id, &config));
        let settings = Arc::clone(&self.settings);
        Ok(Some(monitor_spec(
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
            print,
            move |component| {
                let http = build_http(&settings, Target::Public, PeriodGroup::Github, component)?;
                Ok(GithubMonitor::new(
                    config.clone(),
                    http,
                    settings.github_token.clone(),
                    Arc::clone(&settings.github_rate_limit),
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
        plan_sections(self, message, Self::plan_section)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls_are_panics() {
        assert_eq!(normalise_repo_name("SimplyVC/panic"), "SimplyVC/panic/");
        assert_eq!(normalise_repo_name("SimplyVC/panic/"), "SimplyVC/panic/");
        assert_eq!(
            component_name("SimplyVC/panic/"),
            "GitHub monitor (SimplyVC panic)"
        );
        assert_eq!(
            releases_url("https://api.github.com/repos/{}releases", "SimplyVC/panic/"),
            "https://api.github.com/repos/SimplyVC/panic/releases"
        );
    }

    #[test]
    fn token_debug_is_redacted() {
        let token = GithubToken::new("ghp_secret123").unwrap();
        assert_eq!(token.expose(), "ghp_secret123");
        assert!(!format!("{token:?}").contains("secret"));
        assert!(GithubToken::new("  ").is_none());
    }

    #[test]
    fn processing() {
        let decoded = serde_json::json!([
            {"name": "v2", "tag_name": "2.0", "id": 2},
            {"name": null, "tag_name": "1.0"},
            {"tag_name": "0.1"}
        ]);
        assert_eq!(
            process(&decoded).unwrap().to_string(),
            r#"{"0":{"release_name":"v2","tag_name":"2.0"},"1":{"release_name":null,"tag_name":"1.0"},"2":{"release_name":null,"tag_name":"0.1"}}"#
        );
        assert_eq!(process(&serde_json::json!([])).unwrap().to_string(), "{}");
        for bad in [
            serde_json::json!({}),
            serde_json::json!(3),
            serde_json::json!([1]),
            serde_json::json!([{"name": "x"}]),
        ] {
            assert!(process(&bad).is_err(), "{bad}");
        }
    }
}
