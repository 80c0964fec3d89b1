//! The Substrate node monitor (`node.substrate`, spec §4.7, `substrate.md` §1): one body
//! `{"websocket": env}` per round, straight from the nodes.
//!
//! * Heights come from the monitored node itself (`system_syncState`, the finalized header).
//! * Every other field is read from the data sources (in PANIC's order, the node itself last):
//!   each query goes to the **first synced source whose runtime has the item and whose storage
//!   holds at least one key of it** (after the Asset Hub migration the relay still lists
//!   `Staking` with empty storage). Each field is decided from the metadata (paged or legacy
//!   exposure, `HistoryDepth` constant or storage, `ClaimedRewards` or the ledger, disabled
//!   indices or pairs, ImOnline present or not); a field whose pallet no source's runtime has is
//!   `null` and the round still succeeds (docs/DECISIONS.md).
//! * `historical`: the finalized blocks since the last round (the first round: the finalized block
//!   only), at most 300 from an archive source, 246 from a pruned one, newest first, from the
//!   first synced archive data source (else the first synced one); each block's events decoded with
//!   that block's own runtime.
//!
//! Errors (PANIC's codes): 5015 the monitored node is unreachable, 5019 no synced data source,
//! 5031 a call failed, 5033 an answer or a value could not be read.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tracing::{debug, warn};

use monitor_core::envelope::{envelope, MetaData};
use monitor_core::{Monitor, PanicError, Publication, RawDataKey, RoundError};

use super::chain::{BlockView, ChainError, NodeClient};
use super::metadata::{ss58_decode, ss58_encode, uint_json, DValue, KeyArg};
use super::rpc::WsPool;
use super::{SubstrateDataSource, SubstrateNodeConfig};

/// Most blocks one round reads from an archive source (PANIC: 300).
const ARCHIVE_WINDOW: u64 = 300;
/// Most blocks one round reads from a pruned source (PANIC: 246).
const PRUNED_WINDOW: u64 = 246;

/// PANIC's component name for a node: `Node monitor (<name>)`.
pub(crate) fn component_name(node_name: &str) -> String {
    format!("Node monitor ({node_name})")
}

/// The Substrate node monitor strategy.
#[derive(Debug)]
pub struct SubstrateNodeMonitor {
    name: String,
    config: SubstrateNodeConfig,
    stash: Option<[u8; 32]>,
    node: NodeClient,
    sources: Vec<(SubstrateDataSource, NodeClient)>,
    last_height: Option<u64>,
    past_eras: Mutex<BTreeMap<u128, PastEra>>,
}

/// What is kept of an era before the active one: its exposure (total, page count; `None` when
/// the stash had none) and whether its rewards were seen claimed. Exposures of past eras are
/// final and claims are never undone, so these are read once (a claimed era is not read again,
/// an unclaimed one only re-reads its `ClaimedRewards`).
#[derive(Debug, Clone, Copy)]
struct PastEra {
    total: Option<u128>,
    pages: u128,
    claimed: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a panic while holding it: the cache is still valid.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SubstrateNodeMonitor {
    /// A monitor of `config` reading chain data from `data_sources` (in preference order; the
    /// planner appends the node itself last), its calls through `pool` with `timeout` each. No
    /// data source is PANIC's 5017; a URL that is not `ws://`/`wss://` is 5009.
    pub fn new(
        config: SubstrateNodeConfig,
        data_sources: Vec<SubstrateDataSource>,
        pool: &WsPool,
        timeout: Duration,
    ) -> Result<Self, PanicError> {
        let name = component_name(&config.node_name);
        if data_sources.is_empty() {
            return Err(PanicError::not_enough_data_sources(&name, "data_sources"));
        }
        let client = |url: &str| {
            pool.client(url, timeout)
                .map_err(|_| PanicError::invalid_url(url))
        };
        let node = NodeClient::new(&config.node_name, client(&config.node_ws_url)?);
        let mut sources = Vec::with_capacity(data_sources.len());
        for s in data_sources {
            let c = NodeClient::new(&s.node_name, client(&s.node_ws_url)?);
            sources.push((s, c));
        }
        let stash = if config.is_validator {
            ss58_decode(&config.stash_address)
        } else {
            None
        };
        if config.is_validator && stash.is_none() {
            warn!(monitor = %name, stash = %config.stash_address,
                "stash address is not SS58: validator fields will not match it");
        }
        Ok(SubstrateNodeMonitor {
            name,
            config,
            stash,
            node,
            sources,
            last_height: None,
            past_eras: Mutex::default(),
        })
    }

    /// The last finalized height whose `historical` entry was produced.
    pub fn last_height(&self) -> Option<u64> {
        self.last_height
    }

    fn meta_data(&self) -> MetaData {
        MetaData::new(&self.name)
            .with("node_name", self.config.node_name.as_str())
            .with("node_id", self.config.node_id.as_str())
            .with("node_parent_id", self.config.parent_id.as_str())
            .timed()
            .with("is_validator", self.config.is_validator)
            .with("stash_address", self.config.stash_address.as_str())
    }
}

#[async_trait]
impl Monitor for SubstrateNodeMonitor {
    fn name(&self) -> &str {
        &self.name
    }

