//! [`StrategySettings`]: the HTTP part every strategy shares (clients, timeouts, body cap, TLS
//! verification) and the settings of each monitor type ([`GithubSettings`], [`DockerHubSettings`],
//! [`ChainlinkSettings`], [`EvmSettings`]). The binaries build it from env and flags; libraries
//! read no env.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use monitor_core::PeriodGroup;

use crate::github::rate_limit::RateBudget;
use crate::http::{error_chain, Http};
use crate::substrate::rpc::{WsConfig, WsPool};

/// PANIC's request timeout for REST calls (10 s).
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Default cap on a response body (16 MiB): a node_exporter scrape is ~100 KiB.
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// PANIC's `GITHUB_RELEASES_TEMPLATE`: `{}` is replaced by `owner/repo/`.
pub(crate) const DEFAULT_GITHUB_RELEASES_TEMPLATE: &str = "https://api.github.com/repos/{}releases";

/// PANIC's `DOCKERHUB_TAGS_TEMPLATE`: the two `{}` are the namespace and the repository name.
pub(crate) const DEFAULT_DOCKERHUB_TAGS_TEMPLATE: &str =
    "https://hub.docker.com/v2/repositories/{}/{}/tags";

/// Where the Chainlink node monitor looks up a chain's native currency symbol (PANIC's constant).
pub(crate) const DEFAULT_CHAIN_LIST_URL: &str = "https://chainid.network/chains_mini.json";

/// PANIC's web3 request timeout for EVM nodes (2 s).
pub(crate) const DEFAULT_EVM_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Default cap on the DockerHub tag pages one round follows (Docker Hub pages hold 10 tags).
pub(crate) const DEFAULT_DOCKERHUB_MAX_PAGES: usize = 100;

/// The `User-Agent` of every request (GitHub's API refuses requests without one).
pub(crate) const USER_AGENT: &str = concat!("panic-monitors/", env!("CARGO_PKG_VERSION"));

/// Which kind of server a request goes to; decides TLS verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// An operator's own endpoint: node_exporter, Prometheus, Cosmos REST / Tendermint RPC,
    /// Substrate API, EVM nodes. PANIC does not verify their certificates (often self-signed).
    Monitored,
    /// A public service: GitHub, DockerHub, weiwatchers, chainid.network. Verified.
    Public,
}

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

/// The HTTP client could not be built (TLS backend initialisation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not build the http client: {0}")]
pub struct ClientBuildError(pub String);

/// Settings of the GitHub monitors.
#[derive(Debug, Clone)]
pub struct GithubSettings {
    /// Releases URL template (`{}` ← `owner/repo/`).
    pub releases_template: String,
    /// API token (PANIC has none; the binary reads `GITHUB_TOKEN`), sent as
    /// `Authorization: Bearer`. Its `Debug` is redacted.
    pub token: Option<GithubToken>,
    /// The request budget shared by every GitHub monitor (and every clone of these settings).
    pub rate_budget: Arc<RateBudget>,
}

impl Default for GithubSettings {
    fn default() -> Self {
        GithubSettings {
            releases_template: DEFAULT_GITHUB_RELEASES_TEMPLATE.to_owned(),
            token: None,
            rate_budget: Arc::default(),
        }
    }
}

/// Settings of the DockerHub monitors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerHubSettings {
    /// Tags URL template (`{}` ← namespace, `{}` ← name).
    pub tags_template: String,
    /// Most tag pages one round follows (at least 1).
    pub max_pages: usize,
}

impl Default for DockerHubSettings {
    fn default() -> Self {
        DockerHubSettings {
            tags_template: DEFAULT_DOCKERHUB_TAGS_TEMPLATE.to_owned(),
            max_pages: DEFAULT_DOCKERHUB_MAX_PAGES,
        }
    }
}

/// Settings of the Chainlink monitors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainlinkSettings {
    /// The chain list (`chains_mini.json`) the Chainlink node monitor reads native currency
    /// symbols from.
    pub chain_list_url: String,
}

impl Default for ChainlinkSettings {
    fn default() -> Self {
        ChainlinkSettings {
            chain_list_url: DEFAULT_CHAIN_LIST_URL.to_owned(),
        }
    }
}

/// Settings of JSON-RPC calls to EVM nodes (EVM node and Chainlink contracts monitors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvmSettings {
    /// Timeout of one JSON-RPC exchange (PANIC: 2 s); a smaller group timeout wins.
    pub request_timeout: Duration,
}

impl Default for EvmSettings {
    fn default() -> Self {
        EvmSettings {
            request_timeout: DEFAULT_EVM_REQUEST_TIMEOUT,
        }
    }
}

