//! `monitor-strategies`: one strategy per PANIC monitor type, each turning a validated config into a
//! [`monitor_core::Monitor`]. Strategies know nothing of RabbitMQ, Redis or the manager.
//!
//! # Layout
//!
//! * [`settings`]: [`StrategySettings`], shared by every strategy (HTTP clients, timeouts, body cap,
//!   URL templates); built by the binaries, the library reads no env;
//! * [`http`]: the one HTTP layer (timeout, size-capped body, PANIC's transport error classes);
//! * [`prometheus`]: Prometheus text parsing and PANIC's metric query;
//! * [`system`]: the System monitor (node_exporter, spec §4.1);
//! * [`github`]: the GitHub releases monitor and planner (spec §4.2), [`rate_limit`]: the request
//!   budget all GitHub monitors share;
//! * [`dockerhub`]: the DockerHub tags monitor and planner (spec §4.3);
//! * [`evm`]: JSON-RPC to EVM nodes and the EVM node monitor (spec §4.4);
//! * [`chainlink`]: the Chainlink node (spec §4.5) and contracts (spec §4.8) monitors, their ABI,
//!   and the Chainlink and EVM node planners;
//! * [`cosmos`]: the Cosmos node (spec §4.6) and network (spec §4.9) monitors and their planners;
//! * [`planners`]: the [`monitor_core::Planner`]s and [`registry`], everything the manager runs;
//!   `plan_util` (private): what the planners share (section loop, monitorables, specs, clients);
//! * `testing` (feature `testing`): a local HTTP server for strategy tests.

pub mod chainlink;
pub mod cosmos;
pub mod dockerhub;
pub mod evm;
pub mod github;
pub mod http;
mod plan_util;
pub mod planners;
pub mod prometheus;
pub mod rate_limit;
pub mod settings;
pub mod system;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use chainlink::{
    ChainlinkContractsMonitor, ChainlinkContractsPlanner, ChainlinkNodeMonitor,
    ChainlinkNodesPlanner, EvmNodesPlanner,
};
pub use cosmos::{
    CosmosNetworkMonitor, CosmosNetworkPlanner, CosmosNodeConfig, CosmosNodeMonitor,
    CosmosNodesPlanner,
};
pub use dockerhub::{DockerHubMonitor, DockerHubPlanner, DockerHubRepoConfig};
pub use evm::{EvmNodeConfig, EvmNodeMonitor};
pub use github::{GithubMonitor, GithubPlanner, GithubRepoConfig, GithubToken};
pub use http::{Http, HttpError, HttpErrorKind, HttpResponse};
pub use planners::{registry, SystemsPlanner};
pub use rate_limit::RateBudget;
pub use settings::{StrategySettings, Target};
pub use system::{SystemConfig, SystemMonitor};