    async fn round(&mut self) -> Result<Vec<Publication>, RoundError> {
        let outcome = self.collect().await;
        match &outcome {
            Ok(_) => debug!(monitor = %self.name, "substrate node data retrieved"),
            Err(e) => warn!(monitor = %self.name, code = e.code.code(), error = %e.message,
                "substrate node data could not be retrieved"),
        }
        let body = json!({ "websocket": envelope(self.meta_data(), outcome) });
        Ok(vec![Publication::new(RawDataKey::SubstrateNode, body)])
    }
}

/// A failed read mapped to PANIC's code: the monitored node unreachable is 5015, another failed
/// call 5031, unreadable data 5033.
fn panic_error(name: &str, node: &str, direct: bool, e: &ChainError) -> PanicError {
    match e {
        ChainError::Call(w) if direct && w.is_down() => PanicError::node_is_down(node),
        ChainError::Call(w) => PanicError::substrate_api_call(&format!("({node})"), &w.to_string()),
        ChainError::Malformed { .. } => {
            warn!(monitor = %name, error = %e, "substrate data could not be read");
            PanicError::substrate_websocket_data_could_not_be_obtained(node)
        }
    }
}

/// The synced data sources' best blocks for one round, with the lookups every field uses.
pub(crate) struct Sources<'a> {
    pub(crate) views: Vec<(&'a SubstrateDataSource, BlockView<'a>)>,
}

impl<'a> Sources<'a> {
    /// The synced sources (health, best block and its runtime); a source that fails is skipped.
    pub(crate) async fn synced(
        name: &str,
        sources: &'a [(SubstrateDataSource, NodeClient)],
    ) -> Sources<'a> {
        let mut views = Vec::new();
        for (s, client) in sources {
            let view = async {
                if client.is_syncing().await? {
                    return Ok(None);
                }
                let hash = client.best_hash().await?;
                let meta = client.metadata_at(&hash).await?;
                Ok::<_, ChainError>(Some(BlockView::new(client, hash, meta)))
            };
            match view.await {
                Ok(Some(v)) => views.push((s, v)),
                Ok(None) => {
                    debug!(monitor = %name, source = %s.node_name, "data source is syncing")
                }
                Err(e) => warn!(monitor = %name, source = %s.node_name, error = %e,
                    "data source not usable this round"),
            }
        }
        Sources { views }
    }

    /// The first source holding the item.
    pub(crate) async fn pick(
        &self,
        pallet: &str,
        item: &str,
    ) -> Result<Option<&BlockView<'a>>, ChainError> {
        for (_, v) in &self.views {
            if v.holds(pallet, item).await? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// The first source whose runtime has the item (its storage may be empty).
    pub(crate) fn pick_meta(&self, pallet: &str, item: &str) -> Option<&BlockView<'a>> {
        self.views
            .iter()
            .map(|(_, v)| v)
            .find(|v| v.has(pallet, item))
    }
}

/// A validator's exposure at an era.
struct Exposure {
    total: u128,
    own: u128,
    others: Vec<Value>,
    pages: u128,
}

fn uint(v: Option<&DValue>) -> Option<u128> {
    v.and_then(DValue::as_u128)
}

