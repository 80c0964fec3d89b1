//! The Cosmos network monitor (spec §4.9): governance proposals of a chain, through the first
//! synced REST data source, every page, normalised to PANIC's proposal shape.
//!
//! Body `{"cosmos_rest": env}` on `network.cosmos`; data `{"proposals": [...]}`; meta_data
//! `monitor_name`, `parent_id`, `chain_name`, `time`. Errors: 5019 (no synced data source), 5027
//! (no SDK generation fits), 5026 / 5005 / 5009 / 5024 (the data source). The constructor fails
//! with 5017 without data sources.
//!
//! Routes: SDK 0.39 `GET /gov/proposals` (one list); 0.40–0.45 `GET /cosmos/gov/v1beta1/proposals`
//! and 0.46–0.50 `GET /cosmos/gov/v1/proposals`, both paginated with `pagination.key` until
//! `pagination.next_key` is null or empty.

use std::collections::HashSet;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use tracing::{debug, warn};

use monitor_core::envelope::{envelope, MetaData};
use monitor_core::{Monitor, PanicError, Publication, RawDataKey, RoundError};

use super::node::select_rest_source;
use super::rest::{self, ProbeError, RestCall, SdkGeneration, SdkMemory};
use super::{encode_query_value, join_url, CallError, CosmosRestSource};
use crate::http::{Http, HttpErrorKind};

/// Pages of proposals read at most in one round (a loop guard: 100 per page by default).
pub(crate) const MAX_PROPOSAL_PAGES: usize = 1000;

/// Bytes of proposals (as JSON) kept at most in one round, over all pages (issue #16: each page is
/// under the body cap, but 1,000 pages of them would not be). The Cosmos Hub's ~1,000 proposals
/// are a few MB.
pub(crate) const MAX_PROPOSAL_BYTES: usize = 64 * 1024 * 1024;

/// PANIC's component name: `Cosmos Network Monitor (<sub_chain>)`.
pub(crate) fn component_name(sub_chain: &str) -> String {
    format!("Cosmos Network Monitor ({sub_chain})")
}

/// The Cosmos network monitor strategy.
#[derive(Debug)]
pub struct CosmosNetworkMonitor {
    name: String,
    parent_id: String,
    chain_name: String,
    data_sources: Vec<CosmosRestSource>,
    http: Http,
    rest: SdkMemory,
}

impl CosmosNetworkMonitor {
    /// A monitor for the chain `chain_name` (the sub chain, e.g. `cosmoshub`) with id
    /// `parent_id`. No data source is PANIC's 5017.
    pub fn new<S: Into<CosmosRestSource>>(
        parent_id: &str,
        chain_name: &str,
        data_sources: impl IntoIterator<Item = S>,
        http: Http,
    ) -> Result<Self, PanicError> {
        let name = component_name(chain_name);
        let data_sources: Vec<CosmosRestSource> =
            data_sources.into_iter().map(Into::into).collect();
        if data_sources.is_empty() {
            return Err(PanicError::not_enough_data_sources(&name, "data_sources"));
        }
        Ok(CosmosNetworkMonitor {
            name,
            parent_id: parent_id.to_owned(),
            chain_name: chain_name.to_owned(),
            data_sources,
            http,
            rest: SdkMemory::default(),
        })
    }

    /// What the REST part remembers.
    pub fn sdk_memory(&self) -> &SdkMemory {
        &self.rest
    }

    fn meta_data(&self) -> MetaData {
        MetaData::new(&self.name)
            .with("parent_id", self.parent_id.as_str())
            .with("chain_name", self.chain_name.as_str())
            .timed()
    }

