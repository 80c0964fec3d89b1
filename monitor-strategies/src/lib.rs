//! `monitor-strategies`: one strategy per PANIC monitor type, each turning a validated config into a
//! [`monitor_core::Monitor`], and the planners that map PANIC's config messages to monitors.
//! Strategies know nothing of RabbitMQ, Redis or the manager.
//!
//! # Layout
//!
//! One folder per monitor type, each with its monitor(s), their client/parse code and their
//! planner side by side:
//!
//! * `system/`: the System monitor (node_exporter, spec §4.1) and [`SystemsPlanner`];
//! * `github/`: the GitHub releases monitor (spec §4.2), [`GithubPlanner`] and the request budget
//!   all GitHub monitors share ([`RateBudget`]);
//! * `dockerhub/`: the DockerHub tags monitor (spec §4.3) and [`DockerHubPlanner`];
//! * `evm/`: the JSON-RPC client ([`JsonRpc`]), the EVM node monitor (spec §4.4) and
//!   [`EvmNodesPlanner`];
//! * `chainlink/`: the Chainlink node (spec §4.5) and contracts (spec §4.8) monitors, the ABI of
//!   the contracts, [`ChainlinkNodesPlanner`] and [`ChainlinkContractsPlanner`];
//! * `cosmos/`: the Cosmos node (spec §4.6) and network (spec §4.9) monitors, their REST and
//!   Tendermint clients, [`CosmosNodesPlanner`] and [`CosmosNetworkPlanner`];
//! * `substrate/`: the Substrate node (spec §4.7) and network (spec §4.10) monitors straight from
//!   the node over websocket JSON-RPC ([`WsPool`], one shared connection per node URL), runtime
//!   metadata read at run time ([`Metadata`]), [`SubstrateNodesPlanner`] and
//!   [`SubstrateNetworkPlanner`].
//!
//! Shared layers: `settings` ([`StrategySettings`], built by the binaries; the library reads no
//! env), `http` ([`Http`]: timeout, size-capped body, PANIC's transport error classes),
//! `prometheus` (Prometheus text parsing and PANIC's metric query), `plan_util` (what the planners
//! share: the section loop, monitorables, and the spec builder that derives each fingerprint from
//! the planner's typed config), and `testing` (feature `testing`: a local HTTP server for
//! strategy tests). Every module is private: the names below are the whole public surface.
//!
//! # A strategy tested alone
//!
//! A strategy needs neither a bus nor the manager: give it a config and an [`Http`] handle, run
//! one [`round`](monitor_core::Monitor::round) and look at what it would publish. Here a
//! `testing::TestServer` replays the shared node_exporter fixture to a [`SystemMonitor`]:
//!
//! ```
//! # #[cfg(feature = "testing")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use monitor_core::{Monitor, PeriodGroup, RawDataKey};
//! use monitor_strategies::testing::{Reply, TestServer};
//! use monitor_strategies::{StrategySettings, SystemConfig, SystemMonitor, Target};
//!
//! let scrape = std::fs::read_to_string(concat!(
//!     env!("CARGO_MANIFEST_DIR"),
//!     "/../../shared/fixtures/node_exporter/metrics.txt"
//! ))
//! .unwrap();
//! let server = TestServer::start().await.unwrap();
//! server.route("/metrics", Reply::ok(scrape));
//!
//! let settings = StrategySettings::default();
//! let http = settings.http(Target::Monitored, PeriodGroup::System).unwrap();
//! let config = SystemConfig {
//!     system_id: "system_1".to_owned(),
//!     parent_id: "GENERAL".to_owned(),
//!     system_name: "validator_host".to_owned(),
//!     exporter_url: server.url("/metrics"),
//! };
//! let mut monitor = SystemMonitor::new(config, http);
//!
//! let publications = monitor.round().await.unwrap();
//! assert_eq!(publications.len(), 1);
//! assert_eq!(publications[0].routing_key, RawDataKey::System);
//! let result = &publications[0].body["result"];
//! let meta = &result["meta_data"];
//! assert_eq!(meta["monitor_name"], "System monitor (validator_host)");
//! assert_eq!(meta["system_id"], "system_1");
//! assert_eq!(meta["system_parent_id"], "GENERAL");
//! assert_eq!(result["data"]["process_cpu_seconds_total"].as_f64(), Some(2.67));
//! assert_eq!(result["data"]["process_memory_usage"].as_f64(), Some(8.4));
//! # }
//! # #[cfg(not(feature = "testing"))]
//! # fn main() {}
//! ```

mod chainlink;
mod cosmos;
mod dockerhub;
mod evm;
/// Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`); not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod github;
mod http;
mod plan_util;
mod prometheus;
mod settings;
mod substrate;
mod system;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::sync::Arc;