impl SubstrateNodeMonitor {
    async fn collect(&mut self) -> Result<Value, PanicError> {
        let name = self.name.clone();
        let node_name = self.config.node_name.clone();
        let direct = |e: ChainError| panic_error(&name, &node_name, true, &e);
        let (best, target) = self.node.sync_state().await.map_err(direct)?;
        let fin_hash = self.node.finalized_hash().await.map_err(direct)?;
        let finalized = self.node.block_number(&fin_hash).await.map_err(direct)?;

        let sources = Sources::synced(&self.name, &self.sources).await;
        if sources.views.is_empty() {
            return Err(PanicError::no_synced_data_source(
                &self.name,
                "websocket data source",
            ));
        }
        let indirect = |e: ChainError| panic_error(&name, &node_name, false, &e);
        let mut data = self
            .indirect(&sources, ss58_format(&sources).await)
            .await
            .map_err(indirect)?;
        let historical = match (self.config.is_validator, self.stash) {
            (true, Some(stash)) => {
                let (h, last) = self.historical(&sources, &stash).await.map_err(indirect)?;
                self.last_height = last;
                Value::Array(h)
            }
            (true, None) => Value::Array(Vec::new()),
            (false, _) => Value::Array(Vec::new()),
        };
        if let Value::Object(m) = &mut data {
            m.insert("best_height".to_owned(), json!(best));
            m.insert("target_height".to_owned(), json!(target));
            m.insert("finalized_height".to_owned(), json!(finalized));
            m.insert("historical".to_owned(), historical);
        }
        Ok(data)
    }

