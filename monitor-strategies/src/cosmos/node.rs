//! The Cosmos node monitor (spec §4.6): one `node.cosmos` body per round,
//! `{"prometheus": env|{}, "cosmos_rest": env|{}, "tendermint_rpc": env|{}}`, the three sources
//! retrieved concurrently and independently (a failing source carries an error envelope, the
//! others still their data).
//!
//! State kept across rounds: the SDK generation each REST server answered with
//! ([`SdkMemory`]), the last height processed for the validator history and the node's consensus
//! address.
//!
//! Error codes: prometheus 5015 / 5005 / 5009 / 5003; cosmos_rest 5015 / 5005 / 5009 / 5024 on the
//! node itself, 5019 when no data source is synced, 5026 / 5005 / 5009 / 5024 on the data source,
//! 5023 when no SDK generation fits; tendermint_rpc 5015 / 5005 / 5009 / 5030 on the node, 5019,
//! 5026 / 5005 / 5009 / 5030 on the data source, 5029 for incompatible answers (PANIC's 5025 and
//! 5028). The constructor fails with 5017 without data sources.

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use tracing::{debug, warn};

use monitor_core::envelope::{envelope, float, MetaData};
use monitor_core::{Monitor, PanicError, Publication, RawDataKey, RoundError};

use super::rest::{self, ProbeError, RestCall, SdkMemory};
use super::tendermint;
use super::{CallError, CosmosDataSource, CosmosNodeConfig, RestEndpoint};
use crate::http::{Http, HttpError, HttpErrorKind};
use crate::prometheus::{self, MetricValue, Requirement};

/// The Prometheus metrics of a Cosmos node (PANIC: height strict, validator power optional).
pub const PROMETHEUS_METRICS: [(&str, Requirement); 2] = [
    (
        "tendermint_consensus_latest_block_height",
        Requirement::Strict,
    ),
    (
        "tendermint_consensus_validator_power",
        Requirement::Optional,
    ),
];

/// PANIC's component name for a node: `Node monitor (<name>)`.
pub(crate) fn component_name(node_name: &str) -> String {
    format!("Node monitor ({node_name})")
}

/// What the Tendermint part remembers across rounds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TendermintState {
    /// The last height whose history was produced.
    pub last_height: Option<u64>,
    /// The node's consensus address (upper-case hex), from its last `/status` that had one.
    pub consensus_address: Option<String>,
}

/// The Cosmos node monitor strategy.
#[derive(Debug)]
pub struct CosmosNodeMonitor {
    name: String,
    config: CosmosNodeConfig,
    data_sources: Vec<CosmosDataSource>,
    http: Http,
    rest: SdkMemory,
    tendermint: TendermintState,
    /// The Prometheus query's buffers, kept across rounds (a steady round allocates nothing there).
    scratch: prometheus::Scratch,
}

impl CosmosNodeMonitor {
    /// A monitor for `config` reading chain data from `data_sources` (in preference order; the
    /// planner appends the node itself last). No data source is PANIC's 5017.
    pub fn new<S: Into<CosmosDataSource>>(
        config: CosmosNodeConfig,
        data_sources: impl IntoIterator<Item = S>,
        http: Http,
    ) -> Result<Self, PanicError> {
        let name = component_name(&config.node_name);
        let data_sources: Vec<CosmosDataSource> =
            data_sources.into_iter().map(Into::into).collect();
        if data_sources.is_empty() {
            return Err(PanicError::not_enough_data_sources(&name, "data_sources"));
        }
        Ok(CosmosNodeMonitor {
            name,
            config,
            data_sources,
            http,
            rest: SdkMemory::default(),
            tendermint: TendermintState::default(),
            scratch: prometheus::Scratch::new(),
        })
    }

    /// The node's config.
    pub fn config(&self) -> &CosmosNodeConfig {
        &self.config
    }

    /// The data sources, in preference order.
    pub fn data_sources(&self) -> &[CosmosDataSource] {
        &self.data_sources
    }

    /// What the REST part remembers.
    pub fn sdk_memory(&self) -> &SdkMemory {
        &self.rest
    }

    /// What the Tendermint part remembers.
    pub fn tendermint_state(&self) -> &TendermintState {
        &self.tendermint
    }
}

