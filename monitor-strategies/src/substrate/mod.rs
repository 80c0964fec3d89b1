//! The Substrate node and network monitors (spec §4.7, §4.10; `substrate.md`), straight from the
//! node over websocket JSON-RPC: no sidecar.
//!
//! * [`rpc`]: [`WsRpc`](rpc::WsRpc), JSON-RPC over one long-lived websocket per node URL, shared
//!   through a [`WsPool`](rpc::WsPool), reconnecting with backoff;
//! * [`metadata`]: runtime metadata V14/V15 (`frame-metadata`), storage keys from pallet and
//!   item names, SCALE decoding by type id to polkadot.js-shaped JSON, SS58;
//! * [`chain`]: a node's runtime as the monitors see it: metadata fetched at run time and again
//!   when `specVersion` changes, storage reads at a block;
//! * [`node`]: [`SubstrateNodeMonitor`](node::SubstrateNodeMonitor) (`node.substrate`);
//! * [`network`]: [`SubstrateNetworkMonitor`](network::SubstrateNetworkMonitor) (`network.substrate`);
//! * [`planner`]: the node and network planners of `chains.substrate.*.nodes_config`.

pub(crate) mod chain;
pub(crate) mod metadata;
pub(crate) mod network;
pub(crate) mod node;
pub(crate) mod planner;
pub(crate) mod rpc;

/// One Substrate node section of a `nodes_config` message (the fields PANIC's Node manager
/// reads, spec §3.3 "substrate").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubstrateNodeConfig {
    /// `id`
    pub node_id: String,
    /// `parent_id` (the chain id)
    pub parent_id: String,
    /// `name`
    pub node_name: String,
    /// `node_ws_url`, `ws://IP:9944` or `wss://…`
    pub node_ws_url: String,
    /// `monitor_node`
    pub monitor_node: bool,
    /// `is_validator`
    pub is_validator: bool,
    /// `is_archive_node`
    pub is_archive_node: bool,
    /// `use_as_data_source`
    pub use_as_data_source: bool,
    /// `stash_address` (SS58)
    pub stash_address: String,
}

/// What a Substrate monitor reads of a data source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubstrateDataSource {
    /// `name`
    pub node_name: String,
    /// `node_ws_url`
    pub node_ws_url: String,
    /// `is_archive_node`
    pub is_archive_node: bool,
}

impl From<&SubstrateNodeConfig> for SubstrateDataSource {
    fn from(n: &SubstrateNodeConfig) -> Self {
        SubstrateDataSource {
            node_name: n.node_name.clone(),
            node_ws_url: n.node_ws_url.clone(),
            is_archive_node: n.is_archive_node,
        }
    }
}
