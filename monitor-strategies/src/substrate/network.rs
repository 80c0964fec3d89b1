//! The Substrate network monitor (`network.substrate`, spec §4.10): one body `{"websocket": env}`
//! per round and chain, from the first synced data source that holds each item.
//!
//! * `grandpa_stalled`: the stored `Grandpa.Stalled` value, `null` when unset.
//! * Governance from Democracy where a source holds it, else from OpenGov `Referenda` (the
//!   mapping is in docs/DECISIONS.md): `referendum_count`, `all_referendums` keyed by index
//!   (`{"ongoing": {…status, "proposalHash"}}` or `{"finished": {"approved", "end"[, "outcome"]}}`),
//!   `active_referendums` with the governance addresses' votes (`Democracy.VotingOf` /
//!   `ConvictionVoting.VotingFor`), `public_prop_count` and `active_proposals` from Democracy's
//!   public proposals (0 and `[]` under OpenGov, which has none). No governance pallet at all:
//!   those keys are `null`.
//! * Only what changed is read: a finished referendum never changes, so it is read once and kept;
//!   each round reads the count, the ongoing referendums and the new indices (PANIC re-read every
//!   referendum every round).
//!
//! Errors: 5019 no synced data source, 5031 a call failed, 5034 a value could not be read.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use tracing::{debug, warn};

use monitor_core::envelope::{envelope, MetaData};
use monitor_core::{Monitor, PanicError, Publication, RawDataKey, RoundError};

use super::chain::{BlockView, ChainError, NodeClient};
use super::metadata::{blake2b_256, ss58_decode, uint_json, DValue, KeyArg};
use super::node::Sources;
use super::rpc::WsPool;
use super::SubstrateDataSource;

/// PANIC's component name for a chain's network monitor.
pub(crate) fn component_name(sub_chain: &str) -> String {
    format!("Substrate Network Monitor ({sub_chain})")
}

/// The Substrate network monitor strategy.
#[derive(Debug)]
pub struct SubstrateNetworkMonitor {
    name: String,
    parent_id: String,
    chain_name: String,
    governance: Vec<(String, Option<[u8; 32]>)>,
    sources: Vec<(SubstrateDataSource, NodeClient)>,
    /// Finished referendums already read, per (node URL, pallet), by index.
    finished: BTreeMap<(String, &'static str), BTreeMap<u128, Value>>,
}

impl SubstrateNetworkMonitor {
    /// The monitor of chain `chain_name` (`parent_id`), reading from `data_sources` (PANIC's
    /// order), reporting the votes of `governance_addresses` (SS58). No data source is 5017.
    pub fn new(
        parent_id: &str,
        chain_name: &str,
        governance_addresses: Vec<String>,
        data_sources: Vec<SubstrateDataSource>,
        pool: &WsPool,
        timeout: Duration,
    ) -> Result<Self, PanicError> {
        let name = component_name(chain_name);
        if data_sources.is_empty() {
            return Err(PanicError::not_enough_data_sources(&name, "data_sources"));
        }
        let mut sources = Vec::with_capacity(data_sources.len());
        for s in data_sources {
            let rpc = pool
                .client(&s.node_ws_url, timeout)
                .map_err(|_| PanicError::invalid_url(&s.node_ws_url))?;
            let c = NodeClient::new(&s.node_name, rpc);
            sources.push((s, c));
        }
        let governance = governance_addresses
            .into_iter()
            .map(|a| {
                let id = ss58_decode(&a);
                if id.is_none() {
                    warn!(monitor = %name, address = %a, "governance address is not SS58");
                }
                (a, id)
            })
            .collect();
        Ok(SubstrateNetworkMonitor {
            name,
            parent_id: parent_id.to_owned(),
            chain_name: chain_name.to_owned(),
            governance,
            sources,
            finished: BTreeMap::new(),
        })
    }

