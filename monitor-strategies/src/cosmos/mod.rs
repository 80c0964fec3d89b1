//! The Cosmos node and Cosmos network monitors (spec §4.6, §4.9; PANIC's `monitors/cosmos.py`,
//! `monitors/node/cosmos.py`, `monitors/network/cosmos.py`, `api_wrappers/cosmos.py`) and their
//! planners (spec §1.6).
//!
//! * [`rest`]: Cosmos REST calls with PANIC's checks, for three SDK generations, and the per-server
//!   memory of which generation answered ([`rest::SdkMemory`]);
//! * [`tendermint`]: Tendermint RPC / CometBFT calls with PANIC's checks, slash events in every
//!   encoding (base64 or plain attributes, `begin_block_events` or `finalize_block_events`), the
//!   last-height rules;
//! * [`node`]: [`CosmosNodeMonitor`](node::CosmosNodeMonitor) (`node.cosmos`): one body per round with the three sources
//!   `prometheus`, `cosmos_rest`, `tendermint_rpc`;
//! * [`network`]: [`CosmosNetworkMonitor`](network::CosmosNetworkMonitor) (`network.cosmos`): governance proposals;
//! * [`planner`]: the node and network planners for
//!   `chains.cosmos.*.nodes_config`.
//!
//! # Departures from PANIC (documented quirks fixed)
//!
//! * PANIC pins two REST "versions" (v0.39.2 and v0.42.6) and broke on SDK 0.46 (its issue #382).
//!   Here three generations are supported ([`rest::SdkGeneration`]) and probed per server and per
//!   call, newest first, remembering the one that answered for the next rounds.
//! * When the node's consensus address is empty, PANIC leaks `consensus_hex_address` into the
//!   `tendermint_rpc` data. It never appears here.
//! * A Prometheus body that is not Prometheus text is a 5005 error envelope for that source (PANIC
//!   aborted the whole round, losing the other two sources).
//! * SDK 0.39 proposal statuses written in CamelCase (`VotingPeriod`) map to their status
//!   (PANIC lower-cased them and compared with `voting_period`, giving `invalid`).
//! * Gov v1 proposals (SDK ≥ 0.46) are normalised to the v1beta1 shape PANIC's consumers read
//!   (`final_tally_result` keys `yes`, `abstain`, `no`, `no_with_veto`).

pub(crate) mod network;
pub(crate) mod node;
pub(crate) mod planner;
pub(crate) mod rest;
pub(crate) mod tendermint;

use crate::http::HttpError;

/// One Cosmos node section of a `nodes_config` message (the fields the Node manager reads, spec
/// §3.3 "Node MM cosmos").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CosmosNodeConfig {
    /// `id`
    pub node_id: String,
    /// `parent_id` (the chain id)
    pub parent_id: String,
    /// `name`
    pub node_name: String,
    /// `monitor_node`
    pub monitor_node: bool,
    /// `monitor_prometheus`
    pub monitor_prometheus: bool,
    /// `prometheus_url`, the full URL including `/metrics`.
    pub prometheus_url: String,
    /// `monitor_cosmos_rest`
    pub monitor_cosmos_rest: bool,
    /// `cosmos_rest_url`, e.g. `https://IP:1317`.
    pub cosmos_rest_url: String,
    /// `monitor_tendermint_rpc`
    pub monitor_tendermint_rpc: bool,
    /// `tendermint_rpc_url`, e.g. `https://IP:26657`.
    pub tendermint_rpc_url: String,
    /// `is_validator`
    pub is_validator: bool,
    /// `is_archive_node`
    pub is_archive_node: bool,
    /// `use_as_data_source`
    pub use_as_data_source: bool,
    /// `operator_address` (the `…valoper1…` address)
    pub operator_address: String,
}

/// What the Cosmos node monitor reads of a data source: a change elsewhere in the source's section
/// (its Prometheus URL, its own `monitor_node` …) does not restart the monitors it serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CosmosDataSource {
    /// `id`
    pub node_id: String,
    /// `name`
    pub node_name: String,
    /// `cosmos_rest_url`
    pub cosmos_rest_url: String,
    /// `tendermint_rpc_url`
    pub tendermint_rpc_url: String,
    /// `is_archive_node`
    pub is_archive_node: bool,
    /// `is_validator`
    pub is_validator: bool,
}