/// The read-only part of a round.
struct Ctx<'a> {
    name: &'a str,
    config: &'a CosmosNodeConfig,
    data_sources: &'a [CosmosDataSource],
    http: &'a Http,
}

impl Ctx<'_> {
    fn meta_data(&self) -> MetaData {
        MetaData::new(self.name)
            .with("node_name", self.config.node_name.as_str())
            .with("node_id", self.config.node_id.as_str())
            .with("node_parent_id", self.config.parent_id.as_str())
            .timed()
            .with("is_validator", self.config.is_validator)
            .with("operator_address", self.config.operator_address.as_str())
    }

    /// A transport failure talking to the monitored node itself.
    fn direct_http_error(&self, e: &HttpError) -> PanicError {
        match e.kind {
            HttpErrorKind::Down => PanicError::node_is_down(&self.config.node_name),
            HttpErrorKind::Read => {
                PanicError::data_reading(self.name, &monitor_core::redact_url(&e.url))
            }
            HttpErrorKind::InvalidUrl => PanicError::invalid_url(&e.url),
        }
    }

    /// A transport failure talking to a data source.
    fn source_http_error(&self, source: &CosmosDataSource, e: &HttpError) -> PanicError {
        match e.kind {
            HttpErrorKind::Down => PanicError::cannot_connect_with_data_source(
                self.name,
                &source.node_name,
                &e.to_string(),
            ),
            HttpErrorKind::Read => {
                PanicError::data_reading(self.name, &monitor_core::redact_url(&e.url))
            }
            HttpErrorKind::InvalidUrl => PanicError::invalid_url(&e.url),
        }
    }
}

#[async_trait]
impl Monitor for CosmosNodeMonitor {
    fn name(&self) -> &str {
        &self.name
    }

    async fn round(&mut self) -> Result<Vec<Publication>, RoundError> {
        let ctx = Ctx {
            name: &self.name,
            config: &self.config,
            data_sources: &self.data_sources,
            http: &self.http,
        };
        let rest_memory = &mut self.rest;
        let tm_state = &mut self.tendermint;
        let scratch = &mut self.scratch;
        let (prometheus, cosmos_rest, tendermint_rpc) = tokio::join!(
            async {
                if ctx.config.monitor_prometheus {
                    Some(prometheus_data(&ctx, scratch).await)
                } else {
                    None
                }
            },
            async {
                if ctx.config.monitor_cosmos_rest {
                    Some(cosmos_rest_data(&ctx, rest_memory).await)
                } else {
                    None
                }
            },
            async {
                if ctx.config.monitor_tendermint_rpc {
                    Some(tendermint_rpc_data(&ctx, tm_state).await)
                } else {
                    None
                }
            },
        );
        let mut body = Map::new();
        body.insert(
            "prometheus".to_owned(),
            prometheus.map_or_else(|| json!({}), |o| envelope(ctx.meta_data(), o)),
        );
        body.insert(
            "cosmos_rest".to_owned(),
            cosmos_rest.map_or_else(|| json!({}), |o| envelope(ctx.meta_data(), o)),
        );
        body.insert(
            "tendermint_rpc".to_owned(),
            tendermint_rpc.map_or_else(
                || json!({}),
                |o| match o {
                    Ok((data, is_mev)) => envelope(
                        ctx.meta_data().with("is_mev_tendermint_node", is_mev),
                        Ok(data),
                    ),
                    Err(e) => envelope(ctx.meta_data(), Err(e)),
                },
            ),
        );
        let failed: Vec<&str> = body
            .iter()
            .filter(|(_, v)| v.get("error").is_some())
            .map(|(k, _)| k.as_str())
            .collect();
        if failed.is_empty() {
            debug!(monitor = %self.name, "cosmos node data retrieved");
        } else {
            warn!(monitor = %self.name, sources = ?failed, "cosmos node sources failed");
        }
        Ok(vec![Publication::new(
            RawDataKey::CosmosNode,
            Value::Object(body),
        )])
    }
}