/// Settings of the Substrate monitors: the websocket connections they share.
#[derive(Debug, Clone)]
pub struct SubstrateSettings {
    /// Connection settings (message cap, reconnect backoff, TLS verification) used when the
    /// pool is built; see [`SubstrateSettings::with_ws_config`].
    pub ws: WsConfig,
    /// One websocket per node URL, shared by every Substrate monitor (and every clone of these
    /// settings).
    pub pool: Arc<WsPool>,
}

impl Default for SubstrateSettings {
    fn default() -> Self {
        SubstrateSettings::with_ws_config(WsConfig::default())
    }
}

impl SubstrateSettings {
    /// Settings whose pool uses `ws`.
    pub fn with_ws_config(ws: WsConfig) -> Self {
        SubstrateSettings {
            pool: Arc::new(WsPool::new(ws.clone())),
            ws,
        }
    }
}

/// Settings of every strategy: the HTTP part all share (timeouts, body cap, TLS verification, the
/// client pool), then one struct per monitor type that has knobs of its own.
///
/// Cloning is cheap, and clones share the HTTP connection pools and the GitHub budget.
#[derive(Debug, Clone)]
pub struct StrategySettings {
    /// Timeout of one HTTP exchange (connect, headers and body), unless a group override applies.
    pub request_timeout: Duration,
    /// Per-period-group timeouts; the manager sets these below each group's period.
    pub group_timeouts: BTreeMap<PeriodGroup, Duration>,
    /// Largest accepted response body; a longer body is a read error.
    pub max_body_bytes: usize,
    /// Verify TLS certificates of [`Target::Monitored`] endpoints (PANIC: off).
    pub verify_tls_monitored: bool,
    /// Verify TLS certificates of [`Target::Public`] services (PANIC: on).
    pub verify_tls_public: bool,
    /// The GitHub monitors' settings.
    pub github: GithubSettings,
    /// The DockerHub monitors' settings.
    pub dockerhub: DockerHubSettings,
    /// The Chainlink monitors' settings.
    pub chainlink: ChainlinkSettings,
    /// JSON-RPC to EVM nodes.
    pub evm: EvmSettings,
    /// The Substrate monitors' shared websocket connections.
    pub substrate: SubstrateSettings,
    clients: Arc<ClientPool>,
}

impl Default for StrategySettings {
    fn default() -> Self {
        StrategySettings {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            group_timeouts: BTreeMap::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            verify_tls_monitored: false,
            verify_tls_public: true,
            github: GithubSettings::default(),
            dockerhub: DockerHubSettings::default(),
            chainlink: ChainlinkSettings::default(),
            evm: EvmSettings::default(),
            substrate: SubstrateSettings::default(),
            clients: Arc::default(),
        }
    }
}

impl StrategySettings {
    /// Sets the default request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the request timeout of one period group (the manager keeps it below the period).
    pub fn with_group_timeout(mut self, group: PeriodGroup, timeout: Duration) -> Self {
        self.group_timeouts.insert(group, timeout);
        self
    }

    /// Sets the GitHub token (`None`, or a blank token: unauthenticated).
    pub fn with_github_token(mut self, token: Option<&str>) -> Self {
        self.github.token = token.and_then(GithubToken::new);
        self
    }

    /// Sets the DockerHub page cap.
    pub fn with_dockerhub_max_pages(mut self, max_pages: usize) -> Self {
        self.dockerhub.max_pages = max_pages;
        self
    }

    /// Sets the body cap.
    pub fn with_max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// Turns TLS verification of monitored endpoints on or off.
    pub fn with_verify_tls_monitored(mut self, verify: bool) -> Self {
        self.verify_tls_monitored = verify;
        self
    }

    /// The request timeout for a group.
    pub fn request_timeout_for(&self, group: PeriodGroup) -> Duration {
        self.group_timeouts
            .get(&group)
            .copied()
            .unwrap_or(self.request_timeout)
    }

    /// Whether requests to `target` verify TLS certificates.
    pub fn verify_tls(&self, target: Target) -> bool {
        match target {
            Target::Monitored => self.verify_tls_monitored,
            Target::Public => self.verify_tls_public,
        }
    }

    /// The HTTP handle for JSON-RPC calls to EVM nodes by a strategy of `group`: the unverified
    /// client (EVM nodes are operators' endpoints), the EVM timeout capped by the group's.
    pub fn evm_http(&self, group: PeriodGroup) -> Result<Http, ClientBuildError> {
        let client = self
            .clients
            .get(self.verify_tls(Target::Monitored), Redirects::KeepMethod)?;
        let timeout = self
            .evm
            .request_timeout
            .min(self.request_timeout_for(group));
        Ok(Http::new(client, timeout, self.max_body_bytes))
    }

    /// The HTTP handle a strategy of `group` uses for `target`: the shared client (built on first
    /// use, then reused with its connection pool), the group's timeout and the body cap.
    pub fn http(&self, target: Target, group: PeriodGroup) -> Result<Http, ClientBuildError> {
        let client = self.clients.get(self.verify_tls(target), Redirects::Any)?;
        Ok(Http::new(
            client,
            self.request_timeout_for(group),
            self.max_body_bytes,
        ))
    }
}

