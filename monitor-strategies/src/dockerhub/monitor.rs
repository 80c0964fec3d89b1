//! The DockerHub monitor (spec §4.3, PANIC's `monitors/dockerhub.py`) and its planner (spec §1.6):
//! every tag of a repository per round, following each page's `next`.
//!
//! Outcomes of a round:
//! * success → `result` envelope on `dockerhub`, `data` index-keyed over the tags of all pages in
//!   order, `{"tag_name": <name>, "last_updated": <float UNIX seconds>}`;
//! * the first page has `count` 0, or no numeric `count` (Docker Hub's 404 body
//!   `{"message": "object not found", …}`), or a page has no `results` list → 5020. PANIC crashed on
//!   a 404 body (key error, monitor restarted after 10 s); an error envelope is sent instead;
//! * Docker Hub unreachable or too slow → 5021 (tags URL); a body unreadable → 5005 (source = the
//!   tags URL); a body that is not JSON → 5012 (decoder's message); an unusable tags URL → 5009;
//! * a `next` that is not a URL of the same scheme, host and port as the tags URL (relative URLs
//!   are resolved first), or more pages than [`DockerHubSettings::max_pages`](crate::DockerHubSettings::max_pages) → 5005 with
//!   the tags URL as source (the reason is logged): following such a `next` would send requests
//!   elsewhere or forever, and publishing a truncated tag list would look like deleted tags
//!   downstream.
//!
//! Tags are taken leniently: a tag whose `name` is missing has `tag_name` `null`, and a tag whose
//! `last_updated` is missing, `null` or not an ISO-8601 date has `last_updated` `null` (PANIC's
//! processing would have failed and sent nothing for the whole repository).
//!
//! `last_updated` is converted as PANIC did (`dateutil` then `datetime.timestamp()`): the exact
//! count of microseconds since the epoch divided by 10⁶, so `2022-11-29T11:06:47.785765Z` gives
//! `1669720007.785765`. A date without an offset is taken as UTC (PANIC used the local zone).

use async_trait::async_trait;
use reqwest::Url;
use serde_json::{Map, Value};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime};
use tracing::{debug, warn};

use monitor_core::envelope::{envelope, float, MetaData};
use monitor_core::{Monitor, PanicError, Publication, RawDataKey, RoundError};

use crate::http::{json_kind, parse_url, Http, HttpErrorKind};

/// PANIC's component name: `DockerHub monitor (<namespace> <name>)`.
pub(crate) fn component_name(repo_namespace: &str, repo_name: &str) -> String {
    format!("DockerHub monitor ({repo_namespace} {repo_name})")
}

/// The tags URL: the template's first `{}` ← namespace, second `{}` ← name (Python's
/// `str.format` with positional fields).
pub fn tags_url(template: &str, repo_namespace: &str, repo_name: &str) -> String {
    // Replace in one pass so that a namespace containing `{}` is not substituted again.
    let mut out = String::with_capacity(template.len() + repo_namespace.len() + repo_name.len());
    let mut values = [repo_namespace, repo_name].into_iter();
    let mut rest = template;
    while let Some(pos) = rest.find("{}") {
        let Some(value) = values.next() else { break };
        out.push_str(&rest[..pos]);
        out.push_str(value);
        rest = &rest[pos + 2..];
    }
    out.push_str(rest);
    out
}

/// An ISO-8601 date as float UNIX seconds (microsecond precision), or `None`.
pub(crate) fn iso_to_unix(value: &str) -> Option<f64> {
    let value = value.trim();
    let date = OffsetDateTime::parse(value, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(value, &Iso8601::DEFAULT))
        .or_else(|_| PrimitiveDateTime::parse(value, &Iso8601::DEFAULT).map(|d| d.assume_utc()))
        .ok()?;
    let micros = date.unix_timestamp_nanos().div_euclid(1000);
    // Exact below 2^53 µs (year 2255); the division is then correctly rounded, as Python's.
    #[allow(clippy::cast_precision_loss)]
    Some(micros as f64 / 1e6)
}

/// One repository to monitor (PANIC's `DockerHubRepoConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DockerHubRepoConfig {
    /// `id`
    pub repo_id: String,
    /// `parent_id`
    pub parent_id: String,
    /// `repo_namespace`
    pub repo_namespace: String,
    /// `repo_name`
    pub repo_name: String,
    /// The first page's URL.
    pub tags_url: String,
}

