//! Cosmos REST calls (PANIC's `CosmosRestServerApiWrapper` and its checker) for three Cosmos SDK
//! generations, and [`SdkMemory`], which remembers per server and per call which generation
//! answered.
//!
//! | call | SDK 0.39 (legacy LCD) | SDK 0.40–0.45 | SDK 0.46–0.50 |
//! |---|---|---|---|
//! | syncing | `/syncing` | `/syncing` (legacy route) | `/cosmos/base/tendermint/v1beta1/syncing` |
//! | validator | `/staking/validators/{valoper}` | `/cosmos/staking/v1beta1/validators/{valoper}` | same |
//! | proposals | `/gov/proposals` | `/cosmos/gov/v1beta1/proposals` (paginated) | `/cosmos/gov/v1/proposals` (paginated) |
//!
//! The checker ([`get_checked`]): HTTP 404 or 501, or a body `{"code": 12, "message": "Not
//! Implemented"}`, means the route does not exist on that server ([`CallError::Incompatible`],
//! PANIC's 5022); a body with `code` and `message`, or with `error`, is an API error
//! ([`CallError::Api`], 5024); a body that is not JSON or lacks an expected key is
//! [`CallError::BadJson`] (5025).

use std::collections::HashMap;
use std::future::Future;

use serde_json::Value;

use super::{join_url, CallError};
use crate::http::Http;

/// A Cosmos SDK REST generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SdkGeneration {
    /// SDK 0.39 legacy LCD (amino JSON, `{"height", "result"}` envelopes).
    V039,
    /// SDK 0.40–0.45 (gRPC gateway `v1beta1` routes, legacy `/syncing`).
    V040,
    /// SDK 0.46–0.50 (no legacy routes; gRPC gateway syncing, gov `v1`).
    V046,
}

impl SdkGeneration {
    /// Every generation, in the order tried when nothing is known (newest first).
    pub const NEWEST_FIRST: [SdkGeneration; 3] = [
        SdkGeneration::V046,
        SdkGeneration::V040,
        SdkGeneration::V039,
    ];

    /// A readable label for logs and messages.
    pub fn label(self) -> &'static str {
        match self {
            SdkGeneration::V039 => "v0.39",
            SdkGeneration::V040 => "v0.40-v0.45",
            SdkGeneration::V046 => "v0.46-v0.50",
        }
    }

    /// The syncing route.
    pub fn syncing_path(self) -> &'static str {
        match self {
            SdkGeneration::V039 | SdkGeneration::V040 => "/syncing",
            SdkGeneration::V046 => "/cosmos/base/tendermint/v1beta1/syncing",
        }
    }

    /// The staking validator route for an operator address.
    pub fn validator_path(self, operator_address: &str) -> String {
        match self {
            SdkGeneration::V039 => format!("/staking/validators/{operator_address}"),
            SdkGeneration::V040 | SdkGeneration::V046 => {
                format!("/cosmos/staking/v1beta1/validators/{operator_address}")
            }
        }
    }

    /// The governance proposals route.
    pub fn proposals_path(self) -> &'static str {
        match self {
            SdkGeneration::V039 => "/gov/proposals",
            SdkGeneration::V040 => "/cosmos/gov/v1beta1/proposals",
            SdkGeneration::V046 => "/cosmos/gov/v1/proposals",
        }
    }
}

/// The kinds of REST calls, remembered separately (a 0.45 server answers syncing on both the
/// legacy and the gRPC-gateway route, but gov `v1` only from 0.46).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RestCall {
    /// Syncing state.
    Syncing,
    /// Staking validator.
    Validator,
    /// Governance proposals.
    Proposals,
}

/// Which SDK generation answered, per REST server and call; kept by a strategy across rounds.
#[derive(Debug, Clone, Default)]
pub struct SdkMemory {
    per_call: HashMap<(String, RestCall), SdkGeneration>,
    per_server: HashMap<String, SdkGeneration>,
    last: Option<SdkGeneration>,
}

impl SdkMemory {
    /// The generation that last answered `call` on `server`.
    pub fn get(&self, server: &str, call: RestCall) -> Option<SdkGeneration> {
        self.per_call.get(&(server.to_owned(), call)).copied()
    }

    /// The generation that last answered any call, on any server.
    pub fn last(&self) -> Option<SdkGeneration> {
        self.last
    }

