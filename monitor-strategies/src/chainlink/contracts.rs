//! The Chainlink contracts monitor (spec §4.8, PANIC's `monitors/contracts/chainlink.py`): one per
//! Chainlink chain, reading the price-feed contracts the chain's nodes take part in.
//!
//! A round:
//! 1. at most once a day, the feed list from the weiwatchers URL (`contractAddress` = aggregator,
//!    `proxyAddress`, `contractVersion` 3 or 4); a failure → error envelope 5018 and nothing else
//!    this round (retried next round);
//! 2. at most once a day (again next round if a node's address could not be read), each node's
//!    address: the `account` label of `eth_balance` from the first of its Prometheus URLs that
//!    answers;
//! 3. the first EVM node that answers `eth_syncing` with `false`; none → error envelope 5019;
//!    when the feeds or the addresses were refreshed, which feeds each node takes part in:
//!    v3 aggregators whose `getOracles()` holds the node's address, v4 aggregators whose
//!    `transmitters()` does (kept per node as proxy addresses);
//! 4. one result message per node with an address: per proxy, the latest round, the node's
//!    payment, and the rounds the node took part in since the last block monitored (the current
//!    block on the first round) from `SubmissionReceived` (v3, filtered by oracle) and
//!    `NewTransmission` (v4) logs. A v3 round whose `getRoundData` reverts has no consensus yet:
//!    its values are null and the next round re-reads from the block before its event. A v4 node
//!    that is no longer a transmitter has that contract skipped. A node whose reads fail is skipped
//!    this round, and its block ranges are read again next round.
//!
//! Differences from PANIC, on purpose:
//! * a node's per-contract progress (last block, last round observed) is committed only when all
//!   its reads succeeded, so a transport error mid-way does not lose rounds;
//! * a participation refresh that could not run (no EVM node, a failed call) is retried next
//!   round instead of waiting a day;
//! * a weiwatchers answer that is not a JSON list of feeds is 5018 (PANIC crashed the round);
//! * any per-node read error (transport, JSON-RPC error, undecodable answer) skips the node (PANIC
//!   restarted the monitor on the latter two).
//!
//! Integers go out as JSON integers with every digit, also above `u64`/`i64` (payments over 18.4
//! tokens in wei): the workspace's serde_json has `arbitrary_precision` (see
//! [`crate::chainlink::abi::decimal_json`]).

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use alloy_primitives::{Address, Uint, B256};
use alloy_sol_types::{SolCall, SolEvent};
use async_trait::async_trait;
use serde_json::{json, Map, Value};
use tracing::{debug, info, warn};

use monitor_core::envelope::{error_envelope, result_envelope, MetaData};
use monitor_core::{Monitor, PanicError, Publication, RawDataKey, RoundError};

use crate::chainlink::abi::{
    checksum, decimal_json, int_json, u128_json, uint_json, FluxAggregator, OffchainAggregator,
    Proxy, RoundData,
};
use crate::chainlink::node::{scrape, ChainlinkNodeConfig, Limiter, ScrapeError};
use crate::evm::rpc::{hex_bytes, to_quantity, JsonRpc, RpcError};
use crate::http::{Http, HttpErrorKind};
use crate::prometheus::{MetricValue, Requirement};

/// How often the feed list is fetched (PANIC: once a day).
pub(crate) const FEEDS_REFRESH_PERIOD: Duration = Duration::from_secs(86_400);

/// How often node addresses are read (PANIC: once a day, sooner after a failure).
pub(crate) const ADDRESSES_REFRESH_PERIOD: Duration = Duration::from_secs(86_400);

/// Everything one chain's contracts monitor needs (the Contract Monitors Manager's tuple).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChainlinkContractsConfig {
    /// The sub chain (for the component name).
    pub sub_chain: String,
    /// The chain id (`parent_id`, identical across the chain's node sections).
    pub parent_id: String,
    /// The feed list URL.
    pub weiwatchers_url: String,
    /// The EVM nodes, in order of preference.
    pub evm_nodes_urls: Vec<String>,
    /// The nodes with contracts and Prometheus monitoring on and at least one Prometheus URL.
    pub node_configs: Vec<ChainlinkNodeConfig>,
}