/// One tag as read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tag {
    name: Value,
    last_updated: Option<String>,
}

/// The DockerHub monitor strategy.
#[derive(Debug)]
pub struct DockerHubMonitor {
    name: String,
    config: DockerHubRepoConfig,
    http: Http,
    max_pages: usize,
}

impl DockerHubMonitor {
    /// A monitor for `config` following at most `max_pages` pages per round (at least 1).
    pub fn new(config: DockerHubRepoConfig, http: Http, max_pages: usize) -> Self {
        DockerHubMonitor {
            name: component_name(&config.repo_namespace, &config.repo_name),
            config,
            http,
            max_pages: max_pages.max(1),
        }
    }

    /// The config.
    pub fn config(&self) -> &DockerHubRepoConfig {
        &self.config
    }

    fn meta_data(&self) -> MetaData {
        MetaData::new(&self.name)
            .with("repo_namespace", self.config.repo_namespace.as_str())
            .with("repo_name", self.config.repo_name.as_str())
            .with("repo_id", self.config.repo_id.as_str())
            .with("repo_parent_id", self.config.parent_id.as_str())
            .timed()
    }

    fn unreadable(&self, why: &str) -> PanicError {
        warn!(monitor = %self.name, url = %monitor_core::redact_url(&self.config.tags_url), reason = why,
            "error when retrieving data");
        PanicError::data_reading(&self.name, &self.config.tags_url)
    }

    /// Every tag of every page, or the expected failure.
    async fn retrieve(&self) -> Result<Vec<Tag>, PanicError> {
        let tags_url = &self.config.tags_url;
        let origin = parse_url(tags_url).map_err(|e| {
            warn!(monitor = %self.name, error = %e, "invalid tags URL");
            PanicError::invalid_url(tags_url)
        })?;
        let mut url = origin.clone();
        let mut tags = Vec::new();
        for page_no in 1..=self.max_pages {
            let response = self.http.get(url.as_str()).await.map_err(|e| {
                warn!(monitor = %self.name, url = %monitor_core::redact_url(&e.url), error = %e, "error when retrieving data");
                match e.kind {
                    HttpErrorKind::Down => PanicError::cannot_access_dockerhub_page(tags_url),
                    HttpErrorKind::Read => PanicError::data_reading(&self.name, tags_url),
                    HttpErrorKind::InvalidUrl => PanicError::invalid_url(url.as_str()),
                }
            })?;
            let page: Value = serde_json::from_slice(&response.body).map_err(|e| {
                warn!(monitor = %self.name, url = %monitor_core::redact_url(url.as_str()), status = response.status, error = %e,
                    "the Docker Hub answer is not JSON");
                PanicError::json_decode(&e.to_string())
            })?;
            let not_tags = |why: &str| {
                warn!(monitor = %self.name, url = %monitor_core::redact_url(url.as_str()), status = response.status, reason = why,
                    "Docker Hub API call came back without tags");
                PanicError::dockerhub_api_call()
            };
            let (page_tags, next) = match read_page(&page, page_no == 1) {
                Ok(read) => read,
                Err(PageError::NotTags(why)) => return Err(not_tags(why)),
                Err(PageError::BadNext(why)) => return Err(self.unreadable(&why)),
            };
            tags.extend(page_tags);
            let Some(next) = next else {
                return Ok(tags);
            };
            url = match url.join(next) {
                Ok(u) if same_origin(&u, &origin) => u,
                Ok(u) => {
                    return Err(self.unreadable(&format!(
                        "`next` {u} is not on the tags URL's scheme, host and port: not followed"
                    )))
                }
                Err(e) => {
                    return Err(self.unreadable(&format!("`next` {next:?} is not a URL: {e}")))
                }
            };
        }
        Err(self.unreadable(&format!(
            "more than {} pages of tags: giving up (raise the page cap)",
            self.max_pages
        )))
    }
}

