//! The Chainlink node monitor (spec §4.5, PANIC's `monitors/node/chainlink.py`): the node's
//! Prometheus metrics, read from whichever of its URLs answers (one active node among fail-over
//! replicas), turned into PANIC's Chainlink figures.
//!
//! Source selection: the last source that answered is tried first (initially the first URL); if it
//! cannot be reached, every URL is tried in order and the first that answers becomes the last used.
//! A reachable source that fails otherwise (unreadable body, bad URL, missing metric) also becomes
//! the last used and its error is reported. None reachable → 5015.
//!
//! Counters: Chainlink prints `head_tracker_heads_received` (a `counter` family) where PANIC asks for
//! `head_tracker_heads_received_total`; the parser renames counter samples as Python's
//! `prometheus_client` does ([`crate::prometheus::Sample::python_name`]).
//!
//! Body `{"prometheus": <envelope>}` on `node.chainlink` (`{"prometheus": {}}` when Prometheus
//! monitoring is disabled). Errors: 5015, 5005 and 5009 (naming the last source used), 5003.
//! A body that is not Prometheus text or metrics of the wrong shape are processing errors
//! ([`RoundError`]: nothing published).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use monitor_core::envelope::{envelope, float, MetaData};
use monitor_core::{Monitor, PanicError, Publication, RawDataKey, RoundError};

use crate::evm::monitor::node_component_name;
use crate::http::{Http, HttpError, HttpErrorKind};
use crate::prometheus::{
    self, LabelledValue, Limits, MetricValue, MetricsData, QueryError, Requirement, TextQueryError,
};

/// The metrics PANIC v1.3.1 requests of a Chainlink node, in its order.
pub const CHAINLINK_METRICS: [(&str, Requirement); 10] = [
    ("head_tracker_current_head", Requirement::Strict),
    ("head_tracker_heads_received_total", Requirement::Strict),
    ("max_unconfirmed_blocks", Requirement::Strict),
    ("process_start_time_seconds", Requirement::Strict),
    ("tx_manager_num_gas_bumps_total", Requirement::Optional),
    (
        "tx_manager_gas_bump_exceeds_limit_total",
        Requirement::Optional,
    ),
    ("unconfirmed_transactions", Requirement::Strict),
    ("gas_updater_set_gas_price", Requirement::Optional),
    ("eth_balance", Requirement::Strict),
    ("run_status_update_total", Requirement::Optional),
];

/// The single-value metrics of the output, in output order (first label set taken).
const ONE_VALUE_METRICS: [&str; 7] = [
    "head_tracker_current_head",
    "head_tracker_heads_received_total",
    "max_unconfirmed_blocks",
    "process_start_time_seconds",
    "tx_manager_num_gas_bumps_total",
    "tx_manager_gas_bump_exceeds_limit_total",
    "unconfirmed_transactions",
];

/// How often the native currency symbol may be looked up (PANIC: once a day).
pub(crate) const SYMBOL_REFRESH_PERIOD: Duration = Duration::from_secs(86_400);

/// The source key of the body.
pub(crate) const PROMETHEUS_SOURCE: &str = "prometheus";

/// One Chainlink node (a `nodes_config` section of a Chainlink chain).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainlinkNodeConfig {
    /// `id`
    pub node_id: String,
    /// `parent_id`
    pub parent_id: String,
    /// `name`
    pub node_name: String,
    /// `node_prometheus_urls`, blank items dropped.
    pub node_prometheus_urls: Vec<String>,
    /// `monitor_prometheus`
    pub monitor_prometheus: bool,
}

/// A task allowed at most once per period (PANIC's `TimedTaskLimiter`): allowed when never done or
/// when the period has passed since it was last marked done.
#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    period: Duration,
    last_done: Option<Instant>,
}

impl Limiter {
    pub(crate) fn new(period: Duration) -> Self {
        Limiter {
            period,
            last_done: None,
        }
    }

    pub(crate) fn can_do(&self) -> bool {
        self.last_done.is_none_or(|at| at.elapsed() >= self.period)
    }

    pub(crate) fn did(&mut self) {
        self.last_done = Some(Instant::now());
    }
}

