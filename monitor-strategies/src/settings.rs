//! [`StrategySettings`]: the HTTP part every strategy shares (clients, timeouts, body cap, TLS
//! verification) and the settings of each monitor type ([`GithubSettings`], [`DockerHubSettings`],
//! [`ChainlinkSettings`], [`EvmSettings`]). The binaries build it from env and flags; libraries
//! read no env.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Default [`ConnectionLimits::max_kept_hosts`].
pub const DEFAULT_MAX_KEPT_HOSTS: usize = 4096;

/// Default [`ConnectionLimits::max_idle_per_host`].
pub const DEFAULT_MAX_IDLE_PER_HOST: usize = 2;

/// Default [`ConnectionLimits::max_held`].
pub const DEFAULT_MAX_HELD: usize = 4096;

/// Default [`ConnectionLimits::idle_timeout`] (above PANIC's default periods of 10 and 60 s, so a
/// kept connection is reused by the next round).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How many connections the shared HTTP clients keep open between requests, whatever the number
/// of targets (reqwest's pool keeps idle connections per host with no global cap: 100,000 targets
/// would keep 100,000 sockets, above a usual `ulimit -n`).
///
/// Keep-alive is granted per host (scheme, host, port): at most [`max_kept_hosts`] hosts at a
/// time, each keeping at most [`max_idle_per_host`] idle connections for at most
/// [`idle_timeout`]. A host that has not sent a request for `idle_timeout` gives its place back.
/// Requests to a host without a place are sent with `Connection: close` (as PANIC sent every
/// request), so they hold a socket only while in flight. A round of several requests to one host
/// (the EVM node monitor's two JSON-RPC calls) may *hold* its connection between them: its first
/// request leaves the connection open and the last one closes it, one connection per round
/// instead of one per request; at most [`max_held`] rounds hold a connection at a time, and a
/// round that ends before its last request (an error) keeps its place for `idle_timeout` (its
/// connection may still be idle in the pool until then). Sockets open are therefore at most
/// about `max_idle_per_host × max_kept_hosts` (twice that while the pool's reaper catches up
/// with hosts that gave their place back) plus `max_held` plus the requests in flight, which
/// the manager bounds, whatever the number of targets. A connection a system monitor keeps
/// between its rounds (`KeptConnection`, plain `http://` exporters) takes one of the
/// `max_kept_hosts` places itself, per connection, so the bound holds with them too.
///
/// [`max_kept_hosts`]: ConnectionLimits::max_kept_hosts
/// [`max_idle_per_host`]: ConnectionLimits::max_idle_per_host
/// [`idle_timeout`]: ConnectionLimits::idle_timeout
/// [`max_held`]: ConnectionLimits::max_held
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Hosts that may keep connections alive at one time (at least 1; default 4,096).
    pub max_kept_hosts: usize,
    /// Idle connections kept per host (default 2).
    pub max_idle_per_host: usize,
    /// An idle connection is closed after this long (default 90 s).
    pub idle_timeout: Duration,
    /// Rounds that may hold a connection between their requests to a host without a keep-alive
    /// place, at one time (default 4,096; 0: each such request has its own connection).
    pub max_held: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_kept_hosts: DEFAULT_MAX_KEPT_HOSTS,
            max_idle_per_host: DEFAULT_MAX_IDLE_PER_HOST,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_held: DEFAULT_MAX_HELD,
        }
    }
}

/// Which hosts may keep connections alive now (see [`ConnectionLimits`]); one per shared client.
#[derive(Debug)]
pub(crate) struct KeepAliveBudget {
    max_hosts: usize,
    /// Connections kept by callers per host (see [`ConnPlace`]).
    max_conns_per_host: usize,
    idle: Duration,
    max_held: usize,
    state: Mutex<BudgetState>,
}

/// A place for one connection kept by its caller between requests (`http::KeptConnection`): it
/// takes one of the budget's `max_kept_hosts` places, as a host of the pool does, so that hosts
/// kept in the pool plus connections kept by callers stay at most `max_kept_hosts`, and the
/// sockets kept at most `max_kept_hosts × max_idle_per_host` as before. Counted per connection,
/// and at most `max_idle_per_host` of them per host, as the pool keeps: the monitors of one host
/// beyond those share the pool's connections instead of each keeping its own (10,000 monitors of
/// one exporter keep 2 connections, not 4,096). Given back on drop.
#[derive(Debug)]
pub(crate) struct ConnPlace {
    /// The budget and the host's key; `None` outside any budget.
    budget: Option<(Arc<KeepAliveBudget>, u64)>,
}

