//! Entry points for the fuzz targets (`fuzz/`, feature `fuzzing`): thin wrappers that feed
//! outside bytes to the crate's private decoders exactly as the strategies do after an HTTP
//! exchange. Not part of the API: nothing here is stable, and no product code calls it.
//!
//! Each function takes what a hostile target controls (status, body, headers) and returns
//! nothing: a panic, a hang or unbounded memory is the bug the fuzzer looks for. Results are
//! rendered (`to_string`) so that error paths run their formatting too.

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use alloy_primitives::{Address, B256};
use alloy_sol_types::{SolCall, SolEvent};
use monitor_core::PeriodGroup;
use serde_json::Value;

use crate::chainlink::abi::{self, FluxAggregator, OffchainAggregator, Proxy, RoundData};
use crate::cosmos::{network, rest, tendermint};
use crate::dockerhub::monitor::{read_page, DockerHubMonitor, DockerHubRepoConfig};
use crate::evm::rpc;
use crate::github::monitor as github;
use crate::github::rate_limit::RateBudget;
use crate::http::Http;
use crate::settings::{StrategySettings, Target};
use crate::substrate::metadata::{KeyArg, Metadata};
use crate::substrate::rpc::{self as ws, Frame, Pending, WsError};

const URL: &str = "http://fuzz.invalid/path";

/// The JSON-RPC methods whose results the EVM and Chainlink monitors read.
pub const EVM_METHODS: [&str; 4] = ["eth_blockNumber", "eth_syncing", "eth_call", "eth_getLogs"];

/// An EVM JSON-RPC answer (`status`, `body`) to `EVM_METHODS[method % 4]`, decoded and its
/// result read as that method's monitor reads it.
pub fn evm_answer(method: u8, status: u16, body: &[u8]) {
    let method = EVM_METHODS[usize::from(method) % EVM_METHODS.len()];
    let result = match rpc::decode_answer(URL, method, status, body) {
        Ok(result) => result,
        Err(e) => {
            let _ = e.is_revert();
            let _ = e.to_string();
            return;
        }
    };
    match method {
        "eth_blockNumber" => render(rpc::quantity(&result)),
        "eth_syncing" => render(rpc::syncing_of(&result)),
        "eth_call" => render(rpc::call_bytes(&result)),
        _ => render(rpc::logs_of(&result)),
    }
}

/// A Cosmos REST answer through PANIC's checker, then read as each REST call reads it
/// (`syncing`, a validator, a page of proposals of the legacy and the paginated shapes).
pub fn cosmos_rest_answer(status: u16, body: &[u8]) {
    let value = match rest::check_answer(URL, status, body) {
        Ok(v) => v,
        Err(e) => {
            let _ = e.message();
            let _ = e.is_incompatibility();
            return;
        }
    };
    let _ = value.get("syncing").and_then(Value::as_bool);
    if let Ok(v) = rest::parse_validator(&value) {
        let _ = v.bond_status;
    }
    for key in ["result", "proposals"] {
        if let Some(list) = value.get(key).and_then(Value::as_array) {
            for p in list {
                render(network::normalise(p));
            }
        }
    }
    if let Some(Value::String(next)) = value.pointer("/pagination/next_key") {
        let _ = next.len();
    }
}

/// A Tendermint RPC answer through PANIC's checker, then read as `/status`, `/block`, a page of
/// `/validators` and `/block_results` (slashing of the first signer of the block, or of a fixed
/// address) read it.
pub fn tendermint_answer(status: u16, body: &[u8]) {
    let result = match tendermint::check_answer(URL, status, body) {
        Ok(v) => v,
        Err(e) => {
            let _ = e.message();
            return;
        }
    };
    let mut address = "7D4B1A0A7A6B1C5E7E6C5D4B3A291807F6E5D4C3".to_owned();
    if let Ok(s) = tendermint::parse_status(&result) {
        let _ = (s.catching_up, s.mev_peered);
        address = s.consensus_address;
    }
    match tendermint::parse_block(URL, &result) {
        Ok((height, signed)) => {
            let _ = tendermint::adjust_last_height(Some(height / 2), height, height % 2 == 0);
            if let Some(first) = signed.first() {
                address.clone_from(first);
            }
        }
        Err(e) => {
            let _ = e.message();
        }
    }
    if let Ok((addresses, count, total)) = tendermint::parse_validators_page(URL, &result) {
        let _ = (addresses.len(), count.saturating_add(total));
    }
    if let Ok(events) = tendermint::block_events(&result) {
        render(tendermint::slashing_in_events(events, &address).map(|s| (s.slashed, s.amount)));
    }
}