/// Why a scrape failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ScrapeError {
    /// The HTTP exchange failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// A strict metric is absent.
    #[error("metric `{metric}` not found at {}", monitor_core::redact_url(url))]
    MetricNotFound { metric: String, url: String },
    /// The body is not Prometheus text (or a metric mixes labelled and unlabelled samples).
    #[error("{0}")]
    Unusable(String),
    /// The scrape is over a bound of what one round keeps.
    #[error("{0}")]
    Limit(#[from] prometheus::LimitError),
}

/// GET `url`, parse, query `requested`.
pub(crate) async fn scrape(
    http: &Http,
    url: &str,
    requested: &[(&str, Requirement)],
    scratch: &mut prometheus::Scratch,
) -> Result<MetricsData, ScrapeError> {
    let response = http.get(url).await?;
    let redacted = monitor_core::redact_url(url);
    let text = response.text().map_err(|e| {
        ScrapeError::Unusable(format!("the body from {redacted} is not UTF-8: {e}"))
    })?;
    // Only the requested families are kept, within the default bounds.
    match prometheus::query_text(text, requested, &Limits::default(), scratch) {
        Ok(found) => Ok(found.to_metrics_data()),
        Err(TextQueryError::Parse(e)) => Err(ScrapeError::Unusable(format!(
            "the body from {redacted} is not Prometheus text: {e}"
        ))),
        Err(TextQueryError::Query(QueryError::MetricNotFound(metric))) => {
            Err(ScrapeError::MetricNotFound {
                metric,
                url: url.to_owned(),
            })
        }
        Err(TextQueryError::Query(e @ QueryError::MixedLabels(_))) => {
            Err(ScrapeError::Unusable(format!("{redacted}: {e}")))
        }
        Err(TextQueryError::Limit(e)) => Err(ScrapeError::Limit(e)),
    }
}

/// The native currency symbol known for a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KnownSymbol {
    chain_id: String,
    symbol: String,
}

/// The Chainlink node monitor strategy.
#[derive(Debug)]
pub struct ChainlinkNodeMonitor {
    name: String,
    config: ChainlinkNodeConfig,
    http: Http,
    public_http: Http,
    chain_list_url: String,
    last_source_used: String,
    symbol: Option<KnownSymbol>,
    symbol_limiter: Limiter,
    /// The Prometheus query's buffers, kept across rounds (a steady round allocates nothing there).
    scratch: prometheus::Scratch,
}

impl ChainlinkNodeMonitor {
    /// A monitor for `config`: `http` for the node's Prometheus endpoints (certificates not
    /// verified, as PANIC), `public_http` for the chain list at `chain_list_url`.
    ///
    /// Fails with 5014 when Prometheus monitoring is enabled but the URL list is empty.
    pub fn new(
        config: ChainlinkNodeConfig,
        http: Http,
        public_http: Http,
        chain_list_url: &str,
    ) -> Result<Self, PanicError> {
        if config.monitor_prometheus && config.node_prometheus_urls.is_empty() {
            return Err(PanicError::enabled_source_is_empty(
                PROMETHEUS_SOURCE,
                &config.node_name,
            ));
        }
        Ok(ChainlinkNodeMonitor {
            name: node_component_name(&config.node_name),
            last_source_used: config
                .node_prometheus_urls
                .first()
                .cloned()
                .unwrap_or_default(),
            config,
            http,
            public_http,
            chain_list_url: chain_list_url.to_owned(),
            symbol: None,
            symbol_limiter: Limiter::new(SYMBOL_REFRESH_PERIOD),
            scratch: prometheus::Scratch::new(),
        })
    }

    /// The config.
    pub fn config(&self) -> &ChainlinkNodeConfig {
        &self.config
    }

    /// The Prometheus URL that answered last (initially the first URL), as configured: what is
    /// published (`meta_data.last_source_used`) and logged has its password redacted.
    pub fn last_source_used(&self) -> &str {
        &self.last_source_used
    }

    fn meta_data(&self) -> MetaData {
        MetaData::new(&self.name)
            .with("node_name", self.config.node_name.as_str())
            .with(
                "last_source_used",
                monitor_core::redact_url(&self.last_source_used).as_ref(),
            )
            .with("node_id", self.config.node_id.as_str())
            .with("node_parent_id", self.config.parent_id.as_str())
            .timed()
    }