    fn meta_data(&self) -> MetaData {
        MetaData::new(&self.name)
            .with("parent_id", self.parent_id.as_str())
            .with("chain_name", self.chain_name.as_str())
            .timed()
            .with(
                "governance_addresses",
                Value::Array(
                    self.governance
                        .iter()
                        .map(|(a, _)| Value::String(a.clone()))
                        .collect(),
                ),
            )
    }
}

#[async_trait]
impl Monitor for SubstrateNetworkMonitor {
    fn name(&self) -> &str {
        &self.name
    }

    async fn round(&mut self) -> Result<Vec<Publication>, RoundError> {
        let outcome = self.collect().await;
        match &outcome {
            Ok(_) => debug!(monitor = %self.name, "substrate network data retrieved"),
            Err(e) => warn!(monitor = %self.name, code = e.code.code(), error = %e.message,
                "substrate network data could not be retrieved"),
        }
        let body = json!({ "websocket": envelope(self.meta_data(), outcome) });
        Ok(vec![Publication::new(RawDataKey::SubstrateNetwork, body)])
    }
}

fn network_error(name: &str, e: &ChainError) -> PanicError {
    match e {
        ChainError::Call(w) => PanicError::substrate_api_call("(network)", &w.to_string()),
        ChainError::Malformed { .. } => {
            warn!(monitor = %name, error = %e, "substrate network data could not be read");
            PanicError::substrate_network_data_could_not_be_obtained()
        }
    }
}

/// The hash of a `Bounded` call: `Legacy`/`Lookup` carry it, `Inline` is BLAKE2b-256 of the bytes.
fn bounded_hash(b: &DValue) -> Value {
    match b.variant() {
        Some(("Inline", Some(DValue::Bytes(bytes)))) => {
            Value::String(format!("0x{}", hex::encode(blake2b_256(bytes))))
        }
        Some((_, Some(v))) => match v.field("hash") {
            Some(DValue::Bytes(h)) => Value::String(format!("0x{}", hex::encode(h))),
            _ => Value::Null,
        },
        // A plain hash (older Democracy stored `proposal_hash`).
        _ => match b {
            DValue::Bytes(h) => Value::String(format!("0x{}", hex::encode(h))),
            _ => Value::Null,
        },
    }
}

const CONVICTIONS: [&str; 7] = [
    "None", "Locked1x", "Locked2x", "Locked3x", "Locked4x", "Locked5x", "Locked6x",
];

/// A `Vote` byte: aye is the top bit, the conviction the rest.
fn vote_byte(v: &DValue) -> Value {
    let b = v.as_u128().unwrap_or(0);
    let conviction = CONVICTIONS
        .get(usize::try_from(b & 0x7f).unwrap_or(usize::MAX))
        .copied()
        .unwrap_or("None");
    json!({"aye": b & 0x80 != 0, "conviction": conviction})
}

/// The account votes on referendum `index` in a `Voting` value that votes directly.
fn direct_votes(voting: Option<&DValue>, index: u128) -> Vec<&DValue> {
    let Some((kind, Some(v))) = voting.and_then(DValue::variant) else {
        return Vec::new();
    };
    if kind == "Delegating" {
        return Vec::new();
    }
    v.field("votes")
        .and_then(DValue::items)
        .unwrap_or(&[])
        .iter()
        .filter_map(|pair| match pair.items() {
            Some([i, av]) if i.as_u128() == Some(index) => Some(av),
            _ => None,
        })
        .collect()
}

impl SubstrateNetworkMonitor {
    async fn collect(&mut self) -> Result<Value, PanicError> {
        let sources = Sources::synced(&self.name, &self.sources).await;
        if sources.views.is_empty() {
            return Err(PanicError::no_synced_data_source(
                &self.name,
                "websocket data source",
            ));
        }
        let name = self.name.clone();
        let mut finished = std::mem::take(&mut self.finished);
        let out = self.data(&sources, &mut finished).await;
        self.finished = finished;
        out.map_err(|e| network_error(&name, &e))
    }