/// The `prometheus` source.
async fn prometheus_data(
    ctx: &Ctx<'_>,
    scratch: &mut prometheus::Scratch,
) -> Result<Value, PanicError> {
    let url = &ctx.config.prometheus_url;
    let response = ctx.http.get(url).await.map_err(|e| {
        warn!(monitor = %ctx.name, error = %e, "prometheus data could not be obtained");
        ctx.direct_http_error(&e)
    })?;
    let unreadable = |why: String| {
        warn!(monitor = %ctx.name, url = %monitor_core::redact_url(url), error = %why, "prometheus body unusable");
        PanicError::data_reading(ctx.name, &monitor_core::redact_url(url))
    };
    let text = response
        .text()
        .map_err(|e| unreadable(format!("not UTF-8: {e}")))?;
    // Only the two requested families are kept, within the default bounds.
    let data = match prometheus::query_text(
        text,
        &PROMETHEUS_METRICS,
        &prometheus::Limits::default(),
        scratch,
    ) {
        Ok(found) => found.to_metrics_data(),
        Err(prometheus::TextQueryError::Parse(e)) => return Err(unreadable(e.to_string())),
        Err(prometheus::TextQueryError::Query(prometheus::QueryError::MetricNotFound(metric))) => {
            return Err(PanicError::metric_not_found(&metric, url))
        }
        Err(prometheus::TextQueryError::Limit(e)) => {
            // The bound is named in the envelope too.
            let mut error = unreadable(e.to_string());
            error.message.push_str(&format!(": {e}"));
            return Err(error);
        }
        Err(e) => return Err(unreadable(e.to_string())),
    };
    let first = |metric: &str| match data.get(metric) {
        Some(MetricValue::Single(v)) => Some(*v),
        Some(MetricValue::Labelled(entries)) => entries.first().map(|e| e.value),
        None => None,
    };
    let height = first(PROMETHEUS_METRICS[0].0).map_or(Value::Null, float);
    // PANIC: an absent validator power means the node is not in the validator set: int 0.
    let power = first(PROMETHEUS_METRICS[1].0).map_or(json!(0), float);
    Ok(json!({
        "tendermint_consensus_latest_block_height": height,
        "tendermint_consensus_validator_power": power,
    }))
}

/// The `cosmos_rest` source.
async fn cosmos_rest_data(ctx: &Ctx<'_>, memory: &mut SdkMemory) -> Result<Value, PanicError> {
    let node = ctx.config;
    let incompatible = || PanicError::cosmos_rest_data_could_not_be_obtained(&node.node_name);
    // 1. The node itself must answer.
    let direct = rest::probe(memory, &node.cosmos_rest_url, RestCall::Syncing, |g| {
        rest::syncing(ctx.http, &node.cosmos_rest_url, g)
    })
    .await;
    if let Err(e) = direct {
        warn!(monitor = %ctx.name, error = ?e, "cosmos rest: node check failed");
        return Err(match e {
            ProbeError::AllIncompatible(_) => incompatible(),
            ProbeError::Failed(CallError::Http(h)) => ctx.direct_http_error(&h),
            ProbeError::Failed(other) => {
                PanicError::cosmos_rest_api_call("syncing", &other.message())
            }
        });
    }
    // 2. The first synced data source.
    let Some(source) = select_rest_source(ctx.data_sources, memory, ctx.http).await else {
        return Err(PanicError::no_synced_data_source(
            ctx.name,
            "indirect Cosmos REST node",
        ));
    };
    // 3. The validator's staking state.
    if !node.is_validator {
        return Ok(json!({"bond_status": "unbonded", "jailed": false}));
    }
    if node.operator_address.trim().is_empty() {
        return Err(PanicError::cosmos_rest_api_call(
            "staking validator",
            "the node is a validator but its operator_address is empty",
        ));
    }
    let answer = rest::probe(memory, &source.cosmos_rest_url, RestCall::Validator, |g| {
        rest::validator(ctx.http, &source.cosmos_rest_url, &node.operator_address, g)
    })
    .await;
    match answer {
        Ok((status, _)) => Ok(json!({"bond_status": status.bond_status, "jailed": status.jailed})),
        Err(e) => {
            warn!(monitor = %ctx.name, source = %source.node_name, error = ?e, "cosmos rest: validator");
            Err(match e {
                ProbeError::AllIncompatible(_) => incompatible(),
                ProbeError::Failed(CallError::Http(h)) => ctx.source_http_error(source, &h),
                ProbeError::Failed(other) => {
                    PanicError::cosmos_rest_api_call("staking validator", &other.message())
                }
            })
        }
    }
}