    /// PANIC's `_get_prometheus_data`: last source first, then every source in order.
    async fn get_prometheus_data(&mut self) -> Result<MetricsData, ScrapeError> {
        let last = self.last_source_used.clone();
        match scrape(&self.http, &last, &CHAINLINK_METRICS, &mut self.scratch).await {
            Err(ScrapeError::Http(e)) if e.kind == HttpErrorKind::Down => {
                debug!(monitor = %self.name, url = %monitor_core::redact_url(&last), error = %e,
                    "could not connect, trying the other sources");
            }
            other => return other,
        }
        let mut last_down = None;
        for source in self.config.node_prometheus_urls.clone() {
            match scrape(&self.http, &source, &CHAINLINK_METRICS, &mut self.scratch).await {
                Err(ScrapeError::Http(e)) if e.kind == HttpErrorKind::Down => {
                    debug!(monitor = %self.name, url = %monitor_core::redact_url(&source), error = %e, "could not connect");
                    last_down = Some(e);
                }
                other => {
                    if source != self.last_source_used {
                        info!(monitor = %self.name, from = %monitor_core::redact_url(&self.last_source_used),
                            to = %monitor_core::redact_url(&source),
                            "switched prometheus source");
                    }
                    self.last_source_used = source;
                    return other;
                }
            }
        }
        Err(ScrapeError::Http(last_down.unwrap_or_else(|| HttpError {
            kind: HttpErrorKind::Down,
            url: last,
            reason: "no source answered".to_owned(),
        })))
    }

    /// Looks the symbol up if needed and allowed; failures are logged, never fatal.
    async fn refresh_symbol(&mut self, chain_id: &str) {
        let known_here = self.symbol.as_ref().is_some_and(|s| s.chain_id == chain_id);
        if known_here && !self.symbol_limiter.can_do() {
            return;
        }
        if !known_here && self.symbol.is_some() {
            // The node moved to another chain: the old symbol is wrong.
            self.symbol = None;
        }
        match self.lookup_symbol(chain_id).await {
            Ok(symbol) if !symbol.is_empty() => {
                debug!(monitor = %self.name, chain_id, symbol = %symbol, "native currency symbol");
                self.symbol = Some(KnownSymbol {
                    chain_id: chain_id.to_owned(),
                    symbol,
                });
                self.symbol_limiter.did();
            }
            Ok(_) => {
                warn!(monitor = %self.name, chain_id, url = %monitor_core::redact_url(&self.chain_list_url),
                    "no native currency symbol for the chain in the chain list");
            }
            Err(e) => {
                warn!(monitor = %self.name, chain_id, url = %monitor_core::redact_url(&self.chain_list_url), error = %e,
                    "could not look up the native currency symbol");
            }
        }
    }

