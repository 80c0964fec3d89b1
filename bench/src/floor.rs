//! `bench callgrind-round`: one system round in-process on a body from memory, repeated, for
//! callgrind's deterministic instruction counts (issue #14, "distance to the floor").
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='bench::floor::measured' \
//!     $CARGO_TARGET_DIR/release/bench callgrind-round --mode after --rounds 200
//! ```
//!
//! Only `measured` (all rounds) is counted; divide the total by `--rounds`. Modes:
//!
//! * `after`: what the monitor does now once the body is read ([`SystemMonitor::round_on_body`]:
//!   UTF-8 check, the one-pass query keeping the requested families, the ten figures, the
//!   envelope), then what the manager and the sink do with it: `serde_json::to_vec` of the
//!   envelope (`publish_round`) and the JSON line (`bins/src/sink.rs`, [`sink_line`]);
//! * `before`: the same through the two-step path the monitor used before (parse every sample,
//!   then query; [`monitor_strategies::system_figures`]) and the sink's previous line building
//!   (parse the body back into a `Value` and write it again, [`sink_line_reparsed`]);
//! * `floor`: read the body from memory and find the lines the monitor needs (each line found
//!   byte by byte, a prefix check against the 14 metric names), nothing else; `floor-words`: the
//!   same with the newlines searched eight bytes at a time; `floor-memchr`: with the newlines
//!   found by `memchr`, as the query now does;
//! * `chainlink`, `cosmos`: the Prometheus part of a Chainlink node round (its 10 metrics) or of a
//!   Cosmos node round's `prometheus` source (its 2 metrics) on the body (`--fixture`
//!   `chainlink/metrics.txt` or `tendermint/metrics.txt`): UTF-8 check, `query_text` with the
//!   scratch buffers kept across rounds, then `to_metrics_data`, as the two monitors do on every
//!   scrape.

use std::hint::black_box;

use monitor_core::envelope::{envelope, MetaData};
use monitor_strategies::{
    parse_prometheus, query_prometheus, query_prometheus_text, system_figures, PrometheusLimits,
    PrometheusScratch, Requirement, StrategySettings, SystemConfig, SystemMonitor, Target,
    CHAINLINK_METRICS, COSMOS_PROMETHEUS_METRICS, SYSTEM_METRICS,
};
use serde_json::Value;

use crate::BenchError;

/// Which work one round does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// The round as the monitor does it now.
    After,
    /// The round as the monitor did it before issue #14.
    Before,
    /// Find the wanted lines and nothing else.
    Floor,
    /// The same, the newlines searched eight bytes at a time.
    FloorWords,
    /// The same, the newlines found by `memchr` (as `query_text` does now).
    FloorMemchr,
    /// The Prometheus part of a Chainlink node round.
    Chainlink,
    /// The `prometheus` source of a Cosmos node round.
    Cosmos,
}

/// Runs `rounds` rounds of `mode` on `body`; prints a checksum line (so nothing is optimised
/// away, and so that two modes can be compared for the same output).
pub(crate) fn run(mode: Mode, body: &[u8], rounds: usize) -> Result<(), BenchError> {
    let settings = StrategySettings::default();
    let http = settings
        .http(Target::Monitored, monitor_core::PeriodGroup::System)
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let config = SystemConfig {
        system_id: "system_1".to_owned(),
        parent_id: "GENERAL".to_owned(),
        system_name: "validator_host".to_owned(),
        exporter_url: "http://127.0.0.1:9100/metrics".to_owned(),
    };
    let mut monitor = SystemMonitor::new(config.clone(), http);
    // One round outside the count: buffers reach their steady size.
    let mut out = Vec::new();
    // The Chainlink and Cosmos monitors keep their query buffers across rounds.
    let mut scratch = PrometheusScratch::new();
    one_round(mode, &mut monitor, &mut scratch, &config, body, &mut out)?;
    let first = out.clone();
    let total = measured(mode, &mut monitor, &mut scratch, &config, body, rounds)?;
    println!(
        "mode {mode:?}: {rounds} rounds, {total} bytes out, last line {} bytes",
        first.len()
    );
    if matches!(mode, Mode::After | Mode::Before) {
        // The line without its `time`, for comparing modes by eye.
        let text = String::from_utf8_lossy(&first);
        println!("{}", text.trim_end());
    }
    Ok(())
}

/// The counted part: `rounds` rounds.
#[inline(never)]
fn measured(
    mode: Mode,
    monitor: &mut SystemMonitor,
    scratch: &mut PrometheusScratch,
    config: &SystemConfig,
    body: &[u8],
    rounds: usize,
) -> Result<usize, BenchError> {
    let mut total = 0;
    let mut out = Vec::new();
    for _ in 0..rounds {
        out.clear();
        one_round(mode, monitor, scratch, config, black_box(body), &mut out)?;
        total += black_box(out.len());
    }
    Ok(total)
}

