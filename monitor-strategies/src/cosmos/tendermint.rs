//! Tendermint RPC / CometBFT calls (PANIC's `TendermintRpcApiWrapper` and its checker), slash
//! detection in block results, and PANIC's last-height rules.
//!
//! Formats handled: Tendermint 0.34 (event attributes base64-encoded, `begin_block_events`),
//! CometBFT 0.37 (plain attributes, `begin_block_events`) and 0.38 (plain attributes,
//! `finalize_block_events`). The attribute encoding is decided per event.
//!
//! The checker ([`get_checked`]): HTTP 404 → [`CallError::Incompatible`] (PANIC's 5028); a
//! JSON-RPC `error` object → [`CallError::Api`] (5030); a body that is not JSON, or without
//! `result`, or without an expected key → [`CallError::BadJson`] (5025).

use base64::Engine as _;
use serde_json::Value;

use super::rest::{snippet, text_of};
use super::{join_url, CallError};
use crate::http::Http;

/// PANIC's `max_catchup_blocks`: with an archive source, never go back more than this.
pub(crate) const MAX_CATCHUP_BLOCKS: u64 = 300;

/// PANIC's `pruning_catchup_blocks`: with a pruned source, never go back this far (Cosmos prunes
/// at 100; 90 leaves room for delays).
pub(crate) const PRUNING_CATCHUP_BLOCKS: u64 = 90;

/// Validators asked per page (Tendermint's maximum).
pub(crate) const VALIDATORS_PER_PAGE: u32 = 100;

/// Pages of validators read at most for one height (10 000 validators).
pub(crate) const MAX_VALIDATOR_PAGES: u32 = 100;

/// `GET url` through PANIC's Tendermint checker; returns `result`.
pub(crate) async fn get_checked(http: &Http, url: &str) -> Result<Value, CallError> {
    let response = http.get(url).await?;
    if response.status == 404 {
        return Err(CallError::Incompatible(format!(
            "HTTP 404 from {url}",
            url = monitor_core::redact_url(&url)
        )));
    }
    let mut value: Value = serde_json::from_slice(&response.body).map_err(|e| {
        CallError::BadJson(format!(
            "the body from {url} (HTTP {}) is not JSON: {e}: {}",
            response.status,
            snippet(&response.body),
            url = monitor_core::redact_url(&url)
        ))
    })?;
    if let Some(error) = value.get("error") {
        let message = match (error.get("message"), error.get("data")) {
            (Some(m), Some(d)) => format!("{}: {}", text_of(m), text_of(d)),
            (Some(m), None) => text_of(m),
            _ => text_of(error),
        };
        return Err(CallError::Api(message));
    }
    match value.get_mut("result") {
        Some(result) => Ok(result.take()),
        None => Err(CallError::BadJson(format!(
            "no `result` in the answer of {url}",
            url = monitor_core::redact_url(&url)
        ))),
    }
}

fn missing(url: &str, what: &str) -> CallError {
    CallError::BadJson(format!(
        "no {what} in the answer of {url}",
        url = monitor_core::redact_url(&url)
    ))
}

/// A height or count, sent by Tendermint as a decimal string (accepted as a number too).
pub(crate) fn int_of(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// What `/status` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    /// `validator_info.address`, upper-case hex (empty for a node without a consensus key).
    pub consensus_address: String,
    /// `sync_info.catching_up`.
    pub catching_up: bool,
    /// `mev_info.is_peered_with_relayer`, when the node runs mev-tendermint.
    pub mev_peered: Option<bool>,
}

/// `GET <base>/status`.
pub(crate) async fn status(http: &Http, base: &str) -> Result<Status, CallError> {
    let url = join_url(base, "/status");
    let result = get_checked(http, &url).await?;
    parse_status(&result).map_err(|what| missing(&url, what))
}

/// The fields of a `/status` result.
pub(crate) fn parse_status(result: &Value) -> Result<Status, &'static str> {
    let consensus_address = result
        .pointer("/validator_info/address")
        .and_then(Value::as_str)
        .ok_or("`validator_info.address`")?
        .to_ascii_uppercase();
    let catching_up = result
        .pointer("/sync_info/catching_up")
        .and_then(Value::as_bool)
        .ok_or("`sync_info.catching_up`")?;
    let mev_peered = match result.get("mev_info") {
        None | Some(Value::Null) => None,
        Some(mev) => Some(
            mev.get("is_peered_with_relayer")
                .and_then(Value::as_bool)
                .ok_or("`mev_info.is_peered_with_relayer`")?,
        ),
    };
    Ok(Status {
        consensus_address,
        catching_up,
        mev_peered,
    })
}