    async fn lookup_symbol(&self, chain_id: &str) -> Result<String, String> {
        let wanted: u64 = chain_id
            .trim()
            .parse()
            .map_err(|e| format!("evmChainID `{chain_id}` is not a number: {e}"))?;
        let response = self
            .public_http
            .get(&self.chain_list_url)
            .await
            .map_err(|e| e.to_string())?;
        if !response.is_success() {
            return Err(format!("HTTP {}", response.status));
        }
        let list: Value = serde_json::from_slice(&response.body)
            .map_err(|e| format!("the chain list is not JSON: {e}"))?;
        let entries = list
            .as_array()
            .ok_or_else(|| "the chain list is not a JSON array".to_owned())?;
        Ok(entries
            .iter()
            .find(|entry| entry.get("chainId").and_then(Value::as_u64) == Some(wanted))
            .and_then(|entry| entry.pointer("/nativeCurrency/symbol"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned())
    }

    fn map_error(&self, err: &ScrapeError) -> Result<PanicError, RoundError> {
        Ok(match err {
            ScrapeError::Http(e) => match e.kind {
                HttpErrorKind::Down => PanicError::node_is_down(&self.config.node_name),
                HttpErrorKind::Read => PanicError::data_reading(&self.name, &self.last_source_used),
                HttpErrorKind::InvalidUrl => PanicError::invalid_url(&self.last_source_used),
            },
            ScrapeError::MetricNotFound { metric, url } => {
                PanicError::metric_not_found(metric, url)
            }
            ScrapeError::Unusable(problem) => return Err(RoundError::new(problem.clone())),
            ScrapeError::Limit(limit) => {
                let mut error = PanicError::data_reading(&self.name, &self.last_source_used);
                error.message.push_str(&format!(": {limit}"));
                error
            }
        })
    }

    async fn prometheus_envelope(&mut self) -> Result<Value, RoundError> {
        let outcome = match self.get_prometheus_data().await {
            Ok(data) => {
                let chain_id = balance_entry(&data)?
                    .and_then(|entry| entry.label("evmChainID"))
                    .map(str::to_owned);
                if let Some(chain_id) = chain_id {
                    self.refresh_symbol(&chain_id).await;
                }
                let processed = process(&data, self.symbol.as_ref().map(|s| s.symbol.as_str()))?;
                debug!(monitor = %self.name, data = %processed, "chainlink node data");
                Ok(processed)
            }
            Err(e) => {
                warn!(monitor = %self.name, url = %monitor_core::redact_url(&self.last_source_used), error = %e,
                    "error when retrieving prometheus data");
                Err(self.map_error(&e)?)
            }
        };
        Ok(envelope(self.meta_data(), outcome))
    }
}

#[async_trait]
impl Monitor for ChainlinkNodeMonitor {
    fn name(&self) -> &str {
        &self.name
    }

    async fn round(&mut self) -> Result<Vec<Publication>, RoundError> {
        let prometheus = if self.config.monitor_prometheus {
            self.prometheus_envelope().await?
        } else {
            Value::Object(Map::new())
        };
        let mut body = Map::new();
        body.insert(PROMETHEUS_SOURCE.to_owned(), prometheus);
        Ok(vec![Publication::new(
            RawDataKey::ChainlinkNode,
            Value::Object(body),
        )])
    }

    /// Prometheus data that could not be used (not Prometheus text, a metric of the wrong shape):
    /// PANIC's 5005 (data reading) for the source last used, in the round's usual shape.
    fn failed_round(&self, _error: &RoundError) -> Vec<Publication> {
        let error = PanicError::data_reading(&self.name, &self.last_source_used);
        let mut body = Map::new();
        body.insert(
            PROMETHEUS_SOURCE.to_owned(),
            envelope(self.meta_data(), Err(error)),
        );
        vec![Publication::new(
            RawDataKey::ChainlinkNode,
            Value::Object(body),
        )]
    }
}

/// The label sets of a metric; an unlabelled metric is a processing error here (PANIC iterated
/// the label sets and failed on a bare float).
fn label_sets<'a>(
    data: &'a MetricsData,
    metric: &str,
) -> Result<Option<&'a [LabelledValue]>, RoundError> {
    match data.get(metric) {
        None => Ok(None),
        Some(MetricValue::Labelled(entries)) => Ok(Some(entries)),
        Some(MetricValue::Single(_)) => Err(RoundError::new(format!(
            "metric {metric} is unlabelled, label sets were expected"
        ))),
    }
}

/// The first `eth_balance` label set with an `account` label.
fn balance_entry(data: &MetricsData) -> Result<Option<&LabelledValue>, RoundError> {
    Ok(label_sets(data, "eth_balance")?
        .and_then(|entries| entries.iter().find(|e| e.label("account").is_some())))
}