/// A GitHub releases answer: decoded and processed as the monitor does, and its headers fed to
/// the shared rate budget (`headers`: `name: value` lines).
pub fn github_answer(status: u16, headers: &[u8], body: &[u8]) {
    let budget = RateBudget::new();
    let map = header_map(headers);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    budget.record(status, &map, now);
    if let Err(wait) = budget.try_acquire(now) {
        let _ = wait.until_unix();
        let _ = wait.remaining_from(now);
    }
    let _ = budget.snapshot();
    if let Ok(decoded) = serde_json::from_slice::<Value>(body) {
        render(github::process(&decoded));
    }
}

/// One page of DockerHub tags (`first`: the first page), read and processed as the monitor does,
/// and its `next` link joined to the tags URL.
pub fn dockerhub_page(first: bool, body: &[u8]) {
    let Ok(page) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    match read_page(&page, first) {
        Ok((tags, next)) => {
            let monitor = DockerHubMonitor::new(
                DockerHubRepoConfig {
                    repo_id: "repo_1".to_owned(),
                    parent_id: "GENERAL".to_owned(),
                    repo_namespace: "fuzz".to_owned(),
                    repo_name: "fuzz".to_owned(),
                    tags_url: URL.to_owned(),
                },
                http().clone(),
                1,
            );
            let _ = monitor.process(&tags).to_string();
            if let (Some(next), Ok(base)) = (next, reqwest::Url::parse(URL)) {
                let _ = base.join(next);
            }
        }
        Err(e) => {
            let _ = format!("{e:?}");
        }
    }
}

/// The weiwatchers feed list.
pub fn weiwatchers_feeds(body: &[u8]) {
    if let Ok(feeds) = crate::chainlink::contracts::parse_feeds(body) {
        for f in feeds {
            let _ = (abi::checksum(&f.aggregator), f.proxy, f.version);
        }
    }
}

/// `eth_call` return data (`data`) decoded as the return of the call `which` selects, and a log
/// (`topics`, 32 bytes each, then `data`) decoded as the two events, all rendered as the
/// contracts monitor renders them.
pub fn abi_return(which: u8, data: &[u8]) {
    match which % 9 {
        0 => {
            if let Ok(a) = Proxy::aggregatorCall::abi_decode_returns(data) {
                let _ = abi::checksum(&a);
            }
        }
        1 => {
            if let Ok(d) = Proxy::descriptionCall::abi_decode_returns(data) {
                let _ = abi::decimal_json(&d);
            }
        }
        2 => {
            if let Ok(list) = FluxAggregator::getOraclesCall::abi_decode_returns(data) {
                let _: Vec<String> = list.iter().map(abi::checksum).collect();
            }
        }
        3 => {
            if let Ok(v) = FluxAggregator::withdrawablePaymentCall::abi_decode_returns(data) {
                let _ = abi::uint_json(v);
            }
        }
        4 => {
            if let Ok(r) = FluxAggregator::latestRoundDataCall::abi_decode_returns(data) {
                round_json(&r.into());
            }
        }
        5 => {
            if let Ok(r) = FluxAggregator::getRoundDataCall::abi_decode_returns(data) {
                round_json(&r.into());
            }
        }
        6 => {
            if let Ok(list) = OffchainAggregator::transmittersCall::abi_decode_returns(data) {
                let _: Vec<String> = list.iter().map(abi::checksum).collect();
            }
        }
        7 => {
            if let Ok(r) = OffchainAggregator::latestRoundDataCall::abi_decode_returns(data) {
                round_json(&r.into());
            }
            if let Ok(r) = OffchainAggregator::getRoundDataCall::abi_decode_returns(data) {
                round_json(&r.into());
            }
            if let Ok(v) = OffchainAggregator::owedPaymentCall::abi_decode_returns(data) {
                let _ = abi::uint_json(v);
            }
        }
        _ => abi_log(data),
    }
}

fn abi_log(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 5);
    if rest.len() < n * 32 {
        return;
    }
    let (topic_bytes, log_data) = rest.split_at(n * 32);
    let topics: Vec<B256> = topic_bytes.chunks_exact(32).map(B256::from_slice).collect();
    if let Ok(e) =
        FluxAggregator::SubmissionReceived::decode_raw_log(topics.iter().copied(), log_data)
    {
        let _ = (
            abi::int_json(e.submission),
            e.round,
            abi::checksum(&e.oracle),
        );
    }
    if let Ok(e) = OffchainAggregator::NewTransmission::decode_raw_log(topics, log_data) {
        let index = usize::from(e.aggregatorRoundId as u8);
        let submission = e
            .observers
            .iter()
            .position(|observer| usize::from(*observer) == index)
            .and_then(|pos| e.observations.get(pos));
        let _ = submission.map(|s| abi::decimal_json(&s.to_string()));
        let _ = abi::decimal_json(&e.answer.to_string());
    }
}