impl ConnPlace {
    /// A place outside any budget (an `Http` built without one).
    pub(crate) fn unbounded() -> Self {
        ConnPlace { budget: None }
    }
}

impl Drop for ConnPlace {
    fn drop(&mut self) {
        if let Some((budget, key)) = &self.budget {
            let mut state = budget.state.lock().unwrap_or_else(|e| e.into_inner());
            state.conns = state.conns.saturating_sub(1);
            if let Some(n) = state.conns_per_host.get_mut(key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    state.conns_per_host.remove(key);
                }
            }
        }
    }
}

#[derive(Debug)]
struct BudgetState {
    /// Host key → last request.
    hosts: HashMap<u64, Instant>,
    /// Expired hosts are looked for at most this often when the budget is full.
    next_purge: Instant,
    /// Rounds holding a connection now (see [`ConnectionLimits::max_held`]).
    held: usize,
    /// Places of rounds that ended before their last request, until these instants (in order:
    /// each is its end plus the idle timeout).
    lingering: VecDeque<Instant>,
    /// Connections kept by their callers ([`ConnPlace`]): each takes a host place.
    conns: usize,
    /// The same, per host key (at most `max_idle_per_host` each).
    conns_per_host: HashMap<u64, usize>,
}

/// A round's place to hold its connection to a host between requests (see
/// [`ConnectionLimits`]); [`Hold::finish`] when the last request was sent, else the place
/// lingers for the idle timeout.
#[derive(Debug)]
pub(crate) struct Hold {
    budget: Arc<KeepAliveBudget>,
    finished: bool,
}

impl Hold {
    /// The round's last request was sent with `Connection: close`: the place is free at once.
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.budget.release_hold(self.finished, Instant::now());
    }
}

impl KeepAliveBudget {
    pub(crate) fn new(limits: &ConnectionLimits) -> Self {
        KeepAliveBudget {
            max_hosts: limits.max_kept_hosts.max(1),
            max_conns_per_host: limits.max_idle_per_host.max(1),
            idle: limits.idle_timeout,
            max_held: limits.max_held,
            state: Mutex::new(BudgetState {
                hosts: HashMap::new(),
                next_purge: Instant::now(),
                held: 0,
                lingering: VecDeque::new(),
                conns: 0,
                conns_per_host: HashMap::new(),
            }),
        }
    }

    /// A place to keep one connection to `url`'s host between requests, `None` when all are
    /// taken or the host has its `max_idle_per_host` kept connections already.
    pub(crate) fn kept_connection(self: &Arc<Self>, url: &reqwest::Url) -> Option<ConnPlace> {
        self.kept_connection_at(host_key(url), Instant::now())
    }

    fn kept_connection_at(self: &Arc<Self>, key: u64, now: Instant) -> Option<ConnPlace> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.purge_if_full(&mut state, now);
        if self.is_full(&state) {
            return None;
        }
        let of_host = state.conns_per_host.entry(key).or_insert(0);
        if *of_host >= self.max_conns_per_host {
            return None;
        }
        *of_host += 1;
        state.conns += 1;
        Some(ConnPlace {
            budget: Some((Arc::clone(self), key)),
        })
    }

    /// How long an idle connection is kept.
    pub(crate) fn idle_timeout(&self) -> Duration {
        self.idle
    }

    /// A place for a round to hold its connection to `url` between its requests: `None` when the
    /// host keeps its connections anyway (nothing to hold) or every place is taken.
    pub(crate) fn hold(self: &Arc<Self>, url: &reqwest::Url) -> Option<Hold> {
        self.hold_at(host_key(url), Instant::now())
    }

    fn hold_at(self: &Arc<Self>, key: u64, now: Instant) -> Option<Hold> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.hosts.contains_key(&key) {
            return None;
        }
        while state.lingering.front().is_some_and(|until| *until <= now) {
            state.lingering.pop_front();
        }
        if state.held + state.lingering.len() >= self.max_held {
            return None;
        }
        state.held += 1;
        Some(Hold {
            budget: Arc::clone(self),
            finished: false,
        })
    }

    fn release_hold(&self, finished: bool, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.held = state.held.saturating_sub(1);
        if !finished {
            state.lingering.push_back(now + self.idle);
        }
    }

    /// Whether a request to `url` now may keep its connection alive (and counts as the host's
    /// last use).
    pub(crate) fn keep_alive(&self, url: &reqwest::Url) -> bool {
        self.keep_alive_at(host_key(url), Instant::now())
    }

    fn keep_alive_at(&self, key: u64, now: Instant) -> bool {
        // A poisoned lock only means a panic elsewhere mid-update of a map of instants.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = state.hosts.get_mut(&key) {
            *last = now;
            return true;
        }
        self.purge_if_full(&mut state, now);
        if self.is_full(&state) {
            return false;
        }
        state.hosts.insert(key, now);
        true
    }

    /// Whether every place is taken (by hosts of the pool and by connections kept by callers).
    fn is_full(&self, state: &BudgetState) -> bool {
        state.hosts.len() + state.conns >= self.max_hosts
    }

    /// When every place is taken, drops the hosts idle for the idle timeout (at most every
    /// eighth of it).
    fn purge_if_full(&self, state: &mut BudgetState, now: Instant) {
        if self.is_full(state) && now >= state.next_purge {
            let idle = self.idle;
            state
                .hosts
                .retain(|_, last| now.saturating_duration_since(*last) < idle);
            // Scanning is O(hosts): when nothing expired, do not scan again on every request.
            state.next_purge = now + (idle / 8).max(Duration::from_millis(100));
        }
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.state.lock().unwrap().hosts.len()
    }
}

