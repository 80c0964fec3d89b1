//! The Cosmos node and network monitors and their planners.
//!
//! Local HTTP servers play Cosmos nodes ([`common::FakeNode`]) from the shared fixtures
//! (`shared/fixtures/{tendermint,cosmos_rest}`, one consistent scenario at height H = 12840052),
//! for each SDK generation (0.39, 0.40–0.45, 0.46–0.50) and each Tendermint event format (0.34
//! base64 `begin_block_events`, 0.37 plain, 0.38 `finalize_block_events`); bodies the fixtures
//! lack are derived from them following the documented schemas.

pub(crate) mod common;
mod network;
mod node;
mod planner;
