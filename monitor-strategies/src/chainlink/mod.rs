//! Chainlink: the node monitor (spec §4.5), the contracts monitor (spec §4.8), the ABI of the
//! contracts it reads, and their planners.
//!
//! * [`node`]: `node.chainlink`, Prometheus metrics with fail-over across the node's URLs;
//! * [`contracts`]: `contracts.chainlink`, one monitor per chain reading price-feed contracts;
//! * [`abi`]: the contract interfaces (alloy's `sol!`), encoded and decoded by alloy;
//! * [`planner`]: `chains.chainlink.*.nodes_config` → node monitors and the contracts monitor.

pub(crate) mod abi;
pub(crate) mod contracts;
pub(crate) mod node;
pub(crate) mod planner;
