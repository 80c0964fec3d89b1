//! Systems (spec §4.1): the System monitor ([`monitor`], one node_exporter scrape per round) and
//! its planner ([`planner`], `systems_config` and the node sections that double as systems).

pub(crate) mod monitor;
pub(crate) mod planner;
