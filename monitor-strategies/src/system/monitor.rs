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

use std::sync::Mutex;

use reqwest::Url;

use crate::http::{parse_url, Http, HttpError, HttpErrorKind, KeptConnection};
use crate::prometheus::{
    self, Found, Limits, Metric, MetricValue, MetricsData, Requirement, Scratch, TextQueryError,
};

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

/// [`SYSTEM_METRICS`] as a query: all strict.
const SYSTEM_REQUESTED: [(&str, Requirement); 14] = {
    let mut out = [("", Requirement::Strict); 14];
    let mut i = 0;
    while i < out.len() {
        out[i].0 = SYSTEM_METRICS[i];
        i += 1;
    }
    out
};

/// Buffers larger than this are not kept between rounds (node_exporter bodies are 50–200 KB).
const KEEP_BUFFER_BYTES: usize = 1024 * 1024;

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
///
/// It parses the exporter URL once, and a round borrows its body buffer and the query's buffers
/// ([`Scratch`]) from a pool the system monitors of the process share (as many sets as rounds in
/// flight, not one per monitor: 10,000 monitors would otherwise keep 10,000 bodies), so that a
/// round in steady state allocates only what its envelope is made of.
#[derive(Debug)]
pub struct SystemMonitor {
    name: String,
    config: SystemConfig,
    http: Http,
    /// The exporter URL, parsed once (a bad URL is a 5009 every round, as in PANIC).
    url: Result<Url, HttpError>,
    /// The exporter URL for logs and errors, its password redacted.
    redacted_url: String,
    limits: Limits,
    /// The connection to the exporter, kept between rounds (plain `http://` only; see
    /// [`Http::get_into_kept`]).
    kept: KeptConnection,
}

/// A round's buffers: the body and the query's.
#[derive(Debug, Default)]
struct RoundBuffers {
    body: Vec<u8>,
    scratch: Scratch,
}

/// Free round buffers, shared by every system monitor of the process.
static POOL: Mutex<Vec<RoundBuffers>> = Mutex::new(Vec::new());
/// At most this many free sets are kept (rounds in flight at once beyond it allocate their own).
const POOLED: usize = 64;

impl RoundBuffers {
    fn take() -> Self {
        POOL.lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default()
    }

    /// Back to the pool, unless grown past what a real exporter needs (a hostile or broken
    /// target's body): those are freed, so what stays between rounds is small whatever a target
    /// sent once.
    fn give(self) {
        if self.body.capacity() > KEEP_BUFFER_BYTES
            || self.scratch.capacity_bytes() > KEEP_BUFFER_BYTES
        {
            return;
        }
        let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOLED {
            pool.push(self);
        }
    }
}

impl SystemMonitor {
    /// A monitor for `config` using `http` (certificate verification off as PANIC, by default).
    pub fn new(config: SystemConfig, http: Http) -> Self {
        SystemMonitor {
            name: component_name(&config.system_name),
            url: parse_url(&config.exporter_url),
            redacted_url: monitor_core::redact_url(&config.exporter_url).into_owned(),
            config,
            http,
            limits: Limits::default(),
            kept: KeptConnection::default(),
        }
    }

    /// The same with other bounds on what one round keeps of a scrape.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
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

    /// PANIC's 5005 for this system, its message extended with why (PANIC's template, then `: `
    /// and the reason: a bound reached, a redirect refused).
    fn data_reading(&self, why: Option<&str>) -> PanicError {
        let mut error = PanicError::data_reading(&self.name, &self.config.system_name);
        if let Some(why) = why {
            error.message.push_str(": ");
            error.message.push_str(why);
        }
        error
    }

    /// A round on `body` instead of a scrape: what [`Monitor::round`] does once the body is read
    /// (for benchmarks and tests; the body is copied into the monitor's buffer).
    pub fn round_on_body(&mut self, body: &[u8]) -> Result<Vec<Publication>, RoundError> {
        let mut buffers = RoundBuffers::take();
        buffers.body.clear();
        buffers.body.extend_from_slice(body);
        let outcome = self.evaluate(&mut buffers);
        buffers.give();
        outcome
    }