impl From<&CosmosNodeConfig> for CosmosDataSource {
    fn from(n: &CosmosNodeConfig) -> Self {
        CosmosDataSource {
            node_id: n.node_id.clone(),
            node_name: n.node_name.clone(),
            cosmos_rest_url: n.cosmos_rest_url.clone(),
            tendermint_rpc_url: n.tendermint_rpc_url.clone(),
            is_archive_node: n.is_archive_node,
            is_validator: n.is_validator,
        }
    }
}

impl From<CosmosNodeConfig> for CosmosDataSource {
    fn from(n: CosmosNodeConfig) -> Self {
        CosmosDataSource::from(&n)
    }
}

/// What the Cosmos network monitor reads of a data source: it asks only REST, and names the
/// source in its messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CosmosRestSource {
    /// `name`
    pub node_name: String,
    /// `cosmos_rest_url`
    pub cosmos_rest_url: String,
}

impl From<&CosmosNodeConfig> for CosmosRestSource {
    fn from(n: &CosmosNodeConfig) -> Self {
        CosmosRestSource {
            node_name: n.node_name.clone(),
            cosmos_rest_url: n.cosmos_rest_url.clone(),
        }
    }
}

impl From<CosmosNodeConfig> for CosmosRestSource {
    fn from(n: CosmosNodeConfig) -> Self {
        CosmosRestSource::from(&n)
    }
}

/// A data source the REST source selection can try: its name (for messages) and REST URL.
pub(crate) trait RestEndpoint {
    /// `name`
    fn source_name(&self) -> &str;
    /// `cosmos_rest_url`
    fn rest_url(&self) -> &str;
}

impl RestEndpoint for CosmosDataSource {
    fn source_name(&self) -> &str {
        &self.node_name
    }
    fn rest_url(&self) -> &str {
        &self.cosmos_rest_url
    }
}

impl RestEndpoint for CosmosRestSource {
    fn source_name(&self) -> &str {
        &self.node_name
    }
    fn rest_url(&self) -> &str {
        &self.cosmos_rest_url
    }
}

/// A failed call to a REST server or a Tendermint RPC endpoint, before the caller maps it to a
/// PANIC code (which depends on whether the monitored node or a data source was asked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CallError {
    /// The transport failed (down, unreadable, bad URL).
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The server does not have the route (HTTP 404/501, gRPC-gateway "Not Implemented"): PANIC's
    /// 5022 (REST) / 5028 (Tendermint).
    #[error("incompatible: {0}")]
    Incompatible(String),
    /// The server answered with an API error: PANIC's 5024 (REST) / 5030 (Tendermint).
    #[error("api error: {0}")]
    Api(String),
    /// The body does not have the expected structure: PANIC's 5025.
    #[error("unexpected structure: {0}")]
    BadJson(String),
}

impl CallError {
    /// The failure's own text, without the variant prefix (what goes into PANIC's messages).
    pub(crate) fn message(&self) -> String {
        match self {
            CallError::Http(e) => e.to_string(),
            CallError::Incompatible(m) | CallError::Api(m) | CallError::BadJson(m) => m.clone(),
        }
    }

    /// Whether PANIC treats this as a version incompatibility (5022, 5025, 5028): another SDK
    /// generation is tried, and when none fits the "could not be obtained" error is reported.
    pub(crate) fn is_incompatibility(&self) -> bool {
        matches!(self, CallError::Incompatible(_) | CallError::BadJson(_))
    }
}

/// `base` without trailing slashes, followed by `path`.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!("{}{}", base.trim().trim_end_matches('/'), path)
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
pub(crate) fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            join_url("http://h:1317/", "/syncing"),
            "http://h:1317/syncing"
        );
        assert_eq!(
            join_url("http://h:1317", "/syncing"),
            "http://h:1317/syncing"
        );
        assert_eq!(encode_query_value("AAAAAAAAAE0="), "AAAAAAAAAE0%3D");
        assert_eq!(encode_query_value("a+b/c"), "a%2Bb%2Fc");
    }
}
