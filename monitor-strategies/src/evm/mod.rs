//! EVM nodes: the JSON-RPC client ([`rpc`], shared with the Chainlink contracts monitor), the EVM
//! node monitor ([`monitor`], spec §4.4) and its planner ([`planner`], `chains.*.*.evm_nodes_config`).

pub(crate) mod monitor;
pub(crate) mod planner;
pub(crate) mod rpc;