    /// The round's work after the fetch, on the body in the buffer.
    fn evaluate(&self, buffers: &mut RoundBuffers) -> Result<Vec<Publication>, RoundError> {
        let url = &self.redacted_url;
        let text = std::str::from_utf8(&buffers.body)
            .map_err(|e| RoundError::new(format!("the body from {url} is not UTF-8: {e}")))?;
        let outcome = match prometheus::query_text(
            text,
            &SYSTEM_REQUESTED,
            &self.limits,
            &mut buffers.scratch,
        ) {
            Ok(found) => Ok(process(&found)?),
            Err(TextQueryError::Parse(e)) => {
                return Err(RoundError::new(format!(
                    "the body from {url} is not Prometheus text: {e}"
                )))
            }
            Err(TextQueryError::Query(prometheus::QueryError::MetricNotFound(metric))) => {
                warn!(monitor = %self.name, url = %monitor_core::redact_url(url), metric = %metric, "metric not found");
                Err(PanicError::metric_not_found(&metric, url))
            }
            Err(TextQueryError::Query(e @ prometheus::QueryError::MixedLabels(_))) => {
                return Err(RoundError::new(format!("{url}: {e}")))
            }
            Err(TextQueryError::Limit(e)) => {
                warn!(monitor = %self.name, url = %monitor_core::redact_url(url), error = %e, "scrape over a bound");
                Err(self.data_reading(Some(&e.to_string())))
            }
        };
        if let Ok(data) = &outcome {
            debug!(monitor = %self.name, data = %data, "system data");
        }
        let body = envelope(self.meta_data(), outcome);
        Ok(vec![Publication::new(RawDataKey::System, body)])
    }