/// `GET <base>/block` (latest) or `/block?height=h`: the block's height and the validator
/// addresses with a non-null signature in its `last_commit` (the votes for the previous block).
pub(crate) async fn block(
    http: &Http,
    base: &str,
    height: Option<u64>,
) -> Result<(u64, Vec<String>), CallError> {
    let url = match height {
        Some(h) => join_url(base, &format!("/block?height={h}")),
        None => join_url(base, "/block"),
    };
    let result = get_checked(http, &url).await?;
    let block = result
        .get("block")
        .ok_or_else(|| missing(&url, "`block`"))?;
    let height = block
        .pointer("/header/height")
        .and_then(int_of)
        .ok_or_else(|| missing(&url, "`block.header.height`"))?;
    let signatures = match block.pointer("/last_commit/signatures") {
        Some(Value::Array(s)) => s,
        // The first block has no previous commit.
        Some(Value::Null) => &Vec::new(),
        _ => return Err(missing(&url, "`block.last_commit.signatures`")),
    };
    let mut signed = Vec::with_capacity(signatures.len());
    for signature in signatures {
        let present = match signature.get("signature") {
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Null) | None => false,
            Some(_) => true,
        };
        if present {
            let address = signature
                .get("validator_address")
                .and_then(Value::as_str)
                .ok_or_else(|| missing(&url, "`validator_address` in a signature"))?;
            signed.push(address.to_ascii_uppercase());
        }
    }
    Ok((height, signed))
}

/// The longest validator address kept (consensus addresses are 40 hex digits).
const MAX_ADDRESS_BYTES: usize = 128;

/// `GET <base>/validators?height=h&page=n` for every page: the consensus addresses of the active
/// set at `height` (pages read until their `count`s add up to `total`).
pub(crate) async fn validators(
    http: &Http,
    base: &str,
    height: u64,
) -> Result<Vec<String>, CallError> {
    let mut addresses = Vec::new();
    let mut seen = 0u64;
    for page in 1..=MAX_VALIDATOR_PAGES {
        let url = join_url(
            base,
            &format!("/validators?height={height}&page={page}&per_page={VALIDATORS_PER_PAGE}"),
        );
        let result = get_checked(http, &url).await?;
        let list = result
            .get("validators")
            .and_then(Value::as_array)
            .ok_or_else(|| missing(&url, "`validators`"))?;
        let count = result
            .get("count")
            .and_then(int_of)
            .ok_or_else(|| missing(&url, "`count`"))?;
        let total = result
            .get("total")
            .and_then(int_of)
            .ok_or_else(|| missing(&url, "`total`"))?;
        for validator in list {
            let address = validator
                .get("address")
                .and_then(Value::as_str)
                .ok_or_else(|| missing(&url, "`address` of a validator"))?;
            // Bounds on what one round keeps (issue #16): a consensus address is 40 hex digits,
            // and the active set is read in at most MAX_VALIDATOR_PAGES pages of
            // VALIDATORS_PER_PAGE.
            if address.len() > MAX_ADDRESS_BYTES
                || addresses.len() >= MAX_VALIDATOR_PAGES as usize * VALIDATORS_PER_PAGE as usize
            {
                return Err(CallError::BadJson(format!(
                    "validators at height {height}: more than {} validators or an address over \
                     {MAX_ADDRESS_BYTES} bytes (the caps per round)",
                    MAX_VALIDATOR_PAGES as usize * VALIDATORS_PER_PAGE as usize
                )));
            }
            addresses.push(address.to_ascii_uppercase());
        }
        seen = seen.saturating_add(count);
        if count == 0 || seen >= total {
            return Ok(addresses);
        }
    }
    Err(CallError::BadJson(format!(
        "validators at height {height}: more than {MAX_VALIDATOR_PAGES} pages"
    )))
}

/// Whether a validator was slashed in a block, and the burned amount when the events carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Slashing {
    /// A `slash` event names the validator.
    pub slashed: bool,
    /// Sum of `burned_coins` of those events (`None` if none carries it, e.g. SDK < 0.46).
    pub amount: Option<u128>,
}

/// `GET <base>/block_results?height=h`: slashing of `consensus_address` (upper-case hex) at `h`.
pub(crate) async fn block_results_slashing(
    http: &Http,
    base: &str,
    height: u64,
    consensus_address: &str,
) -> Result<Slashing, CallError> {
    let url = join_url(base, &format!("/block_results?height={height}"));
    let result = get_checked(http, &url).await?;
    let events = block_events(&result).map_err(|what| missing(&url, what))?;
    slashing_in_events(events, consensus_address).map_err(|e| {
        CallError::BadJson(format!("{url}: {e}", url = monitor_core::redact_url(&url)))
    })
}