    async fn data(
        &self,
        s: &Sources<'_>,
        finished: &mut BTreeMap<(String, &'static str), BTreeMap<u128, Value>>,
    ) -> Result<Value, ChainError> {
        let ss58 = ss58_of(s).await;
        let grandpa_stalled = match s.pick_meta("Grandpa", "Stalled") {
            Some(v) => v
                .get("Grandpa", "Stalled", &[])
                .await?
                .map_or(Value::Null, |x| x.to_json(ss58)),
            None => Value::Null,
        };
        let mut gov: Option<(&BlockView<'_>, &'static str)> = s
            .pick("Democracy", "ReferendumCount")
            .await?
            .map(|v| (v, "Democracy"));
        if gov.is_none() {
            gov = s
                .pick("Referenda", "ReferendumCount")
                .await?
                .map(|v| (v, "Referenda"));
        }
        if gov.is_none() {
            gov = s
                .pick_meta("Democracy", "ReferendumCount")
                .map(|v| (v, "Democracy"))
                .or_else(|| {
                    s.pick_meta("Referenda", "ReferendumCount")
                        .map(|v| (v, "Referenda"))
                });
        }
        let Some((v, pallet)) = gov else {
            return Ok(json!({
                "grandpa_stalled": grandpa_stalled, "public_prop_count": null,
                "active_proposals": null, "referendum_count": null,
                "active_referendums": null, "all_referendums": null,
            }));
        };
        let count = v
            .get(pallet, "ReferendumCount", &[])
            .await?
            .and_then(|c| c.as_u128())
            .unwrap_or(0);
        let cache = finished
            .entry((v.node.name().to_owned(), pallet))
            .or_default();
        let mut all = Map::new();
        let mut active = Vec::new();
        let info_item = if pallet == "Democracy" {
            "ReferendumInfoOf"
        } else {
            "ReferendumInfoFor"
        };
        for i in 0..count {
            if let Some(done) = cache.get(&i) {
                all.insert(i.to_string(), done.clone());
                continue;
            }
            let Some(info) = v.get(pallet, info_item, &[KeyArg::Int(i)]).await? else {
                continue;
            };
            let Some((kind, value)) = info.variant() else {
                continue;
            };
            if kind == "Ongoing" {
                let Some(status) = value else { continue };
                let proposal = status
                    .field("proposal")
                    .or_else(|| status.field("proposal_hash"));
                let hash = proposal.map_or(Value::Null, bounded_hash);
                let mut st = status.to_json(ss58);
                if let Value::Object(m) = &mut st {
                    m.insert("proposalHash".to_owned(), hash.clone());
                }
                all.insert(i.to_string(), json!({ "ongoing": st.clone() }));
                let votes = self.votes(v, pallet, status, i, ss58).await?;
                active.push(
                    json!({"index": uint_json(i), "imageHash": hash, "status": st,
                    "votes": votes}),
                );
            } else {
                let entry = finished_entry(pallet, kind, value);
                cache.insert(i, entry.clone());
                all.insert(i.to_string(), entry);
            }
        }
        let (public_prop_count, active_proposals) = if pallet == "Democracy" {
            let ppc = v
                .get("Democracy", "PublicPropCount", &[])
                .await?
                .and_then(|c| c.as_u128())
                .unwrap_or(0);
            let props = v.get("Democracy", "PublicProps", &[]).await?;
            let mut list = Vec::new();
            for p in props.as_ref().and_then(DValue::items).unwrap_or(&[]) {
                if let Some([index, bounded, proposer]) = p.items() {
                    list.push(json!({
                        "index": index.to_json(ss58),
                        "imageHash": bounded_hash(bounded),
                        "proposer": proposer.to_json(ss58),
                        "proposal": bounded.to_json(ss58),
                    }));
                }
            }
            (uint_json(ppc), Value::Array(list))
        } else {
            (json!(0), json!([]))
        };
        Ok(json!({
            "grandpa_stalled": grandpa_stalled,
            "public_prop_count": public_prop_count,
            "active_proposals": active_proposals,
            "referendum_count": uint_json(count),
            "active_referendums": active,
            "all_referendums": all,
        }))
    }

    /// The governance addresses' votes on ongoing referendum `index`.
    async fn votes(
        &self,
        v: &BlockView<'_>,
        pallet: &str,
        status: &DValue,
        index: u128,
        ss58: u16,
    ) -> Result<Vec<Value>, ChainError> {
        let track = status.field("track").and_then(DValue::as_u128);
        let voting_of = |who: [u8; 32]| async move {
            if pallet == "Democracy" {
                v.get("Democracy", "VotingOf", &[KeyArg::Account(who)])
                    .await
            } else if v.has("ConvictionVoting", "VotingFor") {
                match track {
                    Some(t) => {
                        v.get(
                            "ConvictionVoting",
                            "VotingFor",
                            &[KeyArg::Account(who), KeyArg::Int(t)],
                        )
                        .await
                    }
                    None => Ok(None),
                }
            } else {
                Ok(None)
            }
        };
        let mut out = Vec::new();
        for (address, id) in &self.governance {
            let Some(id) = id else { continue };
            let voting = voting_of(*id).await?;
            match voting.as_ref().and_then(DValue::variant) {
                Some(("Delegating", Some(d))) => {
                    let Some(target) = d.field("target").and_then(DValue::account) else {
                        continue;
                    };
                    let target_voting = voting_of(*target).await?;
                    let conviction = d
                        .field("conviction")
                        .and_then(DValue::variant)
                        .map_or("None", |(n, _)| n)
                        .to_owned();
                    let balance = d
                        .field("balance")
                        .and_then(DValue::as_u128)
                        .map_or(Value::Null, uint_json);
                    for av in direct_votes(target_voting.as_ref(), index) {
                        if let Some(("Standard", Some(sv))) = av.variant() {
                            let aye = sv.field("vote").map(vote_byte);
                            out.push(json!({
                                "accountId": address, "isDelegating": true,
                                "vote": {"aye": aye.map_or(Value::Null, |a| a["aye"].clone()),
                                    "conviction": conviction},
                                "balance": balance,
                            }));
                        }
                    }
                }
                _ => {
                    for av in direct_votes(voting.as_ref(), index) {
                        match av.variant() {
                            Some(("Standard", Some(sv))) => out.push(json!({
                                "accountId": address, "isDelegating": false,
                                "vote": sv.field("vote").map_or(Value::Null, vote_byte),
                                "balance": sv.field("balance").and_then(DValue::as_u128)
                                    .map_or(Value::Null, uint_json),
                            })),
                            _ => out.push(json!({
                                "accountId": address, "isDelegating": false,
                                "vote": av.to_json(ss58), "balance": null,
                            })),
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A finished referendum in PANIC's shape: Democracy `{"approved", "end"}`; OpenGov adds the
/// `outcome` (`Approved`, `Rejected`, `Cancelled`, `TimedOut`, `Killed`), `approved` being
/// `outcome == Approved` and `end` the block it ended at.
fn finished_entry(pallet: &str, kind: &str, value: Option<&DValue>) -> Value {
    if pallet == "Democracy" {
        let v = value;
        let approved = matches!(
            v.and_then(|x| x.field("approved")),
            Some(DValue::Bool(true))
        );
        let end = v
            .and_then(|x| x.field("end"))
            .and_then(DValue::as_u128)
            .map_or(Value::Null, uint_json);
        return json!({"finished": {"approved": approved, "end": end}});
    }
    let end = match value {
        Some(DValue::Seq(items)) => items.first().and_then(DValue::as_u128),
        Some(v) => v.as_u128(),
        None => None,
    };
    json!({"finished": {"approved": kind == "Approved",
        "end": end.map_or(Value::Null, uint_json), "outcome": kind}})
}

async fn ss58_of(s: &Sources<'_>) -> u16 {
    for (_, v) in &s.views {
        if let Ok(p) = v.node.properties().await {
            if let Some(f) = p.get("ss58Format").and_then(Value::as_u64) {
                return u16::try_from(f).unwrap_or(42);
            }
        }
    }
    42
}
