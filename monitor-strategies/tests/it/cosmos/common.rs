//! A fake Cosmos node (REST, Tendermint RPC and Prometheus on one local server) and helpers.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Value};

use monitor_core::PeriodGroup;
use monitor_strategies::testing::{RecordedRequest, Reply, TestServer};
use monitor_strategies::{CosmosNodeConfig, Http, StrategySettings, Target};

pub(crate) use crate::common::{fixture, fixture_json};

/// The scenario's latest height.
pub(crate) const H: u64 = 12_840_052;
/// The monitored validator's operator address.
pub(crate) const VALOPER: &str = "cosmosvaloper15gryzfac2yexucuxf643drqv4lfx5jdck2d0s5";
/// The monitored validator's consensus address.
pub(crate) const CONSENSUS: &str = "9ABD746F43E8DD0C161CFBB04D87695B823A094E";

/// A Cosmos SDK generation a fake node plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sdk {
    /// Legacy LCD only.
    V039,
    /// gRPC gateway v1beta1 plus legacy routes.
    V045,
    /// gRPC gateway only, gov v1.
    V047,
}

/// A Tendermint / CometBFT version a fake node plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tm {
    /// base64 attributes, `begin_block_events`.
    V034,
    /// plain attributes, `begin_block_events`.
    V037,
    /// plain attributes, `finalize_block_events`.
    V038,
}

/// One fake node.
pub(crate) struct FakeNode {
    pub(crate) server: TestServer,
    pub(crate) height: Arc<AtomicU64>,
    pub(crate) syncing: Arc<AtomicBool>,
    pub(crate) validators_page_size: Arc<AtomicUsize>,
}

impl FakeNode {
    pub(crate) async fn start(sdk: Sdk, tm: Tm) -> FakeNode {
        let server = TestServer::start().await.unwrap();
        let node = FakeNode {
            server,
            height: Arc::new(AtomicU64::new(H)),
            syncing: Arc::new(AtomicBool::new(false)),
            validators_page_size: Arc::new(AtomicUsize::new(100)),
        };
        node.serve_rest(sdk);
        node.serve_tendermint(tm);
        node.server
            .route("/metrics", Reply::ok(fixture("tendermint/metrics.txt")));
        node
    }

    /// The base URL (REST and RPC share the server).
    pub(crate) fn url(&self) -> String {
        self.server.url("")
    }

    pub(crate) fn set_height(&self, h: u64) {
        self.height.store(h, Ordering::SeqCst);
    }

    pub(crate) fn set_syncing(&self, syncing: bool) {
        self.syncing.store(syncing, Ordering::SeqCst);
    }

