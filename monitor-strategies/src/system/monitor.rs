//! The System monitor (spec §4.1, PANIC's `monitors/system.py`): one node_exporter `/metrics`
//! scrape per round, turned into PANIC's ten system figures.
//!
//! Outcomes of a round:
//! * success → `result` envelope on `system`;
//! * exporter unreachable or too slow → 5004, body unreadable → 5005, bad URL → 5009, a metric
//!   missing → 5003: `error` envelopes on `system`;
//! * a body that is not Prometheus text (or not UTF-8), a metric of the wrong shape, a division by
//!   zero → [`RoundError`], for which [`Monitor::failed_round`] publishes a 5005 (data reading)
//!   `error` envelope on `system`. PANIC published nothing here, so a garbage-serving exporter
//!   looked like a dead monitor (docs/DECISIONS.md).

use async_trait::async_trait;
use serde_json::{Map, Value};
use tracing::{debug, warn};

use monitor_core::envelope::{envelope, float, round2, MetaData};
use monitor_core::{Monitor, PanicError, Publication, RawDataKey, RoundError};

use crate::http::{Http, HttpErrorKind};
use crate::prometheus::{self, MetricValue, MetricsData, Requirement};

/// The metrics PANIC requests, all strict, in PANIC's order.
pub const SYSTEM_METRICS: [&str; 14] = [
    "process_cpu_seconds_total",
    "go_memstats_alloc_bytes",
    "go_memstats_alloc_bytes_total",
    "process_virtual_memory_bytes",
    "process_max_fds",
    "process_open_fds",
    "node_cpu_seconds_total",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_memory_MemTotal_bytes",
    "node_memory_MemAvailable_bytes",
    "node_network_transmit_bytes_total",
    "node_network_receive_bytes_total",
    "node_disk_io_time_seconds_total",
];

/// One system to monitor (PANIC's `SystemConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SystemConfig {
    /// `id`
    pub system_id: String,
    /// `parent_id`
    pub parent_id: String,
    /// `name`
    pub system_name: String,
    /// `exporter_url`, the full URL including `/metrics`.
    pub exporter_url: String,
}

/// PANIC's component name for a system: `System monitor (<name>)`.
pub(crate) fn component_name(system_name: &str) -> String {
    format!("System monitor ({system_name})")
}

/// The System monitor strategy.
#[derive(Debug)]
pub struct SystemMonitor {
    name: String,
    config: SystemConfig,
    http: Http,
}

impl SystemMonitor {
    /// A monitor for `config` using `http` (certificate verification off as PANIC, by default).
    pub fn new(config: SystemConfig, http: Http) -> Self {
        SystemMonitor {
            name: component_name(&config.system_name),
            config,
            http,
        }
    }

    /// The config.
    pub fn config(&self) -> &SystemConfig {
        &self.config
    }

    fn meta_data(&self) -> MetaData {
        MetaData::new(&self.name)
            .with("system_name", self.config.system_name.as_str())
            .with("system_id", self.config.system_id.as_str())
            .with("system_parent_id", self.config.parent_id.as_str())
            .timed()
    }

    /// Retrieval: `Ok(Ok(data))`, `Ok(Err(expected failure))` or `Err(processing error)`.
    async fn retrieve(&self) -> Result<Result<MetricsData, PanicError>, RoundError> {
        let url = &self.config.exporter_url;
        let response = match self.http.get(url).await {
            Ok(r) => r,
            Err(e) => {
                warn!(monitor = %self.name, url = %monitor_core::redact_url(url), error = %e, "error when retrieving data");
                return Ok(Err(match e.kind {
                    HttpErrorKind::Down => PanicError::system_is_down(&self.config.system_name),
                    HttpErrorKind::Read => {
                        PanicError::data_reading(&self.name, &self.config.system_name)
                    }
                    HttpErrorKind::InvalidUrl => PanicError::invalid_url(url),
                }));
            }
        };
        let text = response
            .text()
            .map_err(|e| RoundError::new(format!("the body from {url} is not UTF-8: {e}")))?;
        let samples = prometheus::parse(text).map_err(|e| {
            RoundError::new(format!("the body from {url} is not Prometheus text: {e}"))
        })?;
        let requested: Vec<(&str, Requirement)> = SYSTEM_METRICS
            .iter()
            .map(|m| (*m, Requirement::Strict))
            .collect();
        match prometheus::query(&samples, &requested) {
            Ok(data) => Ok(Ok(data)),
            Err(prometheus::QueryError::MetricNotFound(metric)) => {
                warn!(monitor = %self.name, url = %monitor_core::redact_url(url), metric = %metric, "metric not found");
                Ok(Err(PanicError::metric_not_found(&metric, url)))
            }
            Err(e @ prometheus::QueryError::MixedLabels(_)) => {
                Err(RoundError::new(format!("{url}: {e}")))
            }
        }
    }
}

#[async_trait]
impl Monitor for SystemMonitor {
    fn name(&self) -> &str {
        &self.name
    }