/// How many redirects one request may follow.
pub const MAX_REDIRECTS: usize = 3;

/// Which redirects a client follows (always to the same scheme, host and port only, at most
/// [`MAX_REDIRECTS`] hops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Redirects {
    /// Any redirect status (GET requests: exporters, GitHub, DockerHub, Cosmos REST/RPC).
    Any,
    /// Only 307 and 308, which keep the method and body (JSON-RPC POSTs: a 301/302/303 would
    /// turn the POST into a GET, which answers nothing a monitor can use).
    KeepMethod,
}

/// The shared clients (certificate verification on / off, per redirect rule), built lazily.
#[derive(Debug, Default)]
struct ClientPool {
    /// Indexed by `[verify as usize][Redirects::KeepMethod as usize]`.
    slots: [[Mutex<Option<reqwest::Client>>; 2]; 2],
}

impl ClientPool {
    fn get(&self, verify: bool, redirects: Redirects) -> Result<reqwest::Client, ClientBuildError> {
        let slot =
            &self.slots[usize::from(verify)][usize::from(redirects == Redirects::KeepMethod)];
        // A poisoned lock only means another thread panicked while building: the slot is still
        // either empty or a complete client.
        let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = guard.as_ref() {
            return Ok(client.clone());
        }
        let client = build_client(verify, redirects)?;
        *guard = Some(client.clone());
        Ok(client)
    }

    #[cfg(test)]
    fn built(&self, verify: bool) -> bool {
        self.slots[usize::from(verify)]
            .iter()
            .any(|slot| slot.lock().unwrap().is_some())
    }
}

/// The redirect rule of monitored endpoints: the same scheme, host and port only, at most
/// [`MAX_REDIRECTS`] hops, and with [`Redirects::KeepMethod`] only 307/308. A refused redirect is
/// an error naming it (status and target, password redacted), which the monitor reports as it
/// reports an unreadable answer. `requests` (PANIC) followed up to 30 redirects anywhere, so a
/// monitored endpoint could send the monitor (and GitHub's token) to another host.
fn redirect_policy(redirects: Redirects) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let status = attempt.status().as_u16();
        let next = attempt.url();
        let refused = |why: &str| {
            format!(
                "redirect refused: HTTP {status} to `{}`: {why}",
                monitor_core::redact_url(next.as_str())
            )
        };
        if attempt.previous().len() > MAX_REDIRECTS {
            let why = refused(&format!("more than {MAX_REDIRECTS} redirects"));
            return attempt.error(why);
        }
        let Some(first) = attempt.previous().first() else {
            return attempt.follow();
        };
        if next.scheme() != first.scheme()
            || next.host_str() != first.host_str()
            || next.port_or_known_default() != first.port_or_known_default()
        {
            let why = refused("monitored endpoints are followed to the same host and port only");
            return attempt.error(why);
        }
        if redirects == Redirects::KeepMethod && !matches!(status, 307 | 308) {
            let why = refused("only 307 and 308 keep a POST a POST");
            return attempt.error(why);
        }
        attempt.follow()
    })
}

/// One client: keep-alive pooling (PANIC sent `Connection: close` and reconnected every round; a
/// pooled connection is cheaper for the target and for us, and a stale one is retried by the
/// client), no proxy from the environment (libraries read no env), redirects per
/// [`redirect_policy`]. Timeouts are per request.
fn build_client(verify: bool, redirects: Redirects) -> Result<reqwest::Client, ClientBuildError> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(redirect_policy(redirects))
        .tls_danger_accept_invalid_certs(!verify)
        .tls_danger_accept_invalid_hostnames(!verify)
        .build()
        .map_err(|e| ClientBuildError(error_chain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_panics() {
        let s = StrategySettings::default();
        assert_eq!(s.request_timeout, Duration::from_secs(10));
        assert!(!s.verify_tls(Target::Monitored));
        assert!(s.verify_tls(Target::Public));
        assert_eq!(
            s.github.releases_template,
            "https://api.github.com/repos/{}releases"
        );
        assert_eq!(
            s.request_timeout_for(PeriodGroup::Node),
            Duration::from_secs(10)
        );
        let s = s.with_group_timeout(PeriodGroup::Node, Duration::from_secs(3));
        assert_eq!(
            s.request_timeout_for(PeriodGroup::Node),
            Duration::from_secs(3)
        );
        assert_eq!(
            s.request_timeout_for(PeriodGroup::System),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn clients_are_shared_between_clones() {
        let a = StrategySettings::default();
        let b = a.clone();
        a.http(Target::Monitored, PeriodGroup::System).unwrap();
        assert!(b.clients.built(false));
        assert!(!b.clients.built(true));
    }
}