fn one_round(
    mode: Mode,
    monitor: &mut SystemMonitor,
    scratch: &mut PrometheusScratch,
    config: &SystemConfig,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), BenchError> {
    let setup = |e: String| BenchError::Setup(e);
    match mode {
        Mode::After => {
            let publications = monitor
                .round_on_body(body)
                .map_err(|e| setup(e.to_string()))?;
            for p in publications {
                let bytes = serde_json::to_vec(&p.body).map_err(|e| setup(e.to_string()))?;
                out.extend_from_slice(sink_line(p.routing_key.as_str(), &bytes).as_bytes());
            }
        }
        Mode::Before => {
            let text = std::str::from_utf8(body).map_err(|e| setup(e.to_string()))?;
            let samples = parse_prometheus(text).map_err(|e| setup(e.to_string()))?;
            let requested: Vec<(&str, Requirement)> = SYSTEM_METRICS
                .iter()
                .map(|m| (*m, Requirement::Strict))
                .collect();
            let data = query_prometheus(&samples, &requested).map_err(|e| setup(e.to_string()))?;
            let figures = system_figures(&data).map_err(|e| setup(e.to_string()))?;
            let name = format!("System monitor ({})", config.system_name);
            let meta = MetaData::new(&name)
                .with("system_name", config.system_name.as_str())
                .with("system_id", config.system_id.as_str())
                .with("system_parent_id", config.parent_id.as_str())
                .timed();
            let value = envelope(meta, Ok(figures));
            let bytes = serde_json::to_vec(&value).map_err(|e| setup(e.to_string()))?;
            out.extend_from_slice(sink_line_reparsed("system", &bytes).as_bytes());
        }
        Mode::Floor => {
            let mut found = 0usize;
            let mut start = 0;
            while let Some(len) = memchr_newline(body.get(start..).unwrap_or(&[])) {
                let line = body.get(start..start + len).unwrap_or(&[]);
                if SYSTEM_METRICS
                    .iter()
                    .any(|m| line.starts_with(m.as_bytes()))
                {
                    found += line.len();
                }
                start += len + 1;
            }
            out.extend_from_slice(&found.to_le_bytes());
        }
        Mode::FloorWords | Mode::FloorMemchr => {
            let mut found = 0usize;
            let mut start = 0;
            while start <= body.len() {
                let end = if mode == Mode::FloorWords {
                    newline_by_words(body, start)
                } else {
                    let rest = body.get(start..).unwrap_or(&[]);
                    start + memchr::memchr(b'\n', rest).unwrap_or(rest.len())
                };
                let line = body.get(start..end).unwrap_or(&[]);
                if SYSTEM_METRICS
                    .iter()
                    .any(|m| line.starts_with(m.as_bytes()))
                {
                    found += line.len();
                }
                start = end + 1;
            }
            out.extend_from_slice(&found.to_le_bytes());
        }
        Mode::Chainlink | Mode::Cosmos => {
            let requested: &[(&str, Requirement)] = if mode == Mode::Chainlink {
                &CHAINLINK_METRICS
            } else {
                &COSMOS_PROMETHEUS_METRICS
            };
            let text = std::str::from_utf8(body).map_err(|e| setup(e.to_string()))?;
            let found =
                query_prometheus_text(text, requested, &PrometheusLimits::default(), scratch)
                    .map_err(|e| setup(e.to_string()))?;
            let data = black_box(found.to_metrics_data());
            let present = data.0.iter().filter(|(_, v)| v.is_some()).count();
            out.extend_from_slice(&present.to_le_bytes());
        }
    }
    Ok(())
}

/// The position of the next `\n` (what `memchr` does; std's own search, which is the same
/// word-at-a-time scan).
fn memchr_newline(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'\n')
}

/// The next newline at or after `from` (or the end), eight bytes at a time: the exact per-byte
/// zero test of `x = word ^ 0x0a…0a` (a copy of `monitor_strategies`'s private `find_first`).
fn newline_by_words(bytes: &[u8], from: usize) -> usize {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let mut i = from;
    while let Some(word) = bytes
        .get(i..i + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
    {
        let x = u64::from_le_bytes(word) ^ 0x0a0a_0a0a_0a0a_0a0a;
        let m = !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7);
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let rest = bytes.get(i..).unwrap_or(&[]);
    i + rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len())
}

/// The sink's line as `bins/src/sink.rs` builds it now (a copy: the bench does not depend on
/// `bins`): a compact JSON body is checked and copied, anything else re-written.
pub(crate) fn sink_line(routing_key: &str, body: &[u8]) -> String {
    let Some(text) = is_compact_json(body) else {
        return sink_line_reparsed(routing_key, body);
    };
    let mut s = String::with_capacity(text.len() + routing_key.len() + 32);
    s.push_str("{\"routing_key\":");
    s.push_str(&Value::from(routing_key).to_string());
    s.push_str(",\"body\":");
    s.push_str(text);
    s.push_str("}\n");
    s
}

/// `bins::sink::is_compact_json`.
fn is_compact_json(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                if b == b'u' || b == b'/' {
                    return None;
                }
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
            return None;
        }
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    Some(text)
}

/// The sink's line as `bins/src/sink.rs` built it before issue #14: the body parsed back into a
/// `Value` and written again.
pub(crate) fn sink_line_reparsed(routing_key: &str, body: &[u8]) -> String {
    let body = serde_json::from_slice::<Value>(body)
        .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(body).into_owned()));
    let mut obj = serde_json::Map::new();
    obj.insert("routing_key".to_owned(), Value::from(routing_key));
    obj.insert("body".to_owned(), body);
    let mut s = Value::Object(obj).to_string();
    s.push('\n');
    s
}
