//! GitHub releases (spec §4.2): the monitor ([`monitor`]), its planner ([`planner`]) and the
//! request budget every GitHub monitor shares ([`rate_limit`]).

pub(crate) mod monitor;
pub(crate) mod planner;
pub(crate) mod rate_limit;