    async fn round(&mut self) -> Result<Vec<Publication>, RoundError> {
        let outcome = match self.retrieve().await? {
            Ok(data) => Ok(process(&data)?),
            Err(e) => Err(e),
        };
        if let Ok(data) = &outcome {
            debug!(monitor = %self.name, data = %data, "system data");
        }
        let body = envelope(self.meta_data(), outcome);
        Ok(vec![Publication::new(RawDataKey::System, body)])
    }

    fn failed_round(&self, _error: &RoundError) -> Vec<Publication> {
        let error = PanicError::data_reading(&self.name, &self.config.system_name);
        let body = envelope(self.meta_data(), Err(error));
        vec![Publication::new(RawDataKey::System, body)]
    }
}

/// PANIC's `_process_data_retrieval_successful`: the `data` object, fields in PANIC's order.
pub(crate) fn process(data: &MetricsData) -> Result<Value, RoundError> {
    let mut out = Map::new();

    out.insert(
        "process_cpu_seconds_total".to_owned(),
        raw(data, "process_cpu_seconds_total")?,
    );

    let alloc = single(data, "go_memstats_alloc_bytes")?;
    let alloc_total = single(data, "go_memstats_alloc_bytes_total")?;
    out.insert(
        "process_memory_usage".to_owned(),
        float(round2(
            divide(alloc, alloc_total, "process_memory_usage")? * 100.0,
        )),
    );

    out.insert(
        "virtual_memory_usage".to_owned(),
        raw(data, "process_virtual_memory_bytes")?,
    );

    let open_fds = single(data, "process_open_fds")?;
    let max_fds = single(data, "process_max_fds")?;
    out.insert(
        "open_file_descriptors".to_owned(),
        float(divide(open_fds, max_fds, "open_file_descriptors")? * 100.0),
    );

    let mut cpu_idle = 0.0;
    let mut cpu_total = 0.0;
    for entry in labelled(data, "node_cpu_seconds_total")? {
        let mode = entry.label("mode").ok_or_else(|| {
            RoundError::new(format!(
                "node_cpu_seconds_total sample {} has no `mode` label",
                entry.key
            ))
        })?;
        if mode == "idle" {
            cpu_idle += entry.value;
        }
        cpu_total += entry.value;
    }
    out.insert(
        "system_cpu_usage".to_owned(),
        float(round2(
            100.0 - divide(cpu_idle, cpu_total, "system_cpu_usage")? * 100.0,
        )),
    );

    let mem_total = single(data, "node_memory_MemTotal_bytes")?;
    let mem_available = single(data, "node_memory_MemAvailable_bytes")?;
    out.insert(
        "system_ram_usage".to_owned(),
        float(round2(
            divide(mem_total - mem_available, mem_total, "system_ram_usage")? * 100.0,
        )),
    );

    let avail = sum(data, "node_filesystem_avail_bytes")?;
    let size = sum(data, "node_filesystem_size_bytes")?;
    out.insert(
        "system_storage_usage".to_owned(),
        float(round2(
            100.0 - divide(avail, size, "system_storage_usage")? * 100.0,
        )),
    );

    let receive = sum(data, "node_network_receive_bytes_total")?;
    let transmit = sum(data, "node_network_transmit_bytes_total")?;
    out.insert("network_receive_bytes_total".to_owned(), float(receive));
    out.insert("network_transmit_bytes_total".to_owned(), float(transmit));

    out.insert(
        "disk_io_time_seconds_total".to_owned(),
        float(sum(data, "node_disk_io_time_seconds_total")?),
    );
    Ok(Value::Object(out))
}

fn get<'a>(data: &'a MetricsData, metric: &str) -> Result<&'a MetricValue, RoundError> {
    data.get(metric)
        .ok_or_else(|| RoundError::new(format!("metric {metric} is missing")))
}

/// A metric passed through as PANIC did (a float, or the label-set object).
fn raw(data: &MetricsData, metric: &str) -> Result<Value, RoundError> {
    get(data, metric).map(MetricValue::to_json)
}

/// An unlabelled metric (a labelled one made PANIC's arithmetic raise a `TypeError`).
fn single(data: &MetricsData, metric: &str) -> Result<f64, RoundError> {
    match get(data, metric)? {
        MetricValue::Single(v) => Ok(*v),
        MetricValue::Labelled(_) => Err(RoundError::new(format!(
            "metric {metric} is labelled, a single value was expected"
        ))),
    }
}

/// A labelled metric (iterating an unlabelled one made PANIC raise a `TypeError`).
fn labelled<'a>(
    data: &'a MetricsData,
    metric: &str,
) -> Result<&'a [prometheus::LabelledValue], RoundError> {
    match get(data, metric)? {
        MetricValue::Labelled(entries) => Ok(entries),
        MetricValue::Single(_) => Err(RoundError::new(format!(
            "metric {metric} is unlabelled, label sets were expected"
        ))),
    }
}

/// The sum over label sets, in order of first appearance (as PANIC's loop adds them).
fn sum(data: &MetricsData, metric: &str) -> Result<f64, RoundError> {
    Ok(labelled(data, metric)?
        .iter()
        .fold(0.0, |acc, entry| acc + entry.value))
}