    /// The order to try: what answered this call on this server, what answered anything on this
    /// server, what answered last anywhere, then every generation newest first.
    pub fn order(&self, server: &str, call: RestCall) -> Vec<SdkGeneration> {
        let mut out = Vec::with_capacity(3);
        let candidates = [
            self.get(server, call),
            self.per_server.get(server).copied(),
            self.last,
        ];
        for g in candidates
            .into_iter()
            .flatten()
            .chain(SdkGeneration::NEWEST_FIRST)
        {
            if !out.contains(&g) {
                out.push(g);
            }
        }
        out
    }

    /// Records that `generation` answered `call` on `server`.
    pub fn remember(&mut self, server: &str, call: RestCall, generation: SdkGeneration) {
        self.per_call.insert((server.to_owned(), call), generation);
        self.per_server.insert(server.to_owned(), generation);
        self.last = Some(generation);
    }
}

/// How probing the generations ended without an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProbeError {
    /// A failure that is not an incompatibility (down, API error …): reported as is.
    Failed(CallError),
    /// Every generation was incompatible; the last error.
    AllIncompatible(CallError),
}

/// Runs `call` with each generation in [`SdkMemory::order`] until one is not incompatible; the
/// one that answered is remembered.
pub(crate) async fn probe<T, F, Fut>(
    memory: &mut SdkMemory,
    server: &str,
    kind: RestCall,
    mut call: F,
) -> Result<(T, SdkGeneration), ProbeError>
where
    F: FnMut(SdkGeneration) -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    let mut last_error = None;
    for generation in memory.order(server, kind) {
        match call(generation).await {
            Ok(value) => {
                memory.remember(server, kind, generation);
                return Ok((value, generation));
            }
            Err(e) if e.is_incompatibility() => {
                tracing::debug!(server, generation = generation.label(), error = %e, "REST generation does not fit");
                last_error = Some(e);
            }
            Err(e) => return Err(ProbeError::Failed(e)),
        }
    }
    Err(ProbeError::AllIncompatible(last_error.unwrap_or_else(
        || CallError::Incompatible("no SDK generation tried".to_owned()),
    )))
}

/// `GET url` through PANIC's REST checker.
pub(crate) async fn get_checked(http: &Http, url: &str) -> Result<Value, CallError> {
    let response = http.get(url).await?;
    if matches!(response.status, 404 | 501) {
        return Err(CallError::Incompatible(format!(
            "HTTP {} from {url}",
            response.status,
            url = monitor_core::redact_url(&url)
        )));
    }
    let value: Value = match serde_json::from_slice(&response.body) {
        Ok(v) => v,
        Err(e) if response.is_success() => {
            return Err(CallError::BadJson(format!(
                "the body from {url} is not JSON: {e}",
                url = monitor_core::redact_url(&url)
            )))
        }
        Err(_) => {
            return Err(CallError::Api(format!(
                "HTTP {} from {url}: {}",
                response.status,
                snippet(&response.body),
                url = monitor_core::redact_url(&url)
            )))
        }
    };
    if let (Some(code), Some(message)) = (value.get("code"), value.get("message")) {
        let message = text_of(message);
        if code.as_i64() == Some(12) || message.eq_ignore_ascii_case("not implemented") {
            return Err(CallError::Incompatible(format!(
                "{url}: {message}",
                url = monitor_core::redact_url(&url)
            )));
        }
        return Err(CallError::Api(message));
    }
    if let Some(error) = value.get("error") {
        return Err(CallError::Api(text_of(error)));
    }
    if !response.is_success() {
        return Err(CallError::Api(format!(
            "HTTP {} from {url}: {}",
            response.status,
            snippet(&response.body),
            url = monitor_core::redact_url(&url)
        )));
    }
    Ok(value)
}

/// A JSON value as message text (strings without quotes).
pub(crate) fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The first 200 characters of a body, for messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

/// `GET` the syncing route of `base` with `generation`: whether the node is syncing.
pub(crate) async fn syncing(
    http: &Http,
    base: &str,
    generation: SdkGeneration,
) -> Result<bool, CallError> {
    let url = join_url(base, generation.syncing_path());
    let value = get_checked(http, &url).await?;
    value
        .get("syncing")
        .and_then(Value::as_bool)
        .ok_or_else(|| {
            CallError::BadJson(format!(
                "no boolean `syncing` in the answer of {url}",
                url = monitor_core::redact_url(&url)
            ))
        })
}