    async fn retrieve(&mut self) -> Result<Value, PanicError> {
        let Some(source) = select_rest_source(&self.data_sources, &mut self.rest, &self.http).await
        else {
            return Err(PanicError::no_synced_data_source(
                &self.name,
                "indirect Cosmos REST node",
            ));
        };
        let url = source.cosmos_rest_url.clone();
        let http = &self.http;
        let answer = rest::probe(&mut self.rest, &url, RestCall::Proposals, |g| {
            proposals(http, &url, g)
        })
        .await;
        match answer {
            Ok((list, generation)) => {
                debug!(monitor = %self.name, generation = generation.label(), count = list.len(), "proposals");
                Ok(json!({ "proposals": list }))
            }
            Err(e) => {
                warn!(monitor = %self.name, source = %source.node_name, error = ?e, "proposals");
                Err(match e {
                    ProbeError::AllIncompatible(_) => {
                        PanicError::cosmos_network_data_could_not_be_obtained()
                    }
                    ProbeError::Failed(CallError::Http(h)) => match h.kind {
                        HttpErrorKind::Down => PanicError::cannot_connect_with_data_source(
                            &self.name,
                            &source.node_name,
                            &h.to_string(),
                        ),
                        HttpErrorKind::Read => PanicError::data_reading(&self.name, &h.url),
                        HttpErrorKind::InvalidUrl => PanicError::invalid_url(&h.url),
                    },
                    ProbeError::Failed(other) => {
                        PanicError::cosmos_rest_api_call("proposals", &other.message())
                    }
                })
            }
        }
    }
}

#[async_trait]
impl Monitor for CosmosNetworkMonitor {
    fn name(&self) -> &str {
        &self.name
    }

    async fn round(&mut self) -> Result<Vec<Publication>, RoundError> {
        let outcome = self.retrieve().await;
        let mut body = Map::new();
        body.insert(
            "cosmos_rest".to_owned(),
            envelope(self.meta_data(), outcome),
        );
        Ok(vec![Publication::new(
            RawDataKey::CosmosNetwork,
            Value::Object(body),
        )])
    }
}

/// Every proposal from `base` with `generation`, normalised.
pub(crate) async fn proposals(
    http: &Http,
    base: &str,
    generation: SdkGeneration,
) -> Result<Vec<Value>, CallError> {
    let path = generation.proposals_path();
    if generation == SdkGeneration::V039 {
        let url = join_url(base, path);
        let value = rest::get_checked(http, &url).await?;
        let list = value
            .get("result")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                CallError::BadJson(format!(
                    "no `result` list in the answer of {url}",
                    url = monitor_core::redact_url(&url)
                ))
            })?;
        return list
            .iter()
            .map(|p| {
                normalise(p).map_err(|e| {
                    CallError::BadJson(format!("{url}: {e}", url = monitor_core::redact_url(&url)))
                })
            })
            .collect();
    }
    let mut out = Vec::new();
    let mut key: Option<String> = None;
    let mut seen_keys = HashSet::new();
    let mut kept = 0usize;
    for _ in 0..MAX_PROPOSAL_PAGES {
        let url = match &key {
            None => join_url(base, path),
            Some(k) => join_url(
                base,
                &format!("{path}?pagination.key={}", encode_query_value(k)),
            ),
        };
        let value = rest::get_checked(http, &url).await?;
        let list = value
            .get("proposals")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                CallError::BadJson(format!(
                    "no `proposals` list in the answer of {url}",
                    url = monitor_core::redact_url(&url)
                ))
            })?;
        for p in list {
            let proposal = normalise(p).map_err(|e| {
                CallError::BadJson(format!("{url}: {e}", url = monitor_core::redact_url(&url)))
            })?;
            kept += json_bytes(&proposal);
            if kept > MAX_PROPOSAL_BYTES {
                return Err(CallError::BadJson(format!(
                    "{base}{path}: the proposals exceed {MAX_PROPOSAL_BYTES} bytes (the cap per round)", base = monitor_core::redact_url(base))));
            }
            out.push(proposal);
        }
        match value.pointer("/pagination/next_key") {
            Some(Value::String(next)) if !next.is_empty() => {
                if !seen_keys.insert(next.clone()) {
                    return Err(CallError::BadJson(format!(
                        "{url}: pagination.next_key `{next}` repeats",
                        url = monitor_core::redact_url(&url)
                    )));
                }
                key = Some(next.clone());
            }
            _ => return Ok(out),
        }
    }
    Err(CallError::BadJson(format!(
        "{base}{path}: more than {MAX_PROPOSAL_PAGES} pages of proposals",
        base = monitor_core::redact_url(base)
    )))
}

