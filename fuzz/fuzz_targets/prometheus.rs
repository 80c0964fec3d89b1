//! A Prometheus text body (node_exporter, Chainlink, Tendermint): parsed as the system, Chainlink
//! and Cosmos monitors parse it, then queried for PANIC's system metrics (strict) and for every
//! metric name the body itself mentions (optional).
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor_strategies::{parse_prometheus, query_prometheus, Requirement, SYSTEM_METRICS};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(samples) = parse_prometheus(text) else {
        return;
    };
    let strict: Vec<(&str, Requirement)> = SYSTEM_METRICS
        .iter()
        .map(|m| (*m, Requirement::Strict))
        .collect();
    let _ = query_prometheus(&samples, &strict).map(|d| format!("{d:?}"));
    // Optional queries of names taken from the text (the first word of a few lines).
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split(|c: char| c == '{' || c == ' ').next())
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .take(8)
        .collect();
    let optional: Vec<(&str, Requirement)> =
        names.iter().map(|n| (*n, Requirement::Optional)).collect();
    let _ = query_prometheus(&samples, &optional).map(|d| format!("{d:?}"));
});
