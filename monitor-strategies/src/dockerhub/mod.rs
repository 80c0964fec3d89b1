//! DockerHub tags (spec §4.3): the monitor ([`monitor`]) and its planner ([`planner`]).

pub(crate) mod monitor;
pub(crate) mod planner;
