//! Shared pieces of the fuzz targets: the input framing (a selector or a first line, then the
//! payload) and "plan a config message with every real planner".

use std::sync::{Arc, OnceLock};

use monitor_core::{ConfigMessage, Planner};
use monitor_strategies::StrategySettings;

/// The HTTP statuses a target may answer with, picked by one input byte.
pub const STATUSES: [u16; 8] = [200, 200, 404, 500, 501, 429, 302, 204];

/// The status selected by `b`.
pub fn status(b: u8) -> u16 {
    STATUSES[usize::from(b) % STATUSES.len()]
}

/// The first line of `data` (without the `\n`) and the rest.
pub fn first_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Every planner of the product (`monitor_strategies::registry`), built once.
pub fn planners() -> &'static [Arc<dyn Planner>] {
    static PLANNERS: OnceLock<Vec<Arc<dyn Planner>>> = OnceLock::new();
    PLANNERS.get_or_init(|| monitor_strategies::registry(StrategySettings::default()))
}

/// Plan `message` with every planner that accepts its key, as the manager does, and build every
/// spec's monitor (outside a tokio runtime: a build that needs one fails cleanly, it must not
/// panic). Checks what the manager relies on: a fingerprint is a function of the config (planning
/// twice gives the same ids and fingerprints, in any order).
pub fn plan_all(message: &ConfigMessage) {
    for planner in planners() {
        if !planner.accepts(&message.key) {
            continue;
        }
        let _ = planner.monitorable_types(&message.key);
        let plan = planner.plan(message);
        for e in &plan.errors {
            let _ = e.to_string();
        }
        let again = planner.plan(message);
        let ids = |p: &monitor_core::Plan| -> Vec<(String, u64)> {
            let mut v: Vec<(String, u64)> = p
                .specs
                .iter()
                .map(|s| (s.id.clone(), s.fingerprint))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            ids(&plan),
            ids(&again),
            "planner {} is not deterministic",
            planner.name()
        );
        // The section-local contract: the plan is `plan_section` over the sections in order.
        if let Some(local) = planner.section_local() {
            let mut specs = Vec::new();
            let mut errors = Vec::new();
            for section in &message.sections {
                match local.plan_section(&message.key, section) {
                    Ok(Some(spec)) => specs.push((spec.id.clone(), spec.fingerprint)),
                    Ok(None) => {}
                    Err(e) => errors.push(e),
                }
            }
            let in_order: Vec<(String, u64)> = plan
                .specs
                .iter()
                .map(|s| (s.id.clone(), s.fingerprint))
                .collect();
            assert_eq!(
                in_order,
                specs,
                "planner {}: plan vs plan_section",
                planner.name()
            );
            assert_eq!(
                plan.errors,
                errors,
                "planner {}: plan vs plan_section",
                planner.name()
            );
        }
        for spec in &plan.specs {
            let _ = format!("{spec:?}");
            match (spec.build)() {
                Ok(monitor) => {
                    let _ = monitor.name().len();
                }
                Err(e) => {
                    let _ = format!("{e:?}");
                }
            }
        }
    }
}