/// Python's `/`: a zero divisor raises `ZeroDivisionError` (NaN and infinities do not).
fn divide(numerator: f64, divisor: f64, what: &str) -> Result<f64, RoundError> {
    if divisor == 0.0 {
        Err(RoundError::new(format!("{what}: division by zero")))
    } else {
        Ok(numerator / divisor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::{parse, query};

    /// `round2` against what PANIC computes, `json.dumps(float("{:.2f}".format(x)))` (values printed
    /// by CPython 3).
    #[test]
    fn rounding_is_panics() {
        let cases: [(f64, &str); 18] = [
            (8.375, "8.38"),
            (0.125, "0.12"),
            (2.675, "2.67"),
            (1.005, "1.0"),
            (37.915, "37.91"),
            (22.855, "22.86"),
            (99.995, "100.0"),
            (1e-9, "0.0"),
            (12345.675, "12345.67"),
            (-0.005, "-0.01"),
            (-0.001, "-0.0"),
            (100.0 - 100.0 * (1.0 / 3.0), "66.67"),
            (8.36499999999, "8.36"),
            (37.92499, "37.92"),
            (0.0, "0.0"),
            (100.0, "100.0"),
            (5e-3, "0.01"),
            (1e16 / 3.0, "3333333333333333.5"),
        ];
        for (x, python) in cases {
            assert_eq!(float(round2(x)).to_string(), python, "{x}");
        }
    }

    fn data(text: &str) -> MetricsData {
        let requested: Vec<(&str, Requirement)> = SYSTEM_METRICS
            .iter()
            .map(|m| (*m, Requirement::Strict))
            .collect();
        query(&parse(text).unwrap(), &requested).unwrap()
    }

    const SMALL: &str = "process_cpu_seconds_total 1.5\ngo_memstats_alloc_bytes 1\n\
        go_memstats_alloc_bytes_total 3\nprocess_virtual_memory_bytes 10\nprocess_max_fds 8\n\
        process_open_fds 1\nnode_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 3\n\
        node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 1\n\
        node_filesystem_avail_bytes{mountpoint=\"/\"} 1\nnode_filesystem_avail_bytes{mountpoint=\"/b\"} 2\n\
        node_filesystem_size_bytes{mountpoint=\"/\"} 4\nnode_filesystem_size_bytes{mountpoint=\"/b\"} 4\n\
        node_memory_MemTotal_bytes 4\nnode_memory_MemAvailable_bytes 1\n\
        node_network_transmit_bytes_total{device=\"lo\"} 5\nnode_network_transmit_bytes_total{device=\"eth0\"} 6\n\
        node_network_receive_bytes_total{device=\"lo\"} 7\n\
        node_disk_io_time_seconds_total{device=\"sda\"} 0.5\n";

    #[test]
    fn formulas() {
        let out = process(&data(SMALL)).unwrap();
        assert_eq!(
            out.to_string(),
            concat!(
                r#"{"process_cpu_seconds_total":1.5,"process_memory_usage":33.33,"#,
                r#""virtual_memory_usage":10.0,"open_file_descriptors":12.5,"system_cpu_usage":25.0,"#,
                r#""system_ram_usage":75.0,"system_storage_usage":62.5,"#,
                r#""network_receive_bytes_total":7.0,"network_transmit_bytes_total":11.0,"#,
                r#""disk_io_time_seconds_total":0.5}"#
            )
        );
    }

    #[test]
    fn every_division_by_zero_is_a_round_error() {
        for (from, to, what) in [
            (
                "go_memstats_alloc_bytes_total 3",
                "go_memstats_alloc_bytes_total 0",
                "process_memory_usage",
            ),
            (
                "process_max_fds 8",
                "process_max_fds 0",
                "open_file_descriptors",
            ),
            ("mode=\"idle\"} 3", "mode=\"idle\"} 0", "system_cpu_usage"),
            (
                "node_memory_MemTotal_bytes 4",
                "node_memory_MemTotal_bytes 0",
                "system_ram_usage",
            ),
            (
                "mountpoint=\"/\"} 4",
                "mountpoint=\"/\"} 0",
                "system_storage_usage",
            ),
        ] {
            let mut text = SMALL.replace(from, to);
            if what == "system_cpu_usage" {
                text = text.replace("mode=\"user\"} 1", "mode=\"user\"} 0");
            }
            if what == "system_storage_usage" {
                text = text.replace("mountpoint=\"/b\"} 4", "mountpoint=\"/b\"} 0");
            }
            assert_ne!(text, SMALL);
            let err = process(&data(&text)).unwrap_err();
            assert_eq!(err.to_string(), format!("{what}: division by zero"));
        }
        // NaN is not a division by zero (Python computes with it).
        let text = SMALL.replace("process_max_fds 8", "process_max_fds NaN");
        let out = process(&data(&text)).unwrap();
        assert!(out["open_file_descriptors"].is_null());
    }

    #[test]
    fn cpu_sample_without_mode_is_a_round_error() {
        let text = SMALL.replace("cpu=\"0\",mode=\"user\"", "cpu=\"0\"");
        let err = process(&data(&text)).unwrap_err();
        assert!(err.to_string().contains("no `mode` label"), "{err}");
    }
}