/// About what `value` weighs as JSON: its strings' and keys' lengths plus a few bytes per item.
fn json_bytes(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len() + 2,
        Value::Array(items) => items.iter().map(json_bytes).sum::<usize>() + 2,
        Value::Object(map) => {
            map.iter()
                .map(|(k, v)| k.len() + 4 + json_bytes(v))
                .sum::<usize>()
                + 2
        }
        _ => 8,
    }
}

/// PANIC's `_parse_proposal`, extended to gov v1: `proposal_id`, `title`, `description`,
/// `status`, `final_tally_result`, `submit_time`, `deposit_end_time`, `total_deposit`,
/// `voting_start_time`, `voting_end_time`.
pub(crate) fn normalise(proposal: &Value) -> Result<Value, String> {
    let field = |key: &str| {
        proposal
            .get(key)
            .cloned()
            .ok_or_else(|| format!("a proposal has no `{key}`"))
    };
    let proposal_id = proposal
        .get("proposal_id")
        .or_else(|| proposal.get("id"))
        .cloned()
        .ok_or("a proposal has neither `proposal_id` nor `id`")?;
    let (title, description) = title_and_description(proposal)?;
    let status = proposal
        .get("status")
        .or_else(|| proposal.get("proposal_status"))
        .ok_or("a proposal has neither `status` nor `proposal_status`")?;
    let tally = field("final_tally_result")?;
    let mut out = Map::new();
    out.insert("proposal_id".to_owned(), proposal_id);
    out.insert("title".to_owned(), title);
    out.insert("description".to_owned(), description);
    out.insert("status".to_owned(), Value::from(proposal_status(status)));
    out.insert("final_tally_result".to_owned(), normalise_tally(tally));
    for key in [
        "submit_time",
        "deposit_end_time",
        "total_deposit",
        "voting_start_time",
        "voting_end_time",
    ] {
        out.insert(key.to_owned(), field(key)?);
    }
    Ok(Value::Object(out))
}

/// Title and description: v1beta1 `content.title` / amino `content.value.title`; gov v1
/// `title`/`summary` (SDK ≥ 0.47), else the legacy content wrapped in its first message
/// (`MsgExecLegacyContent`, SDK 0.46), else `metadata` as title.
fn title_and_description(proposal: &Value) -> Result<(Value, Value), String> {
    if let Some(content) = proposal.get("content").filter(|c| !c.is_null()) {
        let inner = content.get("value").unwrap_or(content);
        let get = |k: &str| {
            inner
                .get(k)
                .cloned()
                .ok_or_else(|| format!("a proposal's content has no `{k}`"))
        };
        return Ok((get("title")?, get("description")?));
    }
    if proposal.get("messages").is_none() {
        return Err("a proposal has neither `content` nor `messages`".to_owned());
    }
    let non_empty = |k: &str| {
        proposal
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(Value::from)
    };
    let legacy = proposal
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|msgs| msgs.iter().find_map(|m| m.get("content")))
        .map(|c| c.get("value").unwrap_or(c));
    let legacy_field = |k: &str| legacy.and_then(|c| c.get(k)).cloned();
    let title = non_empty("title")
        .or_else(|| legacy_field("title"))
        .or_else(|| non_empty("metadata"))
        .unwrap_or_else(|| Value::from(""));
    let description = non_empty("summary")
        .or_else(|| legacy_field("description"))
        .unwrap_or_else(|| Value::from(""));
    Ok((title, description))
}

/// Gov v1 tallies (`yes_count`, …) renamed to the v1beta1 keys PANIC's consumers read.
fn normalise_tally(tally: Value) -> Value {
    match tally {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| match k.strip_suffix("_count") {
                    Some(base) => (base.to_owned(), v),
                    None => (k, v),
                })
                .collect(),
        ),
        other => other,
    }
}