    /// Requests whose path starts with `prefix`.
    pub(crate) fn hits_prefix(&self, prefix: &str) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .count()
    }

    /// Requests answered with a route the node does not have (404/501 probes).
    pub(crate) fn failed_probes(&self, sdk: Sdk) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| !has_rest_route(sdk, &r.path) && !is_tm_or_metrics(&r.path))
            .count()
    }

    fn serve_rest(&self, sdk: Sdk) {
        let syncing = Arc::clone(&self.syncing);
        let syncing_reply = move |_: &RecordedRequest| {
            Reply::json(json!({"syncing": syncing.load(Ordering::SeqCst)}).to_string())
        };
        let not_implemented = Reply::status(501, fixture("cosmos_rest/not_implemented.json"))
            .header("content-type", "application/json");
        match sdk {
            Sdk::V039 => {
                self.server.route_fn("/syncing", syncing_reply);
                self.server.route(
                    &format!("/staking/validators/{VALOPER}"),
                    Reply::json(fixture("cosmos_rest/validator_v039.json")),
                );
                self.server.route(
                    "/gov/proposals",
                    Reply::json(fixture("cosmos_rest/proposals_v039.json")),
                );
                // Everything else: Go's default 404 page.
            }
            Sdk::V045 | Sdk::V047 => {
                if sdk == Sdk::V045 {
                    self.server.route_fn("/syncing", syncing_reply.clone());
                    self.server
                        .route("/cosmos/gov/v1/proposals", not_implemented.clone());
                    self.server.route_fn("/cosmos/gov/v1beta1/proposals", |r| {
                        if r.target.contains("pagination.key=AAAAAAAAAE0%3D") {
                            Reply::json(fixture("cosmos_rest/proposals_page2.json"))
                        } else {
                            Reply::json(fixture("cosmos_rest/proposals_page1.json"))
                        }
                    });
                } else {
                    self.server.route("/syncing", not_implemented.clone());
                    self.server.route_fn("/cosmos/gov/v1/proposals", |r| {
                        let page = if r.target.contains("pagination.key=AAAAAAAAAE0%3D") {
                            "cosmos_rest/proposals_page2.json"
                        } else {
                            "cosmos_rest/proposals_page1.json"
                        };
                        Reply::json(gov_v1_page(&fixture_json(page)).to_string())
                    });
                }
                self.server
                    .route_fn("/cosmos/base/tendermint/v1beta1/syncing", syncing_reply);
                self.server.route(
                    &format!("/cosmos/staking/v1beta1/validators/{VALOPER}"),
                    Reply::json(fixture("cosmos_rest/validator_v042.json")),
                );
            }
        }
    }

    fn serve_tendermint(&self, tm: Tm) {
        let syncing = Arc::clone(&self.syncing);
        self.server.route_fn("/status", move |_| {
            if syncing.load(Ordering::SeqCst) {
                Reply::json(fixture("tendermint/status_catching_up.json"))
            } else {
                Reply::json(fixture("tendermint/status.json"))
            }
        });
        let height = Arc::clone(&self.height);
        self.server.route_fn("/block", move |r| {
            let h = query_u64(r, "height").unwrap_or_else(|| height.load(Ordering::SeqCst));
            Reply::json(block_at(h).to_string())
        });
        self.server.route_fn("/block_results", move |r| {
            let h = query_u64(r, "height").unwrap();
            Reply::json(block_results_at(h, tm).to_string())
        });
        let page_size = Arc::clone(&self.validators_page_size);
        self.server.route_fn("/validators", move |r| {
            let h = query_u64(r, "height").unwrap();
            let page = query_u64(r, "page").unwrap_or(1) as usize;
            Reply::json(validators_page(h, page, page_size.load(Ordering::SeqCst)).to_string())
        });
    }
}

fn has_rest_route(sdk: Sdk, path: &str) -> bool {
    match sdk {
        Sdk::V039 => {
            path == "/syncing" || path.starts_with("/staking/") || path == "/gov/proposals"
        }
        Sdk::V045 => {
            path == "/syncing"
                || path == "/cosmos/base/tendermint/v1beta1/syncing"
                || path.starts_with("/cosmos/staking/v1beta1/")
                || path == "/cosmos/gov/v1beta1/proposals"
        }
        Sdk::V047 => {
            path == "/cosmos/base/tendermint/v1beta1/syncing"
                || path.starts_with("/cosmos/staking/v1beta1/")
                || path == "/cosmos/gov/v1/proposals"
        }
    }
}

fn is_tm_or_metrics(path: &str) -> bool {
    [
        "/status",
        "/block",
        "/block_results",
        "/validators",
        "/metrics",
    ]
    .contains(&path)
}

