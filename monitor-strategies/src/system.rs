//! The System monitor (spec §4.1, PANIC's `monitors/system.py`): one node_exporter `/metrics`
//! scrape per round, turned into PANIC's ten system figures.
//!
//! Outcomes of a round:
//! * success → `result` envelope on `system`;
//! * exporter unreachable or too slow → 5004, body unreadable → 5005, bad URL → 5009, a metric
//!   missing → 5003: `error` envelopes on `system`;
//! * a body that is not Prometheus text (or not UTF-8), a metric of the wrong shape, a division by
//!   zero → [`RoundError`]: nothing published, as PANIC's processing errors.

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
pub fn component_name(system_name: &str) -> String {
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
                warn!(monitor = %self.name, url = %url, error = %e, "error when retrieving data");
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
                warn!(monitor = %self.name, url = %url, metric = %metric, "metric not found");
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
}

/// PANIC's `_process_data_retrieval_successful`: the `data` object, fields in PANIC's order.
pub fn process(data: &MetricsData) -> Result<Value, RoundError> {
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