    /// Every key but the heights and `historical`.
    async fn indirect(&self, s: &Sources<'_>, ss58: u16) -> Result<Value, ChainError> {
        let system_properties = match s.pick_meta("System", "Number") {
            Some(v) => v.node.properties().await?,
            None => Value::Null,
        };
        let current_session = match s.pick("Session", "CurrentIndex").await? {
            Some(v) => uint(v.get("Session", "CurrentIndex", &[]).await?.as_ref()),
            None => None,
        };
        let era_src = s.pick("Staking", "ActiveEra").await?;
        let current_era = match era_src {
            Some(v) => uint(
                v.get("Staking", "ActiveEra", &[])
                    .await?
                    .as_ref()
                    .and_then(|e| e.field("index")),
            ),
            None => None,
        };
        let history_depth = history_depth(era_src, s).await?;
        let opt = |v: Option<u128>| v.map_or(Value::Null, uint_json);
        let mut out = json!({
            "current_session": opt(current_session),
            "current_era": opt(current_era),
            "history_depth_eras": opt(history_depth),
            "system_properties": system_properties,
        });
        let Some(stash) = self.stash.filter(|_| self.config.is_validator) else {
            if let Value::Object(m) = &mut out {
                let fixed = json!({
                    "active": false, "elected": false, "disabled": false, "authored_blocks": 0,
                    "sent_heartbeat": false,
                    "eras_stakers": {"total": null, "own": null, "others": []},
                    "controller_address": null, "claimed_rewards": [], "unclaimed_rewards": [],
                    "previous_era_rewards": 0,
                });
                if let Value::Object(f) = fixed {
                    m.extend(f);
                }
            }
            return Ok(out);
        };
        let account = KeyArg::Account(stash);
        let has_session = s.pick_meta("Session", "Validators").is_some();
        let has_staking = s.pick_meta("Staking", "ActiveEra").is_some();

        // active, disabled: Session.Validators and DisabledValidators of the same source.
        let val_src = s.pick("Session", "Validators").await?;
        let mut index = None;
        let mut disabled = has_session.then_some(false);
        if let Some(v) = val_src {
            let validators = v.get("Session", "Validators", &[]).await?;
            index = validators
                .as_ref()
                .and_then(DValue::items)
                .and_then(|vs| vs.iter().position(|a| a.account() == Some(&stash)));
            if let Some(i) = index {
                let d = v.get("Session", "DisabledValidators", &[]).await?;
                let hit = d.as_ref().and_then(DValue::items).is_some_and(|items| {
                    items.iter().any(|x| {
                        let first = x.items().and_then(|p| p.first()).unwrap_or(x);
                        first.as_u128() == Some(i as u128)
                    })
                });
                disabled = Some(hit);
            }
        }
        let active = has_session.then_some(index.is_some());

        // elected: a key of ErasStakersOverview(CurrentEra, stash) (ErasStakers without Overview).
        let mut elected = has_staking.then_some(false);
        if let Some(v) = s.pick("Staking", "CurrentEra").await? {
            if let Some(ce) = uint(v.get("Staking", "CurrentEra", &[]).await?.as_ref()) {
                let item = if v.has("Staking", "ErasStakersOverview") {
                    "ErasStakersOverview"
                } else {
                    "ErasStakers"
                };
                elected = Some(
                    v.exists("Staking", item, &[KeyArg::Int(ce), account])
                        .await?,
                );
            }
        }

        // ImOnline, where a runtime has it.
        let (mut authored_blocks, mut sent_heartbeat) = (Value::Null, Value::Null);
        if let Some(v) = s.pick_meta("ImOnline", "AuthoredBlocks") {
            let session = KeyArg::Int(current_session.unwrap_or(0));
            let ab = v
                .get("ImOnline", "AuthoredBlocks", &[session, account])
                .await?;
            authored_blocks = uint_json(uint(ab.as_ref()).unwrap_or(0));
            let hb = match index {
                Some(i) => v
                    .get(
                        "ImOnline",
                        "ReceivedHeartbeats",
                        &[session, KeyArg::Int(i as u128)],
                    )
                    .await?
                    .is_some_and(|x| x != DValue::Null),
                None => false,
            };
            sent_heartbeat = Value::Bool(hb);
        }

        let eras_stakers = match current_era {
            Some(era) => match exposure(s, era, stash, ss58).await? {
                Some(e) => json!({"total": uint_json(e.total), "own": uint_json(e.own),
                    "others": e.others}),
                None => json!({"total": 0, "own": 0, "others": []}),
            },
            None => json!({"total": null, "own": null, "others": []}),
        };

        let bonded_src = s.pick("Staking", "Bonded").await?;
        let mut controller = None;
        if let Some(v) = bonded_src {
            controller = v
                .get("Staking", "Bonded", &[account])
                .await?
                .as_ref()
                .and_then(DValue::account)
                .copied();
        }
        let mut claimed = std::collections::BTreeSet::new();
        if let (Some(v), Some(c)) = (bonded_src, controller) {
            if let Some(ledger) = v.get("Staking", "Ledger", &[KeyArg::Account(c)]).await? {
                let list = ledger
                    .field("legacy_claimed_rewards")
                    .or_else(|| ledger.field("claimed_rewards"));
                for e in list.and_then(DValue::items).unwrap_or(&[]) {
                    if let Some(e) = e.as_u128() {
                        claimed.insert(e);
                    }
                }
            }
        }
        let mut unclaimed = Vec::new();
        if let (Some(era), Some(depth)) = (current_era, history_depth) {
            let cr_src = s.pick("Staking", "ClaimedRewards").await?;
            let start = (era + 1).saturating_sub(depth);
            // Past eras' exposures never change and a claimed era stays claimed: both are kept
            // across rounds, so a round reads only what can still change (see `PastEra`).
            let mut cache = {
                let mut past = lock(&self.past_eras);
                past.retain(|e, _| *e >= start);
                std::mem::take(&mut *past)
            };
            for e in start..era {
                let known = cache.get(&e).copied();
                if known.is_some_and(|k| k.claimed) {
                    claimed.insert(e);
                    continue;
                }
                let (total, pages) = match known {
                    Some(k) => (k.total, k.pages),
                    None => match exposure(s, e, stash, ss58).await? {
                        Some(x) => (Some(x.total), x.pages),
                        None => (None, 0),
                    },
                };
                if let (Some(cr), Some(_)) = (cr_src, total) {
                    let got = cr
                        .get("Staking", "ClaimedRewards", &[KeyArg::Int(e), account])
                        .await?;
                    let n = got.as_ref().and_then(DValue::items).map_or(0, <[_]>::len);
                    if pages > 0 && n as u128 >= pages {
                        claimed.insert(e);
                    }
                }
                let is_claimed = claimed.contains(&e);
                cache.insert(
                    e,
                    PastEra {
                        total,
                        pages,
                        claimed: is_claimed,
                    },
                );
                if !is_claimed && total.is_some_and(|t| t > 0) {
                    unclaimed.push(uint_json(e));
                }
            }
            *lock(&self.past_eras) = cache;
        }
        let mut previous_era_rewards = 0u128;
        if let Some(era) = current_era.filter(|e| *e > 0) {
            if let Some(v) = s.pick("Staking", "ErasRewardPoints").await? {
                let rp = v
                    .get("Staking", "ErasRewardPoints", &[KeyArg::Int(era - 1)])
                    .await?;
                let individual = rp.as_ref().and_then(|r| r.field("individual"));
                for pair in individual.and_then(DValue::items).unwrap_or(&[]) {
                    if let Some([who, pts]) = pair.items() {
                        if who.account() == Some(&stash) {
                            previous_era_rewards = pts.as_u128().unwrap_or(0);
                        }
                    }
                }
            }
        }
        let bool_or_null = |b: Option<bool>| b.map_or(Value::Null, Value::Bool);
        let staking = |v: Value| if has_staking { v } else { Value::Null };
        if let Value::Object(m) = &mut out {
            m.insert("active".to_owned(), bool_or_null(active));
            m.insert("elected".to_owned(), bool_or_null(elected));
            m.insert("disabled".to_owned(), bool_or_null(disabled));
            m.insert("authored_blocks".to_owned(), authored_blocks);
            m.insert("sent_heartbeat".to_owned(), sent_heartbeat);
            m.insert("eras_stakers".to_owned(), staking(eras_stakers));
            m.insert(
                "controller_address".to_owned(),
                controller.map_or(Value::Null, |c| Value::String(ss58_encode(&c, ss58))),
            );
            m.insert(
                "claimed_rewards".to_owned(),
                staking(Value::Array(claimed.into_iter().map(uint_json).collect())),
            );
            m.insert(
                "unclaimed_rewards".to_owned(),
                staking(Value::Array(unclaimed)),
            );
            m.insert(
                "previous_era_rewards".to_owned(),
                staking(uint_json(previous_era_rewards)),
            );
        }
        Ok(out)
    }