pub(crate) fn query_u64(r: &RecordedRequest, name: &str) -> Option<u64> {
    let query = r.target.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// `/block?height=h`: the fixture block with its heights changed (every validator of the fixture
/// commit keeps its signature).
pub(crate) fn block_at(h: u64) -> Value {
    let mut block = fixture_json("tendermint/block.json");
    block["result"]["block"]["header"]["height"] = json!(h.to_string());
    block["result"]["block"]["last_commit"]["height"] = json!((h - 1).to_string());
    block
}

/// `/block_results?height=h` in the format of `tm`: the fixture at H, no events elsewhere.
pub(crate) fn block_results_at(h: u64, tm: Tm) -> Value {
    let mut v = if h == H {
        fixture_json("tendermint/block_results_slash.json")
    } else {
        json!({"jsonrpc": "2.0", "id": -1, "result": {
            "height": h.to_string(), "txs_results": null, "begin_block_events": [],
            "end_block_events": null, "validator_updates": null, "consensus_param_updates": null}})
    };
    convert_block_results(&mut v["result"], tm);
    v
}

/// Tendermint 0.34 block results → the CometBFT 0.37 / 0.38 shape.
pub(crate) fn convert_block_results(result: &mut Value, tm: Tm) {
    if tm == Tm::V034 {
        return;
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let decode = |v: &Value| {
        v.as_str()
            .map(|s| json!(String::from_utf8(engine.decode(s).unwrap()).unwrap()))
            .unwrap_or(Value::Null)
    };
    for key in ["begin_block_events", "end_block_events"] {
        if let Some(events) = result.get_mut(key).and_then(Value::as_array_mut) {
            for event in events {
                for attr in event["attributes"].as_array_mut().unwrap() {
                    let k = decode(&attr["key"]);
                    let v = decode(&attr["value"]);
                    attr["key"] = k;
                    attr["value"] = v;
                }
            }
        }
    }
    if tm == Tm::V038 {
        let map = result.as_object_mut().unwrap();
        let events = map.remove("begin_block_events").unwrap_or(Value::Null);
        map.remove("end_block_events");
        map.insert("finalize_block_events".to_owned(), events);
        map.insert("app_hash".to_owned(), json!("AAAA"));
    }
}

/// `/validators?height=h&page=n` with pages of `page_size`.
pub(crate) fn validators_page(h: u64, page: usize, page_size: usize) -> Value {
    let mut v = fixture_json("tendermint/validators.json");
    let all = v["result"]["validators"].as_array().unwrap().clone();
    let slice: Vec<Value> = all
        .iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .cloned()
        .collect();
    v["result"]["block_height"] = json!(h.to_string());
    v["result"]["count"] = json!(slice.len().to_string());
    v["result"]["total"] = json!(all.len().to_string());
    v["result"]["validators"] = Value::Array(slice);
    v
}

/// A gov v1beta1 page of the fixtures as SDK 0.47's gov v1 answers it (`id`, `messages` with the
/// legacy content, `*_count` tallies, `metadata`, `title`, `summary`, `proposer`).
pub(crate) fn gov_v1_page(v1beta1: &Value) -> Value {
    let proposals: Vec<Value> = v1beta1["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let t = &p["final_tally_result"];
            json!({
                "id": p["proposal_id"],
                "messages": [{"@type": "/cosmos.gov.v1.MsgExecLegacyContent", "content": p["content"],
                              "authority": "cosmos10d07y265gmmuvt4z0w9aw880jnsr700j6zn9kn"}],
                "status": p["status"],
                "final_tally_result": {"yes_count": t["yes"], "abstain_count": t["abstain"],
                                       "no_count": t["no"], "no_with_veto_count": t["no_with_veto"]},
                "submit_time": p["submit_time"], "deposit_end_time": p["deposit_end_time"],
                "total_deposit": p["total_deposit"], "voting_start_time": p["voting_start_time"],
                "voting_end_time": p["voting_end_time"], "metadata": "",
                "title": p["content"]["title"], "summary": p["content"]["description"],
                "proposer": "cosmos1m3h30wlvsf8llruxtpukdvsy0km2kum8g38c8q"
            })
        })
        .collect();
    json!({"proposals": proposals, "pagination": v1beta1["pagination"]})
}

/// A node config with every source on `url`.
pub(crate) fn node_config(id: &str, name: &str, url: &str) -> CosmosNodeConfig {
    CosmosNodeConfig {
        node_id: id.to_owned(),
        parent_id: "chain_cosmoshub".to_owned(),
        node_name: name.to_owned(),
        monitor_node: true,
        monitor_prometheus: true,
        prometheus_url: format!("{url}/metrics"),
        monitor_cosmos_rest: true,
        cosmos_rest_url: url.to_owned(),
        monitor_tendermint_rpc: true,
        tendermint_rpc_url: url.to_owned(),
        is_validator: false,
        is_archive_node: false,
        use_as_data_source: true,
        operator_address: String::new(),
    }
}

/// The monitored validator's config on `url`.
pub(crate) fn validator_config(url: &str) -> CosmosNodeConfig {
    CosmosNodeConfig {
        is_validator: true,
        operator_address: VALOPER.to_owned(),
        ..node_config("node_kestrel", "kestrel-validator-01", url)
    }
}

pub(crate) fn http() -> Http {
    StrategySettings::default()
        .http(Target::Monitored, PeriodGroup::Node)
        .unwrap()
}

/// A client whose catch-up time budget (half the request timeout) no loaded test machine reaches:
/// for tests of what a full catch-up fetches, not of the budget.
pub(crate) fn patient_http() -> Http {
    StrategySettings::default()
        .with_request_timeout(std::time::Duration::from_secs(300))
        .http(Target::Monitored, PeriodGroup::Node)
        .unwrap()
}

pub(crate) fn short_http() -> Http {
    StrategySettings::default()
        .with_request_timeout(std::time::Duration::from_millis(500))
        .http(Target::Monitored, PeriodGroup::Node)
        .unwrap()
}