fn round_json(r: &RoundData) {
    let aggregator =
        Address::from_str("0x00000000000000000000000000000000000000aa").unwrap_or(Address::ZERO);
    let entry = crate::chainlink::contracts::latest_entry(4, &aggregator, "FUZZ / USD", r);
    let _ = Value::Object(entry).to_string();
}

/// Runtime metadata bytes (`state_getMetadata`) decoded, and every storage item's default and
/// key and every constant read and rendered through the decoded type registry.
pub fn substrate_metadata(bytes: &[u8]) {
    let Ok(meta) = Metadata::from_bytes(bytes) else {
        return;
    };
    walk_metadata(&meta);
}

/// Every storage item and constant of `meta` read as the substrate monitors read them.
pub fn walk_metadata(meta: &Metadata) {
    let (items, constants) = meta.names();
    for (pallet, item) in items.iter().take(4096) {
        if let Ok(Some(v)) = meta.decode_storage(pallet, item, None) {
            let _ = v.to_json(42);
        }
        let _ = meta.key(pallet, item, &[KeyArg::Int(7), KeyArg::Account([1; 32])]);
        let _ = meta.key(pallet, item, &[KeyArg::Account([2; 32])]);
        let _ = meta.storage_key(pallet, item, &[b"k"]);
    }
    for (pallet, name) in constants.iter().take(4096) {
        if let Some(Ok(v)) = meta.constant(pallet, name) {
            let _ = v.to_json(0);
        }
    }
    if let Some(ty) = meta.event_ty("System") {
        let _ = meta.decode(ty, &[0, 0]);
    }
}

/// `bytes` decoded as type `ty` of `meta` (SCALE) and rendered as polkadot.js does.
pub fn scale_value(meta: &Metadata, ty: u32, bytes: &[u8]) {
    if let Ok(v) = meta.decode(ty, bytes) {
        let _ = v.to_json(42);
        let _ = v.as_u128();
        let _ = v.account();
        let _ = v.variant();
    }
}

/// The number of types in `meta`'s registry.
pub fn type_count(meta: &Metadata) -> u32 {
    meta.type_count()
}

/// The ids of the calls [`substrate_ws_frame`] has in flight.
pub const WS_IN_FLIGHT: [u64; 3] = [1, 2, 3];

/// One websocket message (text or binary) from a Substrate node, routed as the connection task
/// routes it, with the calls [`WS_IN_FLIGHT`] waiting. Checks the routing against
/// [`read_frame`](crate::substrate::rpc::read_frame): an answer reaches the call with its id and
/// no other, its result or JSON-RPC error unchanged; garbage fails every call in flight as
/// malformed; a notification reaches none.
pub fn substrate_ws_frame(bytes: &[u8]) {
    const WS_URL: &str = "ws://user:secret@fuzz.invalid:9944";
    let mut pending: Pending = Pending::new();
    let mut waiting = Vec::new();
    for id in WS_IN_FLIGHT {
        let (reply, answer) = tokio::sync::oneshot::channel();
        pending.insert(id, (format!("method_{id}"), reply));
        waiting.push((id, answer));
    }
    let frame = ws::read_frame(bytes);
    ws::answer(bytes, &mut pending, WS_URL);
    let answered = match &frame {
        Frame::Answer { id, .. } if WS_IN_FLIGHT.contains(id) => 1,
        Frame::Answer { .. } | Frame::Unrouted => 0,
        Frame::Garbage(_) => WS_IN_FLIGHT.len(),
    };
    assert_eq!(pending.len(), WS_IN_FLIGHT.len() - answered, "{frame:?}");
    for (id, mut answer) in waiting {
        let got = answer.try_recv().ok();
        match (&frame, got) {
            (Frame::Garbage(reason), Some(Err(e @ WsError::Malformed { .. }))) => {
                assert!(!reason.is_empty());
                let _ = e.to_string();
            }
            (Frame::Answer { id: to, result }, got) if *to == id => match (result, got) {
                (Ok(want), Some(Ok(value))) => assert_eq!(want, &value),
                (Err((want_code, want_message)), Some(Err(WsError::Rpc { code, message, .. }))) => {
                    assert_eq!((want_code, want_message), (&code, &message));
                }
                (result, got) => panic!("answer {id}: {result:?} routed as {got:?}"),
            },
            (Frame::Answer { .. } | Frame::Unrouted, None) => {}
            (frame, got) => panic!("call {id}: {frame:?} routed as {got:?}"),
        }
    }
}