/// The block-level events of a `/block_results` result: `begin_block_events` (Tendermint 0.34,
/// CometBFT 0.37) or `finalize_block_events` (CometBFT 0.38). `null` means none.
pub(crate) fn block_events(result: &Value) -> Result<&[Value], &'static str> {
    for key in ["finalize_block_events", "begin_block_events"] {
        match result.get(key) {
            Some(Value::Array(events)) => return Ok(events),
            Some(Value::Null) => return Ok(&[]),
            Some(_) => return Err("an event list"),
            None => {}
        }
    }
    Err("`begin_block_events` or `finalize_block_events`")
}

/// PANIC's `_validator_was_slashed` over events of any encoding. An empty consensus address is
/// never slashed (PANIC: a node without a consensus key cannot be).
pub(crate) fn slashing_in_events(
    events: &[Value],
    consensus_address: &str,
) -> Result<Slashing, String> {
    let mut out = Slashing::default();
    if consensus_address.is_empty() {
        return Ok(out);
    }
    for event in events {
        let is_slash = event
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("slash"));
        if !is_slash {
            continue;
        }
        let mut address = None;
        let mut burned = None;
        for (key, value) in decoded_attributes(event) {
            if key.eq_ignore_ascii_case("address") {
                match bech32_to_hex(&value) {
                    Ok(hex) => address = Some(hex),
                    Err(e) => {
                        tracing::warn!(address = %value, error = %e, "slash event with an undecodable address")
                    }
                }
            } else if key.eq_ignore_ascii_case("burned_coins") {
                let amount: u128 = value
                    .trim()
                    .parse()
                    .map_err(|e| format!("burned_coins `{value}` is not an integer: {e}"))?;
                burned = Some(amount);
            }
        }
        if address.as_deref() == Some(consensus_address) {
            out.slashed = true;
            if let Some(b) = burned {
                out.amount = Some(out.amount.unwrap_or(0).saturating_add(b));
            }
        }
    }
    Ok(out)
}