/// A validator's bond status and jailed flag (PANIC's `cosmos_rest` data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValidatorStatus {
    /// `bonded`, `unbonding`, `unbonded` or `invalid`.
    pub bond_status: &'static str,
    /// Whether the validator is jailed.
    pub jailed: bool,
}

/// `GET` the staking validator `operator_address` from `base` with `generation`.
pub(crate) async fn validator(
    http: &Http,
    base: &str,
    operator_address: &str,
    generation: SdkGeneration,
) -> Result<ValidatorStatus, CallError> {
    let url = join_url(base, &generation.validator_path(operator_address));
    let value = get_checked(http, &url).await?;
    parse_validator(&value).map_err(|e| {
        CallError::BadJson(format!("{url}: {e}", url = monitor_core::redact_url(&url)))
    })
}

/// The validator object of either shape: `{"validator": …}` (gRPC gateway) or `{"height",
/// "result": …}` (legacy LCD).
pub(crate) fn parse_validator(value: &Value) -> Result<ValidatorStatus, String> {
    let validator = value
        .get("validator")
        .or_else(|| value.get("result"))
        .ok_or("neither `validator` nor `result` in the answer")?;
    let status = validator.get("status").ok_or("no `status`")?;
    let jailed = validator
        .get("jailed")
        .and_then(Value::as_bool)
        .ok_or("no boolean `jailed`")?;
    Ok(ValidatorStatus {
        bond_status: bond_status(status),
        jailed,
    })
}

/// PANIC's `_parse_validator_status`: 2/`BOND_STATUS_BONDED` → `bonded`, 1/`…_UNBONDING` →
/// `unbonding`, 0/`…_UNBONDED` → `unbonded`, anything else `invalid`.
pub(crate) fn bond_status(status: &Value) -> &'static str {
    match status {
        Value::Number(n) => match n.as_i64() {
            Some(2) => "bonded",
            Some(1) => "unbonding",
            Some(0) => "unbonded",
            _ => "invalid",
        },
        Value::String(s) => match s.as_str() {
            "BOND_STATUS_BONDED" => "bonded",
            "BOND_STATUS_UNBONDING" => "unbonding",
            "BOND_STATUS_UNBONDED" => "unbonded",
            _ => "invalid",
        },
        _ => "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn order_prefers_what_answered() {
        let mut m = SdkMemory::default();
        assert_eq!(
            m.order("a", RestCall::Syncing),
            SdkGeneration::NEWEST_FIRST.to_vec()
        );
        m.remember("a", RestCall::Validator, SdkGeneration::V039);
        assert_eq!(
            m.order("a", RestCall::Syncing),
            [
                SdkGeneration::V039,
                SdkGeneration::V046,
                SdkGeneration::V040
            ]
        );
        m.remember("b", RestCall::Syncing, SdkGeneration::V040);
        assert_eq!(
            m.order("a", RestCall::Syncing),
            [
                SdkGeneration::V039,
                SdkGeneration::V040,
                SdkGeneration::V046
            ]
        );
        assert_eq!(
            m.order("c", RestCall::Proposals),
            [
                SdkGeneration::V040,
                SdkGeneration::V046,
                SdkGeneration::V039
            ]
        );
        assert_eq!(m.get("a", RestCall::Validator), Some(SdkGeneration::V039));
        assert_eq!(m.get("a", RestCall::Syncing), None);
    }

    #[test]
    fn statuses() {
        for (v, s) in [
            (json!(2), "bonded"),
            (json!(1), "unbonding"),
            (json!(0), "unbonded"),
            (json!(3), "invalid"),
            (json!("BOND_STATUS_BONDED"), "bonded"),
            (json!("BOND_STATUS_UNBONDING"), "unbonding"),
            (json!("BOND_STATUS_UNBONDED"), "unbonded"),
            (json!("BOND_STATUS_UNSPECIFIED"), "invalid"),
            (json!(null), "invalid"),
        ] {
            assert_eq!(bond_status(&v), s, "{v}");
        }
        assert!(parse_validator(&json!({"validator": {"status": 2}})).is_err());
        assert!(parse_validator(&json!({"x": 1})).is_err());
        assert_eq!(
            parse_validator(&json!({"result": {"status": 1, "jailed": true}})),
            Ok(ValidatorStatus {
                bond_status: "unbonding",
                jailed: true
            })
        );
    }
}