    /// The `historical` entries of this round and the new last height.
    async fn historical(
        &self,
        s: &Sources<'_>,
        stash: &[u8; 32],
    ) -> Result<(Vec<Value>, Option<u64>), ChainError> {
        let Some((source, view)) = s
            .views
            .iter()
            .find(|(d, _)| d.is_archive_node)
            .or_else(|| s.views.first())
        else {
            return Ok((Vec::new(), self.last_height));
        };
        let node = view.node;
        let fin_hash = node.finalized_hash().await?;
        let fin = node.block_number(&fin_hash).await?;
        let window = if source.is_archive_node {
            ARCHIVE_WINDOW
        } else {
            PRUNED_WINDOW
        };
        let from = match self.last_height {
            None => fin,
            Some(last) => (last + 1).max((fin + 1).saturating_sub(window)),
        };
        let mut out = Vec::new();
        for h in (from..=fin).rev() {
            let Some(hash) = node.block_hash(h).await? else {
                continue;
            };
            out.push(block_entry(node, &hash, h, stash).await?);
        }
        Ok((out, Some(fin.max(self.last_height.unwrap_or(0)))))
    }
}

/// One `historical` entry: the stash's slashes and offline report in block `hash`'s events,
/// decoded with that block's runtime.
async fn block_entry(
    node: &NodeClient,
    hash: &str,
    height: u64,
    stash: &[u8; 32],
) -> Result<Value, ChainError> {
    let meta = node.metadata_at(hash).await?;
    let has_im_online = meta.storage("ImOnline", "AuthoredBlocks").is_some();
    let view = BlockView::new(node, hash.to_owned(), Arc::clone(&meta));
    let events = view.get("System", "Events", &[]).await?;
    let mut amount = 0u128;
    let mut offline = false;
    for record in events.as_ref().and_then(DValue::items).unwrap_or(&[]) {
        let Some((pallet, Some(event))) = record.field("event").and_then(DValue::variant) else {
            continue;
        };
        let Some((name, fields)) = event.variant() else {
            continue;
        };
        let values: Vec<&DValue> = match fields {
            Some(DValue::Struct(f)) => f.iter().map(|(_, v)| v).collect(),
            Some(DValue::Seq(f)) => f.iter().collect(),
            Some(v) => vec![v],
            None => Vec::new(),
        };
        match (pallet, name) {
            ("Staking", "Slashed") if values.first().and_then(|v| v.account()) == Some(stash) => {
                let a = values.get(1).and_then(|v| v.as_u128()).unwrap_or(0);
                amount = amount.saturating_add(a);
            }
            ("ImOnline", "SomeOffline") => {
                let list = values.first().and_then(|v| v.items()).unwrap_or(&[]);
                if list.iter().any(|entry| {
                    entry
                        .items()
                        .and_then(|e| e.first())
                        .and_then(DValue::account)
                        == Some(stash)
                }) {
                    offline = true;
                }
            }
            _ => {}
        }
    }
    Ok(json!({
        "height": height,
        "slashed": amount > 0,
        "slashed_amount": uint_json(amount),
        "is_offline": if has_im_online { Value::Bool(offline) } else { Value::Null },
    }))
}