/// An event's `(key, value)` attributes as text. Tendermint 0.34 base64-encodes both; CometBFT
/// 0.37+ sends them plain. An event is taken as base64 when every key decodes to an
/// identifier-like text (plain keys such as `address` or `burned_coins` are not valid base64).
/// Attributes without a key or value are skipped.
pub(crate) fn decoded_attributes(event: &Value) -> Vec<(String, String)> {
    let raw: Vec<(&str, &str)> = event
        .get("attributes")
        .and_then(Value::as_array)
        .map(|attrs| {
            attrs
                .iter()
                .filter_map(|a| Some((a.get("key")?.as_str()?, a.get("value")?.as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    let engine = base64::engine::general_purpose::STANDARD;
    let decode = |s: &str| {
        engine
            .decode(s)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    };
    let identifier = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    };
    let base64 = !raw.is_empty()
        && raw
            .iter()
            .all(|(k, _)| decode(k).is_some_and(|d| identifier(&d)));
    raw.into_iter()
        .map(|(k, v)| {
            if base64 {
                (
                    decode(k).unwrap_or_else(|| k.to_owned()),
                    decode(v).unwrap_or_else(|| v.to_owned()),
                )
            } else {
                (k.to_owned(), v.to_owned())
            }
        })
        .collect()
}

/// A bech32 address (`cosmosvalcons1…`) as upper-case hex of its payload.
pub(crate) fn bech32_to_hex(address: &str) -> Result<String, bech32::DecodeError> {
    let (_hrp, bytes) = bech32::decode(address.trim())?;
    Ok(hex::encode_upper(bytes))
}

/// PANIC's `_determine_last_height_monitored_tendermint`: the last height to consider processed
/// before a round, given the remembered one, the chain's current height and whether the source is
/// an archive node.
pub(crate) fn adjust_last_height(last: Option<u64>, current: u64, source_is_archive: bool) -> u64 {
    match last {
        None => current.saturating_sub(1),
        Some(l) if current > l && current - l > MAX_CATCHUP_BLOCKS && source_is_archive => {
            current - MAX_CATCHUP_BLOCKS
        }
        Some(l) if current > l && current - l >= PRUNING_CATCHUP_BLOCKS && !source_is_archive => {
            current - PRUNING_CATCHUP_BLOCKS + 1
        }
        Some(l) => l,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn last_height_rules() {
        // (last, current, archive) → adjusted
        let table: [(Option<u64>, u64, bool, u64); 14] = [
            (None, 1000, false, 999),
            (None, 1000, true, 999),
            (None, 0, false, 0),
            (Some(999), 1000, false, 999),
            (Some(999), 1000, true, 999),
            // pruned source: 89 behind keeps, 90 behind is cut to current − 89
            (Some(911), 1000, false, 911),
            (Some(910), 1000, false, 911),
            (Some(500), 1000, false, 911),
            // archive source: 300 behind keeps, 301 behind is cut to current − 300
            (Some(700), 1000, true, 700),
            (Some(699), 1000, true, 700),
            (Some(800), 1000, true, 800),
            (Some(10), 1000, true, 700),
            // the source is behind what we processed: nothing to do
            (Some(1005), 1000, false, 1005),
            (Some(1000), 1000, true, 1000),
        ];
        for (last, current, archive, expected) in table {
            assert_eq!(
                adjust_last_height(last, current, archive),
                expected,
                "{last:?} {current} {archive}"
            );
        }
    }

    #[test]
    fn bech32_valcons_to_hex() {
        assert_eq!(
            bech32_to_hex("cosmosvalcons1n27hgm6rarwsc9sulwcympmftwpr5z2wlumus0").unwrap(),
            "9ABD746F43E8DD0C161CFBB04D87695B823A094E"
        );
        assert!(bech32_to_hex("cosmosvalcons1n27hgm6rarwsc9sulwcympmftwpr5z2wlumus1").is_err());
        assert!(bech32_to_hex("not an address").is_err());
    }

    const ME: &str = "9ABD746F43E8DD0C161CFBB04D87695B823A094E";
    const MY_VALCONS: &str = "cosmosvalcons1n27hgm6rarwsc9sulwcympmftwpr5z2wlumus0";

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn slash_events_plain_and_base64() {
        let plain = json!([
            {"type": "slash", "attributes": [
                {"key": "address", "value": MY_VALCONS, "index": true},
                {"key": "power", "value": "1250000", "index": true},
                {"key": "reason", "value": "double_sign", "index": true},
                {"key": "burned_coins", "value": "62500000000", "index": true}]},
            {"type": "slash", "attributes": [{"key": "jailed", "value": MY_VALCONS}]},
            {"type": "liveness", "attributes": [{"key": "address", "value": MY_VALCONS}]}
        ]);
        let encoded = json!([
            {"type": "slash", "attributes": [
                {"key": b64("address"), "value": b64(MY_VALCONS), "index": true},
                {"key": b64("burned_coins"), "value": b64("62500000000"), "index": true}]},
            {"type": "slash", "attributes": [{"key": b64("jailed"), "value": b64(MY_VALCONS)}]}
        ]);
        for events in [plain, encoded] {
            let events = events.as_array().unwrap();
            assert_eq!(
                slashing_in_events(events, ME).unwrap(),
                Slashing {
                    slashed: true,
                    amount: Some(62_500_000_000)
                }
            );
            assert_eq!(
                slashing_in_events(events, "B8F0509574D40A3E1A8A1B5F61238ED3AFC35AD4").unwrap(),
                Slashing::default()
            );
            assert_eq!(slashing_in_events(events, "").unwrap(), Slashing::default());
        }
        // Two slashes are summed; a slash without burned_coins (SDK < 0.46) has no amount.
        let events = json!([
            {"type": "slash", "attributes": [{"key": "address", "value": MY_VALCONS}, {"key": "burned_coins", "value": "5"}]},
            {"type": "SLASH", "attributes": [{"key": "address", "value": MY_VALCONS}, {"key": "burned_coins", "value": "7"}]}
        ]);
        assert_eq!(
            slashing_in_events(events.as_array().unwrap(), ME)
                .unwrap()
                .amount,
            Some(12)
        );
        let events = json!([{"type": "slash", "attributes": [{"key": "address", "value": MY_VALCONS}, {"key": "reason", "value": "missing_signature"}]}]);
        assert_eq!(
            slashing_in_events(events.as_array().unwrap(), ME).unwrap(),
            Slashing {
                slashed: true,
                amount: None
            }
        );
        // A bad amount is an error, a bad address is not a match.
        let events = json!([{"type": "slash", "attributes": [{"key": "address", "value": MY_VALCONS}, {"key": "burned_coins", "value": "lots"}]}]);
        assert!(slashing_in_events(events.as_array().unwrap(), ME).is_err());
        let events = json!([{"type": "slash", "attributes": [{"key": "address", "value": "garbage"}, {"key": "value"}]}]);
        assert_eq!(
            slashing_in_events(events.as_array().unwrap(), ME).unwrap(),
            Slashing::default()
        );
    }

    #[test]
    fn event_lists_of_every_version() {
        assert_eq!(
            block_events(&json!({"begin_block_events": [1]}))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            block_events(&json!({"finalize_block_events": [1, 2]}))
                .unwrap()
                .len(),
            2
        );
        assert!(block_events(&json!({"begin_block_events": null}))
            .unwrap()
            .is_empty());
        assert!(block_events(&json!({"txs_results": []})).is_err());
    }

    #[test]
    fn status_fields() {
        let s = parse_status(&json!({"validator_info": {"address": "ab"}, "sync_info": {"catching_up": false}, "mev_info": {"is_peered_with_relayer": true}})).unwrap();
        assert_eq!(s.consensus_address, "AB");
        assert_eq!(s.mev_peered, Some(true));
        assert!(parse_status(&json!({"validator_info": {"address": "ab"}})).is_err());
    }
}