/// PANIC's component name: `Chainlink Contracts Monitor (<sub_chain>)`.
pub(crate) fn component_name(sub_chain: &str) -> String {
    format!("Chainlink Contracts Monitor ({sub_chain})")
}

/// One feed of the weiwatchers list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Feed {
    /// `contractAddress`: the aggregator.
    pub aggregator: Address,
    /// `proxyAddress` as written in the list (the key of the data).
    pub proxy: String,
    /// The proxy, parsed.
    pub proxy_address: Address,
    /// `contractVersion`: 3 or 4.
    pub version: u8,
}

/// Parses the weiwatchers list: entries without a usable aggregator, proxy or a version of 3 or 4
/// are skipped (logged).
pub(crate) fn parse_feeds(body: &[u8]) -> Result<Vec<Feed>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the feed list is not JSON: {e}"))?;
    let entries = value
        .as_array()
        .ok_or_else(|| "the feed list is not a JSON array".to_owned())?;
    let mut feeds = Vec::new();
    for entry in entries {
        let version = match entry.get("contractVersion") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let Some(version @ (3 | 4)) = version.and_then(|v| u8::try_from(v).ok()) else {
            debug!(feed = %entry, "feed skipped: contractVersion is not 3 or 4");
            continue;
        };
        let address = |field: &str| {
            entry
                .get(field)
                .and_then(Value::as_str)
                .and_then(|s| Address::from_str(s.trim()).ok().map(|a| (s.to_owned(), a)))
        };
        match (address("contractAddress"), address("proxyAddress")) {
            (Some((_, aggregator)), Some((proxy, proxy_address))) => feeds.push(Feed {
                aggregator,
                proxy,
                proxy_address,
                version,
            }),
            _ => debug!(feed = %entry, "feed skipped: no usable contract or proxy address"),
        }
    }
    Ok(feeds)
}

/// The proxies a node takes part in, by version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NodeContracts {
    v3: Vec<(String, Address)>,
    v4: Vec<(String, Address)>,
}

/// A node's progress on one proxy, carried across rounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Progress {
    last_block: Option<u64>,
    last_round_observed: Option<u128>,
}

/// The Chainlink contracts monitor strategy.
#[derive(Debug)]
pub struct ChainlinkContractsMonitor {
    name: String,
    config: ChainlinkContractsConfig,
    prometheus_http: Http,
    public_http: Http,
    evm: Vec<JsonRpc>,
    feeds: Vec<Feed>,
    /// Node id → address, in node config order.
    node_address: Vec<(String, Address)>,
    node_contracts: HashMap<String, NodeContracts>,
    /// (node id, proxy) → progress.
    progress: HashMap<(String, String), Progress>,
    feeds_limiter: Limiter,
    addresses_limiter: Limiter,
    refilter_pending: bool,
}

impl ChainlinkContractsMonitor {
    /// A monitor for `config`: `prometheus_http` for the nodes' Prometheus endpoints,
    /// `public_http` for the weiwatchers list, `evm_http` for JSON-RPC (PANIC's 2 s timeout).
    ///
    /// Fails with 5017 when the EVM node list or the node list is empty.
    pub fn new(
        config: ChainlinkContractsConfig,
        prometheus_http: Http,
        public_http: Http,
        evm_http: Http,
    ) -> Result<Self, PanicError> {
        let name = component_name(&config.sub_chain);
        if config.evm_nodes_urls.is_empty() {
            return Err(PanicError::not_enough_data_sources(&name, "evm_nodes"));
        }
        if config.node_configs.is_empty() {
            return Err(PanicError::not_enough_data_sources(&name, "node_configs"));
        }
        let evm = config
            .evm_nodes_urls
            .iter()
            .map(|url| JsonRpc::new(evm_http.clone(), url))
            .collect();
        Ok(ChainlinkContractsMonitor {
            name,
            config,
            prometheus_http,
            public_http,
            evm,
            feeds: Vec::new(),
            node_address: Vec::new(),
            node_contracts: HashMap::new(),
            progress: HashMap::new(),
            feeds_limiter: Limiter::new(FEEDS_REFRESH_PERIOD),
            addresses_limiter: Limiter::new(ADDRESSES_REFRESH_PERIOD),
            refilter_pending: false,
        })
    }