/// PANIC's `_select_cosmos_rest_node`: the first data source with a REST URL whose syncing call
/// says it is not syncing; any failure skips the source.
pub(crate) async fn select_rest_source<'a, S: RestEndpoint>(
    sources: &'a [S],
    memory: &mut SdkMemory,
    http: &Http,
) -> Option<&'a S> {
    for source in sources {
        let url = source.rest_url();
        if url.trim().is_empty() {
            continue;
        }
        match rest::probe(memory, url, RestCall::Syncing, |g| {
            rest::syncing(http, url, g)
        })
        .await
        {
            Ok((false, _)) => return Some(source),
            Ok((true, _)) => debug!(source = %source.source_name(), "REST data source is syncing"),
            Err(e) => {
                debug!(source = %source.source_name(), error = ?e, "REST data source unusable")
            }
        }
    }
    None
}

/// The `tendermint_rpc` source: data and whether the node runs mev-tendermint.
async fn tendermint_rpc_data(
    ctx: &Ctx<'_>,
    state: &mut TendermintState,
) -> Result<(Value, bool), PanicError> {
    let node = ctx.config;
    let incompatible = || PanicError::tendermint_rpc_data_could_not_be_obtained(&node.node_name);
    // 1. Direct: the node's own status.
    let status = tendermint::status(ctx.http, &node.tendermint_rpc_url)
        .await
        .map_err(|e| {
            warn!(monitor = %ctx.name, error = %e, "tendermint rpc: node status failed");
            match e {
                CallError::Http(h) => ctx.direct_http_error(&h),
                CallError::Api(m) => PanicError::tendermint_rpc_call("status", &m),
                CallError::Incompatible(_) | CallError::BadJson(_) => incompatible(),
            }
        })?;
    if !status.consensus_address.is_empty() {
        state.consensus_address = Some(status.consensus_address.clone());
    }
    let mut data = Map::new();
    data.insert("is_syncing".to_owned(), Value::Bool(status.catching_up));
    if let Some(peered) = status.mev_peered {
        data.insert("is_peered_with_sentinel".to_owned(), Value::Bool(peered));
    }
    // 2. An archive data source if one is synced, else any synced data source.
    let archives: Vec<&CosmosDataSource> = ctx
        .data_sources
        .iter()
        .filter(|s| s.is_archive_node)
        .collect();
    let mut selected = select_tendermint_source(archives, ctx.http).await;
    if selected.is_none() {
        selected = select_tendermint_source(ctx.data_sources.iter().collect(), ctx.http).await;
    }
    let Some(source) = selected else {
        return Err(PanicError::no_synced_data_source(
            ctx.name,
            "archive/indirect Tendermint RPC node",
        ));
    };
    // 3. The validator's history.
    let historical = if node.is_validator {
        let consensus = state.consensus_address.clone().unwrap_or_default();
        history(ctx.http, source, &consensus, state)
            .await
            .map_err(|e| {
                warn!(monitor = %ctx.name, source = %source.node_name, error = %e, "tendermint rpc: history");
                match e.error {
                    CallError::Http(h) => ctx.source_http_error(source, &h),
                    CallError::Api(m) => PanicError::tendermint_rpc_call(e.call, &m),
                    CallError::Incompatible(_) | CallError::BadJson(_) => incompatible(),
                }
            })?
    } else {
        Value::Array(Vec::new())
    };
    data.insert("historical".to_owned(), historical);
    Ok((Value::Object(data), status.mev_peered.is_some()))
}

/// PANIC's `_select_cosmos_tendermint_node`: the first source with an RPC URL that is not
/// catching up; any failure skips the source.
async fn select_tendermint_source<'a>(
    sources: Vec<&'a CosmosDataSource>,
    http: &Http,
) -> Option<&'a CosmosDataSource> {
    for source in sources {
        if source.tendermint_rpc_url.trim().is_empty() {
            continue;
        }
        match tendermint::status(http, &source.tendermint_rpc_url).await {
            Ok(s) if !s.catching_up => return Some(source),
            Ok(_) => debug!(source = %source.node_name, "tendermint data source is catching up"),
            Err(e) => {
                debug!(source = %source.node_name, error = %e, "tendermint data source unusable")
            }
        }
    }
    None
}