/// A stable key of a URL's (scheme, host, port): what reqwest pools connections by.
fn host_key(url: &reqwest::Url) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    url.scheme().hash(&mut h);
    url.host_str().hash(&mut h);
    url.port_or_known_default().hash(&mut h);
    h.finish()
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
    /// How many HTTP connections are kept open between requests. Read when a shared client is
    /// first built (the first `http`/`evm_http` call of these settings or any clone).
    pub connections: ConnectionLimits,
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
            connections: ConnectionLimits::default(),
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

    /// Sets the connection limits (before the first client is built).
    pub fn with_connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.connections = limits;
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
        let (client, budget) = self.clients.get(
            self.verify_tls(Target::Monitored),
            Redirects::KeepMethod,
            &self.connections,
        )?;
        let timeout = self
            .evm
            .request_timeout
            .min(self.request_timeout_for(group));
        Ok(Http::new(client, timeout, self.max_body_bytes).with_keep_alive_budget(budget))
    }

    /// The HTTP handle a strategy of `group` uses for `target`: the shared client (built on first
    /// use, then reused with its connection pool), the group's timeout and the body cap.
    pub fn http(&self, target: Target, group: PeriodGroup) -> Result<Http, ClientBuildError> {
        let (client, budget) =
            self.clients
                .get(self.verify_tls(target), Redirects::Any, &self.connections)?;
        Ok(
            Http::new(client, self.request_timeout_for(group), self.max_body_bytes)
                .with_keep_alive_budget(budget),
        )
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
    slots: [[Mutex<Option<PooledClient>>; 2]; 2],
}

/// A shared client and the keep-alive budget of its connection pool.
type PooledClient = (reqwest::Client, Arc<KeepAliveBudget>);