    /// Retrieval into the body buffer: the exchange's outcome.
    async fn fetch(&mut self, body: &mut Vec<u8>) -> Option<PanicError> {
        let url = match &self.url {
            Ok(url) => url,
            Err(_) => return Some(PanicError::invalid_url(&self.redacted_url)),
        };
        match self
            .http
            .get_into_kept(url, &self.config.exporter_url, body, &mut self.kept)
            .await
        {
            Ok(_status) => None,
            Err(e) => {
                warn!(monitor = %self.name, url = %self.redacted_url, error = %e, "error when retrieving data");
                Some(match e.kind {
                    HttpErrorKind::Down => PanicError::system_is_down(&self.config.system_name),
                    HttpErrorKind::Read => self.data_reading(e.refused_redirect()),
                    HttpErrorKind::InvalidUrl => PanicError::invalid_url(&self.redacted_url),
                })
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
        let mut buffers = RoundBuffers::take();
        let outcome = match self.fetch(&mut buffers.body).await {
            Some(error) => {
                let body = envelope(self.meta_data(), Err(error));
                Ok(vec![Publication::new(RawDataKey::System, body)])
            }
            None => self.evaluate(&mut buffers),
        };
        buffers.give();
        outcome
    }

    fn failed_round(&self, _error: &RoundError) -> Vec<Publication> {
        let error = PanicError::data_reading(&self.name, &self.config.system_name);
        let body = envelope(self.meta_data(), Err(error));
        vec![Publication::new(RawDataKey::System, body)]
    }
}

/// Called with each label set of a metric: its key, its value and the value of one label.
pub(crate) type SetVisitor<'a> = dyn FnMut(&str, f64, Option<&str>) -> Result<(), RoundError> + 'a;

/// What [`process`] reads of a scrape: the owned answer of [`prometheus::query`] or the borrowed
/// one of [`prometheus::query_text`].
pub(crate) trait Scrape {
    /// An unlabelled metric's value; `Err(())` if it is labelled; `None` if absent.
    fn single_value(&self, metric: &str) -> Option<Result<f64, ()>>;
    /// Calls `f(key, value, label)` for each label set of a labelled metric, in order, with the
    /// value of label `label`; `Some(false)` if the metric is unlabelled, `None` if absent.
    fn each_set(
        &self,
        metric: &str,
        label: &str,
        f: &mut SetVisitor<'_>,
    ) -> Option<Result<bool, RoundError>>;
    /// The metric as PANIC passes it through (a float, or `{key: float}`).
    fn raw_json(&self, metric: &str) -> Option<Value>;
}

impl Scrape for MetricsData {
    fn single_value(&self, metric: &str) -> Option<Result<f64, ()>> {
        match self.get(metric)? {
            MetricValue::Single(v) => Some(Ok(*v)),
            MetricValue::Labelled(_) => Some(Err(())),
        }
    }

    fn each_set(
        &self,
        metric: &str,
        label: &str,
        f: &mut SetVisitor<'_>,
    ) -> Option<Result<bool, RoundError>> {
        match self.get(metric)? {
            MetricValue::Single(_) => Some(Ok(false)),
            MetricValue::Labelled(entries) => Some(
                entries
                    .iter()
                    .try_for_each(|e| f(&e.key, e.value, e.label(label)))
                    .map(|()| true),
            ),
        }
    }

    fn raw_json(&self, metric: &str) -> Option<Value> {
        self.get(metric).map(MetricValue::to_json)
    }
}

impl Scrape for Found<'_> {
    fn single_value(&self, metric: &str) -> Option<Result<f64, ()>> {
        match self.get(metric) {
            Metric::Absent => None,
            Metric::Single(v) => Some(Ok(v)),
            Metric::Labelled(_) => Some(Err(())),
        }
    }

    fn each_set(
        &self,
        metric: &str,
        label: &str,
        f: &mut SetVisitor<'_>,
    ) -> Option<Result<bool, RoundError>> {
        match self.get(metric) {
            Metric::Absent => None,
            Metric::Single(_) => Some(Ok(false)),
            Metric::Labelled(sets) => Some(
                sets.iter()
                    .try_for_each(|s| f(s.key(), s.value(), s.label(label)))
                    .map(|()| true),
            ),
        }
    }

    fn raw_json(&self, metric: &str) -> Option<Value> {
        match self.get(metric) {
            Metric::Absent => None,
            Metric::Single(v) => Some(float(v)),
            Metric::Labelled(sets) => Some(Value::Object(
                sets.iter()
                    .map(|s| (s.key().to_owned(), float(s.value())))
                    .collect::<Map<String, Value>>(),
            )),
        }
    }
}

/// PANIC's ten figures from the answer of [`prometheus::query`] (the two-step path the monitor
/// used before [`prometheus::query_text`]; kept for comparisons).
pub fn system_figures(data: &MetricsData) -> Result<Value, RoundError> {
    process(data)
}

/// PANIC's `_process_data_retrieval_successful`: the `data` object, fields in PANIC's order.
pub(crate) fn process(data: &impl Scrape) -> Result<Value, RoundError> {
    let mut out = Map::with_capacity(10);

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
    let metric = "node_cpu_seconds_total";
    labelled(
        data,
        metric,
        "mode",
        &mut |key: &str, value: f64, mode: Option<&str>| {
            let mode = mode.ok_or_else(|| {
                RoundError::new(format!("{metric} sample {key} has no `mode` label"))
            })?;
            if mode == "idle" {
                cpu_idle += value;
            }
            cpu_total += value;
            Ok(())
        },
    )?;
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

fn missing(metric: &str) -> RoundError {
    RoundError::new(format!("metric {metric} is missing"))
}

/// A metric passed through as PANIC did (a float, or the label-set object).
fn raw(data: &impl Scrape, metric: &str) -> Result<Value, RoundError> {
    data.raw_json(metric).ok_or_else(|| missing(metric))
}

/// An unlabelled metric (a labelled one made PANIC's arithmetic raise a `TypeError`).
fn single(data: &impl Scrape, metric: &str) -> Result<f64, RoundError> {
    match data.single_value(metric) {
        None => Err(missing(metric)),
        Some(Ok(v)) => Ok(v),
        Some(Err(())) => Err(RoundError::new(format!(
            "metric {metric} is labelled, a single value was expected"
        ))),
    }
}

/// Each label set of a labelled metric (iterating an unlabelled one made PANIC raise a
/// `TypeError`), with the value of `label`.
fn labelled(
    data: &impl Scrape,
    metric: &str,
    label: &str,
    f: &mut SetVisitor<'_>,
) -> Result<(), RoundError> {
    match data.each_set(metric, label, f) {
        None => Err(missing(metric)),
        Some(Ok(true)) => Ok(()),
        Some(Ok(false)) => Err(RoundError::new(format!(
            "metric {metric} is unlabelled, label sets were expected"
        ))),
        Some(Err(e)) => Err(e),
    }
}

/// The sum over label sets, in order of first appearance (as PANIC's loop adds them).
fn sum(data: &impl Scrape, metric: &str) -> Result<f64, RoundError> {
    let mut total = 0.0;
    labelled(data, metric, "", &mut |_, value, _| {
        total += value;
        Ok(())
    })?;
    Ok(total)
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