    /// Overrides the refresh periods of the feed list and of the node addresses.
    pub fn with_refresh_periods(mut self, feeds: Duration, addresses: Duration) -> Self {
        self.feeds_limiter = Limiter::new(feeds);
        self.addresses_limiter = Limiter::new(addresses);
        self
    }

    /// The config.
    pub fn config(&self) -> &ChainlinkContractsConfig {
        &self.config
    }

    fn error_publication(&self, error: &PanicError) -> Publication {
        let parent_id = self
            .config
            .node_configs
            .first()
            .map_or(self.config.parent_id.as_str(), |n| n.parent_id.as_str());
        let meta = MetaData::new(&self.name)
            .with("node_parent_id", parent_id)
            .timed();
        Publication::new(RawDataKey::ChainlinkContracts, error_envelope(meta, error))
    }

    async fn fetch_feeds(&self) -> Result<Vec<Feed>, String> {
        let url = &self.config.weiwatchers_url;
        let response = self.public_http.get(url).await.map_err(|e| e.to_string())?;
        if !response.is_success() {
            return Err(format!("HTTP {}", response.status));
        }
        parse_feeds(&response.body)
    }

    /// Each node's address; the flag says whether every node got one.
    async fn get_nodes_address(&self) -> (Vec<(String, Address)>, bool) {
        let requested = [("eth_balance", Requirement::Strict)];
        let mut found = Vec::new();
        let mut complete = true;
        // One set of query buffers for this (rare) lookup.
        let mut scratch = crate::prometheus::Scratch::new();
        for node in &self.config.node_configs {
            let mut address = None;
            for url in &node.node_prometheus_urls {
                match scrape(&self.prometheus_http, url, &requested, &mut scratch).await {
                    Ok(data) => {
                        let account = match data.get("eth_balance") {
                            Some(MetricValue::Labelled(entries)) => {
                                entries.iter().find_map(|e| e.label("account"))
                            }
                            _ => None,
                        };
                        match account.map(|a| (a, Address::from_str(a.trim()))) {
                            Some((_, Ok(a))) => address = Some(a),
                            Some((text, Err(e))) => warn!(monitor = %self.name,
                                node = %node.node_name, account = text, error = %e,
                                "eth_balance account is not an address"),
                            None => {
                                warn!(monitor = %self.name, node = %node.node_name, url = %monitor_core::redact_url(url),
                                "eth_balance has no account label")
                            }
                        }
                        break;
                    }
                    Err(ScrapeError::Http(e)) => {
                        // Another source may answer.
                        debug!(monitor = %self.name, node = %node.node_name, error = %e,
                            "prometheus source not usable for the node address");
                    }
                    Err(e) => {
                        // The node answered but without what we need: only one node is active
                        // among the replicas, so the others cannot do better.
                        warn!(monitor = %self.name, node = %node.node_name, error = %e,
                            "could not read the node address");
                        break;
                    }
                }
            }
            match address {
                Some(a) => found.push((node.node_id.clone(), a)),
                None => complete = false,
            }
        }
        (found, complete)
    }

    /// The first EVM node that answers and is not syncing.
    async fn select_node(&self) -> Option<usize> {
        for (index, rpc) in self.evm.iter().enumerate() {
            match rpc.syncing().await {
                Ok(false) => return Some(index),
                Ok(true) => {
                    debug!(monitor = %self.name, url = %monitor_core::redact_url(rpc.url()), "evm node is syncing")
                }
                Err(e) => {
                    debug!(monitor = %self.name, url = %monitor_core::redact_url(rpc.url()), error = %e,
                    "evm node not usable")
                }
            }
        }
        None
    }