/// Why a page is not a page of tags.
#[derive(Debug)]
pub(crate) enum PageError {
    /// Not an answer with tags (PANIC's `DockerHubAPICallException`).
    NotTags(&'static str),
    /// The `next` link is not a URL.
    BadNext(String),
}

/// One page of tags (`first`: the first page, whose `count` must be a non-zero number): its
/// tags and the `next` link (`None` on the last page).
pub(crate) fn read_page(page: &Value, first: bool) -> Result<(Vec<Tag>, Option<&str>), PageError> {
    if first {
        match page.get("count").and_then(Value::as_f64) {
            None => return Err(PageError::NotTags("no numeric `count`")),
            Some(0.0) => return Err(PageError::NotTags("`count` is 0")),
            Some(_) => {}
        }
    }
    let results = page
        .get("results")
        .and_then(Value::as_array)
        .ok_or(PageError::NotTags("no `results` list"))?;
    let tags = results
        .iter()
        .map(|r| Tag {
            name: r.get("name").cloned().unwrap_or(Value::Null),
            last_updated: r
                .get("last_updated")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
        .collect();
    let next = match page.get("next") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(PageError::BadNext(format!(
                "`next` is {}, not a URL",
                json_kind(other)
            )))
        }
    };
    Ok((tags, next))
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

#[async_trait]
impl Monitor for DockerHubMonitor {
    fn name(&self) -> &str {
        &self.name
    }

    async fn round(&mut self) -> Result<Vec<Publication>, RoundError> {
        let outcome = self.retrieve().await.map(|tags| self.process(&tags));
        if let Ok(data) = &outcome {
            debug!(monitor = %self.name, data = %data, "tags");
        }
        let body = envelope(self.meta_data(), outcome);
        Ok(vec![Publication::new(RawDataKey::Dockerhub, body)])
    }
}

impl DockerHubMonitor {
    /// PANIC's `_process_retrieved_data`: index-keyed tags.
    pub(crate) fn process(&self, tags: &[Tag]) -> Value {
        let mut data = Map::new();
        let mut unparsable = 0usize;
        for (i, tag) in tags.iter().enumerate() {
            let last_updated = match tag.last_updated.as_deref().map(iso_to_unix) {
                Some(Some(secs)) => float(secs),
                Some(None) => {
                    unparsable += 1;
                    Value::Null
                }
                None => Value::Null,
            };
            let mut entry = Map::new();
            entry.insert("tag_name".to_owned(), tag.name.clone());
            entry.insert("last_updated".to_owned(), last_updated);
            data.insert(i.to_string(), Value::Object(entry));
        }
        if unparsable > 0 {
            warn!(monitor = %self.name, tags = unparsable,
                "tags with an unparsable `last_updated` published with null");
        }
        Value::Object(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_names() {
        assert_eq!(
            tags_url(
                "https://hub.docker.com/v2/repositories/{}/{}/tags",
                "prom",
                "node-exporter"
            ),
            "https://hub.docker.com/v2/repositories/prom/node-exporter/tags"
        );
        assert_eq!(tags_url("x/{}/{}/{}", "{}", "b"), "x/{}/b/{}");
        assert_eq!(tags_url("no fields", "a", "b"), "no fields");
        assert_eq!(
            component_name("prom", "node-exporter"),
            "DockerHub monitor (prom node-exporter)"
        );
    }

    #[test]
    fn iso_dates_like_python() {
        let v = iso_to_unix("2022-11-29T11:06:47.785765Z").unwrap();
        assert_eq!(float(v).to_string(), "1669720007.785765");
        assert_eq!(
            float(iso_to_unix("2021-12-01T13:19:51.650012Z").unwrap()).to_string(),
            "1638364791.650012"
        );
        assert_eq!(iso_to_unix("2022-11-29T11:06:47Z"), Some(1669720007.0));
        assert_eq!(
            iso_to_unix("2022-11-29T12:06:47.5+01:00"),
            Some(1669720007.5)
        );
        assert_eq!(iso_to_unix("2022-11-29T11:06:47.25"), Some(1669720007.25));
        // Before the epoch.
        assert_eq!(iso_to_unix("1969-12-31T23:59:59.5Z"), Some(-0.5));
        for bad in ["", "yesterday", "2022-13-01T00:00:00Z", "2022-11-29"] {
            assert_eq!(iso_to_unix(bad), None, "{bad}");
        }
    }

    #[test]
    fn origins() {
        let a = Url::parse("https://hub.docker.com/v2/x").unwrap();
        assert!(same_origin(
            &Url::parse("https://hub.docker.com:443/v2/y?page=2").unwrap(),
            &a
        ));
        assert!(!same_origin(
            &Url::parse("http://hub.docker.com/v2/y").unwrap(),
            &a
        ));
        assert!(!same_origin(
            &Url::parse("https://evil.example/v2/y").unwrap(),
            &a
        ));
        assert!(!same_origin(
            &Url::parse("https://hub.docker.com:8443/v2/y").unwrap(),
            &a
        ));
    }
}