/// The `data` object of a successful scrape, fields in the spec's order. `symbol` is the native
/// currency symbol if known (`""` otherwise).
pub(crate) fn process(data: &MetricsData, symbol: Option<&str>) -> Result<Value, RoundError> {
    let mut out = Map::new();
    for metric in ONE_VALUE_METRICS {
        // The single-chain assumption: the first label set's value (an unlabelled metric's value).
        let value = match data.get(metric) {
            None => Value::Null,
            Some(MetricValue::Single(v)) => float(*v),
            Some(MetricValue::Labelled(entries)) => {
                entries.first().map_or(Value::Null, |e| float(e.value))
            }
        };
        out.insert(metric.to_owned(), value);
    }

    let gas_price = match label_sets(data, "gas_updater_set_gas_price")? {
        None => Value::Null,
        Some(entries) => {
            let mut price = Map::new();
            if let Some((entry, percentile)) = entries
                .iter()
                .find_map(|e| e.label("percentile").map(|p| (e, p)))
            {
                price.insert("percentile".to_owned(), Value::from(percentile));
                price.insert("price".to_owned(), float(entry.value));
            }
            Value::Object(price)
        }
    };
    out.insert("gas_updater_set_gas_price".to_owned(), gas_price);

    let mut balance = Map::new();
    if let Some(entry) = balance_entry(data)? {
        balance.insert(
            "address".to_owned(),
            Value::from(entry.label("account").unwrap_or_default()),
        );
        balance.insert("balance".to_owned(), float(entry.value));
        balance.insert("symbol".to_owned(), Value::from(symbol.unwrap_or_default()));
    }
    out.insert("balance".to_owned(), Value::Object(balance));

    let errored = label_sets(data, "run_status_update_total")?.map_or(0, |entries| {
        entries
            .iter()
            .filter(|e| e.label("status") == Some("errored"))
            .count()
    });
    out.insert(
        "run_status_update_total_errors".to_owned(),
        Value::from(errored),
    );
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::{parse, query};

    fn data(text: &str) -> MetricsData {
        query(&parse(text).unwrap(), &CHAINLINK_METRICS).unwrap()
    }

    const MINIMAL: &str = "# TYPE head_tracker_heads_received counter\n\
        head_tracker_heads_received{evmChainID=\"5\"} 7\n\
        head_tracker_current_head{evmChainID=\"5\"} 10\nhead_tracker_current_head{evmChainID=\"6\"} 11\n\
        max_unconfirmed_blocks{evmChainID=\"5\"} 0\nprocess_start_time_seconds 1.5e9\n\
        unconfirmed_transactions{evmChainID=\"5\"} 2\n\
        eth_balance{evmChainID=\"5\"} 9\neth_balance{account=\"0xab\",evmChainID=\"5\"} 1.25\n";

    #[test]
    fn optional_metrics_absent() {
        let out = process(&data(MINIMAL), None).unwrap();
        assert_eq!(
            out.to_string(),
            concat!(
                r#"{"head_tracker_current_head":10.0,"head_tracker_heads_received_total":7.0,"#,
                r#""max_unconfirmed_blocks":0.0,"process_start_time_seconds":1500000000.0,"#,
                r#""tx_manager_num_gas_bumps_total":null,"tx_manager_gas_bump_exceeds_limit_total":null,"#,
                r#""unconfirmed_transactions":2.0,"gas_updater_set_gas_price":null,"#,
                r#""balance":{"address":"0xab","balance":1.25,"symbol":""},"#,
                r#""run_status_update_total_errors":0}"#
            )
        );
    }

    #[test]
    fn gas_price_without_percentile_and_balance_without_account() {
        let text = MINIMAL.replace("eth_balance{account=\"0xab\",evmChainID=\"5\"} 1.25\n", "")
            + "gas_updater_set_gas_price{evmChainID=\"5\"} 3\n";
        let out = process(&data(&text), Some("ETH")).unwrap();
        assert_eq!(out["gas_updater_set_gas_price"], serde_json::json!({}));
        assert_eq!(out["balance"], serde_json::json!({}));
    }

    #[test]
    fn errored_label_sets_are_counted_not_summed() {
        let text = MINIMAL.to_owned()
            + "# TYPE run_status_update_total counter\n\
               run_status_update_total{job=\"a\",status=\"errored\"} 40\n\
               run_status_update_total{job=\"b\",status=\"completed\"} 2\n\
               run_status_update_total{job=\"c\",status=\"errored\"} 1\n\
               run_status_update_total{job=\"d\"} 1\n";
        let out = process(&data(&text), Some("X")).unwrap();
        assert_eq!(out["run_status_update_total_errors"], 2);
        assert_eq!(out["balance"]["symbol"], "X");
    }

    #[test]
    fn unlabelled_balance_is_a_processing_error() {
        let text = MINIMAL
            .replace("eth_balance{evmChainID=\"5\"} 9\n", "")
            .replace(
                "eth_balance{account=\"0xab\",evmChainID=\"5\"} 1.25",
                "eth_balance 1",
            );
        assert!(process(&data(&text), None).is_err());
    }

    #[test]
    fn limiter() {
        let mut l = Limiter::new(Duration::from_secs(3600));
        assert!(l.can_do());
        l.did();
        assert!(!l.can_do());
        let mut zero = Limiter::new(Duration::ZERO);
        zero.did();
        assert!(zero.can_do());
    }
}
