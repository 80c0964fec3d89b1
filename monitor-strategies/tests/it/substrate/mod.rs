//! The Substrate monitors against an in-test websocket JSON-RPC server replaying the fixtures of
//! `fixtures/substrate/` (format: `scripts/substrate-fixtures/README.md`).

mod metadata;
mod network;
mod node;
mod planner;
mod rpc;

// The replay server and the fixtures, shared with the binaries' tests.
pub(crate) use monitor_strategies::testing::substrate::{fixture, metadata_hex, Replay};
