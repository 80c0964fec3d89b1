//! The one-pass Prometheus query the monitors run (`query_prometheus_text`, with its `Limits`
//! and a scratch kept across inputs as a monitor keeps it across rounds): byte 0 picks the
//! limits (bit 0 clear: the defaults; set: tiny ones, bits 3-5 the label sets per metric (1-8),
//! bits 6-7 the label bytes (16-1024), so the bounds are reached) and, bits 1-2, the request
//! (PANIC's system metrics strict or optional, or names taken from the text, optional, with and
//! without `_total`, the first one strict); the rest is the body. Asserts the equivalence its doc states: unless a bound is
//! reached, the answer and the error are those of `parse_prometheus` + `query_prometheus`.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use monitor_strategies::{PrometheusLimits, PrometheusScratch, Requirement, SYSTEM_METRICS};

thread_local! {
    static SCRATCH: RefCell<PrometheusScratch> = RefCell::new(PrometheusScratch::new());
}

fuzz_target!(|data: &[u8]| {
    let [selector, body @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let limits = if selector & 1 == 0 {
        PrometheusLimits::default()
    } else {
        PrometheusLimits {
            max_series_per_metric: usize::from(1 + (selector >> 3 & 7)),
            max_label_bytes: 16 << (2 * (selector >> 6)),
        }
    };
    // Names from the text: the first word of a few sample lines, and each without `_total`.
    let mut names: Vec<&str> = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .take(8)
    {
        if let Some(name) = line
            .trim()
            .split(['{', ' ', '\t'])
            .next()
            .filter(|n| !n.is_empty())
        {
            names.push(name);
            if let Some(stem) = name.strip_suffix("_total") {
                names.push(stem);
            }
        }
    }
    let requested: Vec<(&str, Requirement)> = match selector >> 1 & 3 {
        0 => SYSTEM_METRICS
            .iter()
            .map(|m| (*m, Requirement::Strict))
            .collect(),
        1 => SYSTEM_METRICS
            .iter()
            .map(|m| (*m, Requirement::Optional))
            .collect(),
        2 => names.iter().map(|n| (*n, Requirement::Optional)).collect(),
        _ => names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    *n,
                    if i == 0 {
                        Requirement::Strict
                    } else {
                        Requirement::Optional
                    },
                )
            })
            .collect(),
    };
    SCRATCH.with(|scratch| {
        monitor_strategies::fuzzing::prometheus_text(
            text,
            &requested,
            &limits,
            &mut scratch.borrow_mut(),
        );
    });
});