/// A Prometheus text body through the one-pass query the monitors run
/// ([`query_text`](crate::prometheus::query_text)), for `requested`, within `limits`, with a
/// `scratch` kept across calls as a monitor keeps it; checked against the two-step
/// [`parse`](crate::prometheus::parse) + [`query`](crate::prometheus::query) it replaces, which
/// its doc says it equals (the same answer, the same error, a parse error first) unless a bound
/// is reached.
pub fn prometheus_text(
    text: &str,
    requested: &[(&str, crate::prometheus::Requirement)],
    limits: &crate::prometheus::Limits,
    scratch: &mut crate::prometheus::Scratch,
) {
    use crate::prometheus::{parse, query, query_text, TextQueryError};
    let got = query_text(text, requested, limits, scratch).map(|found| {
        for i in 0..requested.len() {
            match found.metric(i) {
                crate::prometheus::Metric::Absent => {}
                crate::prometheus::Metric::Single(v) => {
                    let _ = v.to_string();
                }
                crate::prometheus::Metric::Labelled(sets) => {
                    assert!(!sets.is_empty(), "a found labelled metric has a label set");
                    assert_eq!(
                        sets.first().map(|s| s.key()),
                        sets.iter().next().map(|s| s.key())
                    );
                    for set in sets.iter() {
                        let _ = (set.key().len(), set.value());
                        if let Some((first, _)) = set.labels().next() {
                            assert!(set.label(first).is_some());
                        }
                    }
                }
            }
        }
        found.to_metrics_data()
    });
    if matches!(got, Err(TextQueryError::Limit(_))) {
        return;
    }
    let want = parse(text)
        .map_err(TextQueryError::Parse)
        .and_then(|samples| query(&samples, requested).map_err(TextQueryError::Query));
    // NaN != NaN: compare through the Debug text, as tests/it/prometheus_scan.rs does.
    let (want, got) = (format!("{want:?}"), format!("{got:?}"));
    assert!(
        want == got,
        "one-pass query differs\nold: {want}\nnew: {got}"
    );
}

fn render<T: std::fmt::Debug, E: std::fmt::Display>(r: Result<T, E>) {
    match r {
        Ok(v) => {
            let _ = format!("{v:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fn header_map(text: &[u8]) -> reqwest::header::HeaderMap {
    let mut map = reqwest::header::HeaderMap::new();
    for line in text.split(|b| *b == b'\n').take(64) {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default().trim_ascii();
        if let (Ok(n), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(name.trim_ascii()),
            reqwest::header::HeaderValue::from_bytes(value),
        ) {
            map.append(n, v);
        }
    }
    map
}

fn http() -> &'static Http {
    static HTTP: OnceLock<Http> = OnceLock::new();
    HTTP.get_or_init(|| {
        let settings = StrategySettings::default();
        match settings.http(Target::Public, PeriodGroup::Github) {
            Ok(h) => h,
            Err(_) => Http::new(reqwest::Client::new(), Duration::from_secs(1), 1 << 20),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::{Limits, Requirement, Scratch};

    #[test]
    fn the_ws_frame_checks_hold_on_every_kind_of_message() {
        let deep = "[".repeat(100_000);
        for frame in [
            br#"{"jsonrpc":"2.0","id":2,"result":{"isSyncing":false}}"#.as_slice(),
            br#"{"jsonrpc":"2.0","id":3,"error":{"code":-32000,"message":"boom"}}"#,
            br#"{"jsonrpc":"2.0","id":9,"result":1}"#,
            br#"{"jsonrpc":"2.0","method":"chain_newHead","params":{}}"#,
            br#"{"id":1,"result":NaN}"#,
            deep.as_bytes(),
            b"[1]",
            b"\xff",
        ] {
            substrate_ws_frame(frame);
        }
    }

    #[test]
    fn the_one_pass_query_equals_parse_and_query_on_small_texts() {
        let mut scratch = Scratch::new();
        let tiny = Limits {
            max_series_per_metric: 1,
            max_label_bytes: 16,
        };
        for text in [
            "# TYPE c counter\nc 1\nc_total 2\nu 3\n",
            "m{a=\"1\"} 1\nm{a=\"2\"} 2\nm 3\n",
            "m{a=\"1\"} 1\nbad line\n",
            "m NaN\n",
        ] {
            for requested in [
                &[
                    ("m", Requirement::Optional),
                    ("c_total", Requirement::Strict),
                ][..],
                &[("m", Requirement::Strict)][..],
            ] {
                prometheus_text(text, requested, &Limits::default(), &mut scratch);
                prometheus_text(text, requested, &tiny, &mut scratch);
            }
        }
    }
}