/// The chain's SS58 format: the first source's `system_properties.ss58Format` (42 by default).
async fn ss58_format(s: &Sources<'_>) -> u16 {
    for (_, v) in &s.views {
        if let Ok(p) = v.node.properties().await {
            if let Some(f) = p.get("ss58Format").and_then(Value::as_u64) {
                return u16::try_from(f).unwrap_or(42);
            }
        }
    }
    42
}

/// `Staking.HistoryDepth`: the constant (current runtimes) or the storage value (before 2022),
/// from the source of `ActiveEra`, else the first synced source that has it.
async fn history_depth(
    era_src: Option<&BlockView<'_>>,
    s: &Sources<'_>,
) -> Result<Option<u128>, ChainError> {
    for v in era_src.into_iter().chain(s.views.iter().map(|(_, v)| v)) {
        if let Some(c) = v.meta.constant("Staking", "HistoryDepth") {
            let c = c.map_err(|e| ChainError::Malformed {
                node: v.node.name().to_owned(),
                problem: e.to_string(),
            })?;
            return Ok(c.as_u128());
        }
        if v.has("Staking", "HistoryDepth") {
            return Ok(uint(v.get("Staking", "HistoryDepth", &[]).await?.as_ref()));
        }
    }
    Ok(None)
}

/// The stash's exposure at `era`: the paged Overview with every page where it is set, else the
/// legacy `ErasStakers`.
async fn exposure(
    s: &Sources<'_>,
    era: u128,
    stash: [u8; 32],
    ss58: u16,
) -> Result<Option<Exposure>, ChainError> {
    let account = KeyArg::Account(stash);
    let others_of = |list: Option<&DValue>, out: &mut Vec<Value>| {
        for x in list.and_then(DValue::items).unwrap_or(&[]) {
            let who = x
                .field("who")
                .and_then(DValue::account)
                .map_or(Value::Null, |a| Value::String(ss58_encode(a, ss58)));
            let value = uint(x.field("value")).map_or(Value::Null, uint_json);
            out.push(json!({"who": who, "value": value}));
        }
    };
    if let Some(v) = s.pick("Staking", "ErasStakersOverview").await? {
        let args = [KeyArg::Int(era), account];
        if let Some(o) = v.get("Staking", "ErasStakersOverview", &args).await? {
            let pages = uint(o.field("page_count")).unwrap_or(0);
            let mut others = Vec::new();
            for p in 0..pages.min(1024) {
                let page = v
                    .get(
                        "Staking",
                        "ErasStakersPaged",
                        &[KeyArg::Int(era), account, KeyArg::Int(p)],
                    )
                    .await?;
                others_of(page.as_ref().and_then(|p| p.field("others")), &mut others);
            }
            return Ok(Some(Exposure {
                total: uint(o.field("total")).unwrap_or(0),
                own: uint(o.field("own")).unwrap_or(0),
                others,
                pages,
            }));
        }
    }
    if let Some(v) = s.pick("Staking", "ErasStakers").await? {
        if let Some(e) = v
            .get("Staking", "ErasStakers", &[KeyArg::Int(era), account])
            .await?
        {
            let mut others = Vec::new();
            others_of(e.field("others"), &mut others);
            return Ok(Some(Exposure {
                total: uint(e.field("total")).unwrap_or(0),
                own: uint(e.field("own")).unwrap_or(0),
                others,
                pages: 1,
            }));
        }
    }
    Ok(None)
}
