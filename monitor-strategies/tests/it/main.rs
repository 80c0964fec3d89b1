//! Integration tests of `monitor-strategies` (one test binary).

// Tests own what they spawn: each helper task or thread ends with its test.
#![allow(clippy::disallowed_methods)]
// Unwrap and expect are fine in tests (helpers included, which clippy's test exemption misses).
#![allow(clippy::unwrap_used, clippy::expect_used)]

// What the modules share: fixtures, envelope checks.
mod common;
// The system strategy against the local test server replaying the node_exporter fixture, and
// every error path.
mod system_http;
// The system monitor's fetch on a connection it keeps between rounds (hyper, in its task).
mod system_kept;
// The system strategy against a real node_exporter (Debian's `prometheus-node-exporter`).
mod node_exporter;
// Bounds on what a system round keeps, and refused redirects in its envelope.
mod system_bounds;
// The systems planner.
mod planner;
// Redirects: same host and port only, a few hops, POSTs only through 307/308.
mod redirects;
// The Prometheus parser on random and truncated input.
mod prometheus_props;
// The one-pass query against parse + query (the oracle), and its bounds.
mod prometheus_scan;
// The GitHub strategy, its budget, token and planner.
mod github;
// GitHub and DockerHub configs through the real manager on the in-memory bus.
mod github_manager;
// The DockerHub strategy and planner.
mod dockerhub;
// The EVM node strategy and planner.
mod evm_node;
// The Chainlink node strategy and the Chainlink planners.
mod chainlink_node;
// The Chainlink contracts strategy against ganache and PANIC's mainnet fixtures.
mod chainlink_contracts;
// The Cosmos node and network strategies and planners.
mod cosmos;
// A Cosmos chain through the real manager on the in-memory bus.
mod cosmos_manager;
// Issue #16: every monitor type against every hostile target yields an envelope.
mod hostile;
// The Substrate node and network monitors against replayed nodes (fixtures/substrate).
mod substrate;

use std::time::Duration;

use monitor_core::PeriodGroup;
use monitor_strategies::{StrategySettings, SystemConfig, SystemMonitor, Target};

/// The node_exporter 1.0.1 scrape.
pub(crate) fn node_exporter_fixture() -> String {
    common::fixture("node_exporter/metrics.txt")
}

/// A system monitor for `url` with `settings`.
pub(crate) fn system_monitor(url: &str, settings: &StrategySettings) -> SystemMonitor {
    let http = settings
        .http(Target::Monitored, PeriodGroup::System)
        .unwrap();
    SystemMonitor::new(
        SystemConfig {
            system_id: "system_1".to_owned(),
            parent_id: "GENERAL".to_owned(),
            system_name: "validator_host".to_owned(),
            exporter_url: url.to_owned(),
        },
        http,
    )
}

/// Settings with a short timeout, for tests that wait on silent servers.
pub(crate) fn short_timeout() -> StrategySettings {
    StrategySettings::default().with_request_timeout(Duration::from_millis(300))
}