impl ClientPool {
    fn get(
        &self,
        verify: bool,
        redirects: Redirects,
        limits: &ConnectionLimits,
    ) -> Result<PooledClient, ClientBuildError> {
        let slot =
            &self.slots[usize::from(verify)][usize::from(redirects == Redirects::KeepMethod)];
        // A poisoned lock only means another thread panicked while building: the slot is still
        // either empty or a complete client.
        let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((client, budget)) = guard.as_ref() {
            return Ok((client.clone(), Arc::clone(budget)));
        }
        let client = build_client(verify, redirects, limits)?;
        let budget = Arc::new(KeepAliveBudget::new(limits));
        *guard = Some((client.clone(), Arc::clone(&budget)));
        Ok((client, budget))
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
/// [`redirect_policy`], idle connections per [`ConnectionLimits`] (the global part is the
/// [`KeepAliveBudget`] [`Http`] consults). Timeouts are per request.
fn build_client(
    verify: bool,
    redirects: Redirects,
    limits: &ConnectionLimits,
) -> Result<reqwest::Client, ClientBuildError> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .no_proxy()
        .pool_idle_timeout(limits.idle_timeout)
        .pool_max_idle_per_host(limits.max_idle_per_host)
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

    #[test]
    fn rounds_hold_connections_to_a_bounded_number_and_abandoned_places_linger() {
        let budget = Arc::new(KeepAliveBudget::new(&ConnectionLimits {
            max_kept_hosts: 1,
            max_idle_per_host: 1,
            idle_timeout: Duration::from_secs(10),
            max_held: 2,
        }));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(budget.keep_alive_at(1, at(0)));
        // A kept host has nothing to hold.
        assert!(budget.hold_at(1, at(0)).is_none());
        let a = budget.hold_at(2, at(0)).unwrap();
        let b = budget.hold_at(3, at(0)).unwrap();
        assert!(budget.hold_at(4, at(0)).is_none(), "two places only");
        a.finish();
        let c = budget.hold_at(4, at(0)).unwrap();
        // `b` ends before its last request: its place lingers for the idle timeout.
        budget.release_hold(false, at(1));
        std::mem::forget(b); // released by hand above, at a chosen instant
        assert!(budget.hold_at(5, at(5)).is_none());
        let d = budget.hold_at(5, at(11)).unwrap();
        assert!(budget.hold_at(6, at(11)).is_none());
        drop((c, d));
    }

    #[test]
    fn connections_kept_by_callers_take_host_places() {
        let budget = Arc::new(KeepAliveBudget::new(&ConnectionLimits {
            max_kept_hosts: 3,
            max_idle_per_host: 2,
            idle_timeout: Duration::from_secs(10),
            max_held: 0,
        }));
        let t0 = Instant::now();
        assert!(budget.keep_alive_at(1, t0));
        // Two connections (of one host or not: counted per connection) and the host: full.
        let a = budget.kept_connection_at(7, t0).expect("a place");
        let b = budget.kept_connection_at(8, t0).expect("a place");
        assert!(budget.kept_connection_at(9, t0).is_none());
        assert!(!budget.keep_alive_at(2, t0));
        assert!(budget.keep_alive_at(1, t0));
        drop(a);
        assert!(budget.keep_alive_at(2, t0));
        assert!(budget.kept_connection_at(7, t0).is_none());
        drop(b);
        let _c = budget.kept_connection_at(7, t0).expect("a place");
    }

    #[test]
    fn a_host_keeps_at_most_max_idle_per_host_caller_connections() {
        let budget = Arc::new(KeepAliveBudget::new(&ConnectionLimits {
            max_kept_hosts: 100,
            max_idle_per_host: 2,
            idle_timeout: Duration::from_secs(10),
            max_held: 0,
        }));
        let t0 = Instant::now();
        let a = budget.kept_connection_at(1, t0).expect("a place");
        let b = budget.kept_connection_at(1, t0).expect("a place");
        // The host's third monitor shares the pool instead.
        assert!(budget.kept_connection_at(1, t0).is_none());
        let _other = budget.kept_connection_at(2, t0).expect("another host");
        drop(a);
        let _c = budget.kept_connection_at(1, t0).expect("a place again");
        drop(b);
        let state = budget.state.lock().unwrap();
        assert_eq!((state.conns, state.conns_per_host.get(&1)), (2, Some(&1)));
    }

    #[test]
    fn keep_alive_is_granted_to_a_bounded_number_of_hosts() {
        let budget = KeepAliveBudget::new(&ConnectionLimits {
            max_kept_hosts: 2,
            max_idle_per_host: 1,
            idle_timeout: Duration::from_secs(10),
            max_held: 0,
        });
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(budget.keep_alive_at(1, at(0)));
        assert!(budget.keep_alive_at(2, at(1)));
        // Full: a third host is sent `Connection: close`; the kept ones stay kept.
        assert!(!budget.keep_alive_at(3, at(2)));
        assert!(budget.keep_alive_at(1, at(3)));
        assert_eq!(budget.kept(), 2);
        // Host 2 was last used at 1 s: at 12 s its place is free, host 1 (3 s) keeps its own.
        assert!(budget.keep_alive_at(3, at(12)));
        assert!(budget.keep_alive_at(1, at(12)));
        assert!(!budget.keep_alive_at(2, at(12)));
        assert_eq!(budget.kept(), 2);
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        assert_eq!(
            host_key(&url("http://127.0.0.2:80/a")),
            host_key(&url("http://127.0.0.2/b"))
        );
        assert_ne!(
            host_key(&url("http://127.0.0.2:9100/")),
            host_key(&url("http://127.0.0.3:9100/"))
        );
    }
}