/// A failed history call and which call it was.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {error}")]
struct HistoryError {
    call: &'static str,
    error: CallError,
}

fn at(call: &'static str) -> impl Fn(CallError) -> HistoryError {
    move |error| HistoryError { call, error }
}

/// Heights fetched at once while catching up (three requests each).
pub(crate) const HISTORY_CONCURRENCY: usize = 8;

/// The per-height history from `source`, newest first (spec §4.6, PANIC's
/// `_get_tendermint_rpc_archive_data_validator`).
///
/// Heights are fetched [`HISTORY_CONCURRENCY`] at a time, in order. The adjusted last height is
/// kept when a height fails (the next round retries from there, as PANIC). Unlike PANIC, a long
/// catch-up is bounded in time so the round fits its period: after the first batch, no batch
/// starts or continues past half the request timeout; the heights done so far are published and
/// the rest follow in the next rounds.
async fn history(
    http: &Http,
    source: &CosmosDataSource,
    consensus: &str,
    state: &mut TendermintState,
) -> Result<Value, HistoryError> {
    let base = &source.tendermint_rpc_url;
    let (current, _) = tendermint::block(http, base, None)
        .await
        .map_err(at("block"))?;
    let last = tendermint::adjust_last_height(state.last_height, current, source.is_archive_node);
    state.last_height = Some(last);
    let deadline = tokio::time::Instant::now() + http.timeout() / 2;
    // Height 1 has no previous block to look at.
    let heights: Vec<u64> = match last.checked_add(1) {
        Some(first) => (first.max(2)..=current).collect(),
        // Already at the largest height there is (a hostile or broken node): nothing newer.
        None => Vec::new(),
    };
    let mut entries = Vec::with_capacity(heights.len());
    let mut done = last;
    for (i, batch) in heights.chunks(HISTORY_CONCURRENCY).enumerate() {
        let fetch = futures::future::join_all(
            batch
                .iter()
                .map(|&height| height_entry(http, base, height, consensus)),
        );
        let results = if i == 0 {
            fetch.await
        } else {
            match tokio::time::timeout_at(deadline, fetch).await {
                Ok(results) => results,
                Err(_) => {
                    debug!(source = %source.node_name, done, current, "history: time budget spent, the rest next round");
                    break;
                }
            }
        };
        for (height, result) in batch.iter().zip(results) {
            entries.push(result?);
            done = *height;
        }
    }
    state.last_height = Some(done.max(last));
    entries.reverse();
    Ok(Value::Array(entries))
}

/// One height's entry: active in the set at `h − 1`, signed `h − 1` (in `h`'s last commit),
/// slashed at `h`.
async fn height_entry(
    http: &Http,
    base: &str,
    height: u64,
    consensus: &str,
) -> Result<Value, HistoryError> {
    let (validators, block, slashing) = tokio::join!(
        tendermint::validators(http, base, height - 1),
        tendermint::block(http, base, Some(height)),
        tendermint::block_results_slashing(http, base, height, consensus),
    );
    let validators = validators.map_err(at("validators"))?;
    let (_, signed) = block.map_err(at("block"))?;
    let slashing = slashing.map_err(at("block_results"))?;
    let active = !consensus.is_empty() && validators.iter().any(|a| a == consensus);
    let signed_prev = active && signed.iter().any(|a| a == consensus);
    Ok(json!({
        "height": height,
        "active_in_prev_block": active,
        "signed_prev_block": signed_prev,
        "slashed": slashing.slashed,
        "slashed_amount": slashing.amount.map(amount_json),
    }))
}

/// An integer amount: a JSON integer when it fits 64 bits (always, in practice), else a float.
/// A slashed amount as a JSON integer with every digit (Python's `int`), beyond 64 bits too
/// (`serde_json` has `arbitrary_precision` in this workspace).
fn amount_json(amount: u128) -> Value {
    serde_json::from_str::<serde_json::Number>(&amount.to_string())
        .map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    #[test]
    fn slashed_amounts_keep_every_digit() {
        assert_eq!(
            super::amount_json(62_500_000_000).to_string(),
            "62500000000"
        );
        assert_eq!(
            super::amount_json(u128::from(u64::MAX) * 1000).to_string(),
            "18446744073709551615000"
        );
    }
}
