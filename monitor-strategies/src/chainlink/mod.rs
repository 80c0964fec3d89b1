//! Chainlink: the node monitor (spec §4.5), the contracts monitor (spec §4.8), the ABI of the
//! contracts it reads, and the planners of both (and of EVM node monitors, spec §1.6).
//!
//! * [`node`]: `node.chainlink`, Prometheus metrics with fail-over across the node's URLs;
//! * [`contracts`]: `contracts.chainlink`, one monitor per chain reading price-feed contracts;
//! * [`abi`]: the contract interfaces (alloy's `sol!`), encoded and decoded by alloy;
//! * [`planner`]: `chains.chainlink.*.nodes_config` and `chains.*.*.evm_nodes_config`.

pub mod abi;
pub mod contracts;
pub mod node;
pub mod planner;

pub use contracts::{ChainlinkContractsConfig, ChainlinkContractsMonitor};
pub use node::{ChainlinkNodeConfig, ChainlinkNodeMonitor};
pub use planner::{ChainlinkContractsPlanner, ChainlinkNodesPlanner, EvmNodesPlanner};
