//! What the planners share: the loop over a message's sections, the monitorable entry of a
//! monitor, the spec itself ([`monitor_spec`], whose fingerprint is derived from the typed config
//! its build reads), and the HTTP clients its build asks for (a client that cannot be built is
//! PANIC's 5014-style constructor failure, [`ErrorCode::ConnectionNotInitialised`]).

use std::hash::Hash;
use std::sync::Arc;

use monitor_core::config::{ConfigError, ConfigMessage};
use monitor_core::envelope::MonitorableSource;
use monitor_core::plan::{fingerprint, plan_by_section, BuildFn, Monitorable, SectionPlanner};
use monitor_core::{
    ConfigKey, ErrorCode, Monitor, MonitorSpec, MonitorableType, PanicError, PeriodGroup, Plan,
    Planner, Section,
};

use crate::http::Http;
use crate::settings::{ClientBuildError, StrategySettings, Target};

/// The sections of a message that `parse` accepts, as (section id, config) in message order, and
/// the errors of the others (the node sections of a chain's `nodes_config`).
pub(crate) fn parse_sections<C>(
    message: &ConfigMessage,
    parse: impl Fn(&Section) -> Result<C, ConfigError>,
) -> (Vec<(String, C)>, Vec<ConfigError>) {
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    for section in &message.sections {
        match parse(section) {
            Ok(config) => parsed.push((section.id.clone(), config)),
            Err(e) => errors.push(e),
        }
    }
    (parsed, errors)
}

/// A node section's two fields that PANIC's data-source order reads (spec §1.6).
pub(crate) trait DataSourceRole {
    /// `use_as_data_source`.
    fn use_as_data_source(&self) -> bool;
    /// `is_validator`.
    fn is_validator(&self) -> bool;
}

/// PANIC's data sources (spec §1.6), in preference order: the nodes with `use_as_data_source`
/// other than `own`'s section, non-validators first then validators (each in message order), then
/// `own` itself last when given (a node monitor; a network monitor has no "self").
pub(crate) fn data_sources<'a, C: DataSourceRole>(
    nodes: &'a [(String, C)],
    own: Option<(&str, &'a C)>,
) -> Vec<&'a C> {
    let own_id = own.map(|(id, _)| id);
    let others = || {
        nodes
            .iter()
            .filter(move |(id, n)| Some(id.as_str()) != own_id && n.use_as_data_source())
            .map(|(_, n)| n)
    };
    others()
        .filter(|n| !n.is_validator())
        .chain(others().filter(|n| n.is_validator()))
        .chain(own.map(|(_, n)| n))
        .collect()
}

/// The plan of a section-local planner (one monitor at most per section, see
/// [`Planner::section_local`]): nothing if `planner` does not accept the message's key, else
/// [`SectionPlanner::plan_section`] on every section in message order, its `Ok(Some(spec))`
/// planned, its `Ok(None)` (section not monitored) skipped and its errors collected in the same
/// order.
pub(crate) fn plan_sections<P: Planner + SectionPlanner>(
    planner: &P,
    message: &ConfigMessage,
) -> Plan {
    if !planner.accepts(&message.key) {
        return Plan::default();
    }
    plan_by_section(planner, message)
}

/// Maps a client build failure to the monitor's constructor error
/// (`ConnectionNotInitialised`, `"<component>: <error>"`).
pub(crate) fn connection_error(component: &str) -> impl Fn(ClientBuildError) -> PanicError + '_ {
    move |e| {
        PanicError::new(
            ErrorCode::ConnectionNotInitialised,
            format!("{component}: {e}"),
        )
    }
}

/// The HTTP client of `target` for `group`, for the build of `component`'s monitor.
pub(crate) fn build_http(
    settings: &StrategySettings,
    target: Target,
    group: PeriodGroup,
    component: &str,
) -> Result<Http, PanicError> {
    settings
        .http(target, group)
        .map_err(connection_error(component))
}

/// The monitorable entry of a monitor planned from a message with `key`: listed under the key's
/// base chain, in the chain `chain_id` (the section's `parent_id`) named by the key's sub chain
/// (`general` for a general key).
pub(crate) fn monitorable(
    key: &ConfigKey,
    monitorable_type: MonitorableType,
    chain_id: &str,
    source_id: &str,
    source_name: impl Into<String>,
) -> Monitorable {
    Monitorable {
        base_chain: key.base_chain.clone(),
        monitorable_type,
        source: MonitorableSource {
            chain_id: chain_id.to_owned(),
            // A general key's sub chain is `general`.
            chain_name: key.sub_chain.clone(),
            source_id: source_id.to_owned(),
            source_name: source_name.into(),
        },
    }
}

/// The spec of monitor `id` of `planner`, named `component`, built from `config`.
///
/// The fingerprint is derived here from (`planner`, `id`, `config`), and `build` is given only
/// `config` (and the component name, for its error messages): a build cannot read anything the
/// fingerprint does not cover, so the monitor restarts exactly when what it is built from changes.
/// What is the same for every message (the planner's [`StrategySettings`], the GitHub budget) is
/// captured by `build`, not fingerprinted. The built monitor is boxed.
pub(crate) fn monitor_spec<C, M, F>(
    planner: &'static str,
    id: String,
    component: String,
    group: PeriodGroup,
    monitorables: Vec<Monitorable>,
    config: C,
    build: F,
) -> MonitorSpec
where
    C: Hash + Send + Sync + 'static,
    M: Monitor + 'static,
    F: Fn(&C, &str) -> Result<M, PanicError> + Send + Sync + 'static,
{
    let fingerprint = fingerprint(&(planner, &id, &config));
    let build_component = component.clone();
    let build: BuildFn =
        Arc::new(move || Ok(Box::new(build(&config, &build_component)?) as Box<dyn Monitor>));
    MonitorSpec {
        id,
        component_name: component,
        group,
        monitorables,
        fingerprint,
        build,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitorables_name_the_sub_chain() {
        let general = ConfigKey::parse("general.systems_config").unwrap();
        let m = monitorable(&general, MonitorableType::Systems, "p", "s", "name");
        assert_eq!(m.base_chain, "general");
        assert_eq!(m.monitorable_type, MonitorableType::Systems);
        assert_eq!(
            m.source,
            MonitorableSource {
                chain_id: "p".to_owned(),
                chain_name: "general".to_owned(),
                source_id: "s".to_owned(),
                source_name: "name".to_owned(),
            }
        );
        let cosmos = ConfigKey::parse("chains.cosmos.regen.nodes_config").unwrap();
        let m = monitorable(&cosmos, MonitorableType::Nodes, "p", "s", "name");
        assert_eq!(m.base_chain, "cosmos");
        assert_eq!(m.source.chain_name, "regen");
    }

    #[test]
    fn client_errors_name_the_component() {
        let e = connection_error("System monitor (a)")(ClientBuildError("no TLS".to_owned()));
        assert_eq!(e.code, ErrorCode::ConnectionNotInitialised);
        assert!(e.message.starts_with("System monitor (a): "), "{e:?}");
        assert!(e.message.contains("no TLS"), "{e:?}");
    }
}