use monitor_core::Planner;

pub use chainlink::abi::checksum;
pub use chainlink::contracts::{ChainlinkContractsConfig, ChainlinkContractsMonitor};
pub use chainlink::node::{ChainlinkNodeConfig, ChainlinkNodeMonitor, CHAINLINK_METRICS};
pub use chainlink::planner::{ChainlinkContractsPlanner, ChainlinkNodesPlanner};
pub use cosmos::network::CosmosNetworkMonitor;
pub use cosmos::node::{CosmosNodeMonitor, PROMETHEUS_METRICS as COSMOS_PROMETHEUS_METRICS};
pub use cosmos::planner::{
    network_data_sources, node_data_sources, parse_nodes, CosmosNetworkPlanner, CosmosNodesPlanner,
};
pub use cosmos::rest::{RestCall, SdkGeneration};
pub use cosmos::{CosmosDataSource, CosmosNodeConfig, CosmosRestSource};
pub use dockerhub::monitor::{tags_url, DockerHubMonitor, DockerHubRepoConfig};
pub use dockerhub::planner::DockerHubPlanner;
pub use evm::monitor::{EvmNodeConfig, EvmNodeMonitor};
pub use evm::planner::EvmNodesPlanner;
pub use evm::rpc::{hex_bytes, parse_hex_bytes, JsonRpc, RpcError};
pub use github::monitor::{releases_url, GithubMonitor, GithubRepoConfig};
pub use github::planner::GithubPlanner;
pub use github::rate_limit::RateBudget;
pub use http::{Http, HttpError, HttpErrorKind, HttpResponse, KeptConnection};
pub use prometheus::{
    parse as parse_prometheus, query as query_prometheus, query_text as query_prometheus_text,
    Found as PrometheusFound, LabelSet as PrometheusLabelSet, LabelSets as PrometheusLabelSets,
    LimitError as PrometheusLimitError, Limits as PrometheusLimits, Metric as PrometheusMetric,
    MetricValue, MetricsData, QueryError as PrometheusQueryError, Requirement,
    Scratch as PrometheusScratch, TextQueryError as PrometheusTextError, DEFAULT_MAX_LABEL_BYTES,
    DEFAULT_MAX_SERIES_PER_METRIC,
};
pub use settings::{
    ChainlinkSettings, ClientBuildError, ConnectionLimits, DockerHubSettings, EvmSettings,
    GithubSettings, GithubToken, StrategySettings, SubstrateSettings, Target, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_HELD, DEFAULT_MAX_IDLE_PER_HOST, DEFAULT_MAX_KEPT_HOSTS, MAX_REDIRECTS,
};
pub use substrate::chain::{BlockView, ChainError, NodeClient};
pub use substrate::metadata::{ss58_decode, ss58_encode, DValue, DecodeError, KeyArg, Metadata};
pub use substrate::network::SubstrateNetworkMonitor;
pub use substrate::node::SubstrateNodeMonitor;
pub use substrate::planner::{
    parse_substrate_nodes, substrate_network_data_sources, substrate_node_data_sources,
    SubstrateNetworkPlanner, SubstrateNodesPlanner,
};
pub use substrate::rpc::{WsConfig, WsError, WsPool, WsRpc};
pub use substrate::{SubstrateDataSource, SubstrateNodeConfig};
pub use system::monitor::{system_figures, SystemConfig, SystemMonitor, SYSTEM_METRICS};
pub use system::planner::SystemsPlanner;

/// Every planner, one per monitor type, sharing `settings` (and so their HTTP connection pools and
/// the GitHub rate budget). Adding a monitor type means adding its planner here; the manager does
/// not change.
pub fn registry(settings: StrategySettings) -> Vec<Arc<dyn Planner>> {
    let settings = Arc::new(settings);
    vec![
        Arc::new(SystemsPlanner::new(Arc::clone(&settings))),
        Arc::new(GithubPlanner::new(Arc::clone(&settings))),
        Arc::new(DockerHubPlanner::new(Arc::clone(&settings))),
        Arc::new(ChainlinkNodesPlanner::new(Arc::clone(&settings))),
        Arc::new(EvmNodesPlanner::new(Arc::clone(&settings))),
        Arc::new(ChainlinkContractsPlanner::new(Arc::clone(&settings))),
        Arc::new(CosmosNodesPlanner::new(Arc::clone(&settings))),
        Arc::new(CosmosNetworkPlanner::new(Arc::clone(&settings))),
        Arc::new(SubstrateNodesPlanner::new(Arc::clone(&settings))),
        Arc::new(SubstrateNetworkPlanner::new(Arc::clone(&settings))),
    ]
}