    /// Which feeds each node takes part in (one `getOracles`/`transmitters` call per feed).
    async fn filter_contracts_by_node(
        &self,
        rpc: &JsonRpc,
    ) -> Result<HashMap<String, NodeContracts>, RpcError> {
        let mut members: Vec<Vec<Address>> = Vec::with_capacity(self.feeds.len());
        for feed in &self.feeds {
            let list = if feed.version == 3 {
                call(rpc, &feed.aggregator, &FluxAggregator::getOraclesCall {}).await?
            } else {
                call(
                    rpc,
                    &feed.aggregator,
                    &OffchainAggregator::transmittersCall {},
                )
                .await?
            };
            members.push(list);
        }
        let mut out = HashMap::new();
        for (node_id, address) in &self.node_address {
            let mut contracts = NodeContracts::default();
            for (feed, list) in self.feeds.iter().zip(&members) {
                if list.contains(address) {
                    let entry = (feed.proxy.clone(), feed.proxy_address);
                    if feed.version == 3 {
                        contracts.v3.push(entry);
                    } else {
                        contracts.v4.push(entry);
                    }
                }
            }
            out.insert(node_id.clone(), contracts);
        }
        Ok(out)
    }

    fn progress_of(&self, node_id: &str, proxy: &str) -> Progress {
        self.progress
            .get(&(node_id.to_owned(), proxy.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    /// First block to read: the one after the last monitored, or the current one on the first
    /// round (never beyond the current one).
    fn first_block(progress: Progress, current: u64) -> u64 {
        progress
            .last_block
            .map_or(current, |b| b.saturating_add(1))
            .min(current)
    }

    /// v3 data of one node; progress updates are returned, not applied.
    async fn v3_data(
        &self,
        rpc: &JsonRpc,
        node_id: &str,
        node: Address,
        proxies: &[(String, Address)],
        out: &mut Map<String, Value>,
        updates: &mut Vec<(String, Progress)>,
    ) -> Result<(), RpcError> {
        for (proxy, proxy_address) in proxies {
            let aggregator: Address = call(rpc, proxy_address, &Proxy::aggregatorCall {}).await?;
            let description: String = call(rpc, proxy_address, &Proxy::descriptionCall {}).await?;
            let mut current = rpc.block_number().await?;
            let progress = self.progress_of(node_id, proxy);
            let from = Self::first_block(progress, current);
            let filter = json!({
                "address": checksum(&aggregator),
                "fromBlock": to_quantity(from),
                "toBlock": to_quantity(current),
                "topics": [
                    FluxAggregator::SubmissionReceived::SIGNATURE_HASH.to_string(),
                    Value::Null,
                    Value::Null,
                    B256::left_padding_from(node.as_slice()).to_string(),
                ],
            });
            let logs = rpc.get_logs(filter).await?;
            let latest: RoundData = call(rpc, &aggregator, &FluxAggregator::latestRoundDataCall {})
                .await?
                .into();
            let payment = call(
                rpc,
                &aggregator,
                &FluxAggregator::withdrawablePaymentCall { _oracle: node },
            )
            .await?;
            let mut entry = latest_entry(3, &aggregator, &description, &latest);
            entry.insert("withdrawablePayment".to_owned(), uint_json(payment));
            let mut historical = Vec::new();
            let mut last_round_observed = progress.last_round_observed;
            for log in &logs {
                let event = FluxAggregator::SubmissionReceived::decode_raw_log(
                    log.topics.iter().map(|t| B256::from(*t)),
                    &log.data,
                )
                .map_err(|e| rpc.bad_answer("eth_getLogs", format!("SubmissionReceived: {e}")))?;
                let round_id = event.round;
                last_round_observed = Some(u128::from(round_id));
                let round = match call(
                    rpc,
                    &aggregator,
                    &FluxAggregator::getRoundDataCall {
                        _roundId: Uint::from(round_id),
                    },
                )
                .await
                {
                    Ok(r) => Some(RoundData::from(r)),
                    Err(e) if e.is_revert() => {
                        info!(monitor = %self.name, node = node_id, proxy = %proxy, round = round_id,
                            error = %e, "no consensus on the round yet; it will be checked again");
                        None
                    }
                    Err(e) => return Err(e),
                };
                let mut h = Map::new();
                h.insert("roundId".to_owned(), Value::from(round_id));
                h.insert(
                    "roundAnswer".to_owned(),
                    round.map_or(Value::Null, |r| int_json(r.answer)),
                );
                h.insert(
                    "roundTimestamp".to_owned(),
                    round.map_or(Value::Null, |r| uint_json(r.updated_at)),
                );
                h.insert(
                    "answeredInRound".to_owned(),
                    round.map_or(Value::Null, |r| u128_json(r.answered_in_round)),
                );
                h.insert("nodeSubmission".to_owned(), int_json(event.submission));
                historical.push(Value::Object(h));
                if round.is_none() {
                    current = log.block_number.saturating_sub(1);
                    break;
                }
            }
            entry.insert("historicalRounds".to_owned(), Value::Array(historical));
            entry.insert(
                "lastRoundObserved".to_owned(),
                last_round_observed.map_or(Value::Null, u128_json),
            );
            out.insert(proxy.clone(), Value::Object(entry));
            updates.push((
                proxy.clone(),
                Progress {
                    last_block: Some(current),
                    last_round_observed,
                },
            ));
        }
        Ok(())
    }

    /// v4 data of one node; progress updates are returned, not applied.
    async fn v4_data(
        &self,
        rpc: &JsonRpc,
        node_id: &str,
        node: Address,
        proxies: &[(String, Address)],
        out: &mut Map<String, Value>,
        updates: &mut Vec<(String, Progress)>,
    ) -> Result<(), RpcError> {
        for (proxy, proxy_address) in proxies {
            let aggregator: Address = call(rpc, proxy_address, &Proxy::aggregatorCall {}).await?;
            let description: String = call(rpc, proxy_address, &Proxy::descriptionCall {}).await?;
            let current = rpc.block_number().await?;
            let progress = self.progress_of(node_id, proxy);
            let from = Self::first_block(progress, current);
            let filter = json!({
                "address": checksum(&aggregator),
                "fromBlock": to_quantity(from),
                "toBlock": to_quantity(current),
                "topics": [OffchainAggregator::NewTransmission::SIGNATURE_HASH.to_string()],
            });
            let logs = rpc.get_logs(filter).await?;
            let latest: RoundData = call(
                rpc,
                &aggregator,
                &OffchainAggregator::latestRoundDataCall {},
            )
            .await?
            .into();
            let transmitters: Vec<Address> =
                call(rpc, &aggregator, &OffchainAggregator::transmittersCall {}).await?;
            let Some(index) = transmitters.iter().position(|t| *t == node) else {
                warn!(monitor = %self.name, node = node_id, proxy = %proxy,
                    "node is no longer a transmitter of the contract; skipped");
                continue;
            };
            let payment = call(
                rpc,
                &aggregator,
                &OffchainAggregator::owedPaymentCall { _transmitter: node },
            )
            .await?;
            let mut entry = latest_entry(4, &aggregator, &description, &latest);
            entry.insert("owedPayment".to_owned(), uint_json(payment));
            let mut historical = Vec::new();
            let mut last_round_observed = progress.last_round_observed;
            for log in &logs {
                let event = OffchainAggregator::NewTransmission::decode_raw_log(
                    log.topics.iter().map(|t| B256::from(*t)),
                    &log.data,
                )
                .map_err(|e| rpc.bad_answer("eth_getLogs", format!("NewTransmission: {e}")))?;
                let round_id = event.aggregatorRoundId;
                let round: RoundData = call(
                    rpc,
                    &aggregator,
                    &OffchainAggregator::getRoundDataCall {
                        _roundId: Uint::from(round_id),
                    },
                )
                .await?
                .into();
                let submission = event
                    .observers
                    .iter()
                    .position(|observer| usize::from(*observer) == index)
                    .and_then(|pos| event.observations.get(pos));
                match submission {
                    Some(_) => last_round_observed = Some(u128::from(round_id)),
                    None => debug!(monitor = %self.name, node = node_id, proxy = %proxy,
                        round = round_id, "node did not observe in the round"),
                }
                let mut h = Map::new();
                h.insert("roundId".to_owned(), Value::from(round_id));
                h.insert("roundAnswer".to_owned(), int_json(round.answer));
                h.insert("roundTimestamp".to_owned(), uint_json(round.updated_at));
                h.insert(
                    "answeredInRound".to_owned(),
                    u128_json(round.answered_in_round),
                );
                h.insert(
                    "nodeSubmission".to_owned(),
                    submission.map_or(Value::Null, |s| decimal_json(&s.to_string())),
                );
                h.insert(
                    "noOfObservations".to_owned(),
                    Value::from(event.observations.len()),
                );
                h.insert(
                    "noOfTransmitters".to_owned(),
                    Value::from(transmitters.len()),
                );
                historical.push(Value::Object(h));
            }
            entry.insert("historicalRounds".to_owned(), Value::Array(historical));
            entry.insert(
                "lastRoundObserved".to_owned(),
                last_round_observed.map_or(Value::Null, u128_json),
            );
            out.insert(proxy.clone(), Value::Object(entry));
            updates.push((
                proxy.clone(),
                Progress {
                    last_block: Some(current),
                    last_round_observed,
                },
            ));
        }
        Ok(())
    }

    /// The data of one node; progress is committed only when every read succeeded.
    async fn node_data(
        &mut self,
        rpc_index: usize,
        node_id: &str,
        node: Address,
    ) -> Result<Value, RpcError> {
        let mut out = Map::new();
        let Some(contracts) = self.node_contracts.get(node_id).cloned() else {
            return Ok(Value::Object(out));
        };
        let Some(rpc) = self.evm.get(rpc_index) else {
            return Ok(Value::Object(out));
        };
        let mut updates = Vec::new();
        self.v3_data(rpc, node_id, node, &contracts.v3, &mut out, &mut updates)
            .await?;
        self.v4_data(rpc, node_id, node, &contracts.v4, &mut out, &mut updates)
            .await?;
        for (proxy, progress) in updates {
            self.progress.insert((node_id.to_owned(), proxy), progress);
        }
        Ok(Value::Object(out))
    }
}

/// The latest-round part of a proxy entry, in PANIC's key order.
pub(crate) fn latest_entry(
    version: u8,
    aggregator: &Address,
    description: &str,
    latest: &RoundData,
) -> Map<String, Value> {
    let mut entry = Map::new();
    entry.insert("contractVersion".to_owned(), Value::from(version));
    entry.insert(
        "aggregatorAddress".to_owned(),
        Value::from(checksum(aggregator)),
    );
    entry.insert("description".to_owned(), Value::from(description));
    entry.insert("latestRound".to_owned(), u128_json(latest.round_id));
    entry.insert("latestAnswer".to_owned(), int_json(latest.answer));
    entry.insert("latestTimestamp".to_owned(), uint_json(latest.updated_at));
    entry.insert(
        "answeredInRound".to_owned(),
        u128_json(latest.answered_in_round),
    );
    entry
}

/// `eth_call` of a typed call on `to`, decoded by alloy.
async fn call<C: SolCall>(rpc: &JsonRpc, to: &Address, call: &C) -> Result<C::Return, RpcError> {
    let output = rpc.eth_call(&checksum(to), &call.abi_encode()).await?;
    C::abi_decode_returns(&output).map_err(|e| {
        rpc.bad_answer(
            "eth_call",
            format!(
                "{} on {to}: {e} (answer {})",
                C::SIGNATURE,
                hex_bytes(&output)
            ),
        )
    })
}

#[async_trait]
impl Monitor for ChainlinkContractsMonitor {
    fn name(&self) -> &str {
        &self.name
    }

    async fn round(&mut self) -> Result<Vec<Publication>, RoundError> {
        let mut refilter = self.refilter_pending;
        let mut feeds_error = None;
        if self.feeds_limiter.can_do() {
            match self.fetch_feeds().await {
                Ok(feeds) => {
                    info!(monitor = %self.name, count = feeds.len(), "feed list retrieved");
                    self.feeds = feeds;
                    self.feeds_limiter.did();
                    refilter = true;
                }
                Err(e) => {
                    let error = PanicError::could_not_retrieve_contracts(
                        &self.name,
                        &self.config.weiwatchers_url,
                    );
                    warn!(monitor = %self.name, error = %e, "{}", error.message);
                    feeds_error = Some(error);
                }
            }
        }
        if self.addresses_limiter.can_do() {
            let (addresses, complete) = self.get_nodes_address().await;
            self.node_address = addresses;
            refilter = true;
            if complete {
                self.addresses_limiter.did();
            }
        }
        self.refilter_pending = refilter;

        if let Some(error) = feeds_error {
            return Ok(vec![self.error_publication(&error)]);
        }
        let Some(rpc_index) = self.select_node().await else {
            let error = PanicError::no_synced_data_source(&self.name, "EVM node");
            warn!(monitor = %self.name, "{}", error.message);
            return Ok(vec![self.error_publication(&error)]);
        };
        if refilter {
            if let Some(rpc) = self.evm.get(rpc_index) {
                match self.filter_contracts_by_node(rpc).await {
                    Ok(node_contracts) => {
                        debug!(monitor = %self.name, contracts = ?node_contracts,
                            "node participation");
                        self.node_contracts = node_contracts;
                        self.refilter_pending = false;
                    }
                    Err(e) => {
                        warn!(monitor = %self.name, url = %monitor_core::redact_url(rpc.url()), error = %e,
                        "could not filter contracts by node; retried next round")
                    }
                }
            }
        }

        let mut publications = Vec::new();
        for (node_id, address) in self.node_address.clone() {
            let data = match self.node_data(rpc_index, &node_id, address).await {
                Ok(data) => data,
                Err(e) => {
                    let url = self
                        .evm
                        .get(rpc_index)
                        .map(|rpc| monitor_core::redact_url(rpc.url()).into_owned())
                        .unwrap_or_default();
                    if e.is_http(HttpErrorKind::Down) {
                        warn!(monitor = %self.name, node = %node_id, url, error = %e,
                            "could not retrieve contract metrics for the node");
                    } else {
                        warn!(monitor = %self.name, node = %node_id, url, error = %e,
                            "unexpected answer when retrieving contract metrics for the node");
                    }
                    continue;
                }
            };
            let Some(node) = self
                .config
                .node_configs
                .iter()
                .find(|n| n.node_id == node_id)
            else {
                continue;
            };
            let meta = MetaData::new(&self.name)
                .with("node_name", node.node_name.as_str())
                .with("node_id", node.node_id.as_str())
                .with("node_parent_id", node.parent_id.as_str())
                .timed();
            debug!(monitor = %self.name, node = %node_id, data = %data, "contracts data");
            publications.push(Publication::new(
                RawDataKey::ChainlinkContracts,
                result_envelope(meta, data),
            ));
        }
        Ok(publications)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeds_are_parsed_leniently() {
        let body = br#"[
          {"contractAddress": "0x1c4C71524561630C10cD4B5028dC2fd7D1036F9E", "proxyAddress": "0x9bCCe0b5C6C3Ad1B9e93E1BbAdd12f358e77e45F", "contractVersion": 4},
          {"contractAddress": "0x61c9941077eb5fc81c95a38362bc6920093b7a48", "proxyAddress": "0xAeceBe652b04402D772B312E0a66A85FD2f3Efd1", "contractVersion": "3"},
          {"contractAddress": "0x61c9941077eb5fc81c95a38362bc6920093b7a48", "proxyAddress": null, "contractVersion": 3},
          {"contractAddress": "nope", "proxyAddress": "0xAeceBe652b04402D772B312E0a66A85FD2f3Efd1", "contractVersion": 3},
          {"contractAddress": "0x61c9941077eb5fc81c95a38362bc6920093b7a48", "proxyAddress": "0xAeceBe652b04402D772B312E0a66A85FD2f3Efd1", "contractVersion": 2},
          "garbage"
        ]"#;
        let feeds = parse_feeds(body).unwrap();
        assert_eq!(feeds.len(), 2);
        assert_eq!(feeds[0].version, 4);
        assert_eq!(feeds[0].proxy, "0x9bCCe0b5C6C3Ad1B9e93E1BbAdd12f358e77e45F");
        assert_eq!(
            checksum(&feeds[1].aggregator),
            "0x61c9941077EB5fC81c95A38362Bc6920093b7A48"
        );
        assert!(parse_feeds(b"{}").is_err());
        assert!(parse_feeds(b"<html>").is_err());
    }

    #[test]
    fn first_block() {
        let p = |b| Progress {
            last_block: b,
            last_round_observed: None,
        };
        assert_eq!(ChainlinkContractsMonitor::first_block(p(None), 10), 10);
        assert_eq!(ChainlinkContractsMonitor::first_block(p(Some(5)), 10), 6);
        assert_eq!(ChainlinkContractsMonitor::first_block(p(Some(10)), 10), 10);
        assert_eq!(ChainlinkContractsMonitor::first_block(p(Some(12)), 10), 10);
    }
}