/// PANIC's status mapping: ints 0–5 or names, with or without `PROPOSAL_STATUS_`, any case (and,
/// fixing PANIC, the amino CamelCase names like `VotingPeriod`).
pub(crate) fn proposal_status(status: &Value) -> &'static str {
    const NAMES: [&str; 6] = [
        "unspecified",
        "deposit_period",
        "voting_period",
        "passed",
        "rejected",
        "failed",
    ];
    match status {
        Value::Number(n) => n
            .as_u64()
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| NAMES.get(i).copied())
            .unwrap_or("invalid"),
        Value::String(s) => {
            let lower = s.to_ascii_lowercase();
            let bare = lower.strip_prefix("proposal_status_").unwrap_or(&lower);
            let squashed: String = bare.chars().filter(|c| *c != '_').collect();
            NAMES
                .iter()
                .find(|n| **n == bare || n.replace('_', "") == squashed)
                .copied()
                .unwrap_or("invalid")
        }
        _ => "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        for (v, s) in [
            (json!(0), "unspecified"),
            (json!(1), "deposit_period"),
            (json!(2), "voting_period"),
            (json!(3), "passed"),
            (json!(4), "rejected"),
            (json!(5), "failed"),
            (json!(6), "invalid"),
            (json!(-1), "invalid"),
            (json!("PROPOSAL_STATUS_PASSED"), "passed"),
            (json!("proposal_status_voting_period"), "voting_period"),
            (json!("Rejected"), "rejected"),
            (json!("VotingPeriod"), "voting_period"),
            (json!("DepositPeriod"), "deposit_period"),
            (json!("deposit_period"), "deposit_period"),
            (json!("PROPOSAL_STATUS_SOMETHING"), "invalid"),
            (json!(""), "invalid"),
            (json!(null), "invalid"),
        ] {
            assert_eq!(proposal_status(&v), s, "{v}");
        }
    }

    #[test]
    fn gov_v1_proposals() {
        // SDK 0.47+: title and summary on the proposal.
        let p = json!({
            "id": "12", "messages": [], "status": "PROPOSAL_STATUS_DEPOSIT_PERIOD",
            "final_tally_result": {"yes_count": "1", "abstain_count": "0", "no_count": "2", "no_with_veto_count": "0"},
            "submit_time": "t1", "deposit_end_time": "t2", "total_deposit": [],
            "voting_start_time": null, "voting_end_time": null, "metadata": "ipfs://x",
            "title": "T", "summary": "S", "proposer": "cosmos1..."
        });
        assert_eq!(
            normalise(&p).unwrap(),
            json!({"proposal_id": "12", "title": "T", "description": "S", "status": "deposit_period",
                   "final_tally_result": {"yes": "1", "abstain": "0", "no": "2", "no_with_veto": "0"},
                   "submit_time": "t1", "deposit_end_time": "t2", "total_deposit": [],
                   "voting_start_time": null, "voting_end_time": null})
        );
        // SDK 0.46: a legacy content inside MsgExecLegacyContent.
        let p = json!({
            "id": "13", "status": 3, "metadata": "",
            "messages": [{"@type": "/cosmos.gov.v1.MsgExecLegacyContent",
                          "content": {"@type": "/cosmos.gov.v1beta1.TextProposal", "title": "LT", "description": "LD"},
                          "authority": "cosmos10d07y265gmmuvt4z0w9aw880jnsr700j6zn9kn"}],
            "final_tally_result": {"yes_count": "0", "abstain_count": "0", "no_count": "0", "no_with_veto_count": "0"},
            "submit_time": "a", "deposit_end_time": "b", "total_deposit": [], "voting_start_time": "c", "voting_end_time": "d"
        });
        let n = normalise(&p).unwrap();
        assert_eq!(n["title"], "LT");
        assert_eq!(n["description"], "LD");
        assert_eq!(n["status"], "passed");
        // Metadata only.
        let mut p2 = p.clone();
        p2["messages"] = json!([{"@type": "/cosmos.bank.v1beta1.MsgSend"}]);
        p2["metadata"] = json!("ipfs://meta");
        let n = normalise(&p2).unwrap();
        assert_eq!(n["title"], "ipfs://meta");
        assert_eq!(n["description"], "");
        // Missing keys are errors.
        let mut p3 = p.clone();
        p3.as_object_mut().unwrap().remove("voting_end_time");
        assert!(normalise(&p3).is_err());
        assert!(normalise(&json!({"id": "1"})).is_err());
    }
}
