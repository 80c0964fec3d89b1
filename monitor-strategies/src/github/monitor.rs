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
//! * the shared GitHub budget ([`RateBudget`]) is spent → **no request and
//!   nothing published** (`Ok(vec![])`). The manager then publishes only the worker heartbeat: the
//!   monitor is alive and deliberately waiting, so the health checker must not report it dead, and
//!   downstream sees no new data, as if the period were longer. The wait is logged at INFO once
//!   per monitor and window (and at DEBUG on the rounds skipped after that).
//!
//! Requests carry the client's `User-Agent` (GitHub refuses requests without one),
//! `Accept: application/vnd.github+json` and, when a token is configured
//! ([`GithubSettings::token`](crate::GithubSettings::token)), `Authorization: Bearer <token>`. The token is
//! never logged: [`GithubToken`]'s `Debug` is redacted and the HTTP layer logs no headers.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tracing::{debug, info, warn};

use monitor_core::envelope::{envelope, MetaData};
use monitor_core::{Monitor, PanicError, Publication, RawDataKey, RoundError};

use super::rate_limit::RateBudget;
use crate::http::{json_kind, Http, HttpErrorKind};
use crate::settings::GithubToken;

/// PANIC's normalisation: the repo name always ends with `/`.
pub(crate) fn normalise_repo_name(repo_name: &str) -> String {
    if repo_name.ends_with('/') {
        repo_name.to_owned()
    } else {
        format!("{repo_name}/")
    }
}

/// PANIC's component name: `GitHub monitor (owner repo)`, i.e. the normalised name with every `/`
/// replaced by a space and the last character dropped.
pub(crate) fn component_name(normalised_repo_name: &str) -> String {
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
                warn!(monitor = %self.name, url = %monitor_core::redact_url(url), error = %e, "error when retrieving data");
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
            warn!(monitor = %self.name, url = %monitor_core::redact_url(url), status = response.status, error = %e,
                "the GitHub answer is not JSON");
            PanicError::json_decode(&e.to_string())
        })?;
        if let Some(message) = decoded.as_object().and_then(|o| o.get("message")) {
            let message = match message {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            warn!(monitor = %self.name, url = %monitor_core::redact_url(url), status = response.status, message = %message,
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

    /// A releases page that is not what GitHub serves: PANIC's 5006 (cannot access the page), as
    /// for an API error message.
    fn failed_round(&self, _error: &RoundError) -> Vec<Publication> {
        let error = PanicError::cannot_access_github_page(&self.config.releases_url);
        let body = envelope(self.meta_data(), Err(error));
        vec![Publication::new(RawDataKey::Github, body)]
    }
}

/// PANIC's `_process_data_retrieval_successful`: the releases list → index-keyed `data`.
pub(crate) fn process(decoded: &Value) -> Result<Value, RoundError> {
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
